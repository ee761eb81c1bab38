"""hub.yaml: pydantic models, loading, ``$VAR`` secrets and error messages.

Every problem becomes a ``ConfigError`` of the form ``file: path.to.key: message``
with a hint; the CLI prints it without a traceback and exits with code 2.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hub.connector import Connector, ConnectorOptions, check_timezone
from hub.errors import ConfigError
from hub.mapping import Mapping
from hub.model import CANONICAL_FIELDS
from hub.normalize import normalization_version
from hub.redact import register_secret
from hub.segments.config import CategoriesConfig, Duration, SegmentConfig
from hub.segments.config import check as check_segments
from hub.yaml_loader import load_yaml

DEFAULT_CONFIG = "hub.yaml"
CONFIG_ENV = "HUB_CONFIG"

Strategy = Literal["source_priority", "most_recent", "most_complete"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class ConnectorConfig(BaseModel):
    """One entry under ``connectors:``. Keys other than these are the plugin's options."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    plugin: str = Field(description="Connector plugin name, as listed by `hub plugins`.")
    role: Literal["source", "destination", "both"] = Field(
        "source", description="Read from the tool, write to it, or both."
    )
    mapping: str | None = Field(
        None,
        description="Mapping file (relative to hub.yaml) or name in mappings/; default "
        "mappings/<connector>.yaml, then mappings/<plugin>.yaml, else canonical columns.",
    )
    enabled: bool = True

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def reads(self) -> bool:
        return self.role in ("source", "both")

    @property
    def writes(self) -> bool:
        return self.role in ("destination", "both")


class IdentityConfig(StrictModel):
    """How records are recognised as one person."""

    match_on: list[Literal["email", "phone"]] = Field(
        default_factory=lambda: ["email", "phone"],
        description="Identifiers whose equal normalized value means the same contact.",
    )
    merge_at: float = Field(0.9, ge=0, le=1, description="Score above which records merge automatically.")
    review_at: float = Field(0.7, ge=0, le=1, description="Score above which a pair goes to `hub review`.")


class NormalizeConfig(StrictModel):
    default_region: str = Field("RU", description="Region for phone numbers written without a country code.")
    city_aliases: dict[str, str] = Field(default_factory=dict, description="Extra city aliases: alias -> city.")

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        from hub.normalize import check_region

        return check_region(value)


class MergeConfig(StrictModel):
    """Survivorship: which source's value a contact keeps for each field."""

    default: Strategy = Field("most_recent", description="Strategy for fields not listed in `fields`.")
    source_priority: list[str] = Field(
        default_factory=list,
        description="Connector names, most trusted first; unlisted connectors follow in hub.yaml order.",
    )
    fields: dict[str, Strategy] = Field(
        default_factory=dict, description="Per-field strategy; full_name (all name parts) defaults to most_complete."
    )

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, Strategy]) -> dict[str, Strategy]:
        for name in value:
            if name not in CANONICAL_FIELDS and not name.startswith("x_"):
                raise ValueError(f"unknown field {name!r}{_did_you_mean(name, CANONICAL_FIELDS)}")
        return value


