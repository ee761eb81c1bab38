"""The ``hub`` command. The one place where errors become messages and exit codes.

Exit codes: 0 done; 1 the run failed (remote error, guard tripped); 2 usage or
config error; 3 another run holds the lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from hub import __version__
from hub.errors import EXIT_RUN_FAILED, EXIT_USAGE, ConfigError, HubError, UsageError
from hub.redact import RedactingFilter, redact

log = logging.getLogger("hub")


class App:
    """What commands share: the config path, loaded lazily, and output settings."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._config: Any = None
        self._store: Any = None
        self._classes: Any = None

    @property
    def classes(self) -> Any:
        if self._classes is None:
            from hub.plugins import connector_classes

            self._classes = connector_classes()
        return self._classes

    @property
    def config(self) -> Any:
        if self._config is None:
            from hub.config import find_config, load_config

            self._config = load_config(find_config(self.config_path), self.classes)
        return self._config

    @property
    def store(self) -> Any:
        if self._store is None:
            from hub.store import StoreAccessError, StoreUrlError, open_store

            try:
                self._store = open_store(self.config.store_url)
            except StoreUrlError as error:
                raise ConfigError(str(self.config.path), "store", error.message, hint=error.hint) from None
            except StoreAccessError as error:
                if not self.config.model.store:
                    raise  # the default store beside hub.yaml: no key of the user's to name
                raise ConfigError(str(self.config.path), "store", error.message,
                                  hint=f"{error.hint}; or point `store:` elsewhere") from None
        return self._store


class HubGroup(click.Group):
    """Turns hub's own errors into a message and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HubError as error:
            _fail(str(error), error.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except BrokenPipeError:  # `hub export links | head`: the reader had enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except OSError as error:
            if os.environ.get("HUB_DEBUG"):
                raise
            _fail(f"{error.strerror or error}: {error.filename or ''}".rstrip(": "), EXIT_RUN_FAILED)
        except Exception as error:  # a bug: say so briefly, full detail on request
            if os.environ.get("HUB_DEBUG"):
                raise
            _fail(
                f"unexpected error: {type(error).__name__}: {error}\n"
                "  hint: this is a bug in hub or a plugin; rerun with HUB_DEBUG=1 for the traceback and report it",
                EXIT_RUN_FAILED,
            )


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {redact(message)}", err=True)
    sys.exit(code)


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _console() -> Any:
    from rich.console import Console

    class HubConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich exits with code 1 here; let HubGroup treat it as `hub export | head` (exit 0)
            self.quiet = True
            raise BrokenPipeError

    return HubConsole()


def _table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    from rich import box
    from rich.table import Table

    # light borders and no padding at the edges: a ten-column report fits 80 columns
    table = Table(title=title, show_lines=False, box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    _console().print(table)


@contextlib.contextmanager
def _output_file(path: Path) -> Iterator[IO[str]]:
    """PATH written whole or not at all (through PATH.tmp); a path that cannot be written
    is a usage error that names it."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        out = open(tmp, "w", encoding="utf-8", newline="")
    except OSError as error:
        folder = path.parent.resolve()
        if not folder.exists():
            hint = f"the folder {folder} does not exist: create it or give another path"
        elif not folder.is_dir():
            hint = f"{folder} is a file, not a folder: give another path"
        else:
            hint = f"check that you may write in {folder}, or give another path"
        raise UsageError(f"cannot write {path}: {error.strerror or error}", hint=hint) from None
    try:
        with out:
            yield out
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")


