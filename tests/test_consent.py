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


@pytest.mark.parametrize(("status", "require", "present", "sent"), [
    ("subscribed", True, False, True),
    (None, True, False, False),
    (None, False, False, True),
    (None, True, True, True),
    ("pending", False, False, False),
    ("unsubscribed", False, False, False),
    ("unsubscribed", True, True, True),
    ("bounced", True, True, True),
])
def test_what_may_be_sent(status, require, present, sent):
    assert consent.may_send(status, require_consent=require, present=present) is sent


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
