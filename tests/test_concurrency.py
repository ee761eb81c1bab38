"""PostgreSQL as the team store: ``hub serve``, ``hub schedule`` and manual ``hub sync``
runs at the same time against one database lose no update.

Each command is its own OS process on the test's PostgreSQL schema. While the
scheduler imports a sheet, site forms keep arriving at ``hub serve`` and a person
edits the sheet and runs ``hub sync`` by hand, again and again. Every run either does
its work or finds the store lock held and waits (the serve worker, the scheduler) or
exits with code 3 (``hub sync``); at the end the store holds every form and the
sheet's last values, once each.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine

from hub.store.schema import changes, contacts, events, inbox, runs, source_records

FORM_TOKEN = "form-token-5c1d7e"
ROWS = 600  # the sheet: enough rows that the scheduler's import overlaps the rest
ROUNDS = 6  # manual edits of the sheet, each followed by a hub sync

CONFIG = f"""\
connectors:
  sheet: {{plugin: csv, path: sheet.csv, id_column: id}}
  forms: {{plugin: webhook, format: form, token: {FORM_TOKEN}}}
  out: {{plugin: csv, role: destination, path: out.csv}}
schedule:
  jobs:
    every_minute: {{cron: '* * * * *'}}
"""

FORMS_MAPPING = """\
fields:
  full_name: {from: name, transforms: [split_name]}
  phone: {from: phone, transforms: [phone]}
  email: {from: email, transforms: [email]}
