"""``hub segments``: counts, members, why a contact is where it is, a full recompute."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from typing import Any

import click
from sqlalchemy import insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from hub.cli import App, _emit, _table, json_option
from hub.errors import HubError, UsageError
from hub.redact import redact
from hub.segments.config import CATEGORY_NAMES


def _at(value: str | None) -> dt.datetime:
    """``--at``: a date or time (ISO; UTC unless it says otherwise), default now."""
    if not value:
        return dt.datetime.now(dt.timezone.utc)
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(f"--at {value!r} is not a date or time", hint="e.g. --at 2026-01-31 or --at 2026-01-31T18:00") \
            from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


@click.group("segments", invoke_without_command=True)
@json_option
@click.pass_context
def segments_command(ctx: click.Context, as_json: bool) -> None:
    """Categories and segments: counts per value (members, explain, recompute below)."""
    if ctx.invoked_subcommand is not None:
        return
    from hub import segments

    app: App = ctx.obj
    definitions = app.config.model.segments
    with app.store.connect() as c:
        counts = segments.counts(c)
    data = {
        "categories": {name: counts.get(name, {}) for name in CATEGORY_NAMES if name not in ("rfm_r", "rfm_f", "rfm_m")},
        "segments": [{"name": name, "description": definition.description, "members": counts["segments"].get(name, 0)}
                     for name, definition in definitions.items()],
    }
    if as_json:
        _emit(data)
        return
    # the RFM codes (up to 125 of them) are in --json and `hub segments members rfm=545`
    rows = [[name, value, n] for name, values in data["categories"].items() if name != "rfm"
            for value, n in values.items()]
    _table("categories", ["category", "value", "contacts"], rows)
    _table("segments", ["segment", "members", "description"],
           [[s["name"], s["members"], s["description"] or ""] for s in data["segments"]])
    if not definitions:
        click.echo("no segments defined: add `segments:` to hub.yaml (docs/segments.md)")


@segments_command.command("members")
@click.argument("what")
@click.option("-n", "--limit", default=20, show_default=True, help="How many contacts to show.")
@click.option("--actor", help="Who reads the list, for the audit (default: the OS user).")
@json_option
@click.pass_obj
def members_command(app: App, what: str, limit: int, actor: str | None, as_json: bool) -> None:
    """Contacts of a segment, or of a category value as CATEGORY=VALUE (e.g. stage=gold); audited,
    e-mails and phones masked."""
    from hub import segments
    from hub.audit import mask_email, mask_phone, record_read
    from hub.curate import actor_name
    from hub.store.schema import contacts

    name, sep, value = what.partition("=")
    with app.store.connect() as c:
        if sep:
            if name not in CATEGORY_NAMES:
                raise UsageError(f"no category {name!r}", hint=f"categories: {', '.join(CATEGORY_NAMES)}")
            if name in ("rfm_r", "rfm_f", "rfm_m") and not value.isdigit():
                raise UsageError(f"{name} is a score from 1 to 5, not {value!r}", hint=f"e.g. {name}=5")
            ids = segments.in_category(c, name, value, limit)
        else:
            if what not in app.config.model.segments:
                known = ", ".join(app.config.model.segments) or "none defined"
                raise UsageError(f"no segment {what!r} in {app.config.path.name}",
                                 hint=f"segments: {known}; or CATEGORY=VALUE such as stage=gold")
            ids = segments.members(c, what, limit)
        found = segments.categories_of(c, ids)
        people = {row.id: row for row in c.execute(
            select(contacts.c.id, contacts.c.full_name, contacts.c.email, contacts.c.phone, contacts.c.city)
            .where(contacts.c.id.in_(ids)))} if ids else {}
    rows = []
    for contact_id in ids:
        person = people.get(contact_id)
        values = found.get(contact_id, {})
        rows.append({
            "contact_id": contact_id,
            "full_name": person.full_name if person else None,
            "email": mask_email(person.email) if person and person.email else None,
            "phone": mask_phone(person.phone) if person and person.phone else None,
            "city": person.city if person else None,
            **{k: values.get(k) for k in ("stage", "temperature", "rfm", "rfm_segment", "abc")},
            "segments": values.get("segments", []),
        })
    with app.store.begin() as c:
        record_read(c, actor_name(actor), "segments", what, len(rows), False, dt.datetime.now(dt.timezone.utc))
    if as_json:
        _emit(rows)
        return
    _table(f"{what}: first {len(rows)}", ["id", "name", "email", "phone", "city", "stage", "temp.", "rfm", "abc"],
           [[r["contact_id"], r["full_name"], r["email"], r["phone"], r["city"], r["stage"], r["temperature"],
             f"{r['rfm'] or ''} {r['rfm_segment'] or ''}".strip(), r["abc"]] for r in rows])


@segments_command.command("explain")
@click.argument("contact")
@click.option("--at", "at", help="As of this date or time (default now).")
@json_option
@click.pass_obj
def explain_command(app: App, contact: str, at: str | None, as_json: bool) -> None:
    """Why a contact has its stage, temperature, RFM, ABC and segments: its facts and every test."""
    from hub import segments
    from hub.contacts import resolve_contact

    now = _at(at)
    with app.store.connect() as c:
        data = segments.explain(c, app.config, resolve_contact(c, contact), now)
    if as_json:
        _emit(data)
        return
    if not data["live"]:
        click.echo(f"contact {data['contact_id']} is deleted or merged: it has no categories")
        return
    facts = data["facts"]
    click.echo(f"contact {data['contact_id']} as of {data['now']}")
    click.echo(f"  orders {facts['orders']}, revenue {facts['revenue']:g} {facts['currency']}, "
               f"last order {facts['last_order_at'] or '-'}, last activity {facts['last_activity_at'] or '-'}, "
               f"latest funnel event {facts['latest_funnel_event'] or '-'}")
    click.echo("  " + ", ".join(f"{k}: {v}" for k, v in data["categories"].items()))
    click.echo("  segments: " + (", ".join(data["segments"]) or "none"))
    if data["stored"] and {k: v for k, v in data["stored"].items() if k != "segments"} != data["categories"]:
        click.echo("  (the store holds other values: the next sync recomputes them)")
    _table("stage rules, in order (first match wins)", ["test", "value", "holds"], _trace(data["stage_trace"]))
    if data["segment_trace"]:
        _table("segments", ["test", "value", "holds"], _trace(data["segment_trace"]))


def _trace(steps: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for step in steps:
        if step["test"].startswith(("stage rule", "segment '")):
            rows.append([f"[bold]{step['test']}[/bold]", "", ""])
        else:
            rows.append(["  " + step["test"], "" if step["value"] is None else step["value"],
                         "yes" if step["ok"] else "no"])
    return rows


@segments_command.command("recompute")
@click.option("--at", "at", help="As of this date or time (default now).")
@json_option
@click.pass_obj
def recompute_command(app: App, at: str | None, as_json: bool) -> None:
    """Recompute every contact's categories and segments now (a run of its own, in the change log)."""
    from hub import segments
    from hub.store.schema import runs

    now = _at(at)
    with app.store.lock("sync"):
        with app.store.begin() as c:
            run_id = c.execute(insert(runs).values(
                kind="segments", started_at=dt.datetime.now(dt.timezone.utc), status="running",
                connectors=json.dumps([]), pid=os.getpid(), host=socket.gethostname())).inserted_primary_key[0]
        try:
            # in chunks of their own transactions, so that hub serve and other writers are let
            # in between; interrupted, the next sync makes a full pass (docs/segments.md)
            with app.store.transactions() as begin:
                done = segments.refresh(begin, app.config, run_id, now, full=True)
        except BaseException as error:
            stopped = isinstance(error, (KeyboardInterrupt, SystemExit))
            with contextlib.suppress(HubError, SQLAlchemyError), app.store.begin() as c:
                c.execute(update(runs).where(runs.c.id == run_id).values(
                    status="interrupted" if stopped else "failed", finished_at=dt.datetime.now(dt.timezone.utc),
                    error=redact(f"{type(error).__name__}: {error}")))
            raise
        counts = {"contacts": done.contacts, "changed": len(done.changed), "logged": done.logged}
        with app.store.begin() as c:
            c.execute(update(runs).where(runs.c.id == run_id).values(
                status="ok", finished_at=dt.datetime.now(dt.timezone.utc), counts=json.dumps(counts)))
    data = {"run_id": run_id, **counts}
    if as_json:
        _emit(data)
    else:
        click.echo(f"run {run_id}: {done.contacts} contacts recomputed, {len(done.changed)} changed, "
                   f"{done.logged} change-log entries")
