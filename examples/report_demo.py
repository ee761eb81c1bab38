"""Build the report of docs/report.png from the example data, as after months of syncs.

The example orders (examples/orders.csv) and funnel steps (examples/stages.csv) are
replayed week by week with a fixed clock: each week's sync sees the rows dated up to
then, so temperatures, stages and RFM scores change in the change log as they would
have. A few site-form submissions (three of them spam) arrive through a running
``hub serve``. Then ``hub report`` writes the page and headless Chromium takes the
screenshot.

    python examples/report_demo.py [--out docs/report.png] [--keep DIR]

Needs Debian's ``chromium`` for the screenshot (``--no-screenshot`` skips it).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import html
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from sqlalchemy import update

from hub.config import load_config
from hub.plugins import connector_classes
from hub.serve import Server
from hub.store import open_store
from hub.store.schema import inbox
from hub.sync import Sync

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc
TOKEN = "demo-token"
#: Connectors the replay needs, added to the example's hub.yaml when it lacks them.
NEEDED = {
    "orders": """
  orders:
    plugin: csv
    path: examples/orders.csv
    id_column: order_id
    mapping: orders
    events: {type: purchase, at: date, amount: amount, currency: currency, items: items}""",
    "stages": """
  stages:
    plugin: csv
    path: examples/stages.csv
    mapping: stages
    events:
      type_column: stage
      at: date
      types: {ЛПР найден: decision_maker, Отказ: refused, Рассматривает предложение: offer_considered}""",
    "site": f"""
  site:
    plugin: webhook
    format: form
    token: {TOKEN}
    mapping: site
    leads:
      honeypot: [website]
      rules:
        - {{field: formname, equals: Вакансия, status: non-target}}""",
}
SITE_MAPPING = """\
fields:
  full_name: {from: Name, transforms: [split_name]}
  phone: {from: Phone, transforms: [phone]}
  email: {from: Email, transforms: [email]}
"""
CATEGORIES = """
categories:
  rates: {USD: 92.5}
segments:
  vip:
    description: the best clients, still buying
    when: [{category: abc, is: A}, {category: temperature, in: [hot, warm]}]
"""
#: Site-form submissions: when, and what was sent.
FORMS = [
    ("2026-09-03", {"Name": "Павел Гришин", "Phone": "+7 903 111-22-33", "formname": "Заявка"}),
    ("2026-09-20", {"Name": "Ирина Ковалёва", "Email": "i.kovaleva@example.ru", "formname": "Обратный звонок"}),
    ("2026-10-02", {"Name": "Bot", "Email": "win@spam.example", "formname": "Заявка", "website": "http://x"}),
    ("2026-10-11", {"Name": "Артём Лебедев", "Email": "artem@example.ru", "formname": "Вакансия"}),
    ("2026-10-25", {"Name": "Bot", "Email": "cheap@spam.example", "formname": "Заявка", "website": "http://y"}),
    ("2026-11-05", {"Name": "Мария Фомина", "Phone": "+7 916 555-44-33", "formname": "Заявка"}),
    ("2026-11-18", {"Name": "Bot", "Email": "promo@spam.example", "formname": "Обратный звонок", "website": "z"}),
    ("2026-11-21", {"Name": "Денис Яковлев", "Email": "d.yakovlev@example.ru", "formname": "Заявка"}),
]


def build(folder: Path, end: dt.datetime) -> Path:
    """Replay the example into ``folder``; return the report's path."""
    shutil.copytree(ROOT / "examples", folder / "examples", ignore=shutil.ignore_patterns("out", "*.py"))
    shutil.copytree(ROOT / "mappings", folder / "mappings")
    (folder / "mappings" / "site.yaml").write_text(SITE_MAPPING, encoding="utf-8")
    config_text = (ROOT / "hub.yaml").read_text(encoding="utf-8")
    for name, text in NEEDED.items():
        if f"\n  {name}:" not in config_text:
            config_text = config_text.replace("\nconnectors:\n", "\nconnectors:" + text + "\n", 1)
    if "\ncategories:" not in config_text:
        config_text += CATEGORIES
    (folder / "hub.yaml").write_text(config_text, encoding="utf-8")
    files = {name: list(csv.DictReader((ROOT / "examples" / name).open(encoding="utf-8")))
             for name in ("orders.csv", "stages.csv")}
    config = load_config(folder / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    server = Server(config, store, "127.0.0.1", 0, threads=2, sync=False).start()
    forms = sorted(FORMS)
    moment = min(dt.datetime.fromisoformat(row["date"]) for rows in files.values() for row in rows).replace(tzinfo=UTC)
    try:
        while moment <= end:
            for name, rows in files.items():  # the rows dated up to now
                with (folder / "examples" / name).open("w", encoding="utf-8", newline="") as out:
                    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(r for r in rows if dt.datetime.fromisoformat(r["date"]).replace(tzinfo=UTC)
                                     <= moment)
            while forms and dt.datetime.fromisoformat(forms[0][0]).replace(tzinfo=UTC) <= moment:
                day, fields = forms.pop(0)
                answer = requests.post(f"http://127.0.0.1:{server.port}/hooks/site?token={TOKEN}", data=fields,
                                       timeout=30)
                answer.raise_for_status()
                with store.begin() as c:  # it came in on its own day
                    c.execute(update(inbox).where(inbox.c.received_at > moment).values(
                        received_at=dt.datetime.fromisoformat(day).replace(hour=10, tzinfo=UTC)))
            report = Sync(config, store, clock=lambda at=moment: at).run()
            if report.errors:
                raise SystemExit(f"sync at {moment:%Y-%m-%d} failed: {report.errors}")
            moment += dt.timedelta(days=7)
    finally:
        server.stop()
        store.dispose()
    out = folder / "report.html"
    subprocess.run([sys.executable, "-m", "hub", "-c", str(folder / "hub.yaml"), "report", "-o", str(out)],
                   check=True)
    return out


def screenshot(page: Path, png: Path, width: int = 1100) -> None:
    """A full-page screenshot: the page's height is measured first."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("the screenshot needs Debian's chromium (apt-get install chromium)")
    text = page.read_text(encoding="utf-8")
    probe = page.with_name("probe.html")
    probe.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text).replace(
        "</body>", "<pre id=h></pre><script>document.getElementById('h').textContent="
                   "document.documentElement.scrollHeight</script></body>"), encoding="utf-8")
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={page.parent / 'chromium-profile'}"]
    dom = subprocess.run([*flags, f"--window-size={width},1000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, check=True).stdout
    found = re.search(r"<pre id=\"h\">(\d+)</pre>", dom)
    height = int(html.unescape(found.group(1))) if found else 3000
    subprocess.run([*flags, f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()],
                   capture_output=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--keep", type=Path, help="Build in this folder (kept) instead of a temporary one.")
    parser.add_argument("--until", default="2026-11-27", help="The last week replayed (YYYY-MM-DD).")
    parser.add_argument("--no-screenshot", action="store_true")
    args = parser.parse_args()
    end = dt.datetime.fromisoformat(args.until).replace(hour=12, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        page = build(folder, end)
        print(f"report: {page}")
        if not args.no_screenshot:
            screenshot(page, args.out)
            print(f"screenshot: {args.out}")


if __name__ == "__main__":
    main()
