"""Comparing two records: features, blocking keys and an explainable score.

A record's canonical values become a :class:`Profile`: canonical mailboxes,
phones, name keys that see through diminutives, transliteration and ё/е
(``hub.names``), gender hints, birthday and city. Two profiles are compared field
by field in the Fellegi–Sunter way: each field adds a weight, the log2 of how much
more likely its outcome is for one person than for two (agreement adds, disagreement
subtracts, a missing value adds nothing). The sum, shifted by the prior odds of two
records that share a blocking key being one person, is the match probability.

Some evidence does not weigh, it vetoes: one surname in its male and female forms
(Иванов and Иванова are relatives), different patronymics; and, where the two share
a phone or a mailbox (the way relatives meet), first names that cannot be one name
(Пётр and Мария on the family phone), different birthdays, opposite genders. A veto
keeps two records apart whatever else agrees. Without a shared phone or mailbox those
last three weigh heavily against instead: records have errors.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rapidfuzz.distance import OSA, JaroWinkler

from hub import names
from hub.model import NOT_IDENTITY_ATTRIBUTES
from hub.normalize import DATA_DIR, phone_kind

#: Log2 odds that two records sharing a blocking key are one person, before any
#: field is compared. Fields then have to earn a merge: an equal phone or mailbox
#: alone does, a full name alone does not (namesakes are common).
PRIOR = -7.0

#: Weights in bits (log2 of m/u).
W_EMAIL_SAME = 14.0  # one mailbox: shared family addresses exist, hence the vetoes
W_EMAIL_LOCAL = 7.0  # the same distinctive local part at another provider
W_EMAIL_LOCAL_COMMON = 2.0  # one that several people use
W_EMAIL_DIFF = -1.5  # people keep several addresses
W_PHONE_SAME = 13.0
W_PHONE_DIFF = -2.0
#: a mobile and a landline: a person has both (the home phone in one record, the mobile in
#: another), so they do not contradict each other
W_PHONE_OTHER_KIND = -0.5
W_FIRST_SAME = 4.0  # one full name (also through transliteration)
W_FIRST_VARIANT = 3.0  # a diminutive or variant of it: Даша ~ Дарья
W_FIRST_CLOSE = 1.0  # a typo away
W_FIRST_DIFF = -6.0  # a typo too far to call, not a veto
W_LAST_SAME = 6.0  # how often the surname and first name occur together is unknown
W_LAST_UNIQUE = 9.0  # no one else in the base has this surname with this first name
W_LAST_RARE = 6.0  # a few do
W_LAST_COMMON = 4.0  # many do: Иванов Александр
#: A full name held by at most this many people (the pair itself) is unique; with no
#: identifier contradicting it, it is as strong as an agreeing phone.
UNIQUE_NAME = 2
RARE_NAME = 4
#: ... and when fewer than this many people with the surname are expected to share the
#: first name by chance (an Елена among nine Ситковых: 0.36, too many to be sure).
NAMESAKES_EXPECTED = 0.3
W_LAST_CLOSE = 2.0
W_LAST_DIFF = -4.0  # women change surnames at marriage: not a veto
W_MIDDLE_SAME = 3.0
W_MIDDLE_CLOSE = 0.0
W_MIDDLE_INITIAL = 1.0
W_MAIL_FIRST = 1.0  # a nameless record's address starts with the other's first name or initial
W_MIDDLE_INITIAL_DIFF = -3.0
W_BIRTHDAY_SAME = 8.0
W_BIRTHDAY_TYPO = -3.0  # one digit off or day and month swapped
W_BIRTHDAY_DIFF = -10.0  # a veto where a phone or mailbox is shared
W_GENDER_DIFF = -4.0  # likewise
W_CITY_SAME = 1.0
W_CITY_DIFF = -0.5
#: Custom ``x_`` attributes a mapping fills (an address, a client number...): weak alone;
#: two or more agreeing count as much as an identifier.
W_ATTRIBUTE_SAME = 3.0  # a value as rare as that or rarer counts towards STRONG_ATTRIBUTES
W_ATTRIBUTE_MAX = 6.0
W_ATTRIBUTE_ID_MAX = 10.0  # a personal number in common is nearly as telling as a phone
W_ATTRIBUTE_ID_DIFF = -2.0  # two different personal numbers: as much as two phones
W_ATTRIBUTE_DIFF = 0.0  # a differing value (a timestamp, a status) says little
STRONG_ATTRIBUTES = 2
_MAX_ATTRIBUTE_CHARS = 200

#: Jaro–Winkler similarity (on the transliteration-proof key) that counts as a typo.
CLOSE = 0.9
#: Below this two first names are certainly different names.
FAR = 0.8

#: Local parts too common to identify anyone by themselves.
_GENERIC_LOCALS = frozenset(
    ["info", "admin", "mail", "office", "sales", "hello", "contact", "support", "manager", "director", "buh", "zakaz", "post", "shop", "order", "noreply", "no-reply", "test", "user", "email", "box", "inbox"]
)
_MIN_LOCAL = 5
#: d.romanova, d_romanova and dromanova are one local part for comparison
_SEPARATORS = re.compile(r"[._-]+")


#: Profiles kept by their values: a record is profiled as a candidate, then for its
#: identifiers, then as a stored record of its contact in the next batches.
PROFILE_CACHE = 32_768


#: Profiles and evidence are never changed once made, but not ``frozen``: a frozen
#: dataclass sets each field through ``object.__setattr__``, ten times slower to build,
#: and a sync builds one evidence item per field of every pair it compares.
@dataclass(slots=True, unsafe_hash=True)
class Profile:
    """What one record says about a person, prepared for comparison."""

    # sorted tuples, not sets: a record holds one or two of each, and a base keeps many
    # profiles in memory (a one-element frozenset is four times a one-element tuple)
    emails: tuple[str, ...] = ()
    locals: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    first: str = ""  # transliteration-proof key of the written first name
    #: the first name as written, folded (lower case, ё as е): a typo is one letter off in
    #: it, where the key may be two («Наалья»: nalia, natalia)
    first_written: str = ""
    first_keys: frozenset[str] = frozenset()
    initial: str = ""  # ... of the first name's initial when only that is written («Иванов Ю. С.»)
    last: str = ""  # surname base (male form), transliteration-proof
    last_raw: str = ""  # the surname as written, transliteration-proof
    last_gender: str | None = None
    middle: str = ""  # the father's name the patronymic is made of
    middle_gender: str | None = None
    gender: str | None = None
    birthday: str = ""
    city: str = ""
    #: surnames the e-mail local parts are made of (``lyubnikova61`` -> liubnikov)
    mail_surnames: tuple[str, ...] = ()
    #: a nameless record's first name or initial as its address starts with it
    #: (``a.bulycheva``: ``a``; ``shamil_omar38``: ``shamil``), a hint only
    mail_first: str = ""
    #: custom attributes: (name, folded value)
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def has_name(self) -> bool:
        return bool(self.first or self.last)


@dataclass(slots=True)
class Evidence:
    field: str
    level: str
    weight: float
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "level": self.level, "weight": self.weight, "detail": self.detail}


@dataclass(slots=True)
class Comparison:
    weight: float = PRIOR
    evidence: list[Evidence] = field(default_factory=list)
    #: why the two cannot be one person, if they cannot
    veto: str | None = None
    #: an identifier or the birthday agrees: without that, names alone never merge
    #: automatically (namesakes are common); they go to review at most
    strong: bool = False
    #: ... or a full name no one else holds does, with nothing to contradict it: an
    #: identifier that disagrees elsewhere on the two sides (:func:`across`) takes it back
    by_name: bool = False
    #: the full name agrees and nothing contradicts it, however many hold the name: were
    #: it theirs only, the name would join them (``by_name`` when it is)
    name_only: bool = False

    def add(self, field_: str, level: str, weight: float, detail: str = "") -> None:
        self.weight += weight
        self.evidence.append(Evidence(field_, level, weight, detail))

    @property
    def probability(self) -> float:
        if self.veto is not None:
            return 0.0
        return probability(self.weight)

    def verdict(self, merge_at: float, review_at: float) -> str:
        """``merge``, ``review`` or ``distinct`` at these thresholds."""
        p = self.probability
        if p >= merge_at and self.strong:
            return "merge"
        return "review" if p >= review_at else "distinct"


def probability(weight: float) -> float:
    if weight > 60:
        return 1.0
    if weight < -60:
        return 0.0
    return 1.0 / (1.0 + 2.0 ** (-weight))


# --------------------------------------------------------------------- profiles


def _texts(values: Mapping[str, Any], single: str, plural: str) -> list[str]:
    found = [str(v) for v in values.get(plural) or () if v]
    one = values.get(single)
    if one and str(one) not in found:
        found.append(str(one))
    return found


def profile(values: Mapping[str, Any]) -> Profile:
    """The comparable features of one record's normalized canonical values: the same for
    the values as read and as the store keeps them (JSON, other scalars as text: a date a
    spreadsheet cell holds)."""
    attributes = tuple(
        sorted(
            (key, str(value))
            for key, value in values.items()
            if key.startswith("x_") and value is not None and not isinstance(value, _CONTAINERS)
            and key not in NOT_IDENTITY_ATTRIBUTES
        )
    )
    first_text, last_text = _columns_in_order(str(values.get("first_name") or ""), str(values.get("last_name") or ""))
    return _profile(
        tuple(_texts(values, "email", "emails")),
        tuple(_texts(values, "phone", "phones")),
        first_text,
        last_text,
        str(values.get("middle_name") or ""),
        str(values.get("birthday") or ""),
        str(values.get("city") or ""),
        attributes,
    )


_CONTAINERS = (list, tuple, dict, set, frozenset)


@functools.lru_cache(maxsize=65536)
def _columns_in_order(first: str, last: str) -> tuple[str, str]:
    """First and last name as a source's two columns hold them, or swapped when they
    were typed the wrong way round: a surname form (Neverova, Шпаков) that is no first
    name in the first-name column and a first name that is no surname form in the other
    («Neverova», «Katya»)."""
    if not (first.strip() and last.strip()) or len(first.split()) != 1 or len(last.split()) != 1:
        return first, last
    gender = names.surname_info(first)[1]
    if gender is None or _names_a_first(first) or not _names_a_first(last):
        return first, last
    # «Ljubov» has a surname's ending too: then the first name's gender must be the surname's
    if names.surname_info(last)[1] is not None and names.first_name_gender(last) != gender:
        return first, last
    return last, first


def _names_a_first(word: str) -> bool:
    """Whether the name tables know the word as a first name (any form of one)."""
    return any(not k.startswith("~") for k in names.first_name_keys(word))


@functools.lru_cache(maxsize=PROFILE_CACHE)
def _profile(
    email_texts: tuple[str, ...], phone_texts: tuple[str, ...], first_text: str, last_text: str, middle_text: str,
    birthday: str, city: str, attributes: tuple[tuple[str, str], ...],
) -> Profile:
    emails = {names.canonical_email(e) for e in email_texts}
    emails.discard("")
    local_parts = set()
    for email in emails:
        local = _SEPARATORS.sub("", names.email_local_key(email))
        if len(local) >= _MIN_LOCAL and local not in _GENERIC_LOCALS:
            local_parts.add(local)
    mail_surnames = {s for email in emails for s in _mail_surnames(names.email_local_key(email))}
    mail_first = ""
    if not first_text.strip() and not last_text.strip():
        # a nameless record: tatyana.belousova@... names its holder
        found = sorted({n for text in email_texts if (n := _mail_name(text.strip().lower().rpartition("@")[0]))})
        if len(found) == 1:
            first_text, last_text = found[0]
        else:
            hints = {h for text in email_texts if (h := _mail_first(text.strip().lower().rpartition("@")[0]))}
            mail_first = hints.pop() if len(hints) == 1 else ""
    first, first_keys, first_gender = _first(first_text)
    initial = _initial(first_text) if not first else ""
    last, last_gender = _last(last_text)
    middle, middle_gender = _middle(middle_text)
    gender = _agreed_gender(first_gender, last_gender, middle_gender)
    return Profile(
        emails=tuple(sorted(emails)),
        locals=tuple(sorted(local_parts)),
        phones=tuple(sorted(set(phone_texts))),
        first=first,
        first_written=_written(first_text) if first else "",
        first_keys=first_keys,
        initial=initial,
        last=last,
        last_raw=names.latin_key(last_text) if last_text.strip() else "",
        last_gender=last_gender,
        middle=middle,
        middle_gender=middle_gender,
        gender=gender,
        mail_surnames=tuple(sorted(mail_surnames)),
        mail_first=mail_first,
        birthday=birthday,
        city=names.fold(city),
        attributes=tuple(sorted({
            (key, " ".join(value.casefold().split()))
            for key, value in attributes
            if value.strip() and len(value) <= _MAX_ATTRIBUTE_CHARS
        })),
    )


def clear_profiles() -> None:
    """Forget the profiles kept by their values."""
    _profile.cache_clear()


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    """The values two sorted tuples share, sorted."""
    return tuple(x for x in a if x in b) if a and b else ()


@functools.lru_cache(maxsize=65536)
def _first(text: str) -> tuple[str, frozenset[str], str | None]:
    if not text.strip():
        return "", frozenset(), None
    word = text.split()[0]
    key = names.latin_key(word)
    if not key or len(key) < 2 or _initial(word):  # an initial: compared as one (Ю. is "iu")
        return "", frozenset(), None
    keys = names.first_name_keys(word)
    gender = names.first_name_gender(word)
    if all(k.startswith("~") for k in keys):
        meant = names.misspelt_first_name(key)
        if meant:
            keys = meant
    return key, keys, gender


def _initial(text: str) -> str:
    """The transliteration-proof key of a first name written as an initial («Ю.», «A»):
    ``iu``, ``a``; empty when the name is written out."""
    words = text.split()
    letter = words[0].rstrip(".") if words else ""
    return names.latin_key(letter) if len(letter) == 1 and letter.isalpha() else ""


def _initial_fits(initial: str, b: Profile) -> bool:
    """``b``'s first name, or its initial, starts with ``initial``, or so does a full form
    of it: «Клочин А. И.» and «Тёма» (Артём), «Иванов А.» and «Шура»."""
    if not initial:
        return False
    if b.initial:
        return initial.startswith(b.initial) or b.initial.startswith(initial)
    if b.first.startswith(initial):
        return True
    # a short form's full forms all start with it (Тёма: Артём, Артемий), not some (Слава)
    full = [_full_form_key(k) for k in b.first_keys if not k.startswith("~")]
    return bool(full) and all(key.startswith(initial) for key in full)


@functools.lru_cache(maxsize=4096)
def _full_form_key(key: str) -> str:
    return names.latin_key(key)


@functools.lru_cache(maxsize=65536)
def _last(text: str) -> tuple[str, str | None]:
    if not text.strip():
        return "", None
    base, gender = names.surname_info(text)
    return base, gender


@functools.lru_cache(maxsize=65536)
def _middle(text: str) -> tuple[str, str | None]:
    if not text.strip():
        return "", None
    initial = _initial(text)
    if initial:  # «Дубинина Г. Ю.»: the father's initial (Ю. = iu), marked as one
        return initial + ".", None
    info = names.patronymic_info(text.split()[0])
    if info is None:
        return names.latin_key(text), None
    father, gender = info
    return names.latin_key(father), gender


_LOCAL_WORDS = re.compile(r"[a-z]{4,}")
_NAME_LOCAL = re.compile(r"([a-z]{3,})[._-]([a-z]{3,})")
_MAIL_WORDS = re.compile(r"[a-z]+")


@functools.lru_cache(maxsize=65536)
def _mail_name(local: str) -> tuple[str, str] | None:
    """First name and surname of a local part made of exactly those two words, in either
    order (``tatyana.belousova``, ``belousova_tatyana``); None for anything else."""
    match = _NAME_LOCAL.fullmatch(local.lower())
    if match is None:
        return None
    known = names.known_first_names()
    x, y = match.groups()
    x_first, y_first = names.latin_key(x) in known, names.latin_key(y) in known
    if x_first == y_first:  # neither, or both (anna.maria): no telling which is the surname
        return None
    first, last = (x, y) if x_first else (y, x)
    return (first, last) if names.surname_info(last)[0] else None


@functools.lru_cache(maxsize=65536)
def _mail_first(local: str) -> str:
    """The first name or initial a local part of two or more words starts with
    (``a.bulycheva``, ``shamil_omar38``); empty for anything else."""
    words = _MAIL_WORDS.findall(local)
    if len(words) < 2:
        return ""
    word = words[0]
    if len(word) == 1:
        return names.latin_key(word)  # y. is Ю/Й (iu), as a profile's initial
    return word if names.latin_key(word) in names.known_first_names() else ""


@functools.lru_cache(maxsize=65536)
def _mail_surnames(local: str) -> tuple[str, ...]:
    """Surname bases the words of an e-mail local part could be (``d.romanova`` -> romanov)."""
    return tuple(sorted({names.surname_info(word)[0] for word in _LOCAL_WORDS.findall(local.lower())} - {""}))


#: Raise when :func:`blocking_keys`, :func:`keys_of` or the profile they read change what
#: they make of the same values: stores then rebuild their identifiers (:func:`keys_version`).
KEYS_REVISION = 3  # 3: first and last name columns typed the wrong way round are read swapped
#: The data the keys are made with: name tables, transliteration, e-mail providers and typos.
_KEY_DATA = ("names/*.yaml", "email_domain_typos.yaml", "email_providers.yaml")


@functools.lru_cache(maxsize=1)
def keys_version() -> str:
    """What the identifiers of a store were made with: a store holding keys of another
    version is re-keyed before a sync (a release with more short forms finds more)."""
    digest = hashlib.sha256(f"keys {KEYS_REVISION}".encode())
    for pattern in _KEY_DATA:
        for path in sorted(DATA_DIR.glob(pattern)):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def blocking_keys(p: Profile) -> set[tuple[str, str]]:
    """Keys under which candidates are looked up: records that share none are never compared."""
    keys: set[tuple[str, str]] = {("email", e) for e in p.emails}
    keys.update(("phone", phone) for phone in p.phones)
    keys.update(("local", local) for local in p.locals)
    if p.last and p.first_keys:
        keys.update(("name", f"{p.last}|{k}") for k in p.first_keys)
    elif p.first_keys and p.mail_surnames:  # "Polina" <polina.kryukyh@...>: the surname is in the address
        keys.update(("name", f"{s}|{k}") for s in p.mail_surnames for k in p.first_keys)
    if p.last:
        keys.add(("surname", p.last))
    if p.first and p.last:  # "Miller David" against "David Miller"
        keys.add(("surname", p.first))
    if p.birthday:
        keys.add(("birthday", p.birthday))
    keys.update(("attribute", f"{key}={value}") for key, value in p.attributes if id_like(value))
    return keys


_DATE_LIKE = re.compile(r"\d{1,4}[-./:]\d{1,2}[-./:]\d{1,4}")


@functools.lru_cache(maxsize=65536)
def id_like(value: str) -> bool:
    """A custom value that looks like a personal number (a client id, a passport number),
    not a date or a time."""
    return sum(ch.isdigit() for ch in value) >= 5 and len(value) <= 40 and not _DATE_LIKE.search(value)


def keys_of(values: Mapping[str, Any], p: Profile | None = None) -> set[tuple[str, str]]:
    """The identifiers a contact is found by (``hub show``) and blocked under; ``p`` is
    ``profile(values)`` when the caller has it already."""
    found: set[tuple[str, str]] = {("email", e) for e in _texts(values, "email", "emails")}
    found.update(("phone", phone) for phone in _texts(values, "phone", "phones"))
    if p is None:
        p = profile(values)
    found.update(("email", e) for e in p.emails)
    found.update(key for key in blocking_keys(p) if key[0] != "email")
    return found


# ------------------------------------------------------------------- comparing


def _similar(a: str, b: str) -> float:
    return JaroWinkler.similarity(a, b)


AttributeWeight = Callable[[str, str], float]


class Frequencies(Protocol):
    """How common names and addresses are in the base: what makes an agreement telling."""

    def holders(self, key: str) -> int | None:
        """People holding a full-name key (``surname|first name``) or an e-mail local part."""

    def namesakes(self, last: str, first_key: str) -> float | None:
        """People expected to have this first name among those with this surname."""


def compare(
    a: Profile, b: Profile, frequencies: Frequencies | None = None, attribute_weight: AttributeWeight | None = None
) -> Comparison:
    """Score two records field by field. ``frequencies`` tells how common a full name or a
    local part is (rare ones weigh more), ``attribute_weight`` the weight of a custom value."""
    result = Comparison()
    contradicted = _compare_contacts(a, b, result, frequencies)
    # a phone or mailbox in common is how relatives meet: there, a different first name,
    # birthday or gender proves two people; elsewhere it only weighs (data has errors)
    shared = bool(_common(a.phones, b.phones) or _common(a.emails, b.emails))
    if a.attributes and b.attributes:
        contradicted = _compare_attributes(a, b, result, attribute_weight) or contradicted
    order_unclear = _compare_names(a, b, result, frequencies, contradicted, shared)
    _compare_birthday(a, b, result, shared)
    if a.city and b.city:
        if a.city == b.city or names.latin_key(a.city) == names.latin_key(b.city):  # Tver is Тверь
            result.add("city", "same", W_CITY_SAME, a.city)
        else:
            result.add("city", "different", W_CITY_DIFF, f"{a.city} / {b.city}")
    # which word is the first name was a guess: it tells no gender («Яна Ким» read as Ким)
    gender_a, gender_b = (_gender_beyond_first(a), _gender_beyond_first(b)) if order_unclear else (a.gender, b.gender)
    if gender_a and gender_b and gender_a != gender_b:
        if shared:
            result.veto = result.veto or "one is a man, the other a woman"
        else:
            result.add("gender", "different", W_GENDER_DIFF, f"{gender_a} / {gender_b}")
    return result


def _one_name_within(a: Profile, b: Profile) -> bool:
    """Whether the words of one record's name are all in the other's (whatever their
    roles): «Lucia» in «Kaya Lucia»; not «Яна Ким» and «Ким Иван», one word in common."""
    words_a, words_b = {w for w in (a.first, a.last_raw) if w}, {w for w in (b.first, b.last_raw) if w}
    return words_a <= words_b or words_b <= words_a


def _gender_beyond_first(p: Profile) -> str | None:
    """The gender the surname and patronymic tell, when they agree."""
    return _agreed_gender(p.last_gender, p.middle_gender)


def _agreed_gender(*hints: str | None) -> str | None:
    """The one gender the parts of a name tell; None when they tell none or disagree."""
    genders = {g for g in hints if g}
    return genders.pop() if len(genders) == 1 else None


def _compare_contacts(a: Profile, b: Profile, result: Comparison, frequencies: Frequencies | None = None) -> bool:
    """Phones and mailboxes; whether one of them disagrees. A local part at another
    provider counts only when no one else uses it (``semen1977`` is common)."""
    contradicted = False
    if a.emails and b.emails:
        same = _common(a.emails, b.emails)
        if same:
            result.add("email", "same", W_EMAIL_SAME, same[0])
            result.strong = True
        elif local_parts := _common(a.locals, b.locals):
            local = local_parts[0]
            holders = frequencies.holders(local) if frequencies else None
            if holders is None or holders <= UNIQUE_NAME:
                # like a full name (d.sedov@mail.ru and d.sedov@yandex.ru can be two people):
                # it adds weight, names must agree for a merge
                result.add("email", "same local part", W_EMAIL_LOCAL, local)
            else:
                result.add("email", f"same local part, {holders} people use it", W_EMAIL_LOCAL_COMMON, local)
        else:
            result.add("email", "different", W_EMAIL_DIFF)
            contradicted = True
    if a.phones and b.phones:
        same = _common(a.phones, b.phones)
        if same:
            result.add("phone", "same", W_PHONE_SAME, same[0])
            result.strong = True
        else:
            weight, note = _phone_difference(a.phones, b.phones)
            result.add("phone", f"different{note}", weight)
            contradicted = contradicted or weight == W_PHONE_DIFF
    return contradicted


def _phone_difference(a: Iterable[str], b: Iterable[str]) -> tuple[float, str]:
    """Weight and note of two sets of phones with none in common. When every phone of one
    side is a mobile and every one of the other a landline (or the reverse), no two numbers
    of the same kind disagree: a person has both, so they hardly weigh and contradict nothing."""
    kinds_a = {phone_kind(x) for x in a}
    kinds_b = {phone_kind(x) for x in b}
    if None not in kinds_a and None not in kinds_b and len(kinds_a) == 1 and len(kinds_b) == 1 \
            and kinds_a != kinds_b:
        return W_PHONE_OTHER_KIND, ", a mobile and a landline"
    return W_PHONE_DIFF, ""


def _compare_names(
    a: Profile, b: Profile, result: Comparison, frequencies: Frequencies | None, contradicted: bool, shared: bool
) -> bool:
    """Names; whether the two records read the words of the name in different roles."""
    if _swapped(a, b):
        if a.first == b.last_raw and a.last_raw == b.first:
            result.add("full_name", "same, parts swapped", W_FIRST_SAME + W_LAST_SAME, f"{a.first} {a.last_raw}")
        else:
            result.add("full_name", "parts swapped, a typo", W_FIRST_SAME + W_LAST_CLOSE,
                       f"{a.first} {a.last_raw} ~ {b.last_raw} {b.first}")
        return True
    order_unclear = False
    first_agrees = False
    if a.first and b.first:
        if a.first == b.first:
            result.add("first_name", "same", W_FIRST_SAME, a.first)
            first_agrees = True
        elif a.first_keys & b.first_keys:
            result.add("first_name", "variant", W_FIRST_VARIANT, f"{a.first} ~ {b.first}")
            first_agrees = True
        elif ((a.last_raw and a.last_raw == b.first) or (b.last_raw and b.last_raw == a.first)) \
                and _one_name_within(a, b):
            # «Kaya Lucia» and «Lucia»: which word is the first name was a guess
            result.add("first_name", "same, name order unclear", W_FIRST_SAME, f"{a.first} / {b.first}")
            order_unclear = True
        elif not (_known(a) and _known(b)) and (
            _similar(a.first, b.first) >= CLOSE or _typo_of(a, b) or _typo_of(b, a)
        ):
            result.add("first_name", "typo", W_FIRST_CLOSE, f"{a.first} ~ {b.first}")
        else:
            result.add("first_name", "different", W_FIRST_DIFF, f"{a.first} / {b.first}")
            if shared and (_known(a) and _known(b) or _similar(a.first, b.first) < FAR):
                result.veto = result.veto or f"different first names ({a.first} / {b.first})"
    elif (a.initial or b.initial) and (a.initial or a.first) and (b.initial or b.first):
        # «Иванов Ю. С.»: the initial of the other's first name, or not
        x, y = a.initial or a.first, b.initial or b.first
        if _initial_fits(a.initial, b) or _initial_fits(b.initial, a):
            result.add("first_name", "initial agrees", W_MIDDLE_INITIAL, f"{x} ~ {y}")
        else:
            result.add("first_name", "initial differs", W_MIDDLE_INITIAL_DIFF, f"{x} / {y}")
            if shared:
                result.veto = result.veto or f"different first names ({x} / {y})"
    if first_agrees and (bool(a.last) != bool(b.last)):
        named, other = (a, b) if a.last else (b, a)
        if named.last in other.mail_surnames:  # "Поля" <polina.kryukyh@...> and Крюкых Полина
            _name_agreement(a, b, named.last, result, frequencies, contradicted, "in the e-mail address")
    if a.last and b.last:
        if a.last == b.last:
            if a.last_gender and b.last_gender and a.last_gender != b.last_gender:
                result.add("last_name", "other gender form", 0.0, a.last)
                result.veto = result.veto or f"male and female forms of one surname ({a.last}): relatives"
            elif first_agrees:
                _name_agreement(a, b, a.last, result, frequencies, contradicted, "same")
            else:
                result.add("last_name", "same", W_LAST_SAME, a.last)
        elif _similar(a.last, b.last) >= CLOSE:
            result.add("last_name", "typo", W_LAST_CLOSE, f"{a.last} ~ {b.last}")
        else:
            result.add("last_name", "different", W_LAST_DIFF, f"{a.last} / {b.last}")
    if a.middle and b.middle:
        if _middle_initial(a.middle) or _middle_initial(b.middle):  # an initial: «Зотикин В. В.»
            if _middle_fits(a.middle, b.middle):
                result.add("middle_name", "initial agrees", W_MIDDLE_INITIAL, f"{a.middle} ~ {b.middle}")
            else:
                result.add("middle_name", "initial differs", W_MIDDLE_INITIAL_DIFF, f"{a.middle} / {b.middle}")
                if shared:  # like two first names' initials: relatives share the phone
                    result.veto = result.veto or _patronymics_veto(a, b)
        elif a.middle == b.middle:
            result.add("middle_name", "same", W_MIDDLE_SAME, a.middle)
        elif _similar(a.middle, b.middle) >= CLOSE:
            result.add("middle_name", "typo", W_MIDDLE_CLOSE, f"{a.middle} ~ {b.middle}")
        else:
            result.add("middle_name", "different", 0.0, f"{a.middle} / {b.middle}")
            if _patronymics_known(a, b):  # «Алексевена» is a typo of some patronymic, not another one
                result.veto = result.veto or _patronymics_veto(a, b)
    if a.mail_first or b.mail_first:
        _compare_mail_first(a, b, result)
    return order_unclear


def _compare_mail_first(a: Profile, b: Profile, result: Comparison) -> None:
    """A nameless record whose address starts with a first name or an initial
    («a.bulycheva@») against a named one: whose mailbox it more likely is, when a couple
    shares it. A hint that weighs a little, never a veto (an address may be anyone's)."""
    hinted, other = (a, b) if a.mail_first else (b, a)
    if other.mail_first or not (other.first or other.initial):
        return
    word = hinted.mail_first
    if len(word) == 1:
        fits = _initial_fits(word, other)
    else:
        key, keys, _gender = _first(word)
        fits = bool(key) and (key == other.first or bool(keys & other.first_keys) or (bool(other.initial) and any(
            k.startswith(other.initial) for k in (key, *(_full_form_key(k) for k in keys if not k.startswith("~"))))))
    result.add("first_name", "agrees with the e-mail address" if fits else "differs from the e-mail address",
               W_MAIL_FIRST if fits else -W_MAIL_FIRST, f"{word} / {other.first or other.initial}")


def _swapped(a: Profile, b: Profile) -> bool:
    """One wrote "David Miller", the other "Miller David" and the split guessed differently;
    one of the two words may be a typo away ("Garia Nora", "Nora Garcia")."""
    if not (a.first and b.first and a.last_raw and b.last_raw and a.first != b.first):
        return False
    first_as_last, last_as_first = a.first == b.last_raw, a.last_raw == b.first
    if first_as_last and last_as_first:
        return True
    if first_as_last:
        x, y = a.last_raw, b.first
    elif last_as_first:
        x, y = a.first, b.last_raw
    else:
        return False
    # a typo away, and not two first names of their own, nor a name's male and female
    # forms (Martin / Martina, whether the tables know them or not)
    return (_similar(x, y) >= CLOSE and not (_known_name(x) and _known_name(y))
            and x + "a" != y and y + "a" != x)


def _known_name(key: str) -> bool:
    return key in names.known_first_names()


def _middle_initial(middle: str) -> bool:
    return middle.endswith(".")


def _middle_fits(a: str, b: str) -> bool:
    """Two patronymics of which one or both are initials: one starts with the other."""
    x, y = a.rstrip("."), b.rstrip(".")
    return x.startswith(y) or y.startswith(x)


def _patronymics_known(a: Profile, b: Profile) -> bool:
    """Both patronymics read as patronymics (their ending tells a gender): only two such
    can prove two people; a word that is neither is likelier a typo."""
    return bool(a.middle_gender and b.middle_gender)


def _patronymics_veto(a: Profile, b: Profile) -> str:
    return f"different patronymics ({a.middle} / {b.middle})"


def sure_veto(a: Profile, b: Profile) -> str | None:
    """A veto :func:`compare` is sure to find, told without weighing the rest: two full
    patronymics that are neither the same nor a typo of one another (namesakes: the most
    common pair a batch meets). ``None`` says nothing: compare to know."""
    if (a.middle and b.middle and not _middle_initial(a.middle) and not _middle_initial(b.middle)
            and a.middle != b.middle and _patronymics_known(a, b)
            and _similar(a.middle, b.middle) < CLOSE and not _swapped(a, b)):
        return _patronymics_veto(a, b)
    return None


def _name_agreement(
    a: Profile, b: Profile, last: str, result: Comparison, frequencies: Frequencies | None, contradicted: bool,
    how: str,
) -> None:
    """First name and surname agree: the rarer the pair in the base, the more it weighs. It
    is as strong as a phone only if no one else holds it, no identifier contradicts it and
    the surname is rare enough that another holder of the first name is unlikely."""
    shared_keys = sorted(a.first_keys & b.first_keys)
    if not contradicted and not result.strong:
        result.name_only = True
    counts = [n for k in shared_keys if frequencies and (n := frequencies.holders(f"{last}|{k}"))]
    count = min(counts) if counts else None
    if count is None:
        result.add("last_name", how, W_LAST_SAME, last)
    elif count <= UNIQUE_NAME:
        result.add("last_name", f"{how}, unique with this first name", W_LAST_UNIQUE, last)
        expected = [e for k in shared_keys if frequencies and (e := frequencies.namesakes(last, k)) is not None]
        if not contradicted and (not expected or min(expected) <= NAMESAKES_EXPECTED) and not result.strong:
            result.strong = result.by_name = True
    elif count <= RARE_NAME:
        result.add("last_name", f"{how}, {count} people with this full name", W_LAST_RARE, last)
    else:
        result.add("last_name", f"{how}, {count} people with this full name", W_LAST_COMMON, last)


def _compare_attributes(a: Profile, b: Profile, result: Comparison, weight_of: AttributeWeight | None) -> bool:
    """Custom attributes; whether a personal number (client id...) disagrees."""
    mine = dict(a.attributes)
    agreeing = 0
    contradicted = False
    for key, value in sorted(b.attributes):
        if key not in mine:
            continue
        if mine[key] == value:
            weight = weight_of(key, value) if weight_of else W_ATTRIBUTE_SAME
            if weight >= W_ATTRIBUTE_SAME:
                agreeing += 1
            result.add(key, "same", weight, value)
        elif id_like(value) and id_like(mine[key]):
            result.add(key, "different number", W_ATTRIBUTE_ID_DIFF)
            contradicted = True
        else:
            result.add(key, "different", W_ATTRIBUTE_DIFF)
    if agreeing >= STRONG_ATTRIBUTES:
        result.strong = True
    return contradicted


def _typo_of(a: Profile, b: Profile) -> bool:
    """Whether ``a``'s first name, missing from the name tables, is one letter away from
    ``b``'s or from a form of the name ``b``'s stands for (Оьга ~ Оля, Епена ~ Лена)."""
    if _known(a) or len(a.first) < 3:
        return False
    if _written_typo(a, b):
        return True
    forms = {b.first}
    for full in b.first_keys:
        forms |= names.first_name_forms(full)
    return any(OSA.distance(a.first, form, score_cutoff=1) <= 1 for form in forms)


def _written_typo(a: Profile, b: Profile) -> bool:
    """Whether ``a``'s first name, missing from the name tables and written in Cyrillic, is
    one typo from ``b``'s as written or from the full name ``b``'s stands for («Наалья» and
    «Наташа»: Наталья; «Ллия» and «Лиля»: Лилия; «Маат» and «Марат»)."""
    word = a.first_written
    if len(word) < 4 or word.isascii():
        return False
    targets = {b.first_written} | {k for k in b.first_keys if not k.startswith("~")}
    return any(t and OSA.distance(word, t, score_cutoff=1) <= 1 for t in targets)


@functools.lru_cache(maxsize=65536)
def _written(text: str) -> str:
    words = names.fold(text).split()
    return words[0] if words else ""


def _known(p: Profile) -> bool:
    """Whether the first name is in the name tables (unknown ones get a ``~`` key)."""
    return bool(p.first_keys) and not any(k.startswith("~") for k in p.first_keys)


def _compare_birthday(a: Profile, b: Profile, result: Comparison, shared: bool) -> None:
    if not (a.birthday and b.birthday):
        return
    if a.birthday == b.birthday:
        result.add("birthday", "same", W_BIRTHDAY_SAME, a.birthday)
        result.strong, result.by_name, result.name_only = True, False, False
    elif _birthday_typo(a.birthday, b.birthday):
        result.add("birthday", "typo", W_BIRTHDAY_TYPO, f"{a.birthday} / {b.birthday}")
    else:
        result.add("birthday", "different", W_BIRTHDAY_DIFF, f"{a.birthday} / {b.birthday}")
        if shared:
            result.veto = result.veto or f"different birthdays ({a.birthday} / {b.birthday})"


def _birthday_typo(a: str, b: str) -> bool:
    if len(a) != len(b):
        return False
    if sum(x != y for x, y in zip(a, b)) == 1:
        return True
    pa, pb = a.split("-"), b.split("-")
    return len(pa) == 3 and len(pb) == 3 and pa[0] == pb[0] and pa[1] == pb[2] and pa[2] == pb[1]


def best(
    a: Iterable[Profile], b: Iterable[Profile], frequencies: Frequencies | None = None,
    attribute_weight: AttributeWeight | None = None, seen: dict[tuple[int, int], str | None] | None = None,
) -> Comparison:
    """The strongest comparison between any record of one group and any of the other,
    with what the other records of the two groups say against it (:func:`across`).
    ``seen`` collects each pair's veto for :func:`vetoed`."""
    mine, others = list(a), list(b)
    top = closest(mine, others, frequencies, attribute_weight, seen)
    if len(mine) > 1 or len(others) > 1:
        top = across(Side.of(mine), Side.of(others), top)
    return top


def closest(
    a: Sequence[Profile], b: Sequence[Profile], frequencies: Frequencies | None = None,
    attribute_weight: AttributeWeight | None = None, seen: dict[tuple[int, int], str | None] | None = None,
    *, quick: bool = False,
) -> Comparison:
    """The strongest comparison between any record of one group and any of the other,
    that alone (:func:`best` adds what the other records say). ``seen`` collects each
    pair's veto for :func:`vetoed`. ``quick``: a pair with a :func:`sure_veto` is not
    weighed (its comparison holds the veto alone), for callers that drop vetoed pairs."""
    top: Comparison | None = None
    for x in a:
        for y in b:
            reason = sure_veto(x, y) if quick else None
            found = Comparison(veto=reason) if reason else compare(x, y, frequencies, attribute_weight)
            if seen is not None:
                seen[_pair_key(x, y)] = found.veto
            if top is None or (found.veto is None, found.weight) > (top.veto is None, top.weight):
                top = found
    return top if top is not None else Comparison()


@dataclass(slots=True)
class Side:
    """The identifiers and birthdays of all the records of one side of a comparison."""

    phones: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    birthdays: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, profiles: Iterable[Profile]) -> Side:
        side = cls()
        for p in profiles:
            side.add(p)
        return side

    def add(self, p: Profile) -> None:
        self.phones.update(p.phones)
        self.emails.update(p.emails)
        if p.birthday:
            self.birthdays.add(p.birthday)

    def absorb(self, other: Side) -> None:
        self.phones |= other.phones
        self.emails |= other.emails
        self.birthdays |= other.birthdays