"""

SURNAMES = ["Иванов", "Петров", "Сидоров", "Кузнецов", "Смирнов", "Попов", "Волков", "Соколов", "Лебедев", "Козлов"]
NAMES = ["Иван", "Пётр", "Алексей", "Дмитрий", "Сергей", "Андрей", "Михаил", "Николай", "Олег", "Юрий"]
CITIES = ["Москва", "Казань", "Тверь", "Омск", "Самара", "Пермь", "Уфа"]


def _sheet(version: int) -> list[dict[str, str]]:
    """The sheet after ``version`` edits: cities change on every row, some phones
    change, and each edit adds two rows."""
    rows = []
    for i in range(1, ROWS + 1 + 2 * version):
        phone_version = version if i % 7 == version % 7 else 0
        rows.append({
            "id": str(i),
            "full_name": f"{SURNAMES[i % 10]} {NAMES[i // 10 % 10]} {i}",
            "phone": f"+7916{phone_version:02d}{i:05d}",
            "email": f"row{i}@example.ru",
            "city": CITIES[(i + version) % len(CITIES)],
        })
    return rows


def _write_sheet(root: Path, version: int) -> list[dict[str, str]]:
    """Replace the sheet at once, as an editor saving the file does."""
    rows = _sheet(version)
    partial = root / "sheet.csv.part"
    with open(partial, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, root / "sheet.csv")
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Hub:
    """``hub`` commands on one hub.yaml, each in its own process."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if k != "HUB_CONFIG"}
        self.base = [sys.executable, "-m", "hub", "-c", str(root / "hub.yaml")]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, env=self.env, timeout=300,
                              check=False)

    def start(self, name: str, *args: str) -> subprocess.Popen[str]:
        log = open(self.root / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 - the child writes it
        try:
            return subprocess.Popen([*self.base, *args], stdout=subprocess.DEVNULL, stderr=log, text=True,
                                    env=self.env)
        finally:
            log.close()

    def start_piped(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*self.base, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(encoding="utf-8")


def _runs_of(engine: Engine, pid: int) -> list[str]:
    with engine.connect() as c:
        return list(c.execute(select(runs.c.status).where(runs.c.pid == pid).order_by(runs.c.id)).scalars())


def _created(engine: Engine, pid: int, connector: str) -> int:
    """Contacts the finished runs of process ``pid`` created from ``connector``."""
    with engine.connect() as c:
        counts = c.execute(select(runs.c.counts).where(runs.c.pid == pid, runs.c.status == "ok")).scalars()
        return sum(json.loads(value or "{}").get(connector, {}).get("created", 0) for value in counts)


class Poster:
    """Site forms arriving one after another until stopped; a sender's retry now and then.

    Forms keep coming until every process has taken its turn, so the serve worker always
    has new ones to take in."""

    def __init__(self, url: str):
        self.url = url
        self.accepted: dict[str, str] = {}  # delivery id -> e-mail
        self.statuses: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._post_all, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> Poster:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _post_all(self) -> None:
        try:
            with requests.Session() as http:
                i = 0
                while not self._stop.is_set():
                    i += 1
                    delivery = f"form-{i}"
                    form = {"name": f"Клиент Сайта {i}", "phone": f"+7926{i:07d}", "email": f"form{i}@example.org",
                            "formname": "Заявка"}
                    for attempt in range(2 if i % 5 == 0 else 1):  # every fifth one is sent twice
                        answer = http.post(f"{self.url}/hooks/forms?token={FORM_TOKEN}", data=form, timeout=60,
                                           headers={"X-Hub-Delivery": delivery})
                        assert answer.status_code == 200, answer.text
                        assert answer.json()["duplicate"] is (attempt == 1), answer.text
                        self.statuses["duplicate" if attempt else "stored"] += 1
                    self.accepted[delivery] = form["email"]
                    self._stop.wait(0.05)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error


@pytest.fixture
def team(tmp_path: Path, store_url: str) -> Iterator[tuple[Hub, Engine]]:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "forms.yaml").write_text(FORMS_MAPPING, encoding="utf-8")
    (tmp_path / "hub.yaml").write_text(f"store: {store_url}\n{CONFIG}", encoding="utf-8")
    engine = create_engine(store_url)
    yield Hub(tmp_path), engine
    engine.dispose()


def _stop(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_serve_schedule_and_manual_syncs_at_once_lose_no_update(team: tuple[Hub, Engine]) -> None:
    hub, engine = team
    _write_sheet(hub.root, 0)
    first = hub.run("schedule", "--once", "--json")  # creates the store and registers the job
    assert first.returncode == 0 and json.loads(first.stdout) == [], first.stderr
    with engine.begin() as c:  # the scheduler was stopped over a run: it runs the job at start
        c.execute(text("DELETE FROM store_settings WHERE name = 'schedule:every_minute'"))
        c.execute(text("INSERT INTO store_settings (name, value) "
                       "VALUES ('schedule:every_minute', '2020-01-01T00:00:00+00:00')"))

    port = _free_port()
    serve = hub.start("serve", "serve", "--port", str(port), "--sync-delay", "0.2")
    scheduler: subprocess.Popen[str] | None = None
    poster: Poster | None = None
    manual: list[tuple[int, str]] = []  # exit codes and stderr of the manual syncs
    running: list[subprocess.Popen[str]] = []
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert serve.poll() is None, hub.log("serve")
            try:
                return requests.get(f"{url}/healthz", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        _wait_for(healthy, "hub serve to answer")
        _wait_for(lambda: _runs_of(engine, serve.pid) == ["ok"], "hub serve's first sync of its inbox")

        scheduler = hub.start("schedule", "schedule")
        _wait_for(lambda: bool(_runs_of(engine, scheduler.pid)), "the scheduler to start the missed run")
        # while the scheduled import runs: forms arrive, the sheet is edited and synced by hand
        poster = Poster(url).start()
        version = 0

        def reap(wait: bool) -> None:
            for process in [p for p in running if wait or p.poll() is not None]:
                _out, err = process.communicate(timeout=300)
                manual.append((process.returncode, err))
                running.remove(process)

        def everyone_worked() -> bool:
            return (version >= ROUNDS and any(code == 0 for code, _ in manual)
                    and _created(engine, scheduler.pid, "sheet") > 0 and _created(engine, serve.pid, "forms") > 0)

        # a manual sync every half second, whether or not the last one has finished, until
        # the manual syncs, the scheduler and the serve worker have each done some of the work
        deadline = time.monotonic() + 120
        while not everyone_worked():
            assert time.monotonic() < deadline, ("timed out waiting for every process to take a turn", manual, _created(
                engine, scheduler.pid, "sheet"), _created(engine, serve.pid, "forms"), hub.log("serve"), hub.log("schedule"))
            assert scheduler.poll() is None, hub.log("schedule")
            assert serve.poll() is None, hub.log("serve")
            assert poster.error is None, poster.error
            if version >= ROUNDS:
                reap(wait=True)  # from here on one at a time, leaving the lock free more often
            if version < 3 * ROUNDS:
                version += 1
                _write_sheet(hub.root, version)
            running.append(hub.start_piped("sync", "--json"))
            time.sleep(0.5)
            reap(wait=False)
        reap(wait=True)
        poster.stop()
        assert poster.error is None, poster.error
        assert poster.accepted and poster.statuses["duplicate"] > 0
        # the serve worker takes the last forms in, or the final sync does
    finally:
        if poster is not None:
            poster.stop()
        for process in running:  # left only when the test failed
            _stop(process)
        codes = {"serve": _stop(serve)}
        if scheduler is not None:
            codes["schedule"] = _stop(scheduler)
    assert codes == {"serve": 0, "schedule": 0}, (hub.log("serve"), hub.log("schedule"))

    final = hub.run("sync", "--json")
    assert final.returncode == 0, final.stderr
    again = hub.run("sync", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["changes"] == 0, again.stdout

    # every run did its work, or found the lock held and waited or exited with code 3
    for code, err in manual:
        assert code in (0, 3), err
        if code == 3:
            assert "another hub sync is running on this store" in err, err
    assert "failed" not in hub.log("serve") and "Traceback" not in hub.log("serve"), hub.log("serve")
    assert "the run failed" not in hub.log("schedule") and "Traceback" not in hub.log("schedule")
    with engine.connect() as c:
        made = c.execute(select(runs.c.pid, runs.c.status, runs.c.error).order_by(runs.c.id)).all()
    for pid, status, error in made:
        # a scheduled run that SIGTERM stopped is recorded as interrupted, as documented
        assert status == "ok" or (status == "interrupted" and pid == scheduler.pid
                                  and "stopped on request" in (error or "")), (pid, status, error)
    by = Counter("serve" if pid == serve.pid else "schedule" if pid == scheduler.pid else "manual"
                 for pid, status, _ in made if status == "ok")
    assert by["serve"] >= 1 and by["schedule"] >= 1 and by["manual"] >= 3, by  # a round and the two last syncs

    with engine.connect() as c:
        live = {row.id: row for row in c.execute(
            select(contacts).where(contacts.c.deleted_at.is_(None), contacts.c.merged_into.is_(None)))}
        links = c.execute(select(source_records.c.connector, source_records.c.external_id, source_records.c.contact_id)
                          .where(source_records.c.removed_at.is_(None))).all()
        stored = c.execute(select(inbox.c.delivery_id)).scalars().all()
        forms = c.execute(select(events.c.external_id).where(events.c.type == "form")).scalars().all()
        created = Counter(c.execute(select(changes.c.contact_id).where(changes.c.field == "created")).scalars())

    # every form posted is in the inbox once, is one source record and one form event
    assert sorted(stored) == sorted(poster.accepted)
    assert sorted(forms) == sorted(poster.accepted)
    linked = {(connector, external_id): contact_id for connector, external_id, contact_id in links}
    assert len(linked) == len(links)
    for delivery, email in poster.accepted.items():
        contact_id = linked[("forms", delivery)]
        assert contact_id in live and live[contact_id].email == email

    # every row of the sheet's last version holds its last values
    sheet = _sheet(version)
    for row in sheet:
        contact = live[linked[("sheet", row["id"])]]
        assert (contact.full_name, contact.phone, contact.email, contact.city) == (
            row["full_name"], row["phone"], row["email"], row["city"]), row
    with open(hub.root / "out.csv", encoding="utf-8") as f:
        written = {row["email"]: row for row in csv.DictReader(f)}
    for row in sheet:
        assert (written[row["email"]]["phone"], written[row["email"]]["city"]) == (row["phone"], row["city"])

    # one contact per person, each created once
    assert len(live) == len(sheet) + len(poster.accepted)
    assert len({contact.email for contact in live.values()}) == len(live)
    assert created == Counter({contact_id: 1 for contact_id in live})
    assert len(written) == len(live)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_commands_started_at_once_on_a_new_store_all_open_it(team: tuple[Hub, Engine]) -> None:
    """Services and a manual sync started together on an empty database (a new server,
    or the first start after an upgrade): one creates the tables, the others wait for it."""
    hub, engine = team
    sheet = _write_sheet(hub.root, 0)
    syncs = [hub.start_piped("sync", "--json") for _ in range(3)]
    scheduler = hub.start_piped("schedule", "--once", "--json")
    results = [(process.returncode, err) for process in syncs
               for _out, err in [process.communicate(timeout=300)]]
    _out, err = scheduler.communicate(timeout=300)
    assert scheduler.returncode == 0, err
    for code, err in results:
        assert code in (0, 3), err
        if code == 3:
            assert "another hub sync is running on this store" in err, err
    assert any(code == 0 for code, _ in results)
    with engine.connect() as c:
        live = c.execute(select(contacts.c.id).where(contacts.c.deleted_at.is_(None))).scalars().all()
        created = Counter(c.execute(select(changes.c.contact_id).where(changes.c.field == "created")).scalars())
    assert len(live) == len(sheet) and created == Counter({contact_id: 1 for contact_id in live})


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_run_whose_lock_session_the_server_ends_stops_and_the_next_run_converges(store_project, monkeypatch):
    """The server ends the session holding the sync lock in the middle of a run (a
    restart, pg_terminate_backend, idle_session_timeout): the lock is gone, and another
    run could take it. The run commits nothing more and fails with a message saying so;
    a rerun ends where an uninterrupted run would."""
    from hub.store import LOCK_WAIT_SECONDS, Store
    from hub.sync import Sync

    rows = ["id,full_name,phone"] + [f"{i},{SURNAMES[i % 10]} {NAMES[i // 10 % 10]},+7916555{i:04d}"
                                     for i in range(1, 41)]
    store_project.write("first.csv", "\n".join(rows[:21]) + "\n")
    store_project.write("second.csv", "\n".join([rows[0], *rows[21:]]) + "\n")
    store_project.config("""\
        connectors:
          first: {plugin: csv, path: first.csv, id_column: id}
          second: {plugin: csv, path: second.csv, id_column: id}
        """)
    engine = create_engine(store_project.store_url)
    taken_by_another: list[bool] = []
    note_read = Sync._note_read

    def server_ends_the_lock_session(self: Sync, name: str, read: bool) -> None:
        note_read(self, name, read)
        if name != "first":
            return
        with engine.begin() as c:
            backend = json.loads(c.execute(
                text("SELECT value FROM store_settings WHERE name = 'lock:sync'")).scalar())["backend"]
            assert c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend}).scalar()
        _wait_for(lambda: not _session_alive(engine, backend), "the lock's session to end")
        other = Store(store_project.store_url)
        with other.lock("sync"):  # the lock is free: another run could be writing now
            taken_by_another.append(True)
        other.dispose()

    monkeypatch.setattr(Sync, "_note_read", server_ends_the_lock_session)
    result = store_project.hub("sync")
    monkeypatch.undo()
    assert taken_by_another == [True]
    assert result.exit_code == 1, result.output
    assert "ended the session" in result.stderr and "sync lock" in result.stderr
    with engine.connect() as c:
        read = Counter(c.execute(select(source_records.c.connector)).scalars())
        statuses = c.execute(select(runs.c.status).order_by(runs.c.id)).scalars().all()
    assert read == Counter({"first": 20}), "the run went on writing without the lock"
    assert statuses == ["failed"]

    again = store_project.hub("sync")
    assert again.exit_code == 0, again.output
    with engine.connect() as c:
        read = Counter(c.execute(select(source_records.c.connector)).scalars())
        live = c.execute(select(contacts.c.id).where(contacts.c.deleted_at.is_(None))).scalars().all()
        statuses = c.execute(select(runs.c.status).order_by(runs.c.id)).scalars().all()
    engine.dispose()
    assert read == Counter({"first": 20, "second": 20}) and len(live) == 40
    assert statuses == ["failed", "ok"]


def _session_alive(engine: Engine, backend: int) -> bool:
    with engine.connect() as c:
        return bool(c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": backend}).scalar())


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_run_blocked_by_another_sessions_lock_fails_in_time_and_says_so(store_project):
    """A transaction of another session holds a lock on hub's tables (a stuck client, a
    DDL). The run waited for it for ever; it now fails after the lock wait, naming the
    cause (exit 1), and the next run, the lock gone, syncs everything."""
    from hub.store import LOCK_WAIT_SECONDS, Store

    store_project.write("c.csv", "id,full_name,phone\n1,Анна Белова,+79165550001\n")
    store_project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    assert store_project.hub("sync").exit_code == 0
    store = Store(store_project.store_url)
    with store.engine.connect() as c:
        assert c.execute(text("SHOW lock_timeout")).scalar() == f"{LOCK_WAIT_SECONDS}s"
    store.dispose()
    # the same with a shorter wait the URL sets itself (the user's own libpq options win)
    quick = store_project.store_url.replace("options=", "options=-clock_timeout%3D1s%20")
    store_project.config(f"store: {quick}\nconnectors:\n  c: {{plugin: csv, path: c.csv, id_column: id}}\n")
    store_project.store_url = None  # the config names the store
    store_project.write("c.csv", "id,full_name,phone\n1,Анна Белова,+79165550001\n2,Борис Волков,+79165550002\n")
    blocker = create_engine(quick)
    with blocker.connect() as c:
        c.execute(text("LOCK TABLE source_records IN ACCESS EXCLUSIVE MODE"))
        result = subprocess.run([sys.executable, "-m", "hub", "sync"], cwd=store_project.root,
                                capture_output=True, text=True, timeout=120)  # it does not wait for ever
        c.rollback()
    blocker.dispose()
    assert result.returncode == 1, result.stderr
    assert "another database session held a lock on the store's tables" in result.stderr
    assert "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "hub", "sync", "--json"], cwd=store_project.root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["c"]["created"] == 1


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_scheduler_whose_lock_session_the_server_ends_stops_before_running_a_job(store_project, monkeypatch):
    """The server ends the session holding the scheduler's lock while it waits: a second
    scheduler can start and run the due jobs. The first one ran them again when it woke;
    it now stops, saying why, and runs nothing."""
    from hub.config import load_config
    from hub.plugins import connector_classes
    from hub.schedule import Scheduler
    from hub.store import LockLostError, open_store

    store_project.write("c.csv", "id,full_name,phone\n1,Анна Белова,+79165550001\n")
    store_project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n"
                         "schedule:\n  jobs:\n    often: {cron: '* * * * *'}\n")
    engine = create_engine(store_project.store_url)
    config = load_config(store_project.root / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    load = Scheduler._load

    def server_ends_the_lock_session(self, jobs_config):
        jobs = load(self, jobs_config)
        with engine.begin() as c:
            backend = json.loads(c.execute(
                text("SELECT value FROM store_settings WHERE name = 'lock:schedule'")).scalar())["backend"]
            assert c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend}).scalar()
        _wait_for(lambda: not _session_alive(engine, backend), "the lock's session to end")
        return jobs

    start = dt.datetime.now(dt.timezone.utc)
    later = start + dt.timedelta(minutes=3)  # the job is due
    try:
        assert Scheduler(config, store, clock=lambda: start).run(once=True) == []  # the job is known from now
        monkeypatch.setattr(Scheduler, "_load", server_ends_the_lock_session)
        scheduler = Scheduler(config, store, clock=lambda: later)
        with pytest.raises(LockLostError, match="scheduler's lock"):
            scheduler.run(once=True)
        assert scheduler.runs == []
        monkeypatch.undo()
        assert len(Scheduler(config, store, clock=lambda: later).run(once=True)) == 1  # started again: it runs
    finally:
        store.dispose()
    with engine.connect() as c:
        assert c.execute(select(runs.c.status)).scalars().all() == ["ok"]
    engine.dispose()
