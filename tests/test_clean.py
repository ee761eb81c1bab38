"""`hub clean`: inactive contacts flagged or deleted (behind the guard), activity again
lifts the flag, invalid identifiers listed; runs of their own, in the change log, undoable."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest
from sqlalchemy import and_, insert, select, update

from hub.clean import INACTIVE_FIELD, Cleaner, is_activity
from hub.config import load_config
from hub.errors import GuardError
from hub.plugins import connector_classes
from hub.store import open_store
from hub.store.schema import changes, consents, contacts, events, outbox, runs

SHEET = """\
id,full_name,phone,email
1,Анна Белова,89160000001,anna@example.ru
2,Борис Орлов,89160000002,boris@example.ru
3,Вера Козлова,89160000003,vera@example.ru
4,Глеб Смирнов,телефон не дал,gleb@@mail
"""
DAY = dt.timedelta(days=1)


def _config(project, clean: str = "", guard: str = "5%") -> None:
    project.config(f"""\
        connectors:
          sheet: {{plugin: csv, path: sheet.csv, id_column: id}}
          out: {{plugin: csv, role: destination, path: out.csv}}
        guards: {{mass_delete_threshold: "{guard}"}}
        clean:
          inactive_after: 365d
        {clean}
        segments:
          sleeping: {{when: [{{field: {INACTIVE_FIELD}, exists: true}}]}}
    """)


@pytest.fixture
def base(store_project):
    store_project.write("sheet.csv", SHEET)
    store_project.write("mappings/out.yaml", "fields:\n  full_name: {from: name}\n  email: {from: email}\n"
                        "  x_inactive_since: {from: inactive since}\n")
    _config(store_project)
    assert store_project.hub("sync").exit_code == 0
    return store_project


def _open(project):
    config = load_config(project.root / "hub.yaml", connector_classes())
    return config, open_store(config.store_url)


def _created(store) -> dt.datetime:
    with store.connect() as c:
        at = c.execute(select(contacts.c.created_at).where(contacts.c.id == 1)).scalar()
    return at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)


def _event(store, contact_id: int, type_: str, at: dt.datetime) -> None:
    with store.begin() as c:
        c.execute(insert(events).values(contact_id=contact_id, type=type_, connector="esp",
                                        external_id=f"{type_}-{contact_id}-{at.isoformat()}", at=at))


def _fields(project, contact_id: int) -> dict:
    return json.loads(project.hub("show", str(contact_id), "--json").stdout)["fields"]


def test_what_counts_as_activity():
    assert all(map(is_activity, ["form", "visit", "purchase", "email_open", "email_click", "sms_received"]))
    assert not any(map(is_activity, ["email_sent", "sms_sent", "email_delivered", "email_bounce", "email_failed"]))


def test_inactive_contacts_are_flagged_and_active_ones_unflagged(base):
    config, store = _open(base)
    t0 = _created(store)
    _event(store, 1, "email_open", t0 + 300 * DAY)   # anna opened a mailing: active
    _event(store, 2, "email_sent", t0 + 300 * DAY)   # boris was only sent one: not his activity
    result = Cleaner(config, store, "olga").clean(now=t0 + 400 * DAY)
    # cutoff t0 + 35 days: boris, vera and gleb were last active at t0
    assert result["flagged"] == [2, 3, 4] and result["unflagged"] == [] and result["deleted"] == []
    day = t0.date().isoformat()
    assert _fields(base, 2)[INACTIVE_FIELD] == day and INACTIVE_FIELD not in _fields(base, 1)
    with store.connect() as c:
        run = c.execute(select(runs).where(runs.c.id == result["run_id"])).first()
        logged = c.execute(select(changes.c.contact_id, changes.c.field, changes.c.old_value, changes.c.new_value,
                                  changes.c.reason).where(changes.c.run_id == result["run_id"])).all()
        queued = c.execute(select(outbox.c.contact_id).where(outbox.c.status == "pending")).scalars().all()
    assert run.kind == "clean" and run.status == "ok" and json.loads(run.counts)["actor"] == "olga"
    assert sorted(logged) == [(i, INACTIVE_FIELD, None, day, "clean") for i in (2, 3, 4)]
    assert sorted(queued) == [2, 3, 4]   # the destinations get the flag on the next sync

    # the same clean again changes nothing; a sync sends the flag and keeps it (the records say the same)
    assert Cleaner(config, store).clean(now=t0 + 400 * DAY)["flagged"] == []
    assert base.hub("sync").exit_code == 0
    assert _fields(base, 3)[INACTIVE_FIELD] == day
    sleeping = json.loads(base.hub("segments", "--json").stdout)["segments"]
    assert [(s["name"], s["members"]) for s in sleeping] == [("sleeping", 3)]
    out = {row["name"]: row["inactive since"] for row in csv.DictReader(
        (base.root / "out.csv").open(encoding="utf-8-sig"))}
    assert out["Анна Белова"] in ("", None) and out["Борис Орлов"] == day

    # vera fills in a form: active again, the flag goes
    _event(store, 3, "form", t0 + 390 * DAY)
    again = Cleaner(config, store).clean(now=t0 + 400 * DAY)
    assert again["unflagged"] == [3] and again["flagged"] == []
    assert INACTIVE_FIELD not in _fields(base, 3)
    with store.connect() as c:
        assert c.execute(select(changes.c.old_value, changes.c.new_value).where(
            changes.c.run_id == again["run_id"])).all() == [(day, None)]

    # gleb's e-mail is fixed in the sheet (a change a tool brought, dated 395 days on); a re-read
    # of unchanged rows (the mapping changed: every row is read again) is nobody's activity
    base.write("sheet.csv", SHEET.replace("gleb@@mail", "gleb@example.ru"))
    base.write("mappings/sheet.yaml", "fields:\n  full_name: {from: full_name}\n  phone: {from: phone}\n"
               "  email: {from: email}\n")
    assert base.hub("sync").exit_code == 0
    with store.begin() as c:
        fixed = c.execute(select(changes.c.id).where(and_(changes.c.contact_id == 4, changes.c.field == "email",
                                                          changes.c.reason == "sync"))).scalars().all()
        assert len(fixed) == 1
        c.execute(update(changes).where(changes.c.id == fixed[0]).values(at=t0 + 395 * DAY))
    last = Cleaner(config, store).clean(now=t0 + 400 * DAY)
    assert last["unflagged"] == [4] and last["flagged"] == []
    assert _fields(base, 2)[INACTIVE_FIELD] == day
    store.dispose()


def test_dry_run_changes_nothing(base):
    config, store = _open(base)
    t0 = _created(store)
    with store.connect() as c:
        before = (c.execute(select(runs.c.id)).all(), c.execute(select(changes.c.id)).all())
    result = Cleaner(config, store).clean(dry_run=True, now=t0 + 400 * DAY)
    assert result["flagged"] == [1, 2, 3, 4] and result["run_id"] is None
    with store.connect() as c:
        assert (c.execute(select(runs.c.id)).all(), c.execute(select(changes.c.id)).all()) == before
    store.dispose()


def test_deleting_inactive_contacts_is_behind_the_guard_and_undoable(base):
    _config(base, clean="  inactive: delete", guard="30%")
    config, store = _open(base)
    t0 = _created(store)
    _event(store, 1, "purchase", t0 + 380 * DAY)
    _event(store, 2, "visit", t0 + 390 * DAY)
    # vera and gleb: 2 of 4 contacts, over the 30% guard
    with pytest.raises(GuardError, match="2 of 4 contacts"):
        Cleaner(config, store).clean(now=t0 + 400 * DAY)
    dry = Cleaner(config, store).clean(dry_run=True, now=t0 + 400 * DAY)
    assert dry["deleted"] == [3, 4] and "the mass-delete guard stops at 30%" in dry["guard"]
    cli = base.hub("clean", "--json")   # the real clock: nobody is a year old, nothing to delete
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["deleted"] == []
    result = Cleaner(config, store).clean(allow_mass_delete=True, now=t0 + 400 * DAY)
    assert result["deleted"] == [3, 4]
    with store.connect() as c:
        gone = c.execute(select(contacts.c.id).where(contacts.c.deleted_at.is_not(None))).scalars().all()
        logged = c.execute(select(changes.c.contact_id, changes.c.field, changes.c.reason).where(
            changes.c.run_id == result["run_id"])).all()
    assert sorted(gone) == [3, 4]
    assert sorted(logged) == [(3, "deleted", "clean"), (4, "deleted", "clean")]
    # the next sync takes them out of the destination, and does not bring them back from the sheet
    assert base.hub("sync").exit_code == 0
    out = (base.root / "out.csv").read_text(encoding="utf-8-sig")
    assert "Белова" in out and "Козлова" not in out and "Смирнов" not in out
    # hub undo puts them back
    undo = base.hub("undo", str(result["run_id"]))
    assert undo.exit_code == 0, undo.output
    assert _fields(base, 3)["last_name"] == "Козлова"
    store.dispose()


def test_a_deleted_contact_comes_back_when_its_source_brings_something_new(base):
    _config(base, clean="  inactive: delete", guard="100%")
    config, store = _open(base)
    t0 = _created(store)
    assert Cleaner(config, store).clean(now=t0 + 400 * DAY)["deleted"] == [1, 2, 3, 4]
    base.write("sheet.csv", SHEET.replace("anna@example.ru", "anna.belova@example.ru"))
    assert base.hub("sync").exit_code == 0
    card = json.loads(base.hub("show", "1", "--json").stdout)
    assert not card["deleted"] and card["fields"]["email"] == "anna.belova@example.ru"
    assert json.loads(base.hub("show", "2", "--json").stdout)["deleted"]
    store.dispose()


def test_invalid_identifiers_are_listed_for_fixing_and_the_listing_is_audited(base):
    _, store = _open(base)
    with store.begin() as c:  # what a mailing service reported about vera's address
        c.execute(insert(consents).values(contact_id=3, channel="email", status="bounced", source="mailchimp"))
    store.dispose()
    result = base.hub("clean", "--dry-run", "--json", "--actor", "olga")
    assert result.exit_code == 0, result.output
    fixes = json.loads(result.stdout)["invalid_identifiers"]
    assert [(f["connector"], f["external_id"], f["contact_id"], f["status"]) for f in fixes] == [
        ("sheet", "4", 4, "partial"), ("mailchimp", None, 3, "bounced")]
    assert fixes[1]["problems"] == ["email: 'vera@example.ru' bounced: mailchimp cannot deliver to it"]
    assert len(fixes[0]["problems"]) == 2
    assert fixes[0]["problems"][0].startswith("phone: 'телефон не дал'")
    assert fixes[0]["problems"][1].startswith("email: 'gleb@@mail'")
    audit = json.loads(base.hub("audit", "--json").stdout)
    assert [(a["actor"], a["action"], a["rows"]) for a in audit if a["action"] == "clean"] == [("olga", "clean", 2)]
    text = base.hub("clean", "--dry-run")
    assert "would flag 0 contacts" in text.stdout and "2 records with a phone or e-mail to fix" in text.stdout


def test_a_bad_clean_setting_names_the_key(project):
    project.write("sheet.csv", SHEET)
    project.config("connectors:\n  sheet: {plugin: csv, path: sheet.csv, id_column: id}\n"
                   "clean:\n  inactive_after: two years\n")
    result = project.hub("clean")
    assert result.exit_code == 2
    assert "clean.inactive_after" in result.stderr and "90d" in result.stderr


def test_old_spam_leaves_the_inbox_in_a_run_of_its_own(project):
    """hub clean calls hub leads clean with clean.spam_after; newer spam and real leads stay."""
    import requests

    from hub.serve import Server
    from hub.store.schema import inbox

    token = "t0ken-of-the-site-forms"
    project.write("mappings/site.yaml", "fields:\n  full_name: {from: Name, transforms: [split_name]}\n"
                  "  email: {from: Email, transforms: [email]}\n")
    project.config(f"""\
        connectors:
          site:
            plugin: webhook
            format: form
            token: {token}
            leads: {{honeypot: [website]}}
        clean: {{spam_after: 14d}}
    """)
    config, store = _open(project)
    server = Server(config, store, "127.0.0.1", 0, threads=2, sync=False).start()
    try:
        for fields in ({"Name": "Bot", "Email": "a@spam.example", "website": "x"},
                       {"Name": "Анна Белова", "Email": "anna@example.ru"},
                       {"Name": "Bot", "Email": "b@spam.example", "website": "y"}):
            url = f"http://127.0.0.1:{server.port}/hooks/site?token={token}"
            assert requests.post(url, data=fields, timeout=30).status_code == 200
    finally:
        server.stop()
    assert project.hub("sync").exit_code == 0
    with store.begin() as c:  # the first two came in three weeks ago
        first_two = c.execute(select(inbox.c.id).order_by(inbox.c.id).limit(2)).scalars().all()
        c.execute(update(inbox).where(inbox.c.id.in_(first_two)).values(
            received_at=dt.datetime.now(dt.timezone.utc) - 21 * DAY))
    dry = json.loads(project.hub("clean", "--dry-run", "--json").stdout)
    assert dry["spam"]["removed"] == 1 and dry["spam"]["run_id"] is None
    result = project.hub("clean", "--actor", "ops")
    assert result.exit_code == 0, result.output
    assert "spam: remove 1 submissions" in result.stdout
    with store.connect() as c:
        left = [json.loads(f)["Email"] for f in c.execute(select(inbox.c.fields).order_by(inbox.c.id)).scalars()]
        kinds = c.execute(select(runs.c.kind).order_by(runs.c.id)).scalars().all()
    assert left == ["anna@example.ru", "b@spam.example"]
    assert kinds == ["sync", "leads-clean", "clean"]
    store.dispose()


def test_an_empty_base_has_nothing_to_clean(project):
    project.write("sheet.csv", "id,full_name\n")
    _config(project)
    result = project.hub("clean", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["flagged"], data["deleted"], data["invalid_identifiers"], data["changes"]) == ([], [], [], 0)
    assert data["spam"] is None  # no site forms with lead rules: no spam run


def test_undoing_a_clean_takes_the_flags_back(base):
    config, store = _open(base)
    t0 = _created(store)
    run = Cleaner(config, store).clean(now=t0 + 400 * DAY)["run_id"]
    assert INACTIVE_FIELD in _fields(base, 1)
    undo = base.hub("undo", str(run))
    assert undo.exit_code == 0, undo.output
    assert all(INACTIVE_FIELD not in _fields(base, i) for i in (1, 2, 3, 4))
    # the next clean flags them again
    assert Cleaner(config, store).clean(now=t0 + 400 * DAY)["flagged"] == [1, 2, 3, 4]
    assert _fields(base, 1)[INACTIVE_FIELD] == t0.date().isoformat()
    store.dispose()
