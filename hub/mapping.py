"""Mappings: which source column feeds which canonical field, and how.

A mapping is a YAML file ``mappings/<name>.yaml``::

    fields:
      full_name: ФИО                        # a column name
      phone: {from: Телефон, transforms: [phone]}
      email: {from: [Email, E-mail], transforms: [strip, lower, email]}
      birthday: {from: Дата рождения, transforms: [{date: DD.MM.YYYY}]}
      city: {from: Город, transforms: [strip, {map: {Мск: Москва, "-": null}}], default: Москва}
      company: {concat: [Организация, Филиал], sep: ", "}
      x_manager:                            # alternatives: the first non-empty result wins
        - {from: Менеджер}
        - {from: Ответственный}

Targets are the canonical fields (``hub.model.CANONICAL_FIELDS``) or custom
attributes named ``x_...``. ``from`` names one column or a list of columns (the
first non-empty one is used); ``concat`` joins the non-empty columns with
``sep``; ``default`` is used when the result is empty.

The column holding a record's id is no field: it is an option of the connector in
hub.yaml (the csv connector's ``id_column``), and a mapping's ``id:`` key is an error.

A destination's mapping may also write the categories and segments hub computes
(``hub.model.OUTBOUND_FIELDS``: ``stage``, ``temperature``, ``rfm``, ``rfm_segment``,
``abc``, ``region``, ``activity``, ``segments``), each to one column::

    segments: tags                          # Mailchimp/Unisender tags; a column in a sheet
    stage: {from: Стадия, transforms: [{map: {Клиент: gold}}]}

They are written only: reading a source, such a column is ignored (and need not
exist). ``segments`` is written as the names joined with ``", "``.

Transforms form a fixed set; nothing is evaluated:

=====================  ===========================================================
``strip``              clean whitespace (NBSP, zero-width characters, NUL, runs of spaces)
``lower`` ``upper``    change case
``title``              title case
``phone``              every phone number in the cell, as E.164 (sets ``phone`` and ``phones``)
``email``              every e-mail address in the cell (sets ``email`` and ``emails``)
``split_name``         only on ``full_name``: also fills last/first/middle name
``{date: FORMAT}``     ``DD.MM.YYYY``, ``YYYY-MM-DD``, ``MM/DD/YYYY``, ``DD/MM/YYYY``,
                       ``excel`` or ``auto``; the value becomes ``YYYY-MM-DD``
``{map: {a: b}}``      replace whole values (compared stripped, ignoring case); a value
                       mapped to ``null`` becomes empty; add ``strict: true`` to reject
                       values that are not in the map
``{default: value}``   the value to use when it is empty at this point
``{replace: {a: b}}``  replace text (plain text, not a pattern)
``{digits: true}``     keep digits only
=====================  ===========================================================

``phone``, ``email`` and ``split_name`` must be the last transform of a field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping as MappingABC
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.errors import ConfigError, SkippableRecord
from hub.model import CANONICAL_FIELDS, DEFAULT_COLUMNS, OUTBOUND_FIELDS
from hub.normalize import (
    DATA_DIR,
    DATE_FORMATS,
    NAME_FIELDS,
    _CONTENT_RE,
    _FAST_DATE_RES,
    check_region,
    _display_name_of,
    _email_items,
    _number_text,
    _phone_items,
    _phone_parser,
    _show,
    clean_text,
    parse_date,
    split_full_name,
)

try:  # the strict loader may be replaced; only ``load_yaml(path)`` is relied upon
    from hub.yaml_loader import load_yaml
except ImportError:  # pragma: no cover
    import yaml

    def load_yaml(path: Path) -> object:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)


__all__ = ["Mapping", "TRANSFORMS", "load_yaml", "recognise_columns"]

#: Transforms written as a plain name.
SIMPLE_TRANSFORMS = ("strip", "lower", "upper", "title", "phone", "email", "split_name")
#: Transforms written as a one-key mapping with a parameter.
PARAM_TRANSFORMS = ("date", "map", "default", "replace", "digits")
TRANSFORMS = SIMPLE_TRANSFORMS + PARAM_TRANSFORMS
_FINAL_TRANSFORMS = ("phone", "email", "split_name")
_DEFAULT_SOURCE = "<default>"
_HINT_COLUMNS = 30


# ------------------------------------------------------------- YAML structure


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class _FileModel(_Strict):
    fields: dict[str, Any]


class _FieldModel(_Strict):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, populate_by_name=True)

    from_: str | list[str] | None = Field(default=None, alias="from")
    concat: list[str] | None = None
    sep: str = " "
    transforms: list[Any] = []
    default: str | int | float | bool | None = None


class _DateModel(_Strict):
    date: str


class _MapModel(_Strict):
    map: dict[str, str | None]
    strict: bool = False


class _DefaultModel(_Strict):
    default: str | int | float | bool | None


class _ReplaceModel(_Strict):
    replace: dict[str, str]


class _DigitsModel(_Strict):
    digits: Literal[True]


_PARAM_MODELS: dict[str, type[_Strict]] = {
    "date": _DateModel,
    "map": _MapModel,
    "default": _DefaultModel,
    "replace": _ReplaceModel,
    "digits": _DigitsModel,
}


def _loc_path(prefix: str, loc: Iterable[Any]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def _join_hint(*parts: str | None) -> str | None:
    text = " ".join(p for p in parts if p)
    return text or None


def _validate(model: type[BaseModel], data: Any, source: str, prefix: str) -> Any:
    """``model.model_validate(data)`` with errors turned into ``ConfigError``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error.get("loc", ()))
        kind = error.get("type", "")
        allowed = [f.alias or name for name, f in model.model_fields.items()]
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            raise ConfigError(
                source,
                _loc_path(prefix, loc),
                f"unknown key '{key}'",
                _join_hint(_did_you_mean(key, allowed), f"allowed keys: {', '.join(allowed)}"),
            ) from None
        if kind == "missing":
            raise ConfigError(source, _loc_path(prefix, loc), "required key is missing") from None
        if kind == "model_type":
            raise ConfigError(
                source,
                _loc_path(prefix, loc),
                f"expected a mapping with keys {', '.join(allowed)}, got {_type_name(error.get('input'))}",
            ) from None
        got = error.get("input")
        raise ConfigError(
            source,
            _loc_path(prefix, loc),
            f"{error.get('msg', 'invalid value')} (got {_show(got) if isinstance(got, str) else _type_name(got)})",
        ) from None


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return f"{value!r} (a number)"
    if isinstance(value, str):
        return _show(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# ------------------------------------------------------------------ rules


@dataclasses.dataclass(frozen=True)
class _Transform:
    name: str
    param: Any = None
    #: for ``map``: casefolded stripped key -> value; for ``replace``: pairs
    table: Any = None
    strict: bool = False

    def dump(self) -> Any:
        if self.name in SIMPLE_TRANSFORMS:
            return self.name
        if self.name == "map":
            return {"map": self.param, "strict": self.strict}
        return {self.name: self.param}


@dataclasses.dataclass(frozen=True)
class _Rule:
    """One way of producing a target field's value."""

    target: str
    columns: tuple[str, ...] = ()
    concat: tuple[str, ...] = ()
    sep: str = " "
    transforms: tuple[_Transform, ...] = ()
    default: Any = None
    has_default: bool = False

    @property
    def reads(self) -> tuple[str, ...]:
        return self.columns + self.concat

    def final(self) -> str | None:
        if self.transforms and self.transforms[-1].name in _FINAL_TRANSFORMS:
            return self.transforms[-1].name
        return None

    def dump(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.columns:
            data["from"] = list(self.columns)
        if self.concat:
            data["concat"] = list(self.concat)
            data["sep"] = self.sep
        if self.transforms:
            data["transforms"] = [t.dump() for t in self.transforms]
        if self.has_default:
            data["default"] = self.default
        return data


class _Found(list):
    """Result of the ``phone``/``email`` transforms: normalized values, and the
    raw text of fragments that could not be normalized (the Normalizer reports
    them); ``valid`` holds the normalized ones only."""

    valid: list[str]
    #: ``email``: the person's name the cell wrote the address with (Даша <d@mail.ru>)
    name: str | None = None


def _empty(value: Any) -> bool:
    """No text left once cleaned (``clean_text``), an empty collection, or None."""
    if value is None:
        return True
    if isinstance(value, str):
        return _content(value) is None
    if isinstance(value, (list, tuple, dict, set)):
        return len(value) == 0
    return False


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


# --------------------------------------------------------- compiled rules
#
# A mapping is turned into plain functions once instead of dispatching on the
# transform names for every value. An empty value (``_empty``) behaves exactly
# like None everywhere (every transform, the default and the choice of the
# winning rule test for emptiness first), so the compiled steps carry None
# instead: a value passed between them is None or not empty.

_Step = Callable[[Any], Any]

#: What to do with the winning value of a rule.
_PLAIN, _IDENTIFIERS, _SPLIT = 0, 1, 2
_UNBUILT = object()


_content = _CONTENT_RE.search  # a match when ``clean_text`` leaves something


@functools.lru_cache(maxsize=4096)
def _map_key(text: str) -> str:
    """The key a ``map`` transform looks a value up by (values repeat a lot)."""
    return clean_text(text).casefold()


def _or_none(value: Any) -> Any:
    return None if _empty(value) else value


def _compile_transform(transform: _Transform, rule: _Rule, region: str) -> tuple[_Step, bool]:
    """``(step, sure)``: ``step(value)`` for a value that is not empty, giving what
    ``transform`` gives; ``sure`` when the result is known to be None or not empty."""
    name = transform.name
    if name == "strip":
        return (lambda value: clean_text(value) or None), True
    if name == "split_name":
        return (lambda value: clean_text(value) or None), True
    if name == "lower":
        return (lambda value: value.lower() if type(value) is str else _as_text(value).lower()), False
    if name == "upper":
        return (lambda value: value.upper() if type(value) is str else _as_text(value).upper()), False
    if name == "title":
        return (lambda value: value.title() if type(value) is str else _as_text(value).title()), False
    if name == "digits":
        return (lambda value: "".join(ch for ch in _number_text(value) if "0" <= ch <= "9") or None), True
    if name == "replace":
        pairs = transform.table

        def replace(value: Any) -> Any:
            text = _as_text(value)
            for old, new in pairs:
                text = text.replace(old, new)
            return text

        return replace, False
    if name == "map":
        table = {key: _or_none(value) for key, value in transform.table.items()}
        strict = transform.strict
        target = rule.target

        def map_value(value: Any) -> Any:
            key = _map_key(value) if type(value) is str and len(value) <= 200 else clean_text(value).casefold()
            if key in table:
                return table[key]
            if strict:
                raise SkippableRecord(f"{target}: {_show(clean_text(value))} is not one of the mapped values")
            return value

        return map_value, True
    if name == "date":
        fmt = transform.param
        if fmt == "auto":
            what = "a date"
        elif fmt == "excel":
            what = "an Excel date serial number"
        else:
            what = f"a {fmt} date"
        target = rule.target

        fast = _FAST_DATE_RES.get(fmt)

        def date(value: Any) -> Any:
            if fast is not None and type(value) is str:
                match = fast.fullmatch(value)  # what parse_date does first
                if match:
                    try:
                        return dt.date(int(match.group("y")), int(match.group("m")), int(match.group("d"))).isoformat()
                    except ValueError:
                        pass
            try:
                return parse_date(value, fmt).isoformat()
            except ValueError:
                shown = _show(_as_text(value) if not isinstance(value, str) else clean_text(value))
                raise SkippableRecord(f"{target}: {shown} is not {what}") from None

        return date, True
    if name in ("phone", "email"):
        if name == "email":
            items_of: Callable[[Any], list[tuple[str, str | None, str | None]]] = _email_items
        else:
            try:
                items_of = _phone_parser(check_region(region)).items
            except ValueError:  # an unknown region: reported when a phone is met, as before

                def items_of(value: Any) -> list[tuple[str, str | None, str | None]]:
                    return _phone_items(value, region)

        def identifiers(value: Any) -> Any:
            items = items_of(value)
            if len(items) == 1:  # the usual case
                fragment, good, _problem = items[0]
                found = _Found((good or fragment,))
                found.valid = [good] if good else []
                return found
            found = _Found(good or fragment for fragment, good, _problem in items)
            found.valid = [good for _fragment, good, _problem in items if good]
            return found or None

        if name == "email":
            plain = identifiers

            def identifiers(value: Any) -> Any:  # and the name written with the address
                found = plain(value)
                if found is not None and type(value) is str and "<" in value:
                    found.name = _display_name_of(value)
                return found

        return identifiers, True
    raise AssertionError(f"unhandled transform {name}")  # pragma: no cover


def _compile_extract(rule: _Rule) -> _Step:
    """``extract(raw)``: the rule's source value, None when empty."""
    columns, concat, sep = rule.columns, rule.concat, rule.sep
    if len(columns) == 1:
        column = columns[0]

        def one_column(raw: MappingABC[str, object]) -> Any:
            value = raw.get(column)
            if value is None:
                return None
            if type(value) is str:
                return value if _content(value) is not None else None
            return None if _empty(value) else value

        return one_column
    if columns:

        def first_column(raw: MappingABC[str, object]) -> Any:
            for column in columns:
                value = raw.get(column)
                if value is not None and not _empty(value):
                    return value
            return None

        return first_column
    if concat:

        def joined(raw: MappingABC[str, object]) -> Any:
            parts = [clean_text(raw.get(c)) for c in concat]
            return sep.join(p for p in parts if p) or None

        return joined
    return lambda raw: None


def _compile_rule(rule: _Rule, region: str) -> tuple[_Step, Any, int, str, str]:
    """``(run, default, action, single, plural)``: ``run(raw)`` is the value
    after the transforms (None when empty; may raise ``SkippableRecord``),
    ``default`` the value to use then (None when there is none)."""
    extract = _compile_extract(rule)
    steps: list[tuple[_Step | None, Any, bool]] = []
    for transform in rule.transforms:
        if transform.name == "default":
            steps.append((None, _or_none(transform.param), True))
        else:
            step, sure = _compile_transform(transform, rule, region)
            steps.append((step, None, sure))

    if not steps:
        run = extract
    elif len(steps) == 1 and steps[0][0] is not None and len(rule.columns) == 1:
        only, _param, sure = steps[0]
        column = rule.columns[0]

        def run(raw: MappingABC[str, object]) -> Any:  # one column, one transform
            value = raw.get(column)
            if value is None:
                return None
            if type(value) is str:
                if _content(value) is None:
                    return None
            elif _empty(value):
                return None
            value = only(value)
            if not sure and value is not None and _empty(value):
                return None
            return value

    elif len(steps) == 1 and steps[0][0] is not None:
        only, _param, sure = steps[0]

        def run(raw: MappingABC[str, object]) -> Any:
            value = extract(raw)
            if value is None:
                return None
            value = only(value)
            if not sure and value is not None and _empty(value):
                return None
            return value

    else:

        def run(raw: MappingABC[str, object]) -> Any:
            value = extract(raw)
            for step, param, sure in steps:
                if step is None:  # {default: ...}
                    if value is None:
                        value = param
                elif value is not None:
                    value = step(value)
                    if not sure and value is not None and _empty(value):
                        value = None
            return value

    final = rule.final()
    action, single, plural = _PLAIN, "", ""
    if final in ("phone", "email") and rule.target in ("phone", "phones", "email", "emails"):
        action = _IDENTIFIERS
        single, plural = ("phone", "phones") if final == "phone" else ("email", "emails")
    elif final == "split_name":
        action = _SPLIT
    default = _or_none(rule.default) if rule.has_default else None
    return run, default, action, single, plural


# ------------------------------------------------------- headers of unmapped sources

_HEADER_PUNCTUATION = str.maketrans("", "", " \t_-.,:;*№#()/\\\"'")


def _header_key(name: str) -> str:
    return str(name).casefold().replace("ё", "е").translate(_HEADER_PUNCTUATION)


@functools.cache
def _known_headers() -> dict[str, dict[str, int]]:
    """Field (or ``name``, a lone name column) -> header key -> its rank in the list."""
    data = load_yaml(DATA_DIR / "columns.yaml")
    assert isinstance(data, dict)
    return {field: {_header_key(h): rank for rank, h in enumerate(headers)} for field, headers in data.items()}


def recognise_columns(columns: Iterable[str]) -> dict[str, str]:
    """Canonical field -> the column of ``columns`` it is read from when a source has no
    mapping (``hub/data/columns.yaml``): «ФИО», «Телефон», «E-mail», «First Name»... A
    column named like the field itself is not listed (it is read anyway); a lone «Имя»
    is the first name beside a surname column, else the full name."""
    names = [str(c) for c in columns if c is not None]
    present = set(names)
    known = _known_headers()
    found: dict[str, str] = {}
    for field_, spellings in known.items():
        if field_ in present:
            continue
        ranked = [(spellings[key], i, name) for i, name in enumerate(names) if (key := _header_key(name)) in spellings]
        if ranked:
            found[field_] = min(ranked)[2]
    lone = found.pop("name", None)
    if lone is not None and lone not in found.values():
        target = "first_name" if ("last_name" in found or "last_name" in present) else "full_name"
        if target not in found and target not in present:
            found[target] = lone
    return {f: c for f, c in found.items() if f in DEFAULT_COLUMNS}


# ---------------------------------------------------------------- the mapping


class Mapping:
    """A parsed mapping: see the module docstring for the file format."""

    source: str
    id_column: str | None
    fingerprint: str

    def __init__(
        self,
        source: str,
        id_column: str | None,
        fields: dict[str, tuple[_Rule, ...]],
        *,
        identity: bool = False,
        default_region: str = "RU",
        id_columns: Iterable[str] = (),
    ):
        self.source = source
        self.id_column = id_column
        self._fields = fields
        self._identity = identity
        #: the identity mapping: columns holding the record's id in the tool (a csv source's
        #: ``id_column``), never read as a field by their header («Номер» of a numbered sheet)
        self.id_columns = tuple(id_columns)
        #: region for phone numbers without a country code (the ``phone`` transform)
        self.default_region = default_region
        self._plan: tuple[tuple[str, tuple[Any, ...]], ...] = ()
        self._plan_region: object = _UNBUILT  # the region ``_plan`` was built for
        #: the identity mapping's plans by (region, the record's columns)
        self._header_plans: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, tuple[Any, ...]], ...]] = {}
        canonical = {
            "id": id_column,
            "fields": {target: [rule.dump() for rule in rules] for target, rules in fields.items()},
        }
        dump = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        self.fingerprint = hashlib.sha256(dump.encode("utf-8")).hexdigest()

    def __repr__(self) -> str:
        return f"Mapping(source={self.source!r}, fields={list(self._fields)!r})"

    # construction -------------------------------------------------------

    @classmethod
    def load(cls, path: Path, *, default_region: str = "RU") -> Mapping:
        """Read and check a mapping file; raises ``ConfigError`` naming the key path."""
        source = str(path)
        data = load_yaml(Path(path))
        return cls.from_dict(data, source, default_region=default_region)

    @classmethod
    def from_dict(cls, data: dict, source: str, *, default_region: str = "RU") -> Mapping:
        """Build a mapping from already parsed YAML; ``source`` names it in errors."""
        if data is None:
            raise ConfigError(source, "", "the mapping is empty", hint="a mapping needs a 'fields' section")
        if not isinstance(data, MappingABC):
            raise ConfigError(
                source, "", f"a mapping must be a YAML mapping with a 'fields' section, got {_type_name(data)}"
            )
        if data.get("id") is not None:
            column = str(data["id"]).strip()
            raise ConfigError(
                source, "id", "the record id is not set in a mapping",
                hint=f"remove it and set id_column: {column} in the connector's entry in hub.yaml "
                "(a csv option; other tools' records have their own ids)",
            )
        model: _FileModel = _validate(_FileModel, {k: v for k, v in data.items() if k != "id"}, source, "")
        if not model.fields:
            raise ConfigError(source, "fields", "no fields are mapped", hint="map at least one field, e.g. 'email: Email'")
        fields: dict[str, tuple[_Rule, ...]] = {}
        for raw_target, spec in model.fields.items():
            target = str(raw_target)
            where = f"fields.{target}"
            cls._check_target(target, source, where)
            fields[target] = cls._parse_field(target, spec, source, where)
        return cls(source, None, fields, default_region=default_region)

    @classmethod
    def identity(cls, id_columns: Iterable[str] = ()) -> Mapping:
        """Columns named like the canonical fields (``DEFAULT_COLUMNS``) map to themselves;
        where a source has no such column, a common header for the field is read instead
        (:func:`recognise_columns`), except in ``id_columns``."""
        fields = {c: (_Rule(target=c, columns=(c,)),) for c in DEFAULT_COLUMNS if c != "id"}
        return cls(_DEFAULT_SOURCE, "id", fields, identity=True, id_columns=id_columns)

    def with_fields(self, columns: dict[str, str]) -> Mapping:
        """This mapping plus ``target: column`` rules for targets it does not map."""
        extra = {target: (_Rule(target=target, columns=(column,)),) for target, column in columns.items()
                 if target not in self._fields}
        if not extra:
            return self
        return Mapping(self.source, self.id_column, {**self._fields, **extra}, identity=self._identity,
                       default_region=self.default_region, id_columns=self.id_columns)

    @property
    def is_default(self) -> bool:
        """Whether this is the mapping of a source without one (:meth:`identity`)."""
        return self._identity

    @property
    def outbound(self) -> tuple[str, ...]:
        """The categories and segments (``OUTBOUND_FIELDS``) this mapping writes."""
        return tuple(target for target in self._fields if target in OUTBOUND_FIELDS)

    @staticmethod
    def _check_target(target: str, source: str, where: str) -> None:
        if target in CANONICAL_FIELDS or target in OUTBOUND_FIELDS:
            return
        if target.startswith("x_") and len(target) > 2:
            return
        if target == "id":
            raise ConfigError(
                source, where, "'id' is not a field",
                hint="the column holding the record id is the connector's option id_column in hub.yaml (csv)",
            )
        raise ConfigError(
            source,
            where,
            f"unknown field '{target}'",
            _join_hint(
                _did_you_mean(target, CANONICAL_FIELDS + OUTBOUND_FIELDS),
                f"fields: {', '.join(CANONICAL_FIELDS)}; custom fields start with 'x_'; "
                f"written to destinations only: {', '.join(OUTBOUND_FIELDS)}",
            ),
        )

    @classmethod
    def _parse_field(cls, target: str, spec: Any, source: str, where: str) -> tuple[_Rule, ...]:
        if isinstance(spec, (str, int, float)) and not isinstance(spec, bool):
            column = str(spec).strip()
            if not column:
                raise ConfigError(source, where, "empty column name")
            return (_Rule(target=target, columns=(column,)),)
        if isinstance(spec, MappingABC):
            return (cls._parse_rule(target, spec, source, where),)
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(source, where, "an empty list of alternatives")
            rules = []
            for i, item in enumerate(spec):
                item_where = f"{where}[{i}]"
                if isinstance(item, str):
                    rules.extend(cls._parse_field(target, item, source, item_where))
                elif isinstance(item, MappingABC):
                    rules.append(cls._parse_rule(target, item, source, item_where))
                else:
                    raise ConfigError(source, item_where, f"expected a column name or a mapping, got {_type_name(item)}")
            return tuple(rules)
        raise ConfigError(
            source,
            where,
            f"expected a column name, a mapping or a list of mappings, got {_type_name(spec)}",
            hint="e.g. 'phone: Телефон' or 'phone: {from: Телефон, transforms: [phone]}'",
        )

    @classmethod
    def _parse_rule(cls, target: str, spec: MappingABC, source: str, where: str) -> _Rule:
        model: _FieldModel = _validate(_FieldModel, dict(spec), source, where)
        columns: tuple[str, ...] = ()
        if model.from_ is not None:
            raw_columns = [model.from_] if isinstance(model.from_, str) else model.from_
            columns = tuple(c.strip() for c in raw_columns)
            if not columns or any(not c for c in columns):
                raise ConfigError(source, f"{where}.from", "empty column name")
        concat = tuple(c.strip() for c in (model.concat or ()))
        if model.concat is not None and (not concat or any(not c for c in concat)):
            raise ConfigError(source, f"{where}.concat", "concat needs a list of column names")
        if columns and concat:
            raise ConfigError(source, where, "use either 'from' or 'concat', not both")
        has_default = "default" in model.model_fields_set
        if not columns and not concat and not has_default:
            raise ConfigError(
                source, where, "no source column: add 'from', 'concat' or 'default'",
                hint="e.g. {from: Телефон, transforms: [phone]}",
            )
        transforms = tuple(
            cls._parse_transform(target, item, source, f"{where}.transforms[{i}]")
            for i, item in enumerate(model.transforms)
        )
        for i, transform in enumerate(transforms[:-1]):
            if transform.name in _FINAL_TRANSFORMS:
                raise ConfigError(
                    source, f"{where}.transforms[{i}]",
                    f"'{transform.name}' must be the last transform",
                    hint=f"its result is a list or a set of name parts; put other transforms before '{transform.name}'",
                )
        return _Rule(
            target=target,
            columns=columns,
            concat=concat,
            sep=model.sep,
            transforms=transforms,
            default=model.default,
            has_default=has_default,
        )

    @staticmethod
    def _parse_transform(target: str, item: Any, source: str, where: str) -> _Transform:
        all_names = ", ".join(TRANSFORMS)
        if isinstance(item, str):
            name = item.strip()
            if name in PARAM_TRANSFORMS:
                example = {"date": "{date: DD.MM.YYYY}", "map": "{map: {Мск: Москва}}", "default": "{default: value}",
                           "replace": "{replace: {old: new}}", "digits": "{digits: true}"}[name]
                raise ConfigError(source, where, f"transform '{name}' needs a value", hint=f"write it as {example}")
            if name not in SIMPLE_TRANSFORMS:
                raise ConfigError(
                    source, where, f"unknown transform '{name}'",
                    _join_hint(_did_you_mean(name, TRANSFORMS), f"transforms: {all_names}"),
                )
            transform = _Transform(name)
        elif isinstance(item, MappingABC):
            keys = [str(k) for k in item]
            names = [k for k in keys if k in PARAM_TRANSFORMS]
            if len(names) != 1:
                if not names:
                    unknown = keys[0] if keys else ""
                    if unknown in SIMPLE_TRANSFORMS:
                        raise ConfigError(source, where, f"transform '{unknown}' takes no value",
                                          hint=f"write it as a plain list item: {unknown}")
                    raise ConfigError(
                        source, where, f"unknown transform '{unknown}'" if keys else "empty transform",
                        _join_hint(_did_you_mean(unknown, TRANSFORMS), f"transforms: {all_names}"),
                    )
                raise ConfigError(source, where, f"one transform per list item, found {', '.join(names)}",
                                  hint="write each transform as its own list item")
            name = names[0]
            model = _validate(_PARAM_MODELS[name], dict(item), source, where)
            if name == "date":
                fmt = model.date.strip()
                canonical = {f.lower(): f for f in DATE_FORMATS}.get(fmt.lower())
                if canonical is None:
                    raise ConfigError(source, f"{where}.date", f"unknown date format '{fmt}'",
                                      hint=f"formats: {', '.join(DATE_FORMATS)}")
                transform = _Transform("date", canonical)
            elif name == "map":
                table: dict[str, str | None] = {}
                for key, value in model.map.items():
                    folded = clean_text(key).casefold()
                    if folded in table and table[folded] != value:
                        raise ConfigError(source, f"{where}.map", f"'{key}' is mapped twice (keys ignore case)")
                    table[folded] = value
                transform = _Transform("map", dict(model.map), table=table, strict=model.strict)
            elif name == "replace":
                if any(old == "" for old in model.replace):
                    raise ConfigError(source, f"{where}.replace", "the text to replace cannot be empty")
                transform = _Transform("replace", dict(model.replace), table=tuple(model.replace.items()))
            elif name == "default":
                transform = _Transform("default", model.default)
            else:
                transform = _Transform("digits", True)
        else:
            raise ConfigError(
                source, where, f"expected a transform name or a one-key mapping, got {_type_name(item)}",
                hint=f"transforms: {all_names}",
            )

        name = transform.name
        if name == "split_name" and target != "full_name":
            raise ConfigError(source, where, "'split_name' only works on full_name",
                              hint="map the column to full_name; the name parts are filled from it")
        if name == "phone" and target not in ("phone", "phones") and not target.startswith("x_"):
            raise ConfigError(source, where, f"'phone' cannot be used on {target}", hint="use it on phone or phones")
        if name == "email" and target not in ("email", "emails") and not target.startswith("x_"):
            raise ConfigError(source, where, f"'email' cannot be used on {target}", hint="use it on email or emails")
        return transform

    # use ----------------------------------------------------------------

    @property
    def columns(self) -> set[str]:
        """Every source column the mapping reads (the id column included)."""
        cols = {c for rules in self._fields.values() for rule in rules for c in rule.reads}
        if self.id_column:
            cols.add(self.id_column)
        return cols

    def check_columns(self, available: Iterable[str], where: str) -> None:
        """Raise ``ConfigError`` for the first field reading a column that is not
        in ``available``. A ``from`` list needs one of its columns, ``concat`` all
        of them, a list of alternatives one workable alternative. The identity
        mapping only needs one of its columns."""
        available_list = [str(c) for c in available]
        present = set(available_list)
        shown = ", ".join(available_list[:_HINT_COLUMNS])
        if len(available_list) > _HINT_COLUMNS:
            shown += f", … ({len(available_list) - _HINT_COLUMNS} more)"
        columns_hint = f"columns there: {shown}" if available_list else "there are no columns there"

        if self._identity:
            if not any(c in present for c in DEFAULT_COLUMNS) and not recognise_columns(self._by_header(available_list)):
                raise ConfigError(
                    self.source,
                    "",
                    f"none of the columns {', '.join(DEFAULT_COLUMNS)} (or a common header for them such as "
                    f"ФИО, Телефон, E-mail) found in {where}",
                    hint=f"{columns_hint}; write a mapping for these columns",
                )
            return

        for target, rules in self._fields.items():
            if target in OUTBOUND_FIELDS:
                continue  # written only: the column may not exist yet
            missing: list[str] | None = None
            for rule in rules:
                if rule.columns:
                    gone = [] if any(c in present for c in rule.columns) else list(rule.columns)
                else:
                    gone = [c for c in rule.concat if c not in present]
                if not gone:
                    missing = None
                    break
                if missing is None:
                    missing = gone
            if missing:
                if len(missing) == 1:
                    message = f"column '{missing[0]}' not found in {where}"
                else:
                    message = f"none of the columns {', '.join(repr(c) for c in missing)} found in {where}"
                raise ConfigError(
                    self.source,
                    f"fields.{target}",
                    message,
                    hint=_join_hint(_did_you_mean(missing[0], available_list), columns_hint),
                )

    def read_as(self, available: Iterable[str]) -> dict[str, str]:
        """The identity mapping's field -> the column of ``available`` it reads: a column
        named like the field, else a common header for it (:func:`recognise_columns`)."""
        present = [str(c) for c in available if c is not None]
        found = {c: c for c in DEFAULT_COLUMNS if c != "id" and c in present}
        for target, column in recognise_columns(self._by_header(present)).items():
            found.setdefault(target, column)
        return found

    def _by_header(self, columns: Iterable[str]) -> list[str]:
        """The columns a field may be recognised in by its header: not the record's id."""
        return [c for c in columns if c not in self.id_columns]

    def apply(self, raw: MappingABC[str, object], problems: list[str] | None = None) -> dict[str, object]:
        """Canonical field -> value for one source record (before the Normalizer).

        Empty cells leave the field absent unless a default applies. When a
        transform rejects a value (a bad date, a value missing from a strict map)
        the field is left out and the reason appended to ``problems``; without a
        ``problems`` list, ``SkippableRecord`` is raised instead."""
        if self._identity:
            plan = self._header_plans.get((self.default_region, tuple(raw))) or self._compile_for(tuple(raw))
        else:
            plan = self._plan if self._plan_region == self.default_region else self._compile()
        out: dict[str, object] = {}
        implied: dict[str, object] | None = None
        written_with: str | None = None  # a name the e-mail address was written with
        for target, rules in plan:
            for run, default, action, single, plural in rules:
                try:
                    value = run(raw)
                except SkippableRecord as error:
                    if problems is None:
                        raise
                    problems.append(error.message)
                    break  # the field is left out; later alternatives are not tried
                if value is None:
                    value = default
                    if value is None:
                        continue
                if action == _PLAIN:
                    out[target] = value
                elif action == _IDENTIFIERS:
                    if single == "email" and written_with is None and type(value) is _Found:
                        written_with = value.name
                    if type(value) is _Found and len(value) == 1:  # the usual case, as below
                        first = value[0]
                        if target == single and single not in out:
                            out[single] = value.valid[0] if value.valid else first
                        earlier = out.get(plural)
                        if earlier:
                            merged = list(earlier)
                            if first not in merged:
                                merged.append(first)
                            out[plural] = merged
                        else:
                            out[plural] = [first]
                        break
                    items = list(value)
                    if target == single and single not in out:
                        valid = getattr(value, "valid", None) or items
                        out[single] = valid[0]
                    merged = list(out.get(plural) or [])
                    merged.extend(v for v in items if v not in merged)
                    out[plural] = merged
                else:
                    out[target] = value
                    parts = split_full_name(value)  # a new dict
                    if implied is None:
                        implied = parts
                    else:
                        for part, part_value in parts.items():
                            implied.setdefault(part, part_value)
                break
        if written_with and not any(f in out for f in NAME_FIELDS):
            # a record with no name but an address written with one: the person's name
            out["full_name"] = written_with
            implied = {**split_full_name(written_with), **(implied or {})}
        if implied:
            for part, part_value in implied.items():
                out.setdefault(part, part_value)
        return out

    def _compile(self) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        region = self.default_region
        plan = tuple(
            (target, tuple(_compile_rule(rule, region) for rule in rules)) for target, rules in self._fields.items()
            if target not in OUTBOUND_FIELDS  # computed by hub, never read from a source
        )
        self._plan, self._plan_region = plan, region
        return plan

    def _compile_for(self, columns: tuple[str, ...]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        """The identity mapping's plan for a record with these columns."""
        found = recognise_columns(self._by_header(columns))
        fields = {target: (_Rule(target=target, columns=(found[target],)),) if target in found else rules
                  for target, rules in self._fields.items()}
        region = self.default_region
        plan = tuple(
            (target, tuple(_compile_rule(rule, region) for rule in rules)) for target, rules in fields.items()
            if target not in OUTBOUND_FIELDS
        )
        if len(self._header_plans) >= 64:  # records whose columns keep changing: start again
            self._header_plans.clear()
        self._header_plans[(region, columns)] = plan
        return plan

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_plan"], state["_plan_region"] = (), _UNBUILT  # functions: built again when used
        state["_header_plans"] = {}
        return state

    def reverse(self, values: MappingABC[str, object]) -> dict[str, object]:
        """Canonical values -> destination columns.

        Fields read from a single ``from`` column are written to that column; a
        one-to-one ``map`` is inverted and a date is written back in the
        mapping's format. Fields built with ``concat`` or read from a list of
        columns are not written, nor is the id column. Values absent from
        ``values`` are not written."""
        out: dict[str, object] = {}
        if self._identity:
            for column in DEFAULT_COLUMNS:
                if column != "id" and column in values:
                    out[column] = values[column]
            return out
        for target, rules in self._fields.items():
            rule = rules[0]
            if len(rule.columns) != 1 or rule.concat or target not in values:
                continue
            column = rule.columns[0]
            if column == self.id_column or column in out:
                continue
            value = values[target]
            for transform in reversed(rule.transforms):
                value = self._unapply(transform, value)
            if isinstance(value, (list, tuple)):
                value = ", ".join(str(v) for v in value)
            out[column] = value
        return out

    def field_of(self, column: str) -> str | None:
        """The canonical field ``reverse`` writes to ``column``; ``None`` if none."""
        if self._identity:
            return column if column in DEFAULT_COLUMNS and column != "id" else None
        for target, rules in self._fields.items():
            rule = rules[0]
            if len(rule.columns) == 1 and not rule.concat and rule.columns[0] == column:
                return target
        return None

    def column_of(self, field: str) -> str | None:
        """The column ``reverse`` writes ``field`` to; ``None`` if none (:meth:`field_of`'s twin)."""
        return next(iter(self.reverse({field: ""})), None)

    @staticmethod
    def _unapply(transform: _Transform, value: Any) -> Any:
        if value is None:
            return None
        if transform.name == "map":
            pairs = [(k, v) for k, v in transform.param.items() if v is not None]
            targets = [clean_text(v).casefold() for _, v in pairs]
            if len(set(targets)) != len(targets):
                return value  # not one-to-one
            inverse = {t: k for (k, _), t in zip(pairs, targets)}
            return inverse.get(clean_text(value).casefold(), value)
        if transform.name == "date" and transform.param not in ("auto", "excel") and isinstance(value, (str, dt.date)):
            try:
                date = value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
            except ValueError:
                return value
            pattern = transform.param
            return (
                pattern.replace("YYYY", f"{date.year:04d}").replace("MM", f"{date.month:02d}").replace("DD", f"{date.day:02d}")
            )
        return value
