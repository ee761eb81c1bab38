"""Lead qualification of site forms and ``hub leads``.

The rules one by one and together, their config errors, then real posts to a running
``hub serve`` read by the sync: target and non-target submissions become contacts with
``x_lead_status`` and a ``form`` event carrying the verdict; spam stays in the inbox,
is listed by ``hub leads`` and removed by ``hub leads clean`` as an audited run.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, update

from hub.leads import LeadRules, is_disposable
from hub.segments.config import duration_text, parse_duration
from hub.store.schema import audit, contacts, events, inbox, runs, source_records

TOKEN = "leads-form-token-4c1d"


def rules(**data: object) -> LeadRules:
    return LeadRules.model_validate(data)


# ------------------------------------------------------------------------ each rule


def test_no_rule_matches_gives_the_default() -> None:
    form = {"Name": "Анна", "Phone": "+7 916 123-45-67", "Email": "anna@example.ru", "Message": "Перезвоните"}
    assert rules().qualify(form).status == "target"
    assert rules().qualify(form).reasons == ()
    assert rules(default="non-target").qualify(form).status == "non-target"


def test_honeypot() -> None:
    checked = rules(honeypot=["website"])
    assert checked.qualify({"Name": "Анна", "website": ""}).status == "target"
    verdict = checked.qualify({"Name": "Bot", "WebSite": "http://x.example"})
    assert verdict.status == "spam"
    assert verdict.reasons == ("honeypot field 'website' filled in",)


def test_disposable_email_domains() -> None:
    assert is_disposable("mailinator.com") and is_disposable("mx.Mailinator.com")
    assert not is_disposable("gmail.com") and not is_disposable("mail.ru") and not is_disposable("yandex.ru")
    verdict = rules().qualify({"Email": "bot@mailinator.com"})
    assert (verdict.status, verdict.reasons) == ("spam", ("disposable e-mail domain mailinator.com",))
    assert rules().qualify({"email": "ivan@gmail.com"}).status == "target"
    own = rules(disposable_domains=["@Throwaway.example."], disposable_email="non-target")
    assert own.qualify({"E-mail": "x@throwaway.example"}).status == "non-target"
    assert rules(disposable_email="off").qualify({"Email": "bot@mailinator.com"}).status == "target"
    assert rules(email_fields=["contact"]).qualify({"Contact": "bot@yopmail.com"}).status == "spam"


def test_invalid_phone_uses_the_phone_normalization() -> None:
    checked = rules()
    assert checked.qualify({"Phone": "8 (916) 123-45-67"}).status == "target"
    assert checked.qualify({"Phone": ""}).status == "target"  # missing is not invalid
    verdict = checked.qualify({"Phone": "12345"})
    assert (verdict.status, verdict.reasons) == ("non-target", ("invalid phone in 'phone'",))
    assert rules(invalid_phone="spam").qualify({"tel": "abc"}).status == "spam"
    assert rules(invalid_phone="off").qualify({"Phone": "12345"}).status == "target"
    # a number without a country code is read in the region given
    assert rules(phone_region="US").qualify({"Phone": "(415) 555-2671"}).status == "target"


def test_link_stuffed_messages() -> None:
    checked = rules(max_links=2)
    assert checked.qualify({"Message": "see https://a.example and www.b.example"}).status == "target"
    verdict = checked.qualify({"Message": "http://a.example http://b.example [url=http://c.example]c[/url]"})
    assert verdict.status == "spam" and verdict.reasons[0].startswith("4 links in the text (at most 2)")
    # where the form was sent from is not the sender's text
    assert checked.qualify({"page": "https://site.example/a", "referer": "https://ya.ru/", "utm_source": "x",
                            "Message": "http://one.example"}).status == "target"
    assert rules(max_links=None).qualify({"Message": "http://a http://b http://c http://d"}).status == "target"
    assert rules(max_links=0, links_status="non-target").qualify({"Name": "www.x.example"}).status == "non-target"


def test_burst_counts_are_given_to_the_rule() -> None:
    checked = rules(burst={"max": 3, "window": "10m"})
    assert checked.qualify({"Name": "a"}, recent_from_ip=3).status == "target"
    verdict = checked.qualify({"Name": "a"}, recent_from_ip=4)
    assert (verdict.status, verdict.reasons) == ("spam", ("4 submissions from one IP within 10m (at most 3)",))
    assert rules().qualify({"Name": "a"}, recent_from_ip=100).status == "target"  # no burst rule


def test_field_conditions() -> None:
    form = {"Name": "Олег", "formname": "Вакансия", "Budget": "до 10 000", "City": " Москва ", "Comment": "CASINO bonus"}
    cases = [
        ({"field": "FormName", "equals": "вакансия", "status": "non-target"}, "non-target", "FormName equals вакансия"),
        ({"field": "budget", "contains": "10 000", "status": "non-target"}, "non-target", "budget contains 10 000"),
        ({"field": "comment", "regex": "(?i)casino|viagra", "status": "spam"}, "spam", "comment regex (?i)casino|viagra"),
        ({"field": "city", "in": ["москва", "Санкт-Петербург"], "status": "target"}, "target", "city in москва, Санкт-Петербург"),
        ({"field": "Email", "empty": True, "status": "non-target", "name": "no e-mail"}, "non-target", "no e-mail"),
        ({"field": "City", "in": ["Казань"], "negate": True, "status": "non-target"}, "non-target", "City not in Казань"),
    ]
    for rule, status, reason in cases:
        verdict = rules(default="non-target" if status == "target" else "target", rules=[rule]).qualify(form)
        assert (verdict.status, verdict.reasons) == (status, (reason,)), rule
    misses = [
        {"field": "formname", "equals": "Заявка", "status": "spam"},
        {"field": "budget", "contains": "миллион", "status": "spam"},
        {"field": "comment", "regex": "^bonus", "status": "spam"},
        {"field": "city", "in": ["Казань"], "status": "spam"},
        {"field": "Name", "empty": True, "status": "spam"},
        {"field": "absent", "equals": "x", "status": "spam"},
    ]
    for rule in misses:
        assert rules(rules=[rule]).qualify(form).status == "target", rule


def test_several_rules_the_worst_status_wins_and_every_reason_is_kept() -> None:
    checked = rules(
        honeypot=["company_fax"],
        rules=[{"field": "formname", "equals": "Вакансия", "status": "non-target"},
               {"field": "utm_source", "in": ["yandex", "google"], "status": "target"}],
    )
    both = checked.qualify({"formname": "Вакансия", "utm_source": "yandex", "Phone": "1"})
    assert both.status == "non-target"
    assert both.reasons == ("invalid phone in 'phone'", "formname equals Вакансия", "utm_source in yandex, google")
    spam = checked.qualify({"formname": "Вакансия", "company_fax": "1", "Email": "a@yopmail.com"})
    assert spam.status == "spam"
    assert spam.reasons[:2] == ("honeypot field 'company_fax' filled in", "disposable e-mail domain yopmail.com")
    target = rules(default="non-target", rules=[{"field": "utm_source", "in": ["yandex"], "status": "target"}])
    assert target.qualify({"utm_source": "Yandex"}).status == "target"
    assert target.qualify({"utm_source": "vk"}).status == "non-target"


def test_durations() -> None:
    """One parser for every duration: a burst window says m for minutes, as it always did."""
    assert parse_duration("30d") == dt.timedelta(days=30)
    assert parse_duration("2w") == dt.timedelta(days=14)
    assert parse_duration("6m") == dt.timedelta(days=180) == parse_duration("6M")
    assert parse_duration("30min") == parse_duration("30m", m="minutes") == dt.timedelta(minutes=30)
    assert parse_duration("45s") == dt.timedelta(seconds=45)
    assert rules(burst={"max": 3, "window": "10m"}).burst.window == dt.timedelta(minutes=10)
    assert rules(burst={"max": 3, "window": 600}).burst.window == dt.timedelta(minutes=10)
    for bad in ("0", "ten minutes", "-3d", True, 600, "99999999999d", "1001y"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    for window in (0, "0s", "99999999999d"):
        with pytest.raises(ValueError):
            rules(burst={"max": 3, "window": window})
    # written back as the parser reads it
    for text in ("30d", "12h", "90min", "45s"):
        assert duration_text(parse_duration(text)) == text
    assert duration_text(parse_duration("10m", m="minutes"), m="minutes") == "10m"
    assert duration_text(dt.timedelta(days=1, hours=12)) == "36h"


def test_hub_leads_reads_durations_with_the_one_parser(project) -> None:  # type: ignore[no-untyped-def]
    """`hub leads` had a parser of its own: --older-than 99999999999d overflowed (an
    unexpected error, exit 1), 5000y was no duration at all, and 6m was six minutes where
    `clean.spam_after: 6m`, the same clean-up run by `hub clean`, is six months."""
    project.config(f"connectors:\n  forms: {{plugin: webhook, format: form, token: {TOKEN}, leads: {{}}}}\n")
    for args in (("leads", "--since", "99999999999d"), ("leads", "clean", "--older-than", "99999999999d"),
                 ("leads", "clean", "--older-than", "5000y", "--dry-run")):
        result = project.hub(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "is too long; a duration is at most 1000y" in result.stderr and "Traceback" not in result.output
    zero = project.hub("leads", "clean", "--older-than", "0d")
    assert zero.exit_code == 2 and "--older-than: '0d': a duration must be more than zero" in zero.stderr
    bad = project.hub("leads", "--since", "soon")
    assert bad.exit_code == 2 and "--since: 'soon' is not a duration" in bad.stderr
    for age, shown in (("6m", "180d"), ("1y", "365d"), ("30min", "30min"), ("12h", "12h")):
        dry = project.hub("leads", "clean", "--older-than", age, "--dry-run", "--json")
        assert dry.exit_code == 0, dry.output
        assert json.loads(dry.stdout)["older_than"] == shown


# ------------------------------------------------------------------------ config errors


def _check(project, leads: str) -> str:  # type: ignore[no-untyped-def]
    project.config("connectors:\n  forms:\n    plugin: webhook\n    token: t0k3n\n    leads:\n"
                   + textwrap.indent(textwrap.dedent(leads), "      "))
    result = project.hub("check")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.stderr


@pytest.mark.parametrize(("leads", "where", "says"), [
    ("rules:\n  - {field: city, equals: a, regex: b, status: spam}\n", "connectors.forms.leads.rules[0]",
     "set exactly one of equals, contains, regex, in, empty (found: equals, regex)"),
    ("rules:\n  - {field: city, status: spam}\n", "connectors.forms.leads.rules[0]", "set exactly one of"),
    ("rules:\n  - {field: msg, regex: 'casino(', status: spam}\n", "connectors.forms.leads.rules[0].regex",
     "regex 'casino(' does not compile: missing ), unterminated subpattern at position 6; fix the pattern"),
    ("rules:\n  - {field: city, in: [], status: spam}\n", "connectors.forms.leads.rules[0].in",
     "'in' needs at least one"),
    ("rules:\n  - {field: city, equals: a, status: junk}\n", "connectors.forms.leads.rules[0].status",
     "'target', 'non-target' or 'spam'"),
    ("rules:\n  - {field: city, equals: a}\n", "connectors.forms.leads.rules[0].status", "required key is missing"),
    ("rules:\n  - {field: city, equal: a, status: spam}\n", "connectors.forms.leads.rules[0].equal",
     "did you mean 'equals'"),
    ("burst: {max: 5, window: soon}\n", "connectors.forms.leads.burst.window", "'soon' is not a duration"),
    ("burst: {window: 10m}\n", "connectors.forms.leads.burst.max", "required key is missing"),
    ("disposable_domains: [not a domain]\n", "connectors.forms.leads.disposable_domains",
     "'not a domain' is not a domain"),
    ("phone_region: XX\n", "connectors.forms.leads.phone_region", "unknown phone region 'XX'"),
    ("honeypots: [website]\n", "connectors.forms.leads.honeypots", "did you mean 'honeypot'"),
])
def test_config_errors_name_the_file_the_key_and_the_fix(project, leads: str, where: str, says: str) -> None:  # type: ignore[no-untyped-def]
    message = _check(project, leads)
    assert "hub.yaml" in message
    assert where in message
    assert says in message


def test_an_unknown_rule_key_lists_the_keys_as_written(project) -> None:  # type: ignore[no-untyped-def]
    message = _check(project, "rules:\n  - {field: city, is: a, status: spam}\n")
    assert "allowed keys here:" in message and " in," in message and "negate" in message and "in_" not in message


# ------------------------------------------------------------------------ through hub serve


CONFIG = f"""\
connectors:
  forms:
    plugin: webhook
    format: form
    token: {TOKEN}
    leads:
      honeypot: [website]
      burst: {{max: 3, window: 1h}}
      rules:
        - {{field: formname, equals: Вакансия, status: non-target, name: a job application}}