class GuardsConfig(StrictModel):
    mass_delete_threshold: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Stop a run that would remove more than this share of a source's records "
        "(0.05 or '5%'), unless --allow-mass-delete.",
    )

    @field_validator("mass_delete_threshold", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().endswith("%"):
            return float(value.strip()[:-1]) / 100
        return value


class ScheduleJob(StrictModel):
    """One scheduled job: a sync, or the clean-up."""

    cron: str = Field(description="Five-field cron expression (minute hour day month weekday), e.g. '*/15 * * * *'.")
    run: Literal["sync", "clean"] = Field(
        "sync", description="sync: a sync of `connectors`; clean: `hub clean` with the clean: settings."
    )
    connectors: list[str] = Field(
        default_factory=list, description="Connectors this job syncs; empty: every enabled connector."
    )

    @model_validator(mode="after")
    def _clean_takes_no_connectors(self) -> "ScheduleJob":
        if self.run == "clean" and self.connectors:
            raise ValueError("a clean job takes no connectors (it cleans the whole store): remove connectors:")
        return self

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        value = " ".join(value.split())
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a five-field cron expression (minute hour day month weekday)")
        return value


class CleanConfig(StrictModel):
    """``hub clean``: the weekly clean-up."""

    spam_after: Duration | None = Field(
        "30d", validate_default=True,
        description="Remove spam form submissions received longer ago than this (hub leads clean); null keeps them.")
    inactive_after: Duration | None = Field(
        "730d", validate_default=True,
        description="A contact with no activity for this long is inactive (90d, 12m, 2y); null: never.")
    inactive: Literal["flag", "delete"] = Field(
        "flag", description="flag: set x_inactive_since on the contact; delete: remove it from the base and the "
        "destinations (behind guards.mass_delete_threshold).")


class ScheduleConfig(StrictModel):
    """``hub schedule``: when to sync."""

    jobs: dict[str, ScheduleJob] = Field(default_factory=dict, description="Named jobs: cron and connectors.")
    timezone: str = Field("UTC", description="Time zone the cron expressions are read in, e.g. Europe/Moscow.")
    missed: Literal["run_once", "skip"] = Field(
        "run_once",
        description="A time missed while hub schedule was stopped or a run was busy: run_once runs the job "
        "once as soon as possible; skip waits for the next time.",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_timezone(value)


class HubConfig(StrictModel):
    """The whole of hub.yaml."""

    store: str | None = Field(
        None, description="SQLAlchemy URL of the store; default: SQLite file hub.db next to hub.yaml."
    )
    connectors: dict[str, ConnectorConfig] = Field(default_factory=dict)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    merge: MergeConfig = Field(default_factory=MergeConfig)
    guards: GuardsConfig = Field(default_factory=GuardsConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig, description="hub clean: the weekly clean-up.")
    categories: CategoriesConfig = Field(
        default_factory=CategoriesConfig, description="How contacts are categorised (docs/segments.md).")
    segments: dict[str, SegmentConfig] = Field(
        default_factory=dict, description="Named segments: conditions on categories and fields (docs/segments.md).")


class LoadedConfig:
    """A validated config with everything resolved: paths, plugins, options, mappings."""

    def __init__(self, path: Path, model: HubConfig, classes: dict[str, type[Connector]]):
        self.path = path
        self.base_dir = path.parent
        self.model = model
        self.classes = classes
        self.options: dict[str, ConnectorOptions] = {}
        self.mappings: dict[str, Mapping] = {}

    @property
    def store_url(self) -> str:
        return resolve_store_url(self.model.store, self.base_dir)

    @property
    def connectors(self) -> dict[str, ConnectorConfig]:
        return {name: c for name, c in self.model.connectors.items() if c.enabled}

    def priority(self) -> list[str]:
        listed = [name for name in self.model.merge.source_priority]
        return listed + [name for name in self.model.connectors if name not in listed]

    def fingerprint(self, name: str) -> str:
        """Changes when what a connector reads, how it is mapped or how hub normalizes changes.

        Options left at their defaults do not count, so a release that adds an option
        does not make every stored record look changed (and be read and matched again)."""
        entry = self.model.connectors[name]
        data = {
            "plugin": entry.plugin,
            "options": self.options[name].model_dump(mode="json", exclude_defaults=True),
            "mapping": self.mappings[name].fingerprint,
            "normalize": self.model.normalize.model_dump(mode="json", exclude_defaults=True),
            "normalization": normalization_version(),
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def resolve_store_url(url: str | None, base_dir: Path) -> str:
    if not url:
        return f"sqlite:///{(base_dir / 'hub.db').resolve()}"
    match = re.match(r"^(sqlite(?:\+\w+)?:///)(?!/)(.+)$", url)
    if match and match.group(2) != ":memory:":
        return f"{match.group(1)}{(base_dir / match.group(2)).resolve()}"
    return url


_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|(?P<escaped>\$))")


def substitute_env(data: Any, file: str, path: str = "") -> Any:
    """Replace ``$VAR`` and ``${VAR}`` in strings; ``$$`` is a literal ``$``.

    A variable that is not set is an error: a secret is never silently empty.
    Substituted values are registered as secrets so they are redacted everywhere."""
    if isinstance(data, dict):
        return {key: substitute_env(value, file, _join(path, key)) for key, value in data.items()}
    if isinstance(data, list):
        return [substitute_env(value, file, f"{path}[{i}]") for i, value in enumerate(data)]
    if not isinstance(data, str) or "$" not in data:
        return data

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("plain")
        value = os.environ.get(name)
        if value is None or value == "":
            raise ConfigError(
                file,
                path,
                f"environment variable {name} is not set",
                hint=f"export {name}=... before running hub (or write $$ for a literal dollar sign)",
            )
        register_secret(value)
        return value

    return _VAR.sub(replace, data)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def format_location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = _join(out, part)
    return out


def raise_validation_error(error: ValidationError, file: str, prefix: str = "", model: type[BaseModel] | None = None) -> None:
    """Turn the first pydantic error into a ConfigError with a dotted path and a hint."""
    # A misspelled key also makes the right one "missing": name the misspelling first.
    errors = sorted(error.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    path = _join(prefix, format_location(loc)) if loc else prefix
    kind = first["type"]
    message = first["msg"]
    hint = None
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1]) if model else []
        message = f"unknown key {loc[-1]!r}{_did_you_mean(loc[-1], allowed)}"
        hint = f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it"
    elif kind == "missing":
        message = "required key is missing"
        hint = f"add '{loc[-1]}:' here"
    elif kind == "literal_error":
        hint = "use one of the values listed"
    elif kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
    else:
        got = first.get("input")
        if got is not None and not isinstance(got, (dict, list)):
            message = f"{message} (got {type(got).__name__} {str(got)[:60]!r})"
            if not isinstance(got, str):
                hint = "quote the value in YAML if it is meant as text"
            elif kind in ("int_parsing", "float_parsing", "int_from_float"):
                hint = "write a plain number, without units or quotes"
            elif kind == "bool_parsing":
                hint = "write true or false"
    extra = f"; {len(error.errors()) - 1} more problem(s) after this one" if len(error.errors()) > 1 else ""
    raise ConfigError(file, path, message + extra, hint) from None


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return []
        if part not in fields:
            return []
        current = _field_model(fields[part].annotation)
    fields = getattr(current, "model_fields", None)
    return sorted(info.alias or name for name, info in fields.items()) if fields else []


def _field_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = getattr(annotation, "__args__", ())
    for arg in reversed(args):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def find_config(explicit: str | None) -> Path:
    path = Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    if not path.exists():
        raise ConfigError(
            str(path), "", "config file not found", hint="run `hub init` to create one, or pass --config FILE"
        )
    if path.is_dir():
        raise ConfigError(str(path), "", "is a folder, not a config file", hint="pass the path of hub.yaml")
    return path


#: A connector name: it is typed in SOURCE:ID references, URLs (/hooks/NAME) and file names.
_CONNECTOR_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _bad_connector_name(file: str, where: str, name: str) -> None:
    wrong = list(dict.fromkeys(ch for ch in name if not _CONNECTOR_NAME.fullmatch(ch)))
    simple = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")
    raise ConfigError(
        file,
        where,
        "a connector name holds only Latin letters, digits, '_' and '-'"
        + (f"; not {', '.join(repr(ch) for ch in wrong[:3])}{', ...' if len(wrong) > 3 else ''}" if wrong
           else "; it is empty"),
        hint=f"rename it{f', e.g. {simple}' if simple else ''}: the name is typed in SOURCE:ID references "
        f"(hub show {simple or 'NAME'}:1), in URLs and in file names",
    )


def load_config(path: Path, classes: dict[str, type[Connector]]) -> LoadedConfig:
    file = str(path)
    raw = load_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(file, "", "the top level must be a mapping of keys", hint="see `hub schema`")
    raw = substitute_env(raw, file)
    try:
        model = HubConfig.model_validate(raw)
    except ValidationError as error:
        raise_validation_error(error, file, model=HubConfig)
    loaded = LoadedConfig(path.resolve(), model, classes)
    for name, entry in model.connectors.items():
        where = f"connectors.{name}"
        if not _CONNECTOR_NAME.fullmatch(name):
            _bad_connector_name(file, where, name)
        cls = classes.get(entry.plugin)
        if cls is None:
            raise ConfigError(
                file,
                f"{where}.plugin",
                f"no connector plugin named {entry.plugin!r}{_did_you_mean(entry.plugin, classes)}",
                hint=f"installed: {', '.join(sorted(classes)) or 'none'} (see `hub plugins`)",
            )
        if entry.reads and "read" not in cls.capabilities:
            raise ConfigError(file, f"{where}.role", f"plugin {entry.plugin!r} cannot read", hint="use role: destination")
        if entry.writes and "write" not in cls.capabilities:
            raise ConfigError(file, f"{where}.role", f"plugin {entry.plugin!r} cannot write", hint="use role: source")
        try:
            loaded.options[name] = cls.Options.model_validate(entry.options)
        except ValidationError as error:
            raise_validation_error(error, file, prefix=where, model=cls.Options)
        loaded.mappings[name] = _load_mapping(loaded, name, entry, file).with_fields(cls.implied_fields)
    for job_name, job in model.schedule.jobs.items():
        if not _cron_matches(job.cron):
            raise ConfigError(
                file,
                f"schedule.jobs.{job_name}.cron",
                f"{job.cron!r} never comes: no month it names has that day",
                hint="use a day every month named has (up to 29 in February, 30 in April, June, September and "
                "November), or L for the last day of the month, e.g. '0 0 L 2 *'",
            )
        for i, name in enumerate(job.connectors):
            if name not in model.connectors:
                raise ConfigError(
                    file,
                    f"schedule.jobs.{job_name}.connectors[{i}]",
                    f"no connector named {name!r}{_did_you_mean(name, model.connectors)}",
                    hint="list names from `connectors:`",
                )
    check_segments(model.categories, model.segments, file)
    for i, name in enumerate(model.merge.source_priority):
        if name not in model.connectors:
            raise ConfigError(
                file,
                f"merge.source_priority[{i}]",
                f"no connector named {name!r}{_did_you_mean(name, model.connectors)}",
                hint="list names from `connectors:`",
            )
    return loaded


def _cron_matches(cron: str) -> bool:
    """Whether a valid cron expression ever comes (``0 0 30 2 *`` never does)."""
    import datetime as dt

    from croniter import CroniterBadDateError, croniter

    try:
        croniter(cron, dt.datetime(2000, 1, 1)).get_next(dt.datetime)
    except CroniterBadDateError:
        return False
    return True


def _load_mapping(loaded: LoadedConfig, name: str, entry: ConnectorConfig, file: str) -> Mapping:
    mappings_dir = loaded.base_dir / "mappings"
    region = loaded.model.normalize.default_region
    if entry.mapping:
        candidate = Path(entry.mapping)
        if candidate.suffix not in (".yaml", ".yml"):
            candidate = mappings_dir / f"{entry.mapping}.yaml"
        elif not candidate.is_absolute():
            candidate = loaded.base_dir / candidate
        if not candidate.exists():
            raise ConfigError(
                file,
                f"connectors.{name}.mapping",
                f"mapping file {candidate} not found",
                hint="give a path relative to hub.yaml or a name of a file in mappings/",
            )
        return Mapping.load(candidate, default_region=region)
    for default in (mappings_dir / f"{name}.yaml", mappings_dir / f"{entry.plugin}.yaml"):
        if default.exists():
            return Mapping.load(default, default_region=region)
    options = loaded.options[name]
    return Mapping.identity(str(column) for column in (getattr(options, "id_column", None),
                                                       getattr(options, "key_column", None)) if column)


def json_schema() -> dict[str, Any]:
    schema = HubConfig.model_json_schema()
    schema["title"] = "hub.yaml"
    return schema
