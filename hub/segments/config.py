"""``categories:`` and ``segments:`` of hub.yaml: pydantic models, defaults, checks.

Rules are data: conditions with one subject and one test, combined with ``all``,
``any`` and ``not``. Nothing is evaluated as code. See docs/segments.md.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from hub.errors import ConfigError
from hub.model import CANONICAL_FIELDS, CONSENT_CHANNELS, CONSENT_STATUSES

#: Categories a segment condition can name (columns of the ``categories`` table).
CATEGORY_NAMES: tuple[str, ...] = (
    "stage", "temperature", "rfm_r", "rfm_f", "rfm_m", "rfm", "rfm_segment", "abc", "region", "activity",
)
NUMERIC_CATEGORIES = frozenset({"rfm_r", "rfm_f", "rfm_m"})
FACTS: tuple[str, ...] = ("orders", "revenue", "days_since_order", "days_since_activity")
TIME_FACTS = frozenset({"days_since_order", "days_since_activity"})
STAGES: tuple[str, ...] = (
    "white", "gray", "green", "yellow", "green-gold", "gold", "platinum", "red-green", "red-gold", "red-platinum",
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|h|d|w|m|y)\s*$")
_UNITS = {"s": dt.timedelta(seconds=1), "min": dt.timedelta(minutes=1), "h": dt.timedelta(hours=1),
          "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1), "m": dt.timedelta(days=30),
          "y": dt.timedelta(days=365)}

#: The longest duration: ``now`` minus it is still a date (``clean.inactive_after``).
LONGEST_DURATION = dt.timedelta(days=365 * 1000)


def parse_duration(value: Any, *, m: Literal["months", "minutes"] = "months") -> dt.timedelta:
    """``90d``, ``12m`` (months of 30 days), ``1y`` (365 days), ``24h``, ``2w``, ``30min``,
    ``45s``; at most ``1000y``, so that ``now`` minus it is still a date. The one parser of
    durations: settings, ``hub leads --since`` and ``--older-than``. ``m="minutes"``: ``m``
    is minutes, for a setting measured in them (a burst window: ``10m``)."""
    if isinstance(value, dt.timedelta):
        return value
    match = _DURATION.match(value.lower()) if isinstance(value, str) else None
    if not match:
        examples = "30s, 10m, 1h, 1d" if m == "minutes" else "90d, 12m, 1y, 24h, 2w, 30min"
        raise ValueError(f"{value!r} is not a duration; write a number and a unit: {examples}")
    number, unit = float(match.group(1)), match.group(2)
    size = _UNITS["min"] if unit == "m" and m == "minutes" else _UNITS[unit]
    if number * size.total_seconds() > LONGEST_DURATION.total_seconds():  # also more than a timedelta holds
        raise ValueError(f"{value!r} is too long; a duration is at most 1000y")
    return number * size


def duration_text(span: dt.timedelta, *, m: Literal["months", "minutes"] = "months") -> str:
    """A duration as ``parse_duration`` reads it back: ``30d``, ``12h``, minutes as
    ``min`` (``m`` with ``m="minutes"``), else ``45s``."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m" if m == "minutes" else "min", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _not_too_long(value: dt.timedelta) -> dt.timedelta:
    if value > LONGEST_DURATION:  # an ISO 8601 one (P5000Y)
        raise ValueError("too long; a duration is at most 1000y")
    return value


def _duration(value: Any) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("P", "p"):
        return value.strip().upper()  # ISO 8601 (P90D), as `hub schema` shows defaults: pydantic reads it
    return parse_duration(value)


Duration = Annotated[dt.timedelta, BeforeValidator(_duration), AfterValidator(_not_too_long)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, populate_by_name=True)


