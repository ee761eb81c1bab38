"""Message history in whole syncs: Brevo's e-mail activity and SMS.ru's delivery
statuses reach the client card once each, count in messages_30d, and carry no key."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import textwrap
from collections import Counter
from collections.abc import Iterator
from typing import Any

import requests

from tests.conftest import Project
from tests.fakes.brevo import FakeBrevo
from tests.fakes.mailchimp import FakeMailchimp
from tests.fakes.smsru import FakeSmsRu, callback_body
from tests.test_messaging import BREVO_KEY, MAILCHIMP_KEY, configure, sync


@contextlib.contextmanager
def serving(project: Project, **options: Any) -> Iterator[Any]:
    """``hub serve`` of the project's config on a free port, stopped after."""
    from hub.config import load_config
    from hub.plugins import connector_classes
    from hub.serve import Server
    from hub.store import open_store

    config = load_config(project.root / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    server = Server(config, store, "127.0.0.1", 0, **options).start()
    try:
        yield server
    finally:
        server.stop()
        store.dispose()


def card(project: Project, who: str) -> dict:
    result = project.hub("show", who, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def stored(project: Project) -> str:
    """Every row of every table of the project's store, as text."""
    from sqlalchemy import select

    from hub.config import load_config
    from hub.plugins import connector_classes
    from hub.store import open_store
    from hub.store.schema import metadata

    store = open_store(load_config(project.root / "hub.yaml", connector_classes()).store_url)
    with store.connect() as c:
        return "\n".join(repr(row) for table in metadata.sorted_tables for row in c.execute(select(table)))


def test_brevo_e_mail_activity_reaches_the_client_card_once(store_project, monkeypatch):
    project = store_project
    with FakeMailchimp(MAILCHIMP_KEY) as mailchimp, FakeBrevo(BREVO_KEY) as brevo:
        mailchimp.add("ivan@example.ru", FNAME="Иван", LNAME="Петров")
        mailchimp.add("olga@example.com", FNAME="Ольга", LNAME="Сидорова")
        configure(project, mailchimp, brevo, monkeypatch)
        sync(project)
        # transactional mail goes to anyone: list members and people hub knows from elsewhere
        now = dt.datetime.now(dt.timezone.utc)
        sent = brevo.email_event("IVAN@example.ru", "requests", subject="Заказ 17", at=now - dt.timedelta(minutes=3))
        brevo.email_event("ivan@example.ru", "delivered", message_id=sent, at=now - dt.timedelta(minutes=2))
        brevo.email_event("ivan@example.ru", "opened", message_id=sent, at=now - dt.timedelta(minutes=1))
        brevo.email_event("olga@example.com", "requests", subject="Счёт", at=now - dt.timedelta(minutes=2))
        brevo.email_event("olga@example.com", "hardBounces", reason="550 no such user", at=now)
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
        assert "ivan@example.ru" in stored(project) and BREVO_KEY not in stored(project)


def test_brevo_campaign_activity_reaches_the_contact_of_the_list(store_project, monkeypatch):
    project = store_project
    with FakeMailchimp(MAILCHIMP_KEY) as mailchimp, FakeBrevo(BREVO_KEY) as brevo:
        brevo.add("anna@example.com", FIRSTNAME="Анна", LASTNAME="Белова")
        configure(project, mailchimp, brevo, monkeypatch, extra="    campaign_stats: true\n")
        sync(project)
        now = dt.datetime.now(dt.timezone.utc)
        brevo.campaign_event("anna@example.com", "messagesSent", 12, at=now - dt.timedelta(minutes=5))
        brevo.campaign_event("anna@example.com", "opened", 12, at=now - dt.timedelta(minutes=4))
        brevo.campaign_event("anna@example.com", "complaints", 12, at=now - dt.timedelta(minutes=3))
        sync(project)
        sync(project)
        anna = card(project, "anna@example.com")
        assert [(e["type"], e["source"]) for e in anna["events"]] == [
            ("email_sent", "brevo"), ("email_open", "brevo"), ("email_complaint", "brevo")]
        assert anna["messages_30d"] == 1
        assert [(c["status"], c["source"]) for c in anna["consents"]] == [("complained", "brevo")]


HOOK_TOKEN = "smsru-hook-token-3c9d71"


def test_sms_ru_message_log_callbacks_and_status_checks_reach_the_client_card(store_project, monkeypatch, caplog):
    project = store_project
    caplog.set_level(logging.DEBUG)
    with FakeSmsRu() as smsru:
        monkeypatch.setenv("SMSRU_API_ID", smsru.api_id)
        monkeypatch.setenv("SMSRU_HOOK_TOKEN", HOOK_TOKEN)
        project.write("clients.csv", "id,full_name,phone\n1,Иван Петров,+79161234567\n2,Анна Белова,+79162223344\n"
                                     "3,Олег Иванов,+79163334455\n")
        project.config(textwrap.dedent(f"""\
            connectors:
              clients: {{plugin: csv, path: clients.csv, id_column: id}}
              smsru:
                plugin: smsru
                role: both
                api_id: $SMSRU_API_ID
                token: $SMSRU_HOOK_TOKEN
                endpoint: {smsru.url}
                backoff_seconds: 0
                max_backoff_seconds: 0
            """))
        assert project.hub("sync").exit_code == 0
        with serving(project, threads=4, sync_delay=0.05) as server:
            hook = f"http://127.0.0.1:{server.port}/hooks/smsru?token={HOOK_TOKEN}"
            # the sending system sends through SMS.ru and passes SMS.ru's answer on to hub
            answer = requests.post(smsru.url + "/sms/send", data={
                "api_id": smsru.api_id, "to": "79161234567,79162223344,79990001122", "msg": "Скидка 10%", "json": 1,
            }, timeout=10).json()
            ids = {number: result["sms_id"] for number, result in answer["sms"].items()}
            posted = requests.post(hook, json=answer, timeout=10)
            assert posted.status_code == 200 and posted.json()["ok"] is True
            assert requests.post(hook, json=answer, timeout=10).json()["duplicate"] is True
            server.worker.wait_idle(30)
            # SMS.ru calls back: Ivan's message delivered; its callback repeated (SMS.ru retries)
            smsru.progress(ids["79161234567"], 103)
            for _ in range(2):
                called = requests.post(hook, data=callback_body([(ids["79161234567"], 103, None)]), timeout=10,
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
                assert called.status_code == 200 and called.text == "100"
                assert called.headers["Content-Type"].startswith("text/plain")
            server.worker.wait_idle(30)
            # Oleg's status is called back before the sending system reports the message
            (oleg_id,) = [r["sms_id"] for r in smsru.send("79163334455")["sms"].values()]
            smsru.progress(oleg_id, 103)
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            assert requests.post(hook, data=callback_body([(oleg_id, 103, None)]), headers=form, timeout=10).text == "100"
            server.worker.wait_idle(30)
            assert requests.post(hook, json={"sms_id": oleg_id, "phone": "+7 916 333-44-55"}, timeout=10).ok
            server.worker.wait_idle(30)
            refused = requests.post(hook.replace(HOOK_TOKEN, "wrong"), data=callback_body([("x", 103, None)]),
                                    timeout=10)
            assert refused.status_code == 401
        ivan = card(project, "+79161234567")
        assert [(e["type"], e["source"]) for e in ivan["events"]] == [("sms_sent", "smsru"),
                                                                      ("sms_delivered", "smsru")]
        assert ivan["messages_30d"] == 1
        anna = card(project, "+79162223344")
        assert [e["type"] for e in anna["events"]] == ["sms_sent"]
        assert [e["type"] for e in card(project, "+79163334455")["events"]] == ["sms_sent", "sms_delivered"]
        # Anna's message fails without a callback: the next sync asks SMS.ru, faults and all
        smsru.progress(ids["79162223344"], 106)
        smsru.fail("sms.status", 429)
        smsru.fail("sms.status", 500)
        calls = smsru.calls["sms.status"]
        for _ in range(2):
            result = project.hub("-v", "-v", "sync", "--json")
            assert result.exit_code == 0, result.output
        anna = card(project, "+79162223344")
        assert [e["type"] for e in anna["events"]] == ["sms_sent", "sms_failed"]
        assert anna["events"][1]["payload"]["status_code"] == "106"
        assert ivan["messages_30d"] == 1 and card(project, "+79161234567")["events"] == ivan["events"]
        # asked about Anna's and the unknown number's messages only; Anna's no more once final
        asked = [r.form()["sms_id"][0] for n, r in smsru.requests if n == "sms.status"][calls:]
        assert all(ids["79161234567"] not in a and oleg_id not in a for a in asked)
        assert ids["79162223344"] not in asked[-1]
        assert smsru.keys_in_query == 0
        text = "\n".join(project.hub(*args).output for args in (("runs", "--json"), ("log", "--json"),
                                                                ("show", "+79162223344", "--json")))
        text += result.output + caplog.text
        rows = stored(project)
        assert "79162223344" in rows
        for secret in (smsru.api_id, HOOK_TOKEN):
            assert secret not in text and secret not in rows


def test_sms_ru_message_log_numbers_in_every_russian_format_reach_the_card(store_project, monkeypatch):
    """The sending system writes numbers as people do: 8 (916) …, 916 … without a code,
    +7 …, or a foreign +375 …; each message lands on the contact holding the number."""
    project = store_project
    with FakeSmsRu() as smsru:
        monkeypatch.setenv("SMSRU_API_ID", smsru.api_id)
        monkeypatch.setenv("SMSRU_HOOK_TOKEN", HOOK_TOKEN)
        project.write("clients.csv", "id,full_name,phone\n1,Иван Петров,+79161234567\n2,Анна Белова,+79162223344\n"
                                     "3,Олег Иванов,+79163334455\n4,Янка Купала,+375291234567\n")
        project.config(textwrap.dedent(f"""\
            connectors:
              clients: {{plugin: csv, path: clients.csv, id_column: id}}
              smsru:
                plugin: smsru
                api_id: $SMSRU_API_ID
                token: $SMSRU_HOOK_TOKEN
                endpoint: {smsru.url}
                message_status: false
            """))
        assert project.hub("sync").exit_code == 0
        with serving(project, threads=2, sync=False) as server:
            hook = f"http://127.0.0.1:{server.port}/hooks/smsru?token={HOOK_TOKEN}"
            for sms_id, phone in (("301-1", "8 (916) 123-45-67"), ("301-2", "9162223344"),
                                  ("301-3", "+7 916 333-44-55"), ("301-4", "+375 29 123-45-67")):
                assert requests.post(hook, json={"sms_id": sms_id, "phone": phone}, timeout=10).ok
        for _ in range(2):  # a rerun stores nothing twice
            assert project.hub("sync").exit_code == 0
        for phone, sms_id in (("+79161234567", "301-1"), ("+79162223344", "301-2"), ("+79163334455", "301-3"),
                              ("+375291234567", "301-4")):
            events = card(project, phone)["events"]
            assert [(e["type"], e["payload"]["sms_id"]) for e in events] == [("sms_sent", sms_id)], phone

        # an erased person's number is kept nowhere, not even in the message log hub serve stored
        assert "89161234567" in stored(project)
        result = project.hub("forget", "--phone", "+7 916 123-45-67")
        assert result.exit_code == 0, result.output
        for _ in range(2):
            assert project.hub("sync").exit_code == 0
        # (a message still waiting for its delivery status keeps its number in the connector's
        # state until the status comes or status_days pass: README, "Forget a person")
        everything = "\n".join(line for line in stored(project).splitlines()
                               if not line.startswith("('smsru', 'records'"))
        assert "123-45-67" not in everything and "9161234567" not in everything, [
            line for line in everything.splitlines() if "123-45-67" in line or "9161234567" in line]
        assert [(e["type"], e["payload"]["sms_id"]) for e in card(project, "+79162223344")["events"]] == [
            ("sms_sent", "301-2")]
