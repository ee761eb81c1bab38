"""Strict YAML loading for configuration files (hub.yaml, mappings).

YAML 1.1 as PyYAML implements it turns many innocent values into something
else: ``no`` and ``on`` become booleans, ``2024-01-02`` a date, ``+79161234567``
and ``0123`` integers, and ``1:30`` a number of seconds. The loader here keeps
all of those as strings. It also refuses what a person almost never means and
an attacker might: duplicate keys, anchors and aliases (the "billion laughs"
expansion), tabs in indentation and very large files.

Plain values resolve as follows:

* ``true`` / ``false`` (any case) -> bool; ``yes``, ``no``, ``on``, ``off`` stay strings
* ``null``, ``~`` or nothing -> None
* plain decimal integers without a leading ``+`` or ``0`` (``89161234567``, ``-5``) -> int
* plain decimals such as ``1.5`` or ``2e3`` -> float
* everything else, dates and times included -> str
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import MappingNode, ScalarNode

from hub.errors import ConfigError

#: Files larger than this are refused before parsing.
MAX_YAML_BYTES = 5 * 1024 * 1024

_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT_RE = re.compile(r"^-?(?:0|[1-9][0-9]*)$")
_FLOAT_RE = re.compile(
    r"^-?(?:(?:0|[1-9][0-9]*)\.[0-9]*(?:[eE][-+]?[0-9]+)?"
    r"|(?:0|[1-9][0-9]*)[eE][-+]?[0-9]+"
    r"|\.[0-9]+(?:[eE][-+]?[0-9]+)?)$"
)
_TAB_INDENT_RE = re.compile(r"^[ ]*\t", re.MULTILINE)


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys, anchors and aliases, and keeps
    most plain scalars as strings (see the module docstring)."""

    # Implicit typing limited to bool (true/false), null, int and float; filled below.
    yaml_implicit_resolvers: dict = {}

    def __init__(self, stream, file_name: str = "<yaml>"):
        super().__init__(stream)
        self.file_name = file_name

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent) or (isinstance(event, NodeEvent) and event.anchor is not None):
            kind = "alias" if isinstance(event, AliasEvent) else "anchor"
            raise ConfigError(
                self.file_name,
                "",
                f"line {event.start_mark.line + 1}: YAML {kind} '{event.anchor}' is not allowed",
                hint="write the values out in full instead of using &anchors and *aliases",
            )
        return super().compose_node(parent, index)

    def flatten_mapping(self, node: MappingNode) -> None:  # no "<<" merge keys
        return None

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen: dict[tuple[type, object], int] = {}
            for key_node, _value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise ConfigError(
                        self.file_name,
                        "",
                        f"line {key_node.start_mark.line + 1}: a mapping key must be a plain value",
                    )
                key = self.construct_object(key_node, deep=True)
                marker = (type(key), key)
                line = key_node.start_mark.line + 1
                if marker in seen:
                    raise ConfigError(
                        self.file_name,
                        "",
                        f"line {line}: duplicate key {key!r} (first defined on line {seen[marker]})",
                        hint="each key may appear once; remove or merge one of them",
                    )
                seen[marker] = line
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_RE, list("tTfF"))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL_RE, ["~", "n", "N", ""])
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_RE, list("-0123456789"))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-.0123456789"))


def load_yaml(path: Path) -> object:
    """Read and parse one YAML document from ``path`` with the strict rules above.

    Raises ``ConfigError(str(path), "", message, hint)`` for every problem.
    """
    name = str(path)
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ConfigError(name, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(name, "", f"cannot read the file: {exc.strerror or exc}") from None
    if size > MAX_YAML_BYTES:
        raise ConfigError(
            name,
            "",
            f"file is too large ({size} bytes; the limit is {MAX_YAML_BYTES} bytes)",
            hint="a configuration file should be small; is this the right file?",
        )
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(name, "", f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > MAX_YAML_BYTES:
        raise ConfigError(name, "", f"file is too large (the limit is {MAX_YAML_BYTES} bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            name, "", f"not valid UTF-8 (byte {exc.start})", hint="save the file as UTF-8"
        ) from None
    return loads_yaml(text, name)


def loads_yaml(text: str, file_name: str = "<yaml>") -> object:
    """Parse YAML ``text`` with the strict rules; ``file_name`` is used in errors."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(file_name, "", f"document is too large (the limit is {MAX_YAML_BYTES} characters)")
    match = _TAB_INDENT_RE.search(text)
    if match:
        line = text.count("\n", 0, match.start()) + 1
        raise ConfigError(
            file_name,
            "",
            f"line {line}: tab character in indentation",
            hint="YAML indentation must use spaces, not tabs",
        )
    loader = StrictLoader(text, file_name)
    try:
        return loader.get_single_data()
    except ConfigError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(file_name, "", f"{where}{problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(file_name, "", f"invalid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(file_name, "", "the document is nested too deeply") from None
    finally:
        loader.dispose()