class Condition(_Strict):
    """One subject (fact, event, latest_event, field, consent, category, segment) and one
    test, or a combinator (all, any, not)."""

    fact: Literal["orders", "revenue", "days_since_order", "days_since_activity"] | None = None
    event: list[str] | None = Field(None, description="The contact has an event of one of these types.")
    latest_event: list[str] | None = Field(None, description="The latest funnel event is one of these types.")
    field: str | None = Field(None, description="A contact field: city, company, x_...")
    consent: Literal["email", "sms", "messenger"] | None = None
    category: Literal[CATEGORY_NAMES] | None = None  # type: ignore[valid-type]
    segment: str | None = None
    is_: str | None = Field(None, alias="is")
    in_: list[str] | None = Field(None, alias="in")
    not_in: list[str] | None = None
    min: float | None = None
    max: float | None = None
    min_duration: str | None = Field(None, description="`stopped` or a duration such as 90d (days_since_* facts).")
    max_duration: str | None = None
    exists: bool | None = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(None, alias="not")

    @model_validator(mode="after")
    def _shape(self) -> Condition:
        subjects = [name for name in ("fact", "event", "latest_event", "field", "consent", "category", "segment",
                                      "all", "any", "not_") if getattr(self, name) is not None]
        if len(subjects) != 1:
            named = ", ".join(s.rstrip("_") for s in subjects) or "none"
            raise ValueError(
                f"a condition needs exactly one of fact, event, latest_event, field, consent, category, segment, "
                f"all, any, not (found: {named})")
        subject = subjects[0]
        tests = [name for name in ("is_", "in_", "not_in", "min", "max", "min_duration", "max_duration", "exists")
                 if getattr(self, name) is not None]
        if subject in ("all", "any", "not_", "event", "latest_event", "segment"):
            if tests:
                raise ValueError(f"{subject.rstrip('_')} takes no test ({', '.join(t.rstrip('_') for t in tests)})")
            if subject in ("event", "latest_event") and not getattr(self, subject):
                raise ValueError(f"{subject} needs at least one event type")
            return self
        if len(tests) != 1 and not (set(tests) <= {"min", "max"} and tests):
            raise ValueError("a condition needs one test: is, in, not_in, min, max (both allowed), "
                             "min_duration, max_duration or exists")
        durations = {"min_duration", "max_duration"} & set(tests)
        if durations and self.fact not in TIME_FACTS:
            raise ValueError("min_duration and max_duration apply to days_since_order and days_since_activity")
        for name in durations:
            value = getattr(self, name)
            if value != "stopped":
                parse_duration(value)
        if self.field is not None and self.field not in CANONICAL_FIELDS and not self.field.startswith("x_"):
            raise ValueError(f"unknown field {self.field!r}; fields: {', '.join(CANONICAL_FIELDS)}; custom ones "
                             "start with x_")
        return self


class StageRule(_Strict):
    value: str = Field(description="The stage given when every condition holds.")
    when: list[Condition] = Field(default_factory=list, description="Conditions, all of which must hold.")


def _rule(value: str, *when: dict[str, Any]) -> StageRule:
    return StageRule.model_validate({"value": value, "when": list(when)})


def default_stage_rules() -> list[StageRule]:
    stopped = {"fact": "days_since_order", "min_duration": "stopped"}
    return [
        _rule("red-platinum", {"fact": "orders", "min": 4}, stopped),
        _rule("platinum", {"fact": "orders", "min": 4}),
        _rule("red-gold", {"fact": "orders", "min": 1}, stopped),
        _rule("gold", {"fact": "orders", "min": 1}),
        _rule("red-green", {"latest_event": ["refused"]}),
        _rule("green-gold", {"event": ["request", "form"]}),
        _rule("yellow", {"any": [{"event": ["newsletter_agreed"]}, {"consent": "email", "in": ["subscribed"]}]}),
        _rule("green", {"event": ["offer_considered"]}),
        _rule("gray", {"event": ["decision_maker"]}),
        _rule("white"),
    ]


class StageConfig(_Strict):
    stopped_after: Duration = Field(dt.timedelta(days=365), description="No purchase for this long: stopped.")
    funnel_events: list[str] = Field(
        default_factory=lambda: ["decision_maker", "offer_considered", "newsletter_agreed", "request", "form",
                                 "refused"],
        description="Event types latest_event looks at.")
    rules: list[StageRule] = Field(default_factory=default_stage_rules, description="First match wins.")


class TemperatureConfig(_Strict):
    hot: Duration = Field(dt.timedelta(days=90), description="Last purchase or interaction within: hot.")
    warm: Duration = Field(dt.timedelta(days=365), description="Within: warm; older or none: cold.")
    events: list[str] = Field(
        default_factory=lambda: ["purchase", "form", "request", "decision_maker", "offer_considered",
                                 "newsletter_agreed", "email_click", "sms_received"],
        description="Event types that count as a purchase or an interaction.")

    @model_validator(mode="after")
    def _order(self) -> TemperatureConfig:
        if self.warm <= self.hot:
            raise ValueError("warm must be longer than hot (e.g. hot: 90d, warm: 365d)")
        return self


class Range(_Strict):
    min: int | None = Field(None, ge=1, le=5)
    max: int | None = Field(None, ge=1, le=5)


class RfmSegment(_Strict):
    name: str
    r: Range | None = None
    f: Range | None = None
    m: Range | None = None