@click.group(cls=HubGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="HUB_CONFIG",
    metavar="FILE",
    help="Config file (default ./hub.yaml; env HUB_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(__version__, prog_name="hub")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """hub: one deduplicated contact base from every tool, every change logged.

    Exit codes: 0 done, 1 run failed, 2 usage or config error, 3 another run holds the lock.
    """
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("hub")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING - 10 * min(verbose, 2))
    ctx.obj = App(config_path)


# --- config ------------------------------------------------------------------------


@main.command()
@click.argument("folder", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing hub.yaml (existing data and mapping files are kept).")
def init(folder: Path, force: bool) -> None:
    """Create a working hub.yaml, a mapping and a sample contacts file in FOLDER.

    A mapping or data file that exists already is kept as it is."""
    from hub.scaffold import scaffold

    written, kept = scaffold(folder, force=force)
    for path in written:
        click.echo(f"created {path}")
    for path in kept:
        click.echo(f"kept {path}: it exists already and was not overwritten")
    click.echo(f"next: cd {folder} && hub check && hub sync")


@main.command()
@json_option
@click.pass_obj
def check(app: App, as_json: bool) -> None:
    """Validate hub.yaml and the mappings, open the store, check the sources' columns."""
    from hub.mapping import recognise_columns
    from hub.sync import Sync

    config = app.config
    report = []
    sync = Sync(config, app.store)  # opening the store brings its schema up to date
    for name, entry in config.connectors.items():
        connector = sync.connector(name)
        columns = connector.columns() if entry.reads else None
        mapping = config.mappings[name]
        if columns is not None:
            mapping.check_columns(columns, where=f"the data of connector {name!r}")
        recognised = recognise_columns(columns) if columns is not None and mapping.is_default else {}
        report.append({"connector": name, "plugin": entry.plugin, "role": entry.role,
                       "mapping": mapping.source, "columns": columns, "recognised": recognised})
    if as_json:
        _emit({"config": str(config.path), "store": redact(config.store_url), "connectors": report})
        return
    click.echo(f"{config.path}: ok")
    click.echo(f"store: {redact(config.store_url)}")
    for item in report:
        click.echo(f"  {item['connector']}: {item['plugin']} ({item['role']}), mapping {item['mapping']}")
        if item["recognised"]:
            read = ", ".join(f"{column} -> {field_}" for field_, column in item["recognised"].items())
            click.echo(f"    columns read as: {read}")


@main.command()
def schema() -> None:
    """Print the JSON Schema of hub.yaml."""
    from hub.config import json_schema

    _emit(json_schema())


@main.command()
@json_option
@click.pass_obj
def plugins(app: App, as_json: bool) -> None:
    """List connector plugins and their capabilities."""
    rows = [
        {
            "plugin": name,
            "capabilities": sorted(cls.capabilities),
            "module": cls.__module__,
            "description": cls.description,
        }
        for name, cls in sorted(app.classes.items())
    ]
    if as_json:
        _emit(rows)
        return
    _table(None, ["plugin", "capabilities", "module", "description"],
           [[r["plugin"], ", ".join(r["capabilities"]), r["module"], r["description"]] for r in rows])


# --- sync --------------------------------------------------------------------------


@main.command()
@click.argument("connectors", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--allow-mass-delete", is_flag=True, help="Let the run remove more than the guard's threshold.")
@json_option
@click.pass_obj
def sync(app: App, connectors: tuple[str, ...], dry_run: bool, allow_mass_delete: bool, as_json: bool) -> None:
    """Pull from sources, merge into the store, push to destinations."""
    from hub.sync import Sync

    config = app.config
    # SIGTERM (systemd, timeout, kill) stops the run like Ctrl-C: the open batch rolls
    # back and the run is recorded as interrupted.
    signal.signal(signal.SIGTERM, _terminate)
    with _progress(enabled=not as_json) as progress:
        runner = Sync(config, app.store, dry_run=dry_run, allow_mass_delete=allow_mass_delete, progress=progress)
        try:
            report = runner.run(list(connectors))
        except HubError:
            if as_json and runner.report.run_id:  # a run that started and stopped: its report
                _emit(runner.report.as_dict())
            raise
    data = report.as_dict()
    if as_json:
        _emit(data)
    else:
        _print_report(data)
    if report.errors:
        sys.exit(EXIT_RUN_FAILED)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64), help="Request threads.")
@click.option("--sync-delay", default=1.0, show_default=True, type=click.FloatRange(0),
              help="Seconds after a new request before the webhook connectors are synced.")
@click.option("--no-sync", is_flag=True, help="Only store requests in the inbox; leave them to `hub sync`.")
@click.option("--trusted-proxy", metavar="ADDR",
              help="Address of the reverse proxy in front (e.g. 127.0.0.1): the sender's IP is taken from its "
              "X-Forwarded-For header.")
@click.pass_obj
def serve(app: App, host: str, port: int, threads: int, sync_delay: float, no_sync: bool,
          trusted_proxy: str | None) -> None:
    """Receive site forms: POST /hooks/<connector>, GET /healthz."""
    from hub.serve import Server, webhook_connectors

    config = app.config
    names = webhook_connectors(config)
    if not names:
        raise UsageError(f"no webhook connector in {config.path.name}",
                         hint="add a connector with plugin: webhook (see README, hub serve)")
    try:
        server = Server(config, app.store, host, port, threads=threads, sync_delay=sync_delay, sync=not no_sync,
                        trusted_proxy=trusted_proxy)
    except OSError as error:
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    signal.signal(signal.SIGTERM, _terminate)
    click.echo(f"hub serve: listening on {', '.join(server.urls)} "
               f"(hooks: {', '.join(f'/hooks/{n}' for n in names)}, health: /healthz)", err=True)
    try:
        server.serve()
    except KeyboardInterrupt:
        click.echo("hub serve: stopped", err=True)


#: Payload keys of an event shown on the client card, in this order (a form's lead status first).
_EVENT_DETAILS = ("lead_status", "lead_reasons", "form", "utm_source", "utm_campaign", "status", "campaign")


