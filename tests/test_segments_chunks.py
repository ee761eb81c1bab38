"""The categories pass commits in chunks: ``hub serve`` stores a form while a sync (or
``hub segments recompute``) is in the middle of the pass, instead of waiting for the whole
pass and answering 503; and a pass interrupted after any of its transactions, then run
again, leaves the store as one uninterrupted pass: the same categories, segment
members, change-log entries (none twice) and outbox.

Chunks are made small (``segments._CHUNK``) so that a few contacts take several."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, func, select, text

import hub.store
from hub import segments
from hub.config import load_config
from hub.plugins import connector_classes
from hub.store import Store, open_store, setting
from hub.store.schema import (
    categories,
    changes,
    contacts,
    inbox,
    outbox,
    runs,
    segment_members,
)
from hub.sync import Sync
from tests.conftest import POSTGRES_ENV, Project, _postgres_url

UTC = dt.timezone.utc
CHUNK = 4
FORM_TOKEN = "form-token-4b7e21"


def day(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).replace(tzinfo=UTC)


T1, T2, T3 = day("2026-06-01T09:00"), day("2026-06-01T12:00"), day("2026-06-01T18:00")

#: eleven buyers (three chunks: four, four, three) of different counts, amounts and dates,
#: so that stages, RFM scores, ABC classes and both segments vary
ORDERS = """\
order_id,date,email,customer,amount
a1,2025-12-01,a@example.ru,Анна Белова,10000
a2,2026-02-10,a@example.ru,Анна Белова,10000
a3,2026-04-10,a@example.ru,Анна Белова,10000
a4,2026-05-20,a@example.ru,Анна Белова,10000
b1,2025-11-01,b@example.ru,Борис Волков,12000
b2,2026-04-01,b@example.ru,Борис Волков,9000
c1,2026-01-15,c@example.ru,Вера Гусева,5000
d1,2025-05-01,d@example.ru,Глеб Дёмин,1500
d2,2025-09-01,d@example.ru,Глеб Дёмин,1500
e1,2025-03-01,e@example.ru,Дина Ершова,2000
f1,2026-05-28,f@example.ru,Фёдор Жуков,700
g1,2024-12-01,g@example.ru,Галина Зуева,40000
g2,2025-01-10,g@example.ru,Галина Зуева,30000
h1,2026-03-03,h@example.ru,Игорь Ильин,3000
h2,2026-05-05,h@example.ru,Игорь Ильин,3500
i1,2025-08-08,i@example.ru,Инна Карпова,800
j1,2026-05-30,j@example.ru,Юрий Лосев,25000
k1,2025-02-02,k@example.ru,Кира Львова,600
"""
#: later orders: c, e, f, i and k buy again, d a lot (the quantiles and ABC thresholds move)
MORE_ORDERS = """\
c2,2026-05-31,c@example.ru,Вера Гусева,4000
d3,2026-05-31,d@example.ru,Глеб Дёмин,60000
e2,2026-05-30,e@example.ru,Дина Ершова,2500
f2,2026-05-31,f@example.ru,Фёдор Жуков,1200
i2,2026-05-30,i@example.ru,Инна Карпова,3000
k2,2026-05-29,k@example.ru,Кира Львова,9000
"""
CONFIG = f"""\
connectors:
  orders:
    plugin: csv
    path: orders.csv
    id_column: order_id
    mapping: orders
    events: {{type: purchase, at: date, amount: amount}}
  callback:
    plugin: webhook
    format: form
    token: {FORM_TOKEN}
  out: {{plugin: csv, role: destination, path: out.csv, mapping: out}}
segments:
  best:
    when: [{{category: abc, is: A}}, {{category: temperature, is: hot}}]
  fading:
    when: [{{any: [{{category: rfm_segment, in: [hibernating, lost, at_risk]}}, {{category: stage, is: red-gold}}]}}]
