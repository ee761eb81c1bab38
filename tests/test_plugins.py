"""The plugin contract: the documented example connector is installed through a real
entry point and syncs; built-ins load through the same manager."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hub.plugins import DEFAULT_PLUGINS, connector_classes, get_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "writing-a-connector.md"


def _example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks, "docs/writing-a-connector.md has no python block"
    return blocks[0]


@pytest.fixture
def installed_example(tmp_path: Path) -> Path:
    """Install the documented connector as a distribution with a `hub.connectors` entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "hub_jsonl.py").write_text(_example_code(), encoding="utf-8")
    dist = site / "hub_jsonl-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hub-jsonl\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hub.connectors]\njsonl = hub_jsonl\n")
    return site


def _hub(args: list[str], site: Path, cwd: Path, load: str | None = "jsonl") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env.pop("HUB_LOAD_PLUGINS", None)
    if load is not None:
        env["HUB_LOAD_PLUGINS"] = load
    return subprocess.run(
        [sys.executable, "-c", "from hub.cli import main; main()", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_documented_connector_is_listed_and_syncs(installed_example: Path, tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "leads.jsonl").write_text(
        '{"id": "a1", "full_name": "Дарья Романова", "phone": "8 (968) 610-24-89"}\n'
        '{"id": "a2", "first_name": "Саша", "email": "SASHA@example.ru"}\n'
        "{not json\n"
        '{"id": "a3", "full_name": "Дарья Романова", "email": "d@example.ru", "phone": "+79686102489"}\n',
        encoding="utf-8",
    )
    (project / "hub.yaml").write_text("connectors:\n  leads: {plugin: jsonl, path: leads.jsonl}\n")
    listed = _hub(["plugins", "--json"], installed_example, project)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["plugin"]: p for p in json.loads(listed.stdout)}
    assert plugins["jsonl"]["capabilities"] == ["read"]
    assert plugins["jsonl"]["module"] == "hub_jsonl"
    assert "csv" in plugins

    result = _hub(["sync", "--json"], installed_example, project)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"]["leads"]["read"] == 4
    assert report["counts"]["leads"]["created"] == 2  # a1 and a3 share a phone
    assert report["counts"]["leads"]["quarantined"] == 1
    quarantined = json.loads(_hub(["quarantine", "list", "--json"], installed_example, project).stdout)
    assert "line 3" in quarantined[0]["reason"]
    card = json.loads(_hub(["show", "leads:a3", "--json"], installed_example, project).stdout)
    assert card["fields"]["phone"] == "+79686102489"
    assert {r["external_id"] for r in card["records"]} == {"a1", "a3"}
    # unchanged file: the cursor short-circuits the read
    again = json.loads(_hub(["sync", "--json"], installed_example, project).stdout)
    assert again["counts"]["leads"]["read"] == 0 and again["changes"] == 0


def test_a_read_only_connector_cannot_be_a_destination(installed_example: Path, tmp_path: Path):
    (tmp_path / "hub.yaml").write_text("connectors:\n  leads: {plugin: jsonl, path: x.jsonl, role: destination}\n")
    result = _hub(["check"], installed_example, tmp_path)
    assert result.returncode == 2
    assert "connectors.leads.role: plugin 'jsonl' cannot write" in result.stderr
    assert "Traceback" not in result.stderr


def test_plugin_loading_is_chosen_by_environment(installed_example: Path, tmp_path: Path):
    (tmp_path / "hub.yaml").write_text("connectors: {}\n")
    none = json.loads(_hub(["plugins", "--json"], installed_example, tmp_path, load="").stdout)
    builtin = [p["plugin"] for p in none]  # the built-ins only
    assert {"csv", "google_sheets", "mailchimp", "brevo", "sendpulse", "unisender", "smsru", "twilio"} <= set(builtin)
    assert "jsonl" not in builtin
    every = json.loads(_hub(["plugins", "--json"], installed_example, tmp_path, load=None).stdout)
    assert {"csv", "jsonl"} <= {p["plugin"] for p in every}


def test_builtins_register_through_the_manager():
    pm = get_plugin_manager()
    assert all(pm.get_plugin(name) is not None for name in DEFAULT_PLUGINS)
    classes = connector_classes(pm)
    assert classes["csv"].__module__ == "hub_plugins.csv_file"
    assert classes["google_sheets"].__module__ == "hub_plugins.google_sheets"


def test_two_connectors_with_one_name_are_an_error():
    import pluggy

    from hub.connector import Connector
    from hub.errors import FatalError
    from hub.hookspecs import hookimpl

    class Clash(Connector):
        plugin = "csv"

    class Plugin:
        @hookimpl
        def hub_connectors(self, register):
            register(Clash)

    pm = get_plugin_manager()
    pm.register(Plugin())
    with pytest.raises(FatalError, match="two connectors are named 'csv'"):
        connector_classes(pm)
    assert isinstance(pm, pluggy.PluginManager)


def test_a_misspelled_hook_fails_loudly():
    import pluggy

    from hub.hookspecs import hookimpl

    class Typo:
        @hookimpl
        def hub_connector(self, register):  # missing "s"
            pass

    pm = get_plugin_manager()
    pm.register(Typo())
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


def test_a_connector_that_fails_unexpectedly_stops_only_itself(installed_example: Path, tmp_path: Path):
    """A connector raising an exception that is none of hub's own (a bug, an answer it does
    not understand) fails its own step with the exception named; the other sources are
    read and the run ends failed, not halfway."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "leads.jsonl").write_text("[1, 2]\n", encoding="utf-8")  # the example calls .get() on it
    (project / "crm.csv").write_text("id,full_name,phone\n1,Дарья Романова,+79686102489\n", encoding="utf-8")
    (project / "hub.yaml").write_text(
        "connectors:\n  leads: {plugin: jsonl, path: leads.jsonl}\n"
        "  crm: {plugin: csv, path: crm.csv, id_column: id}\n"
    )
    result = _hub(["sync", "--json"], installed_example, project)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "failed"
    assert report["counts"]["crm"]["created"] == 1
    assert any(e.startswith("leads: unexpected error in the connector: AttributeError") for e in report["errors"]), \
        report["errors"]
    assert "Traceback" not in result.stderr