def _event_details(payload: Any) -> str:
    if not isinstance(payload, dict):
        return ""
    return "; ".join(f"{key}: {payload[key]}" for key in _EVENT_DETAILS if payload.get(key))[:200]


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class _progress:
    """A rich progress display on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} records"),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.bar.__enter__()
        return self.update

    def update(self, name: str, done: int) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(name, total=None)
        self.bar.update(self.tasks[name], completed=done)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _print_report(data: dict[str, Any]) -> None:
    title = "dry run: nothing was written" if data["dry_run"] else f"run {data['run_id']}: {data['status']}"
    rows = []
    for name, counts in data["counts"].items():
        rows.append([name, counts["read"], counts["unchanged"], counts["created"], counts["updated"],
                     counts["merged"], counts["removed"], counts["quarantined"], counts["sent"], counts["rejected"]])
    _table(title, ["connector", "read", "same", "new", "updated", "merged", "removed", "quar.", "sent", "rejected"], rows)
    click.echo(f"{data['changes']} field changes")
    for name, pending in data["pending"].items():
        click.echo(f"{name}: {pending} contacts would be sent")
    if data["dry_run"] and data["sample"]:
        _table("sample of the changes", ["contact", "field", "old", "new", "from"],
               [[s["contact_id"], s["field"], s["old_value"], s["new_value"], s["connector"]] for s in data["sample"]])
    for error in data["errors"]:
        click.echo(f"error: {error}", err=True)


# --- history -----------------------------------------------------------------------


@main.command()
@click.option("-n", "--limit", default=20, show_default=True)
@json_option
@click.pass_obj
def runs(app: App, limit: int, as_json: bool) -> None:
    """Run history with counts."""
    from hub.changes import list_runs

    with app.store.connect() as c:
        rows = list_runs(c, limit)
    if as_json:
        _emit(rows)
        return

    def total(run: dict[str, Any], key: str) -> int:
        # a sync's counts are per connector; manual runs (merge, undo, forget) also name the actor
        return sum(counts.get(key, 0) for counts in run["counts"].values() if isinstance(counts, dict))

    _table(None, ["run", "kind", "status", "started", "read", "new", "updated", "merged", "quar.", "sent", "error"],
           [[r["id"], r["kind"], r["status"], (r["started_at"] or "")[5:16].replace("T", " "), total(r, "read"), total(r, "created"),
             total(r, "updated"), total(r, "merged"), total(r, "quarantined"), total(r, "sent"),
             (r["error"] or "")[:80]] for r in rows])


@main.command("log")
@click.option("--contact", help="Contact id, e-mail, phone or SOURCE:ID.")
@click.option("--field", help="Only this field.")
@click.option("--run", "run_id", type=int, help="Only this run.")
@click.option("--connector", help="Only changes from this connector.")
@click.option("-n", "--limit", default=100, show_default=True)
@click.option("--actor", help="Who reads the log, for the audit (default: the OS user).")
@json_option
@click.pass_obj
def log_command(app: App, contact: str | None, field: str | None, run_id: int | None, connector: str | None,
                limit: int, actor: str | None, as_json: bool) -> None:
    """The change log: who changed what field, old to new, from which source, in which run (audited)."""
    from hub.audit import record_read
    from hub.changes import change_log
    from hub.contacts import resolve_contact
    from hub.curate import actor_name
    from hub.sync import utcnow

    with app.store.connect() as c:
        contact_id = resolve_contact(c, contact) if contact else None
        rows = change_log(c, contact=contact_id, field=field, run=run_id, connector=connector, limit=limit)
    what = " ".join(f"{k} {v}" for k, v in (("contact", contact_id), ("field", field), ("run", run_id),
                                             ("connector", connector)) if v is not None) or "everything"
    with app.store.begin() as c:
        record_read(c, actor_name(actor), "log", what, len({r["contact_id"] for r in rows}), True, utcnow())
    if as_json:
        _emit(rows)
        return
    _table(None, ["run", "contact", "field", "old", "new", "source", "reason"],
           [[r["run_id"], r["contact_id"], r["field"], r["old"], r["new"],
             f"{r['connector']}:{r['external_id']}" if r["external_id"] else r["connector"], r["reason"]]
            for r in rows])


@main.command()
@click.argument("contact")
@click.option("--actor", help="Who reads the card, for the audit (default: the OS user).")
@json_option
@click.pass_obj
def show(app: App, contact: str, actor: str | None, as_json: bool) -> None:
    """The client card: fields, identifiers, source records, consents, history (audited)."""
    from hub.audit import record_read
    from hub.contacts import contact_card, resolve_contact
    from hub.curate import actor_name
    from hub.sync import utcnow

    with app.store.connect() as c:
        card = contact_card(c, resolve_contact(c, contact))
    with app.store.begin() as c:
        record_read(c, actor_name(actor), "show", f"contact {card['id']}", 1, True, utcnow())
    if as_json:
        _emit(card)
        return
    console = _console()
    console.print(f"[bold]contact {card['id']}[/bold]" + (" (deleted)" if card["deleted"] else ""))
    for key, value in card["fields"].items():
        console.print(f"  {key}: {', '.join(value) if isinstance(value, list) else value}")
    if card.get("categories"):
        console.print("  categories: " + ", ".join(
            f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in card["categories"].items()
            if k not in ("rfm_r", "rfm_f", "rfm_m")))
    _table("source records", ["source", "id", "origin", "values"],
           [[r["source"], r["external_id"], r["origin"] + (" (removed)" if r["removed"] else ""),
             json.dumps(r["values"], ensure_ascii=False)] for r in card["records"]])
    if card["consents"]:
        _table("consents", ["channel", "status", "source", "at"],
               [[r["channel"], r["status"], r["source"], r["at"]] for r in card["consents"]])
    if card["destinations"]:
        _table("destinations", ["destination", "status", "error"],
               [[r["destination"], r["status"], r["error"] or ""] for r in card["destinations"]])
    if card["events"]:
        _table(f"events ({card['messages_30d']} messages sent in the last 30 days)", ["at", "type", "source", "details"],
               [[r["at"], r["type"], r["source"], _event_details(r.get("payload"))] for r in card["events"]])
    _table("history", ["run", "field", "old", "new", "source", "reason"],
           [[r["run_id"], r["field"], r["old"], r["new"], r["connector"], r["reason"]] for r in card["history"]])


@main.command()
@click.argument("what", type=click.Choice(["contacts", "links"]))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default stdout).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--unmask", is_flag=True, help="Full e-mails and phones in a contacts export (audited as such).")
@click.option("--actor", help="Who exports, for the audit (default: the OS user).")
@click.pass_obj
def export(app: App, what: str, output: Path | None, fmt: str, unmask: bool, actor: str | None) -> None:
    """Export contacts or links (CSV source,external_id,contact_id; one row per source record).

    Every export is recorded (hub audit). Contacts have e-mails and phones masked
    unless --unmask; links carry ids only and are never masked."""
    from hub.audit import masked, record_read
    from hub.contacts import EXPORT_COLUMNS, LINK_COLUMNS, iter_contacts, iter_links, write_rows
    from hub.curate import actor_name
    from hub.sync import utcnow

    who = actor_name(actor)
    with app.store.connect() as c:
        if what == "contacts":
            rows = iter_contacts(c) if unmask else masked(iter_contacts(c))
        else:
            rows = iter_links(c)
        columns = EXPORT_COLUMNS if what == "contacts" else LINK_COLUMNS
        if output is None:
            count = write_rows(rows, columns, sys.stdout, fmt)
        else:
            with _output_file(output) as out:
                count = write_rows(rows, columns, out, fmt)
            click.echo(f"wrote {count} {what} to {output}", err=True)
    with app.store.begin() as c:
        record_read(c, who, "export", what, count, unmask or what == "links", utcnow())


@main.command("report")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="HTML file to write.")
@click.option("--actor", help="Who reads the report, for the audit (default: the OS user).")
@json_option
@click.pass_obj
def report_command(app: App, output: Path, actor: str | None, as_json: bool) -> None:
    """A self-contained HTML report with charts: sources and their overlap, duplicates,
    data quality, quarantine, leads (audited). --json prints the figures instead."""
    from hub.audit import record_read
    from hub.curate import actor_name
    from hub.report import collect, render
    from hub.sync import utcnow

    now = utcnow()
    with app.store.connect() as c:
        data = collect(c, app.config, now)
    if as_json:
        _emit(data)
    else:
        with _output_file(output) as out:
            out.write(render(data))
        click.echo(f"wrote the report on {data['contacts']} contacts to {output}", err=True)
    with app.store.begin() as c:
        record_read(c, actor_name(actor), "report", "-" if as_json else str(output), data["contacts"], False, now)


@main.command("clean")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--allow-mass-delete", is_flag=True, help="Let clean.inactive: delete remove more than the guard's "
              "threshold.")
@click.option("--actor", help="Who cleans, for the runs and the audit (default: the OS user).")
@json_option
@click.pass_obj
def clean_command(app: App, dry_run: bool, allow_mass_delete: bool, actor: str | None, as_json: bool) -> None:
    """The weekly clean-up (clean: in hub.yaml): old spam submissions removed, contacts
    without activity flagged or deleted, phones and e-mails to fix listed (audited)."""
    from hub.audit import record_read
    from hub.clean import INACTIVE_FIELD, Cleaner
    from hub.sync import utcnow

    cleaner = Cleaner(app.config, app.store, actor)
    result = cleaner.clean(dry_run=dry_run, allow_mass_delete=allow_mass_delete)
    fixes = result["invalid_identifiers"]
    with app.store.begin() as c:
        record_read(c, cleaner.actor, "clean", "invalid identifiers", len(fixes), True, utcnow())
    if as_json:
        _emit(result)
        return
    would = "would " if dry_run else ""
    spam = result["spam"]
    if spam is not None:
        click.echo(f"spam: {would}remove {spam['removed']} submissions received before {spam['cutoff'][:10]}"
                   + (f" (run {spam['run_id']})" if spam.get("run_id") else ""))
    if result["inactive_after"] is not None:
        done = f" (run {result['run_id']}, {result['changes']} changes)" if result["run_id"] else ""
        if result["action"] == "delete":
            click.echo(f"inactive for {result['inactive_after']}: {would}delete {len(result['deleted'])} contacts"
                       + done)
            if result["guard"]:
                click.echo(f"the run would stop: {result['guard']}")
        else:
            click.echo(f"inactive for {result['inactive_after']}: {would}flag {len(result['flagged'])} contacts "
                       f"({INACTIVE_FIELD}), {would}unflag {len(result['unflagged'])} active again" + done)
    if fixes:
        _table(f"{len(fixes)} records with a phone or e-mail to fix in the tool",
               ["source", "record", "contact", "status", "problem"],
               [[f["connector"], f["external_id"], f["contact_id"] or "", f["status"], "; ".join(f["problems"])]
                for f in fixes])
    else:
        click.echo("no phones or e-mails to fix")


@main.command("audit")
@click.option("--actor", "only_actor", help="Only this actor.")
@click.option("-n", "--limit", default=100, show_default=True)
@json_option
@click.pass_obj
def audit_command(app: App, only_actor: str | None, limit: int, as_json: bool) -> None:
    """Who exported or read contacts: when, what, how many rows, masked or not."""
    from hub.audit import list_audit

    with app.store.connect() as c:
        rows = list_audit(c, limit, only_actor)
    if as_json:
        _emit(rows)
        return
    _table(None, ["at", "actor", "action", "what", "rows", "unmasked", "host"],
           [[(r["at"] or "")[:19].replace("T", " "), r["actor"], r["action"], r["what"], r["rows"],
             "yes" if r["unmasked"] else "", r["host"]] for r in rows])


# --- identity ----------------------------------------------------------------------


actor_option = click.option("--actor", help="Who takes the decision (default: the OS user).")


def _evidence_rows(evidence: list[dict[str, Any]]) -> list[list[Any]]:
    return [[e["field"], e["level"], f"{e['weight']:+.1f}", e["detail"]] for e in evidence]


@main.group(invoke_without_command=True)
@click.option("-n", "--limit", default=50, show_default=True)
@click.option("--actor", help="Who reads the pairs, for the audit (default: the OS user).")
@json_option
@click.pass_context
def review(ctx: click.Context, limit: int, actor: str | None, as_json: bool) -> None:
    """Pairs that may be one person, waiting for a decision (accept / reject; audited)."""
    if ctx.invoked_subcommand is not None:
        return
    from hub.audit import record_read
    from hub.curate import actor_name, pending_reviews
    from hub.sync import utcnow

    app: App = ctx.obj
    with app.store.begin() as c:
        rows = pending_reviews(c, limit)
        record_read(c, actor_name(actor), "review", "pending pairs", 2 * len(rows), False, utcnow())
    if as_json:
        _emit(rows)
        return
    if not rows:
        click.echo("nothing to review")
        return
    for row in rows:
        _table(f"pair {row['id']}: {row['probability']:.0%} one person",
               ["field", "level", "weight", "detail"], _evidence_rows(row["evidence"]))
        click.echo(f"  {row['a']}: {row['a_summary']}\n  {row['b']}: {row['b_summary']}")
    click.echo("decide: hub review accept ID  |  hub review reject ID")


@review.command("accept")
@click.argument("pair_ids", nargs=-1, type=int, required=True)
@actor_option
@json_option
@click.pass_obj
def review_accept(app: App, pair_ids: tuple[int, ...], actor: str | None, as_json: bool) -> None:
    """The pair is one person: merge the two contacts."""
    _decide(app, pair_ids, actor, True, as_json)


@review.command("reject")
@click.argument("pair_ids", nargs=-1, type=int, required=True)
@actor_option
@json_option
@click.pass_obj
def review_reject(app: App, pair_ids: tuple[int, ...], actor: str | None, as_json: bool) -> None:
    """The pair is two people: never ask again, never merge them."""
    _decide(app, pair_ids, actor, False, as_json)


def _decide(app: App, pair_ids: tuple[int, ...], actor: str | None, accept: bool, as_json: bool) -> None:
    from hub.curate import Curator

    curator = Curator(app.config, app.store, actor)
    results = curator.decide_reviews(list(pair_ids), accept)
    if as_json:
        _emit(results)
        return
    for result in results:
        if accept and result["merged"] is None:
            click.echo(f"pair {result['id']}: one contact already ({result['contact']})")
        elif accept:
            click.echo(f"pair {result['id']}: merged contact {result['merged']} into {result['contact']}")
        else:
            click.echo(f"pair {result['id']}: kept apart")


@main.command("explain")
@click.argument("first")
@click.argument("second")
@click.option("--actor", help="Who reads the two, for the audit (default: the OS user).")
@json_option
@click.pass_obj
def explain_command(app: App, first: str, second: str, actor: str | None, as_json: bool) -> None:
    """Why two contacts (or SOURCE:ID records) are, or are not, one person: the score by field (audited)."""
    from hub.audit import record_read
    from hub.curate import actor_name, explain
    from hub.sync import utcnow

    identity = app.config.model.identity
    with app.store.begin() as c:
        data = explain(c, first, second, identity.merge_at, identity.review_at)
        record_read(c, actor_name(actor), "explain", f"{first} {second}", 2, False, utcnow())
    if as_json:
        _emit(data)
        return
    _table(f"{data['a']} vs {data['b']}", ["field", "level", "weight", "detail"], _evidence_rows(data["evidence"]))
    click.echo(f"total {data['weight']:+.1f} bits (prior included): probability {data['probability']:.1%}")
    if data["veto"]:
        click.echo(f"cannot be one person: {data['veto']}")
    click.echo(f"verdict: {data['verdict']} (merge at {data['merge_at']:.0%}, review at {data['review_at']:.0%})")


@main.command("merge")
@click.argument("first")
@click.argument("second")
@actor_option
@json_option
@click.pass_obj
def merge_command(app: App, first: str, second: str, actor: str | None, as_json: bool) -> None:
    """Merge two contacts into the older one (undo with hub split)."""
    from hub.curate import Curator

    result = Curator(app.config, app.store, actor).merge(first, second)
    if as_json:
        _emit(result)
        return
    click.echo(f"merged contact {result['merged']} into {result['contact']} (run {result['run_id']}); "
               f"undo: hub split {result['contact']}")


@main.command("split")
@click.argument("contact")
@click.option("--record", metavar="SOURCE:ID", help="Move this one record out into a contact of its own.")
@actor_option
@json_option
@click.pass_obj
def split_command(app: App, contact: str, record: str | None, actor: str | None, as_json: bool) -> None:
    """Undo the latest merge into CONTACT, or take one record out; the two are never merged again."""
    from hub.curate import Curator

    result = Curator(app.config, app.store, actor).split(contact, record)
    if as_json:
        _emit(result)
        return
    click.echo(f"contact {result['contact']} split: contact {result['split_off']} is separate again "
               f"(run {result['run_id']}); undo: hub merge {result['contact']} {result['split_off']}")


# --- operations --------------------------------------------------------------------


@main.command("undo")
@click.argument("run_id", metavar="RUN", type=int)
@click.option("--force", is_flag=True, help="Revert even fields that later runs changed again.")
@actor_option
@json_option
@click.pass_obj
def undo_command(app: App, run_id: int, force: bool, actor: str | None, as_json: bool) -> None:
    """Revert every change of RUN as new change-log entries (reason undo), sent to the
    destinations by the next sync. Refuses when later runs changed the same fields."""
    from hub.undo import Undoer

    result = Undoer(app.config, app.store, actor).undo(run_id, force=force)
    if as_json:
        _emit(result)
        return
    if result["changes"] or not result["reviews"]:
        click.echo(f"run {result['run_id']} undid run {run_id}: {result['changes']} changes to "
                   f"{result['contacts']} contacts; the next sync sends them to the destinations")
    else:
        click.echo(f"run {result['run_id']} undid run {run_id}")
    for pair in result["reviews"]:
        click.echo(f"review pair {pair['id']} (contacts {pair['a']} and {pair['b']}): "
                   + ("pending again, hub review asks it" if pair["status"] == "pending" else f"{pair['status']} again"))
    if result["forced_over"]:
        click.echo(f"reverted over {len(result['forced_over'])} later changes (--force)")
    for note in result["not_undone"]:
        click.echo(f"not undone: {note}")


@main.command("forget")
@click.argument("contact", required=False)
@click.option("--email", help="The person's e-mail.")
@click.option("--phone", help="The person's phone.")
@actor_option
@json_option
@click.pass_obj
def forget_command(app: App, contact: str | None, email: str | None, phone: str | None, actor: str | None,
                   as_json: bool) -> None:
    """Erase a person (--email, --phone or CONTACT): values, records, events, consents; keep
    salted hashes of their e-mails and phones so no tool imports them again; queue deletes
    in the destinations. Cannot be undone."""
    from hub.erasure import Eraser

    result = Eraser(app.config, app.store, actor).forget(email=email, phone=phone, ref=contact)
    if as_json:
        _emit(result)
        return
    people = ", ".join(str(i) for i in result["contacts"]) or "none in the store"
    click.echo(f"run {result['run_id']}: erased contacts {people}; "
               f"{result['identifiers_suppressed']} e-mails and phones will never be imported again")
    if result["deletion_queued"]:
        click.echo(f"the next sync deletes them from: {', '.join(result['deletion_queued'])}")
    for tool in result["delete_by_hand"]:
        click.echo(f"{tool['connector']} cannot be told to delete: remove record(s) "
                   f"{', '.join(tool['external_ids'])} there by hand")


@main.command("reconcile")
@click.argument("connector")
@click.argument("other", required=False)
@click.option("--apply", "fix", is_flag=True, help="Fix the differences through a sync, by the connector's role.")
@click.option("--allow-mass-delete", is_flag=True, help="Let --apply remove more than the guard's threshold.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--unmask", is_flag=True, help="Full e-mails and phones in the report (audited as such).")
@actor_option
@json_option
@click.pass_obj
def reconcile_command(app: App, connector: str, other: str | None, fix: bool, allow_mass_delete: bool, fmt: str,
                      unmask: bool, actor: str | None, as_json: bool) -> None:
    """Read the whole tool and compare it with the store: missing in the tool, missing in
    the store, field conflicts, consent. --apply fixes them (a tool hub reads from is read
    again completely; a tool hub writes to gets the store's version), all in the change log.

    With OTHER: two tools compared through the store (contacts one has and the other
    lacks, fields they disagree on); --apply reconciles each with the store."""
    from hub.audit import record_read
    from hub.contacts import write_rows
    from hub.curate import actor_name
    from hub.reconcile import COLUMNS, apply, reconcile, rows
    from hub.sync import utcnow

    fmt = "json" if as_json else fmt
    if other is not None:
        _reconcile_pair(app, connector, other, fix, allow_mass_delete, fmt, unmask, actor_name(actor))
        return
    report = reconcile(app.config, app.store, connector, unmask=unmask)
    with app.store.begin() as c:
        record_read(c, actor_name(actor), "reconcile", connector, report["read"], unmask, utcnow())
    if fix:
        run = apply(app.config, app.store, report, allow_mass_delete=allow_mass_delete)
        report["applied"] = run.as_dict()
        report["after"] = reconcile(app.config, app.store, connector, unmask=unmask)["counts"]
    if fmt == "json":
        _emit(report)
    elif fmt == "csv":
        write_rows(iter(rows(report)), COLUMNS, sys.stdout, "csv")
    else:
        counts = report["counts"]
        _table(f"{connector}: {report['read']} records read; {counts['missing_in_tool']} missing in the tool, "
               f"{counts['missing_in_store']} missing in the store, {counts['conflicts']} conflicts"
               + (f", {counts['consent_mismatches']} consent mismatches" if counts["consent_mismatches"] else ""),
               ["kind", "record", "contact", "field", "tool", "store"],
               [[r["kind"].replace("_", " "), r["external_id"], r["contact_id"], r["field"], r["tool"], r["store"]]
                for r in rows(report)])
        if report["suppressed"]:
            click.echo(f"{report['suppressed']} records of erased people are not counted")
        if report["consent_held"]:
            click.echo(_consent_held_note(report["consent_held"], connector))
        if fix:
            click.echo(f"applied in run {report['applied']['run_id']} ({report['applied']['status']}); left: "
                       + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report["after"].items()))
    if fix and report["applied"]["errors"]:
        sys.exit(EXIT_RUN_FAILED)


@main.command("schedule")
@click.option("--once", is_flag=True, help="Run the jobs due now (missed ones by the policy), then exit.")
@json_option
@click.pass_obj
def schedule_command(app: App, once: bool, as_json: bool) -> None:
    """Run the jobs of `schedule:` in hub.yaml in the foreground, until SIGTERM or Ctrl-C.

    Runs never overlap (a second scheduler exits with code 3); SIGTERM lets the run in
    progress finish its batch and exits with code 0. With --once, a run that failed
    makes the exit code 1."""
    import threading

    from hub.schedule import Scheduler, graceful_signals

    for name in ("hub.schedule", "hub.runs"):
        logger = logging.getLogger(name)
        logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    stop = threading.Event()
    with graceful_signals(stop):
        made = Scheduler(app.config, app.store, stop).run(once=once)
    if as_json:
        _emit(made)
    if once and any(report.get("status") == "failed" for report in made):
        sys.exit(EXIT_RUN_FAILED)


def _consent_held_note(count: int, connector: str) -> str:
    return (f"{count} contacts hub does not send to {connector} for consent (no consent basis, or opted out) "
            "are not counted")


def _reconcile_pair(app: App, a: str, b: str, fix: bool, allow_mass_delete: bool, fmt: str, unmask: bool,
                    actor: str) -> None:
    from hub.audit import record_read
    from hub.contacts import write_rows
    from hub.reconcile import PAIR_COLUMNS, apply, pair_rows, reconcile, reconcile_pair
    from hub.sync import utcnow

    report = reconcile_pair(app.config, app.store, a, b, unmask=unmask)
    with app.store.begin() as c:
        record_read(c, actor, "reconcile", f"{a} {b}", sum(report["counts"].values()), unmask, utcnow())
    failed = False
    if fix:
        report["applied"] = []
        for name in (a, b):
            run = apply(app.config, app.store, reconcile(app.config, app.store, name),
                        allow_mass_delete=allow_mass_delete)
            report["applied"].append(run.as_dict())
            failed = failed or bool(run.errors)
        from hub.sync import Sync

        # what one tool brought in reaches the other: a sync of both
        run = Sync(app.config, app.store, allow_mass_delete=allow_mass_delete).run([a, b])
        report["applied"].append(run.as_dict())
        failed = failed or bool(run.errors)
        report["after"] = reconcile_pair(app.config, app.store, a, b)["counts"]
    if fmt == "json":
        _emit(report)
    elif fmt == "csv":
        write_rows(iter(pair_rows(report)), PAIR_COLUMNS, sys.stdout, "csv")
    else:
        counts = report["counts"]
        _table(f"{a} vs {b}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()),
               ["kind", "contact", "field", f"{a} record", a, f"{b} record", b],
               [[r["kind"].replace("_", " "), r["contact_id"], r["field"], r["a_external_id"], r["a"],
                 r["b_external_id"], r["b"]] for r in pair_rows(report)])
        for name, held in report["consent_held"].items():
            if held:
                click.echo(_consent_held_note(held, name))
        if fix:
            click.echo("applied in runs " + ", ".join(str(r["run_id"]) for r in report["applied"]) + "; left: "
                       + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report["after"].items()))
    if failed:
        sys.exit(EXIT_RUN_FAILED)


# --- leads -------------------------------------------------------------------------


def _age(option: str, value: str, hint: str | None = None) -> Any:
    """An option's duration (``30d``, ``12h``, ``6m`` months; hub.segments.config), more than zero."""
    import datetime as dt

    from hub.segments.config import parse_duration

    try:
        age = parse_duration(value)
    except ValueError as error:
        raise UsageError(f"{option}: {error}", hint=hint) from None
    if age <= dt.timedelta(0):
        raise UsageError(f"{option}: {value!r}: a duration must be more than zero", hint=hint)
    return age


def _since(value: str | None) -> Any:
    """``7d`` / ``12h`` ago, or a date or time (ISO, UTC unless it says otherwise)."""
    import datetime as dt

    if value is None:
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        age = _age("--since", value, hint="expected an age such as 7d or 12h, or a date such as 2026-11-01")
        return dt.datetime.now(dt.timezone.utc) - age
    return at.astimezone(dt.timezone.utc) if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)