"""

MAPPING = """\
fields:
  full_name: {from: Name, transforms: [split_name]}
  phone: {from: Phone, transforms: [phone]}
  email: {from: Email, transforms: [email]}
"""


class Site:
    """A running hub serve (the sync left to ``sync()``) and the hub command on its config."""

    def __init__(self, root: Path, store_url: str, config: str = CONFIG, trusted_proxy: str | None = None):
        from hub.config import load_config
        from hub.plugins import connector_classes
        from hub.serve import Server
        from hub.store import open_store

        self.root = root
        (root / "mappings").mkdir(exist_ok=True)
        (root / "mappings" / "forms.yaml").write_text(MAPPING, encoding="utf-8")
        (root / "hub.yaml").write_text(f"store: {store_url}\n{config}", encoding="utf-8")
        self.config = load_config(root / "hub.yaml", connector_classes())
        self.store = open_store(self.config.store_url)
        self.server = Server(self.config, self.store, "127.0.0.1", 0, threads=4, sync=False,
                             trusted_proxy=trusted_proxy).start()
        self.url = f"http://127.0.0.1:{self.server.port}/hooks/forms?token={TOKEN}"

    def post(self, headers: dict[str, str] | None = None, **fields: str) -> None:
        answer = requests.post(self.url, data=fields, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text

    def sync(self) -> dict:
        result = self.hub("sync", "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def hub(self, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        from click.testing import CliRunner

        from hub.cli import main

        return CliRunner().invoke(main, ["-c", str(self.root / "hub.yaml"), *args], env=env, catch_exceptions=False)

    def leads(self, *args: str) -> list[dict]:
        result = self.hub("leads", "--json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def close(self) -> None:
        self.server.stop()
        self.store.dispose()


@pytest.fixture
def site(tmp_path: Path, store_url: str) -> Iterator[Site]:
    running = Site(tmp_path, store_url)
    yield running
    running.close()


def test_verdicts_reach_the_event_the_contact_and_hub_leads(site: Site) -> None:
    site.post(Name="Анна Смирнова", Phone="+7 916 111-22-33", Email="anna@example.ru", formname="Заявка")
    site.post(Name="Олег Петров", Phone="+7 916 222-33-44", Email="oleg@example.ru", formname="Вакансия")
    site.post(Name="Bot", Email="bot@example.org", website="http://spam.example")
    report = site.sync()
    assert report["counts"]["forms"]["read"] == 3 and report["counts"]["forms"]["created"] == 2
    with site.store.connect() as c:
        people = {row.email: json.loads(row.attributes or "{}") for row in c.execute(select(contacts))}
        payloads = [json.loads(row.payload) for row in c.execute(select(events).order_by(events.c.id))]
    assert set(people) == {"anna@example.ru", "oleg@example.ru"}  # the spam made no contact
    assert people["anna@example.ru"]["x_lead_status"] == "target"
    assert people["oleg@example.ru"]["x_lead_status"] == "non-target"
    assert [p["lead_status"] for p in payloads] == ["target", "non-target"]
    assert payloads[1]["lead_reasons"] == "a job application"

    listed = site.leads()
    assert [(r["status"], r["email"]) for r in listed] == [
        ("spam", "b***@example.org"), ("non-target", "o***@example.ru"), ("target", "a***@example.ru")]
    assert listed[0]["reasons"] == ["honeypot field 'website' filled in"] and listed[0]["contact_id"] is None
    assert listed[2]["contact_id"] is not None and listed[2]["form"] == "Заявка"
    assert [r["email"] for r in site.leads("--status", "spam", "--unmask")] == ["bot@example.org"]
    assert len(site.leads("--status", "target", "--status", "non-target")) == 2
    assert site.leads("--since", "2099-01-01") == []
    assert len(site.leads("--since", "1d")) == 3
    moscow = dt.timezone(dt.timedelta(hours=3))
    a_minute_ago = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)).astimezone(moscow)
    assert len(site.leads("--since", a_minute_ago.isoformat())) == 3  # a time with its offset is that time
    with site.store.connect() as c:
        read = c.execute(select(audit).where(audit.c.action == "leads")).all()
    assert len(read) == 6 and read[1].unmasked == 1 and read[0].unmasked == 0

    wide = {"COLUMNS": "250"}  # table cells on one line each
    card = site.hub("show", "anna@example.ru", env=wide)
    assert card.exit_code == 0 and "x_lead_status: target" in card.stdout
    assert "lead_status: target; form: Заявка" in card.stdout  # the form event's details
    other = site.hub("show", "oleg@example.ru", env=wide)
    assert "lead_status: non-target; lead_reasons: a job application" in other.stdout


def test_a_sender_cannot_set_its_own_status(site: Site) -> None:
    site.post(Name="Bot", Email="bot@example.org", website="x", hub_lead_status="target")
    site.sync()
    with site.store.connect() as c:
        assert c.execute(select(func.count()).select_from(contacts)).scalar() == 0


def test_a_burst_from_one_ip_is_spam_and_stays_spam_after_a_restart(tmp_path: Path, store_url: str) -> None:
    site = Site(tmp_path, store_url)
    try:
        for i in range(5):
            site.post(Name=f"Client {i}", Email=f"client{i}@example.ru")
    finally:
        site.close()
    again = Site(tmp_path, store_url)  # a restart: the count comes from the inbox
    try:
        again.post(Name="Client 5", Email="client5@example.ru")
        again.sync()
        listed = again.leads()
        assert [r["status"] for r in reversed(listed)] == ["target"] * 3 + ["spam"] * 3
        assert listed[0]["reasons"] == ["6 submissions from one IP within 1h (at most 3)"]
        with again.store.connect() as c:
            assert c.execute(select(func.count()).select_from(contacts)).scalar() == 3
    finally:
        again.close()


@pytest.mark.parametrize("trusted", [True, False])
def test_behind_a_trusted_proxy_the_burst_counts_the_forwarded_address(tmp_path: Path, trusted: bool) -> None:
    config = CONFIG.replace("max: 3, window: 1h", "max: 1, window: 1h")
    site = Site(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}", config, trusted_proxy="127.0.0.1" if trusted else None)
    try:
        for i, address in enumerate(("203.0.113.7", "203.0.113.7", "198.51.100.2")):
            site.post(headers={"X-Forwarded-For": address}, Name=f"Client {i}", Email=f"c{i}@example.ru")
        listed = list(reversed(site.leads()))
        if trusted:
            assert [r["ip"] for r in listed] == ["203.0.113.7", "203.0.113.7", "198.51.100.2"]
            assert [r["status"] for r in listed] == ["target", "spam", "target"]
        else:  # a header anyone can send is not believed
            assert [r["ip"] for r in listed] == ["127.0.0.1"] * 3
            assert [r["status"] for r in listed] == ["target", "spam", "spam"]
    finally:
        site.close()


def test_best_status_wins_when_submissions_merge_in_either_order(tmp_path: Path) -> None:
    for order in (("Вакансия", "Заявка"), ("Заявка", "Вакансия")):
        root = tmp_path / "-".join(order)
        root.mkdir()
        site = Site(root, f"sqlite:///{root / 'hub.db'}")
        try:
            for form in order:
                site.post(Name="Ирина Волкова", Email="irina@example.ru", formname=form)
                site.sync()  # one run each: the second submission merges into the contact
            with site.store.connect() as c:
                rows = c.execute(select(contacts.c.attributes).where(contacts.c.deleted_at.is_(None))).all()
                statuses = [p["lead_status"] for (p,) in
                            ((json.loads(r.payload),) for r in c.execute(select(events).order_by(events.c.id)))]
            assert len(rows) == 1
            assert json.loads(rows[0].attributes)["x_lead_status"] == "target", order
            assert statuses == ["non-target" if f == "Вакансия" else "target" for f in order]
        finally:
            site.close()


def test_stricter_rules_take_back_a_contact_the_spam_had_made(tmp_path: Path) -> None:
    site = Site(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        site.post(Name="Казино Вулкан", Email="win@casino.example", Message="Бонус")
        site.post(Name="Мария", Email="maria@example.ru", Message="Хочу на курс")
        site.sync()
        stricter = CONFIG + "        - {field: Message, regex: '(?i)бонус', status: spam}\n"
        (tmp_path / "hub.yaml").write_text(f"store: sqlite:///{tmp_path / 'hub.db'}\n{stricter}", encoding="utf-8")
        report = site.sync()  # new rules: the inbox is read again
        assert report["counts"]["forms"]["removed"] == 1
        with site.store.connect() as c:
            live = c.execute(select(contacts.c.email).where(contacts.c.deleted_at.is_(None))).scalars().all()
        assert live == ["maria@example.ru"]
        log = site.hub("log", "--json", "--connector", "forms")
        assert [(r["run_id"], r["field"], r["new"]) for r in json.loads(log.stdout) if r["field"] == "deleted"] == [
            (2, "deleted", "true")]  # the contact only the spam held is deleted, in the change log
        (tmp_path / "hub.yaml").write_text(f"store: sqlite:///{tmp_path / 'hub.db'}\n{CONFIG}", encoding="utf-8")
        site.sync()  # the laxer rules again: the submission is a lead once more
        with site.store.connect() as c:
            live = c.execute(select(contacts.c.email).where(contacts.c.deleted_at.is_(None))).scalars().all()
        assert sorted(live) == ["maria@example.ru", "win@casino.example"]
    finally:
        site.close()


def test_clean_removes_old_spam_only_as_an_audited_run(site: Site) -> None:
    site.post(Name="Old bot", Email="a@example.org", website="x")
    site.post(Name="Old client", Email="client@example.ru")
    site.post(Name="New bot", Email="b@example.org", website="y")
    site.sync()
    with site.store.begin() as c:  # the first two arrived 40 days ago
        first_two = c.execute(select(inbox.c.id).order_by(inbox.c.id).limit(2)).scalars().all()
        c.execute(update(inbox).where(inbox.c.id.in_(first_two)).values(
            received_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)))

    dry = site.hub("leads", "clean", "--older-than", "30d", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["removed"] == 1
    with site.store.connect() as c:
        assert c.execute(select(func.count()).select_from(inbox)).scalar() == 3
        assert c.execute(select(func.count()).select_from(runs).where(runs.c.kind == "leads-clean")).scalar() == 0

    done = site.hub("leads", "clean", "--older-than", "30d", "--actor", "ops")
    assert done.exit_code == 0, done.output
    assert "removed 1 spam submissions" in done.stdout
    with site.store.connect() as c:
        left = c.execute(select(inbox.c.fields).order_by(inbox.c.id)).scalars().all()
        run = c.execute(select(runs).where(runs.c.kind == "leads-clean")).one()
        audited = c.execute(select(audit).where(audit.c.action == "leads-clean")).one()
    assert [json.loads(f)["Name"] for f in left] == ["Old client", "New bot"]
    assert run.status == "ok" and json.loads(run.counts)["removed"] == 1 and json.loads(run.counts)["actor"] == "ops"
    assert audited.actor == "ops" and audited.rows == 1
    again = site.hub("leads", "clean", "--older-than", "30d", "--json")
    assert json.loads(again.stdout)["removed"] == 0
    assert site.hub("leads", "clean", "--older-than", "soon").exit_code == 2


def test_a_dry_run_of_the_clean_up_holds_no_lock_while_it_scans(site: Site) -> None:
    """`hub leads clean --dry-run` (and `hub clean --dry-run`) scanned the inbox in a write
    transaction under the store lock: until the scan ended, a sync could not start (exit 3)
    and hub serve could not store a form (SQLite: it waited, then failed). Both go on now."""
    from sqlalchemy import event

    from hub.leads import clean_spam
    from hub.store import open_store

    site.post(Name="Bot", Email="bot@example.org", website="filled")  # spam
    scanner = open_store(site.config.store_url)
    meanwhile: list[str] = []

    def write_meanwhile(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if meanwhile or "FROM source_records" not in statement:
            return  # the inbox page is read: its transaction is open
        meanwhile.append("scanning")
        with site.store.lock("sync"):  # what a sync takes first
            site.post(Name="Анна", Email="anna@example.ru")  # hub serve stores a form
        meanwhile.append("stored")

    event.listen(scanner.engine, "before_cursor_execute", write_meanwhile)
    try:
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
        result = clean_spam(site.config, scanner, dt.timedelta(days=1), dry_run=True, now=later)
    finally:
        scanner.dispose()
    assert meanwhile == ["scanning", "stored"]
    assert (result["removed"], result["run_id"]) == (1, None)
    with site.store.connect() as c:
        assert c.execute(select(func.count()).select_from(inbox)).scalar() == 2
        assert c.execute(select(func.count()).select_from(runs)).scalar() == 0


def test_clean_keeps_spam_that_became_a_contact_under_earlier_rules(tmp_path: Path) -> None:
    from hub.leads import clean_spam

    site = Site(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        site.post(Name="Пётр", Email="petr@example.ru", Message="x")
        site.sync()
        stricter = CONFIG + "        - {field: Message, equals: x, status: spam}\n"
        (tmp_path / "hub.yaml").write_text(f"store: sqlite:///{tmp_path / 'hub.db'}\n{stricter}", encoding="utf-8")
        from hub.config import load_config
        from hub.plugins import connector_classes

        config = load_config(tmp_path / "hub.yaml", connector_classes())
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=60)
        result = clean_spam(config, site.store, parse_duration("30d"), now=later)
        assert (result["removed"], result["kept_imported"]) == (0, 1)
        with site.store.connect() as c:
            assert c.execute(select(func.count()).select_from(inbox)).scalar() == 1
            assert c.execute(select(func.count()).select_from(source_records)).scalar() == 1
    finally:
        site.close()


def test_connectors_without_rules_are_unqualified(tmp_path: Path) -> None:
    plain = f"connectors:\n  forms:\n    plugin: webhook\n    format: form\n    token: {TOKEN}\n"
    site = Site(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}", config=plain)
    try:
        site.post(Name="Ян", Email="yan@example.ru", website="filled")
        site.sync()
        listed = site.leads()
        assert [(r["status"], r["reasons"]) for r in listed] == [(None, [])]
        assert len(site.leads("--status", "unqualified")) == 1 and site.leads("--status", "spam") == []
        with site.store.connect() as c:
            attributes = c.execute(select(contacts.c.attributes)).scalar()
        assert "x_lead_status" not in (attributes or "")
        unknown = site.hub("leads", "--connector", "nope")
        assert unknown.exit_code == 2 and "no webhook connector named 'nope'" in unknown.stderr
        bad = site.hub("leads", "--since", "last week")
        assert bad.exit_code == 2 and "expected an age such as 7d" in bad.stderr
    finally:
        site.close()


def test_the_lead_status_is_no_identity_evidence() -> None:
    from hub.identity import profile

    values = {"full_name": "Иван Петров", "first_name": "Иван", "last_name": "Петров", "x_lead_status": "non-target",
              "x_manager": "Смирнова"}
    attributes = dict(profile(values).attributes)
    assert "x_lead_status" not in attributes and "x_manager" in attributes


def test_forget_erases_the_persons_submissions_from_the_inbox(tmp_path: Path) -> None:
    site = Site(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        site.post(Name="Анна", Email="anna@example.ru", formname="Заявка")
        site.post(Name="Анна С.", Email="anna@example.ru", Phone="+7 916 111-22-33")
        site.post(Name="Борис", Email="boris@example.ru")
        site.sync()
        result = site.hub("forget", "--email", "anna@example.ru")
        assert result.exit_code == 0, result.output
        listed = site.leads("--unmask")
        assert [r["email"] for r in listed] == ["boris@example.ru"]
        with site.store.connect() as c:
            stored = " ".join(c.execute(select(inbox.c.fields)).scalars())
        assert "anna" not in stored.lower() and "boris@example.ru" in stored
    finally:
        site.close()
