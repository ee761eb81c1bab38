"""Conditions compiled to closures, and the categories of one contact from its facts.

Pure functions of the facts, the config, the base's statistics and ``now``: the store
is read and written in ``hub.segments``. Each time-dependent test notes when its
outcome flips (``Context.boundaries``), which becomes the contact's ``next_at``.

Times are days since 1970-01-01 UTC as floats (``to_days``/``from_days``): the store
computes them in SQL, so a pass over a million contacts builds no datetime objects.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub.segments.config import (
    NUMERIC_CATEGORIES,
    CategoriesConfig,
    Condition,
    SegmentConfig,
    parse_duration,
)

#: Columns of ``categories`` that hold categories (logged when they change).
CATEGORY_COLUMNS: tuple[str, ...] = (
    "stage", "temperature", "rfm_r", "rfm_f", "rfm_m", "rfm", "rfm_segment", "abc", "region", "activity",
)
#: Columns of ``categories`` that hold the facts the categories came from.
FACT_COLUMNS: tuple[str, ...] = ("orders", "revenue", "first_order_at", "last_order_at", "last_activity_at")


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
DAY = 86400.0


def to_days(moment: dt.datetime) -> float:
    """Days since the epoch of an aware datetime."""
    return (moment - EPOCH).total_seconds() / DAY


def from_days(days: float | None) -> dt.datetime | None:
    return None if days is None else EPOCH + dt.timedelta(days=days)


def span_days(span: dt.timedelta) -> float:
    return span.total_seconds() / DAY


@dataclass(slots=True)
class Facts:
    """What the store knows of one contact that categories depend on."""

    contact_id: int
    orders: int = 0
    revenue: float = 0.0
    #: Times in days since the epoch (``to_days``).
    first_order_at: float | None = None
    last_order_at: float | None = None
    last_activity_at: float | None = None
    #: Latest time of each event type the rules look at.
    types: dict[str, float] = field(default_factory=dict)
    #: The latest of the funnel events' types, if any.
    latest_funnel: str | None = None
    consents: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stats:
    """Properties of the whole base, computed by a full pass and kept between passes."""

    #: Lower bounds of scores 2..5 when a metric is scored by quantiles.
    frequency: list[float] | None = None
    monetary: list[float] | None = None
    #: Revenue from which a client is A, and B.
    abc_a: float | None = None
    abc_b: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"frequency": self.frequency, "monetary": self.monetary, "abc_a": self.abc_a, "abc_b": self.abc_b}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stats:
        return cls(data.get("frequency"), data.get("monetary"), data.get("abc_a"), data.get("abc_b"))


@dataclass
class Context:
    #: Days since the epoch (``to_days``), and ``stage.stopped_after`` in days.
    now: float
    stopped: float
    #: Times after ``now`` at which a tested outcome changes.
    boundaries: list[float] = field(default_factory=list)
    #: Categories computed so far, and segments the contact is in (for segment rules).
    categories: dict[str, Any] = field(default_factory=dict)
    segments: set[str] = field(default_factory=set)
    #: ``explain``: (condition, actual value, outcome) of every test, when collecting.
    trace: list[tuple[str, Any, bool]] | None = None


Test = Callable[[Facts, Context], bool]


def compile_condition(condition: Condition) -> Test:
    if condition.all is not None:
        return _all([compile_condition(c) for c in condition.all])
    if condition.any is not None:
        parts = [compile_condition(c) for c in condition.any]
        return lambda f, x: any(p(f, x) for p in parts)
    if condition.not_ is not None:
        inner = compile_condition(condition.not_)
        return lambda f, x: not inner(f, x)
    if condition.event is not None:
        wanted = tuple(condition.event)
        label = f"event in {list(wanted)}"

        def has_event(f: Facts, x: Context) -> bool:
            found = [t for t in wanted if t in f.types]
            ok = bool(found)
            if x.trace is not None:
                x.trace.append((label, found or None, ok))
            return ok

        return has_event
    if condition.latest_event is not None:
        wanted_set = frozenset(condition.latest_event)
        label = f"latest funnel event in {sorted(wanted_set)}"

        def latest(f: Facts, x: Context) -> bool:
            ok = f.latest_funnel in wanted_set
            if x.trace is not None:
                x.trace.append((label, f.latest_funnel, ok))
            return ok

        return latest
    if condition.fact in ("days_since_order", "days_since_activity"):
        return _time_test(condition)
    if condition.fact is not None:
        name = condition.fact
        if condition.exists is None and (condition.min is not None or condition.max is not None):
            return _number_test(condition, name)
        return _value_test(condition, f"fact {name}", lambda f, x: getattr(f, name))  # orders, revenue
    if condition.field is not None:
        key = condition.field
        return _value_test(condition, f"field {key}", lambda f, x: f.fields.get(key))
    if condition.consent is not None:
        channel = condition.consent
        return _value_test(condition, f"consent {channel}", lambda f, x: f.consents.get(channel))
    if condition.category is not None:
        category = condition.category
        return _value_test(condition, f"category {category}", lambda f, x: x.categories.get(category),
                           numeric=category in NUMERIC_CATEGORIES)
    segment = condition.segment
    label = f"segment {segment}"

    def in_segment(f: Facts, x: Context) -> bool:
        ok = segment in x.segments
        if x.trace is not None:
            x.trace.append((label, ok, ok))
        return ok

    return in_segment


def _number(value: Any) -> float | None:
    if type(value) is int or type(value) is float:
        return value
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(str(value).replace(",", ".").replace(" ", ""))
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _value_test(condition: Condition, label: str, get: Callable[[Facts, Context], Any], *, numeric: bool = False) -> Test:
    if condition.exists is not None:
        wanted = condition.exists
        check: Callable[[Any], bool] = lambda v: (_text(v) is not None) == wanted
        label += f" exists is {wanted}"
    elif condition.is_ is not None:
        target = condition.is_
        check = lambda v: _text(v) == target
        label += f" is {target!r}"
    elif condition.in_ is not None:
        targets = frozenset(condition.in_)
        check = lambda v: _text(v) in targets
        label += f" in {sorted(targets)}"
    elif condition.not_in is not None:
        excluded = frozenset(condition.not_in)
        check = lambda v: _text(v) not in excluded
        label += f" not in {sorted(excluded)}"
    else:
        low, high = condition.min, condition.max

        def check(v: Any) -> bool:
            number = _number(v)
            return number is not None and (low is None or number >= low) and (high is None or number <= high)

        label += _bounds(low, high)

    def test(f: Facts, x: Context) -> bool:
        value = get(f, x)
        ok = check(value)
        if x.trace is not None:
            x.trace.append((label, value, ok))
        return ok

    return test


def _bounds(low: float | None, high: float | None) -> str:
    """`` >= low <= high`` for a trace label, each part only when set."""
    return (f" >= {low:g}" if low is not None else "") + (f" <= {high:g}" if high is not None else "")


def _number_test(condition: Condition, name: str) -> Test:
    """``orders``/``revenue`` between ``min`` and ``max`` (the facts are numbers)."""
    low = float("-inf") if condition.min is None else condition.min
    high = float("inf") if condition.max is None else condition.max
    label = f"fact {name}" + _bounds(condition.min, condition.max)
    get = operator.attrgetter(name)

    def test(f: Facts, x: Context) -> bool:
        value = get(f)
        ok = low <= value <= high
        if x.trace is not None:
            x.trace.append((label, value, ok))
        return ok

    return test


def _time_test(condition: Condition) -> Test:
    """``days_since_order``/``days_since_activity``: ``min`` (days, or ``min_duration``)
    holds from ``last + min`` on, ``max`` holds until ``last + max``. Without the event
    the fact is empty: only ``exists: false`` holds."""
    attribute = "last_order_at" if condition.fact == "days_since_order" else "last_activity_at"
    label = f"fact {condition.fact}"

    def span(value: str | float | None, stopped: float, days: bool) -> float | None:
        if value is None:
            return None
        if days:
            return float(value)
        return stopped if value == "stopped" else span_days(parse_duration(value))

    low_days, high_days = condition.min, condition.max
    low_text, high_text = condition.min_duration, condition.max_duration
    exists = condition.exists

    def test(f: Facts, x: Context) -> bool:
        last = getattr(f, attribute)
        if exists is not None:
            ok = (last is not None) == exists
            if x.trace is not None:
                x.trace.append((f"{label} exists is {exists}", from_days(last), ok))
            return ok
        if last is None:
            if x.trace is not None:
                x.trace.append((f"{label} (no such event)", None, False))
            return False
        low = span(low_text, x.stopped, False) if low_text is not None else span(low_days, x.stopped, True)
        high = span(high_text, x.stopped, False) if high_text is not None else span(high_days, x.stopped, True)
        age = x.now - last
        ok = True
        if low is not None:
            ok = ok and age >= low
            if last + low > x.now:
                x.boundaries.append(last + low)
        if high is not None:
            ok = ok and age < high
            if last + high > x.now:
                x.boundaries.append(last + high)
        if x.trace is not None:
            bounds = " and ".join(part for part in (f">= {_days(low)}" if low is not None else "",
                                                    f"< {_days(high)}" if high is not None else "") if part)
            x.trace.append((f"{label} {bounds}", f"{age:.1f} days", ok))
        return ok

    return test


def _days(span: float) -> str:
    return f"{span:g} days"


class Rules:
    """The compiled ``categories:`` and ``segments:`` of a config."""

    def __init__(self, categories: CategoriesConfig, segments: dict[str, SegmentConfig]):
        self.config = categories
        self.stage = [(rule.value, _all([compile_condition(c) for c in rule.when]))
                      for rule in categories.stage.rules]
        self.segments = [(name, _all([compile_condition(c) for c in segment.when]))
                         for name, segment in segments.items()]
        self.segment_names = [name for name, _ in self.segments]
        self.funnel = frozenset(categories.stage.funnel_events)
        self.activity_types = frozenset(categories.temperature.events)
        conditions = [c for rule in categories.stage.rules for c in rule.when] + [
            c for segment in segments.values() for c in segment.when]
        self.event_types = self.funnel | self.activity_types | _named(conditions, "event") | {"purchase"}
        self.fields = _named(conditions, "field") | {"city"}
        if categories.region.field:
            self.fields.add(categories.region.field)
        if categories.activity.field:
            self.fields.add(categories.activity.field)
        self.consents = _named(conditions, "consent")
        recency = categories.rfm.recency
        self.recency = [float(d) for d in recency]
        #: the named RFM segment of every (r, f, m): the first rule that holds
        self.rfm_names: dict[tuple[int, int, int], str] = {}
        for key in itertools.product(range(1, 6), repeat=3):
            for segment in categories.rfm.segments:
                if _within(segment.r, key[0]) and _within(segment.f, key[1]) and _within(segment.m, key[2]):
                    self.rfm_names[key] = segment.name
                    break
        self.hot = span_days(categories.temperature.hot)
        self.warm = span_days(categories.temperature.warm)

    def compute(self, facts: Facts, stats: Stats, x: Context) -> dict[str, Any]:
        """The categories of one contact; ``x.boundaries`` gets the times they may change."""
        config = self.config
        out: dict[str, Any] = dict.fromkeys(CATEGORY_COLUMNS)
        stage = None
        for value, test in self.stage:
            if x.trace is not None:
                x.trace.append((f"stage rule {value!r}", None, True))
            if test(facts, x):
                stage = value
                break
        out["stage"] = stage
        last = facts.last_activity_at
        if last is None:
            out["temperature"] = "cold"
        elif x.now - last < self.hot:
            out["temperature"] = "hot"
            x.boundaries.append(last + self.hot)
        elif x.now - last < self.warm:
            out["temperature"] = "warm"
            x.boundaries.append(last + self.warm)
        else:
            out["temperature"] = "cold"
        if facts.orders and facts.last_order_at is not None:
            age = x.now - facts.last_order_at
            r = 5
            for edge in self.recency:
                if age >= edge:
                    r -= 1
                else:
                    x.boundaries.append(facts.last_order_at + edge)
                    break
            f = _score(facts.orders, stats.frequency if config.rfm.frequency == "quantiles" else config.rfm.frequency)
            m = _score(facts.revenue, stats.monetary if config.rfm.monetary == "quantiles" else config.rfm.monetary)
            out.update(rfm_r=r, rfm_f=f, rfm_m=m, rfm=f"{r}{f}{m}")
            out["rfm_segment"] = self.rfm_names.get((r, f, m))
        if facts.revenue > 0 and stats.abc_a is not None:
            if facts.revenue >= stats.abc_a:
                out["abc"] = "A"
            elif stats.abc_b is not None and facts.revenue >= stats.abc_b:
                out["abc"] = "B"
            else:
                out["abc"] = "C"
        region = config.region
        value = _text(facts.fields.get(region.field)) if region.field else None
        if value is None and region.cities:
            value = region.cities.get(_text(facts.fields.get("city")) or "")
        out["region"] = value
        if config.activity.field:
            out["activity"] = _text(facts.fields.get(config.activity.field))
        x.categories = out
        return out

    def members(self, facts: Facts, x: Context) -> set[str]:
        """The segments the contact is in, given ``x.categories``."""
        x.segments = set()
        for name, test in self.segments:
            if x.trace is not None:
                x.trace.append((f"segment {name!r}", None, True))
            if test(facts, x):
                x.segments.add(name)
        return x.segments


def _all(tests: list[Test]) -> Test:
    """One test that holds when every test holds, in order (no generator per call)."""
    if not tests:
        return lambda f, x: True
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda f, x: first(f, x) and second(f, x)
    head, rest = tests[0], _all(tests[1:])
    return lambda f, x: head(f, x) and rest(f, x)


def _named(conditions: list[Condition], key: str) -> set[str]:
    found: set[str] = set()
    stack = list(conditions)
    while stack:
        condition = stack.pop()
        value = getattr(condition, key)
        if isinstance(value, list):
            found.update(value)
        elif value is not None:
            found.add(value)
        stack.extend(condition.all or [])
        stack.extend(condition.any or [])
        if condition.not_ is not None:
            stack.append(condition.not_)
    return found


def _score(value: float, edges: list[float] | None) -> int:
    """1 plus the number of lower bounds ``value`` reaches (scores 1..5; bounds increase)."""
    if not edges:
        return 1
    return 1 + bisect.bisect_right(edges, value)


def _within(bounds: Any, score: int) -> bool:
    if bounds is None:
        return True
    return (bounds.min is None or score >= bounds.min) and (bounds.max is None or score <= bounds.max)


def quantile_edges(values: list[float]) -> list[float]:
    """Lower bounds of scores 2..5: the values at ranks n/5, 2n/5, 3n/5, 4n/5 of the sorted values."""
    if not values:
        return []
    ordered = sorted(values)
    n = len(ordered)
    return [ordered[min(n - 1, (k * n) // 5)] for k in range(1, 5)]


def abc_thresholds(revenues: list[float], a: float, b: float) -> tuple[float | None, float | None]:
    """Revenue from which a client is A and B: clients ranked by revenue, A while the
    revenue of those before is under ``a``% of the total, then B under ``a + b``%."""
    ordered = sorted((v for v in revenues if v > 0), reverse=True)
    total = sum(ordered)
    if not total:
        return None, None
    threshold_a = threshold_b = None
    before = 0.0
    for value in ordered:
        if before < total * a / 100:
            threshold_a = value
        elif before < total * (a + b) / 100:
            threshold_b = value
        else:
            break
        before += value
    return threshold_a, threshold_b if threshold_b is not None else threshold_a
