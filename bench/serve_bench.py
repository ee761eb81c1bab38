#!/usr/bin/env python3
"""``hub serve`` under a burst of site-form posts, and killed in the middle of one.

    python bench/serve_bench.py                       # 1,000 posts -> bench/results/serve.json and .md
    python bench/serve_bench.py --posts 5000 --concurrency 100 --output /tmp/serve.json
    python bench/serve_bench.py --store postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --output bench/results/serve-postgresql.json    # each phase in a new schema, dropped after

A real ``hub serve`` (a subprocess, as systemd runs it) on loopback, one form-post
webhook connector with a URL token, SQLite store unless ``--store``:

1. *load*: ``--posts`` form posts at once from ``--concurrency`` threads, each a new
   connection with a unique ``X-Hub-Delivery`` id. Reported: answers by status, rows in
   the inbox (must equal the 200s), latency p50/p90/p99/max, requests per second.
2. *baseline*: the same burst against a minimal WSGI app on the same server (waitress,
   same threads) that reads the body and answers 200 without storing anything, so the
   cost of the durable write is a ratio in the same run.
3. *kill*: the same burst into a fresh store; after ``--kill-after`` acknowledged
   requests the server gets SIGKILL. It is started again, and every request that had
   its 200 must be in the inbox (``lost`` must be 0). Rows stored whose answer never
   reached the sender are counted; every request not acknowledged is then sent again,
   as a sender retries, and the inbox must end with exactly one row per request
   (duplicates recognised by the delivery id).

By default the server runs with ``--no-sync`` (the receiver alone: the sync runs from
cron); ``--sync`` measures it with the background sync of the inbox running as well.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOKEN = "bench-form-token-5e2a"
CONNECTOR = "site"

CONFIG = f"""\
connectors:
  {CONNECTOR}:
    plugin: webhook
    format: form
    token: {TOKEN}
"""
MAPPING = """\
fields:
  full_name: {from: name, transforms: [split_name]}
  email: {from: email, transforms: [email]}
  phone: {from: phone, transforms: [phone]}
"""

#: The baseline: the same server, an app that only answers.
BASELINE_APP = """\
import sys
from waitress import serve

def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    if environ.get("PATH_INFO") == "/healthz":
        body = b'{"status": "ok"}'
    else:
        body = b'{"ok": true, "duplicate": false}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]), ident="hub", _quiet=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SCHEMAS: list[tuple[str, str]] = []


def fresh_store(store: str | None) -> str | None:
    """A PostgreSQL URL gets an empty schema of its own (dropped at the end); a SQLite
    store is a new file in the phase's folder (``None``)."""
    if not store or not store.startswith("postgresql"):
        return store
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"hub_bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(store)
    with engine.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    _SCHEMAS.append((store, schema))
    return f"{store}{'&' if '?' in store else '?'}options=-csearch_path%3D{schema}"


def drop_schemas() -> None:
    from sqlalchemy import create_engine, text

    while _SCHEMAS:
        store, schema = _SCHEMAS.pop()
        engine = create_engine(store)
        with engine.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def make_project(folder: Path, store: str | None) -> Path:
    """hub.yaml with one webhook connector, and its mapping, in ``folder``."""
    store = fresh_store(store)
    (folder / "mappings").mkdir(parents=True, exist_ok=True)
    (folder / "mappings" / f"{CONNECTOR}.yaml").write_text(MAPPING, encoding="utf-8")
    head = f"store: {store}\n" if store else ""
    path = folder / "hub.yaml"
    path.write_text(head + CONFIG, encoding="utf-8")
    return path