@main.group(invoke_without_command=True)
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["target", "non-target", "spam", "unqualified"]),
              help="Only this status (repeat for several); unqualified: a connector without leads rules.")
@click.option("--since", help="Only submissions received since: an age (7d, 12h, 30min) or a date (2026-11-01).")
@click.option("--connector", help="Only this webhook connector.")
@click.option("-n", "--limit", default=50, show_default=True)
@click.option("--unmask", is_flag=True, help="Full e-mails and phones (audited as such).")
@click.option("--actor", help="Who reads the list, for the audit (default: the OS user).")
@json_option
@click.pass_context
def leads(ctx: click.Context, statuses: tuple[str, ...], since: str | None, connector: str | None, limit: int,
          unmask: bool, actor: str | None, as_json: bool) -> None:
    """Site-form submissions, newest first, with their lead status and why (audited)."""
    if ctx.invoked_subcommand is not None:
        return
    from hub.audit import record_read
    from hub.curate import actor_name
    from hub.leads import list_leads
    from hub.sync import utcnow

    app: App = ctx.obj
    config, after = app.config, _since(since)
    with app.store.connect() as c:
        rows = list_leads(c, config, statuses=statuses, since=after, connector=connector, limit=limit, unmask=unmask)
    with app.store.begin() as c:
        record_read(c, actor_name(actor), "leads", ",".join(statuses) or "all", len(rows), unmask, utcnow())
    if as_json:
        _emit(rows)
        return
    _table(None, ["inbox", "received", "form", "status", "contact", "e-mail", "phone", "ip", "why"],
           [[r["id"], r["received_at"][:19].replace("T", " "), r["connector"] + (f" {r['form']}" if r["form"] else ""),
             r["status"] or "unqualified", r["contact_id"] or "", r["email"], r["phone"], r["ip"] or "",
             "; ".join(r["reasons"])] for r in rows])