def across(a: Side, b: Side, comparison: Comparison) -> Comparison:
    """``comparison`` (of the closest two records of two groups) with the fields those two
    records did not both have, compared over all the records of each side: «Лобников Саша»
    with only a mailbox and «Шура Лобников» with only a phone agree on a rare full name,
    but if the first one's other records hold another phone, that phone disagrees. A
    field disagrees only when the two sides have values and none in common; its weight
    is the same as between two records, and it takes back a merge resting on the name
    alone. Returns ``comparison`` itself when nothing is added, else a copy."""
    seen = {e.field for e in comparison.evidence}
    added: list[Evidence] = []
    if "phone" not in seen and a.phones and b.phones and a.phones.isdisjoint(b.phones):
        weight, note = _phone_difference(a.phones, b.phones)
        added.append(Evidence("phone", f"different on other records{note}", weight))
    if "email" not in seen and a.emails and b.emails and a.emails.isdisjoint(b.emails):
        added.append(Evidence("email", "different on other records", W_EMAIL_DIFF))
    if "birthday" not in seen and a.birthdays and b.birthdays and a.birthdays.isdisjoint(b.birthdays):
        typo = any(_birthday_typo(x, y) for x in a.birthdays for y in b.birthdays)
        detail = f"{min(a.birthdays)} / {min(b.birthdays)}"
        added.append(Evidence("birthday", "typo on other records" if typo else "different on other records",
                              W_BIRTHDAY_TYPO if typo else W_BIRTHDAY_DIFF, detail))
    if not added:
        return comparison
    out = Comparison(comparison.weight, [*comparison.evidence, *added], comparison.veto, comparison.strong,
                     comparison.by_name, comparison.name_only)
    out.weight += sum(e.weight for e in added)
    if out.name_only and any(e.field in ("phone", "email") and e.weight <= W_EMAIL_DIFF for e in added):
        if out.by_name:
            out.strong = out.by_name = False
        out.name_only = False
    return out