class Process:
    """A server subprocess: ``hub serve`` or the baseline app."""

    def __init__(self, args: list[str], port: int, log: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(log, "ab")  # noqa: SIM115 - open while the process runs
        self.popen = subprocess.Popen(args, stdout=self.log, stderr=self.log, env={**os.environ, "HUB_LOAD_PLUGINS": ""})
        self.wait_ready()

    @classmethod
    def hub(cls, config: Path, port: int, threads: int, sync: bool, log: Path) -> Process:
        args = [sys.executable, "-m", "hub", "-c", str(config), "serve", "--port", str(port),
                "--threads", str(threads)]
        return cls(args + ([] if sync else ["--no-sync"]), port, log)

    @classmethod
    def baseline(cls, folder: Path, port: int, threads: int, log: Path) -> Process:
        script = folder / "baseline_app.py"
        script.write_text(BASELINE_APP, encoding="utf-8")
        return cls([sys.executable, str(script), str(port), str(threads)], port, log)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"the server exited with {self.popen.returncode}; see {self.log.name}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not answer /healthz within {timeout} s; see {self.log.name}")

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(30)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def post(url: str, i: int, run: str) -> tuple[int, float]:
    """One form post on a new connection: (status or 0 for no answer, seconds); a 200
    that says the delivery was stored before counts as status 208 here."""
    started = time.perf_counter()
    try:
        with requests.Session() as http:
            answer = http.post(
                f"{url}/hooks/{CONNECTOR}?token={TOKEN}", timeout=60,
                data={"name": f"Клиент {i}", "email": f"client{i}@example.ru", "phone": f"+7916{i:07d}",
                      "formname": "Заявка", "utm_source": "bench"},
                headers={"X-Hub-Delivery": f"{run}-{i}"})
            status = answer.status_code
            if status == 200 and answer.json().get("duplicate"):
                status = 208
    except (requests.RequestException, ValueError):
        status = 0
    return status, time.perf_counter() - started


def burst(url: str, posts: int, concurrency: int, run: str,
          on_answer: Any = None) -> tuple[list[int], list[float], float]:
    """All posts at once from ``concurrency`` threads: statuses and latencies by request, wall time."""
    statuses = [0] * posts
    latencies = [0.0] * posts

    def one(i: int) -> None:
        statuses[i], latencies[i] = post(url, i, run)
        if on_answer is not None:
            on_answer(i, statuses[i])

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(posts)))
    return statuses, latencies, time.perf_counter() - started


def inbox_ids(store_url: str, run: str) -> list[str]:
    """Delivery ids of this run in the inbox (one per row)."""
    from sqlalchemy import and_, select

    from hub.store import open_store
    from hub.store.schema import inbox

    store = open_store(store_url)
    try:
        with store.connect() as c:
            return list(c.execute(select(inbox.c.delivery_id).where(and_(
                inbox.c.connector == CONNECTOR, inbox.c.delivery_id.like(f"{run}-%")))).scalars())
    finally:
        store.dispose()


def latency_figures(latencies: list[float], wall: float) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))], 1)

    return {"p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": round(ms[-1], 1),
            "mean_ms": round(statistics.fmean(ms), 1), "requests_per_s": round(len(ms) / wall, 1),
            "wall_s": round(wall, 2)}


def store_url_of(config: Path) -> str:
    from hub.config import load_config
    from hub.plugins import connector_classes

    return str(load_config(config, connector_classes()).store_url)


def load_phase(folder: Path, store: str | None, posts: int, concurrency: int, threads: int, sync: bool) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    config = make_project(folder / "load", store)
    server = Process.hub(config, free_port(), threads, sync, folder / "load.log")
    try:
        statuses, latencies, wall = burst(server.url, posts, concurrency, "load")
    finally:
        server.stop()
    stored = inbox_ids(store_url_of(config), "load")
    ok = [i for i, s in enumerate(statuses) if s == 200]
    return {"posts": posts, "answers": dict(Counter(str(s) for s in statuses)), "acknowledged": len(ok),
            "inbox_rows": len(stored), "rows_equal_200s": len(stored) == len(ok),
            "acknowledged_missing": len({f"load-{i}" for i in ok} - set(stored)),
            **latency_figures(latencies, wall)}


def baseline_phase(folder: Path, posts: int, concurrency: int, threads: int) -> dict:
    server = Process.baseline(folder, free_port(), threads, folder / "baseline.log")
    try:
        statuses, latencies, wall = burst(server.url, posts, concurrency, "baseline")
    finally:
        server.stop()
    return {"posts": posts, "answers": dict(Counter(str(s) for s in statuses)), **latency_figures(latencies, wall)}


