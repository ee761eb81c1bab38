"""Lead qualification of site-form submissions, and ``hub leads``.

A webhook connector with ``leads:`` in hub.yaml marks each submission ``target``,
``non-target`` or ``spam`` when the sync reads it from the inbox:

* ``honeypot``: fields hidden from people; a bot fills them in (spam);
* ``disposable_email``: an address at a throwaway domain (``hub/data/disposable_email_domains.txt``
  plus ``disposable_domains``);
* ``invalid_phone``: a phone field that holds no valid number (hub's phone normalization);
* ``max_links``: more links than this in the submitted text;
* ``burst``: more than ``max`` submissions from one IP within ``window``, counted over the
  inbox (so the count survives restarts and is the same on every read);
* ``rules``: field conditions (``equals``, ``contains``, ``regex``, ``in``, ``empty``; nothing
  is evaluated), each with the status it gives.

The worst status of the rules that match wins (spam over non-target over target);
a submission no rule matches gets ``default``. The verdict is a pure function of the
inbox and the rules: the sync, ``hub leads`` and ``hub leads clean`` compute the same.

A ``target`` or ``non-target`` submission becomes a contact as usual; its ``form``
event carries ``lead_status`` and ``lead_reasons`` and the contact gets the attribute
``x_lead_status`` (the best status of its submissions). A ``spam`` submission never
becomes a contact: it stays in the inbox, listed by ``hub leads --status spam``, until
``hub leads clean`` removes it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import json
import os
import re
import socket
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Connection

from hub.model import LEAD_FIELD, LEAD_STATUSES
from hub.normalize import check_region, normalize_emails, normalize_phones
from hub.segments.config import duration_text, parse_duration

Status = Literal["target", "non-target", "spam"]
#: The raw field the webhook connector fills with the verdict; mapped to ``x_lead_status``.
LEAD_COLUMN = "hub_lead_status"
#: Worse statuses win when several rules match.
_SEVERITY = {status: rank for rank, status in enumerate(LEAD_STATUSES)}

#: Links in text: a scheme, a bare www., or forum markup.
_LINK = re.compile(r"(?i)\b(?:https?://|ftp://|www\.)|\[url[=\]]|<a\s+href")
#: Fields that describe where the form was sent from: links there are expected.
_PLACE_FIELDS = frozenset({
    "page", "pageurl", "page_url", "url", "referrer", "referer", "http_referer", "cookies", "tranid", "formid",
    "form_id", "formname", "form_name", "form", "utm_source", "utm_medium", "utm_campaign", "utm_content",
    "utm_term", "_ym_uid", "ym_uid", "ym_client_id", "_ga", "ga_client_id", "ga_cid",
})
#: Requests stored concurrently may take ids in another order than their times by this much.
_CLOCK_SLACK = dt.timedelta(seconds=60)
#: Longest text a regex rule looks at: a pattern over megabytes of a bot's text is not worth it.
_REGEX_TEXT = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class BurstRule(_Strict):
    """More than ``max`` submissions from one IP within ``window``."""

    max: int = Field(ge=1, description="Submissions one IP may send within the window.")
    window: dt.timedelta = Field(description="The window: seconds, or 30s, 10m (minutes), 1h, 1d.")
    status: Status = Field("spam", description="Status of the submissions over the limit.")

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> dt.timedelta:
        seconds = isinstance(value, (int, float)) and not isinstance(value, bool)
        window = parse_duration(f"{value:f}s" if seconds else value, m="minutes")  # a number is seconds
        if window <= dt.timedelta(0):
            raise ValueError(f"{value!r}: a window must be more than zero")
        return window


class FieldRule(_Strict):
    """A condition on one submitted field and the status it gives; exactly one operator."""

    field: str = Field(min_length=1, description="The submitted field (name compared ignoring case).")
    equals: str | None = Field(None, description="The value is this (ignoring case and surrounding spaces).")
    contains: str | None = Field(None, description="The value contains this (ignoring case).")
    regex: str | None = Field(None, description="A Python regular expression found in the value.")
    in_: list[str] | None = Field(None, alias="in", description="The value is one of these (ignoring case).")
    empty: bool | None = Field(None, description="true: the field is missing or blank; false: it is filled in.")
    negate: bool = Field(False, description="true: the rule matches when the condition does not hold.")
    status: Status = Field(description="Status of a submission this rule matches.")
    name: str | None = Field(None, description="What the rule is, as shown in the reasons.")

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, populate_by_name=True)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"regex {value!r} does not compile: {error}; fix the pattern "
                                 "(in YAML, single quotes keep backslashes as written)") from None
        return value

    @field_validator("in_")
    @classmethod
    def _some(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("'in' needs at least one value")
        return value

    @model_validator(mode="after")
    def _one_operator(self) -> FieldRule:
        given = [key for key, value in (("equals", self.equals), ("contains", self.contains), ("regex", self.regex),
                                        ("in", self.in_), ("empty", self.empty)) if value is not None]
        if len(given) != 1:
            found = f" (found: {', '.join(given)})" if given else ""
            raise ValueError(f"set exactly one of equals, contains, regex, in, empty{found}")
        return self

    @functools.cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.regex) if self.regex is not None else None

    def describe(self) -> str:
        if self.name:
            return self.name
        op, value = next((op, value) for op, value in (
            ("equals", self.equals), ("contains", self.contains), ("regex", self.regex), ("in", self.in_),
            ("empty", self.empty)) if value is not None)
        shown = ", ".join(value) if isinstance(value, list) else str(value).lower() if op == "empty" else value
        return f"{self.field} {'not ' if self.negate else ''}{op} {shown}"

    def matches(self, fields: Mapping[str, str]) -> bool:
        value = (fields.get(self.field.casefold()) or "").strip()
        if self.empty is not None:
            held = (not value) == self.empty
        elif self.equals is not None:
            held = value.casefold() == self.equals.strip().casefold()
        elif self.contains is not None:
            held = self.contains.casefold() in value.casefold()
        elif self.in_ is not None:
            held = value.casefold() in {item.strip().casefold() for item in self.in_}
        else:
            assert self._pattern is not None
            held = self._pattern.search(value[:_REGEX_TEXT]) is not None
        return held != self.negate


class LeadRules(_Strict):
    """``leads:`` of a webhook connector: how its submissions are qualified."""

    default: Status = Field("target", description="Status of a submission no rule matches.")
    honeypot: list[str] = Field(
        default_factory=list, description="Fields hidden from people (CSS): filled in means a bot (spam).")
    disposable_email: Status | Literal["off"] = Field(
        "spam", description="Status of an e-mail at a disposable domain (off: not checked).")
    disposable_domains: list[str] = Field(
        default_factory=list, description="More disposable domains, added to hub's list.")
    invalid_phone: Status | Literal["off"] = Field(
        "non-target", description="Status of a phone field without a valid number (off: not checked).")
    phone_region: str = Field("RU", description="Region of phone numbers written without a country code.")
    max_links: int | None = Field(
        2, ge=0, description="More links than this in the submitted text is link-stuffing (null: not checked).")
    links_status: Status = Field("spam", description="Status of a link-stuffed submission.")
    burst: BurstRule | None = Field(None, description="Too many submissions from one IP: max and window.")
    email_fields: list[str] = Field(
        default_factory=lambda: ["email", "e-mail", "mail", "почта"],
        description="Fields holding the e-mail (names compared ignoring case).")
    phone_fields: list[str] = Field(
        default_factory=lambda: ["phone", "tel", "telephone", "телефон"],
        description="Fields holding the phone (names compared ignoring case).")
    rules: list[FieldRule] = Field(default_factory=list, description="Field conditions, each with its status.")

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str) -> str:
        return check_region(value)

    @field_validator("disposable_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        out = []
        for domain in value:
            cleaned = domain.strip().lower().lstrip("@").rstrip(".")
            if not cleaned or "." not in cleaned or "@" in cleaned or " " in cleaned:
                raise ValueError(f"{domain!r} is not a domain; write it like mailinator.com")
            out.append(cleaned)
        return out

    @field_validator("honeypot", "email_fields", "phone_fields")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("empty field name")
        return value

    def qualify(self, fields: Mapping[str, Any], recent_from_ip: int = 0) -> Verdict:
        """The verdict on one submission. ``recent_from_ip``: submissions from its IP
        within the burst window, this one included (``burst_counts``)."""
        lowered = {str(k).casefold(): v if isinstance(v, str) else str(v) for k, v in fields.items()}
        found: list[tuple[str, str]] = []
        for name in self.honeypot:
            if (lowered.get(name.casefold()) or "").strip():
                found.append(("spam", f"honeypot field {name!r} filled in"))
        if self.disposable_email != "off":
            for email in _values(lowered, self.email_fields, normalize_emails):
                domain = email.rpartition("@")[2]
                if is_disposable(domain, self.disposable_domains):
                    found.append((self.disposable_email, f"disposable e-mail domain {domain}"))
                    break
        if self.invalid_phone != "off":
            for name in self.phone_fields:
                text = (lowered.get(name.casefold()) or "").strip()
                if text and not normalize_phones(text, self.phone_region)[0]:
                    found.append((self.invalid_phone, f"invalid phone in {name!r}"))
                    break
        if self.max_links is not None:
            links = sum(len(_LINK.findall(value)) for key, value in lowered.items() if key not in _PLACE_FIELDS)
            if links > self.max_links:
                found.append((self.links_status, f"{links} links in the text (at most {self.max_links})"))
        if self.burst is not None and recent_from_ip > self.burst.max:
            window = duration_text(self.burst.window, m="minutes")
            found.append((self.burst.status,
                          f"{recent_from_ip} submissions from one IP within {window} (at most {self.burst.max})"))
        for rule in self.rules:
            if rule.matches(lowered):
                found.append((rule.status, rule.describe()))
        if not found:
            return Verdict(self.default, ())
        worst = max((status for status, _ in found), key=_SEVERITY.__getitem__)
        return Verdict(worst, tuple(reason for _, reason in found))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Verdict:
    status: Status
    #: Why: every rule that matched, in the order of the config.
    reasons: tuple[str, ...] = ()

    def payload(self) -> list[tuple[str, str]]:
        """The ``form`` event's lead keys."""
        pairs = [("lead_status", self.status)]
        if self.reasons:
            pairs.append(("lead_reasons", "; ".join(self.reasons)[:2000]))
        return pairs


