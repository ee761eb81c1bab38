#!/usr/bin/env python3
"""Segments benchmark: a full recompute of categories and segments, its peak memory,
and an incremental recompute after new purchases, against a floor (one plain SQL
``GROUP BY`` over the same events).

    python bench/segments_bench.py                                  # 1M contacts, 5M purchases
    python bench/segments_bench.py --contacts 100000 --events 500000 # a smaller run

The store is a fresh SQLite file made by hub's own migrations (``open_store``) in a
temporary folder; the contacts (name, e-mail, phone, city) and purchases (order id,
paid time over the last three years, amount, 5% in USD) are inserted straight into
hub's tables with ``executemany`` from a fixed seed (a full sync is measured by
``sync_bench.py``). A third of the contacts never bought; the others' order counts are
skewed (a few buy often). Then, each in its own child process:

- ``floor``: the per-contact aggregates of every purchase (count, sum, first and last
  time) by one ``GROUP BY`` with ``sqlite3``, fetched: the least a recompute must read;
- ``full``: ``segments.refresh(..., full=True)`` on the fresh store: every contact's
  categories and segment memberships computed, written and logged;
- ``full_again``: a second full pass a day later (values re-read and compared, only what
  changed written): the nightly ``categories.refresh``;
- ``incremental``: ``--new`` (1,000) new purchases of as many contacts inserted, then
  ``segments.refresh(...)`` an hour after the last pass;
- ``floor_incremental``: the same ``GROUP BY`` limited to those contacts.

Each child runs under a small wrapper interpreter (``sync_bench.measure``): wall and
CPU seconds, and ``ru_maxrss`` of that child alone. The machine may be busy: CPU
seconds are the steadier figure, and ``cpu_wait_pct`` says how much others waited.
Figures go to ``bench/results/segments.json`` and ``.md`` (``--output`` for another name;
runs smaller than the default get the size in the name).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from sync_bench import measure, source_state

TARGET_FULL_S = 120  # 1M contacts
TARGET_INCREMENTAL_S = 5
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
CITIES = ["Москва", "Санкт-Петербург", "Химки", "Казань", "Новосибирск", "Екатеринбург", "Самара", "Тверь"]
FIRST = ["Анна", "Борис", "Вера", "Глеб", "Дина", "Егор", "Жанна", "Иван", "Кира", "Лев"]
LAST = ["Белова", "Волков", "Гусева", "Дёмин", "Ершова", "Жуков", "Зайцева", "Ильин", "Комаров", "Лебедева"]

#: hub.yaml's categories and segments for the run (the documented defaults otherwise).
CONFIG = {
    "categories": {
        "rates": {"USD": 92.5},
        "region": {"cities": {"Москва": "Центр", "Химки": "Центр", "Тверь": "Центр",
                              "Санкт-Петербург": "Северо-Запад"}},
    },
    "segments": {
        "vip": {"description": "best clients still buying",
                "when": [{"category": "abc", "is": "A"}, {"category": "temperature", "in": ["hot", "warm"]}]},
        "moscow_leads": {"when": [{"field": "city", "is": "Москва"},
                                  {"category": "stage", "in": ["white", "gray", "green", "yellow"]}]},
        "win_back": {"when": [{"category": "rfm_segment", "in": ["at_risk", "cant_lose", "hibernating"]}]},
    },
}


def stamp(moment: dt.datetime) -> str:
    """A time as SQLAlchemy stores a ``DateTime`` in SQLite."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


# ------------------------------------------------------------------- the data

