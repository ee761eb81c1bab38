"""Email and SMS services in whole syncs: consent travels between them, faults do not
duplicate or lose contacts, and no key is ever printed or stored."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.fakes.brevo import FakeBrevo
from tests.fakes.mailchimp import FakeMailchimp, subscriber_hash
from tests.fakes.sendpulse import FakeSendPulse
from tests.fakes.unisender import FakeUnisender

MAILCHIMP_KEY = "b1946ac92492d2347c6235b4d2611184-us21"
BREVO_KEY = "xkeysib-4e1a7a0c9d2b3f5e6a7b8c9d-ZxCvBnMq"
SENDPULSE_SECRET = "c0ffee5ecret5endpu15e9876543210ab"
UNISENDER_KEY = "5d41402abc4b2a76b9719d911017c592deadbeef"
KEYS = (MAILCHIMP_KEY, BREVO_KEY, SENDPULSE_SECRET, UNISENDER_KEY)

PEOPLE = [("ivan@example.ru", "Иван", "Петров"), ("anna@example.com", "Анна", "Смирнова"),
          ("oleg@example.org", "Олег", "Иванов")]


@pytest.fixture
def services():
    with FakeMailchimp(MAILCHIMP_KEY) as mailchimp, FakeBrevo(BREVO_KEY) as brevo:
        yield mailchimp, brevo


@pytest.fixture
def more_services():
    with (FakeSendPulse(client_secret=SENDPULSE_SECRET, requests_per_second=None) as sendpulse,
          FakeUnisender(UNISENDER_KEY) as unisender):
        yield sendpulse, unisender


def configure(project: Project, mailchimp: FakeMailchimp, brevo: FakeBrevo, monkeypatch, extra: str = "",
              sendpulse: FakeSendPulse | None = None, unisender: FakeUnisender | None = None) -> None:
    monkeypatch.setenv("MAILCHIMP_KEY", MAILCHIMP_KEY)
    monkeypatch.setenv("BREVO_KEY", BREVO_KEY)
    monkeypatch.setenv("SENDPULSE_SECRET", SENDPULSE_SECRET)
    monkeypatch.setenv("UNISENDER_KEY", UNISENDER_KEY)
    if sendpulse is not None and unisender is not None:
        more = textwrap.dedent(f"""\
          sendpulse:
            plugin: sendpulse
            role: both
            client_id: {sendpulse.client_id}
            client_secret: $SENDPULSE_SECRET
            address_book_id: {sendpulse.book_id}
            endpoint: {sendpulse.url}
            backoff_seconds: 0
            max_backoff_seconds: 0
          unisender:
            plugin: unisender
            role: both
            api_key: $UNISENDER_KEY
            list_id: {unisender.list_id}
            fields: [Name, phone]
            endpoint: {unisender.url}
            backoff_seconds: 0
            max_backoff_seconds: 0
        """)
        extra = "".join(f"  {line}\n" for line in more.splitlines()) + extra
    root = Path(__file__).resolve().parent.parent
    for name in ("mailchimp", "brevo", "sendpulse", "unisender"):
        (project.root / "mappings").mkdir(exist_ok=True)
        shutil.copy(root / "mappings" / f"{name}.yaml", project.root / "mappings" / f"{name}.yaml")
    project.config(textwrap.dedent(f"""\
        connectors:
          mailchimp:
            plugin: mailchimp
            role: both
            api_key: $MAILCHIMP_KEY
            list_id: {mailchimp.list_id}
            endpoint: {mailchimp.url}/3.0
            backoff_seconds: 0
            max_backoff_seconds: 0
          brevo:
            plugin: brevo
            role: both
            api_key: $BREVO_KEY
            list_id: 2
            endpoint: {brevo.url}/v3
            backoff_seconds: 0
            max_backoff_seconds: 0
            import_poll_seconds: 0
        """) + extra)


def sync(project: Project) -> dict:
    result = project.hub("sync", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_unsubscribe_in_mailchimp_reaches_brevo_on_the_next_sync(project, services, monkeypatch):
    mailchimp, brevo = services
    for email, first, last in PEOPLE:
        mailchimp.add(email, FNAME=first, LNAME=last)
    brevo.add("ivan@example.ru", FIRSTNAME="Иван")
    configure(project, mailchimp, brevo, monkeypatch)
    sync(project)
    assert {c["email"] for c in brevo.contacts.values()} == {email for email, *_ in PEOPLE}
    assert not any(c["emailBlacklisted"] for c in brevo.contacts.values())

    mailchimp.person_unsubscribes("ivan@example.ru")
    report = sync(project)
    assert brevo.by_email("ivan@example.ru")["emailBlacklisted"] is True
    assert not brevo.by_email("anna@example.com")["emailBlacklisted"]
    assert report["counts"]["brevo"]["sent"] >= 1
    log = json.loads(project.hub("log", "--field", "consent_email", "--json").stdout)
    assert [(e["old"], e["new"], e["connector"]) for e in log if e["new"] == "unsubscribed"] == [
        ("subscribed", "unsubscribed", "mailchimp")]

    # Brevo's next read still says nothing new; Mailchimp's stale copy elsewhere cannot resubscribe
    sync(project)
    assert mailchimp.status_of("ivan@example.ru") == "unsubscribed"
    assert brevo.by_email("ivan@example.ru")["emailBlacklisted"] is True
    card = project.hub("show", "ivan@example.ru").output
    assert "Иван" in card


def test_an_unsubscribe_in_mailchimp_reaches_sendpulse_unisender_and_brevo(project, services, more_services,
                                                                          monkeypatch):
    mailchimp, brevo = services
    sendpulse, unisender = more_services
    for email, first, last in PEOPLE:
        mailchimp.add(email, FNAME=first, LNAME=last)
    sendpulse.add("anna@example.com", Name="Анна Смирнова")
    unisender.add("oleg@example.org", Name="Олег Иванов")
    configure(project, mailchimp, brevo, monkeypatch, sendpulse=sendpulse, unisender=unisender)
    sync(project)
    everyone = {email for email, *_ in PEOPLE}
    assert set(sendpulse.emails) == everyone and set(unisender.contacts) == everyone
    assert {c["email"] for c in brevo.contacts.values()} == everyone
    assert all(e["status"] == "active" for e in sendpulse.emails.values())

    mailchimp.person_unsubscribes("ivan@example.ru")
    sync(project)
    assert sendpulse.emails["ivan@example.ru"]["status"] == "unsubscribed"
    assert unisender.contacts["ivan@example.ru"]["email_status"] == "unsubscribed"
    assert brevo.by_email("ivan@example.ru")["emailBlacklisted"] is True
    assert sendpulse.emails["anna@example.com"]["status"] == "active"
    assert unisender.contacts["anna@example.com"]["email_status"] == "active"
    # a sync later, with every tool now saying the same, nothing is sent
    report = sync(project)
    assert all(counts.get("sent", 0) == 0 for counts in report["counts"].values())
    assert mailchimp.status_of("ivan@example.ru") == "unsubscribed"


def test_a_contact_without_consent_is_not_added_to_a_list(project, services, monkeypatch):
    mailchimp, brevo = services
    project.write("leads.csv", "id,email,first_name\n1,lead@example.com,Лида\n")
    configure(project, mailchimp, brevo, monkeypatch, extra="""\
  leads:
    plugin: csv
    path: leads.csv
    id_column: id
