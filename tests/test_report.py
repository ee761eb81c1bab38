"""`hub report`: the figures, and the page as a real browser draws it (headless Chromium).

The browser tests load the report in Debian's ``chromium`` with a check script added
at the end of the page. The script measures each chart as drawn (its box, and the box
of every data mark), the page at a phone's width, and what scripts the page holds, and
writes the result into the DOM, which ``--dump-dom`` prints.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hub.quality import problem_kinds, split_problems

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless browser tests need Debian's chromium package (apt-get install chromium)"
)

#: Narrow enough for a phone held upright.
PHONE_WIDTH = 360

CHECK = """
<script>
(function () {
  var phone = %(phone)d;
  function measure() {
    var charts = [];
    document.querySelectorAll('svg.chart').forEach(function (svg) {
      var box = svg.getBoundingClientRect();
      var marks = svg.querySelectorAll('.mark');
      var drawn = 0;
      marks.forEach(function (m) {
        // an area has both sides; a line over time may be level (no height)
        var b = m.getBBox(), r = m.getBoundingClientRect(), line = m.tagName === 'polyline';
        var sized = function (x) { return line ? (x.width > 0 || x.height > 0) : (x.width > 0 && x.height > 0); };
        if (sized(b) && sized(r) && getComputedStyle(m).visibility !== 'hidden') drawn++;
      });
      var scale = box.width / svg.viewBox.baseVal.width;
      var smallest = 99;
      svg.querySelectorAll('text').forEach(function (t) {
        smallest = Math.min(smallest, parseFloat(t.getAttribute('font-size') || '16') * scale);
      });
      charts.push({label: svg.getAttribute('aria-label'), section: svg.closest('section').id,
                   width: box.width, height: box.height, expected: parseInt(svg.dataset.marks, 10),
                   marks: marks.length, drawn: drawn, smallest_font: smallest, right: box.right});
    });
    return charts;
  }
  var wide = measure();
  document.body.style.width = phone + 'px';
  var narrow = measure();
  var overflow = [];
  document.querySelectorAll('section, .card, svg.chart').forEach(function (e) {
    if (e.getBoundingClientRect().right > phone + 0.5)
      overflow.push(e.id || e.getAttribute('aria-label') || e.className);
  });
  var out = document.createElement('pre');
  out.id = 'render-check';
  out.textContent = JSON.stringify({wide: wide, narrow: narrow, overflow: overflow, title: document.title,
                                    scripts: document.scripts.length, images: document.images.length,
                                    sections: Array.prototype.map.call(document.querySelectorAll('section'),
                                                                       function (s) { return s.id; })});
  document.body.appendChild(out);
})();
</script>
"""


def render_in_browser(page: Path, tmp_path: Path) -> dict[str, Any]:
    """Open the report in headless Chromium with the check script; return what it measured."""
    text = page.read_text(encoding="utf-8")
    # the page forbids every script (CSP); the check script is ours, so that line goes
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    checked = tmp_path / "checked.html"
    checked.write_text(text.replace("</body>", CHECK % {"phone": PHONE_WIDTH} + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1200,2000",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", checked.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    found = re.search(r'<pre id="render-check">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found, f"chromium printed no check result (exit {done.returncode}): {done.stderr[-2000:]}"


    return json.loads(html.unescape(found.group(1)))


def assert_charts_drawn(result: dict[str, Any]) -> None:
    """Every chart has a size and every data mark it announces was drawn with a size, on a
    wide screen and at a phone's width; nothing sticks out at the phone's width."""
    assert result["wide"], "the page has no charts"
    for layout in ("wide", "narrow"):
        for chart in result[layout]:
            where = f"{layout}: {chart['section']}: {chart['label']}"
            assert chart["width"] > 50 and chart["height"] > 10, f"{where}: drawn {chart['width']}x{chart['height']}"
            assert chart["expected"] > 0 and chart["marks"] == chart["expected"], where
            assert chart["drawn"] == chart["expected"], f"{where}: {chart['drawn']} of {chart['expected']} marks drawn"
    for chart in result["narrow"]:
        assert chart["smallest_font"] >= 9, f"{chart['label']}: text {chart['smallest_font']:.1f}px on a phone"
    assert result["overflow"] == [], f"wider than a phone: {result['overflow']}"


# ----------------------------------------------------------------------------- setup

SHEET = """\
id,full_name,phone,email,city
1,Анна Белова,89160000001,anna@example.ru,Москва
2,Борис Орлов,89160000002,boris@example.ru,Москва
3,Вера Козлова,телефон не дал,vera@@mail,Казань
4,Глеб Смирнов,89160000004,,"<script>document.title='pwned'</script>"
5,Дина Зайцева,89160000005,dina@example.ru,"<img src=x onerror=""document.title='pwned'"">"
"""
MAILING = """\
Email,Name
anna@example.ru,Анна Белова
boris@example.ru,Борис
new@example.ru,Новый Человек
bad-address,Кто-то
"""


@pytest.fixture
def synced(store_project):
    project = store_project
    project.write("sheet.csv", SHEET)
    project.write("mailing.csv", MAILING)
    project.write("mappings/mailing.yaml", "fields:\n  email: {from: Email, transforms: [email]}\n"
                  "  full_name: {from: Name, transforms: [split_name]}\n")
    project.config("""\
        connectors:
          sheet: {plugin: csv, path: sheet.csv, id_column: id}
          mailing: {plugin: csv, path: mailing.csv, id_column: Email, mapping: mailing}
    """)
    result = project.hub("sync")
    assert result.exit_code == 0, result.output
    # what an e-mail service would have reported for anna and boris
    from sqlalchemy import insert

    from hub.config import load_config
    from hub.plugins import connector_classes
    from hub.store import open_store
    from hub.store.schema import consents

    store = open_store(load_config(project.root / "hub.yaml", connector_classes()).store_url)
    with store.begin() as c:
        c.execute(insert(consents), [{"contact_id": 1, "channel": "email", "status": "subscribed", "source": "esp"},
                                     {"contact_id": 2, "channel": "email", "status": "unsubscribed", "source": "esp"}])
    store.dispose()
    return project


ORDERS = """\
order_id,date,email,customer,amount
o1,2026-03-01,anna@example.ru,Анна Белова,9000
o2,2026-03-15,boris@example.ru,Борис Орлов,500
o3,2026-02-01,boris@example.ru,Борис Орлов,500
"""
STAGES = """\
id,date,email,stage
1,2026-03-10,dina@example.ru,ЛПР найден
"""
TOKEN = "t0ken-for-the-forms"
SHOP = f"""\
connectors:
  sheet: {{plugin: csv, path: sheet.csv, id_column: id}}
  orders:
    plugin: csv
    path: orders.csv
    id_column: order_id
    mapping: orders
    events: {{type: purchase, at: date, amount: amount}}
  stages:
    plugin: csv
    path: stages.csv
    id_column: id
    mapping: stages
    events: {{type_column: stage, at: date, types: {{ЛПР найден: decision_maker}}}}
  site:
    plugin: webhook
    format: form
    token: {TOKEN}
    leads:
      honeypot: [website]
      rules:
        - {{field: formname, equals: Вакансия, status: non-target}}
