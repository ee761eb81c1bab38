"""``hub init``: a small working setup a person can run at once and then edit."""

from __future__ import annotations

from pathlib import Path

from hub.errors import UsageError

HUB_YAML = """\
# hub configuration. Reference: `hub schema`; docs: README.md.
# Secrets: write $VAR or ${VAR}; a variable that is not set is an error.

# store: sqlite:///hub.db                  # default: hub.db next to this file
# store: postgresql+psycopg://hub@localhost/hub

connectors:
  clients:
    plugin: csv
    role: source
    path: contacts.csv
    id_column: id
    mapping: clients                      # mappings/clients.yaml

  merged:
    plugin: csv
    role: destination
    path: out/merged.csv

normalize:
  default_region: RU                      # phones written without +7 / +country

merge:
  default: most_recent                    # or source_priority, most_complete
  source_priority: [clients]
  fields:
    full_name: most_complete

guards:
  mass_delete_threshold: 5%
"""

MAPPING = """\
# Source columns -> canonical fields. Transforms: strip, lower, upper, title, phone, email,
# split_name, {date: DD.MM.YYYY}, {map: {...}}, {default: ...}, {replace: {...}}, {digits: true}.
# The id column is the connector's id_column in hub.yaml.
fields:
  full_name: {from: ФИО, transforms: [split_name]}
  phone: {from: Телефон, transforms: [phone]}
  email: {from: Email, transforms: [email]}
  city: Город
  birthday: {from: Дата рождения, transforms: [{date: DD.MM.YYYY}]}
"""

CONTACTS = """\
id,ФИО,Телефон,Email,Город,Дата рождения
1,Иванов Иван Иванович,8 (916) 123-45-67,ivan@example.ru,Мск,01.02.1990
2,Петрова Мария,+7 903 765 43 21,MARIA.P@EXAMPLE.RU,СПб,
3,Иван Иванов,89161234567,,Москва,
"""


def scaffold(folder: Path, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Write hub.yaml, the sample mapping and data: (written, kept).

    An existing hub.yaml is overwritten only with ``force``; an existing mapping or data
    file is the user's and is always kept."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "hub.yaml"
    if config.exists() and not force:
        raise UsageError(f"{config} already exists", hint="pass --force to overwrite it (an existing mapping "
                         "or data file is kept), or choose another folder")
    files = {
        config: HUB_YAML,
        folder / "mappings" / "clients.yaml": MAPPING,
        folder / "contacts.csv": CONTACTS,
    }
    written, kept = [], []
    for path, text in files.items():
        if path != config and path.exists():
            kept.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    (folder / "out").mkdir(exist_ok=True)
    return written, kept
