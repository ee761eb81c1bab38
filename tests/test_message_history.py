"""Message history in whole syncs: Brevo's e-mail activity and SMS.ru's delivery
statuses reach the client card once each, count in messages_30d, and carry no key."""

from __future__ import annotations

import json
from collections import Counter

from tests.conftest import Project
from tests.fakes.brevo import FakeBrevo
from tests.fakes.mailchimp import FakeMailchimp
from tests.test_messaging import BREVO_KEY, MAILCHIMP_KEY, configure, sync


def card(project: Project, who: str) -> dict:
    result = project.hub("show", who, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_brevo_e_mail_activity_reaches_the_client_card_once(project, monkeypatch):
    with FakeMailchimp(MAILCHIMP_KEY) as mailchimp, FakeBrevo(BREVO_KEY) as brevo:
        mailchimp.add("ivan@example.ru", FNAME="Иван", LNAME="Петров")
        mailchimp.add("olga@example.com", FNAME="Ольга", LNAME="Сидорова")
        configure(project, mailchimp, brevo, monkeypatch)
        sync(project)
        # transactional mail goes to anyone: list members and people hub knows from elsewhere
        sent = brevo.email_event("IVAN@example.ru", "requests", subject="Заказ 17")
        brevo.email_event("ivan@example.ru", "delivered", message_id=sent)
        brevo.email_event("ivan@example.ru", "opened", message_id=sent)
        brevo.email_event("olga@example.com", "requests", subject="Счёт")
        brevo.email_event("olga@example.com", "hardBounces", reason="550 no such user")
        brevo.email_event("stranger@example.net", "requests")  # no such person in hub
        brevo.fail("smtp.events", 429, retry_after="0")
        brevo.fail("smtp.events", 500)
        first = sync(project)
        assert first["status"] == "ok", first
        ivan = card(project, "ivan@example.ru")
        assert [(e["type"], e["source"]) for e in ivan["events"]] == [
            ("email_sent", "brevo"), ("email_delivered", "brevo"), ("email_open", "brevo")]
        assert ivan["events"][0]["payload"]["subject"] == "Заказ 17"
        assert ivan["messages_30d"] == 1
        olga = card(project, "olga@example.com")
        assert [e["type"] for e in olga["events"]] == ["email_sent", "email_bounce"]
        assert [(c["channel"], c["status"], c["source"]) for c in olga["consents"]] == [
            ("email", "bounced", "brevo")]
        log = json.loads(project.hub("log", "--field", "consent_email", "--json").stdout)
        assert ("subscribed", "bounced", "brevo") in [(e["old"], e["new"], e["connector"]) for e in log]
        assert project.hub("show", "stranger@example.net").exit_code != 0  # no contact made from history

        # read again (the cursor's day is read again): nothing stored twice
        brevo.email_event("ivan@example.ru", "clicks", message_id=sent, link="https://shop.example/o/17")
        sync(project)
        sync(project)
        ivan = card(project, "ivan@example.ru")
        assert Counter(e["type"] for e in ivan["events"]) == Counter(
            {"email_sent": 1, "email_delivered": 1, "email_open": 1, "email_click": 1})
        assert ivan["messages_30d"] == 1
        text = "\n".join(project.hub(*args).output for args in (("runs", "--json"), ("log", "--json"),
                                                                ("show", "ivan@example.ru", "--json")))
        assert BREVO_KEY not in text
        assert BREVO_KEY.encode() not in (project.root / "hub.db").read_bytes()