def default_rfm_segments() -> list[RfmSegment]:
    data: list[dict[str, Any]] = [
        {"name": "champions", "r": {"min": 4}, "f": {"min": 4}, "m": {"min": 4}},
        {"name": "loyal", "r": {"min": 3}, "f": {"min": 3}},
        {"name": "new", "r": {"min": 4}, "f": {"max": 1}},
        {"name": "potential", "r": {"min": 3}},
        {"name": "cant_lose", "r": {"max": 1}, "f": {"min": 4}},
        {"name": "at_risk", "r": {"max": 2}, "f": {"min": 3}},
        {"name": "hibernating", "r": {"min": 2}},
        {"name": "lost"},
    ]
    return [RfmSegment.model_validate(item) for item in data]


def _edges(value: Any, what: str) -> Any:
    if value == "quantiles":
        return value
    if not isinstance(value, list) or len(value) != 4:
        raise ValueError(f"{what}: 'quantiles' or a list of four increasing numbers (the lower bounds of scores 2..5)")
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{what}: the four bounds must be numbers, got {value!r}") from None
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        raise ValueError(f"{what}: the four bounds must increase, got {value!r}")
    return numbers


class RfmConfig(_Strict):
    recency: list[float] = Field(default_factory=lambda: [30.0, 90.0, 180.0, 365.0],
                                 description="Days since the last order: under the 1st scores 5 ... over the 4th, 1.")
    frequency: list[float] | Literal["quantiles"] = Field(
        default_factory=lambda: [2.0, 3.0, 4.0, 6.0], description="Lower bounds of scores 2..5, or quantiles.")
    monetary: list[float] | Literal["quantiles"] = Field(
        "quantiles", description="Lower bounds of scores 2..5 in the base currency, or quantiles.")
    segments: list[RfmSegment] = Field(default_factory=default_rfm_segments, description="First match wins.")

    @field_validator("recency", mode="before")
    @classmethod
    def _recency(cls, value: Any) -> Any:
        if value == "quantiles":
            raise ValueError("recency: a list of four increasing day counts, e.g. [30, 90, 180, 365] "
                             "(quantiles apply to frequency and monetary)")
        return _edges(value, "recency")

    @field_validator("frequency", mode="before")
    @classmethod
    def _frequency(cls, value: Any) -> Any:
        return _edges(value, "frequency")

    @field_validator("monetary", mode="before")
    @classmethod
    def _monetary(cls, value: Any) -> Any:
        return _edges(value, "monetary")


class AbcConfig(_Strict):
    a: float = Field(80, gt=0, lt=100, description="Percent of revenue made by A clients.")
    b: float = Field(15, ge=0, lt=100, description="Percent made by B clients; C makes the rest.")

    @model_validator(mode="after")
    def _sum(self) -> AbcConfig:
        if self.a + self.b > 100:
            raise ValueError(f"a + b is {self.a + self.b:g}%, more than 100%")
        return self


class RegionConfig(_Strict):
    field: str | None = Field(None, description="A field holding the region, e.g. x_region; taken first.")
    cities: dict[str, str] = Field(default_factory=dict, description="City -> region.")


class ActivityConfig(_Strict):
    field: str | None = Field(None, description="A field holding the activity type, e.g. x_activity.")


class CategoriesConfig(_Strict):
    """How contacts are categorised (docs/segments.md)."""

    currency: str = Field("RUB", description="Base currency of revenue.")
    rates: dict[str, float] = Field(default_factory=dict, description="Base currency units per unit of another.")
    refresh: Duration = Field(dt.timedelta(days=1), description="Full recompute when the last is older.")
    stage: StageConfig = Field(default_factory=StageConfig)
    temperature: TemperatureConfig = Field(default_factory=TemperatureConfig)
    rfm: RfmConfig = Field(default_factory=RfmConfig)
    abc: AbcConfig = Field(default_factory=AbcConfig)
    region: RegionConfig = Field(default_factory=RegionConfig)
    activity: ActivityConfig = Field(default_factory=ActivityConfig)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", value):
            raise ValueError(f"{value!r} is not an ISO currency code such as RUB, USD, EUR")
        return value.upper()

    @field_validator("rates")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        for code, rate in value.items():
            if not re.fullmatch(r"[A-Za-z]{3}", code):
                raise ValueError(f"{code!r} is not an ISO currency code such as USD")
            if rate <= 0:
                raise ValueError(f"the rate of {code} must be positive")
        return {code.upper(): rate for code, rate in value.items()}


