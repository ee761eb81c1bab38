"""``hub report``: one self-contained HTML file about the base, with charts.

``collect`` reads the store into plain figures (counts only: no names, e-mails or phones
of people, though cities, form names and connector names are data too); ``render``
turns them into a page with inline CSS and inline SVG charts (``hub.charts``): no
script, no font, no image from anywhere, so it opens offline and on a phone, and every
text from the data is escaped.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.engine import Connection

from hub import __version__
from hub.charts import (
    BLUE,
    Bar,
    bar_chart,
    empty,
    esc,
    heatmap,
    line_chart,
    stacked_bar_chart,
)
from hub.model import LEAD_STATUSES
from hub.quality import problem_kinds
from hub.segments.config import STAGES
from hub.store.schema import (
    categories,
    changes,
    consents,
    contacts,
    quarantine,
    runs,
    source_records,
)

#: Kinds of run whose merges a person decided: ``hub merge`` and ``hub review accept``
#: make ``merge`` runs (a ``review`` run only rejects a pair, and merges nothing).
MANUAL_MERGE_RUNS = ("merge",)
#: Consent statuses that mean the person said no (or the address does not work).
OPTED_OUT = ("unsubscribed", "bounced", "complained")
_TOP = 12
TEMPERATURES = ("hot", "warm", "cold")
#: The temperature in the JSON object of a contact's first categories (change-log field ``categories``).
_TEMPERATURE = re.compile(r'"temperature":\s*"([^"\\]*)"')


def live() -> Any:
    """The condition of a contact that is in the base (not deleted, not merged away)."""
    return and_(contacts.c.deleted_at.is_(None), contacts.c.merged_into.is_(None))


# ----------------------------------------------------------------------------- collect


def collect(c: Connection, config: Any, now: dt.datetime) -> dict[str, Any]:
    """Every figure of the report, as JSON-ready data (``hub report --json`` prints it)."""
    data: dict[str, Any] = {"generated_at": now.isoformat(timespec="seconds"), "version": __version__}
    total = c.execute(select(func.count()).select_from(contacts).where(live())).scalar() or 0
    data["contacts"] = total
    data["sources"] = _sources(c)
    data["duplicates"] = _duplicates(c)
    data["quality"] = _quality(c, total)
    data["quarantine"] = _quarantine(c)
    data["cities"] = _cities(c)
    data["categories"] = _categories(c)
    data["temperature_over_time"] = temperature_over_time(c, now)
    data["leads"] = _leads(c, config)
    data["runs"] = c.execute(select(func.count()).select_from(runs)).scalar() or 0
    return data


def _sources(c: Connection) -> dict[str, Any]:
    """Contacts per source and the overlap: how many contacts each pair of sources shares."""
    query = (
        select(source_records.c.contact_id, source_records.c.connector)
        .join(contacts, contacts.c.id == source_records.c.contact_id)
        .where(and_(source_records.c.origin == "read", source_records.c.removed_at.is_(None), live()))
        .distinct()
        .order_by(source_records.c.contact_id)
    )
    combos: Counter[tuple[str, ...]] = Counter()
    current: int | None = None
    held: set[str] = set()
    for row in c.execute(query):
        if row.contact_id != current:
            if held:
                combos[tuple(sorted(held))] += 1
            current, held = row.contact_id, set()
        held.add(row.connector)
    if held:
        combos[tuple(sorted(held))] += 1
    per_source: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    by_count: Counter[int] = Counter()
    only: Counter[str] = Counter()
    for combo, n in combos.items():
        by_count[len(combo)] += n
        if len(combo) == 1:
            only[combo[0]] += n
        for a in combo:
            per_source[a] += n
            for b in combo:
                pairs[(a, b)] += n
    records = dict(
        c.execute(
            select(source_records.c.connector, func.count())
            .where(and_(source_records.c.origin == "read", source_records.c.removed_at.is_(None)))
            .group_by(source_records.c.connector)
        ).all()
    )
    names = sorted(per_source, key=lambda name: (-per_source[name], name))
    return {
        "contacts": {name: per_source[name] for name in names},
        "records": {name: int(records.get(name, 0)) for name in names},
        "only_here": {name: only[name] for name in names},
        "overlap": [[pairs[(a, b)] for b in names] for a in names],
        "by_number_of_sources": {str(k): by_count[k] for k in sorted(by_count)},
    }


def _duplicates(c: Connection) -> dict[str, Any]:
    """Merges: automatic (a sync) and by hand, and splits."""
    kinds: Counter[str] = Counter()
    split = case((changes.c.new_value.is_(None), 1), else_=0).label("split")
    for row in c.execute(
        select(runs.c.kind, split, func.count().label("n"))
        .join(runs, runs.c.id == changes.c.run_id)
        .where(changes.c.field == "merged_into")
        .group_by(runs.c.kind, split)
    ):
        if row.split:
            kinds["split"] += row.n
        elif row.kind in MANUAL_MERGE_RUNS:
            kinds["manual"] += row.n
        else:
            kinds["automatic"] += row.n
    records = c.execute(
        select(func.count()).select_from(source_records).join(contacts, contacts.c.id == source_records.c.contact_id)
        .where(and_(source_records.c.origin == "read", source_records.c.removed_at.is_(None), live()))
    ).scalar() or 0
    merged_away = c.execute(
        select(func.count()).select_from(contacts).where(contacts.c.merged_into.is_not(None))
    ).scalar() or 0
    per_contact = (
        select(func.count().label("n"))
        .select_from(source_records).join(contacts, contacts.c.id == source_records.c.contact_id)
        .where(and_(source_records.c.origin == "read", source_records.c.removed_at.is_(None), live()))
        .group_by(source_records.c.contact_id)
        .subquery()
    )
    sizes: Counter[str] = Counter()
    for row in c.execute(select(per_contact.c.n, func.count()).group_by(per_contact.c.n)):
        sizes["4+" if row[0] >= 4 else str(row[0])] += row[1]
    with_records = sum(sizes.values())
    return {
        "folded": records - with_records,
        "automatic": kinds["automatic"], "manual": kinds["manual"], "split": kinds["split"],
        "merged_away": merged_away, "records": records,
        "records_per_contact": {k: sizes[k] for k in ("1", "2", "3", "4+") if sizes[k]},
    }


def _quality(c: Connection, total: int) -> dict[str, Any]:
    """Invalid phones and e-mails (quarantine not resolved), consent per channel."""
    problems: Counter[str] = Counter()
    for row in c.execute(select(quarantine.c.reason).where(quarantine.c.status != "resolved")):
        for kind in problem_kinds(row.reason):
            problems[kind] += 1
    with_email = c.execute(select(func.count()).select_from(contacts).where(
        and_(live(), contacts.c.email.is_not(None)))).scalar() or 0
    with_phone = c.execute(select(func.count()).select_from(contacts).where(
        and_(live(), contacts.c.phone.is_not(None)))).scalar() or 0
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    for row in c.execute(
        select(consents.c.channel, consents.c.status, func.count().label("n"))
        .join(contacts, contacts.c.id == consents.c.contact_id)
        .where(live())
        .group_by(consents.c.channel, consents.c.status)
    ):
        statuses[row.channel][row.status] += row.n
    email_known = c.execute(
        select(func.count()).select_from(contacts).join(
            consents, and_(consents.c.contact_id == contacts.c.id, consents.c.channel == "email"))
        .where(and_(live(), contacts.c.email.is_not(None)))
    ).scalar() or 0
    sms_known = c.execute(
        select(func.count()).select_from(contacts).join(
            consents, and_(consents.c.contact_id == contacts.c.id, consents.c.channel == "sms"))
        .where(and_(live(), contacts.c.phone.is_not(None)))
    ).scalar() or 0
    return {
        "invalid_phone": problems["phone"], "invalid_email": problems["email"],
        "invalid_birthday": problems["birthday"], "invalid_name": problems["name"], "other": problems["other"],
        "without_email": total - with_email, "without_phone": total - with_phone,
        "email_without_consent": with_email - email_known, "phone_without_consent": with_phone - sms_known,
        "consent": {channel: dict(sorted(counts.items())) for channel, counts in sorted(statuses.items())},
    }


def _quarantine(c: Connection) -> dict[str, Any]:
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for row in c.execute(
        select(quarantine.c.connector, quarantine.c.status, func.count().label("n"))
        .group_by(quarantine.c.connector, quarantine.c.status)
    ):
        rows[row.connector][row.status] += row.n
    return {name: {s: counts[s] for s in ("open", "partial", "resolved")} for name, counts in sorted(rows.items())}


def _cities(c: Connection) -> dict[str, int]:
    rows = c.execute(
        select(contacts.c.city, func.count().label("n")).where(and_(live(), contacts.c.city.is_not(None)))
        .group_by(contacts.c.city).order_by(func.count().desc(), contacts.c.city).limit(_TOP)
    ).all()
    return {row.city: row.n for row in rows}


def _categories(c: Connection) -> dict[str, Any]:
    """Funnel stages, temperature, RFM grid and segments, ABC and segments (``hub.segments``)."""
    from hub import segments

    counts = segments.counts(c)
    grid: Counter[tuple[int, int]] = Counter()
    for row in c.execute(
        select(categories.c.rfm_r, categories.c.rfm_f, func.count().label("n"))
        .where(and_(categories.c.rfm_r.is_not(None), categories.c.rfm_f.is_not(None)))
        .group_by(categories.c.rfm_r, categories.c.rfm_f)
    ):
        grid[(row.rfm_r, row.rfm_f)] += row.n
    revenue = {row.abc: float(row.revenue or 0) for row in c.execute(
        select(categories.c.abc, func.sum(categories.c.revenue).label("revenue"))
        .where(categories.c.abc.is_not(None)).group_by(categories.c.abc))}
    return {
        "stage": {stage: counts["stage"].get(stage, 0) for stage in STAGES if counts["stage"].get(stage)},
        "temperature": {t: counts["temperature"].get(t, 0) for t in TEMPERATURES if counts["temperature"].get(t)},
        # rows: recency 5 (bought lately) down to 1; columns: frequency 1 to 5
        "rfm_grid": [[grid[(r, f)] for f in range(1, 6)] for r in range(5, 0, -1)],
        "rfm_segment": dict(sorted(counts["rfm_segment"].items(), key=lambda kv: (-kv[1], kv[0]))),
        "abc": {k: counts["abc"].get(k, 0) for k in ("A", "B", "C") if counts["abc"].get(k)},
        "abc_revenue": {k: round(revenue[k], 2) for k in ("A", "B", "C") if k in revenue},
        "segments": counts["segments"],
    }


def temperature_over_time(c: Connection, now: dt.datetime, points: int = 60) -> dict[str, Any]:
    """Hot, warm and cold contacts at the end of each day (week, month on longer spans), as
    the change log tells it: the first categories of a contact, each later change of its
    temperature, and its deletion or merge into another contact."""
    moments: list[tuple[dt.datetime, int, str | None]] = []
    add = moments.append
    for contact_id, field_, new_value, at in c.execute(
        select(changes.c.contact_id, changes.c.field, changes.c.new_value, changes.c.at)
        .where(or_(
            and_(changes.c.reason == "category", changes.c.field.in_(("categories", "category:temperature"))),
            changes.c.field.in_(("deleted", "merged_into")),
        ))
        .order_by(changes.c.id)
    ):
        if at.tzinfo is not None:  # times are compared as naive UTC (SQLite gives them so)
            at = at.astimezone(dt.timezone.utc).replace(tzinfo=None)
        if field_ == "categories":  # the first categories: a JSON object, read for one key
            found = _TEMPERATURE.search(new_value or "")
            add((at, contact_id, found.group(1) if found else None))
        elif field_ == "category:temperature":
            add((at, contact_id, new_value))
        elif new_value:  # deleted, or merged into another contact
            add((at, contact_id, "-"))
        elif field_ == "deleted":  # back in the base: its last temperature again
            add((at, contact_id, "+"))
    if not moments:
        return {"unit": "day", "labels": [], "series": {t: [] for t in TEMPERATURES}}
    moments.sort(key=lambda m: m[0])
    now = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    start, end = moments[0][0], max(now, moments[-1][0])
    span = (end.date() - start.date()).days
    unit = "day" if span <= points else "week" if span <= 7 * points else "month"
    edges = _bucket_ends(start, end, unit)
    current: dict[int, str | None] = {}
    last: dict[int, str | None] = {}
    tally: Counter[str | None] = Counter()  # of ``current``, kept as it changes
    series: dict[str, list[int]] = {t: [] for t in TEMPERATURES}

    def put(contact_id: int, value: str | None) -> None:
        if contact_id in current:
            tally[current.pop(contact_id)] -= 1
        if value is not None:
            current[contact_id] = value
            tally[value] += 1

    i = 0
    for edge in edges:
        while i < len(moments) and moments[i][0] < edge:
            _, contact_id, value = moments[i]
            if value == "-":
                put(contact_id, None)
            elif value == "+":
                if last.get(contact_id) is not None:
                    put(contact_id, last[contact_id])
            else:
                last[contact_id] = value
                put(contact_id, value)
            i += 1
        for t in TEMPERATURES:
            series[t].append(tally[t])
    labels = [(edge - dt.timedelta(microseconds=1)).date().isoformat() if unit == "day"
              else (edge - dt.timedelta(microseconds=1)).strftime("%Y-%m-%d" if unit == "week" else "%Y-%m")
              for edge in edges]
    return {"unit": unit, "labels": labels, "series": series}


def _bucket_ends(start: dt.datetime, end: dt.datetime, unit: str) -> list[dt.datetime]:
    """The end (exclusive) of each day, week or month from ``start``'s to ``end``'s."""
    day = dt.datetime.combine(start.date(), dt.time())
    if unit == "month":
        day = day.replace(day=1)
    edges: list[dt.datetime] = []
    while not edges or edges[-1] <= end:
        if unit == "day":
            day += dt.timedelta(days=1)
        elif unit == "week":
            day += dt.timedelta(days=7)
        else:
            day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        edges.append(day)
    return edges


def _leads(c: Connection, config: Any) -> dict[str, Any]:
    """Site-form submissions in the inbox by lead status (``hub.leads``: target, non-target,
    spam; unqualified where a connector has no rules), and by form; spam removed so far."""
    from hub.leads import iter_leads, place

    by_class: Counter[str] = Counter()
    by_form: dict[str, Counter[str]] = defaultdict(Counter)
    for lead in iter_leads(c, config, newest_first=False):
        status = lead["status"] or "unqualified"
        form = place(lead["fields"])["form"] or "(no form name)"
        by_class[status] += 1
        by_form[form][status] += 1
    removed = 0
    for (counts,) in c.execute(select(runs.c.counts).where(and_(runs.c.kind == "leads-clean", runs.c.status == "ok"))):
        removed += int(_json(counts).get("removed", 0))
    forms = sorted(by_form, key=lambda f: (-sum(by_form[f].values()), f))[:_TOP]
    return {
        "total": sum(by_class.values()),
        "by_quality": dict(sorted(by_class.items(), key=lambda kv: _lead_order(kv[0]))),
        "by_form": {form: dict(by_form[form]) for form in forms},
        "spam_removed": removed,
    }


def _lead_order(name: str) -> tuple[int, str]:
    return (LEAD_STATUSES.index(name) if name in LEAD_STATUSES else len(LEAD_STATUSES), name)


def _json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# ----------------------------------------------------------------------------- render

LEAD_COLORS = {"target": "#2e8b57", "non-target": "#d9a400", "spam": "#c0392b", "unqualified": "#9aa5b1"}


def render(data: dict[str, Any]) -> str:
    """The page: a header with the totals, then one card per section."""
    sections = [
        _section_sources(data["sources"]),
        _section_overlap(data["sources"]),
        _section_duplicates(data["duplicates"]),
        _section_funnel(data["categories"]),
        _section_rfm(data["categories"]),
        _section_temperature(data["temperature_over_time"], data["categories"]),
        _section_segments(data["categories"]["segments"]),
        _section_quality(data["quality"], data["contacts"]),
        _section_quarantine(data["quarantine"]),
        _section_leads(data["leads"]),
        _section_cities(data["cities"]),
    ]
    dup = data["duplicates"]
    cards = [
        ("contacts", data["contacts"]),
        ("source records", dup["records"]),
        ("duplicates merged", dup["folded"] + dup["automatic"] + dup["manual"]),
        ("open quarantine", sum(v["open"] for v in data["quarantine"].values())),
        ("form leads", data["leads"]["total"]),
    ]
    return _PAGE.format(
        title="hub report",
        generated=esc(data["generated_at"][:19].replace("T", " ")),
        version=esc(data["version"]),
        css=_CSS,
        cards="".join(f'<div class="card"><b>{esc(_fmt(v))}</b><span>{esc(k)}</span></div>' for k, v in cards),
        sections="".join(sections),
    )


def _fmt(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def _section(key: str, title: str, note: str, body: str) -> str:
    return (f'<section id="{esc(key)}"><h2>{esc(title)}</h2><p class="note">{esc(note)}</p>'
            f'<figure>{body}</figure></section>')


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(_fmt(v) if isinstance(v, int) else v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _section_sources(sources: dict[str, Any]) -> str:
    bars = [Bar(name, n, note=f"({sources['only_here'][name]} only here)") for name, n in sources["contacts"].items()]
    return _section("sources", "Contacts by source", "Contacts in the base that each tool knows (a contact several "
                    "tools know counts in each).",
                    bar_chart("contacts by source", bars, empty_message="no contacts yet"))


def _section_overlap(sources: dict[str, Any]) -> str:
    names = list(sources["contacts"])
    grid = heatmap("overlap between sources", names, names, sources["overlap"], color="#6a4c93",
                   empty_message="no contacts yet", cell=44)
    spread = bar_chart(
        "contacts by number of sources",
        [Bar(f"in {k} source{'s' if k != '1' else ''}", n, color="#6a4c93") for k, n in
         sources["by_number_of_sources"].items()],
        empty_message="no contacts yet")
    return _section("overlap", "Overlap between sources", "Contacts two tools share (the diagonal: all of a tool's "
                    "contacts), and how many tools know each contact.", grid + spread)


def _section_duplicates(dup: dict[str, Any]) -> str:
    bars = [Bar("records joined to a contact in the base", dup["folded"], color="#2e8b57"),
            Bar("contacts merged by a sync", dup["automatic"], color="#2e8b57"),
            Bar("contacts merged by hand (merge, review)", dup["manual"], color="#3b6ea8"),
            Bar("split again (hub split)", dup["split"], color="#c0392b")]
    sizes = bar_chart("source records per contact",
                      [Bar(f"contacts with {k} record{'s' if k != '1' else ''}", n, color="#5d8aa8")
                       for k, n in dup["records_per_contact"].items()], empty_message="no records yet")
    note = (f"{_fmt(dup['records'])} source records are {_fmt(sum(dup['records_per_contact'].values()))} "
            "contacts: a person several tools know, or one tool twice, is one contact.")
    return _section("duplicates", "Duplicates merged", note,
                    bar_chart("merges", bars, empty_message="no duplicates found") + sizes)


#: Colours of the funnel stages: their names.
STAGE_COLORS = {"white": "#ffffff", "gray": "#9aa0a6", "green": "#2e8b57", "yellow": "#f2c200",
                "green-gold": "#9bbf2e", "gold": "#d4a017", "platinum": "#8fa3ad", "red-green": "#e57368",
                "red-gold": "#c0392b", "red-platinum": "#8e2a20"}
TEMPERATURE_COLORS = {"hot": "#d9480f", "warm": "#f2a007", "cold": "#3b6ea8"}


def _section_funnel(cats: dict[str, Any]) -> str:
    bars = [Bar(stage, n, color=STAGE_COLORS[stage], outline=stage == "white") for stage, n in cats["stage"].items()]
    return _section("funnel", "Funnel by colour stage", "White: new in the base; gray: decision maker found; green: "
                    "considers an offer; yellow: takes the newsletter; green-gold: made a request; gold: first order "
                    "paid; platinum: loyal; red: refused (red-green) or stopped buying (red-gold, red-platinum).",
                    bar_chart("funnel by colour stage", bars,
                              empty_message="no categories yet: hub sync computes them"))


def _section_rfm(cats: dict[str, Any]) -> str:
    grid = heatmap("RFM grid: recency by frequency", [f"R{r}" for r in range(5, 0, -1)],
                   [f"F{f}" for f in range(1, 6)], cats["rfm_grid"], color="#b5651d",
                   column_title="frequency: 1 order … 5 (most orders)",
                   row_title="recency: R5 bought lately … R1 long ago",
                   empty_message="no purchases yet")
    named = bar_chart("RFM segments", [Bar(k.replace("_", " "), n, color="#b5651d") for k, n in
                                       cats["rfm_segment"].items()], empty_message="")
    total = sum(cats["abc_revenue"].values()) or 1
    abc = bar_chart("ABC by revenue", [Bar(f"{k}: clients", n, color="#6c757d",
                                           note=f"({cats['abc_revenue'].get(k, 0) / total:.0%} of revenue)")
                                       for k, n in cats["abc"].items()], empty_message="")
    return _section("rfm", "RFM and ABC", "Buyers by recency and frequency of their orders (5 is best), their named "
                    "RFM segments, and ABC classes by share of revenue.",
                    grid + (named if cats["rfm_segment"] else "") + (abc if cats["abc"] else ""))


def _section_temperature(history: dict[str, Any], cats: dict[str, Any]) -> str:
    chart = line_chart(f"temperature by {history['unit']}", history["labels"],
                       [(t, TEMPERATURE_COLORS[t], history["series"][t]) for t in TEMPERATURES],
                       empty_message="no temperatures yet: hub sync computes them")
    now = ", ".join(f"{_fmt(n)} {t}" for t, n in cats["temperature"].items())
    return _section("temperature", "Temperature over time", f"Hot, warm and cold contacts at the end of each "
                    f"{history['unit']}, from the change log" + (f"; now {now}." if now else "."), chart)


def _section_segments(sizes: dict[str, int]) -> str:
    if not sizes:
        return ""
    return _section("segments", "Segments", "Members of the segments defined under segments: in hub.yaml "
                    "(hub segments lists and explains them).",
                    bar_chart("segments", [Bar(k, n, color="#2a9d8f") for k, n in
                                           sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))],
                              empty_message="no members yet"))


def _section_quality(quality: dict[str, Any], total: int) -> str:
    bars = [
        Bar("invalid phone", quality["invalid_phone"], color="#c0392b"),
        Bar("invalid e-mail", quality["invalid_email"], color="#c0392b"),
        Bar("invalid birthday", quality["invalid_birthday"], color="#e67e22"),
        Bar("not a name", quality["invalid_name"], color="#e67e22"),
        Bar("e-mail without a consent status", quality["email_without_consent"], color="#d9a400"),
        Bar("phone without an SMS consent status", quality["phone_without_consent"], color="#d9a400"),
        Bar("no e-mail", quality["without_email"], color="#9aa5b1"),
        Bar("no phone", quality["without_phone"], color="#9aa5b1"),
    ]
    rows = [[channel, *(counts.get(s, 0) for s in ("subscribed", "pending", *OPTED_OUT))]
            for channel, counts in quality["consent"].items()]
    table = _table(["channel", "subscribed", "pending", *OPTED_OUT], rows) if rows else empty(
        "no consent statuses yet: they come from e-mail and SMS services")
    return _section("quality", "Data quality", f"Values that could not be used (records with a bad phone or e-mail, "
                    f"still in quarantine) and what {_fmt(total)} contacts lack.",
                    bar_chart("data quality", bars, empty_message="no problems found") + table)


def _section_quarantine(q: dict[str, Any]) -> str:
    rows = [(name, [counts["open"], counts["partial"]]) for name, counts in q.items()]
    chart = stacked_bar_chart("quarantine by source", rows,
                              [("not imported", "#c0392b"), ("imported without bad values", "#e67e22")],
                              empty_message="nothing in quarantine")
    return _section("quarantine", "Quarantine", "Rows that could not be imported, or were imported without some "
                    "values, by source (hub quarantine list; hub clean lists the identifiers to fix).", chart)


def _section_leads(leads: dict[str, Any]) -> str:
    classes = list(leads["by_quality"])
    overall = bar_chart("leads by quality", [Bar(k, n, color=LEAD_COLORS.get(k, BLUE)) for k, n in
                                             leads["by_quality"].items()], empty_message="no form submissions yet")
    per_form = stacked_bar_chart(
        "leads by form", [(form, [counts.get(k, 0) for k in classes]) for form, counts in leads["by_form"].items()],
        [(k, LEAD_COLORS.get(k, BLUE)) for k in classes], empty_message="")
    if not leads["by_form"]:
        per_form = ""
    removed = f" {_fmt(leads['spam_removed'])} older spam submissions were removed (hub clean)." if leads[
        "spam_removed"] else ""
    return _section("leads", "Lead quality", "Site form submissions (hub serve) by lead status (leads: rules of the "
                    "webhook connector), and by form." + removed, overall + per_form)


def _section_cities(cities: dict[str, int]) -> str:
    return _section("cities", "Top cities", f"Contacts by city (the {_TOP} most common).",
                    bar_chart("contacts by city", [Bar(k, n, color="#16a085") for k, n in cities.items()],
                              empty_message="no cities known"))


_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1f2328;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{padding:20px 16px 8px;max-width:1100px;margin:0 auto}
h1{margin:0 0 4px;font-size:24px}
header p{margin:0;color:#57606a;font-size:13px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:10px;margin:16px 0 0}
.card{background:#fff;border-radius:8px;padding:10px 12px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card b{display:block;font-size:22px}.card span{color:#57606a;font-size:13px}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,480px),1fr));gap:14px;padding:8px 16px 24px;
max-width:1100px;margin:0 auto}
section{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08);min-width:0}
h2{font-size:17px;margin:0 0 2px}
.note{margin:0 0 10px;color:#57606a;font-size:13px}
figure{margin:0}
svg.chart{display:block;max-width:100%;height:auto;margin:0 0 12px}
.empty{color:#57606a;font-style:italic;margin:4px 0 12px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{text-align:right;padding:4px 8px;border-bottom:1px solid #e4e4e4;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
footer{text-align:center;color:#8c959f;font-size:12px;padding:0 0 20px}
@media (max-width:520px){header{padding:14px 8px 4px}main{padding:8px 8px 16px;gap:10px}section{padding:12px}}
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>Client base report</h1>
<p>generated {generated} UTC by hub {version}</p>
<div class="cards">{cards}</div>
</header>
<main>
{sections}
</main>
<footer>hub report: counts only; no names, e-mails or phones of people are in this file.</footer>
</body>
</html>
"""


__all__ = ["collect", "render"]