@leads.command("clean")
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              help="Remove spam received more than this long ago: 30d, 12h, 2w, 6m (months).")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@actor_option
@json_option
@click.pass_obj
def leads_clean(app: App, older_than: str, dry_run: bool, actor: str | None, as_json: bool) -> None:
    """Remove spam submissions older than AGE from the inbox (a run of its own, audited)."""
    from hub.leads import clean_spam

    result = clean_spam(app.config, app.store, _age("--older-than", older_than), dry_run=dry_run, actor=actor)
    if as_json:
        _emit(result)
        return
    where = ", ".join(f"{n} from {name}" for name, n in sorted(result["by_connector"].items()))
    verb = "would remove" if dry_run else f"run {result['run_id']}: removed"
    click.echo(f"{verb} {result['removed']} spam submissions received before {result['cutoff'][:19]}"
               + (f" ({where})" if where else ""))
    if result["kept_imported"]:
        click.echo(f"kept {result['kept_imported']} spam submissions that became contacts under earlier rules")


# --- quarantine --------------------------------------------------------------------


@main.group()
def quarantine() -> None:
    """Records that could not be imported, with their reasons."""


@quarantine.command("list")
@click.option("--connector", help="Only this connector.")
@click.option("--status", type=click.Choice(["open", "partial", "resolved", "all"]), default=None,
              help="open: not imported; partial: imported without bad values (default: both).")