""")
    sync(project)
    assert mailchimp.status_of("lead@example.com") is None
    assert brevo.by_email("lead@example.com") is None


def test_require_consent_false_adds_contacts_without_a_known_status(project, services, monkeypatch):
    mailchimp, brevo = services
    project.write("leads.csv", "id,email,first_name\n1,lead@example.com,Лида\n")
    configure(project, mailchimp, brevo, monkeypatch, extra="""\
  leads:
    plugin: csv
    path: leads.csv
    id_column: id
""")
    text = (project.root / "hub.yaml").read_text().replace(
        "    endpoint: " + mailchimp.url, "    require_consent: false\n    endpoint: " + mailchimp.url)
    (project.root / "hub.yaml").write_text(text)
    sync(project)
    assert mailchimp.status_of("lead@example.com") == "subscribed"
    assert brevo.by_email("lead@example.com") is None


def test_faults_neither_duplicate_nor_lose_contacts(project, services, monkeypatch):
    mailchimp, brevo = services
    for i in range(60):
        mailchimp.add(f"person{i}@example.com", FNAME=f"Имя{i}")
    mailchimp.add("broken@invalid", FNAME="Сломанный")  # Brevo will not import it
    configure(project, mailchimp, brevo, monkeypatch)
    brevo.fail("import", 429, retry_after="0")
    brevo.fail("import", 500)  # refused before applying
    brevo.fail("import", 502, body="html", after_apply=True)  # applied, the answer lost
    brevo.fail("contacts.list", 503)
    brevo.fail("list.contacts", 500, body="drop")
    mailchimp.fail("members.list", 500, body="truncated")
    first = sync(project)
    applied = Counter(brevo.imported_rows)
    second = sync(project)
    emails = [c["email"] for c in brevo.contacts.values()]
    assert len(emails) == len(set(emails)) == 60  # each once; the invalid address rejected
    assert first["counts"]["brevo"]["rejected"] == 1
    assert first["counts"]["brevo"]["sent"] == 60
    # refused requests (429, 500 before applying) applied nothing; the import whose answer
    # was lost is the only one applied twice (an idempotent upsert); later syncs send nothing
    assert set(applied.values()) == {2} and len(applied) == 60
    assert second["counts"].get("brevo", {}).get("sent", 0) == 0
    assert Counter(brevo.imported_rows) == applied


def test_no_key_in_logs_errors_change_log_or_run_reports(project, services, more_services, monkeypatch):
    mailchimp, brevo = services
    sendpulse, unisender = more_services
    mailchimp.add("ivan@example.ru", FNAME="Иван")
    configure(project, mailchimp, brevo, monkeypatch, sendpulse=sendpulse, unisender=unisender)
    brevo.fail("import", 500, times=50)  # a failing run: errors are reported
    unisender.fail("importContacts", 500, times=50)
    sendpulse.expire_tokens()
    outputs = [project.hub("-v", "-v", "sync", "--json")]
    mailchimp.api_key = "ffffffffffffffffffffffffffffffff-us21"  # now the keys are refused
    unisender.api_key = "another-unisender-key"
    sendpulse.client_secret = "another-secret"
    sendpulse.expire_tokens()
    outputs.append(project.hub("-v", "-v", "sync"))
    outputs += [project.hub(*args) for args in (("runs", "--json"), ("log", "--json"), ("show", "1"),
                                                ("export", "links"), ("quarantine", "list"))]
    text = "\n".join(result.output for result in outputs)
    assert "API Key Invalid" in text and "HTTP 500" in text and "invalid api key" in text
    assert "Client authentication failed" in text
    store = (project.root / "hub.db").read_bytes()
    assert sendpulse.issued  # access tokens were fetched, and are secrets too
    for key in (*KEYS, *sendpulse.issued):
        assert key not in text
        assert key.encode() not in store
    assert subscriber_hash("ivan@example.ru")


def applied_emails(fake, endpoints: tuple[str, ...]) -> tuple[Counter, Counter]:
    """Addresses in requests whose effect took place: all of them, and those whose answer was lost."""
    every, lost = Counter(), Counter()
    for endpoint, request, answer_lost in fake.applied:
        if endpoint not in endpoints:
            continue
        if endpoint == "importContacts":
            form = request.form()
            columns = {v[0]: int(k[12:-1]) for k, v in form.items() if k.startswith("field_names[")}
            emails = [v[0] for k, v in form.items() if k.startswith("data[") and k.endswith(f"][{columns['email']}]")]
        else:
            body = request.json() or {}
            rows = body.get("members") or body.get("jsonBody") or body.get("emails") or [body]
            emails = [row if isinstance(row, str) else row.get("email_address") or row.get("email") for row in rows]
        emails = [e.lower() for e in emails if e]
        every.update(emails)
        if answer_lost:
            lost.update(emails)
    return every, lost


def test_under_faults_every_service_converges_and_nothing_accepted_is_sent_again(
        project, services, more_services, monkeypatch):
    mailchimp, brevo = services
    sendpulse, unisender = more_services
    people = [f"person{i}@example.com" for i in range(40)]
    for email in people:
        mailchimp.add(email, FNAME=email[:8])
    mailchimp.add("refused@example.net", FNAME="Отказ")
    configure(project, mailchimp, brevo, monkeypatch, sendpulse=sendpulse, unisender=unisender)
    text = (project.root / "hub.yaml").read_text().replace("    max_backoff_seconds: 0\n",
                                                          "    max_backoff_seconds: 0\n    timeout_seconds: 0.5\n")
    (project.root / "hub.yaml").write_text(text)
    for fake in (brevo, sendpulse, unisender):
        fake.refused.add("refused@example.net")  # a partial batch failure in each
    mailchimp.fail("members.list", 429, retry_after="0")
    mailchimp.fail("batch", 500)
    brevo.fail("import", 429, retry_after="0")
    brevo.fail("import", 502, body="html", after_apply=True)
    sendpulse.fail("emails.add", 429)
    sendpulse.fail("emails.add", delay=0.8)  # a timeout: applied, the answer too late
    sendpulse.fail("token", 500)
    unisender.fail("importContacts", 429)
    unisender.fail("importContacts", 500, after_apply=True)
    unisender.fail("exportContacts", 500, body="drop")
    first = sync(project)
    assert not first["errors"], first["errors"]
    for name in ("brevo", "sendpulse", "unisender"):
        assert first["counts"][name]["sent"] == 40 and first["counts"][name]["rejected"] == 1, name
    snapshot = {name: list(fake.applied) for name, fake in
                (("brevo", brevo), ("sendpulse", sendpulse), ("unisender", unisender), ("mailchimp", mailchimp))}
    second = sync(project)
    assert all(counts.get("sent", 0) == 0 for counts in second["counts"].values()), second["counts"]

    assert {c["email"] for c in brevo.contacts.values()} == set(people)
    assert set(sendpulse.emails) == set(people) and set(unisender.contacts) == set(people)
    for fake, endpoints in ((brevo, ("import",)), (sendpulse, ("emails.add",)),
                            (unisender, ("importContacts",)), (mailchimp, ("batch", "members.put"))):
        every, lost = applied_emails(fake, endpoints)
        for email in people:
            # applied once, and once more only where the answer to an idempotent upsert was lost
            assert every[email] == 1 + lost[email], (type(fake).__name__, email, every[email], lost[email])
    for name, fake in (("brevo", brevo), ("sendpulse", sendpulse), ("unisender", unisender)):
        writes = [entry for entry in fake.applied if entry[0] in ("import", "emails.add", "importContacts")]
        assert writes == [entry for entry in snapshot[name] if entry[0] in ("import", "emails.add",
                                                                             "importContacts")], name
    card = json.loads(project.hub("show", "refused@example.net", "--json").stdout)
    refused = {row["destination"]: row for row in card["destinations"]}
    for name in ("brevo", "sendpulse", "unisender"):  # the provider's reason, contact by contact
        assert refused[name]["status"] == "rejected" and refused[name]["error"], name
    assert "Invalid email" in refused["sendpulse"]["error"]
    assert "Invalid email address" in refused["unisender"]["error"]


def test_campaign_history_reaches_the_client_card(project, services, monkeypatch):
    mailchimp, brevo = services
    mailchimp.add("ivan@example.ru", FNAME="Иван")
    configure(project, mailchimp, brevo, monkeypatch)
    sync(project)
    campaign = mailchimp.send_campaign("Осенняя распродажа")
    mailchimp.activity(campaign, "ivan@example.ru", "open")
    report = sync(project)
    assert report["counts"]["mailchimp"]["created"] == 0
    card = json.loads(project.hub("show", "ivan@example.ru", "--json").stdout)
    assert [(e["type"], e["source"]) for e in card["events"]] == [("email_sent", "mailchimp"),
                                                                   ("email_open", "mailchimp")]
    assert card["messages_30d"] == 1
    sync(project)  # read again: stored once
    card = json.loads(project.hub("show", "ivan@example.ru", "--json").stdout)
    assert len(card["events"]) == 2


def test_a_complaint_written_as_an_unsubscribe_is_no_consent_mismatch(project, services, more_services,
                                                                       monkeypatch):
    """Mailchimp, SendPulse and Unisender take a complaint hub knows from elsewhere as an
    unsubscribe (they have no way to mark one): reading that back is no mismatch that
    ``hub reconcile --apply`` would try, and fail, to clear for ever."""
    mailchimp, brevo = services
    sendpulse, unisender = more_services
    for email, first, last in PEOPLE:
        mailchimp.add(email, FNAME=first, LNAME=last)
    configure(project, mailchimp, brevo, monkeypatch, sendpulse=sendpulse, unisender=unisender)
    sync(project)
    mailchimp.person_unsubscribes("ivan@example.ru", reason="Abuse: spam complaint")
    sync(project)
    sync(project)
    card = json.loads(project.hub("show", "ivan@example.ru", "--json").stdout)
    assert [(c["channel"], c["status"]) for c in card["consents"]] == [("email", "complained")]
    assert sendpulse.emails["ivan@example.ru"]["status"] == "unsubscribed"
    assert unisender.contacts["ivan@example.ru"]["email_status"] == "unsubscribed"
    for tool in ("sendpulse", "unisender"):
        report = json.loads(project.hub("reconcile", tool, "--json").stdout)
        assert report["consent_mismatches"] == [], (tool, report["consent_mismatches"])


def test_forget_deletes_every_address_the_person_has_in_each_tool(project, services, more_services, monkeypatch):
    mailchimp, brevo = services
    sendpulse, unisender = more_services
    mailchimp.add("ivan@example.ru", FNAME="Иван")
    mailchimp.add("anna@example.com", FNAME="Анна")
    configure(project, mailchimp, brevo, monkeypatch, sendpulse=sendpulse, unisender=unisender)
    config = project.root / "hub.yaml"  # the CRM first: its address is the one the tools get
    config.write_text(config.read_text().replace(
        "connectors:\n", "connectors:\n  crm: {plugin: csv, path: crm.csv, id_column: id}\n", 1))
    project.write("crm.csv", "id,email,first_name\n1,ivan@example.ru,Иван\n2,anna@example.com,Анна\n")
    sync(project)
    # Иван changes his address: each tool now holds both (the old one stays there)
    project.write("crm.csv", "id,email,first_name\n1,ivan.new@example.ru,Иван\n2,anna@example.com,Анна\n")
    sync(project)
    sync(project)
    assert mailchimp.status_of("ivan@example.ru") == mailchimp.status_of("ivan.new@example.ru") == "subscribed"
    assert brevo.by_email("ivan@example.ru") and brevo.by_email("ivan.new@example.ru")
    assert {"ivan@example.ru", "ivan.new@example.ru"} <= set(sendpulse.emails) & set(unisender.contacts)

    assert project.hub("forget", "--email", "ivan.new@example.ru").exit_code == 0
    report = sync(project)
    assert {name: report["counts"][name]["sent"] for name in ("mailchimp", "brevo", "sendpulse", "unisender")} == {
        "mailchimp": 1, "brevo": 1, "sendpulse": 1, "unisender": 1}
    for email in ("ivan@example.ru", "ivan.new@example.ru"):
        assert mailchimp.status_of(email) == "archived"
        assert brevo.by_email(email) is None
        assert email not in sendpulse.emails and email not in unisender.contacts
    assert mailchimp.status_of("anna@example.com") == "subscribed" and brevo.by_email("anna@example.com")
    report = sync(project)
    assert not any(counts["sent"] or counts["suppressed"] for counts in report["counts"].values())


def _opted_out(tool: str, fakes: dict, email: str) -> bool:
    if tool == "mailchimp":
        return fakes[tool].status_of(email) == "unsubscribed"
    if tool == "brevo":
        return fakes[tool].by_email(email)["emailBlacklisted"] is True
    if tool == "sendpulse":
        return fakes[tool].emails[email]["status"] == "unsubscribed"
    return fakes[tool].contacts[email]["email_status"] == "unsubscribed"


def _person_opts_out(tool: str, fakes: dict, email: str) -> None:
    if tool == "mailchimp-complaint":
        fakes["mailchimp"].person_unsubscribes(email, reason="abuse")
    elif tool == "mailchimp":
        fakes[tool].person_unsubscribes(email)
    elif tool == "brevo":
        fakes[tool].person_edits(email, blacklisted=True)
    else:
        fakes[tool].person_edits(email, status="unsubscribed")


def _opt_outs_sent(tool: str, fakes: dict) -> list[str]:
    """The addresses hub wrote as opted out to the tool since its counters were reset, in order."""
    fake = fakes[tool]
    if tool == "mailchimp":
        return [m["email_address"] for body in fake.bodies("batch") for m in body["members"]
                if m.get("status") == "unsubscribed"]
    if tool == "brevo":
        return [row["email"] for body in fake.bodies("import") if body["emailBlacklist"] for row in body["jsonBody"]]
    if tool == "sendpulse":
        return [email for body in fake.bodies("emails.unsubscribe") for email in body["emails"]]
    sent = []
    for name, request in fake.requests:
        if name == "importContacts":
            form = request.form()
            columns = [form[f"field_names[{i}]"][0] for i in range(len([k for k in form if k.startswith("field_n")]))]
            for r in range(len([k for k in form if k.startswith("data[") and k.endswith("[0]")])):
                row = dict(zip(columns, (form[f"data[{r}][{i}]"][0] for i in range(len(columns))), strict=True))
                if row.get("email_status") == "unsubscribed":
                    sent.append(row["email"])
    return sent


def _name_in(tool: str, fakes: dict, email: str) -> str:
    if tool == "mailchimp":
        return fakes[tool].members[subscriber_hash(email)]["merge_fields"].get("FNAME")
    if tool == "brevo":
        return fakes[tool].by_email(email)["attributes"].get("FIRSTNAME")
    if tool == "sendpulse":
        return fakes[tool].emails[email]["variables"].get("Name")
    return fakes[tool].contacts[email]["fields"].get("Name")


TOOLS = ("mailchimp", "brevo", "sendpulse", "unisender")


def _person_with_two_addresses(project, services, more_services, monkeypatch) -> dict:
    """Иван, subscribed, changed his address in the CRM: each tool holds both, subscribed."""
    mailchimp, brevo = services
    sendpulse, unisender = more_services
    fakes = {"mailchimp": mailchimp, "brevo": brevo, "sendpulse": sendpulse, "unisender": unisender}
    configure(project, mailchimp, brevo, monkeypatch, sendpulse=sendpulse, unisender=unisender,
              extra="  crm: {plugin: csv, path: crm.csv, id_column: id}\n")
    project.write("crm.csv", "id,email,first_name\n1,ivan@example.ru,Иван\n2,anna@example.com,Анна\n")
    mailchimp.add("ivan@example.ru", FNAME="Иван")  # consent: subscribed in Mailchimp
    mailchimp.add("anna@example.com", FNAME="Анна")
    sync(project)
    sync(project)
    # Иван changes his address: each tool now holds both (the old one stays there, subscribed)
    project.write("crm.csv", "id,email,first_name\n1,ivan.new@example.ru,Иван\n2,anna@example.com,Анна\n")
    sync(project)
    sync(project)
    for tool in TOOLS:
        for email in ("ivan@example.ru", "ivan.new@example.ru"):
            assert not _opted_out(tool, fakes, email), (tool, email)
    return fakes


@pytest.mark.parametrize("where", ["mailchimp", "mailchimp-complaint", "brevo", "sendpulse", "unisender"])
def test_an_opt_out_reaches_every_address_the_person_has_in_each_tool(project, services, more_services, monkeypatch,
                                                                      where):
    fakes = _person_with_two_addresses(project, services, more_services, monkeypatch)
    mailchimp, brevo = services
    tools = TOOLS
    # Иван opts out at his new address in one tool: every tool unsubscribes both addresses
    _person_opts_out(where, fakes, "ivan.new@example.ru")
    for fake in fakes.values():
        fake.reset_counters()
    sync(project)
    # each address once, the person's current one first; nobody else
    assert {tool: _opt_outs_sent(tool, fakes) for tool in tools} == {
        tool: ["ivan.new@example.ru", "ivan@example.ru"] for tool in tools}
    assert {(tool, email): _opted_out(tool, fakes, email) for tool in tools
            for email in ("ivan@example.ru", "ivan.new@example.ru", "anna@example.com")} == {
        (tool, email): email != "anna@example.com" for tool in tools
        for email in ("ivan@example.ru", "ivan.new@example.ru", "anna@example.com")}
    # the old record keeps its own address and values: not merged into the new one
    assert {tool: _name_in(tool, fakes, "ivan@example.ru") for tool in tools} == dict.fromkeys(tools, "Иван")
    # the old member gets its status alone: no merge fields, no tags
    assert [m for body in mailchimp.bodies("batch") for m in body["members"]][-1] == {
        "email_address": "ivan@example.ru", "status": "unsubscribed"}
    assert mailchimp.members[subscriber_hash("ivan@example.ru")]["email_address"] == "ivan@example.ru"
    assert brevo.by_email("ivan@example.ru")["email"] == "ivan@example.ru"
    for _ in range(2):  # the tools read back; nothing more is sent, nothing flips
        report = sync(project)
        assert not any(counts["sent"] or counts["rejected"] or counts["retry"]
                       for counts in report["counts"].values()), report["counts"]
    for tool in tools:
        assert _opted_out(tool, fakes, "ivan@example.ru") and _opted_out(tool, fakes, "ivan.new@example.ru"), tool
    card = json.loads(project.hub("show", "ivan.new@example.ru", "--json").stdout)
    assert card["fields"]["email"] == "ivan.new@example.ru", card["fields"]  # the old address did not take over
    for tool in tools:
        assert _opted_out(tool, fakes, "ivan@example.ru"), tool


@pytest.mark.parametrize("after_apply", [False, True], ids=["refused", "answer-lost"])
def test_an_opt_out_of_a_further_address_that_fails_is_sent_again_until_it_is_done(
        project, services, more_services, monkeypatch, after_apply):
    fakes = _person_with_two_addresses(project, services, more_services, monkeypatch)
    mailchimp, _brevo = services
    sendpulse, unisender = more_services
    mailchimp.person_unsubscribes("ivan.new@example.ru")
    # the main item goes through; the call for the old address fails every try of this run
    sendpulse.fail("emails.unsubscribe", 500, times=10, skip=1, after_apply=after_apply)
    unisender.fail("importContacts", 500, times=10, skip=1, after_apply=after_apply)
    report = sync(project)
    for tool in ("sendpulse", "unisender"):
        assert report["counts"][tool]["retry"] == 1 and report["counts"][tool]["sent"] == 0, report["counts"][tool]
        assert _opted_out(tool, fakes, "ivan.new@example.ru")
        assert _opted_out(tool, fakes, "ivan@example.ru") is after_apply, tool
    for fake in fakes.values():
        fake.faults.clear()
        fake.reset_counters()
    report = sync(project)
    for tool in ("sendpulse", "unisender"):
        assert report["counts"][tool]["sent"] == 1, report["counts"][tool]
        assert _opt_outs_sent(tool, fakes) == ["ivan.new@example.ru", "ivan@example.ru"], tool
    for tool in TOOLS:
        assert _opted_out(tool, fakes, "ivan@example.ru") and _opted_out(tool, fakes, "ivan.new@example.ru"), tool
    report = sync(project)
    assert not any(counts["sent"] or counts["retry"] for counts in report["counts"].values()), report["counts"]
