#!/usr/bin/env python3
"""Google Sheets benchmark: API calls and time of a two-way sync against the fewest
calls possible, on the local Sheets API server of the tests.

    python bench/sheets_bench.py                 # 10k rows -> bench/results/sheets.json
    python bench/sheets_bench.py --rows 50000    # another size (--output FILE to keep both)

A worksheet of N client rows (Russian names, phones typed five ways, e-mails, cities, an
``id`` column) is served by ``tests/fakes/google_sheets.py`` with Google's default quotas
(60 requests per minute per user, 300 per project, reads and writes apart). A CRM export
(CSV) holds the same people by e-mail. ``hub sync`` runs as a child process, the sheet
with ``role: both``:

1. *first import*: the sheet is read and the merged truth written back (phones to E.164);
2. *rerun after the write-back*: the rows hub rewrote are read back once; nothing changes;
3. *no-op sync*: nothing changed anywhere;
4. *100 changed*: 100 cities change in the CRM (which wins for ``city``), so 100 contacts
   are written back to the sheet.

For each run: wall time of the whole sync (store included), the sheet's API calls by
endpoint, the requests the server refused for quota (429), and the fewest calls any
client could make for the same work, with why.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(ROOT))

from tests.fakes.google_sheets import FakeGoogleSheets, service_account_key

SPREADSHEET = "1BenchmarkSheetKey_0123456789abcdefghijklmno"
LAST_NAMES = ["Иванов", "Петров", "Сидоров", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов",
              "Новиков", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов", "Козлов"]
FIRST_NAMES = ["Иван", "Пётр", "Анна", "Мария", "Алексей", "Ольга", "Дмитрий", "Елена", "Сергей", "Наталья"]
CITIES = ["Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург", "Тверь", "Самара"]

MAPPING = """\
fields:
  full_name: {from: ФИО, transforms: [split_name]}
  phone: {from: Телефон, transforms: [phone]}
  email: {from: Email, transforms: [email]}
  city: Город