def kill_phase(folder: Path, store: str | None, posts: int, concurrency: int, threads: int, sync: bool,
               kill_after: int) -> dict:
    """Burst, SIGKILL after ``kill_after`` 200s, restart, check, resend the rest."""
    work = folder / "kill"
    config = make_project(work, store)
    store_url = store_url_of(config)
    port = free_port()
    server = Process.hub(config, port, threads, sync, folder / "kill.log")
    acknowledged = 0
    lock = threading.Lock()
    killed = threading.Event()

    def on_answer(_i: int, status: int) -> None:
        nonlocal acknowledged
        with lock:
            if status == 200:
                acknowledged += 1
            if acknowledged >= kill_after and not killed.is_set():
                killed.set()
                server.kill()  # mid-burst: requests are in flight, some half-written

    statuses, _latencies, _wall = burst(server.url, posts, concurrency, "kill", on_answer)
    server.log.close()
    ok = {f"kill-{i}" for i, s in enumerate(statuses) if s == 200}
    restarted = Process.hub(config, port, threads, sync, folder / "kill.log")
    try:
        after_restart = set(inbox_ids(store_url, "kill"))
        lost = sorted(ok - after_restart)
        unanswered = [i for i, s in enumerate(statuses) if s != 200]
        # a sender retries what was not acknowledged; what was stored anyway is a duplicate
        retried = [post(restarted.url, i, "kill")[0] for i in unanswered]
        retried_ok = sum(1 for status in retried if status in (200, 208))
    finally:
        restarted.stop()
    final = inbox_ids(store_url, "kill")
    return {"posts": posts, "killed_after_acknowledged": kill_after, "killed": killed.is_set(),
            "acknowledged_before_kill": len(ok), "unanswered": len(unanswered),
            "inbox_rows_after_restart": len(after_restart), "lost": len(lost), "lost_ids": lost[:20],
            "stored_without_answer": len(after_restart - ok),
            "retried": len(retried), "retried_stored": retried.count(200),
            "retried_recognised_duplicates": retried.count(208), "retried_failed": len(retried) - retried_ok,
            "inbox_rows_after_retries": len(final), "distinct_after_retries": len(set(final)),
            "exactly_once": len(final) == posts == len(set(final)) and retried_ok == len(retried)}


