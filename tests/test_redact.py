"""Secrets from $VAR never reach logs, errors, run reports or the change log."""

from __future__ import annotations

import json
import logging

import pytest

from hub.redact import RedactingFilter, redact, redact_secrets, register_secret


def test_registered_secrets_and_url_keys_are_masked():
    register_secret("sk-live-123456")
    assert redact("token sk-live-123456 failed") == "token *** failed"
    assert redact("GET https://api.unisender.com/ru/api/importContacts?format=json&api_key=abcdef") == (
        "GET https://api.unisender.com/ru/api/importContacts?format=json&api_key=***"
    )
    assert redact("https://sms.ru/sms/send?api_id=XYZ-1&to=7916") == "https://sms.ru/sms/send?api_id=***&to=7916"


def test_a_password_written_into_a_url_is_masked():
    assert redact("store: postgresql+psycopg://hub:Pw-7c2e9a@db.local:5432/hub") == (
        "store: postgresql+psycopg://hub:***@db.local:5432/hub"
    )
    assert redact("cannot open postgresql://hub:p%40ss@db/hub?sslmode=require and https://x.example/a@b") == (
        "cannot open postgresql://hub:***@db/hub?sslmode=require and https://x.example/a@b"
    )
    assert redact("mail ivan:petrov@example.ru, postgresql://hub@db/hub") == (
        "mail ivan:petrov@example.ru, postgresql://hub@db/hub"
    )


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_hub_check_never_prints_the_password_of_the_store_url(store_project):
    from sqlalchemy.engine import make_url

    url = make_url(store_project.store_url)
    if url.password is None:  # the test server trusts local connections: any password does
        url = url.set(password="Pw-5d1b8e0c")
    password = str(url.password)
    store_project.store_url = url.render_as_string(hide_password=False)
    store_project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    store_project.write("c.csv", "id,full_name\n1,Анна Белова\n")
    for args in (["check"], ["check", "--json"], ["-v", "sync"], ["runs"]):
        result = store_project.hub(*args)
        assert result.exit_code == 0, (args, result.output)
        assert password not in result.output, args
    assert "store: postgresql+psycopg://" in store_project.hub("check").stdout


def test_short_values_are_not_treated_as_secrets():
    register_secret("ab")
    assert redact("abc ab") == "abc ab"


def test_logging_filter_masks_messages():
    register_secret("p4ssw0rd-value")
    record = logging.LogRecord("hub", logging.ERROR, __file__, 1, "login with %s", ("p4ssw0rd-value",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "login with ***"


def test_a_secret_inside_data_never_reaches_the_change_log(project, monkeypatch):
    monkeypatch.setenv("HUB_TEST_TOKEN", "tok-9f8e7d6c5b")
    project.write("c.csv", "id,full_name,company\n1,Анна Белова,tok-9f8e7d6c5b\n")
    project.write("mappings/c.yaml", "fields:\n  full_name: full_name\n  company: company\n")
    # the secret is used in the config (as a value the csv plugin accepts) and also appears in data
    project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n"
                   "normalize: {city_aliases: {x: $HUB_TEST_TOKEN}}\n")
    result = project.hub("sync", "--json")
    assert result.exit_code == 0, result.output
    log = json.loads(project.hub("log", "--field", "company", "--json").stdout)
    assert [entry["new"] for entry in log] == ["***"]
    assert "tok-9f8e7d6c5b" not in project.hub("log").output


def test_data_keeps_its_own_url_keys_but_not_registered_secrets():
    register_secret("sk-live-data-778899")
    assert redact_secrets("https://shop.example/?key=promo2024&token=abc") == "https://shop.example/?key=promo2024&token=abc"
    assert redact_secrets("ref sk-live-data-778899") == "ref ***"


def test_the_change_log_keeps_a_url_key_of_the_data_and_undo_puts_it_back(project):
    project.write("mappings/c.yaml", "fields:\n  email: email\n  x_site: site\n")
    project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    project.write("c.csv", "id,email,site\n1,a@example.ru,https://shop.example/?key=promo2024\n")
    assert project.hub("sync").exit_code == 0
    project.write("c.csv", "id,email,site\n1,a@example.ru,https://shop.example/new\n")
    assert project.hub("sync").exit_code == 0
    log = json.loads(project.hub("log", "--field", "x_site", "--json").stdout)
    assert [entry["old"] for entry in log if entry["run_id"] == 2] == ["https://shop.example/?key=promo2024"]
    assert project.hub("undo", "2").exit_code == 0
    shown = json.loads(project.hub("show", "1", "--json").stdout)
    assert shown["fields"]["x_site"] == "https://shop.example/?key=promo2024"