categories:
  temperature: {{hot: 10d, warm: 30d}}
segments:
  buyers:
    when: [{{fact: orders, min: 1}}]
"""
UTC = dt.timezone.utc
#: The syncs of the shop happen at these times (a fixed clock).
T1, T2, T3 = (dt.datetime(2026, 3, 16, 12, tzinfo=UTC), dt.datetime(2026, 3, 28, 12, tzinfo=UTC),
              dt.datetime(2026, 4, 5, 12, tzinfo=UTC))


@pytest.fixture
def shop(store_project):
    """Five people in a sheet, three orders, a funnel step, three site forms (one spam),
    synced at T1, T2 and T3."""
    import requests

    from hub.config import load_config
    from hub.plugins import connector_classes
    from hub.serve import Server
    from hub.store import open_store
    from hub.sync import Sync

    project = store_project
    project.write("sheet.csv", SHEET)
    project.write("orders.csv", ORDERS)
    project.write("stages.csv", STAGES)
    project.write("mappings/orders.yaml", "fields:\n  email: {from: email, transforms: [email]}\n"
                  "  full_name: {from: customer, transforms: [split_name]}\n")
    project.write("mappings/stages.yaml", "fields:\n  email: {from: email, transforms: [email]}\n")
    project.write("mappings/site.yaml", "fields:\n  full_name: {from: Name, transforms: [split_name]}\n"
                  "  email: {from: Email, transforms: [email]}\n")
    project.config(SHOP)
    config = load_config(project.root / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    server = Server(config, store, "127.0.0.1", 0, threads=2, sync=False).start()
    try:
        url = f"http://127.0.0.1:{server.port}/hooks/site?token={TOKEN}"
        for fields in ({"Name": "Ева Новикова", "Email": "eva@example.ru", "formname": "Заявка"},
                       {"Name": "Олег Петров", "Email": "oleg@example.ru", "formname": "Вакансия"},
                       {"Name": "<script>document.title='pwned'</script>", "Email": "bot@example.org",
                        "formname": "<b onmouseover=alert(1)>Заявка</b>", "website": "http://spam.example"}):
            assert requests.post(url, data=fields, timeout=30).status_code == 200
    finally:
        server.stop()
    from sqlalchemy import update

    from hub.store.schema import inbox

    with store.begin() as c:  # the forms came in the morning of T1's day
        c.execute(update(inbox).values(received_at=T1.replace(hour=8)))
    for moment in (T1, T2, T3):
        report = Sync(config, store, clock=lambda moment=moment: moment).run()
        assert not report.errors, report.errors
    project.store, project.loaded = store, config
    yield project
    store.dispose()


# ----------------------------------------------------------------------------- figures


def test_problem_kinds_read_the_quarantine_reasons():
    reason = ("birthday: '31.02.1990' is not a DD.MM.YYYY date; phone: 'телефон не дал' is not a phone number; "
              "email: 'orlov@@mail' is not a valid email address (The part after the @-sign contains invalid "
              "characters: '@')")
    assert problem_kinds(reason) == {"birthday", "phone", "email"}
    assert problem_kinds("phones: 'x; email: y' is not a phone number") == {"phone"}
    assert problem_kinds("the record has no id (empty id column)") == {"other"}
    assert split_problems(reason)[1:] == [
        ("phone", "phone: 'телефон не дал' is not a phone number"),
        ("email", ("email: 'orlov@@mail' is not a valid email address (The part after the @-sign contains invalid "
                  "characters: '@')"))]


def test_report_figures_sources_overlap_duplicates_quality(synced):
    result = synced.hub("report", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # sheet: 5 people; mailing: anna and boris (the same people), new, bad-address (no e-mail left, a name only)
    assert data["contacts"] == 7
    sources = data["sources"]
    assert sources["contacts"] == {"sheet": 5, "mailing": 4}
    assert sources["only_here"] == {"sheet": 3, "mailing": 2}
    assert sources["overlap"] == [[5, 2], [2, 4]]
    assert sources["by_number_of_sources"] == {"1": 5, "2": 2}
    dup = data["duplicates"]
    assert dup["records"] == 9 and dup["folded"] == 2
    assert dup["records_per_contact"] == {"1": 5, "2": 2}
    quality = data["quality"]
    assert quality["invalid_phone"] == 1 and quality["invalid_email"] == 2
    assert quality["email_without_consent"] == 2 and quality["phone_without_consent"] == 4
    assert quality["consent"] == {"email": {"subscribed": 1, "unsubscribed": 1}}
    assert data["quarantine"] == {"mailing": {"open": 0, "partial": 1, "resolved": 0},
                                  "sheet": {"open": 0, "partial": 1, "resolved": 0}}
    assert data["cities"]["Москва"] == 2


def test_an_empty_base_gives_a_report_that_says_so(project):
    project.write("c.csv", "id,full_name\n")
    project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    out = project.root / "r.html"
    result = project.hub("report", "-o", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "<svg" not in page and "no contacts yet" in page and "no form submissions yet" in page


def test_merges_by_hand_and_splits_are_counted(synced):
    synced.hub("merge", "3", "6")
    synced.hub("merge", "4", "7")
    synced.hub("split", "4")
    data = json.loads(synced.hub("report", "--json").stdout)
    assert (data["duplicates"]["manual"], data["duplicates"]["split"]) == (2, 1)
    assert data["contacts"] == 6


def test_report_is_audited(synced):
    out = synced.root / "r.html"
    assert synced.hub("report", "-o", str(out), "--actor", "olga").exit_code == 0
    audit = json.loads(synced.hub("audit", "--json").stdout)
    assert [(a["actor"], a["action"], a["what"], a["rows"]) for a in audit] == [("olga", "report", str(out), 7)]


def test_report_escapes_data_and_loads_nothing(synced):
    out = synced.root / "report.html"
    result = synced.hub("report", "-o", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert not re.search(r"(?:src|href)=|https?://|@import|url\(", page), "the report must not load anything"


def test_funnel_rfm_abc_and_leads_of_the_shop(shop):
    from hub.report import collect

    with shop.store.connect() as c:
        data = collect(c, shop.loaded, T3)
    cats = data["categories"]
    # anna and boris bought (gold); dina's decision maker is known (gray); eva and oleg sent a form (green-gold);
    # vera and gleb are new
    assert cats["stage"] == {"white": 2, "gray": 1, "green-gold": 2, "gold": 2}
    # anna: one order 35 days before T3; boris: two orders, the last 21 days before T3
    assert sum(map(sum, cats["rfm_grid"])) == 2
    # anna brings 90% of the revenue (A); boris's 10% starts at 90% of it, in the next 15% (B)
    assert cats["abc"] == {"A": 1, "B": 1} and cats["abc_revenue"] == {"A": 9000.0, "B": 1000.0}
    assert cats["segments"] == {"buyers": 2}
    leads = data["leads"]
    assert leads["by_quality"] == {"target": 1, "non-target": 1, "spam": 1} and leads["total"] == 3
    assert leads["by_form"]["Заявка"] == {"target": 1}
    assert leads["by_form"]["<b onmouseover=alert(1)>Заявка</b>"] == {"spam": 1}


def test_temperature_over_time_follows_the_change_log(shop):
    """hot within 10 days of the last purchase or interaction, warm within 30, else cold."""
    from hub.report import collect

    with shop.store.connect() as c:
        history = collect(c, shop.loaded, T3)["temperature_over_time"]
        now = collect(c, shop.loaded, T3)["categories"]["temperature"]
    assert history["unit"] == "day"
    labels = history["labels"]
    assert labels[0] == "2026-03-16" and labels[-1] == "2026-04-05" and len(labels) == 21
    at = {day: {t: history["series"][t][i] for t in ("hot", "warm", "cold")} for i, day in enumerate(labels)}
    # T1: boris bought the day before (hot), anna 15 days before (warm); dina's step was 6 days before (hot);
    # eva and oleg sent their forms today (hot); vera and gleb never did anything (cold)
    assert at["2026-03-16"] == {"hot": 4, "warm": 1, "cold": 2}
    assert at["2026-03-27"] == at["2026-03-16"]          # nothing was computed between the syncs
    # T2: boris 13 days (warm), anna 27 (warm), dina 18 (warm), the forms 12 days old (warm)
    assert at["2026-03-28"] == {"hot": 0, "warm": 5, "cold": 2}
    # T3: anna 35 days (cold), dina 26 (warm), boris 21 (warm), the forms 20 days (warm)
    assert at["2026-04-05"] == {"hot": 0, "warm": 4, "cold": 3}
    assert now == {"warm": 4, "cold": 3}


# ----------------------------------------------------------------------------- browser


@needs_chromium
def test_report_renders_in_a_browser(synced, tmp_path):
    out = synced.root / "report.html"
    assert synced.hub("report", "-o", str(out)).exit_code == 0
    result = render_in_browser(out, tmp_path)
    assert_charts_drawn(result)
    drawn = {chart["section"] for chart in result["wide"]}
    assert {"sources", "overlap", "duplicates", "quality", "quarantine", "cities"} <= drawn
    # the hostile city names stayed text: no script ran, no image was made
    assert result["title"] == "hub report" and result["scripts"] == 1 and result["images"] == 0


@needs_chromium
def test_every_section_of_the_shop_report_renders(shop, tmp_path):
    out = shop.root / "report.html"
    assert shop.hub("report", "-o", str(out)).exit_code == 0
    page = out.read_text(encoding="utf-8")
    assert "<b " not in page and "<script" not in page
    result = render_in_browser(out, tmp_path)
    assert_charts_drawn(result)
    assert {chart["section"] for chart in result["wide"]} == set(result["sections"])
    assert {"funnel", "rfm", "temperature", "segments", "leads"} <= set(result["sections"])
    assert result["title"] == "hub report" and result["scripts"] == 1


@needs_chromium
def test_the_browser_check_fails_on_charts_that_are_not_drawn(synced, tmp_path):
    out = synced.root / "report.html"
    assert synced.hub("report", "-o", str(out)).exit_code == 0
    page = out.read_text(encoding="utf-8")
    hidden = tmp_path / "hidden.html"
    hidden.write_text(page.replace("</style>", "#overlap svg.chart{display:none}</style>"), encoding="utf-8")
    with pytest.raises(AssertionError, match="overlap"):
        assert_charts_drawn(render_in_browser(hidden, tmp_path))
    flat = tmp_path / "flat.html"
    flat.write_text(re.sub(r'(<rect class="mark"[^>]*?) height="14"', r'\1 height="0"', page, count=1),
                    encoding="utf-8")
    with pytest.raises(AssertionError, match="marks drawn"):
        assert_charts_drawn(render_in_browser(flat, tmp_path))
    wide = tmp_path / "wide.html"
    wide.write_text(page.replace("</style>", "section{min-width:700px}</style>"), encoding="utf-8")
    with pytest.raises(AssertionError, match="wider than a phone"):
        assert_charts_drawn(render_in_browser(wide, tmp_path))