class SegmentConfig(_Strict):
    description: str | None = None
    when: list[Condition] = Field(description="Conditions, all of which must hold.")


def check(categories: CategoriesConfig, segments: dict[str, SegmentConfig], file: str) -> None:
    """What the models cannot see alone: where categories and segments may be named,
    and segment names (a segment may use segments defined before it)."""
    funnel = categories.stage.funnel_events
    known = _known_values(categories)
    for i, rule in enumerate(categories.stage.rules):
        for j, condition in enumerate(rule.when):
            _walk(condition, file, f"categories.stage.rules[{i}].when[{j}]", None, funnel, known)
    pattern = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
    earlier: list[str] = []
    for name, segment in segments.items():
        if not pattern.match(name):
            raise ConfigError(file, f"segments.{name}", "a segment name is up to 64 letters, digits, _ . -",
                              hint="rename the segment")
        for j, condition in enumerate(segment.when):
            _walk(condition, file, f"segments.{name}.when[{j}]", earlier, funnel, known)
        earlier.append(name)


def _known_values(categories: CategoriesConfig) -> dict[str, tuple[str, ...]]:
    """The values a consent or a category can take, where they are known (not region, activity)."""
    scores = ("1", "2", "3", "4", "5")
    return {
        "consent": CONSENT_STATUSES,
        "stage": tuple(dict.fromkeys(rule.value for rule in categories.stage.rules)),
        "temperature": ("hot", "warm", "cold"),
        "rfm_r": scores, "rfm_f": scores, "rfm_m": scores,
        "rfm": tuple("".join(key) for key in itertools.product(scores, repeat=3)),
        "rfm_segment": tuple(dict.fromkeys(segment.name for segment in categories.rfm.segments)),
        "abc": ("A", "B", "C"),
    }


def _check_values(condition: Condition, file: str, path: str, known: dict[str, tuple[str, ...]]) -> None:
    """``is``, ``in`` and ``not_in`` of a consent or a category name values it can take."""
    subject = "consent" if condition.consent is not None else condition.category
    allowed = known.get(subject or "")
    if allowed is None:
        return
    tests = [("is", [condition.is_] if condition.is_ is not None else []),
             ("in", condition.in_ or []), ("not_in", condition.not_in or [])]
    for key, values in tests:
        for k, value in enumerate(values):
            if value in allowed:
                continue
            where = f"{path}.{key}" if key == "is" else f"{path}.{key}[{k}]"
            what = f"a {subject} status" if subject == "consent" else f"a value of {subject}"
            listed = "111 ... 555 (three scores of 1 to 5)" if subject == "rfm" else ", ".join(allowed)
            raise ConfigError(file, where, f"{value!r} is not {what}", hint=f"use one of: {listed}")


def _walk(condition: Condition, file: str, path: str, segments: list[str] | None, funnel: list[str],
          known: dict[str, tuple[str, ...]]) -> None:
    for k, kind in enumerate(condition.latest_event or []):
        if kind not in funnel:
            raise ConfigError(file, f"{path}.latest_event[{k}]", f"{kind!r} is not one of the funnel events",
                              hint=f"add it to categories.stage.funnel_events (now: {', '.join(funnel)})")
    if segments is None and condition.category is not None:
        raise ConfigError(file, f"{path}.category", "stage rules cannot use categories (they are computed together)",
                          hint="use fact, event, latest_event, field or consent")
    if condition.segment is not None:
        if segments is None:
            raise ConfigError(file, f"{path}.segment", "stage rules cannot use segments",
                              hint="use fact, event, latest_event, field or consent")
        if condition.segment not in segments:
            import difflib

            close = difflib.get_close_matches(condition.segment, segments, n=1)
            hint = f"did you mean {close[0]!r}?" if close else (
                f"segments defined before this one: {', '.join(segments) or 'none'}")
            raise ConfigError(file, f"{path}.segment", f"no segment {condition.segment!r} defined before this one",
                              hint=hint)
    _check_values(condition, file, path, known)
    for key, children in (("all", condition.all), ("any", condition.any)):
        for k, child in enumerate(children or []):
            _walk(child, file, f"{path}.{key}[{k}]", segments, funnel, known)
    if condition.not_ is not None:
        _walk(condition.not_, file, f"{path}.not", segments, funnel, known)


__all__ = [
    "CATEGORY_NAMES",
    "CONSENT_CHANNELS",
    "STAGES",
    "CategoriesConfig",
    "Condition",
    "SegmentConfig",
    "check",
    "parse_duration",
]
