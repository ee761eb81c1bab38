"""hub.yaml: every mistake a person can make gets `file: path: message`, exit 2, no traceback."""

from __future__ import annotations

import json

import pytest

CSV = "id,full_name,phone,email\n1,Иван Петров,89161234567,ivan@example.ru\n"


def _setup(project, config: str) -> None:
    project.write("contacts.csv", CSV)
    project.config(config)


def _error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.stderr


def test_valid_config_checks_ok(project):
    _setup(project, """
        connectors:
          clients: {plugin: csv, path: contacts.csv, id_column: id}
    """)
    result = project.hub("check")
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout


@pytest.mark.parametrize(
    "config, expected",
    [
        ("connectors:\n  clients: {plugin: csv, path: contacts.csv}\nguardz: {}\n",
         "hub.yaml: guardz: unknown key 'guardz'; did you mean 'guards'?"),
        ("connectors:\n  clients: {plugin: csv, path: contacts.csv}\nguards: {mass_delete_treshold: 0.1}\n",
         "guards.mass_delete_treshold: unknown key 'mass_delete_treshold'; did you mean 'mass_delete_threshold'?"),
        ("connectors:\n  clients: {plugin: csv, pathh: contacts.csv}\n", "connectors.clients.pathh: unknown key"),
        ("connectors:\n  clients: {plugin: csv}\n", "connectors.clients.path: required key is missing"),
        ("connectors:\n  clients: {path: contacts.csv}\n", "connectors.clients.plugin: required key is missing"),
        ("connectors:\n  clients: {plugin: cvs, path: contacts.csv}\n",
         "connectors.clients.plugin: no connector plugin named 'cvs'; did you mean 'csv'?"),
        ("connectors:\n  clients: {plugin: csv, path: contacts.csv, role: sink}\n", "connectors.clients.role:"),
        ("connectors:\n  clients: {plugin: csv, path: contacts.csv}\nguards: {mass_delete_threshold: lots}\n",
         "guards.mass_delete_threshold:"),
        ("connectors:\n  clients: {plugin: csv, path: contacts.csv}\nmerge: {source_priority: [clientz]}\n",
         "merge.source_priority[0]: no connector named 'clientz'; did you mean 'clients'?"),
        ("connectors:\n  clients: {plugin: csv, path: contacts.csv}\nmerge: {fields: {emial: most_recent}}\n",
         "merge.fields: unknown field 'emial'; did you mean 'email'?"),
        ("connectors:\n  clients: {plugin: csv, path: contacts.csv}\nnormalize: {default_region: XX}\n",
         "normalize.default_region: unknown phone region 'XX'"),
        ("connectors:\n  \"crm:main\": {plugin: csv, path: contacts.csv}\n",
         "hub.yaml: connectors.crm:main: a connector name holds only Latin letters, digits, '_' and '-'; not ':'\n"
         "  hint: rename it, e.g. crm_main: the name is typed in SOURCE:ID references (hub show crm_main:1)"),
        ("connectors:\n  my crm.v2: {plugin: csv, path: contacts.csv}\n",
         "connectors.my crm.v2: a connector name holds only Latin letters, digits, '_' and '-'; not ' ', '.'"),
        ("connectors:\n  clients: {plugin: csv, path: contacts.csv, mapping: nothere}\n",
         "connectors.clients.mapping: mapping file"),
        ("store: foo\nconnectors:\n  clients: {plugin: csv, path: contacts.csv}\n",
         "hub.yaml: store: store URL 'foo' is not a database URL\n  hint: use sqlite:///hub.db"),
        ("store: sqlite:///nofolder/hub.db\nconnectors:\n  clients: {plugin: csv, path: contacts.csv}\n",
         "hub.yaml: store: store folder"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        # a number written with a unit: the hint is not to quote it
        ("connectors:\n  forms: {plugin: webhook, format: form, token: abcdefghijklmnop1234, max_body: 1MB}\n",
         "connectors.forms.max_body: Input should be a valid integer, unable to parse string as an integer "
         "(got str '1MB')\n  hint: write a plain number, without units or quotes\n"),
        ("connectors:\n  clients: {plugin: csv, path: contacts.csv, id_column: [a, b]}\n",
         "connectors.clients.id_column: Input should be a valid string"),
        ("connectors:\n  a: {plugin: csv, path: contacts.csv}\n  a: {plugin: csv, path: contacts.csv}\n",
         "duplicate key 'a'"),
        ("connectors:\n\ta: {plugin: csv}\n", "tab"),
        ("x: &a [1]\ny: *a\n", "anchor"),
    ],
)
def test_config_mistakes_are_named(project, config, expected):
    _setup(project, config)
    stderr = _error(project.hub("check"))
    assert expected in stderr
    assert stderr.startswith("error: ")
    assert str(project.root / "hub.yaml") in stderr or "hub.yaml" in stderr


def test_missing_env_variable_is_an_error_naming_it(project, monkeypatch):
    monkeypatch.delenv("HUB_TEST_SECRET", raising=False)
    _setup(project, "connectors:\n  clients: {plugin: csv, path: $HUB_TEST_SECRET}\n")
    stderr = _error(project.hub("check"))
    assert "connectors.clients.path: environment variable HUB_TEST_SECRET is not set" in stderr


def test_env_variables_are_substituted_and_never_printed(project, monkeypatch):
    monkeypatch.setenv("HUB_TEST_DIR", "contacts-s3cr3t-value.csv")
    project.write("contacts-s3cr3t-value.csv", CSV)
    project.config("connectors:\n  clients: {plugin: csv, path: '${HUB_TEST_DIR}', id_column: nope}\n")
    result = project.hub("sync")
    assert "s3cr3t" not in result.output
    assert result.exit_code in (1, 2)


def test_dollar_dollar_is_literal(project):
    project.write("a$b.csv", CSV)
    project.config("connectors:\n  clients: {plugin: csv, path: 'a$$b.csv', id_column: id}\n")
    assert project.hub("check").exit_code == 0


def test_yaml_int_and_bool_traps_stay_strings(project):
    # `no` and `+79161234567` must reach hub as text, not False and an int.
    project.write("contacts.csv", "no,phone\n1,89161234567\n")
    project.config("connectors:\n  clients: {plugin: csv, path: contacts.csv, id_column: no}\n"
                   "normalize: {city_aliases: {on: '+79161234567'}}\n")
    result = project.hub("check")
    assert result.exit_code == 0, result.output
    from hub.config import load_config
    from hub.plugins import connector_classes

    config = load_config(project.root / "hub.yaml", connector_classes())
    assert config.options["clients"].id_column == "no"
    assert config.model.normalize.city_aliases == {"on": "+79161234567"}


def test_missing_config_file(project):
    result = project.hub("check")
    assert result.exit_code == 2
    assert "config file not found" in result.stderr
    assert "hub init" in result.stderr


def test_config_from_env_variable(project, tmp_path):
    _setup(project, "connectors:\n  clients: {plugin: csv, path: contacts.csv, id_column: id}\n")
    from click.testing import CliRunner

    from hub.cli import main

    result = CliRunner().invoke(main, ["check"], env={"HUB_CONFIG": str(project.root / "hub.yaml")})
    assert result.exit_code == 0, result.output


def test_relative_paths_resolve_against_the_config_folder(project, tmp_path, monkeypatch):
    _setup(project, "connectors:\n  clients: {plugin: csv, path: contacts.csv, id_column: id}\n")
    monkeypatch.chdir(tmp_path.parent)
    result = project.hub("sync")
    assert result.exit_code == 0, result.output
    assert (project.root / "hub.db").exists()


def test_schema_prints_json_schema(project):
    result = project.hub("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert {"store", "connectors", "identity", "merge", "guards"} <= set(schema["properties"])


def test_huge_config_is_refused(project):
    project.write("hub.yaml", "# " + "x" * (6 * 1024 * 1024) + "\n")
    stderr = _error(project.hub("check"))
    assert "too large" in stderr


def test_mapping_with_unknown_column_is_a_clear_error(project):
    _setup(project, "connectors:\n  clients: {plugin: csv, path: contacts.csv, id_column: id, mapping: m}\n")
    project.write("mappings/m.yaml", "fields:\n  email: {from: Почта, transforms: [email]}\n")
    stderr = _error(project.hub("check"))
    assert "mappings/m.yaml: fields.email:" in stderr
    assert "Почта" in stderr


def test_fingerprint_ignores_options_left_at_their_defaults(project):
    from hub.config import load_config
    from hub.plugins import connector_classes

    def fingerprint(options: str) -> str:
        project.config(f"connectors:\n  c: {{plugin: csv, path: c.csv, id_column: id{options}}}\n")
        return load_config(project.root / "hub.yaml", connector_classes()).fingerprint("c")

    plain = fingerprint("")
    assert fingerprint(", header_row: 1") == plain  # the default, written out
    assert fingerprint(", header_row: 2") != plain
    assert fingerprint(", delimiter: ';'") != plain
    # a later release adds an option with a default: stored records stay unchanged
    from hub_plugins.csv_file import CsvOptions

    class LaterCsvOptions(CsvOptions):
        events_column: str | None = None

    config = load_config(project.root / "hub.yaml", connector_classes())
    before = config.fingerprint("c")
    config.options["c"] = LaterCsvOptions(**config.options["c"].model_dump(exclude_defaults=True))
    assert config.fingerprint("c") == before
