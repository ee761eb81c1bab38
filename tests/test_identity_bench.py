"""The identity benchmark's own parts: the generator's files and truth, and the pairwise metric."""

from __future__ import annotations

import csv
import json
import logging
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hub_plugins.csv_file import CsvConnector, CsvOptions

from hub.cli import main
from hub.connector import ConnectorContext
from hub.model import RawRecord

BENCH = Path(__file__).resolve().parent.parent / "bench" / "identity"
sys.path.insert(0, str(BENCH))

import generate
import generate_ru2
import run


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("identity")
    info = run.prepare_ru(folder, persons=200, seed=7, holdback=5)
    return folder, info["summary"]


@pytest.fixture(scope="module")
def generated_ru2(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("identity-ru2")
    info = run.prepare_ru2(folder, persons=200, seed=7)
    return folder, info["summary"]


def _source_ids(folder: Path, source: dict) -> list[str]:
    with open(folder / source["path"], encoding=source["encoding"], newline="") as fh:
        return [row[source["id_column"]].strip() for row in csv.DictReader(fh, delimiter=source["delimiter"])]


def test_truth_covers_every_row_of_the_four_files(generated):
    folder, summary = generated
    truth = run.read_truth(folder / "truth.csv")
    rows_seen = Counter()
    for source in run.RU_SOURCES:
        with open(folder / source["path"], encoding=source["encoding"], newline="") as fh:
            ids = [row[source["id_column"]].strip() for row in csv.DictReader(fh, delimiter=source["delimiter"])]
        assert len(ids) == len(set(ids)), f"{source['name']}: record ids repeat"
        assert {key for key in truth if key[0] == source["name"]} == {(source["name"], rid) for rid in ids}
        rows_seen[source["name"]] = len(ids)
    assert sum(rows_seen.values()) == len(truth) == summary["records_total"]
    assert all(rows_seen[s] > 0 for s in generate.SOURCES)
    # the held-back submissions are new ids of known or new persons, ready to append
    new = run.read_truth(folder / "truth-new.csv")
    assert len(new) == 5 and not set(new) & set(truth)
    with open(folder / "forms-new.csv", encoding="utf-8", newline="") as fh:
        assert [row[0] for row in csv.reader(fh)] == [rid for _source, rid in new]


def test_ru2_truth_covers_every_row_of_the_four_files(generated_ru2):
    folder, summary = generated_ru2
    truth = run.read_truth(folder / "truth.csv")
    for source in run.RU2_SOURCES:
        ids = _source_ids(folder, source)
        assert ids and len(ids) == len(set(ids)), f"{source['name']}: record ids repeat"
        assert {key for key in truth if key[0] == source["name"]} == {(source["name"], rid) for rid in ids}
        assert len(ids) == summary["records"][source["name"]]
    assert len(truth) == summary["records_total"]


@pytest.mark.parametrize("dataset", ["generated", "generated_ru2"])
def test_hub_check_accepts_the_config_and_the_csv_connector_reads_every_row(dataset, request):
    folder, _summary = request.getfixturevalue(dataset)
    result = CliRunner().invoke(main, ["-c", str(folder / "hub.yaml"), "check"])
    assert result.exit_code == 0, result.output
    truth = run.read_truth(folder / "truth.csv")
    config = yaml.safe_load((folder / "hub.yaml").read_text(encoding="utf-8"))
    for name, entry in config["connectors"].items():
        options = CsvOptions(path=entry["path"], id_column=entry["id_column"])
        connector = CsvConnector(options, ConnectorContext(name, folder, logging.getLogger("test")))
        records = [item for item in connector.read(None) if isinstance(item, RawRecord)]
        assert [r.error for r in records if r.error] == []
        assert {(name, r.external_id) for r in records} == {key for key in truth if key[0] == name}


@pytest.mark.parametrize("dataset", ["generated", "generated_ru2"])
def test_without_mappings_every_column_a_mapping_reads_is_recognised_by_its_header(dataset, request):
    """A user who writes no mapping gets the same fields: an SMS list's «Номер» was not
    read as its phone, and its records kept only a first name."""
    from hub.mapping import DEFAULT_COLUMNS, Mapping

    folder, _summary = request.getfixturevalue(dataset)
    config = yaml.safe_load((folder / "hub.yaml").read_text(encoding="utf-8"))
    for name, entry in config["connectors"].items():
        fields = yaml.safe_load((folder / "mappings" / f"{entry['mapping']}.yaml").read_text(encoding="utf-8"))
        columns = {target: rule["from"] if isinstance(rule, dict) else rule
                   for target, rule in fields["fields"].items() if target in DEFAULT_COLUMNS}  # who is who
        options = CsvOptions(path=entry["path"], id_column=entry["id_column"])
        header = CsvConnector(options, ConnectorContext(name, folder, logging.getLogger("test"))).columns()
        read = Mapping.identity().read_as(header)
        assert {target: read.get(target) for target in columns} == columns, (name, header)


def test_generator_is_seeded(tmp_path):
    one = generate.generate(tmp_path / "a", persons=60, seed=3)
    two = generate.generate(tmp_path / "b", persons=60, seed=3)
    assert one == two
    for source in generate.SOURCES:
        assert (tmp_path / "a" / f"{source}.csv").read_bytes() == (tmp_path / "b" / f"{source}.csv").read_bytes()


def test_ru2_generator_is_seeded(tmp_path):
    one = generate_ru2.generate(tmp_path / "a", persons=60, seed=3)
    two = generate_ru2.generate(tmp_path / "b", persons=60, seed=3)
    generate_ru2.generate(tmp_path / "c", persons=60, seed=4)
    assert one == two
    for name in (*generate_ru2.SOURCES, "truth"):
        assert (tmp_path / "a" / f"{name}.csv").read_bytes() == (tmp_path / "b" / f"{name}.csv").read_bytes()
    assert (tmp_path / "a" / "sheet.csv").read_bytes() != (tmp_path / "c" / "sheet.csv").read_bytes()


def test_ru2_generator_does_not_use_hub():
    """ru2 is there to measure hub on names it was not built around: its generator must not
    read hub's name tables."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import generate_ru2; "
            "print(sorted(m for m in sys.modules if m == 'hub' or m.startswith(('hub.', 'hub_plugins'))))")
    done = subprocess.run([sys.executable, "-c", code, str(BENCH)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("dataset", ["generated", "generated_ru2"])
def test_peers_read_every_record_with_its_identifiers(dataset, request):
    """The table Splink and recordlinkage get has a row per record, an address for every
    mailing row and a phone for every SMS row, and names split into first and last."""
    folder, _summary = request.getfixturevalue(dataset)
    records = run.ru_records(folder)
    truth = run.read_truth(folder / "truth.csv")
    assert sorted((r["source"], r["external_id"]) for r in records) == sorted(truth)
    assert all("@" in (r["email"] or "") for r in records if r["source"] == "mailing")
    assert all(re.fullmatch(r"\d{10}", r["phone"] or "") for r in records if r["source"] == "sms")
    sheet = [r for r in records if r["source"] == "sheet"]
    assert sum(r["last_name"] is not None for r in sheet) > 0.9 * len(sheet)
    assert sum(r["first_name"] is not None for r in sheet) > 0.8 * len(sheet)
    assert any(r["city"] for r in records) and any(r["birthday"] for r in records)


def test_pairwise_scores_on_a_hand_made_example():
    # true clusters: {a, b, c} and {d, e}; f alone -> 3 + 1 = 4 true pairs
    truth = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2, "f": 3}
    # predicted: {a, b} right, {c, d} wrong, e and f alone -> 2 pairs predicted, 1 correct
    predicted = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"}  # f missing: a cluster of its own
    scores = run.pairwise_scores(truth, predicted)
    assert scores["true_pairs"] == 4
    assert scores["predicted_pairs"] == 2
    assert scores["correct_pairs"] == 1
    assert scores["precision"] == pytest.approx(0.5)
    assert scores["recall"] == pytest.approx(0.25)
    assert scores["f1"] == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert scores["predicted_clusters"] == 4


def test_pairwise_scores_edge_cases():
    truth = {"a": 1, "b": 1, "c": 2}
    everything_apart = run.pairwise_scores(truth, {})
    assert everything_apart["precision"] is None and everything_apart["recall"] == 0 and everything_apart["f1"] == 0
    perfect = run.pairwise_scores(truth, {"a": 9, "b": 9, "c": 8})
    assert perfect["precision"] == perfect["recall"] == perfect["f1"] == 1
    one_blob = run.pairwise_scores(truth, {"a": 0, "b": 0, "c": 0})
    assert one_blob["precision"] == pytest.approx(1 / 3) and one_blob["recall"] == 1


def test_union_find_clusters_closes_links_transitively():
    clusters = run.union_find_clusters(["a", "b", "c", "d"], [("a", "b"), ("b", "c")])
    assert clusters["a"] == clusters["b"] == clusters["c"] != clusters["d"]


def test_reachable_recall_links_only_through_shared_phone_address_or_full_name(tmp_path):
    """Four records of one person: the sheet row and an SMS row share a phone, a form
    row has the full name (short form, other order) and no phone, a second SMS row has
    only «Даша» and another number: 3 of the 6 true pairs are reachable. Another person's
    form on the same phone links nothing across people."""
    sources = [
        {"name": "sheet", "path": "sheet.csv", "encoding": "utf-8", "delimiter": ";", "id_column": "№",
         "columns": run.RU_COLUMNS["sheet"]},
        {"name": "sms", "path": "sms.csv", "encoding": "utf-8", "delimiter": ";", "id_column": "Телефон",
         "columns": run.RU_COLUMNS["sms"]},
        {"name": "forms", "path": "forms.csv", "encoding": "utf-8", "delimiter": ",", "id_column": "tranid",
         "columns": run.RU_COLUMNS["forms"]},
    ]
    (tmp_path / "dataset.json").write_text(json.dumps({"sources": sources}), encoding="utf-8")
    (tmp_path / "sheet.csv").write_text("№;ФИО;Телефон;E-mail\n1;Романова Дарья Михайловна;8 (968) 610-24-89;\n",
                                        encoding="utf-8")
    (tmp_path / "sms.csv").write_text("Телефон;Имя\n79686102489;Даша\n79161234567;Даша\n", encoding="utf-8")
    (tmp_path / "forms.csv").write_text("tranid,Имя,Телефон,Email\nf1,Даша Романова,,\nf2,Пётр,89686102489,\n",
                                        encoding="utf-8")
    truth = {("sheet", "1"): "p1", ("sms", "79686102489"): "p1", ("sms", "79161234567"): "p1",
             ("forms", "f1"): "p1", ("forms", "f2"): "p2"}
    reachable = run.ru_reachable(tmp_path, truth)
    assert (reachable["reachable_pairs"], reachable["true_pairs"]) == (3, 6)
    assert reachable["recall"] == pytest.approx(0.5)
    assert reachable["f1"] == pytest.approx(2 * 0.5 / 1.5)


def test_reachable_recall_reads_ru2_columns(tmp_path):
    """ru2 names its columns otherwise (Email Address, Номер): a mailing row on the sheet
    row's address and an SMS row on its number are reachable, a form with another
    number and only a first name is not: 3 of the 6 true pairs."""
    sources = [{"name": name, "path": f"{name}.csv", "encoding": "utf-8", "delimiter": ",",
                "id_column": generate_ru2.ID_COLUMNS[name], "columns": run.RU2_COLUMNS[name]}
               for name in generate_ru2.SOURCES]
    (tmp_path / "dataset.json").write_text(json.dumps({"sources": sources}), encoding="utf-8")
    (tmp_path / "sheet.csv").write_text("№,ФИО,Телефон,Email,Город,Дата рождения\n"
                                        "1,Лазарев Станислав Олегович,8 (916) 669-07-43,S.Lazarev@Mail.ru,,\n",
                                        encoding="utf-8")
    (tmp_path / "mailing.csv").write_text("LEID,Email Address,First Name,Last Name\nL7,s.lazarev@mail.ru,Stas,\n",
                                          encoding="utf-8")
    (tmp_path / "forms.csv").write_text("tranid,Имя,Телефон,Email,formname\nT13,Стас,+7 903 1112233,,Заявка\n",
                                        encoding="utf-8")
    (tmp_path / "sms.csv").write_text("id,Номер,Имя\nS1,79166690743,\n", encoding="utf-8")
    truth = {("sheet", "1"): "p1", ("mailing", "L7"): "p1", ("forms", "T13"): "p1", ("sms", "S1"): "p1"}
    reachable = run.ru_reachable(tmp_path, truth)
    assert (reachable["reachable_pairs"], reachable["true_pairs"]) == (3, 6)
