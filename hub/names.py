"""Russian name knowledge for deciding whether two contact records are one person.

Everything known about names lives in data files under ``hub/data/names/``;
this module loads them once and applies them:

* ``translit.yaml``: the letter tables of ``latin_key``, a coarse skeleton on
  which a Cyrillic name and its usual Latin spellings agree (Юлия, Yuliya,
  Iuliia and Julia are all ``iulia``)
* ``diminutives.yaml`` and ``variants.yaml``: full first names with their
  gender, short forms (Саша, Женя, Dasha), spellings of one name (Наталья,
  Наталия) and foreign equivalents (Michael, Kate); ``first_name_keys`` turns a
  written first name into the full names it may stand for
* ``surname_endings.yaml``: gender forms of surnames (Иванов/Иванова,
  Троцкий/Троцкая) for ``surname_info``
* ``patronymics.yaml``: how a patronymic is formed, for ``patronymic_info``

E-mail addresses get the same treatment from ``hub/data/email_providers.yaml``
(providers that ignore dots or ``+`` tags, alias domains) and
``hub/data/email_domain_typos.yaml``.

The functions are pure and cached: identity resolution calls them for every
pair of records it compares. None of them raises on empty or odd input; they
return empty keys instead.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rapidfuzz import process
from rapidfuzz.distance import OSA

from hub.normalize import DATA_DIR, _email_domain_typos, name_key
from hub.yaml_loader import load_yaml

__all__ = [
    "Gender",
    "canonical_email",
    "email_local_key",
    "first_name_forms",
    "first_name_gender",
    "first_name_keys",
    "first_names_compatible",
    "fold",
    "known_first_names",
    "latin_key",
    "patronymic_info",
    "surname_info",
]

NAMES_DIR = DATA_DIR / "names"

Gender = Literal["m", "f"]

#: Prefix of the first-name key of a name missing from the data files.
UNKNOWN_PREFIX = "~"

_CACHE_SIZE = 1 << 16


def _data_error(path: Path, message: str) -> ValueError:
    return ValueError(f"{path.name}: {message}")


# ------------------------------------------------------------------------ fold

# Dashes become a hyphen; apostrophes and transliteration signs vanish
# (Ol'ga, Д'Артаньян); every other non-letter becomes a space.
_FOLD_TABLE = {c: "-" for c in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212, 0xFE63, 0xFF0D)}
_FOLD_TABLE.update({c: None for c in (0x27, 0x60, 0xB4, 0x2018, 0x2019, 0x201B, 0x2032, 0x02B9, 0x02BA, 0x02BC)})
# Combining marks left after NFC composition (stress marks: Мари́я) vanish.
_FOLD_TABLE.update({c: None for c in range(0x0300, 0x0370)})
_NOT_NAME_RE = re.compile(r"[^\w\s-]|[\d_]")
_HYPHEN_RE = re.compile(r"\s*-[\s-]*")
_WORD_SPLIT_RE = re.compile(r"[\s-]+")


@functools.lru_cache(maxsize=_CACHE_SIZE)
def fold(text: str) -> str:
    """A name reduced to what tells names apart: lower case, ё as е, Latin
    look-alike letters inside Cyrillic words made Cyrillic (``Дaрья`` with a
    Latin ``a``), stress marks dropped, only letters of any script, single
    spaces and single hyphens between words. ``"  ПЁТР–Иванов!"`` -> ``"петр-иванов"``."""
    if not text:
        return ""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    text = name_key(text).translate(_FOLD_TABLE)
    text = _HYPHEN_RE.sub("-", _NOT_NAME_RE.sub(" ", text))
    return " ".join(word for word in (w.strip("-") for w in text.split()) if word)


# ------------------------------------------------------------------ latin_key

_CONSONANTS = "bdfgklmnprstvzжшщчцх"


@dataclass(frozen=True)
class _Translit:
    latin_letters: dict[int, str]
    latin_re: re.Pattern[str]
    latin_out: tuple[str, ...]
    cyrillic: dict[int, str]
    key_rules: tuple[tuple[re.Pattern[str], str], ...]
    render: dict[int, str]

    def latin_sub(self, match: re.Match[str]) -> str:
        return self.latin_out[match.lastindex - 1]  # type: ignore[operator]


def _letter_table(path: Path, data: object, name: str) -> dict[int, str]:
    if not isinstance(data, dict):
        raise _data_error(path, f"{name} must be a mapping of one letter to letters")
    table: dict[int, str] = {}
    for letter, out in data.items():
        if not isinstance(letter, str) or len(letter) != 1:
            raise _data_error(path, f"{name}: {letter!r} is not one letter")
        table[ord(letter)] = "" if out is None else str(out)
    return table


def _rules(path: Path, data: object, name: str) -> list[tuple[str, str]]:
    if not isinstance(data, list) or not all(isinstance(r, list) and len(r) == 2 for r in data):
        raise _data_error(path, f"{name} must be a list of [pattern, replacement]")
    return [(str(pattern), "" if out is None else str(out)) for pattern, out in data]


@functools.lru_cache(maxsize=1)
def _translit() -> _Translit:
    path = NAMES_DIR / "translit.yaml"
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise _data_error(path, "expected a mapping")
    latin_rules = _rules(path, data.get("latin_rules"), "latin_rules")
    for pattern, _out in latin_rules:
        if re.compile(pattern).groups:
            raise _data_error(path, f"latin_rules: {pattern!r} must not have groups")
    key_rules = tuple(
        (re.compile(pattern.replace("C", f"[{_CONSONANTS}]")), out)
        for pattern, out in _rules(path, data.get("key_rules"), "key_rules")
    )
    return _Translit(
        latin_letters=_letter_table(path, data.get("latin_letters"), "latin_letters"),
        latin_re=re.compile("|".join(f"({pattern})" for pattern, _out in latin_rules)),
        latin_out=tuple(out for _pattern, out in latin_rules),
        cyrillic=_letter_table(path, data.get("cyrillic"), "cyrillic"),
        key_rules=key_rules,
        render=_letter_table(path, data.get("render"), "render"),
    )


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _skeleton(word: str) -> str:
    """The key of one folded word in the key alphabet (before ``render``)."""
    table = _translit()
    if not word.isascii():
        word = word.translate(table.latin_letters)
        if not word.isascii():
            word = "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))
    word = table.latin_re.sub(table.latin_sub, word)
    word = word.translate(table.cyrillic)
    for pattern, out in table.key_rules:
        word = pattern.sub(out, word)
    return word


def _render(skeleton: str) -> str:
    return skeleton.translate(_translit().render)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def latin_key(text: str) -> str:
    """A coarse Latin skeleton of a name, the same for the Cyrillic name and
    its usual transliterations (GOST 7.79, passport rules of 2013 and before,
    BGN, English and German spellings): Юлия, Yuliya, Iuliia, Julia -> ``iulia``;
    Щукин, Shchukin, Schukin -> ``shchukin``. Words are joined by one space
    (hyphens too). It is a key to compare, not a spelling to show; the rules
    are in ``translit.yaml``."""
    words = fold(text)
    if not words:
        return ""
    keys = (_render(_skeleton(w)) for w in _WORD_SPLIT_RE.split(words))
    return " ".join(k for k in keys if k)


# ----------------------------------------------------------------- first names


@dataclass(frozen=True)
class _FirstNames:
    #: latin_key of a written form -> the canonical full names it stands for
    by_key: dict[str, frozenset[str]]
    #: canonical full name -> its gender
    gender: dict[str, Gender]
    #: folded written form of a full name or variant -> its canonical full name
    canonical: dict[str, str]
    #: male full names and variants as written, with their canonical name
    male_names: tuple[tuple[str, str], ...]


def _name_list(path: Path, value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _data_error(path, f"{where}: expected a list of names")
    return list(value)


@functools.lru_cache(maxsize=1)
def _first_names() -> _FirstNames:
    dim_path = NAMES_DIR / "diminutives.yaml"
    var_path = NAMES_DIR / "variants.yaml"
    diminutives = load_yaml(dim_path)
    variants = load_yaml(var_path) or {}
    if not isinstance(diminutives, dict) or set(diminutives) - {"male", "female"}:
        raise _data_error(dim_path, "expected the sections male: and female:")
    if not isinstance(variants, dict) or set(variants) - {"same_name", "foreign"}:
        raise _data_error(var_path, "expected the sections same_name: and foreign:")

    gender: dict[str, Gender] = {}
    shorts: list[tuple[str, str]] = []  # (written short form, folded full name)
    for section, sex in (("male", "m"), ("female", "f")):
        names = diminutives.get(section) or {}
        if not isinstance(names, dict):
            raise _data_error(dim_path, f"{section}: expected a mapping of full name to short forms")
        for full, forms in names.items():
            key = fold(str(full))
            if gender.get(key, sex) != sex:
                raise _data_error(dim_path, f"{full} is listed as male and as female")
            gender[key] = sex  # type: ignore[assignment]
            shorts.extend((form, key) for form in _name_list(dim_path, forms, f"{section}.{full}"))

    canonical = {key: key for key in gender}
    for i, group in enumerate(variants.get("same_name") or ()):
        members = _name_list(var_path, group, f"same_name[{i}]")
        head = fold(members[0]) if members else ""
        if head not in gender:
            raise _data_error(var_path, f"same_name[{i}]: {members[:1]} is not a full name of diminutives.yaml")
        for member in members[1:]:
            key = fold(member)
            if canonical.get(key, head) != head:
                raise _data_error(var_path, f"{member} belongs to two names")
            canonical[key] = head

    forms_of: dict[str, set[str]] = {}

    def add(form: str, full: str) -> None:
        key = latin_key(form)
        if key:
            forms_of.setdefault(key, set()).add(full)

    for written, full in canonical.items():
        add(written, full)
    for form, full in shorts:
        add(form, canonical[full])
    foreign = variants.get("foreign") or {}
    if not isinstance(foreign, dict):
        raise _data_error(var_path, "foreign: expected a mapping of a form to full names")
    for form, targets in foreign.items():
        for target in _name_list(var_path, targets, f"foreign.{form}"):
            full = canonical.get(fold(target))
            if full is None:
                raise _data_error(var_path, f"foreign.{form}: {target} is not a full name of diminutives.yaml")
            add(str(form), full)

    male_names = tuple((written, full) for written, full in canonical.items() if gender[full] == "m")
    return _FirstNames(
        by_key={key: frozenset(fulls) for key, fulls in forms_of.items()},
        gender=gender,
        canonical=canonical,
        male_names=male_names,
    )


@functools.lru_cache(maxsize=_CACHE_SIZE)
def first_name_keys(name: str) -> frozenset[str]:
    """The full first names a written first name may stand for, as folded
    Cyrillic canonical forms: ``Саша`` -> {александр, александра}, ``Dasha``
    -> {дарья}, ``Наталия`` -> {наталья}, ``Alex`` -> {александр, алексей}.

    A name missing from the data stands for itself: its key is ``"~"`` and its
    ``latin_key`` (``Айнагуль`` and ``Ainagul`` are both ``~ainagul``), so it
    can still meet the same name written in the other script. Two written
    names can be one person's first name exactly when their key sets meet.
    A double name (``Анна-Мария``) not in the data stands for each of its parts.
    Empty or letterless input gives an empty set."""
    key = latin_key(name)
    if not key:
        return frozenset()
    by_key = _first_names().by_key
    found = by_key.get(key)
    if found is not None:
        return found
    parts = key.split(" ")
    if len(parts) == 1:
        return frozenset((UNKNOWN_PREFIX + key,))
    out: set[str] = set()
    for part in parts:
        out |= by_key.get(part) or {UNKNOWN_PREFIX + part}
    return frozenset(out)


def known_first_names() -> Mapping[str, frozenset[str]]:
    """Every first name the tables know, by its ``latin_key``: the full names it stands for."""
    return _first_names().by_key


@functools.lru_cache(maxsize=1)
def _forms_by_full() -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for key, fulls in _first_names().by_key.items():
        for full in fulls:
            out.setdefault(full, set()).add(key)
    return {full: frozenset(keys) for full, keys in out.items()}


def first_name_forms(full: str) -> frozenset[str]:
    """The ``latin_key`` of every written form of a canonical full name (one of the
    values :func:`first_name_keys` gives): ``елена`` -> {elena, lena, lenochka, helen...}."""
    return _forms_by_full().get(full, frozenset())


@functools.lru_cache(maxsize=65536)
def misspelt_first_name(key: str) -> frozenset[str]:
    """The full names an unknown first name (a ``latin_key``) is one typo away from
    (Аликсандр -> александр; two letters swapped is one typo: Еактерина): only for names long enough that one letter off cannot be
    another name, and only when the typo points at one name."""
    if len(key) < 6:
        return frozenset()
    known = known_first_names()
    found = process.extract(key, list(known), scorer=OSA.distance, score_cutoff=1, limit=None)
    meant: set[str] = set()
    for candidate, _distance, _index in found:
        if candidate[0] == key[0]:
            meant |= known[candidate]
    return frozenset(meant) if len(meant) == 1 else frozenset()


def first_names_compatible(a: str, b: str) -> bool:
    """True when the two written first names can be one person's first name
    (``Саша`` and ``Aleksandra``, ``Женя`` and ``Evgeny``)."""
    return not first_name_keys(a).isdisjoint(first_name_keys(b))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def first_name_gender(name: str) -> Gender | None:
    """``"m"`` or ``"f"`` when every full name the written name may stand for
    has that gender; None for ``Саша``, ``Женя``, ``Валя`` and unknown names."""
    genders = _first_names().gender
    found = {genders.get(key) for key in first_name_keys(name)}
    if len(found) == 1:
        return found.pop()
    return None


# -------------------------------------------------------------------- surnames


@dataclass(frozen=True)
class _SurnameEnding:
    skeleton: str
    base: str  # the class's first masculine ending, as a skeleton
    gender: Gender


@dataclass(frozen=True)
class _SurnameRules:
    endings: tuple[_SurnameEnding, ...]  # longest first
    indeclinable: tuple[str, ...]
    min_stem: int
    written_adjectival: tuple[str, ...]


def _skeletons(forms: Iterable[str]) -> list[str]:
    return [_skeleton(fold(form)) for form in forms]


@functools.lru_cache(maxsize=1)
def _surname_rules() -> _SurnameRules:
    path = NAMES_DIR / "surname_endings.yaml"
    data = load_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise _data_error(path, "expected classes: with masculine and feminine endings")
    endings: dict[str, _SurnameEnding] = {}
    for i, item in enumerate(data["classes"]):
        if not isinstance(item, dict) or set(item) != {"masculine", "feminine"}:
            raise _data_error(path, f"classes[{i}]: expected masculine: and feminine:")
        masculine = _skeletons(_name_list(path, item["masculine"], f"classes[{i}].masculine"))
        feminine = _skeletons(_name_list(path, item["feminine"], f"classes[{i}].feminine"))
        if not masculine or not feminine:
            raise _data_error(path, f"classes[{i}]: both lists need an ending")
        for skeletons, sex in ((masculine, "m"), (feminine, "f")):
            for skeleton in skeletons:
                endings.setdefault(skeleton, _SurnameEnding(skeleton, masculine[0], sex))  # type: ignore[arg-type]
    min_stem = data.get("min_stem", 2)
    if not isinstance(min_stem, int) or min_stem < 1:
        raise _data_error(path, "min_stem must be a positive number")
    return _SurnameRules(
        endings=tuple(sorted(endings.values(), key=lambda e: -len(e.skeleton))),
        indeclinable=tuple(_skeletons(_name_list(path, data.get("indeclinable"), "indeclinable"))),
        min_stem=min_stem,
        written_adjectival=tuple(fold(w) for w in _name_list(path, data.get("written_adjectival"),
                                                                 "written_adjectival")),
    )


def _surname_word(word: str) -> tuple[str, Gender | None]:
    skeleton = _skeleton(word)
    rules = _surname_rules()
    if not skeleton or skeleton.endswith(rules.indeclinable):
        return skeleton, None
    for ending in rules.endings:
        if not skeleton.endswith(ending.skeleton):
            continue
        stem = skeleton[: len(skeleton) - len(ending.skeleton)]
        if len(stem) < rules.min_stem:
            continue
        if ending.skeleton == "i" and (stem[-1] not in _CONSONANTS or not word.endswith(rules.written_adjectival)):
            continue  # -и of Georgian, Italian... surnames is not -ий
        return stem + ending.base, ending.gender
    return skeleton, None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def surname_info(name: str) -> tuple[str, Gender | None]:
    """``(base, gender)`` of a surname: the masculine and feminine forms of one
    family name share the base (Иванов, Иванова, Ivanova -> ``ivanov``;
    Троцкий, Trotskaya -> ``trotski``), the gender is that of the form, and
    None for surnames that do not change (Шевченко, Ким, Черных, Дюма). The
    base is in ``latin_key`` space. A double surname gives the bases of its
    parts joined by a space and the gender its parts agree on.

    Same base and opposite genders suggest relatives, not one person."""
    words = fold(name)
    if not words:
        return "", None
    bases: list[str] = []
    genders: set[Gender] = set()
    for word in _WORD_SPLIT_RE.split(words):
        base, gender = _surname_word(word)
        if base:
            bases.append(_render(base))
        if gender is not None:
            genders.add(gender)
    return " ".join(bases), (genders.pop() if len(genders) == 1 else None)


# ----------------------------------------------------------------- patronymics


@dataclass(frozen=True)
class _Patronymics:
    #: skeleton of a patronymic -> (father's canonical first name, gender)
    known: dict[str, tuple[str, Gender]]
    #: skeletons of endings that mark a patronymic of any name, longest first
    unknown_endings: tuple[tuple[str, Gender], ...]
    particles: dict[str, Gender]


def _suffix_pairs(path: Path, value: object, where: str) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in value
    ):
        raise _data_error(path, f"{where}: expected a list of [masculine, feminine]")
    return [(m, f) for m, f in value]


@functools.lru_cache(maxsize=1)
def _patronymics() -> _Patronymics:
    path = NAMES_DIR / "patronymics.yaml"
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise _data_error(path, "expected a mapping")
    rules = {fold(str(end)) if end else "": _suffix_pairs(path, pairs, f"rules.{end}")
             for end, pairs in (data.get("rules") or {}).items()}
    if "" not in rules:
        raise _data_error(path, 'rules: a rule for "" (any other name) is needed')
    rule_ends = sorted(rules, key=len, reverse=True)
    exceptions = {fold(str(name)): _suffix_pairs(path, pairs, f"exceptions.{name}")
                  for name, pairs in (data.get("exceptions") or {}).items()}

    names = _first_names()
    candidates: dict[str, set[tuple[str, Gender]]] = {}
    for written, father in names.male_names:
        written = fold(written)
        pairs = exceptions.get(written)
        if pairs is None:
            end = next(e for e in rule_ends if written.endswith(e))
            stem = written[: len(written) - len(end)]
            pairs = [(stem + m, stem + f) for m, f in rules[end]]
        for masculine, feminine in pairs:
            candidates.setdefault(_skeleton(fold(masculine)), set()).add((father, "m"))
            candidates.setdefault(_skeleton(fold(feminine)), set()).add((father, "f"))
    # A patronymic two fathers' names lead to keeps the first in sorted order.
    known = {key: min(found) for key, found in candidates.items()}

    unknown = data.get("unknown_endings") or {}
    particles = data.get("particles") or {}
    unknown_endings = [(s, "m") for s in _skeletons(_name_list(path, unknown.get("masculine"), "unknown_endings"))]
    unknown_endings += [(s, "f") for s in _skeletons(_name_list(path, unknown.get("feminine"), "unknown_endings"))]
    particle_genders: dict[str, Gender] = {}
    for section, sex in (("masculine", "m"), ("feminine", "f")):
        for word in _name_list(path, particles.get(section), f"particles.{section}"):
            particle_genders[_skeleton(fold(word))] = sex  # type: ignore[assignment]
    return _Patronymics(
        known=known,
        unknown_endings=tuple(sorted(unknown_endings, key=lambda e: -len(e[0]))),  # type: ignore[arg-type]
        particles=particle_genders,
    )


def _father_key(name: str) -> str:
    keys = first_name_keys(name)
    return min(keys) if keys else ""


@functools.lru_cache(maxsize=_CACHE_SIZE)
def patronymic_info(word: str) -> tuple[str, Gender] | None:
    """``(father's first-name key, gender)`` of a patronymic, None if the word
    is not one: Михайловна and Mikhailovna -> ("михаил", "f"), Сергеевич ->
    ("сергей", "m"), Ильинична -> ("илья", "f"). The key is the one
    ``first_name_keys`` gives for the father's name; for a name missing from the
    data it is guessed from the patronymic without its ending. Turkic forms
    (``Мамед оглы``, ``Ильхам кызы``) are read too."""
    words = fold(word)
    if not words:
        return None
    table = _patronymics()
    parts = _WORD_SPLIT_RE.split(words)
    if len(parts) == 2:
        gender = table.particles.get(_skeleton(parts[1]))
        father = _father_key(parts[0])
        return (father, gender) if gender is not None and father else None
    if len(parts) != 1:
        return None
    skeleton = _skeleton(words)
    found = table.known.get(skeleton)
    if found is not None:
        return found
    for ending, gender in table.unknown_endings:
        stem = skeleton[: len(skeleton) - len(ending)]
        if skeleton.endswith(ending) and len(stem) >= 2:
            return UNKNOWN_PREFIX + _render(stem), gender
    return None


# ---------------------------------------------------------------------- e-mail


@dataclass(frozen=True)
class _Provider:
    domain: str
    ignore_dots: bool = False
    hyphen_is_dot: bool = False
    plus_tags: bool = False


@functools.lru_cache(maxsize=1)
def _providers() -> dict[str, _Provider]:
    path = DATA_DIR / "email_providers.yaml"
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise _data_error(path, "expected a mapping of provider to its rules")
    providers: dict[str, _Provider] = {}
    flags = ("ignore_dots", "hyphen_is_dot", "plus_tags")
    for name, rules in data.items():
        if not isinstance(rules, dict) or set(rules) - {"domains", *flags}:
            raise _data_error(path, f"{name}: expected domains: and the flags {', '.join(flags)}")
        domains = [str(d).strip().lower() for d in _name_list(path, rules.get("domains"), f"{name}.domains")]
        if not domains:
            raise _data_error(path, f"{name}: domains: needs at least one domain")
        provider = _Provider(domains[0], *(rules.get(flag) is True for flag in flags))
        for domain in domains:
            if domain in providers:
                raise _data_error(path, f"{domain} is listed twice")
            providers[domain] = provider
    return providers


_EMAIL_TRIM = " \t\r\n<>\"'()[]{}«»,;:"


@functools.lru_cache(maxsize=_CACHE_SIZE)
def canonical_email(email: str) -> str:
    """The mailbox an address delivers to, as one spelling: lower case, typos
    of common domains fixed, alias domains and the local-part rules of the
    provider applied (``D.R.Omanova+shop@googlemail.com`` ->
    ``dromanova@gmail.com``, ``Ivan-Petrov@ya.ru`` -> ``ivan.petrov@yandex.ru``).
    ``""`` when the text is not an address."""
    if not email:
        return ""
    text = email.strip(_EMAIL_TRIM).lower()
    if text.startswith("mailto:"):
        text = text[7:].strip(_EMAIL_TRIM)
    local, at, domain = text.rpartition("@")
    local = local.strip()
    domain = domain.strip().strip(".")
    if not at or not local or not domain or " " in local or " " in domain:
        return ""
    domain = _email_domain_typos().get(domain, domain)
    provider = _providers().get(domain)
    if provider is not None:
        domain = provider.domain
        if provider.plus_tags:
            local = local.split("+", 1)[0]
        if provider.ignore_dots:
            local = local.replace(".", "")
        if provider.hyphen_is_dot:
            local = local.replace("-", ".")
        if not local:
            return ""
    return f"{local}@{domain}"


def email_local_key(email: str) -> str:
    """The local part of ``canonical_email``: the same for every spelling of one
    mailbox, for blocking and comparing records (``ivan.petrov@yandex.ru`` and
    ``ivan-petrov@ya.ru`` -> ``ivan.petrov``). ``""`` for a non-address."""
    return canonical_email(email).rpartition("@")[0]
