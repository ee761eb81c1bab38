#!/usr/bin/env python3
"""Web analytics benchmark: Metrica visits linked to the contacts of site forms.

    python bench/analytics_bench.py                          # 10k forms, 100k visits -> bench/results/analytics.json
    python bench/analytics_bench.py --forms 2000 --visits 20000 --output /tmp/a.json

On a fresh SQLite store in a temporary folder: N form submissions (each with a
Metrica ClientID) are put in the inbox as ``hub serve`` stores them and synced; the
local Metrica Logs API server of the tests (``tests/fakes/yandex_metrica.py``) holds
V visits over 5 days, a share of them (``--matched``) by the forms' visitors, the rest
by visitors no form named. Measured, each ``hub sync`` in-process:

1. *read only* (the baseline): the connector's read drained without storing: the
   Logs API round trip and TSV parsing, the floor of a sync;
2. *first sync*: visits matched to contacts (events, attribution fields, change log)
   or kept pending; visits/s and the ratio to the baseline;
3. *rerun*: the lookback days read again; nothing may be stored twice (checked);
4. *late forms*: forms of 10% of the unknown visitors arrive: their pending visits
   are claimed by the form sync (checked: none of their visits stays pending).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from hub_plugins.yandex_metrica import MetricaConnector
from sqlalchemy import func, insert, select

from hub.config import load_config
from hub.connector import ConnectorContext
from hub.model import RawRecord
from hub.plugins import connector_classes
from hub.store import open_store
from hub.store.schema import contacts, events, inbox, pending_visits
from hub.sync import Sync
from tests.fakes.yandex_metrica import FakeMetrica

TOKEN = "bench-metrica-token"
COUNTER = 4242
MAPPING = "fields:\n  full_name: {from: Name, transforms: [split_name]}\n  email: {from: Email, transforms: [email]}\n"
CHANNELS = ("organic", "ad", "direct", "referral", "social", "email")


def uid(n: int) -> str:
    return str(1_700_000_000_000_000_000 + n)


def setup(root: Path, fake: FakeMetrica) -> Any:
    (root / "mappings").mkdir()
    (root / "mappings" / "site.yaml").write_text(MAPPING, encoding="utf-8")
    (root / "hub.yaml").write_text(
        f"store: sqlite:///{root / 'hub.db'}\nconnectors:\n  site:\n    plugin: webhook\n    format: form\n"
        "    token: bench-token\n  metrica:\n    plugin: yandex_metrica\n    counter_id: 4242\n"
        f"    token: {TOKEN}\n    endpoint: {fake.url}\n    initial_days: 6\n    poll_seconds: 0\n", encoding="utf-8")
    return load_config(root / "hub.yaml", connector_classes())


def put_forms(store: Any, numbers: list[int], start: int) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    rows = [{"connector": "site", "delivery_id": f"form-{n}", "received_at": now, "content_type": "form",
             "fields": json.dumps({"Name": f"Клиент Номер{n}", "Email": f"client{n}@example.ru", "_ym_uid": uid(n)}),
             "remote_addr": "127.0.0.1"} for n in numbers]
    with store.begin() as c:
        for i in range(0, len(rows), 1000):
            c.execute(insert(inbox), rows[i : i + 1000])


def sync(config: Any, store: Any, *only: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    report = Sync(config, store).run(list(only))
    elapsed = time.perf_counter() - started
    assert report.status == "ok", report.errors
    return elapsed, report.as_dict()


def count(store: Any, table: Any, *where: Any) -> int:
    with store.connect() as c:
        return int(c.execute(select(func.count()).select_from(table).where(*where)).scalar() or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forms", type=int, default=10_000)
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--matched", type=float, default=0.3, help="share of visits by the forms' visitors")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "analytics.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rng = random.Random(args.seed)
    zone = dt.timezone(dt.timedelta(hours=3))
    today = dt.datetime.now(zone).date()
    unknown = max(1, args.visits // 3)  # visitors no form names, numbered after the forms'
    with tempfile.TemporaryDirectory() as folder, FakeMetrica(TOKEN, COUNTER, part_rows=20_000) as fake:
        root = Path(folder)
        for v in range(args.visits):
            who = rng.randrange(args.forms) if rng.random() < args.matched else args.forms + rng.randrange(unknown)
            day = today - dt.timedelta(days=1 + rng.randrange(5))
            fake.visit(10_000_000 + v, uid(who), f"{day} {rng.randrange(24):02d}:{rng.randrange(60):02d}:00",
                       lastTrafficSource=rng.choice(CHANNELS), UTMSource=rng.choice(("yandex", "google", "")),
                       UTMCampaign=rng.choice(("spring", "autumn", "")), deviceCategory=str(rng.randint(1, 3)),
                       regionCountry="Russia", regionCity=rng.choice(("Moscow", "Kazan", "Omsk")))
        config = setup(root, fake)
        store = open_store(config.store_url)
        put_forms(store, list(range(args.forms)), 0)
        forms_s, _ = sync(config, store, "site")

        connector = MetricaConnector(config.options["metrica"],
                                     ConnectorContext("metrica", root, logging.getLogger("bench")))
        started = time.perf_counter()
        read = sum(1 for item in connector.read(None) if isinstance(item, RawRecord))
        read_s = time.perf_counter() - started
        connector.close()

        first_s, first = sync(config, store, "metrica")
        stored = count(store, events, events.c.type == "visit")
        waiting = count(store, pending_visits)
        assert stored + waiting == read, (stored, waiting, read)
        rerun_s, _ = sync(config, store, "metrica")
        assert count(store, events, events.c.type == "visit") == stored, "a visit was stored twice"
        assert count(store, pending_visits) == waiting

        late = list(range(args.forms, args.forms + unknown // 10))
        put_forms(store, late, args.forms)
        late_s, _ = sync(config, store, "site")
        with store.connect() as c:
            left = c.execute(select(func.count()).select_from(pending_visits).where(
                pending_visits.c.value.in_([uid(n) for n in late]))).scalar()
        assert left == 0, f"{left} visits of late forms still pending"
        results = {
            "forms": args.forms, "visits": args.visits, "visits_read": read, "matched_share": args.matched,
            "contacts": count(store, contacts), "visit_events": count(store, events, events.c.type == "visit"),
            "pending_after_late_forms": count(store, pending_visits),
            "forms_sync_s": round(forms_s, 2),
            "read_only_s": round(read_s, 2), "read_only_visits_per_s": round(read / read_s),
            "first_sync_s": round(first_s, 2), "first_sync_visits_per_s": round(read / first_s),
            "first_sync_vs_read_only": round(first_s / read_s, 2),
            "first_sync_changes": first["changes"],
            "rerun_s": round(rerun_s, 2), "rerun_vs_read_only": round(rerun_s / read_s, 2),
            "late_forms": len(late), "late_forms_sync_s": round(late_s, 2),
            "log_requests": len(fake.log_requests), "parts_downloaded": fake.calls["download"],
            "peak_requests_in_flight": fake.peak_concurrent,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        store.dispose()
    for key, value in results.items():
        if key != "machine":
            print(f"{key:28} {value}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
