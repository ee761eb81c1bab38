"""Normalization of canonical contact values.

Every value a source delivers passes through here after the mapping and before
validation and identity resolution:

* phones become E.164 (``+79161234567``); a cell may hold several numbers
* e-mail addresses are lower-cased, unwrapped (``mailto:``, ``Name <a@b.ru>``)
  and checked; obvious typos of common domains are fixed from a data file
* names are cleaned, re-cased when typed all upper or all lower case, Latin
  look-alike letters inside Cyrillic words are replaced, and a full name is
  split into last/first/middle name in whatever order it was written
* cities are mapped to one spelling through an alias table
* birthdays become ISO ``YYYY-MM-DD`` strings

Bad data never raises from ``Normalizer.normalize``: the value is dropped and a
problem is described. Processing is capped (``MAX_VALUE_CHARS``) so a huge cell
cannot stall a run.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

from hub.model import CANONICAL_FIELDS
from hub.yaml_loader import load_yaml

__all__ = [
    "MAX_VALUE_CHARS",
    "Normalizer",
    "clean_text",
    "fix_homoglyphs",
    "name_key",
    "normalization_version",
    "normalize_emails",
    "normalize_phones",
    "parse_date",
    "phone_kind",
    "split_full_name",
]

DATA_DIR = Path(__file__).parent / "data"

#: Longer values are not processed at all: they are dropped with a problem.
MAX_VALUE_CHARS = 10_000

#: Raise when mapping or normalization makes other values of the same cells: each
#: connector's rows are then read again once (:func:`normalization_version`).
NORMALIZATION_REVISION = 2  # 2: a nameless record takes the name its address was written with


@functools.lru_cache(maxsize=1)
def normalization_version() -> str:
    """What the stored values were made with: this code's revision, the data files under
    ``hub/data`` and the versions of phonenumbers and email-validator. It is part of every
    connector's fingerprint, so after an upgrade that changes it the next sync reads each
    source in full once: a row whose values come out different (a city alias or a phone
    rule added) is stored anew, the others only get their new row hash."""
    import email_validator

    digest = hashlib.sha256(f"normalization {NORMALIZATION_REVISION} phonenumbers {phonenumbers.__version__} "
                            f"email-validator {email_validator.__version__}".encode())
    for path in sorted(p for p in DATA_DIR.rglob("*") if p.is_file()):
        digest.update(path.relative_to(DATA_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


NAME_PARTS = ("last_name", "first_name", "middle_name")
NAME_FIELDS = ("full_name",) + NAME_PARTS

# --------------------------------------------------------------------------- text

# Characters removed outright: NUL and other C0 controls (except whitespace),
# DEL, zero-width characters, soft hyphen, bidi marks, BOM.
_REMOVED = [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x1C), 0x7F, 0xAD, 0x180E,
            *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070), 0xFEFF]
# Characters that become a plain space.
_SPACES = [0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]

_CLEAN_TABLE = {c: None for c in _REMOVED}
_CLEAN_TABLE.update({c: " " for c in _SPACES})
_CLEAN_TABLE.update({0x0B: " ", 0x0C: " "})
_NEEDS_CLEAN_RE = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_CLEAN_TABLE)) + "]")


# A character that survives ``clean_text``: neither whitespace nor one it removes.
_CONTENT_RE = re.compile("[^\\s" + "".join(re.escape(chr(c)) for c in sorted(_CLEAN_TABLE)) + "]")
# A letter or digit: ``[^\W_]`` is exactly ``str.isalnum`` for one character.
_ALNUM_RE = re.compile(r"[^\W_]")


def _has_content(text: str) -> bool:
    """``clean_text(text) != ""`` without building the cleaned text."""
    return _CONTENT_RE.search(text) is not None


def _pre_clean(text: str) -> str:
    """Remove invisible characters and turn odd spaces into spaces, keeping line breaks."""
    return text.translate(_CLEAN_TABLE) if _NEEDS_CLEAN_RE.search(text) else text


def clean_text(value: object) -> str:
    """``str(value)`` stripped, without zero-width characters and NUL, NBSP as a
    space and every run of whitespace (line breaks included) collapsed to one space.
    ``None`` gives ``""``."""
    if value is None:
        return ""
    if type(value) is str and value.isprintable() and "  " not in value and value[:1] != " " and value[-1:] != " ":
        # Already clean: every character the table changes and every whitespace
        # character but the space is unprintable.
        return value
    text = value if isinstance(value, str) else str(value)
    if _NEEDS_CLEAN_RE.search(text):
        text = text.translate(_CLEAN_TABLE)
    return " ".join(text.split())


def _show(text: object, limit: int = 60) -> str:
    """A short quoted form of a value for problem messages."""
    text = text if isinstance(text, str) else str(text)
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)


def _too_long(value: object) -> str | None:
    """A problem text when ``value`` is too long to process, else None."""
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return f"value is too long ({len(value)} characters; the limit is {MAX_VALUE_CHARS})"
    return None


def _is_blank(value: object) -> bool:
    """None, an empty collection, or text without a single letter or digit."""
    if value is None:
        return True
    if type(value) is str:
        return len(value) <= MAX_VALUE_CHARS and _ALNUM_RE.search(value) is None
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return len(value) == 0
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            return False
        text = value
    elif isinstance(value, (int, float, Decimal, dt.date)):
        return False
    else:
        text = str(value)
    for ch in text:
        if ch.isalnum():
            return False
    return True


# ---------------------------------------------------------------------- homoglyphs

_LAT_TO_CYR = str.maketrans(
    "AaBbCcEeHhKkMmOoPpTtXxYy",
    "АаВвСсЕеНнКкМмОоРрТтХхУу",
)
# Only letters that also look alike in lower case are mapped back to Latin.
_CYR_TO_LAT = str.maketrans(
    "АаВСсЕеНКМОоРрТХхУу",
    "AaBCcEeHKMOoPpTXxYy",
)
_LETTER_RUN_RE = re.compile(r"[A-Za-zА-Яа-яЁё]+")
_LATIN_RE = re.compile(r"[A-Za-z]")
_CYRILLIC_RE = re.compile(r"[А-Яа-яЁё]")
_ALPHA_RE = re.compile(r"[^\W\d_]")


_CYR_ONLY_RE = re.compile("[^" + "".join(chr(c) for c in _CYR_TO_LAT) + "A-Za-z]")
_LAT_ONLY_RE = re.compile("[^" + "".join(chr(c) for c in _LAT_TO_CYR) + "А-Яа-яЁё]")


def _fix_run(match: re.Match[str]) -> str:
    word = match.group(0)
    cyrillic_only = _CYR_ONLY_RE.search(word) is not None  # a letter only Cyrillic has
    latin_only = _LAT_ONLY_RE.search(word) is not None  # a letter only Latin has
    if cyrillic_only != latin_only:
        return word.translate(_LAT_TO_CYR if cyrillic_only else _CYR_TO_LAT)
    if cyrillic_only:  # letters of both scripts that cannot be confused: leave it
        return word
    cyr = len(_CYRILLIC_RE.findall(word))
    if cyr == 0 or cyr == len(word):
        return word
    return word.translate(_LAT_TO_CYR if cyr >= len(word) - cyr else _CYR_TO_LAT)


def fix_homoglyphs(text: str) -> str:
    """Replace Latin look-alike letters inside mostly Cyrillic words by Cyrillic
    ones (``Ивaнов`` with a Latin ``a`` -> ``Иванов``), and Cyrillic look-alikes
    inside mostly Latin words by Latin ones. Words in one script are untouched."""
    if text.isascii() or not _LATIN_RE.search(text) or not _CYRILLIC_RE.search(text):
        return text
    return _LETTER_RUN_RE.sub(_fix_run, text)


def name_key(text: str) -> str:
    """A key for comparing names: cleaned, homoglyphs fixed, case-folded, ё -> е,
    spaces collapsed. ``'  ПЁТР\u00a0Иванoв '`` -> ``'петр иванов'``."""
    return fix_homoglyphs(clean_text(text)).casefold().replace("ё", "е")


# ------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=None)
def _first_names() -> frozenset[str]:
    names = set()
    text = (DATA_DIR / "first_names.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(name_key(line))
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def _email_domain_typos() -> dict[str, str]:
    data = load_yaml(DATA_DIR / "email_domain_typos.yaml") or {}
    return {str(k).strip().lower().strip("."): str(v).strip().lower() for k, v in data.items()}


@functools.lru_cache(maxsize=None)
def _city_table() -> dict[str, str]:
    data = load_yaml(DATA_DIR / "city_aliases.yaml") or {}
    table: dict[str, str] = {}
    for canonical, aliases in data.items():
        canonical = clean_text(canonical)
        table[_city_key(canonical)] = canonical
        for alias in aliases or ():
            table[_city_key(str(alias))] = canonical
    return table


@functools.cache
def _city_phone_codes() -> dict[str, tuple[str, ...]]:
    """Canonical city name -> its area codes inside +7 (``data/city_phone_codes.yaml``)."""
    data = load_yaml(DATA_DIR / "city_phone_codes.yaml") or {}
    return {clean_text(city): tuple(str(code) for code in entry["codes"]) for city, entry in data.items()}


# ------------------------------------------------------------------------ phones

_PHONE_SPLIT_RE = re.compile(r"[,;/\\|\n\r\t]+|\s+(?:или|либо|и|or|and)\s+", re.IGNORECASE)
_EXT_WORDS = r"(?:доб(?:авочный)?|вн(?:утр(?:енний)?)?|ext(?:ension)?|x|#)"
_EXT_RE = re.compile(r"\(?\s*" + _EXT_WORDS + r"\.?\s*[:.]?\s*\d{1,7}\s*\)?\s*$", re.IGNORECASE)
_EXT_ONLY_RE = re.compile(r"^\(?\s*" + _EXT_WORDS + r"\.?\s*[:.]?\s*\d{1,7}\s*\)?$", re.IGNORECASE)
_NON_PHONE_CHAR_RE = re.compile(r"[^0-9\s()+\-.]")
_PHONE_CORE_RE = re.compile(r"\+?[0-9][0-9\s().\-\u2010-\u2015\u2212]*[0-9]")
_PHONE_FORMAT_RE = re.compile(r"[\s().\-\u2010-\u2015\u2212]+")
_COMPACT_RE = re.compile(r"\+?[0-9]{3,17}")
_CC7_FAST_RE = re.compile(r"(?:\+7|8|7)?([0-9]{10})")
_INTEGRAL_FLOAT_RE = re.compile(r"([0-9]+)[.,]0+")
_SCIENTIFIC_RE = re.compile(r"[0-9](?:[.,][0-9]+)?[eE]\+?[0-9]{1,2}")
# A cell written with digits, "+", brackets, hyphens and spaces only: nothing to
# split, clean or strip, so it is one fragment (see ``_PhoneParser.items``).
_SIMPLE_PHONE_RE = re.compile(r"[0-9+()\- ]+")
#: A number written without its area code: 5 to 7 digits with spaces, hyphens or dots.
_LOCAL_PHONE_RE = re.compile(r"[0-9](?:[0-9 .\-]{3,10})[0-9]")
#: Size of the sets of values known to be normalized already (cleared when full).
_KNOWN_CACHE_SIZE = 20_000


def _cut_scientific(text: str) -> bool:
    """A number in scientific notation with fewer digits than its value has: a
    spreadsheet showed ``79161234567`` as ``7,91612E+10`` and saved that, so its last
    digits are lost (reading it would give ``79161200000``, someone else's number)."""
    if not _SCIENTIFIC_RE.fullmatch(text):
        return False
    mantissa, _, exponent = text.upper().partition("E")
    fraction = mantissa.replace(",", ".").partition(".")[2]
    return len(fraction) < int(exponent.lstrip("+"))


def _number_text(value: object) -> str:
    """Text of a phone cell; numbers read from spreadsheets lose their ``.0``."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return str(int(value))
        return str(value)
    text = value if isinstance(value, str) else str(value)
    stripped = text.strip()
    if stripped[:1].isdigit():
        match = _INTEGRAL_FLOAT_RE.fullmatch(stripped)
        if match:
            return match.group(1)
        if _SCIENTIFIC_RE.fullmatch(stripped) and not _cut_scientific(stripped):
            try:
                number = Decimal(stripped.replace(",", "."))
            except InvalidOperation:
                return text
            if number == number.to_integral_value():
                return str(int(number))
    return text


class _Cc7Validator:
    """``phonenumbers.is_valid_number`` for 10-digit national numbers of country
    code 7 (Russia, Kazakhstan), built from the library's own metadata as one
    regular expression per region. It is checked against the library when built
    and not used if the two ever disagree."""

    _TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
              "voicemail", "fixed_line", "mobile")

    def __init__(self) -> None:
        from phonenumbers import PhoneMetadata

        self.regions: list[tuple[re.Pattern[str] | None, re.Pattern[str]]] = []
        for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(7, ()):
            metadata = PhoneMetadata.metadata_for_region(region, None)
            if metadata is None:
                continue
            patterns = []
            for name in self._TYPES:
                desc = getattr(metadata, name, None)
                if desc is None or not desc.national_number_pattern:
                    continue
                lengths = desc.possible_length or ()
                if lengths and 10 not in lengths:
                    continue
                patterns.append(f"(?:{desc.national_number_pattern})")
            general = metadata.general_desc.national_number_pattern
            combined = re.compile(f"(?=(?:{general})$)(?:{'|'.join(patterns) or '(?!)'})$")
            leading = re.compile(metadata.leading_digits) if metadata.leading_digits else None
            self.regions.append((leading, combined))
        self.usable = bool(self.regions) and self._agrees_with_library()

    def valid(self, national: str) -> bool:
        for leading, combined in self.regions:
            if leading is not None:
                if leading.match(national):
                    return combined.match(national) is not None
            elif combined.match(national):
                return True
        return False

    def _agrees_with_library(self) -> bool:
        for prefix in range(1000):
            for tail in ("0000000", "1234567", "5555555", "9999999"):
                national = f"{prefix:03d}{tail}"
                number = PhoneNumber(country_code=7, national_number=int(national))
                if self.valid(national) != phonenumbers.is_valid_number(number):
                    return False
        return True


@functools.lru_cache(maxsize=1)
def _cc7_validator() -> _Cc7Validator | None:
    try:
        validator = _Cc7Validator()
    except Exception:  # metadata layout not as expected: use the library
        return None
    return validator if validator.usable else None


class _PhoneParser:
    """Parses phone fragments for one default region."""

    def __init__(self, region: str):
        self.region = region
        self.fast_cc7 = phonenumbers.country_code_for_region(region) == 7
        self.validator = _cc7_validator() if self.fast_cc7 else None
        #: E.164 numbers given out by ``_cc7``: read again (the Normalizer gets
        #: what the mapping's ``phone`` transform made), each is itself.
        self.known: dict[str, None] = {}

    def _cc7(self, national: str) -> str | None:
        """E.164 of a 10-digit national number of country code 7, or None."""
        if self.validator is not None:
            valid = self.validator.valid(national)
        else:
            valid = phonenumbers.is_valid_number(PhoneNumber(country_code=7, national_number=int(national)))
        if not valid:
            return None
        e164 = "+7" + national
        known = self.known
        if len(known) >= _KNOWN_CACHE_SIZE:
            known.clear()
        known[e164] = None
        return e164

    def one(self, fragment: str) -> str | None:
        """E.164 of a fragment holding one number, or None."""
        compact = _PHONE_FORMAT_RE.sub("", fragment)
        if self.fast_cc7:
            match = _CC7_FAST_RE.fullmatch(compact)
            if match:
                return self._cc7(match.group(1))
        text = compact if _COMPACT_RE.fullmatch(compact) else fragment
        try:
            number = phonenumbers.parse(text, self.region)
        except NumberParseException:
            return None
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, PhoneNumberFormat.E164)
        return None

    def several(self, fragment: str) -> list[str]:
        """Numbers written one after another with only spaces between them."""
        found: list[str] = []
        buffer: list[str] = []
        digits = 0
        for token in fragment.split():
            token_digits = sum(ch.isdigit() for ch in token)
            if not token_digits and not buffer:
                continue  # a label such as "моб."
            buffer.append(token)
            digits += token_digits
            if digits > 17:  # longer than any phone number: the split failed
                return []
            if digits >= 7:
                e164 = self.one(" ".join(buffer))
                if e164:
                    found.append(e164)
                    buffer, digits = [], 0
        if buffer and digits:
            return []
        return found

    def matcher(self, fragment: str) -> list[str]:
        return [
            phonenumbers.format_number(m.number, PhoneNumberFormat.E164)
            for m in phonenumbers.PhoneNumberMatcher(fragment, self.region, max_tries=50)
        ]

    def items(self, value: object) -> list[tuple[str, str | None, str | None]]:
        """``(fragment, e164 or None, problem or None)`` for every number in a cell."""
        if value is None:
            return []
        if type(value) is str and len(value) <= MAX_VALUE_CHARS:
            # Fast paths, giving what the general code below gives.
            if value in self.known:
                return [(value, value, None)]
            # Digits only (an E.164 number included) are one fragment, as they are.
            if self.fast_cc7:
                match = _CC7_FAST_RE.fullmatch(value)
                if match:
                    e164 = self._cc7(match.group(1))
                    if e164:
                        return [(value, e164, None)]
                    return [(value, None, f"{_show(value)} is not a valid phone number")]
            # A plainly formatted number ("8 (916) 123-45-67") is one fragment.
            if _SIMPLE_PHONE_RE.fullmatch(value):
                fragment = " ".join(value.split())
                # (what _PHONE_FORMAT_RE removes of these characters)
                compact = value.replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
                match = _CC7_FAST_RE.fullmatch(compact) if self.fast_cc7 else None
                e164 = self._cc7(match.group(1)) if match else self.one(fragment)  # what one(fragment) gives
                if e164:
                    return [(fragment, e164, None)]
        too_long = _too_long(value)
        if too_long:
            return [(value, None, too_long)]
        if isinstance(value, str) and _cut_scientific(value.strip()):
            shown = _show(value.strip())
            return [(value, None, f"{shown} is in scientific notation: a spreadsheet cut off its last digits; "
                     "format the column as text and enter the number again")]
        text = _pre_clean(_number_text(value))
        out: list[tuple[str, str | None, str | None]] = []
        for fragment in _PHONE_SPLIT_RE.split(text):
            fragment = " ".join(fragment.split())
            if not fragment or _is_blank(fragment) or _EXT_ONLY_RE.match(fragment):
                continue
            bare = fragment
            if _NON_PHONE_CHAR_RE.search(fragment):
                bare = _EXT_RE.sub("", fragment).strip() or fragment
            e164 = self.one(bare)
            if e164 is None and _ALPHA_RE.search(bare):
                # a label before or after the number: "8 916 123 45 67 (Иван)"
                core = _PHONE_CORE_RE.search(bare)
                if core and not any(ch.isdigit() for ch in bare[: core.start()] + bare[core.end():]):
                    e164 = self.one(core.group(0))
            if e164:
                out.append((fragment, e164, None))
                continue
            digit_count = sum(ch.isdigit() for ch in bare)
            numbers: list[str] = []
            if digit_count >= 14:
                numbers = self.several(bare) or self.matcher(bare)
            if numbers:
                out.extend((fragment, n, None) for n in numbers)
            elif digit_count >= 5:
                out.append((fragment, None, f"{_show(fragment)} is not a valid phone number"))
            else:
                out.append((fragment, None, f"{_show(fragment)} is not a phone number"))
        return out


@functools.lru_cache(maxsize=64)
def _phone_parser(region: str) -> _PhoneParser:
    return _PhoneParser(region)


_MOBILE_TYPES = frozenset({phonenumbers.PhoneNumberType.MOBILE})
_FIXED_TYPES = frozenset({phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.VOIP,
                          phonenumbers.PhoneNumberType.TOLL_FREE, phonenumbers.PhoneNumberType.SHARED_COST})


def phone_kind(e164: str) -> str | None:
    """``"mobile"`` or ``"fixed"`` (a landline, an office's line) for a number in E.164;
    None where the numbering plan does not tell (the US mixes both in one range)."""
    if e164.startswith("+7") and len(e164) == 12:  # Russia, most numbers here: by the first digit
        kind = _RUSSIAN_KINDS.get(e164[2])
        if kind:
            return kind
    return _phone_kind(e164)


#: Russia's numbering plan: 9xx mobile, 3xx 4xx 8xx geographic (and 800 toll free); +76 and
#: +77 are Kazakhstan's, left to phonenumbers.
_RUSSIAN_KINDS = {"9": "mobile", "3": "fixed", "4": "fixed", "8": "fixed"}


@functools.lru_cache(maxsize=4096)
def _phone_kind(e164: str) -> str | None:
    try:
        kind = phonenumbers.number_type(phonenumbers.parse(e164, None))
    except NumberParseException:
        return None
    if kind in _MOBILE_TYPES:
        return "mobile"
    return "fixed" if kind in _FIXED_TYPES else None


def check_region(region: str) -> str:
    """A phone region in upper case; ``ValueError`` for one phonenumbers does not know."""
    region = (region or "").upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {region!r}; use a two-letter country code such as RU, KZ, BY, US")
    return region


def _phone_items(value: object, default_region: str = "RU") -> list[tuple[str, str | None, str | None]]:
    return _phone_parser(check_region(default_region)).items(value)


def normalize_phones(text: str, default_region: str = "RU") -> tuple[list[str], list[str]]:
    """All phone numbers in a cell as E.164 (duplicates removed, order kept) and
    the problems found. Accepts ints and floats as spreadsheets deliver them.
    Extensions (``доб. 12``) are dropped."""
    return _collect(_phone_items(text, default_region))


# ------------------------------------------------------------------------ emails

_EMAIL_PART_SPLIT_RE = re.compile(r"[,;\n\r\t]+")
_ANGLE_RE = re.compile(r"<([^<>]*)>")
_QUOTED_NAME_RE = re.compile(r'"[^"@]*"')  # a display name: "Petrov, Ivan" <ivan@mail.ru>
#: One address with its display name, as mail programs export them: Даша Романова <d.r@mail.ru>
_NAMED_ADDRESS_RE = re.compile(r'\s*"?(?P<name>[^"<>@,;\n]+?)"?\s*<[^<>@\s]+@[^<>\s]+>\s*')
#: A display name that is a word of an organisation or a mailbox role, not a person's.
_NOT_A_PERSON_RE = re.compile(
    r"\b(?:ооо|оао|зао|пао|ао|ип|нко|ано|llc|ltd|inc|gmbh|corp|company|team|support|info|"
    r"sales|admin|office|noreply|no-reply|newsletter|shop|store|служба|отдел|поддержка|магазин|компания|"
    r"команда|рассылка|бухгалтерия)\b", re.IGNORECASE)
_AT_SPACES_RE = re.compile(r"\s*@\s*")
_MAILTO_RE = re.compile(r"^mailto:\s*", re.IGNORECASE)
_EMAIL_FAST_RE = re.compile(
    r"[a-z0-9_%+\-]+(?:\.[a-z0-9_%+\-]+)*@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
# An address alone in a cell (spaces around it aside) in any case: it is the
# only candidate of the cell (see ``_email_items``).
_EMAIL_ALONE_RE = re.compile(
    r"[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_EMAIL_TRIM = " \t<>\"'()[]{}«»,;:"
try:
    from email_validator import SPECIAL_USE_DOMAIN_NAMES as _SPECIAL_DOMAINS
except ImportError:  # pragma: no cover - older email_validator
    _SPECIAL_DOMAINS = ["arpa", "invalid", "local", "localhost", "onion", "test"]
_SPECIAL_TLDS = frozenset(_SPECIAL_DOMAINS)


def _one_email(candidate: str) -> tuple[str | None, str | None]:
    """(normalized address, None) or (None, problem) for one candidate."""
    original = candidate
    candidate = candidate.strip(_EMAIL_TRIM)
    if _MAILTO_RE.match(candidate):
        candidate = _MAILTO_RE.sub("", candidate).split("?", 1)[0]
    candidate = candidate.strip(_EMAIL_TRIM).strip(".").lower()
    local, at, domain = candidate.rpartition("@")
    if not at or not local or not domain:
        return None, f"{_show(original)} is not an email address"
    domain = domain.strip(".")
    typos = _email_domain_typos()
    domain = typos.get(domain, domain)
    address = f"{local}@{domain}"
    ascii_address = address.isascii()
    if not ascii_address:
        address = fix_homoglyphs(address)
    if (
        _EMAIL_FAST_RE.fullmatch(address)
        and len(local) <= 64
        and len(address) <= 254
        and "xn--" not in domain
        and domain.rsplit(".", 1)[-1] not in _SPECIAL_TLDS
    ):
        if ascii_address and domain not in typos:  # read again, it is itself
            if len(_KNOWN_EMAILS) >= _KNOWN_CACHE_SIZE:
                _KNOWN_EMAILS.clear()
            _KNOWN_EMAILS[address] = None
        return address, None
    try:
        result = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        reason = str(exc).rstrip(".")
        return None, f"{_show(original)} is not a valid email address ({reason})"
    return result.normalized.lower(), None


#: Addresses ``_one_email`` gave out that it gives back unchanged: the Normalizer
#: reads what the mapping's ``email`` transform made.
_KNOWN_EMAILS: dict[str, None] = {}


def _plain_email(candidate: str) -> tuple[str | None, str | None]:
    """``_one_email(candidate)`` for a candidate matching ``_EMAIL_ALONE_RE``:
    nothing to trim or unwrap, ASCII, one "@", no dot at either end."""
    address = candidate.lower()
    local, _at, domain = address.rpartition("@")
    if (
        domain not in _email_domain_typos()
        and len(local) <= 64
        and len(address) <= 254
        and "xn--" not in domain
        and domain.rsplit(".", 1)[-1] not in _SPECIAL_TLDS
    ):
        if len(_KNOWN_EMAILS) >= _KNOWN_CACHE_SIZE:
            _KNOWN_EMAILS.clear()
        _KNOWN_EMAILS[address] = None
        return address, None
    return _one_email(candidate)


def _email_items(value: object) -> list[tuple[str, str | None, str | None]]:
    """``(fragment, address or None, problem or None)`` for every address in a cell."""
    if value is None:
        return []
    if type(value) is str and len(value) <= MAX_VALUE_CHARS:
        if value in _KNOWN_EMAILS:
            return [(value, value, None)]
        # Fast path: one plain address, maybe with spaces around it. Nothing to
        # clean, split or unwrap, so it is the one candidate, as written.
        candidate = value.strip()
        if _EMAIL_ALONE_RE.fullmatch(candidate):
            return [(candidate, *_plain_email(candidate))]
    too_long = _too_long(value)
    if too_long:
        return [(value, None, too_long)]
    text = _pre_clean(value if isinstance(value, str) else str(value))
    if '"' in text:
        text = _QUOTED_NAME_RE.sub(" ", text)
    out: list[tuple[str, str | None, str | None]] = []
    for part in _EMAIL_PART_SPLIT_RE.split(text):
        part = " ".join(part.split())
        if not part or _is_blank(part):
            continue
        candidates = _ANGLE_RE.findall(part)
        if not candidates:
            words = _AT_SPACES_RE.sub("@", part).split()
            candidates = [w for w in words if "@" in w]
        if not candidates:
            out.append((part, None, f"{_show(part)} is not an email address"))
            continue
        for candidate in candidates:
            address, problem = _one_email(candidate)
            out.append((candidate, address, problem))
    return out


def _display_name_of(cell: str) -> str | None:
    """The person's name a cell holding one address with its display name gives
    («Dasha Romanova <d.romanova@mail.ru>»): one to three words of letters, not an
    organisation's or a mailbox's («ООО Ромашка», «Support Team»); else ``None``."""
    if "<" not in cell or len(cell) > _NAME_CACHE_CHARS:
        return None
    match = _NAMED_ADDRESS_RE.fullmatch(cell)
    if match is None:
        return None
    name = " ".join(match.group("name").split())
    words = name.split()
    if not 1 <= len(words) <= 3 or _NOT_A_PERSON_RE.search(name) or not all(
            _ALPHA_RE.search(word) and not any(ch.isdigit() for ch in word) for word in words):
        return None
    display = _name_display(name)
    return display or None


def normalize_emails(text: str) -> tuple[list[str], list[str]]:
    """All e-mail addresses in a cell, normalized (lower case, typos of common
    domains fixed, IDN domains kept in Unicode), duplicates removed, and the
    problems found."""
    return _collect(_email_items(text))


def _collect(items: Iterable[tuple[str, str | None, str | None]]) -> tuple[list[str], list[str]]:
    """Distinct good values in order, and the problems, of ``(fragment, good, problem)`` items."""
    good: list[str] = []
    problems: list[str] = []
    for _fragment, value, problem in items:
        if value:
            if value not in good:
                good.append(value)
        elif problem:
            problems.append(problem)
    return good, problems


# ------------------------------------------------------------------------- names

_STRONG_PATRONYMIC = ("ович", "евич", "овна", "евна", "ична", "ovich", "evich", "ovna", "evna", "ichna")
_WEAK_PATRONYMIC = ("ич", "ich")
_PATRONYMIC_PARTICLES = frozenset({"оглы", "кызы", "улы", "уулу", "кизи", "ogly", "oglu", "kyzy", "qizi"})
_LOWER_PARTICLES = _PATRONYMIC_PARTICLES | {"фон", "де", "ван", "дер", "von", "van", "de", "der", "da", "di", "la", "le", "ibn", "ибн"}
_SURNAME_SUFFIXES = (
    "ов", "ев", "ин", "ын", "ова", "ева", "ина", "ына", "ский", "ская", "цкий", "цкая", "ской",
    "ских", "цких", "ых", "их", "енко", "ко", "ук", "юк", "чук", "ян", "янц", "дзе", "швили", "иани",
    "ov", "ev", "in", "yn", "ova", "eva", "ina", "yna", "sky", "skiy", "ski", "skaya", "skii",
    "enko", "uk", "yuk", "chuk", "yan", "dze", "shvili",
)
_TOKEN_SPLIT_RE = re.compile(r"[\s,;]+")
#: Names seen again (a first name, a patronymic, the same full name read by the
#: mapping and the Normalizer) are looked up instead of worked out again.
_NAME_CACHE_SIZE = 8192
_NAME_CACHE_CHARS = 200  # longer texts are not kept
_TOKEN_TRIM = "\"'«»()[]{}<>:"

# Orders a name of 2 or 3 words may be written in, with a small prior.
_ORDERS_2_CYR = ((("last_name", "first_name"), 0.5), (("first_name", "last_name"), 0.0),
                 (("first_name", "middle_name"), 0.0))
_ORDERS_2_LAT = ((("first_name", "last_name"), 0.5), (("last_name", "first_name"), 0.0),
                 (("first_name", "middle_name"), 0.0))
_ORDERS_3_CYR = tuple(
    (order, {("last_name", "first_name", "middle_name"): 1.0,
             ("first_name", "middle_name", "last_name"): 0.5}.get(order, -0.5))
    for order in itertools.permutations(NAME_PARTS)
)
_ORDERS_3_LAT = tuple(
    (order, {("first_name", "middle_name", "last_name"): 1.0,
             ("last_name", "first_name", "middle_name"): 0.5}.get(order, -0.5))
    for order in itertools.permutations(NAME_PARTS)
)


def _indexed(orders: tuple) -> tuple:
    return tuple((order, tuple(NAME_PARTS.index(role) for role in order), prior) for order, prior in orders)


#: the orders above with the roles as indexes into ``NAME_PARTS``; keyed by "is Latin"
_ORDERS_2_IDX = {False: _indexed(_ORDERS_2_CYR), True: _indexed(_ORDERS_2_LAT)}
_ORDERS_3_IDX = {False: _indexed(_ORDERS_3_CYR), True: _indexed(_ORDERS_3_LAT)}


def _case_word(word: str, position: int = 0) -> str:
    """Title-case a word typed all upper or all lower case; keep mixed case."""
    if not (word.isupper() or word.islower()):
        return word
    lower = word.lower()
    if position > 0 and lower in _LOWER_PARTICLES:
        return lower
    return lower.title()


def _display_name(text: str) -> str:
    """Cleaned name with homoglyphs fixed and each word re-cased when needed."""
    if len(text) <= _NAME_CACHE_CHARS:
        return _display_name_cached(text)
    return _make_display_name(text)


def _make_display_name(text: str) -> str:
    words = fix_homoglyphs(clean_text(text)).split(" ")
    return " ".join(_case_word(w, i) for i, w in enumerate(words) if w)


_display_name_cached = functools.lru_cache(maxsize=_NAME_CACHE_SIZE)(_make_display_name)


@functools.lru_cache(maxsize=_NAME_CACHE_SIZE)
def _name_display(value: str) -> str | None:
    """What the Normalizer makes of a name cell: ``""`` when it is blank, None
    when it is not a name (no letter), else the display form."""
    if _ALNUM_RE.search(value) is None:
        return ""
    text = clean_text(value)
    if not _ALPHA_RE.search(text):
        return None
    return _display_name(text)


@functools.lru_cache(maxsize=50_000)
def _known_first_name(key: str) -> bool:
    """In the first-name list, or a full form, diminutive or spelling the name tables know."""
    if key in _first_names():
        return True
    from hub import names  # hub.names builds on this module

    return any(not k.startswith("~") for k in names.first_name_keys(key))


@functools.lru_cache(maxsize=50_000)
def _misspelt_first_name(key: str) -> bool:
    """One typo away from a known first name, long enough to tell (Антоеина, Еактерина)."""
    from hub import names

    return bool(names.misspelt_first_name(names.latin_key(key)))


def _role_scores(key: str, particle: bool) -> dict[str, float]:
    known = _known_first_name(key)
    strong = key.endswith(_STRONG_PATRONYMIC)
    weak = not strong and key.endswith(_WEAK_PATRONYMIC)
    surname = key.endswith(_SURNAME_SUFFIXES)
    if particle:
        return {"middle_name": 4.0, "first_name": -3.0, "last_name": -3.0}
    middle = 3.0 if strong else 1.5 if weak else -2.0
    if known:
        first, last = 3.0, -2.0
    elif not strong and _misspelt_first_name(key):  # a first name with a typo, not a surname
        first, last = 2.0, 0.5 if surname else 0.0
    else:
        first = -2.0 if strong else (-1.0 if surname else 0.0)
        last = -1.0 if strong else 0.5 if weak else 2.0 if surname else 0.0
    return {"first_name": first, "middle_name": middle, "last_name": last}


@functools.lru_cache(maxsize=50_000)
def _word_info(word: str, particle: bool) -> tuple[str, str, dict[str, float], tuple[float, float, float]]:
    """Display form, key and role scores of one (cleaned) word of a name (also
    as a tuple in the order of ``NAME_PARTS``)."""
    display = " ".join(_case_word(w, n) for n, w in enumerate(word.split(" ")))
    key = word.casefold().replace("ё", "е")
    scores = _role_scores(key, particle)
    return display, key, scores, tuple(scores[role] for role in NAME_PARTS)


def _patronymic_of(first: str, word: str) -> bool:
    """Whether ``word`` can be the patronymic of someone called ``first``: made of a first
    name the tables know, and of the first name's gender (Иван Петрович; not Ангелина
    Гуревич, nor Иван Гуревич: those are surnames)."""
    from hub import names

    if " " in word:  # «Бахтияр оглы»: a patronymic whatever the name
        return True
    info = names.patronymic_info(word)
    if info is None or info[0].startswith(names.UNKNOWN_PREFIX):
        return False
    gender = names.first_name_gender(first)
    return gender is None or gender == info[1]


def _initials(token: str) -> list[str] | None:
    letters = token.replace(".", "")
    if 1 <= len(letters) <= 2 and letters.isalpha() and ("." in token or len(letters) == 1):
        return [ch + "." for ch in letters]
    return None


def split_full_name(text: str) -> dict[str, str]:
    """Split a full name written in any order into ``last_name``, ``first_name``
    and ``middle_name`` (only the keys found are present).

    Patronymics are recognized by their suffixes (-ович, -евна, ... and оглы/кызы),
    first names by a list of common names and their Latin spellings, surnames by
    typical suffixes; what is left is decided by the usual order ("Фамилия Имя
    Отчество" for Cyrillic, "First Last" for Latin names). A single word is a
    first name when it is a known one, otherwise a last name."""
    if type(text) is str and len(text) <= _NAME_CACHE_CHARS:
        return dict(_split_cached(text))
    return _split_full_name(text)


@functools.lru_cache(maxsize=_NAME_CACHE_SIZE)
def _split_cached(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(_split_full_name(text).items())


def _split_full_name(text: str) -> dict[str, str]:
    text = clean_text(text)
    if not text or len(text) > MAX_VALUE_CHARS:
        return {}
    tokens: list[str] = []
    maybe_initials = False
    fixed = fix_homoglyphs(text)
    # clean text has single spaces only: without "," and ";" the split is plain
    parts = fixed.split(" ") if "," not in fixed and ";" not in fixed else _TOKEN_SPLIT_RE.split(fixed)
    for raw in parts:
        if raw.isalpha():  # nothing to trim, a letter in it
            token = raw
        else:
            token = raw.strip(_TOKEN_TRIM)
            if not token or not _ALPHA_RE.search(token):
                continue
        tokens.append(token)
        if len(token) <= 2 or "." in token:  # ``_initials`` needs 1-2 letters
            maybe_initials = True
    if not tokens:
        return {}

    # Initials ("Петров И.С.", "И. С. Петров"): the rest is the surname.
    expanded: list[tuple[str, bool]] = []
    if maybe_initials:
        for token in tokens:
            initials = _initials(token)
            if initials:
                expanded.extend((i.upper(), True) for i in initials)
            else:
                expanded.append((token, False))
    if any(is_initial for _, is_initial in expanded) and not all(i for _, i in expanded):
        initials = [t for t, i in expanded if i]
        rest = [_case_word(t, n) for n, (t, i) in enumerate(expanded) if not i]
        result = {"last_name": " ".join(rest), "first_name": initials[0]}
        if len(initials) > 1:
            result["middle_name"] = " ".join(initials[1:])
        return result

    # Join patronymic particles ("Гасан оглы") to the preceding word.
    words: list[tuple[str, bool]] = []
    for token in tokens:
        # (case folding never shortens a word, and no particle is longer than 4)
        if words and len(token) <= 4 and token.casefold() in _PATRONYMIC_PARTICLES:
            prev, _ = words[-1]
            words[-1] = (f"{prev} {token}", True)
        else:
            words.append((token, False))
    infos = [_word_info(word, particle) for word, particle in words]
    if len(words) == 1:
        display, key = infos[0][0], infos[0][1]
        # a lone word is a first name unless it looks like a surname (forms ask "Имя")
        if _known_first_name(key):
            role = "first_name"
        elif key.endswith(_SURNAME_SUFFIXES) or key.endswith(_STRONG_PATRONYMIC):
            role = "last_name"
        else:
            role = "first_name"
        return {role: display}
    latin = _CYRILLIC_RE.search(text) is None
    if len(words) == 2:
        # the scores of each order, added in the same order as for longer names
        (d0, _k0, _s0, v0), (d1, _k1, _s1, v1) = infos
        best_order, best_score = None, -math.inf
        for order, (a, b), prior in _ORDERS_2_IDX[latin]:
            score = prior + v0[a] + v1[b]
            if score > best_score:
                best_order, best_score = order, score
        result = {best_order[0]: d0, best_order[1]: d1}
        if "middle_name" in result and not _patronymic_of(result["first_name"], result["middle_name"]):
            result["last_name"] = result.pop("middle_name")  # «Ангелина Гуревич»
        return result
    if len(words) == 3:
        (d0, _k0, _s0, v0), (d1, _k1, _s1, v1), (d2, _k2, _s2, v2) = infos
        best_order, best_score = None, -math.inf
        for order, (a, b, c), prior in _ORDERS_3_IDX[latin]:
            score = prior + v0[a] + v1[b] + v2[c]
            if score > best_score:
                best_order, best_score = order, score
        return {best_order[0]: d0, best_order[1]: d1, best_order[2]: d2}
    display = [info[0] for info in infos]
    keys = [info[1] for info in infos]
    scores = [info[2] for info in infos]

    # Four or more words: a patronymic and a known first name when found, the
    # remaining words form the surname.
    middle_idx = next((i for i in range(len(words) - 1, -1, -1) if scores[i]["middle_name"] >= 3), None)
    first_idx = next((i for i, k in enumerate(keys) if i != middle_idx and k in _first_names()), None)
    if middle_idx is None and first_idx is None:
        order = [0, 1] if not latin else [len(words) - 1, 0]
        last_idx, first_idx = order
        middle = [display[i] for i in range(len(words)) if i not in (last_idx, first_idx)]
        return {"last_name": display[last_idx], "first_name": display[first_idx], "middle_name": " ".join(middle)}
    result = {}
    if first_idx is not None:
        result["first_name"] = display[first_idx]
    if middle_idx is not None:
        result["middle_name"] = display[middle_idx]
    rest = [display[i] for i in range(len(words)) if i not in (first_idx, middle_idx)]
    if rest:
        result["last_name"] = " ".join(rest)
    return result


# ------------------------------------------------------------------------- dates

DATE_FORMATS = ("DD.MM.YYYY", "YYYY-MM-DD", "MM/DD/YYYY", "DD/MM/YYYY", "excel", "auto")

_TIME = r"(?:[T ]\s*\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*(?:Z|[+-]\d{2}:?\d{2}))?)?"
_YEAR_SUFFIX = r"(?:\s*г(?:ода?)?\.?)?"
_FORMAT_RES = {
    "YYYY-MM-DD": re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})" + _TIME),
    "DD.MM.YYYY": re.compile(r"(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})" + _YEAR_SUFFIX + _TIME),
    "DD/MM/YYYY": re.compile(r"(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{4})" + _TIME),
    "MM/DD/YYYY": re.compile(r"(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})" + _TIME),
}
_AUTO_RES = (
    _FORMAT_RES["YYYY-MM-DD"],
    re.compile(r"(?P<y>\d{4})[./](?P<m>\d{1,2})[./](?P<d>\d{1,2})" + _TIME),
    re.compile(r"(?P<d>\d{1,2})([./-])(?P<m>\d{1,2})\2(?P<y>\d{4}|\d{2})" + _YEAR_SUFFIX + _TIME),
)
_MONTHS = {
    "янв": 1, "фев": 2, "мар": 3, "апр": 4, "мая": 5, "май": 5, "июн": 6, "июл": 7, "авг": 8,
    "сен": 9, "окт": 10, "ноя": 11, "дек": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8,
    "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}
_ISO_DATE_FAST_RE = re.compile(r"(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})")
_FAST_DATE_RES = {
    "auto": _ISO_DATE_FAST_RE,
    "YYYY-MM-DD": _ISO_DATE_FAST_RE,
    "DD.MM.YYYY": re.compile(r"(?P<d>[0-9]{2})\.(?P<m>[0-9]{2})\.(?P<y>[0-9]{4})"),
}
_TEXT_DATE_RE = re.compile(r"(?P<d>\d{1,2})\s+(?P<mon>[a-zа-яё]+)\.?,?\s+(?P<y>\d{4})" + _YEAR_SUFFIX)
_SERIAL_RE = re.compile(r"\d{1,8}(?:[.,]\d+)?")
_EXCEL_EPOCH = dt.date(1899, 12, 30)
_EXCEL_MAX = 2958465  # 9999-12-31
_AUTO_SERIAL_MAX = 73050  # 2099-12-31


def _excel_date(serial: float, shown: str) -> dt.date:
    if not math.isfinite(serial):
        raise ValueError(f"{shown} is not an Excel date serial number")
    whole = int(math.floor(serial))
    if whole < 1 or whole > _EXCEL_MAX:
        raise ValueError(f"{shown} is outside the range of Excel date serial numbers (1..{_EXCEL_MAX})")
    if whole == 60:
        raise ValueError(f"{shown} is 29 February 1900 in Excel, a date that does not exist")
    if whole < 60:  # Excel counts the non-existent 1900-02-29 as serial 60
        return dt.date(1899, 12, 31) + dt.timedelta(days=whole)
    return _EXCEL_EPOCH + dt.timedelta(days=whole)


def _make_date(year: int, month: int, day: int, shown: str) -> dt.date:
    try:
        return dt.date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"{shown} is not a valid date ({exc})") from None


def _from_match(match: re.Match[str], shown: str) -> dt.date:
    year_text = match.group("y")
    year = int(year_text)
    if len(year_text) == 2:
        pivot = dt.date.today().year % 100
        year += 2000 if year <= pivot else 1900
    return _make_date(year, int(match.group("m")), int(match.group("d")), shown)


def _number_value(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    return None


def parse_date(value: object, fmt: str | None = None) -> dt.date:
    """A date from a cell value.

    ``fmt`` is one of ``DD.MM.YYYY``, ``YYYY-MM-DD``, ``MM/DD/YYYY``, ``DD/MM/YYYY``,
    ``excel`` (a serial day number, 1 = 1900-01-01, with Excel's 1900 leap-year
    bug) or ``auto``/None (ISO, day-first dotted or slashed dates, ``1 февраля 1990``,
    ``YYYYMMDD`` and Excel serial numbers up to 2099). ``date`` and ``datetime``
    objects are accepted whatever the format. Raises ``ValueError`` with a message
    naming the value."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if fmt is None:
        mode = "auto"
    elif fmt in DATE_FORMATS:
        mode = fmt
    else:
        mode = fmt.strip()
        if mode.lower() in ("excel", "auto"):
            mode = mode.lower()
        else:
            mode = mode.upper()
        if mode not in DATE_FORMATS:
            raise ValueError(f"unknown date format {fmt!r}; use one of {', '.join(DATE_FORMATS)}")
    if type(value) is str:
        # Fast paths for the common spellings; anything unusual (or invalid, for
        # the message) takes the general way below.
        fast = _FAST_DATE_RES.get(mode)
        if fast is not None:
            match = fast.fullmatch(value)
            if match:
                try:
                    return dt.date(int(match.group("y")), int(match.group("m")), int(match.group("d")))
                except ValueError:
                    pass
    if value is None:
        raise ValueError("no date given")
    too_long = _too_long(value)
    if too_long:
        raise ValueError(f"not a date: {too_long}")
    number = _number_value(value)
    text = clean_text(value)
    shown = _show(text)
    if not text:
        raise ValueError("no date given")

    if mode == "excel":
        if number is None:
            if not _SERIAL_RE.fullmatch(text):
                raise ValueError(f"{shown} is not an Excel date serial number")
            number = float(text.replace(",", "."))
        return _excel_date(number, shown)

    if mode != "auto":
        if number is not None:
            raise ValueError(f"{shown} is a number, not a {mode} date")
        match = _FORMAT_RES[mode].fullmatch(text)
        if not match:
            raise ValueError(f"{shown} does not match {mode}")
        return _from_match(match, shown)

    # auto
    if number is None and _SERIAL_RE.fullmatch(text):
        digits = text.replace(",", ".").split(".")[0]
        if len(digits) == 8:
            if digits[:2] in ("19", "20"):
                return _make_date(int(digits[:4]), int(digits[4:6]), int(digits[6:]), shown)
            return _make_date(int(digits[4:]), int(digits[2:4]), int(digits[:2]), shown)
        number = float(text.replace(",", "."))
    if number is not None:
        if number.is_integer() and 1000 <= number <= 2100:
            raise ValueError(f"{shown} looks like a year, not a full date")
        if not math.isfinite(number) or not 1 <= number < _AUTO_SERIAL_MAX + 1:
            raise ValueError(f"{shown} is not a date")
        return _excel_date(number, shown)
    for regex in _AUTO_RES:
        match = regex.fullmatch(text)
        if match:
            return _from_match(match, shown)
    match = _TEXT_DATE_RE.fullmatch(text.lower())
    if match:
        month = _MONTHS.get(match.group("mon")[:3])
        if month:
            return _make_date(int(match.group("y")), month, int(match.group("d")), shown)
    raise ValueError(f"{shown} is not a date")


# ------------------------------------------------------------------------ cities

_CITY_SEPARATORS_RE = re.compile(r"[\s.\-‐-―]+")
_CITY_PREFIX_RE = re.compile(r"^(?:город|гор|г)\s+")
_CITY_SUFFIX_RE = re.compile(r"\s+(?:город|гор|г)$")
_CITY_DISPLAY_PREFIX_RE = re.compile(r"^(?:город|гор\.|г\.|г(?=\s))\s*", re.IGNORECASE)
_CITY_DISPLAY_SUFFIX_RE = re.compile(r"\s*,?\s+(?:город|гор\.?|г\.?)$", re.IGNORECASE)
_CITY_CACHE_SIZE = 20_000


def _city_key(text: str) -> str:
    key = _CITY_SEPARATORS_RE.sub(" ", name_key(text)).strip()
    return key


def _city_display(text: str) -> str:
    text = _CITY_DISPLAY_PREFIX_RE.sub("", text)
    text = _CITY_DISPLAY_SUFFIX_RE.sub("", text).strip()
    text = fix_homoglyphs(text)
    if text.isupper() or text.islower():
        words = []
        for word in text.lower().split(" "):
            parts = word.split("-")
            parts = [p if (i and p in ("на", "де", "над", "под", "у")) else p.capitalize() for i, p in enumerate(parts)]
            words.append("-".join(parts))
        text = " ".join(words)
    return text


# -------------------------------------------------------------------- normalizer

_CANONICAL_SET = frozenset(CANONICAL_FIELDS)


class Normalizer:
    """Normalizes the canonical values of one record.

    ``default_region`` is used for phone numbers written without a country code.
    ``city_aliases`` (alias -> canonical name) extend and override the built-in
    table; aliases are matched ignoring case, ё/е, dots and hyphens."""

    def __init__(self, default_region: str = "RU", city_aliases: dict[str, str] | None = None):
        self.default_region = check_region(default_region)
        self._phones = _phone_parser(self.default_region)
        self._cities = dict(_city_table())
        for alias, canonical in (city_aliases or {}).items():
            self._cities[_city_key(str(alias))] = clean_text(canonical)
        self._city_cache: dict[str, str] = {}
        self._area_codes = _city_phone_codes() if self._phones.fast_cc7 else {}

    # public -------------------------------------------------------------

    def normalize(self, values: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
        """Normalize ``values`` (canonical field -> raw value); return the
        normalized values (empty ones absent) and a list of problems. Fields
        outside the canonical set (``x_...``) are passed through unchanged."""
        out: dict[str, object] = {}
        problems: list[str] = []

        text_of = self._text
        for field_name in NAME_FIELDS:
            value = values.get(field_name)
            if value is None:
                continue
            if type(value) is str and len(value) <= _NAME_CACHE_CHARS:
                display = _name_display(value)  # the steps below, remembered
                if display:
                    out[field_name] = display
                    continue
                if display is None:
                    problems.append(f"{field_name}: {_show(clean_text(value))} is not a name")
                continue
            value = text_of(field_name, value, problems)
            if value is None:
                continue
            if not _ALPHA_RE.search(value):
                problems.append(f"{field_name}: {_show(value)} is not a name")
                continue
            out[field_name] = _display_name(value)
        if not out and type(values.get("email")) is str:
            # a record with no name but an address written with one: the person's name
            named = _display_name_of(values["email"])
            if named:
                out["full_name"] = named
        self._complete_names(out)

        # the city first: it completes a phone number written without its area code
        city_problems: list[str] = []
        city_name: str | None = None
        city = values.get("city")
        if city is not None:
            if type(city) is str and len(city) <= MAX_VALUE_CHARS:
                if _ALNUM_RE.search(city) is not None:  # else blank
                    city_name = self.city(city)  # cleans it first
            else:
                city = text_of("city", city, problems=city_problems)
                if city is not None:
                    city_name = self.city(city)
        codes = self._area_codes.get(city_name) if city_name is not None else None
        phone_items = self._phones.items if codes is None else functools.partial(self._local_phones, codes=codes)
        self._identifiers(values, out, problems, "phone", "phones", phone_items, self._phones.known)
        self._identifiers(values, out, problems, "email", "emails", _email_items, _KNOWN_EMAILS)
        problems.extend(city_problems)
        if city_name is not None:
            out["city"] = city_name

        birthday = values.get("birthday")
        match = _ISO_DATE_FAST_RE.fullmatch(birthday) if type(birthday) is str else None
        if match is not None:  # as the mapping's date transform writes it
            try:
                date = dt.date(int(match.group("y")), int(match.group("m")), int(match.group("d")))
            except ValueError:
                match = None  # parse_date says why
            else:
                if date.year < 1900 or date > dt.date.today():
                    problems.append(f"birthday: {_show(birthday)} is not a plausible birth date")
                else:
                    out["birthday"] = birthday  # its isoformat()
        if match is None and birthday is not None and not _is_blank(birthday):
            try:
                date = parse_date(birthday)
            except ValueError as exc:
                problems.append(f"birthday: {exc}")
            else:
                if date.year < 1900 or date > dt.date.today():
                    problems.append(f"birthday: {_show(date.isoformat())} is not a plausible birth date")
                else:
                    out["birthday"] = date.isoformat()

        company = text_of("company", values.get("company"), problems)
        if company is not None:
            out["company"] = company

        for key, value in values.items():
            if key in _CANONICAL_SET or key in out:
                continue
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            out[key] = value

        return out, list(dict.fromkeys(problems))

    def city(self, text: str) -> str:
        """The canonical spelling of a city name (it depends on ``clean_text(text)``
        only, so ``text`` need not be cleaned)."""
        cached = self._city_cache.get(text)
        if cached is not None:
            return cached
        key = _city_key(text)
        canonical = self._cities.get(key)
        if canonical is None:
            stripped = _CITY_SUFFIX_RE.sub("", _CITY_PREFIX_RE.sub("", key))
            canonical = self._cities.get(stripped)
        if canonical is None:
            canonical = _city_display(clean_text(text)) or clean_text(text)
        if len(self._city_cache) >= _CITY_CACHE_SIZE:
            self._city_cache.clear()
        self._city_cache[text] = canonical
        return canonical

    # helpers ------------------------------------------------------------

    def _local_phones(self, value: object, codes: tuple[str, ...]) -> list[tuple[str, str | None, str | None]]:
        """The numbers of a cell, a local one («23-45-67») completed with the area code of
        the record's city when the city has one code and the two make a valid number."""
        items = self._phones.items(value)
        for position, (fragment, e164, problem) in enumerate(items):
            if e164 is not None or _LOCAL_PHONE_RE.fullmatch(fragment) is None:
                continue
            local = "".join(ch for ch in fragment if ch.isdigit())
            fits = [code for code in codes if len(code) + len(local) == 10]
            if len(fits) == 1 and len(codes) == 1:
                completed = self._phones._cc7(fits[0] + local)
                if completed is not None:
                    items[position] = (fragment, completed, None)
            elif len(fits) > 1:
                items[position] = (fragment, None, f"{_show(fragment)} is a local number without its area code; "
                                   f"write it with the code ({' or '.join(fits)})")
        return items


    @staticmethod
    def _text(field_name: str, value: object, problems: list[str]) -> str | None:
        if value is None:
            return None
        if type(value) is str and len(value) <= MAX_VALUE_CHARS:  # the usual case, quickly
            return clean_text(value) if _ALNUM_RE.search(value) is not None else None
        if _is_blank(value):
            return None
        too_long = _too_long(value)
        if too_long:
            problems.append(f"{field_name}: {too_long}")
            return None
        if isinstance(value, (list, tuple)):
            value = ", ".join(clean_text(v) for v in value if not _is_blank(v))
        text = clean_text(value)
        return text or None

    @staticmethod
    def _complete_names(out: dict[str, object]) -> None:
        full = out.get("full_name")
        if full is not None:
            if "last_name" in out and "first_name" in out and "middle_name" in out:
                return  # nothing added: the order is right
            for part, value in split_full_name(str(full)).items():
                out.setdefault(part, value)
        else:
            parts = [str(out[p]) for p in NAME_PARTS if p in out]
            if not parts:
                return
            out["full_name"] = " ".join(parts)
        # keep the canonical key order of the model
        for part in NAME_PARTS:
            if part in out:
                out[part] = out.pop(part)

    @staticmethod
    def _identifiers(values, out, problems, single: str, plural: str, items_of, known=None) -> None:
        """``known``: values ``items_of`` is known to give back as they are."""
        first = values.get(single)
        rest = values.get(plural)
        if first is None and rest is None:
            return
        if (
            known is not None
            and (first is None or (type(first) is str and first in known))
            and (rest is None or type(rest) is list)
        ):
            # Already normalized (as the mapping's transforms give them): the
            # result of the general code below, without parsing them again.
            found = [] if first is None else [first]
            for cell in rest or ():
                if type(cell) is not str or cell not in known:
                    break  # something else: the general way
                if cell not in found:
                    found.append(cell)
            else:
                if found:
                    out[single] = found[0]
                    out[plural] = found
                return
        found: list[str] = []
        primary: str | None = None
        reported: set[str] = set()
        # The same text is usually given twice (``phone`` is also in ``phones``):
        # it is parsed once.
        parsed: dict[str, list[tuple[str, str | None, str | None]]] = {}
        for field_name in (single, plural):
            raw = values.get(field_name)
            if raw is None:
                continue
            if type(raw) is list:
                cells: Iterable[object] = raw
            elif type(raw) is str:
                cells = (raw,)  # a blank one is passed over below
            elif _is_blank(raw):
                continue
            else:
                cells = raw if isinstance(raw, (list, tuple, set, frozenset)) else (raw,)
            for cell in cells:
                if type(cell) is str and len(cell) <= MAX_VALUE_CHARS:
                    if _ALNUM_RE.search(cell) is None:  # blank
                        continue
                    items = parsed.get(cell)
                    if items is None:
                        items = parsed[cell] = items_of(cell)
                elif _is_blank(cell):
                    continue
                elif type(cell) is str:
                    items = parsed.get(cell)
                    if items is None:
                        items = parsed[cell] = items_of(cell)
                else:
                    items = items_of(cell)
                for fragment, value, problem in items:
                    if value:
                        if field_name == single and primary is None:
                            primary = value
                        if value not in found:
                            found.append(value)
                    elif problem and fragment not in reported:
                        reported.add(fragment)
                        problems.append(f"{field_name}: {problem}")
        if found:
            out[single] = primary or found[0]
            out[plural] = found
