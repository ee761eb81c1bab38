"""The conformance suite: what every connector promises the core.

A connector's test module subclasses ``ConnectorConformance`` (the class name
must start with ``Test`` so pytest collects it) and implements the hooks::

    class TestCsvConformance(ConnectorConformance):
        def make_connector(self, tmp_path):
            path = tmp_path / "contacts.csv"
            write_seed_file(path, self.seed_records())
            return CsvConnector(CsvOptions(path=str(path)), context(tmp_path))

        def change_record(self, connector):
            ...  # edit one record in the tool, return (external_id, new values)

        def break_tool(self, connector, mode):
            ...  # e.g. delete the file, or make the fake server answer 500

The tool is whatever the connector talks to: a file in ``tmp_path`` or a fake
server from ``tests/fakes``. A connector that needs a server starts it in an
autouse fixture of its subclass (pytest makes a new instance of the class per
test, so the fixture may keep it on ``self``), or overrides the ``connector``
fixture with one that depends on its own fixtures.

Records are compared through ``comparable`` so that a tool which stores values
differently (numbers, trimmed text) can say what "equal" means for it. Write
tests are skipped for connectors without the ``write`` capability, read tests
for connectors without ``read``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pluggy
import pytest

from hub import hookspecs
from hub.connector import READ, WRITE, Connector, ConnectorOptions
from hub.errors import FatalError, HubError, RetriableError
from hub.model import Checkpoint, OutboundItem, RawRecord, WriteResult

KNOWN_CAPABILITIES = frozenset({"read", "write", "events", "webhook"})


def read_all(connector: Connector, cursor: str | None) -> tuple[list[RawRecord], Checkpoint]:
    """Run one read to the end, checking the shape of what it yields; return the
    records and the last checkpoint."""
    items = list(connector.read(cursor))
    assert items, "a read must yield at least a Checkpoint"
    for item in items:
        assert isinstance(item, (RawRecord, Checkpoint)), f"read yielded {type(item).__name__}, not a record"
    last = items[-1]
    assert isinstance(last, Checkpoint), "every read must end with a Checkpoint covering its records"
    records = [item for item in items if isinstance(item, RawRecord)]
    for record in records:
        assert isinstance(record.external_id, str), f"external_id must be a str, got {record.external_id!r}"
        assert isinstance(record.values, dict)
    for checkpoint in items:
        if isinstance(checkpoint, Checkpoint):
            assert checkpoint.cursor is None or isinstance(checkpoint.cursor, str)
    return records, last


def by_external_id(records: Iterable[RawRecord]) -> dict[str, RawRecord]:
    found: dict[str, RawRecord] = {}
    for record in records:
        assert record.external_id not in found, f"external id {record.external_id!r} read twice in one read"
        found[record.external_id] = record
    return found


def contains(values: dict[str, Any], expected: dict[str, Any]) -> bool:
    return all(key in values and values[key] == value for key, value in expected.items())


class ConnectorConformance:
    """Base class of a connector's conformance tests. Implement the hooks below."""

    #: A full read (cursor ``None``) of the seeded tool ends with ``complete=True``.
    full_read_is_complete: ClassVar[bool] = True
    #: A resumed read may yield again records at the cursor's boundary (time-based
    #: cursors with inclusive bounds); they must be records read before.
    resume_may_repeat: ClassVar[bool] = False
    #: The tool can remove a record on ``op="delete"``.
    supports_delete: ClassVar[bool] = True
    #: Ways ``break_tool`` knows to break the tool; each is one test case.
    break_modes: ClassVar[tuple[str, ...]] = ("default",)

    # ------------------------------------------------------------------ hooks

    def make_connector(self, tmp_path: Path) -> Connector:
        """A connector pointed at a tool seeded with ``seed_records()``."""
        raise NotImplementedError

    def seed_records(self) -> list[dict[str, Any]]:
        """The records the tool holds at the start, as their values should read back
        (a subset of the columns read is enough)."""
        return [
            {"id": "1", "full_name": "Иванов Иван Иванович", "phone": "+79161234567",
             "email": "ivan@example.ru", "city": "Москва"},
            {"id": "2", "full_name": "Петрова Анна", "phone": "8 (916) 765-43-21",
             "email": "anna@example.com", "city": "Санкт-Петербург"},
            {"id": "3", "full_name": "Alexander Smith", "phone": "",
             "email": "alex@example.org", "city": "Казань"},
        ]

    def change_record(self, connector: Connector) -> tuple[str, dict[str, Any]]:
        """Change one seeded record in the tool (not through ``connector``); return its
        external id and the values it now has."""
        raise NotImplementedError

    def break_tool(self, connector: Connector, mode: str) -> None:
        """Break the tool the way ``mode`` names (missing file, server 500, bad auth...)."""
        raise NotImplementedError

    def outbound_items(self) -> list[OutboundItem]:
        """Items a write test sends: new contacts, including values a spreadsheet
        would run as formulas, which must come back as the same text."""
        return [
            OutboundItem(101, "upsert", {"full_name": "Сидоров Пётр", "phone": "+79031112233",
                                         "email": "petr@example.ru", "city": "Тверь"}),
            OutboundItem(102, "upsert", {"full_name": "=HYPERLINK(\"http://example.com\",\"x\")",
                                         "phone": "+79035556677", "email": "@mention", "city": "-Тула"}),
        ]

    def comparable(self, values: dict[str, Any]) -> dict[str, Any]:
        """Values as this connector's tool gives them back; identity by default."""
        return dict(values)

    def tool_state(self, connector: Connector) -> Any:
        """Everything observable in the tool; by default what a full read gives."""
        records, _ = read_all(connector, None)
        return sorted((record.external_id, sorted(map(repr, record.values.items()))) for record in records)

    # ------------------------------------------------------------------ fixtures

    @pytest.fixture
    def connector(self, tmp_path: Path) -> Iterator[Connector]:
        connector = self.make_connector(tmp_path)
        try:
            yield connector
        finally:
            connector.close()

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "break_mode" in metafunc.fixturenames:
            metafunc.parametrize("break_mode", self.break_modes)

    def _require(self, connector: Connector, capability: str) -> None:
        if capability not in connector.capabilities:
            pytest.skip(f"{type(connector).__name__} has no {capability!r} capability")

    def _seed_matches(self, records: list[RawRecord]) -> None:
        seeds = self.seed_records()
        assert len(records) == len(seeds), f"read {len(records)} records, the tool holds {len(seeds)}"
        unmatched = [record for record in records]
        for seed in seeds:
            expected = self.comparable(seed)
            match = next((r for r in unmatched if contains(self.comparable(r.values), expected)), None)
            assert match is not None, f"no record read has {expected}; read: {[r.values for r in records]}"
            unmatched.remove(match)

    # ------------------------------------------------------------------ the contract

    def test_class_declares_the_contract(self, connector: Connector) -> None:
        cls = type(connector)
        assert isinstance(cls.plugin, str) and cls.plugin, "set the class attribute 'plugin'"
        assert issubclass(cls.Options, ConnectorOptions)
        assert cls.Options.model_config.get("extra") == "forbid", "options must reject unknown keys"
        assert cls.capabilities and cls.capabilities <= KNOWN_CAPABILITIES
        assert cls.description, "set a one-line 'description' for `hub plugins`"
        if READ in cls.capabilities:
            assert cls.read is not Connector.read, "declares 'read' but does not implement read()"
        if WRITE in cls.capabilities:
            assert cls.write is not Connector.write, "declares 'write' but does not implement write()"
        assert cls.write_batch_size is None or cls.write_batch_size > 0

    def test_module_registers_the_class_through_the_hook(self, connector: Connector) -> None:
        cls = type(connector)
        manager = pluggy.PluginManager("hub")
        manager.add_hookspecs(hookspecs)
        manager.register(sys.modules[cls.__module__])
        manager.check_pending()
        registered: list[type[Connector]] = []
        manager.hook.hub_connectors(register=registered.append)
        assert cls in registered

    def test_columns_are_unique_names(self, connector: Connector) -> None:
        columns = connector.columns()
        if columns is not None:
            assert all(isinstance(column, str) and column for column in columns)
            assert len(set(columns)) == len(columns)

    # reading

    def test_read_is_lazy(self, connector: Connector) -> None:
        self._require(connector, READ)
        result = connector.read(None)
        assert isinstance(result, Iterator), "read() must yield records as it goes, not build a list"
        if inspect.isgenerator(result):
            result.close()

    def test_read_yields_the_seeded_records_and_ends_with_a_checkpoint(self, connector: Connector) -> None:
        self._require(connector, READ)
        records, checkpoint = read_all(connector, None)
        by_external_id(records)
        self._seed_matches(records)
        if self.full_read_is_complete:
            assert checkpoint.complete, "a full read of everything the tool holds is a complete checkpoint"

    def test_reading_twice_gives_the_same_records(self, connector: Connector) -> None:
        self._require(connector, READ)
        first, _ = read_all(connector, None)
        second, _ = read_all(connector, None)
        assert {k: r.values for k, r in by_external_id(first).items()} == {
            k: r.values for k, r in by_external_id(second).items()
        }

    def test_cursor_resumes_where_the_read_stopped(self, connector: Connector) -> None:
        self._require(connector, READ)
        records, checkpoint = read_all(connector, None)
        again, last = read_all(connector, checkpoint.cursor)
        if last.complete:  # what a complete read leaves out is gone from the tool
            missing = set(by_external_id(records)) - set(by_external_id(again))
            assert not missing, f"nothing changed, yet a complete read from the cursor leaves out {sorted(missing)[:5]}"
        if self.resume_may_repeat:
            before = by_external_id(records)
            for record in again:
                assert record.external_id in before and record.values == before[record.external_id].values
        else:
            assert again == [], "nothing changed in the tool, so a resumed read yields no records"

    def test_a_change_in_the_tool_is_read_from_the_old_cursor(self, connector: Connector) -> None:
        self._require(connector, READ)
        _, checkpoint = read_all(connector, None)
        external_id, values = self.change_record(connector)
        records, _ = read_all(connector, checkpoint.cursor)
        changed = by_external_id(records)
        assert external_id in changed, f"the changed record {external_id!r} was not read"
        assert contains(self.comparable(changed[external_id].values), self.comparable(values))

    # writing

    def test_write_returns_one_result_per_item(self, connector: Connector) -> None:
        self._require(connector, WRITE)
        items = self.outbound_items()
        results = connector.write(items)
        assert [type(result) for result in results] == [WriteResult] * len(items)
        assert [result.contact_id for result in results] == [item.contact_id for item in items]
        for result in results:
            assert result.status == "ok", f"contact {result.contact_id}: {result.status} {result.error}"
            assert isinstance(result.external_id, str) and result.external_id

    def test_write_then_read_round_trips_values(self, connector: Connector) -> None:
        self._require(connector, WRITE)
        self._require(connector, READ)
        items = self.outbound_items()
        results = connector.write(items)
        records = by_external_id(read_all(connector, None)[0])
        for item, result in zip(items, results, strict=True):
            assert result.external_id in records, f"contact {item.contact_id} not read back"
            assert contains(self.comparable(records[result.external_id].values), self.comparable(item.values))

    def test_write_is_idempotent(self, connector: Connector) -> None:
        self._require(connector, WRITE)
        items = self.outbound_items()
        first = connector.write(items)
        state = self.tool_state(connector)
        second = connector.write(items)
        assert self.tool_state(connector) == state, "writing the same items again changed the tool"
        assert [r.external_id for r in second] == [r.external_id for r in first]

    def test_a_write_is_seen_by_a_read_from_the_old_cursor(self, connector: Connector) -> None:
        self._require(connector, WRITE)
        self._require(connector, READ)
        _, checkpoint = read_all(connector, None)
        results = connector.write(self.outbound_items())
        records = by_external_id(read_all(connector, checkpoint.cursor)[0])
        assert {result.external_id for result in results} <= set(records)

    def test_delete_removes_the_record_and_can_be_repeated(self, connector: Connector) -> None:
        self._require(connector, WRITE)
        if not self.supports_delete:
            pytest.skip("the tool does not delete records")
        items = self.outbound_items()
        results = connector.write(items)
        gone = items[0]
        delete = OutboundItem(gone.contact_id, "delete", {}, external_id=results[0].external_id)
        for _ in range(2):
            (result,) = connector.write([delete])
            assert result.status == "ok"
        if READ in connector.capabilities:
            records = by_external_id(read_all(connector, None)[0])
            assert results[0].external_id not in records
            assert all(result.external_id in records for result in results[1:])

    # failures

    def test_a_broken_tool_raises_a_hub_error(self, connector: Connector, break_mode: str) -> None:
        self.break_tool(connector, break_mode)
        if READ in connector.capabilities:
            with pytest.raises((RetriableError, FatalError)) as raised:
                list(connector.read(None))
            assert raised.value.message.strip()
        if WRITE in connector.capabilities:
            try:
                results = connector.write(self.outbound_items())
            except (RetriableError, FatalError) as error:
                assert error.message.strip()
            except HubError as error:  # pragma: no cover - a failure message with the class
                pytest.fail(f"write raised {type(error).__name__}, not RetriableError or FatalError")
            else:
                assert len(results) == len(self.outbound_items())