@click.option("-n", "--limit", default=100, show_default=True)
@json_option
@click.pass_obj
def quarantine_list(app: App, connector: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List quarantined records."""
    from hub.contacts import list_quarantine

    with app.store.connect() as c:
        rows = list_quarantine(c, connector, status, limit)
    if as_json:
        _emit(rows)
        return
    _table(None, ["id", "connector", "record", "status", "reason"],
           [[r["id"], r["connector"], r["external_id"], r["status"], r["reason"]] for r in rows])


def _no_connector(config: Any, name: str, hint: str = "") -> UsageError:
    """The error for a connector name hub.yaml does not have (as `hub sync NAME` gives)."""
    return UsageError(f"no connector named {name!r} in {config.path.name}",
                      hint=f"connectors: {', '.join(config.model.connectors) or 'none'}" + hint)


@quarantine.command("retry")
@click.argument("connectors", nargs=-1)
@json_option
@click.pass_obj
def quarantine_retry(app: App, connectors: tuple[str, ...], as_json: bool) -> None:
    """Read the connectors with quarantined records again (after fixing the data or the mapping).

    Records of connectors no longer in hub.yaml (or disabled) are skipped; `hub quarantine
    drop CONNECTOR` removes those of a connector renamed or removed."""
    from hub.contacts import forget_cursors, list_quarantine, quarantined_connectors
    from hub.sync import Sync

    config = app.config
    with app.store.connect() as c:
        waiting = quarantined_connectors(c)
    for name in connectors:
        if name not in config.model.connectors:
            raise _no_connector(config, name, f"; drop its quarantined records with: hub quarantine drop {name}"
                                if name in waiting else "")
    if connectors:
        waiting = {name: n for name, n in waiting.items() if name in connectors}
    names = [name for name in waiting if name in config.connectors]
    skipped = [{"connector": name, "records": n,
                "reason": "disabled" if name in config.model.connectors else f"not in {config.path.name}"}
               for name, n in waiting.items() if name not in config.connectors]
    data: dict[str, Any] = {"connectors": names, "skipped": skipped, "run": None, "still_quarantined": 0,
                            "partial": 0}
    report = None
    if names:
        with app.store.begin() as c:
            forget_cursors(c, names)
        report = Sync(config, app.store).run(names)
        with app.store.connect() as c:
            left = [r for r in list_quarantine(c, None, None, 100000) if r["connector"] in names]
        data.update(run=report.as_dict(), still_quarantined=len([r for r in left if r["status"] == "open"]),
                    partial=len([r for r in left if r["status"] == "partial"]))
    if as_json:
        _emit(data)
    else:
        for skip in skipped:
            later = ("enable it to retry them" if skip["reason"] == "disabled"
                     else f"hub quarantine drop {skip['connector']} removes them")
            click.echo(f"skipped {skip['connector']} ({skip['reason']}): {skip['records']} quarantined records; "
                       + later)
        if names:
            click.echo(f"re-read {', '.join(names)}: {data['still_quarantined']} records still quarantined, "
                       f"{data['partial']} imported without some values")
        elif not skipped:
            click.echo("nothing in quarantine")
    if report is not None and report.errors:
        sys.exit(EXIT_RUN_FAILED)


@quarantine.command("drop")
@click.argument("connectors", nargs=-1, required=True)
@json_option
@click.pass_obj
def quarantine_drop(app: App, connectors: tuple[str, ...], as_json: bool) -> None:
    """Remove the quarantined records of connectors renamed or removed from hub.yaml.

    A connector still in hub.yaml keeps them: fix the data or the mapping and retry."""
    from hub.contacts import drop_quarantine, quarantined_connectors

    config = app.config
    with app.store.connect() as c:
        held = quarantined_connectors(c, resolved=True)
    for name in connectors:
        if name in config.model.connectors:
            raise UsageError(f"{name} is in {config.path.name}: its quarantined records are retried, not dropped",
                             hint=f"fix the data or the mapping, then: hub quarantine retry {name}"
                             if name in config.connectors else
                             f"it is disabled: enable it to retry them, or remove it from {config.path.name}")
        if name not in held:
            gone = [other for other in held if other not in config.model.connectors]
            raise UsageError(f"no quarantined records of a connector named {name!r}",
                             hint=f"connectors not in {config.path.name} with quarantined records: {', '.join(gone)}"
                             if gone else "hub quarantine list --status all shows them")
    with app.store.begin() as c:
        dropped = {name: drop_quarantine(c, name) for name in dict.fromkeys(connectors)}
    if as_json:
        _emit({"dropped": dropped})
        return
    for name, n in dropped.items():
        click.echo(f"dropped {n} quarantine entries of {name}")


def run() -> None:  # pragma: no cover - console entry point alias
    main()


__all__ = ["main", "EXIT_USAGE", "UsageError"]


def _register_segments() -> None:
    """``hub segments`` lives in ``hub.segments.cli`` and uses this module's helpers."""
    from hub.segments.cli import segments_command

    main.add_command(segments_command)


_register_segments()
