"""The `hub` command: scaffold, listings with --json, exit codes, messages without tracebacks."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_init_scaffolds_a_config_that_syncs(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["init", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    config = str(tmp_path / "new" / "hub.yaml")
    assert runner.invoke(main, ["-c", config, "check"]).exit_code == 0
    synced = runner.invoke(main, ["-c", config, "sync", "--json"])
    assert synced.exit_code == 0, synced.output
    report = json.loads(synced.stdout)
    # rows 1 and 3 are one person (same phone written two ways)
    assert report["counts"]["clients"]["created"] == 2
    rows = list(csv.DictReader((tmp_path / "new/out/merged.csv").open(encoding="utf-8-sig")))
    assert {r["phone"] for r in rows} == {"+79161234567", "+79037654321"}
    again = runner.invoke(main, ["init", str(tmp_path / "new")])
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_init_force_overwrites_hub_yaml_and_keeps_the_users_data_and_mapping(tmp_path):
    runner = CliRunner()
    data = "id,ФИО,Телефон\n1,Мой клиент,+79990001122\n"
    mapping = "fields:\n  full_name: ФИО\n  phone: Телефон\n"
    (tmp_path / "contacts.csv").write_text(data, encoding="utf-8")
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings/clients.yaml").write_text(mapping, encoding="utf-8")
    (tmp_path / "hub.yaml").write_text("old: true\n", encoding="utf-8")
    refused = runner.invoke(main, ["init", str(tmp_path)])
    assert refused.exit_code == 2 and "hub.yaml already exists" in refused.stderr
    result = runner.invoke(main, ["init", str(tmp_path), "--force"])
    assert result.exit_code == 0, result.output
    assert "connectors:" in (tmp_path / "hub.yaml").read_text(encoding="utf-8")
    assert (tmp_path / "contacts.csv").read_text(encoding="utf-8") == data
    assert (tmp_path / "mappings/clients.yaml").read_text(encoding="utf-8") == mapping
    assert f"kept {tmp_path / 'contacts.csv'}: it exists already" in result.stdout
    assert f"kept {tmp_path / 'mappings' / 'clients.yaml'}: it exists already" in result.stdout
    synced = runner.invoke(main, ["-c", str(tmp_path / "hub.yaml"), "sync", "--json"])
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.stdout)["counts"]["clients"]["created"] == 1  # the user's one row


def test_listing_commands_speak_json(project):
    project.write("c.csv", "id,full_name,phone\n1,Анна Белова,89160000001\n")
    project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    project.hub("sync")
    for args in (["runs"], ["log"], ["show", "1"], ["plugins"], ["quarantine", "list"], ["check"]):
        result = project.hub(*args, "--json")
        assert result.exit_code == 0, (args, result.output)
        json.loads(result.stdout)


def test_show_finds_contacts_by_phone_email_and_link(project):
    project.write("c.csv", "id,full_name,phone,email\n7,Анна Белова,89160000001,anna@example.ru\n")
    project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    project.hub("sync")
    for ref in ("1", "+7 916 000-00-01", "ANNA@example.ru", "c:7"):
        card = json.loads(project.hub("show", ref, "--json").stdout)
        assert card["id"] == 1 and card["fields"]["last_name"] == "Белова"
    missing = project.hub("show", "nobody@example.ru")
    assert missing.exit_code == 2
    assert "no contact matches" in missing.stderr


def test_digits_are_a_contact_id_when_one_has_it_else_a_phone(project):
    project.write("c.csv", "id,full_name,phone\n7,Анна Белова,89160000001\n8,Олег Смирнов,89160000002\n")
    project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    project.hub("sync")
    assert json.loads(project.hub("show", "2", "--json").stdout)["fields"]["last_name"] == "Смирнов"
    for ref in ("89160000001", "79160000001"):
        result = project.hub("show", ref, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["fields"]["last_name"] == "Белова"
    logged = json.loads(project.hub("log", "--contact", "79160000002", "--json").stdout)
    assert logged and {row["contact_id"] for row in logged} == {2}
    explained = json.loads(project.hub("explain", "89160000001", "2", "--json").stdout)
    assert (explained["a"], explained["b"]) == ("contact 1", "contact 2")
    for ref in ("99999999999999999999", "\u00b2", "5"):  # too long for an id; a superscript two; no such id
        result = project.hub("show", ref)
        assert result.exit_code == 2, (ref, result.output)
        assert f"no contact matches {ref!r}" in result.stderr and "bug" not in result.stderr


def test_unknown_connector_on_the_command_line(project):
    project.write("c.csv", "id,full_name\n1,Анна\n")
    project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    result = project.hub("sync", "nope")
    assert result.exit_code == 2
    assert "no connector named 'nope'" in result.stderr


def test_a_broken_source_fails_the_run_with_exit_1_and_other_sources_go_on(project):
    project.write("good.csv", "id,full_name\n1,Анна\n")
    project.config("""
        connectors:
          gone: {plugin: csv, path: missing.csv, id_column: id}
          good: {plugin: csv, path: good.csv, id_column: id}
    """)
    result = project.hub("sync", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["status"] == "failed"
    assert report["counts"]["good"]["created"] == 1
    assert "missing.csv" in report["errors"][0]
    assert json.loads(project.hub("runs", "--json").stdout)[0]["status"] == "failed"


def test_a_reader_that_stops_early_is_not_a_failure(project):
    """`hub show 1 | head -1`: rich's output to a closed pipe ends like `hub export | head`, with 0."""
    import os

    project.write("c.csv", "id,full_name,email\n1,Анна Белова,anna@example.ru\n")
    project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    project.hub("sync")
    for args in (["show", "1"], ["runs"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before hub writes a line
        try:
            result = subprocess.run([sys.executable, "-m", "hub", "-c", str(project.root / "hub.yaml"), *args],
                                    stdout=write, stderr=subprocess.PIPE, text=True, cwd=project.root)
        finally:
            os.close(write)
        assert (result.returncode, result.stderr) == (0, ""), args


def test_an_output_file_that_cannot_be_written_is_a_usage_error_naming_it(project):
    project.write("c.csv", "id,full_name,email\n1,Анна Белова,anna@example.ru\n")
    project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    project.hub("sync")
    missing = project.root / "no" / "such"
    for args in (["export", "contacts"], ["export", "links"], ["report"]):
        target = missing / "out.csv"
        result = project.hub(*args, "-o", str(target))
        assert result.exit_code == 2, (args, result.output)
        assert f"error: cannot write {target}: No such file or directory\n" in result.stderr
        assert f"hint: the folder {missing} does not exist" in result.stderr
    in_a_file = project.hub("export", "links", "-o", str(project.root / "c.csv" / "links.csv"))
    assert in_a_file.exit_code == 2 and "is a file, not a folder" in in_a_file.stderr
    assert project.hub("export", "links", "-o", str(project.root / "links.csv")).exit_code == 0
    assert sorted(p.name for p in project.root.iterdir() if p.suffix in (".csv", ".tmp")) == ["c.csv", "links.csv"]


def _as_a_user(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``hub ARGS`` with the file permissions an ordinary user has: run by root, without
    the capabilities that let root write any folder."""
    import ctypes
    import os

    def drop_override() -> None:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
            if prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP: gone after exec
                os._exit(99)

    root = hasattr(os, "geteuid") and os.geteuid() == 0
    result = subprocess.run([sys.executable, "-m", "hub", *args], capture_output=True, text=True, cwd=cwd,
                            preexec_fn=drop_override if root else None)
    if result.returncode == 99:
        pytest.skip("root here cannot drop CAP_DAC_OVERRIDE")
    return result


def test_a_store_in_a_folder_that_cannot_be_written_names_the_file_and_why(tmp_path):
    """The default store beside hub.yaml in a folder the user cannot write said "unable to
    open database file" with a hint about `store:`, a key the user never set."""
    project, data = tmp_path / "project", tmp_path / "data"
    project.mkdir()
    data.mkdir()
    (project / "contacts.csv").write_text("id,full_name,email\n1,Анна Белова,anna@example.ru\n", encoding="utf-8")
    connectors = "connectors:\n  c: {plugin: csv, path: contacts.csv}\n"
    (project / "hub.yaml").write_text(connectors, encoding="utf-8")
    (project / "elsewhere.yaml").write_text(f"store: sqlite:///{data / 'hub.db'}\n" + connectors, encoding="utf-8")
    project.chmod(0o555)
    data.chmod(0o555)
    try:
        for command in ("sync", "check", "runs"):
            result = _as_a_user(command, cwd=project)
            assert result.returncode == 2, (command, result.stderr)
            assert result.stderr == (
                f"error: cannot create the store {project / 'hub.db'}: the folder {project} is not writable by this "
                f"user\n  hint: make {project} writable for this user, or run hub as a user who can write there\n"
            ), command
        named = _as_a_user("-c", "elsewhere.yaml", "sync", cwd=project)
        assert named.returncode == 2
        assert named.stderr.startswith(
            f"error: {project / 'elsewhere.yaml'}: store: cannot create the store {data / 'hub.db'}: the folder "
            f"{data} is not writable by this user\n")
        assert "or point `store:` elsewhere" in named.stderr
        # a store made before the folder became read-only: SQLite writes beside it to read it
        project.chmod(0o755)
        assert _as_a_user("sync", cwd=project).returncode == 0
        project.chmod(0o555)
        result = _as_a_user("runs", cwd=project)
        assert result.returncode == 2
        assert f"cannot open the store {project / 'hub.db'}: the folder {project} is not writable" in result.stderr
    finally:
        project.chmod(0o755)
        data.chmod(0o755)


def test_an_id_column_the_source_does_not_have_is_a_config_error_naming_the_key(project):
    project.write("c.csv", "id,full_name\n1,Анна\n")
    project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: ID}\n")
    for command in ("check", "sync"):
        result = project.hub(command)
        assert result.exit_code == 2, (command, result.output)
        assert f"{project.root / 'c.csv'}: connectors.c.id_column: 'ID' is not a column of the file" in result.stderr
        assert "hint: did you mean 'id'? columns there: id, full_name" in result.stderr


def test_python_dash_m_hub_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "hub", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0
    assert "hub" in result.stdout


def test_the_example_project_syncs(tmp_path):
    """The README's main job: the root hub.yaml on examples/, from a copy of the repo files."""
    import shutil

    for name in ("hub.yaml", "examples", "mappings"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("out"))
        else:
            shutil.copy(source, tmp_path / name)
    runner = CliRunner()
    config = str(tmp_path / "hub.yaml")
    result = runner.invoke(main, ["-c", config, "sync", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    created = sum(c["created"] for c in report["counts"].values())
    read = sum(c["read"] for c in report["counts"].values())
    assert 0 < created < read  # overlapping people were merged
    assert (tmp_path / "examples/out/contacts.csv").exists()
    card = json.loads(runner.invoke(main, ["-c", config, "show", "d.romanova@mail.ru", "--json"]).stdout)
    sources = {r["source"] for r in card["records"] if r["origin"] == "read"}
    assert {"sheet", "mailing", "forms"} <= sources  # Дарья in all three: email and phone (and orders)
    again = json.loads(runner.invoke(main, ["-c", config, "sync", "--json"]).stdout)
    assert again["changes"] == 0
    listed = json.loads(runner.invoke(main, ["-c", config, "segments", "--json"]).stdout)
    assert sum(listed["categories"]["temperature"].values()) == sum(listed["categories"]["stage"].values()) > 0
    why = json.loads(runner.invoke(main, ["-c", config, "segments", "explain", "a.ivanov@yandex.ru", "--json"]).stdout)
    assert why["facts"]["orders"] == 5 and why["facts"]["revenue"] == 25700  # examples/orders.csv
    assert {s["name"] for s in listed["segments"]} == {"loyal_buyers", "win_back"}


def test_exports_never_carry_a_runnable_formula(project):
    project.write("c.csv", "id,full_name,email,phone\n1,=cmd|' /C calc'!A0,a@example.ru,+79161234567\n")
    project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    project.hub("sync")
    rows = list(csv.DictReader(io.StringIO(project.hub("export", "contacts", "--unmask").stdout)))
    assert rows[0]["full_name"].startswith("'=")
    assert rows[0]["phone"] == "+79161234567"  # a plain international phone stays as it is


def test_a_postgresql_store_that_refuses_the_login_is_a_config_error(tmp_path):
    """A wrong user, password or database in `store:` is the user's to fix: exit 2 naming
    the key, the password never shown; a server that does not answer stays a failed run."""
    from sqlalchemy.engine import make_url

    from tests.conftest import _postgres_url

    base = _postgres_url()
    if not base:
        pytest.skip("needs HUB_TEST_POSTGRES_URL")
    url = make_url(base)
    (tmp_path / "c.csv").write_text("id,email\n1,a@example.ru\n", encoding="utf-8")
    cases = {
        "user": url.set(username="no_such_hub_user", password="s3cret-Pw"),
        "database": url.set(database="no_such_hub_db", password="s3cret-Pw"),
    }
    for what, wrong in cases.items():
        (tmp_path / "hub.yaml").write_text(
            f"store: {wrong.render_as_string(hide_password=False)}\nconnectors:\n  c: {{plugin: csv, path: c.csv}}\n",
            encoding="utf-8")
        result = subprocess.run([sys.executable, "-m", "hub", "sync"], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 2, (what, result.stderr)
        assert result.stderr.startswith(f"error: {tmp_path / 'hub.yaml'}: store: the database server refused"), what
        assert "s3cret-Pw" not in result.stderr
        assert "Traceback" not in result.stderr
    down = url.set(port=1)  # nothing listens there
    (tmp_path / "hub.yaml").write_text(
        f"store: {down.render_as_string(hide_password=False)}\nconnectors:\n  c: {{plugin: csv, path: c.csv}}\n",
        encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "hub", "sync"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "cannot open the store" in result.stderr