def vetoed(
    a: Iterable[Profile], b: Iterable[Profile], seen: dict[tuple[int, int], str | None] | None = None
) -> str | None:
    """Why two groups of records cannot be one person: the first veto between any two.
    ``seen`` keeps the verdicts of pairs already compared, by the profiles' identity:
    a caller checking the same records again (a batch's clustering) passes one dict.
    A veto does not depend on how common names are, so :func:`closest` fills it too."""
    others = list(b)
    for x in a:
        for y in others:
            key = _pair_key(x, y)
            if seen is None or key not in seen:
                reason = sure_veto(x, y) or compare(x, y).veto
                if seen is not None:
                    seen[key] = reason
            else:
                reason = seen[key]
            if reason:
                return reason
    return None


def _pair_key(x: Profile, y: Profile) -> tuple[int, int]:
    """Two profiles' identities in either order (a veto holds both ways)."""
    i, j = id(x), id(y)
    return (i, j) if i <= j else (j, i)


__all__ = [
    "PRIOR",
    "Comparison",
    "Evidence",
    "Profile",
    "Side",
    "across",
    "best",
    "blocking_keys",
    "clear_profiles",
    "closest",
    "compare",
    "keys_of",
    "keys_version",
    "probability",
    "profile",
    "vetoed",
]
