"""The canonical store: SQLite by default, PostgreSQL for teams."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import socket
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    ARRAY,
    Integer,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.sql.elements import ColumnElement

from hub.errors import FatalError, HubError, LockedError, UsageError
from hub.redact import redact

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("hub.store")


# what PostgreSQL answers a login it turns down (psycopg gives no SQLSTATE for these)
_LOGIN_REFUSED = re.compile(
    r"password authentication failed|role \"[^\"]*\" does not exist|database \"[^\"]*\" does not exist"
    r"|no pg_hba\.conf entry|fe_sendauth: no password supplied"
)


#: How long a statement waits for a lock another writer holds (SQLite's busy_timeout,
#: PostgreSQL's lock_timeout) before the run fails.
LOCK_WAIT_SECONDS = 10


class StoreUrlError(FatalError):
    """The store URL cannot be a store: a mistake in ``store:`` of hub.yaml (the CLI names
    the key)."""


class StoreAccessError(UsageError):
    """A SQLite store's file (or its lock file) cannot be opened or created where it is:
    the message names the file and why (a folder this user cannot write, a file it
    cannot read). The CLI names ``store:`` when hub.yaml sets it."""


class LockLostError(HubError):
    """PostgreSQL ended the database session that held the store's sync lock (a server
    restart, ``pg_terminate_backend``, an idle session timeout): another run may have
    taken the lock since, so this one writes nothing more."""


class Store:
    """Owns the engine, the schema version and the run lock."""

    def __init__(self, url: str):
        self.url = url
        #: PostgreSQL: the locks this process holds, by name: (advisory key, backend pid of its session)
        self._held: dict[str, tuple[int, int]] = {}
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreUrlError(f"store URL {redact(url)!r} is not a database URL",
                             hint="use sqlite:///hub.db or postgresql+psycopg://user@host/db") from None
        self.dialect = parsed.get_backend_name()
        self.sqlite_path = parsed.database if self.dialect == "sqlite" else None
        if self.sqlite_path and self.sqlite_path != ":memory:":
            folder = Path(self.sqlite_path).parent
            if not folder.exists():
                raise StoreUrlError(f"store folder {folder} does not exist", hint="create it or change `store:`")
        connect_args: dict[str, Any] = {}
        options = parsed.query.get("options", "")
        if self.dialect == "postgresql" and isinstance(options, str) and "lock_timeout" not in options:
            # as SQLite's busy_timeout: a statement waits this long at most for a lock another
            # session holds (a stuck transaction, a DDL), then the run fails and says so
            connect_args["options"] = f"{options} -c lock_timeout={LOCK_WAIT_SECONDS * 1000}".strip()
        try:
            self.engine: Engine = create_engine(parsed, future=True, pool_pre_ping=self.dialect != "sqlite",
                                                connect_args=connect_args)
        except (NoSuchModuleError, ImportError) as error:
            raise StoreUrlError(f"no database driver for {parsed.drivername}: {error}",
                             hint="pip install 'hub-contacts[postgres]' for PostgreSQL") from None
        if self.dialect == "sqlite":
            # pysqlite's own transaction handling breaks SAVEPOINT and transactional DDL;
            # take it over as SQLAlchemy's documentation recommends.
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)

    # --- schema -----------------------------------------------------------------
    def _alembic(self, connection: Connection) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = connection
        return cfg

    def migrate(self) -> None:
        """Bring the schema to the version of this code; refuse a newer store."""
        script = ScriptDirectory(str(MIGRATIONS))
        head = script.get_current_head()
        try:
            with self.engine.begin() as connection:
                if self.dialect == "postgresql":
                    # processes started at once on a new or older store: one migrates, the
                    # others wait here for its commit and find the schema up to date
                    connection.execute(text("SET LOCAL lock_timeout = 0"))  # a migration takes its time
                    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(b"hub:migrate")})
                current = MigrationContext.configure(connection).get_current_revision()
                if current == head:
                    return
                if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
                    raise FatalError(
                        f"the store is at schema version {current}, newer than this hub knows ({head})",
                        hint="upgrade hub (pip install -U hub-contacts) before using this store",
                    )
                command.upgrade(self._alembic(connection), "head")
        except OperationalError as error:
            if self.sqlite_path and self.sqlite_path != ":memory:":
                problem = _file_problem(Path(self.sqlite_path), "the store")
                if problem is not None:
                    raise StoreAccessError(*problem) from None
                raise FatalError(f"cannot open the store {self.sqlite_path}: {redact(str(error.orig))}",
                                 hint="check the file, its folder and its disk") from None
            reason = redact(str(error.orig))
            if _LOGIN_REFUSED.search(reason):  # the URL's user, password or database: exit 2
                raise StoreUrlError(f"the database server refused the store's login: {reason}",
                                    hint="check the user, password and database name in the store URL") from None
            raise FatalError(f"cannot open the store: {reason}",
                             hint="check `store:` in hub.yaml and that the database is reachable") from None

    def connect(self) -> Connection:
        return self.engine.connect()

    @contextlib.contextmanager
    def begin(self, read_only: bool = False, check_lock: bool = True) -> Iterator[Connection]:
        """A transaction that writes. On SQLite it takes the write lock at its start
        (``BEGIN IMMEDIATE``), waiting up to ``busy_timeout`` for another writer (``hub
        serve`` storing a form): a transaction that read first and wrote later would
        fail at once with "database is locked" if another writer committed in between.
        ``read_only``: a transaction that only reads (a snapshot), which takes no lock: it
        must not wait for a writer (a dry run's own open transaction).

        On PostgreSQL, while this process holds the sync lock, the transaction commits only
        if the lock's database session still holds it (``LockLostError`` otherwise): the
        server may have ended that session, and another run may have taken the lock.
        ``check_lock=False``: a run records its own end after it lost the lock."""
        with self._errors(), self.engine.connect() as connection:
            if not read_only:
                connection.execution_options(**{_IMMEDIATE: True})
            with connection.begin():
                yield connection
                if not read_only and check_lock:
                    self._check_sync_lock(connection)

    @contextlib.contextmanager
    def transactions(self) -> Iterator[Callable[..., contextlib.AbstractContextManager[Connection]]]:
        """Successive transactions on one connection: yields ``begin(write=True)``, which
        opens one as :meth:`begin` does (``write=False``: one that only reads, taking no
        lock). What lives on the connection (a temporary table) lasts across them, so a
        long piece of work can commit in parts and let other writers (``hub serve``
        storing a form) in between, instead of holding the store's write lock throughout."""
        with self._errors(), self.engine.connect() as connection:

            @contextlib.contextmanager
            def begin(write: bool = True) -> Iterator[Connection]:
                connection.execution_options(**{_IMMEDIATE: write})
                with self._errors(), connection.begin():
                    yield connection
                    if write:
                        self._check_sync_lock(connection)

            yield begin

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """A failure of the database as the ``FatalError`` saying what to check."""
        try:
            yield
        except OperationalError as error:
            if self.dialect == "postgresql" and "lock timeout" in str(error.orig):
                raise FatalError("store error: another database session held a lock on the store's tables "
                                 f"past the lock wait ({LOCK_WAIT_SECONDS} s unless the store URL sets lock_timeout)",
                                 hint="pg_stat_activity shows the session holding it; what was committed stays, "
                                 "the next run goes on from there") from None
            raise FatalError(f"store error: {redact(str(error.orig))}",
                             hint="check the store's disk (free space, permissions), server or lock; what "
                             "was committed stays, the next run goes on from there") from None

    # --- the run lock ---------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str = "sync") -> Iterator[None]:
        """Hold the store-wide lock of ``name`` or raise ``LockedError`` at once.

        SQLite: an OS file lock beside the database, released by the kernel when the
        process dies, so a killed run leaves no stale lock. PostgreSQL: a session
        advisory lock, released when the connection closes. A lock whose holder, by the
        pid and host it recorded, is no longer running is stale: on PostgreSQL its
        orphaned session is ended and the lock taken; on SQLite the message says which
        process keeps the lock file open."""
        if self.dialect == "sqlite":
            if not self.sqlite_path or self.sqlite_path == ":memory:":
                yield
                return
            import fcntl

            lock_path = f"{self.sqlite_path}.{name}.lock"
            try:
                handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
            except PermissionError as error:
                problem = _file_problem(Path(lock_path), "the lock file")
                if problem is None:
                    raise FatalError(f"cannot open the lock file {lock_path}: {error.strerror}") from None
                raise StoreAccessError(*problem) from None
            try:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.seek(0)
                    holder = _holder(handle.read())
                    raise LockedError(
                        f"another hub {name} is running on this store{_describe(holder)}",
                        hint="a process started by that run keeps the lock file open: stop it"
                        if _is_stale(holder) else "wait for it to finish; a killed run releases the lock by itself",
                    ) from None
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(_me()))
                handle.flush()
                yield
            finally:
                handle.close()
            return
        with self.engine.connect() as connection:
            # advisory locks are per database: the schema keeps stores in one database apart
            schema = connection.execute(text("SELECT current_schema()")).scalar()
            key = zlib.crc32(f"hub:{schema}:{name}".encode())
            got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            connection.commit()
            if not got and self._end_stale_holder(connection, name, key):
                got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                connection.commit()
            if not got:
                holder = self._pg_holder(connection, name)
                hint = "wait for it to finish; a killed run releases the lock by itself"
                if holder.get("backend") and holder.get("host") != socket.gethostname():
                    # a host that went down holds its session until the server's TCP keepalive ends it
                    hint += (f"; if {holder.get('host', 'its host')} is down, end its database session: "
                             f"SELECT pg_terminate_backend({int(holder['backend'])})")
                raise LockedError(f"another hub {name} is running on this store{_describe(holder)}", hint=hint)
            me = {**_me(), "backend": connection.execute(text("SELECT pg_backend_pid()")).scalar()}
            connection.commit()
            self._pg_record_holder(name, me)
            outer = self._held.get(name)
            self._held[name] = (key, me["backend"])
            try:
                yield
            finally:
                if outer is None:
                    self._held.pop(name, None)
                else:
                    self._held[name] = outer
                try:
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    connection.commit()
                except SQLAlchemyError:
                    pass

    def holds(self, name: str) -> bool:
        """Whether the lock ``name`` this process took is still held. On PostgreSQL the
        server may have ended the session holding it (a restart, ``pg_terminate_backend``,
        ``idle_session_timeout``); an OS file lock lasts as long as the process."""
        if self.dialect != "postgresql" or name not in self._held:
            return True
        with self.engine.connect() as connection:
            return self._session_holds(connection, *self._held[name])

    @staticmethod
    def _session_holds(connection: Connection, key: int, backend: int) -> bool:
        return bool(connection.execute(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 0 "
                 "AND objid::bigint = :k AND objsubid = 1 AND pid = :p"),
            {"k": key, "p": backend},
        ).scalar())

    def _check_sync_lock(self, connection: Connection) -> None:
        """Raise ``LockLostError`` if the session that took the sync lock no longer holds it."""
        if "sync" not in self._held or self.dialect != "postgresql":
            return
        key, backend = self._held["sync"]
        if not self._session_holds(connection, key, backend):
            raise LockLostError(
                f"the database server ended the session (backend {backend}) that held the store's sync lock; "
                "another run may have taken the lock, so this one stopped without writing more",
                hint="what was committed stays: run it again; if the server ends idle sessions "
                "(idle_session_timeout), turn that off for hub's database user",
            )

    def _pg_holder(self, connection: Connection, name: str) -> dict[str, Any]:
        with contextlib.suppress(SQLAlchemyError, ValueError):
            value = setting(connection, f"lock:{name}")
            connection.commit()
            return json.loads(value) if value else {}
        connection.rollback()
        return {}

    def _pg_record_holder(self, name: str, me: dict[str, Any]) -> None:
        with contextlib.suppress(SQLAlchemyError), self.engine.begin() as c:
            set_setting(c, f"lock:{name}", json.dumps(me))

    def _end_stale_holder(self, connection: Connection, name: str, key: int) -> bool:
        """End the session holding the lock if the hub process that took it is gone."""
        holder = self._pg_holder(connection, name)
        if not _is_stale(holder) or not holder.get("backend"):
            return False
        sessions = connection.execute(
            text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = :k"),
            {"k": key},
        ).scalars().all()
        connection.commit()
        if holder["backend"] not in sessions:
            return False
        log.warning("hub %s lock: its holder (%s) is no longer running; ending its database session %s",
                    name, _describe(holder).strip(" ()"), holder["backend"])
        connection.execute(text("SELECT pg_terminate_backend(:p)"), {"p": holder["backend"]})
        connection.commit()
        for _ in range(50):  # the session ends asynchronously
            left = connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = :k"),
                {"k": key},
            ).scalar()
            connection.commit()
            if not left:
                break
            time.sleep(0.1)
        return True

    def dispose(self) -> None:
        self.engine.dispose()


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def _holder(text_: str) -> dict[str, Any]:
    try:
        value = json.loads(text_)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _is_stale(holder: dict[str, Any]) -> bool:
    """The holder recorded a process on this host that is no longer running."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _describe(holder: dict[str, Any]) -> str:
    if not holder.get("pid"):
        return ""
    stale = ", no longer running" if _is_stale(holder) else ""
    return f" (pid {holder['pid']} on {holder.get('host', '?')} since {holder.get('since', '?')}{stale})"


_IMMEDIATE = "hub_write_transaction"


def _sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(_IMMEDIATE)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={LOCK_WAIT_SECONDS * 1000}")
    # 64 MB of page cache (default 2 MB): the identifier and record indexes take random
    # inserts, and a small cache turns a large sync into disk-bound work
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _file_problem(path: Path, what: str) -> tuple[str, str] | None:
    """Why this user cannot open or create the file ``what`` at ``path`` (SQLite says only
    "unable to open database file"): the message and the fix; None when it may."""
    folder = path.parent
    writable = os.access(folder, os.W_OK | os.X_OK)
    if path.is_dir():
        return f"cannot open {what} {path}: it is a folder", "remove or rename the folder"
    if not path.exists():
        if writable:
            return None
        return (f"cannot create {what} {path}: the folder {folder} is not writable by this user",
                f"make {folder} writable for this user, or run hub as a user who can write there")
    if not os.access(path, os.R_OK | os.W_OK):
        return (f"cannot open {what} {path}: the file is not readable and writable by this user",
                f"give this user read and write access to {path}")
    if not writable:
        return (f"cannot open {what} {path}: the folder {folder} is not writable by this user (SQLite "
                f"writes {path.name}-wal and {path.name}-shm beside it, also to read it)",
                f"make {folder} writable for this user, or run hub as a user who can write there")
    return None


def open_store(url: str) -> Store:
    store = Store(url)
    store.migrate()
    return store


def setting(c: Connection, name: str) -> str | None:
    """A value of ``store_settings`` (the store's own state: versions, watermarks)."""
    from hub.store.schema import store_settings

    return c.execute(select(store_settings.c.value).where(store_settings.c.name == name)).scalar()


def set_setting(c: Connection, name: str, value: str | None) -> None:
    """Set (``None``: remove) a value of ``store_settings``."""
    from hub.store.schema import store_settings

    c.execute(delete(store_settings).where(store_settings.c.name == name))
    if value is not None:
        c.execute(insert(store_settings).values(name=name, value=value))


def bulk_insert(c: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """``INSERT`` many rows with one ``executemany``, converting values once per column
    type instead of through SQLAlchemy's per-row parameter processing (a sync's hot path).
    Every row has the keys of the first."""
    if not rows:
        return
    columns = list(rows[0])
    marker = _marker(c)
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"
    c.exec_driver_sql(sql, _parameters(c, table, columns, rows))


def bulk_update(c: Connection, table: Table, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """``UPDATE`` many rows matched on ``keys``; the other keys of the first row are set."""
    if not rows:
        return
    columns = [name for name in rows[0] if name not in keys]
    marker = _marker(c)
    sql = (
        f"UPDATE {table.name} SET {', '.join(f'{n} = {marker}' for n in columns)} "
        f"WHERE {' AND '.join(f'{n} = {marker}' for n in keys)}"
    )
    c.exec_driver_sql(sql, _parameters(c, table, columns + list(keys), rows))


def _marker(c: Connection) -> str:
    return "?" if c.dialect.paramstyle == "qmark" else "%s"


def _parameters(c: Connection, table: Table, columns: list[str], rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Positional parameters of ``rows``: values of typed columns (timestamps) converted
    by the dialect, the rest passed as they are."""
    get = itemgetter(*columns)
    data = [get(row) for row in rows] if len(columns) > 1 else [(get(row),) for row in rows]
    converters = []
    for position, name in enumerate(columns):
        processor = table.c[name].type.dialect_impl(c.dialect).bind_processor(c.dialect)
        if processor is not None:
            converters.append((position, _remember_last(processor)))
    if not converters:
        return data
    out = []
    for t in data:  # each row copied once, however many typed columns it has
        values = list(t)
        for position, convert in converters:
            values[position] = convert(values[position])
        out.append(tuple(values))
    return out


def among(c: Connection, column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN (values)`` with the list as one parameter (a JSON array on SQLite, an
    array on PostgreSQL): a long IN list of separate parameters costs more to build than
    the query costs to run."""
    if c.dialect.name == "postgresql":
        element = Integer() if isinstance(column.type, Integer) else Text()
        return column == any_(bindparam(None, list(values), type_=ARRAY(element)))
    listed = select(literal_column("value")).select_from(func.json_each(bindparam(None, json.dumps(list(values)))))
    return column.in_(listed.scalar_subquery())


def live_records(c: Connection, contact_ids: Sequence[int], *columns: Any, chunk: int = 500) -> Iterator[Any]:
    """The records of these contacts that came from a tool and are still there (what a
    contact is derived from): rows of ``contact_id`` and ``columns``, ``chunk`` contacts a query."""
    from hub.store.schema import source_records

    ids = list(contact_ids)
    for start in range(0, len(ids), chunk):
        yield from c.execute(
            select(source_records.c.contact_id, *columns).where(
                and_(
                    among(c, source_records.c.contact_id, ids[start : start + chunk]),
                    source_records.c.removed_at.is_(None),
                    source_records.c.origin == "read",
                )
            )
        )


def allocate_ids(c: Connection, table: Table, count: int) -> list[int]:
    """``count`` new primary keys of ``table``, for a bulk insert without RETURNING.

    Called under the run lock inside the writing transaction; on PostgreSQL the ids
    come from the table's sequence, so other writers never collide with them."""
    if c.dialect.name == "postgresql":
        rows = c.execute(
            text(f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, :n)"),
            {"n": count},
        )
        return [row[0] for row in rows]
    start = c.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {table.name}")).scalar() or 0
    return list(range(start + 1, start + 1 + count))


def _remember_last(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    last: list[Any] = [object(), None]

    def convert(value: Any) -> Any:
        if value is None:
            return None
        if value is not last[0]:
            last[0], last[1] = value, processor(value)
        return last[1]

    return convert