"""


def write_project(root: Path, store_url: str) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    project = Project(root, store_url)
    project.write("orders.csv", ORDERS)
    project.write("mappings/orders.yaml", """\
        fields:
          email: {from: email, transforms: [email]}
          full_name: {from: customer, transforms: [split_name]}
        """)
    project.write("mappings/callback.yaml", """\
        fields:
          full_name: {from: name, transforms: [split_name]}
          email: {from: email, transforms: [email]}
        """)
    project.write("mappings/out.yaml", """\
        fields:
          email: Email
          stage: Stage
          temperature: Temperature
          rfm: RFM
          abc: ABC
          segments: Segments
        """)
    project.config(CONFIG)
    return project


def sync(project: Project, now: dt.datetime) -> Any:
    config = load_config(project.root / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    try:
        report = Sync(config, store, clock=lambda: now).run()
    finally:
        store.dispose()
    assert report.errors == []
    return report


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segments, "_CHUNK", CHUNK)


# ------------------------------------------------------------ other writers get in


def test_hub_serve_stores_a_form_while_a_sync_computes_categories(
        tmp_path: Path, store_url: str, small_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A form posted to ``hub serve``, and a ``hub show`` (which records its read in the
    audit log), while the sync's categories pass is between its second and third chunk:
    both are stored at once. The pass held the write lock throughout, so both waited for
    the lock (made 1 s here instead of 10) and failed: 503 and an error."""
    from hub.serve import Server

    monkeypatch.setattr(hub.store, "LOCK_WAIT_SECONDS", 1)
    project = write_project(tmp_path, store_url)
    config = load_config(project.root / "hub.yaml", connector_classes())
    served = open_store(config.store_url)
    server = Server(config, served, "127.0.0.1", 0, threads=2, sync=False).start()
    answers: list[tuple[int, Any]] = []
    shown: list[Any] = []
    computed = 0
    real_load_facts = segments.load_facts

    def load_facts(*args: Any, **kwargs: Any) -> Any:
        nonlocal computed
        computed += 1
        if computed == 3:  # the pass's third chunk: two are done, one more to go
            answer = requests.post(f"http://127.0.0.1:{server.port}/hooks/callback?token={FORM_TOKEN}",
                                   data={"name": "Ирина Смирнова", "email": "irina@example.ru"}, timeout=30)
            answers.append((answer.status_code, answer.json()))
            shown.append(project.hub("show", "a@example.ru"))
        return real_load_facts(*args, **kwargs)

    monkeypatch.setattr(segments, "load_facts", load_facts)
    try:
        report = sync(project, T1)
    finally:
        server.stop()
        served.dispose()
    assert computed == 3  # eleven contacts, four a chunk
    assert answers == [(200, {"ok": True, "duplicate": False})]
    assert shown[0].exit_code == 0, shown[0].stderr
    assert "Анна" in shown[0].stdout
    assert report.status == "ok"
    store = open_store(config.store_url)
    try:
        with store.connect() as c:
            # the run counts the pass's entries, committed chunk by chunk, with its others
            assert report.changes == c.execute(select(func.count()).select_from(changes).where(
                changes.c.run_id == report.run_id)).scalar() == 22
            assert [json.loads(row.fields)["name"] for row in c.execute(select(inbox))] == ["Ирина Смирнова"]
            assert c.execute(select(func.count()).select_from(categories)).scalar() == 11
            assert c.execute(select(func.count()).select_from(outbox)).scalar() == 11
    finally:
        store.dispose()
    # the form becomes a contact with the next sync
    monkeypatch.setattr(segments, "load_facts", real_load_facts)
    sync(project, T2)
    store = open_store(config.store_url)
    try:
        with store.connect() as c:
            assert c.execute(select(contacts.c.id).where(contacts.c.email == "irina@example.ru")).scalar()
    finally:
        store.dispose()


# ------------------------------------------------------------ interrupted, then again


class Killed(BaseException):
    """The process stopping where the test says (as a kill would, but in this process)."""