def generate(path: Path, contacts: int, events: int, seed: int) -> dict:
    """Make the store with hub's migrations, then fill contacts and purchases."""
    from hub.store import open_store

    store = open_store(f"sqlite:///{path}")
    store.dispose()
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")  # a bulk load into a new file: nothing to roll back to
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")
    started = time.perf_counter()
    created = stamp(NOW - dt.timedelta(days=1100))
    db.execute("INSERT INTO runs (id, kind, started_at, finished_at, status) VALUES (1, 'bench', ?, ?, 'ok')",
               (created, created))

    def contact_rows():
        for i in range(1, contacts + 1):
            first, last = FIRST[i % len(FIRST)], LAST[(i // 10) % len(LAST)]
            yield (i, f"{last} {first}", last, first, f"c{i}@example.ru", f"+7916{i:07d}",
                   CITIES[rng.randrange(len(CITIES))], json.dumps({"emails": [f"c{i}@example.ru"]}),
                   1, 1, created, created)

    db.executemany(
        "INSERT INTO contacts (id, full_name, last_name, first_name, email, phone, city, attributes, created_run, "
        "updated_run, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", contact_rows())
    buyers = max(1, contacts * 2 // 3)
    start = (NOW - dt.timedelta(days=3 * 365)).replace(tzinfo=None)  # UTC, as stored
    span = 3 * 365 * 86400
    second = dt.timedelta(seconds=1)

    def event_rows():
        for n in range(1, events + 1):
            # skewed: a few contacts buy often, most once or twice
            buyer = 1 + int(buyers * rng.random() ** 2.2)
            at = (start + second * rng.randrange(span)).isoformat(" ", "microseconds")  # as stamp() gives
            usd = rng.random() < 0.05
            amount = round(rng.lognormvariate(8.0, 1.0) / (92.5 if usd else 1), 2)
            yield (buyer, "purchase", "shop", f"o{n}", at, amount, "USD" if usd else None, 1)

    db.executemany("INSERT INTO events (contact_id, type, connector, external_id, at, amount, currency, run_id) "
                   "VALUES (?,?,?,?,?,?,?,?)", event_rows())
    db.commit()
    buying = db.execute("SELECT count(DISTINCT contact_id) FROM events").fetchone()[0]
    db.execute("ANALYZE")
    db.execute("PRAGMA journal_mode=WAL")  # as hub's stores are
    db.close()
    return {"contacts": contacts, "events": events, "buyers": buying, "seconds": round(time.perf_counter() - started, 1),
            "size_mb": round(path.stat().st_size / 2**20, 1)}


def add_purchases(path: Path, count: int, seed: int, contacts: int) -> list[int]:
    """``count`` new purchases of as many distinct contacts, paid today."""
    rng = random.Random(seed + 1)
    who = rng.sample(range(1, contacts + 1), min(count, contacts))
    db = sqlite3.connect(path)
    db.executemany(
        "INSERT INTO events (contact_id, type, connector, external_id, at, amount, currency, run_id) "
        "VALUES (?, 'purchase', 'shop', ?, ?, ?, NULL, 1)",
        [(cid, f"new{k}", stamp(NOW + dt.timedelta(minutes=30)), 5000.0) for k, cid in enumerate(who)])
    db.commit()
    db.close()
    return sorted(who)


# ------------------------------------------------------------------- the children

FLOOR_SQL = ("SELECT contact_id, count(*), sum(amount), min(at), max(at) FROM events WHERE type = 'purchase' "
             "{where} GROUP BY contact_id")


def child_floor(path: Path, ids_file: Path | None) -> dict:
    db = sqlite3.connect(path)
    where = ""
    if ids_file is not None:
        ids = json.loads(ids_file.read_text())
        db.execute("CREATE TEMP TABLE wanted (id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO wanted VALUES (?)", [(i,) for i in ids])
        where = "AND contact_id IN (SELECT id FROM wanted)"
    started = time.perf_counter()
    rows = db.execute(FLOOR_SQL.format(where=where)).fetchall()
    return {"rows": len(rows), "seconds": round(time.perf_counter() - started, 3)}


def child_refresh(path: Path, at: dt.datetime, full: bool, run_id: int) -> dict:
    from sqlalchemy import insert

    from hub import segments
    from hub.config import HubConfig
    from hub.store import Store
    from hub.store.schema import runs

    model = HubConfig.model_validate(CONFIG)
    store = Store(f"sqlite:///{path}")
    started = time.perf_counter()
    with store.begin() as c:
        c.execute(insert(runs).values(id=run_id, kind="segments", started_at=at, status="ok"))
        done = segments.refresh(c, model, run_id, at, full=full)
    seconds = time.perf_counter() - started
    store.dispose()
    return {"full": done.full, "computed": done.contacts, "changed": len(done.changed), "logged": done.logged,
            "seconds": round(seconds, 3)}


def child_counts(path: Path) -> dict:
    from hub import segments
    from hub.store import Store

    store = Store(f"sqlite:///{path}")
    with store.connect() as c:
        counts = segments.counts(c)
    store.dispose()
    return {name: counts[name] for name in ("stage", "temperature", "abc", "segments")}


# ------------------------------------------------------------------- the run

def run_child(args: list[str], work: Path, label: str) -> dict:
    result = measure([sys.executable, str(Path(__file__).resolve()), "--child", *args], work, label)
    inner = json.loads(result.pop("stdout").strip().splitlines()[-1])
    result.update(inner)
    result["cpu_s"] = round(result["user_s"] + result["sys_s"], 3)
    print(f"  {label:<18} wall {result['wall_s']:8.2f} s   cpu {result['cpu_s']:8.2f} s   "
          f"peak {result['max_rss_mb']:7.1f} MB   {json.dumps(inner, ensure_ascii=False)}", flush=True)
    return result


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 1) if b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--new", type=int, default=1000, help="new purchases before the incremental pass")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--workdir", type=Path, help="keep the store here instead of a temporary folder")
    parser.add_argument("--output", type=Path, help="results file (.json; a .md is written next to it)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path = args.child[0], Path(args.child[1])
        if kind == "floor":
            out = child_floor(path, Path(args.child[2]) if len(args.child) > 2 else None)
        elif kind == "refresh":
            out = child_refresh(path, dt.datetime.fromisoformat(args.child[2]), args.child[3] == "full",
                                int(args.child[4]))
        else:
            out = child_counts(path)
        print(json.dumps(out, ensure_ascii=False))
        return

    default = args.contacts == 1_000_000 and args.events == 5_000_000
    output = args.output or RESULTS / ("segments.json" if default else
                                       f"segments-{args.contacts}x{args.events}.json")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hub-segments-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "hub.db"
    if path.exists():
        path.unlink()
    try:
        print(f"generating {args.contacts:,} contacts and {args.events:,} purchases in {path}", flush=True)
        data = generate(path, args.contacts, args.events, args.seed)
        print(f"  {data}", flush=True)
        runs: dict[str, dict] = {}
        runs["floor"] = run_child(["floor", str(path)], work, "floor")
        runs["full"] = run_child(["refresh", str(path), NOW.isoformat(), "full", "2"], work, "full")
        later = NOW + dt.timedelta(days=1)
        runs["full_again"] = run_child(["refresh", str(path), later.isoformat(), "full", "3"], work, "full_again")
        touched = add_purchases(path, args.new, args.seed, args.contacts)
        ids_file = work / "touched.json"
        ids_file.write_text(json.dumps(touched))
        incremental_at = later + dt.timedelta(hours=1)
        runs["incremental"] = run_child(["refresh", str(path), incremental_at.isoformat(), "incremental", "4"],
                                        work, "incremental")
        runs["floor_incremental"] = run_child(["floor", str(path), str(ids_file)], work, "floor_incremental")
        counts = run_child(["counts", str(path)], work, "counts")
        for key in ("wall_s", "user_s", "sys_s", "cpu_s", "max_rss_mb", "exit", "cpu_wait_pct"):
            counts.pop(key, None)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    full, again, inc = runs["full"], runs["full_again"], runs["incremental"]
    floor, floor_inc = runs["floor"], runs["floor_incremental"]
    ratios = {
        "full_vs_floor_wall": ratio(full["wall_s"], floor["wall_s"]),
        "full_vs_floor_cpu": ratio(full["cpu_s"], floor["cpu_s"]),
        "full_again_vs_floor_cpu": ratio(again["cpu_s"], floor["cpu_s"]),
        "incremental_vs_floor_cpu": ratio(inc["cpu_s"], floor_inc["cpu_s"]),
        "incremental_vs_full_cpu": round(inc["cpu_s"] / full["cpu_s"], 4) if full["cpu_s"] else None,
    }
    targets = {
        "full_under_s": TARGET_FULL_S, "incremental_under_s": TARGET_INCREMENTAL_S,
        "full_met": full["wall_s"] < TARGET_FULL_S and again["wall_s"] < TARGET_FULL_S,
        "incremental_met": inc["wall_s"] < TARGET_INCREMENTAL_S,
    }
    result = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
                    "cpus": os.cpu_count(), "platform": platform.platform()},
        "source": source_state(),
        "data": {**data, "new_purchases": args.new},
        "runs": runs, "ratios": ratios, "targets": targets, "counts": counts,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    output.with_suffix(".md").write_text(markdown(result))
    print(json.dumps({"ratios": ratios, "targets": targets}, indent=2))
    print(f"written {output} and {output.with_suffix('.md')}")


def markdown(result: dict) -> str:
    data, runs, ratios, targets = result["data"], result["runs"], result["ratios"], result["targets"]
    lines = [
        f"# Segments benchmark ({data['contacts']:,} contacts, {data['events']:,} purchases)",
        "",
        f"{result['when']}, Python {result['machine']['python']}, SQLite {result['machine']['sqlite']}, "
        f"{result['machine']['cpus']} CPUs; hub {result['source'].get('commit', '?')}"
        + (" (with uncommitted changes)" if result["source"].get("dirty") else "") + ".",
        (f"{data['buyers']:,} contacts bought; the store was {data['size_mb']} MB. "
        "Produced by `python bench/segments_bench.py`."),
        "",
        "| step | wall s | CPU s | peak RSS MB | CPU wait % | what |",
        "|---|---:|---:|---:|---:|---|",
    ]
    what = {
        "floor": "one `GROUP BY` of every purchase, fetched (sqlite3)",
        "full": "`segments.refresh(full=True)` on a fresh store",
        "full_again": "a second full pass a day later",
        "incremental": f"`segments.refresh()` after {data['new_purchases']:,} new purchases",
        "floor_incremental": "the `GROUP BY` of those contacts only",
    }
    for name, label in what.items():
        r = runs[name]
        lines.append(f"| {name} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['max_rss_mb']:.0f} | "
                     f"{r.get('cpu_wait_pct', '')} | {label} |")
    lines += [
        "",
        (f"- full pass: {runs['full']['computed']:,} contacts computed, {runs['full']['logged']:,} change-log "
        f"entries; {ratios['full_vs_floor_cpu']}× the floor's CPU time ({ratios['full_vs_floor_wall']}× its wall)"),
        (f"- second full pass: {runs['full_again']['changed']:,} contacts changed; "
        f"{ratios['full_again_vs_floor_cpu']}× the floor's CPU time"),
        (f"- incremental: {runs['incremental']['computed']:,} contacts computed, {runs['incremental']['changed']:,} "
        f"changed; {ratios['incremental_vs_floor_cpu']}× its floor's CPU time, "
        f"{ratios['incremental_vs_full_cpu']} of a full pass's"),
        (f"- targets: full pass under {targets['full_under_s']} s: **{'met' if targets['full_met'] else 'missed'}**; "
        f"incremental under {targets['incremental_under_s']} s: "
        f"**{'met' if targets['incremental_met'] else 'missed'}** (wall time on this machine)"),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