"""

#: The fewest requests any client needs for each run, and why.
MINIMUM = {
    "first_import": (2, ("one values.get of the whole sheet (title known) + one values.batchUpdate "
                         "of every cell to normalize")),
    "no_op": (1, ("one values.get: Sheets has no change feed without Drive access, so the values "
                  "must be read to know that nothing changed")),
    "changed_100": (2, "the sync's one values.get of the sheet + one values.batchUpdate of the 100 contacts"),
    "rerun_after_write_back": (1, ("one values.get; the phones hub normalized in the sheet are read back "
                                   "once and change nothing")),
}


def phone_text(rng: random.Random, digits: str) -> Any:
    styles = [
        lambda d: f"+7{d}",
        lambda d: f"8 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}",
        lambda d: f"+7 {d[:3]} {d[3:6]} {d[6:8]} {d[8:]}",
        lambda d: f"8{d}",
        lambda d: int(f"7{d}"),  # typed as a number
    ]
    return rng.choice(styles)(digits)


def make_data(rows: int, seed: int) -> tuple[list[list[Any]], list[dict[str, str]]]:
    rng = random.Random(seed)
    sheet: list[list[Any]] = [["id", "ФИО", "Телефон", "Email", "Город", "Заметки"]]
    crm: list[dict[str, str]] = []
    for i in range(1, rows + 1):
        name = f"{rng.choice(LAST_NAMES)} {rng.choice(FIRST_NAMES)}"
        digits = f"9{i:09d}"
        email = f"client{i}@example.ru"
        city = rng.choice(CITIES)
        sheet.append([str(i), name, phone_text(rng, digits), email, city, rng.choice(["", "VIP", "перезвонить"])])
        crm.append({"crm_id": f"c{i}", "email": email, "city": city})
    return sheet, crm


def write_crm(path: Path, crm: list[dict[str, str]]) -> None:
    lines = ["crm_id,email,city"] + [f"{r['crm_id']},{r['email']},{r['city']}" for r in crm]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_sync(work: Path) -> tuple[float, dict[str, Any]]:
    env = dict(os.environ)
    env.pop("HUB_LOAD_PLUGINS", None)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "hub", "-c", str(work / "hub.yaml"), "sync", "--json"],
                          capture_output=True, text=True, env={**env, "HUB_LOAD_PLUGINS": ""}, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"hub sync failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return wall, json.loads(done.stdout)


def measure(fake: FakeGoogleSheets, work: Path, name: str) -> dict[str, Any]:
    fake.reset_counters()
    wall, report = run_sync(work)
    calls = {endpoint: count for endpoint, count in sorted(fake.calls.items()) if endpoint != "token"}
    minimum, why = MINIMUM[name]
    counts = report["counts"]["clients"]
    result = {
        "seconds": round(wall, 2),
        "api_calls": sum(calls.values()),
        "calls_by_endpoint": calls,
        "minimum_calls": minimum,
        "minimum_is": why,
        "quota_errors_429": fake.quota_errors,
        "sheet": {key: counts[key] for key in ("read", "unchanged", "created", "updated", "sent", "retry")},
        "status": report["status"],
    }
    print(f"{name:>22}: {result['api_calls']} calls (minimum {minimum}) in {result['seconds']:.2f} s  "
          f"{calls}  429s: {fake.quota_errors}")
    return result


def connector_alone(fake: FakeGoogleSheets, work: Path) -> dict[str, Any]:
    """The connector without the rest of hub: a full read, and a write of 100 changed
    phones, timed in this process (how much of a sync's time is the sheet's)."""
    import logging

    from hub_plugins.google_sheets import GoogleSheetsConnector, GoogleSheetsOptions

    from hub.connector import ConnectorContext
    from hub.model import Checkpoint, OutboundItem

    options = GoogleSheetsOptions(spreadsheet=SPREADSHEET, worksheet="Клиенты", key_column="id",
                                  credentials_file=str(work / "key.json"), endpoint=fake.url)
    connector = GoogleSheetsConnector(options, ConnectorContext("clients", work, logging.getLogger("bench")))
    started = time.perf_counter()
    connector.columns()
    records = [item for item in connector.read(None) if not isinstance(item, Checkpoint)]
    read_s = time.perf_counter() - started
    items = [OutboundItem(i, "upsert", {"Телефон": f"+7999{i:07d}"}, external_id=record.external_id)
             for i, record in enumerate(records[:100])]
    started = time.perf_counter()
    results = connector.write(items)
    write_s = time.perf_counter() - started
    connector.close()
    assert all(result.status == "ok" for result in results)
    return {"read_all_rows_seconds": round(read_s, 3), "rows": len(records),
            "write_100_changed_seconds": round(write_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20260501)
    parser.add_argument("--output", type=Path, default=RESULTS / "sheets.json")
    args = parser.parse_args()
    sheet, crm = make_data(args.rows, args.seed)
    with FakeGoogleSheets() as fake, tempfile.TemporaryDirectory(prefix="hub-sheets-bench-") as folder:
        work = Path(folder)
        fake.create(SPREADSHEET, "Клиенты", {"Клиенты": sheet})
        (work / "key.json").write_text(json.dumps(service_account_key(fake)), encoding="utf-8")
        (work / "mappings").mkdir()
        (work / "mappings" / "clients.yaml").write_text(MAPPING, encoding="utf-8")
        write_crm(work / "crm.csv", crm)
        (work / "hub.yaml").write_text(
            "connectors:\n"
            "  crm: {plugin: csv, path: crm.csv, id_column: crm_id}\n"
            "  clients:\n"
            "    plugin: google_sheets\n"
            "    role: both\n"
            f"    spreadsheet: {SPREADSHEET}\n"
            "    worksheet: Клиенты\n"
            "    key_column: id\n"
            "    credentials_file: key.json\n"
            f"    endpoint: {fake.url}\n"
            "merge:\n"
            "  source_priority: [crm, clients]   # the CRM wins for the city\n"
            "  fields: {city: source_priority}\n",
            encoding="utf-8",
        )
        results = {"first_import": measure(fake, work, "first_import"),
                   "rerun_after_write_back": measure(fake, work, "rerun_after_write_back"),
                   "no_op": measure(fake, work, "no_op")}
        rng = random.Random(args.seed + 1)
        for row in rng.sample(crm, args.changed):
            row["city"] = "Владивосток" if row["city"] != "Владивосток" else "Тверь"
        write_crm(work / "crm.csv", crm)
        results["changed_100"] = measure(fake, work, "changed_100")
        sent = results["changed_100"]["sheet"]["sent"]
        if sent != args.changed:
            raise SystemExit(f"expected {args.changed} contacts written back, got {sent}")
        no_op_after = measure(fake, work, "no_op")
        alone = connector_alone(fake, work)
        print(f"connector alone: read {alone['rows']} rows in {alone['read_all_rows_seconds']} s, "
              f"wrote 100 changed in {alone['write_100_changed_seconds']} s")
    output = {
        "benchmark": "google_sheets",
        "rows": args.rows,
        "changed": args.changed,
        "quota": "Google defaults: 60 requests/min/user and 300/min/project, reads and writes apart",
        "runs": results,
        "no_op_after_100_changed": no_op_after,
        "connector_alone": alone,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count()},
        "date": time.strftime("%Y-%m-%d"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
