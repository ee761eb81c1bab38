"""Consent rules: which report wins, merges keep the strictest status, what may be sent."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from hub import consent
from hub.model import ConsentReport
from hub.store import open_store
from hub.store.schema import consents

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


class Row:
    def __init__(self, status, source, at=T0):
        self.status, self.source, self.at = status, source, at


@pytest.mark.parametrize(("current", "status", "source", "at", "accepted"), [
    (None, "subscribed", "mailchimp", T0, True),
    (Row("subscribed", "brevo"), "unsubscribed", "mailchimp", T0, True),
    (Row("unsubscribed", "mailchimp"), "subscribed", "brevo", T0 + dt.timedelta(days=1), False),
    (Row("unsubscribed", "mailchimp"), "subscribed", "mailchimp", T0 + dt.timedelta(days=1), True),
    (Row("unsubscribed", "mailchimp"), "subscribed", "mailchimp", T0 - dt.timedelta(days=1), False),
    (Row("unsubscribed", "mailchimp"), "pending", "brevo", T0, False),
    (Row("unsubscribed", "mailchimp"), "complained", "brevo", T0, True),
    (Row("complained", "brevo"), "unsubscribed", "mailchimp", T0, False),
    (Row("unsubscribed", "brevo"), "bounced", "mailchimp", T0, False),
    (Row("bounced", "brevo"), "unsubscribed", "mailchimp", T0, True),
    (Row("subscribed", "brevo"), "pending", "mailchimp", T0, False),
    (Row("pending", "brevo"), "subscribed", "mailchimp", T0, True),
    (Row("subscribed", "brevo"), "subscribed", "mailchimp", T0, False),
])
def test_which_report_wins(current, status, source, at, accepted):
    assert consent.accepts(current, status, source, at) is accepted


@pytest.mark.parametrize(("current", "accepted"), [
    (None, True),
    (Row("subscribed", "brevo"), True),
    (Row("pending", "mailchimp"), True),
    (Row("bounced", "brevo"), False),  # hub imported the bounce blacklisted: it reads back so
    (Row("bounced", "mailchimp"), False),
    (Row("unsubscribed", "mailchimp"), False),
    (Row("complained", "brevo"), False),
])
def test_a_blocklist_that_does_not_say_why_leaves_a_known_opt_out(current, accepted):
    at = T0 + dt.timedelta(days=1)
    assert consent.accepts(current, "unsubscribed", "brevo", at, blocklist=True) is accepted
    if current is not None and current.status == "bounced":
        # the person's own unsubscribe (an event, a list's status) still says more than a bounce
        assert consent.accepts(current, "unsubscribed", "brevo", at)


def test_a_blocklist_agrees_with_any_opt_out_hub_knows():
    blacklisted = ConsentReport("email", "unsubscribed", T0, blocklist=True)
    assert [consent.agrees(status, blacklisted) for status in ("bounced", "unsubscribed", "complained")] == [True] * 3
    assert not any(consent.agrees(status, blacklisted) for status in (None, "subscribed", "pending"))
    unsubscribed = ConsentReport("email", "unsubscribed", T0)
    assert [consent.agrees(status, unsubscribed) for status in ("bounced", "unsubscribed")] == [False, True]


def test_a_weaker_opt_out_in_a_tool_agrees_with_a_stronger_one_hub_holds():
    """A complaint written to a tool that can only mark an unsubscribe, read back."""
    unsubscribed = ConsentReport("email", "unsubscribed", T0)
    assert consent.agrees("complained", unsubscribed)
    assert consent.agrees("unsubscribed", ConsentReport("email", "bounced", T0))
    assert not consent.agrees("bounced", unsubscribed)  # the tool knows more: hub should hear it
    assert not consent.agrees("complained", ConsentReport("email", "subscribed", T0))


def test_a_blocklist_is_recorded_only_where_no_opt_out_is_known(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    store.migrate()
    blacklisted = ConsentReport("email", "unsubscribed", T0 + dt.timedelta(days=1),
                                (("brevo_emailBlacklisted", "True"),), blocklist=True)
    with store.begin() as c:
        consent.record(c, [(1, "brevo", "anna@example.com", ConsentReport("email", "bounced", T0)),
                           (2, "brevo", "7", ConsentReport("email", "subscribed", T0))], T0)
        rows, changed = consent.record(c, [(1, "brevo", "6", blacklisted), (2, "brevo", "7", blacklisted)], T0)
        assert changed == {2}
        assert [(r["contact_id"], r["old_value"], r["new_value"]) for r in rows] == [(2, "subscribed", "unsubscribed")]
        left = {r.contact_id: (r.status, r.proof) for r in c.execute(select(consents))}
        assert left == {1: ("bounced", '{"record": "anna@example.com"}'),
                        2: ("unsubscribed", '{"blocklist": "yes", "brevo_emailBlacklisted": "True", "record": "7"}')}
        # an opt-out that says why replaces the blocklist's, however it ranks; a blocklist
        # read again leaves it
        bounce = ConsentReport("email", "bounced", T0, (("brevo_campaign", "3"),))
        rows, changed = consent.record(c, [(2, "brevo", "7", bounce), (2, "brevo", "7", blacklisted)], T0)
        assert changed == {2} and [(r["old_value"], r["new_value"]) for r in rows] == [("unsubscribed", "bounced")]
        rows, changed = consent.record(c, [(2, "brevo", "7", blacklisted)], T0)
        assert (rows, changed) == ([], set())
        assert c.execute(select(consents.c.status).where(consents.c.contact_id == 2)).scalar() == "bounced"
    store.dispose()


@pytest.mark.parametrize(("status", "require", "present", "suppression", "why_not"), [
    ("subscribed", True, False, False, None),
    (None, True, False, False, consent.NO_CONSENT),
    (None, False, False, False, None),
    (None, True, True, False, None),
    ("pending", False, False, False, consent.PENDING),
    ("pending", True, True, False, None),
    ("unsubscribed", False, False, False, consent.OPTED_OUT_THERE),
    ("unsubscribed", True, True, False, None),
    ("bounced", True, True, False, None),
    ("bounced", True, False, False, consent.OPTED_OUT_THERE),
    # a suppression list (an SMS stop list) takes the contacts who withdrew, and only them
    ("unsubscribed", True, False, True, None),
    ("complained", True, True, True, None),
    ("bounced", True, True, True, consent.NOT_WITHDRAWN),
    ("subscribed", True, False, True, consent.NOT_WITHDRAWN),
])
def test_what_may_be_sent_and_why_not(status, require, present, suppression, why_not):
    assert consent.refusal(status, require_consent=require, present=present, suppression=suppression) == why_not
    rule = consent.SendRule("email", {7: status} if status else {}, {7} if present else set(),
                            require_consent=require, suppression=suppression)
    assert (rule.status(7), rule.refusal(7), rule.allows(7)) == (status, why_not, why_not is None)


def test_a_tool_without_a_consent_channel_takes_every_contact():
    rule = consent.SendRule(None, {}, set())
    assert (rule.channel, rule.status(7), rule.refusal(7), rule.allows(7)) == (None, None, None, True)


def test_records_log_each_change_and_merges_keep_the_strictest(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    store.migrate()
    with store.begin() as c:
        rows, changed = consent.record(c, [
            (1, "mailchimp", "h1", ConsentReport("email", "subscribed", T0, (("form", "signup"),))),
            (2, "brevo", "7", ConsentReport("email", "unsubscribed", T0)),
            (2, "brevo", "7", ConsentReport("sms", "subscribed", T0)),
            (1, "brevo", "8", ConsentReport("email", "subscribed", T0)),  # no change
        ], T0)
        assert changed == {1, 2}
        assert [(r["contact_id"], r["field"], r["old_value"], r["new_value"]) for r in rows] == [
            (1, "consent_email", None, "subscribed"), (2, "consent_email", None, "unsubscribed"),
            (2, "consent_sms", None, "subscribed")]
        merged = consent.merge(c, 1, [2], "brevo", T0)
        assert [(r["field"], r["old_value"], r["new_value"], r["reason"]) for r in merged] == [
            ("consent_email", "subscribed", "unsubscribed", "merge"), ("consent_sms", None, "subscribed", "merge")]
        left = {(r.contact_id, r.channel): r.status for r in c.execute(select(consents))}
        assert left == {(1, "email"): "unsubscribed", (1, "sms"): "subscribed"}
    store.dispose()


def test_a_send_rule_looks_up_a_batch_at_once(tmp_path):
    """Two lookups per 500 contacts (statuses; contacts the destination holds), however
    many are asked about: the sync asks for every contact of a batch."""
    from types import SimpleNamespace

    from sqlalchemy import event

    from hub.store import bulk_insert
    from hub.store.schema import outbox

    class Mailing:
        consent_channel, suppression_list = "email", False

    class Sheet:
        consent_channel, suppression_list = None, False

    config = SimpleNamespace(
        classes={"mailing": Mailing, "sheet": Sheet},
        model=SimpleNamespace(connectors={"list": SimpleNamespace(plugin="mailing"),
                                          "out": SimpleNamespace(plugin="sheet")}),
        options={"list": SimpleNamespace(require_consent=True), "out": SimpleNamespace()},
    )
    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    store.migrate()
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with store.begin() as c:
        bulk_insert(c, consents, [
            {"contact_id": 1, "channel": "email", "status": "subscribed", "source": "list", "at": T0, "proof": None},
            {"contact_id": 2, "channel": "email", "status": "unsubscribed", "source": "list", "at": T0, "proof": None},
            {"contact_id": 3, "channel": "email", "status": "unsubscribed", "source": "list", "at": T0, "proof": None},
        ])
        bulk_insert(c, outbox, [{"destination": "list", "contact_id": 3, "op": "upsert", "payload": "{}",
                                 "payload_hash": "h", "status": "sent", "sent_hash": "h", "attempts": 0}])
        statements.clear()
        ids = list(range(1, 1001))
        rule = consent.send_rule(c, config, "list", ids)
        assert len(statements) == 2 + 2 * 2  # statuses by 500; records and outbox by 500
        assert [(i, rule.status(i), rule.refusal(i)) for i in (1, 2, 3, 4)] == [
            (1, "subscribed", None), (2, "unsubscribed", consent.OPTED_OUT_THERE),
            (3, "unsubscribed", None),  # in the list already: updated there as unsubscribed
            (4, None, consent.NO_CONSENT)]
        statements.clear()
        assert consent.send_rule(c, config, "out", ids).allows(4) and statements == []
    store.dispose()