def _values(fields: Mapping[str, str], names: Sequence[str], parse: Any) -> list[str]:
    out: list[str] = []
    for name in names:
        text = fields.get(name.casefold())
        if text and text.strip():
            out.extend(parse(text)[0])
    return out


@functools.lru_cache(maxsize=1)
def disposable_domains() -> frozenset[str]:
    """hub's list of disposable e-mail domains (``hub/data/disposable_email_domains.txt``)."""
    text = resources.files("hub").joinpath("data/disposable_email_domains.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def is_disposable(domain: str, extra: Sequence[str] = ()) -> bool:
    """The domain or one of its parents is on hub's list or in ``extra``."""
    known = disposable_domains()
    parts = domain.lower().rstrip(".").split(".")
    for i in range(len(parts) - 1):
        candidate = ".".join(parts[i:])
        if candidate in known or candidate in extra:
            return True
    return False


# ------------------------------------------------------------------ the inbox


def burst_counts(c: Connection, rows: Sequence[Any], window: dt.timedelta) -> dict[int, int]:
    """Per inbox row: submissions from its IP (to any form) within ``window`` up to it,
    itself included. Counted over the inbox, so the same on every read."""
    from hub.store.schema import inbox

    by_ip: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        if row.remote_addr:
            by_ip[row.remote_addr].append(row)
    counts: dict[int, int] = {}
    for ip, mine in by_ip.items():
        start = min(_utc(row.received_at) for row in mine) - window
        last = max(row.id for row in mine)
        earlier = c.execute(
            select(inbox.c.id, inbox.c.received_at)
            .where(and_(inbox.c.remote_addr == ip, inbox.c.received_at >= start, inbox.c.id <= last))
            .order_by(inbox.c.id)
        ).all()
        ids = [row.id for row in earlier]
        times = [_utc(row.received_at) for row in earlier]
        for row in mine:
            at, n = _utc(row.received_at), 0
            # ids follow arrival; a row committed a moment out of order is still counted
            floor = at - window - _CLOCK_SLACK
            for j in range(bisect.bisect_right(ids, row.id) - 1, -1, -1):
                if times[j] < floor:
                    break
                if at - window < times[j] <= at:
                    n += 1
            counts[row.id] = max(n, 1)
    return counts


def qualify_rows(c: Connection, rules: LeadRules, rows: Sequence[Any]) -> dict[int, Verdict]:
    """Verdicts on inbox rows (read with ``fields`` as stored), by row id."""
    counts = burst_counts(c, rows, rules.burst.window) if rules.burst is not None else {}
    verdicts: dict[int, Verdict] = {}
    for row in rows:
        try:
            fields = json.loads(row.fields)
        except ValueError:
            continue
        if isinstance(fields, dict):
            verdicts[row.id] = rules.qualify(fields, counts.get(row.id, 1))
    return verdicts


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def rules_of(config: Any) -> dict[str, LeadRules | None]:
    """The lead rules of each webhook connector (``None``: not qualified)."""
    from hub.serve import webhook_connectors

    return {name: getattr(config.options[name], "leads", None) for name in webhook_connectors(config)}


_PAGE = 500


def iter_leads(c: Connection, config: Any, *, connector: str | None = None, since: dt.datetime | None = None,
               before: dt.datetime | None = None, newest_first: bool = True) -> Iterator[dict[str, Any]]:
    """Inbox rows of the webhook connectors with their verdict and contact, page by page."""
    from hub.store.schema import inbox, source_records

    rules = rules_of(config)
    names = [connector] if connector else sorted(rules)
    if connector is not None and connector not in rules:
        from hub.errors import UsageError

        raise UsageError(f"no webhook connector named {connector!r} in {config.path.name}",
                         hint=f"webhook connectors: {', '.join(sorted(rules)) or 'none'}")
    if not names:
        return
    order = inbox.c.id.desc() if newest_first else inbox.c.id
    position: int | None = None
    while True:
        query = select(inbox).where(inbox.c.connector.in_(names))
        if since is not None:
            query = query.where(inbox.c.received_at >= since)
        if before is not None:
            query = query.where(inbox.c.received_at < before)
        if position is not None:
            query = query.where(inbox.c.id < position if newest_first else inbox.c.id > position)
        rows = c.execute(query.order_by(order).limit(_PAGE)).all()
        if not rows:
            return
        verdicts: dict[int, Verdict] = {}
        for name in {row.connector for row in rows}:
            if rules.get(name) is not None:
                verdicts.update(qualify_rows(c, rules[name], [row for row in rows if row.connector == name]))
        linked: dict[tuple[str, str], int] = {}
        for name in {row.connector for row in rows}:
            ids = [row.delivery_id for row in rows if row.connector == name]
            for link in c.execute(select(source_records.c.external_id, source_records.c.contact_id).where(and_(
                    source_records.c.connector == name, source_records.c.external_id.in_(ids),
                    source_records.c.removed_at.is_(None)))):
                linked[(name, link.external_id)] = link.contact_id
        for row in rows:
            verdict = verdicts.get(row.id)
            yield {"id": row.id, "connector": row.connector, "delivery_id": row.delivery_id,
                   "received_at": _utc(row.received_at), "status": verdict.status if verdict else None,
                   "reasons": list(verdict.reasons) if verdict else [],
                   "contact_id": linked.get((row.connector, row.delivery_id)), "ip": row.remote_addr,
                   "fields": _fields(row.fields), "rules": rules.get(row.connector)}
        position = rows[-1].id


#: Keys ``hub leads`` shows of where a form was sent from, and the fields they come from.
_PLACE = (("form", ("formname", "form_name", "form", "formid", "form_id")),
          ("page", ("page", "pageurl", "page_url", "url")), ("utm_source", ("utm_source",)))


def place(fields: Mapping[str, Any]) -> dict[str, str]:
    lowered = {str(k).casefold(): str(v).strip() for k, v in fields.items()}
    return {key: next((lowered[n] for n in names if lowered.get(n)), "") for key, names in _PLACE}


def _fields(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def list_leads(c: Connection, config: Any, *, statuses: Sequence[str] = (), since: dt.datetime | None = None,
               connector: str | None = None, limit: int = 50, unmask: bool = False) -> list[dict[str, Any]]:
    """Recent submissions, newest first: status, reasons, contact, who (masked unless ``unmask``)."""
    from hub.audit import mask_email, mask_phone

    out: list[dict[str, Any]] = []
    for lead in iter_leads(c, config, connector=connector, since=since):
        if statuses and (lead["status"] or "unqualified") not in statuses:
            continue
        rules: LeadRules | None = lead.pop("rules")
        fields = lead.pop("fields")
        lowered = {str(k).casefold(): str(v) for k, v in fields.items()}
        email_names = rules.email_fields if rules else LeadRules().email_fields
        phone_names = rules.phone_fields if rules else LeadRules().phone_fields
        email = next((lowered[n.casefold()].strip() for n in email_names if lowered.get(n.casefold(), "").strip()), "")
        phone = next((lowered[n.casefold()].strip() for n in phone_names if lowered.get(n.casefold(), "").strip()), "")
        lead["email"] = email if unmask or not email else mask_email(email)
        lead["phone"] = phone if unmask or not phone else mask_phone(phone)
        lead.update(place(fields))
        lead["received_at"] = lead["received_at"].isoformat()
        out.append(lead)
        if len(out) >= limit:
            break
    return out


# ------------------------------------------------------------------ clean


def clean_spam(config: Any, store: Any, older_than: dt.timedelta, *, dry_run: bool = False,
               actor: str | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Remove spam submissions received more than ``older_than`` ago from the inbox.

    Taken under the store lock as a run of its own (kind ``leads-clean`` in ``hub runs``,
    with the actor and the counts) and recorded in ``hub audit``. Submissions that are
    spam by the rules now but became a contact under earlier rules are kept (the contact's
    record still points at them). ``dry_run`` counts and removes nothing: it reads a
    snapshot, without the store lock or a write transaction, so a sync and ``hub serve``
    go on meanwhile. Other commands (``hub clean``) call this."""
    from hub.audit import record_read
    from hub.curate import actor_name
    from hub.store.schema import inbox, runs

    who = actor_name(actor)
    now = now or dt.datetime.now(dt.timezone.utc)
    cutoff = now - older_than
    result: dict[str, Any] = {"older_than": duration_text(older_than), "cutoff": cutoff.isoformat(),
                              "dry_run": dry_run, "removed": 0, "kept_imported": 0, "by_connector": {}, "run_id": None}

    def doomed_in(c: Connection) -> list[int]:
        doomed: list[int] = []
        for lead in iter_leads(c, config, before=cutoff, newest_first=False):
            if lead["status"] != "spam":
                continue
            if lead["contact_id"] is not None:
                result["kept_imported"] += 1
                continue
            doomed.append(lead["id"])
            by = result["by_connector"]
            by[lead["connector"]] = by.get(lead["connector"], 0) + 1
        result["removed"] = len(doomed)
        return doomed

    if dry_run:
        with store.begin(read_only=True) as c:
            doomed_in(c)
        return result
    with store.lock("sync"), store.begin() as c:
        doomed = doomed_in(c)
        run_id = c.execute(insert(runs).values(
            kind="leads-clean", started_at=now, status="running", connectors=json.dumps(sorted(result["by_connector"])),
            counts=json.dumps({"actor": who}), pid=os.getpid(), host=socket.gethostname()[:255],
        )).inserted_primary_key[0]
        for start in range(0, len(doomed), _PAGE):
            c.execute(delete(inbox).where(inbox.c.id.in_(doomed[start : start + _PAGE])))
        counts = {"actor": who, "removed": len(doomed), "kept_imported": result["kept_imported"],
                  **{f"removed_{name}": n for name, n in result["by_connector"].items()}}
        c.execute(update(runs).where(runs.c.id == run_id).values(
            status="ok", finished_at=dt.datetime.now(dt.timezone.utc), counts=json.dumps(counts)))
        record_read(c, who, "leads-clean", f"spam before {cutoff.isoformat(timespec='seconds')}", len(doomed),
                    False, now)
        result["run_id"] = run_id
    return result


__all__ = ["LEAD_COLUMN", "LEAD_FIELD", "LeadRules", "Verdict", "burst_counts", "clean_spam", "is_disposable",
           "list_leads", "qualify_rows"]