class Killer:
    """Stops the run at the end of its ``at``-th write transaction of a categories pass,
    before that transaction commits (``Store.transactions`` is used by the pass alone):
    what the transactions before it committed stays, as after a kill."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: int):
        self.at = at
        self.writes = 0
        real = Store.transactions
        killer = self

        @contextlib.contextmanager
        def transactions(store: Store) -> Iterator[Callable[..., Any]]:
            with real(store) as begin:

                @contextlib.contextmanager
                def counted(write: bool = True) -> Iterator[Any]:
                    with begin(write) as c:
                        yield c
                        if write:
                            killer.writes += 1
                            if killer.writes == killer.at:
                                raise Killed(f"stopped before the commit of write transaction {killer.at}")

                yield counted

        monkeypatch.setattr(Store, "transactions", transactions)

    @property
    def fired(self) -> bool:
        return self.writes >= self.at


def recompute(project: Project, now: dt.datetime) -> Any:
    result = project.hub("segments", "recompute", "--at", now.isoformat(), "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


#: The life of a store: a first sync (a full pass), an incremental one after more orders, a
#: recompute (a full pass: the new orders move the statistics), and a sync.
STEPS: list[tuple[str, Callable[[Project], Any]]] = [
    ("first sync", lambda p: sync(p, T1)),
    ("incremental sync", lambda p: (p.write("orders.csv", ORDERS + MORE_ORDERS), sync(p, T2))),
    ("recompute", lambda p: recompute(p, T3)),
    ("sync after the recompute", lambda p: sync(p, T3)),
]


def state_of(project: Project) -> dict[str, Any]:
    """What the passes leave, with contacts named by e-mail and no ids (a rolled-back
    insert may use up ids of a PostgreSQL sequence)."""
    config = load_config(project.root / "hub.yaml", connector_classes())
    engine = create_engine(config.store_url)
    out = project.root / "out.csv"
    try:
        with engine.connect() as c:
            email = dict(c.execute(select(contacts.c.id, contacts.c.email)).all())
            category_columns = [col for col in categories.c if col.name not in ("contact_id", "run_id")]
            state = json.loads(setting(c, segments.STATE_KEY) or "{}")
            state.pop("changes", None)  # a change-log id
            return {
                "categories": {email[row.contact_id]: tuple(row[1:]) for row in c.execute(
                    select(categories.c.contact_id, *category_columns))},
                "members": sorted((row.segment, email[row.contact_id], row.since) for row in c.execute(
                    select(segment_members.c.segment, segment_members.c.contact_id, segment_members.c.since))),
                # the time of a category entry is the pass's clock; of the others, the run's
                "log": Counter((email.get(row.contact_id), row.field, row.old_value, row.new_value, row.reason,
                                row.connector, row.external_id, row.at if row.reason == segments.REASON else None)
                               for row in c.execute(select(changes))),
                "outbox": {(row.destination, email[row.contact_id]): (
                    row.op, row.payload, row.payload_hash, row.status, row.sent_hash, row.attempts, row.last_error)
                    for row in c.execute(select(outbox))},
                "out.csv": sorted(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
                if out.exists() else None,
                "segments state": state,
                "running": c.execute(select(func.count()).select_from(runs).where(runs.c.status == "running")).scalar(),
            }
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request: pytest.FixtureRequest) -> Iterator[Callable[[Path], str]]:
    """Fresh stores on one backend: ``new_store(folder)`` gives the URL of another."""
    base = _postgres_url()
    if request.param == "postgresql" and not base:
        pytest.skip(f"PostgreSQL store tests need {POSTGRES_ENV}")
    schemas: list[str] = []

    def make(folder: Path) -> str:
        if request.param == "sqlite":
            return f"sqlite:///{folder / 'store.db'}"
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"

    admin = create_engine(base) if request.param == "postgresql" else None
    yield make
    if admin is not None:
        with admin.begin() as c:
            for schema in schemas:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.parametrize("step", range(len(STEPS)), ids=[name for name, _ in STEPS])
def test_a_pass_interrupted_after_any_transaction_ends_as_an_uninterrupted_one(
        tmp_path: Path, new_store: Callable[[Path], str], small_chunks: None, monkeypatch: pytest.MonkeyPatch,
        step: int) -> None:
    """The steps once without a stop (the reference), then, for every write transaction
    of the pass of step ``step``, on a new store: the steps before it, the step stopped
    before that transaction's commit, the step again, and the steps after it. Each ends in
    the reference's categories, memberships, change log (no entry twice), outbox,
    destination file and pass state.

    A recompute is not run again: the next sync finishes its full pass, with the
    statistics of the whole base for every contact. (Stopped before its first write
    transaction commits, no recompute was made: that one is left out.)"""
    reference = write_project(tmp_path / "reference", new_store(tmp_path / "reference"))
    for _name, run in STEPS:
        run(reference)
    expected = state_of(reference)
    assert expected["running"] == 0 and "full_pending" not in expected["segments state"]
    # the recompute (its new statistics) changed several contacts
    recomputed = {row[0] for row in expected["log"]
                  if row[4] == segments.REASON and row[7] in (T3, T3.replace(tzinfo=None))}
    assert len(recomputed) >= 2, recomputed

    at = 2 if step == 2 else 1
    while True:
        folder = tmp_path / f"stopped-{at}"
        project = write_project(folder, new_store(folder))
        for _name, run in STEPS[:step]:
            run(project)
        killer = Killer(monkeypatch, at)
        try:
            STEPS[step][1](project)
        except Killed:
            pass
        monkeypatch.undo()
        monkeypatch.setattr(segments, "_CHUNK", CHUNK)
        if not killer.fired:
            break  # past the pass's last write transaction: the step ran to its end
        for _name, run in STEPS[step + (step == 2):]:
            run(project)
        assert state_of(project) == expected, f"stopped at write transaction {at} of {STEPS[step][0]}"
        at += 1
    assert at > 2  # the pass took several write transactions


KILL_SCRIPT = textwrap.dedent("""\
    import contextlib, datetime as dt, os, signal, sys
    from pathlib import Path
    from hub import segments
    from hub.config import load_config
    from hub.plugins import connector_classes
    from hub.store import Store, open_store
    from hub.sync import Sync

    segments._CHUNK = int(sys.argv[2])
    at, writes = int(sys.argv[3]), 0
    real = Store.transactions

    @contextlib.contextmanager
    def transactions(store):
        with real(store) as begin:
            @contextlib.contextmanager
            def counted(write=True):
                global writes
                with begin(write) as c:
                    yield c
                    if write:
                        writes += 1
                        if writes == at:  # the commit of this transaction never happens
                            os.kill(os.getpid(), signal.SIGKILL)
            yield counted

    Store.transactions = transactions
    config = load_config(Path(sys.argv[1]), connector_classes())
    store = open_store(config.store_url)
    Sync(config, store, clock=lambda: dt.datetime.fromisoformat(sys.argv[4])).run()
    """)


def test_a_sync_killed_in_its_categories_pass_is_finished_by_the_next(
        tmp_path: Path, new_store: Callable[[Path], str]) -> None:
    """SIGKILL in the middle of a first sync's pass (before the commit of its last chunk:
    two chunks committed), then a sync: as one uninterrupted sync. Nothing is cleaned up by
    the killed process (its connection, its temporary table, its run)."""
    reference = write_project(tmp_path / "reference", new_store(tmp_path / "reference"))
    sync(reference, T1)
    project = write_project(tmp_path / "killed", new_store(tmp_path / "killed"))
    env = {**os.environ, "HUB_LOAD_PLUGINS": ""}
    killed = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(project.root / "hub.yaml"), str(CHUNK), "5",
                             T1.isoformat()], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    stopped = state_of(project)
    assert stopped["running"] == 1 and stopped["segments state"].get("full_pending") is True
    assert len(stopped["categories"]) == 2 * CHUNK  # killed in the middle of the pass
    assert all(status == "pending" for _op, _payload, _hash, status, *_rest in stopped["outbox"].values())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(segments, "_CHUNK", CHUNK)
        sync(project, T1)
    expected = state_of(reference)
    assert state_of(project) == expected
    assert len(expected["categories"]) == 11 and len(expected["outbox"]) == 11