FIGURES = ("p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "requests_per_s", "wall_s")


def median_round(rounds: list[dict]) -> dict:
    """Each figure's median over the rounds (a busy machine slows some rounds)."""
    return {**rounds[0], **{key: round(statistics.median(r[key] for r in rounds), 1) for key in FIGURES}}


def run(posts: int = 1000, concurrency: int = 50, threads: int = 8, store: str | None = None, sync: bool = False,
        kill_after: int | None = None, workdir: Path | None = None, baseline: bool = True, rounds: int = 3) -> dict:
    with tempfile.TemporaryDirectory(prefix="hub-serve-bench-") as tmp:
        folder = workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        result: dict[str, Any] = {
            "settings": {"posts": posts, "concurrency": concurrency, "server_threads": threads,
                         "store": "sqlite (file)" if store is None else store.split("://")[0],
                         "background_sync": sync},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "hub_commit": _commit(),
        }
        result["settings"]["rounds"] = rounds
        try:
            # hub and the baseline take turns, so both see the same share of a busy machine
            loads, bases = [], []
            for n in range(rounds):
                loads.append(load_phase(folder / f"round{n}", store, posts, concurrency, threads, sync))
                if baseline:
                    bases.append(baseline_phase(folder, posts, concurrency, threads))
            result["load"] = median_round(loads)
            result["load"].update(
                acknowledged=sum(r["acknowledged"] for r in loads), inbox_rows=sum(r["inbox_rows"] for r in loads),
                acknowledged_missing=sum(r["acknowledged_missing"] for r in loads),
                rows_equal_200s=all(r["rows_equal_200s"] for r in loads), posts=posts * rounds,
                answers=dict(sum((Counter(r["answers"]) for r in loads), Counter())))
            result["load_rounds"] = loads
            if baseline:
                result["baseline"] = median_round(bases)
                result["baseline"]["answers"] = dict(sum((Counter(r["answers"]) for r in bases), Counter()))
                result["baseline_rounds"] = bases
                load, base = result["load"], result["baseline"]
                result["ratio"] = {key: round(load[key] / base[key], 2) if base[key] else None
                                   for key in ("p50_ms", "p99_ms", "requests_per_s")}
            result["kill"] = kill_phase(folder, store, posts, concurrency, threads, sync,
                                        kill_after if kill_after is not None else posts // 3)
        finally:
            drop_schemas()
        return result


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def markdown(result: dict) -> str:
    s, load, kill = result["settings"], result["load"], result["kill"]
    lines = [
        "# hub serve: burst and kill benchmark",
        "",
        (f"`python bench/serve_bench.py` at {result['hub_commit']}: {s['rounds']} rounds of {s['posts']} form posts from "
        f"{s['concurrency']} threads (a new connection each) to `hub serve` with {s['server_threads']} threads "
        f"on loopback, store {s['store']}, background sync {'on' if s['background_sync'] else 'off'}; "
        f"{result['machine']['cpus']} CPUs, Python {result['machine']['python']}."),
        "",
        ("Latencies and rates are the median of the rounds (hub and the baseline take turns); 200s and "
        "rows are totals."),
        "",
        "| run | 200s | inbox rows | p50 ms | p90 ms | p99 ms | max ms | requests/s |",
        "|---|---|---|---|---|---|---|---|",
        (f"| hub serve (durable write) | {load['acknowledged']} | {load['inbox_rows']} | {load['p50_ms']} | "
        f"{load['p90_ms']} | {load['p99_ms']} | {load['max_ms']} | {load['requests_per_s']} |"),
    ]
    if "baseline" in result:
        base, ratio = result["baseline"], result["ratio"]
        lines += [
            (f"| baseline (same server, answer only) | {base['answers'].get('200', 0)} | - | {base['p50_ms']} | "
            f"{base['p90_ms']} | {base['p99_ms']} | {base['max_ms']} | {base['requests_per_s']} |"),
            f"| ratio hub / baseline | | | {ratio['p50_ms']} | | {ratio['p99_ms']} | | {ratio['requests_per_s']} |",
        ]
    lines += [
        "",
        f"Every 200 is a row: {load['rows_equal_200s']} ({load['acknowledged_missing']} acknowledged missing).",
        "",
        (f"**Kill**: SIGKILL after {kill['acknowledged_before_kill']} requests were acknowledged "
        f"({kill['unanswered']} without an answer); after the restart the inbox held "
        f"{kill['inbox_rows_after_restart']} rows, **{kill['lost']} acknowledged requests lost**, "
        f"{kill['stored_without_answer']} stored whose answer never left. The {kill['retried']} unanswered "
        f"requests sent again: {kill['retried_stored']} stored, {kill['retried_recognised_duplicates']} recognised "
        f"as stored before, {kill['retried_failed']} failed; the inbox ended with {kill['inbox_rows_after_retries']} rows for "
        f"{kill['posts']} requests (exactly once: {kill['exactly_once']})."),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50, help="client threads")
    parser.add_argument("--threads", type=int, default=8, help="hub serve --threads")
    parser.add_argument("--store", help="SQLAlchemy URL (default: a SQLite file in the work folder)")
    parser.add_argument("--sync", action="store_true", help="run the background sync of the inbox too")
    parser.add_argument("--kill-after", type=int, help="SIGKILL after this many 200s (default posts/3)")
    parser.add_argument("--rounds", type=int, default=3, help="load and baseline bursts, taking turns")
    parser.add_argument("--workdir", type=Path, help="keep the stores and server logs here")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "serve.json")
    args = parser.parse_args()
    result = run(args.posts, args.concurrency, args.threads, args.store, args.sync, args.kill_after, args.workdir,
                 rounds=args.rounds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    report = markdown(result)
    args.output.with_suffix(".md").write_text(report, encoding="utf-8")
    print(report)
    print(f"wrote {args.output} and {args.output.with_suffix('.md')}")
    load, kill = result["load"], result["kill"]
    return 0 if load["rows_equal_200s"] and kill["lost"] == 0 and kill["exactly_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
