"""``hub serve``: the webhook receiver for site forms, and a health endpoint.

A small WSGI application served by waitress. ``POST /hooks/<connector>`` goes to the
webhook connector of that name in hub.yaml, which checks the sender and parses the
body; an accepted delivery is committed to the ``inbox`` table before the sender gets
its 200, and a delivery seen before is answered 200 without a second row (a signed
request is also remembered by its signature while a replay of it could pass the
signature check, so a replay under a new delivery header is a duplicate too). A
background worker then runs a sync of the webhook connectors, so inbox rows become
contacts and ``form`` events through the normal pipeline (``hub sync`` run by cron
picks them up as well). ``GET /healthz`` answers 200 while the store is reachable.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import and_, delete, insert, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hub.errors import HubError, LockedError
from hub.redact import redact
from hub.store import Store
from hub.store.schema import inbox
from hub.webhooks import WEBHOOK, Accepted, Probe, Rejected, WebhookRequest

log = logging.getLogger("hub.serve")

#: A connector's name as hub.yaml allows it: whatever else a path holds (a %0A) is never logged
_HOOK_PATH = re.compile(r"^/hooks/([A-Za-z0-9_-]+)/?$")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 415: "Unsupported Media Type", 503: "Service Unavailable"}
StartResponse = Callable[..., Any]


def webhook_connectors(config: Any) -> list[str]:
    """Names of the enabled connectors that receive webhooks."""
    return [name for name, entry in config.connectors.items()
            if WEBHOOK in config.classes[entry.plugin].capabilities and entry.reads]


class WebhookApp:
    """The WSGI application: routes, limits, the durable write, the answers."""

    def __init__(self, config: Any, store: Store, on_accepted: Callable[[str], None] | None = None):
        from hub.connector import ConnectorContext

        self.store = store
        self.on_accepted = on_accepted
        self.hooks: dict[str, Any] = {}
        for name in webhook_connectors(config):
            cls = config.classes[config.model.connectors[name].plugin]
            context = ConnectorContext(name=name, base_dir=config.base_dir, logger=log.getChild(name), store=store)
            self.hooks[name] = cls(config.options[name], context)

    @property
    def max_body(self) -> int:
        return max((hook.max_body for hook in self.hooks.values()), default=1_000_000)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            return self._health(start_response)
        match = _HOOK_PATH.match(path)
        if match is None:
            return _answer(start_response, 404, {"error": "not found"})
        name = match.group(1)
        hook = self.hooks.get(name)
        if hook is None:
            self._refuse(name, environ, 404, "no webhook connector of this name in hub.yaml")
            return _answer(start_response, 404, {"error": f"no webhook connector named {name!r}"})
        if method != "POST":
            return _answer(start_response, 405, {"error": "use POST"}, [("Allow", "POST")])
        body = _read_body(environ, hook.max_body)
        if body is None:
            self._refuse(name, environ, 413, f"body larger than {hook.max_body} bytes")
            return _answer(start_response, 413, {"error": f"the body is larger than {hook.max_body} bytes"})
        request = WebhookRequest(
            body=body,
            headers={key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                     if key.startswith("HTTP_")},
            query=dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
            **_content_type(environ.get("CONTENT_TYPE") or ""),
            remote_addr=environ.get("REMOTE_ADDR"),
        )
        answer = hook.receive(request)
        if isinstance(answer, Rejected):
            self._refuse(name, environ, answer.status, answer.reason)
            return _answer(start_response, answer.status, {"error": answer.reason})
        if isinstance(answer, Probe):
            log.info("webhook %s: test request answered", name)
            if answer.reply is not None:
                return _answer_text(start_response, answer.reply)
            return _answer(start_response, 200, {"ok": True, "test": True})
        assert isinstance(answer, Accepted)
        try:
            stored = self._store(name, answer, request)
        except SQLAlchemyError as error:
            log.error("webhook %s: cannot store the request: %s", name, redact(str(getattr(error, "orig", error))))
            return _answer(start_response, 503, {"error": "the store is unavailable; retry later"})
        if stored and self.on_accepted is not None:
            self.on_accepted(name)
        if answer.reply is not None:  # the sender's own word, also for a duplicate, or it sends again
            return _answer_text(start_response, answer.reply)
        return _answer(start_response, 200, {"ok": True, "duplicate": not stored})

    def _store(self, name: str, answer: Accepted, request: WebhookRequest) -> bool:
        """Commit the delivery; ``False`` when this connector already has it (its delivery id,
        or for a signed request, the same signed request under another id)."""
        now = dt.datetime.now(dt.timezone.utc)
        rows = [{
            "connector": name,
            "delivery_id": answer.delivery_id,
            "received_at": now,
            "content_type": request.media_type[:100] or None,
            "fields": json.dumps(answer.fields, ensure_ascii=False),
            "remote_addr": (request.remote_addr or "")[:64] or None,
        }]
        replays = replay_keys(name)
        if answer.replay_key is not None:
            # kept by the same unique key, in the same transaction as the delivery
            rows.append({"connector": replays, "delivery_id": answer.replay_key, "received_at": now,
                         "content_type": None, "fields": "{}", "remote_addr": None})
        try:
            with self.store.engine.connect() as c:
                raw = c.connection.driver_connection if c.dialect.name == "sqlite" else None
                if raw is not None:
                    # the sender is told "stored" only once the row would survive a power loss
                    raw.execute("PRAGMA synchronous=FULL")
                try:
                    with c.begin():
                        c.execute(insert(inbox), rows)
                        if answer.replay_key is not None:  # keys no replay can pass the signature check with
                            expired = now - dt.timedelta(seconds=answer.replay_ttl)
                            c.execute(delete(inbox).where(
                                and_(inbox.c.connector == replays, inbox.c.received_at < expired)))
                finally:
                    if raw is not None:
                        raw.execute("PRAGMA synchronous=NORMAL")
        except IntegrityError:
            log.info("webhook %s: delivery %s seen before", name, answer.delivery_id)
            return False
        return True

    def _health(self, start_response: StartResponse) -> Iterable[bytes]:
        try:
            with self.store.engine.connect() as c:
                c.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return _answer(start_response, 503, {"status": "store unavailable"})
        return _answer(start_response, 200, {"status": "ok", "hooks": sorted(self.hooks)})

    @staticmethod
    def _refuse(name: str, environ: dict[str, Any], status: int, reason: str) -> None:
        # the path only: the query string may carry a token
        log.warning("webhook %s: %d %s (from %s)", name, status, redact(reason), environ.get("REMOTE_ADDR", "?"))


def replay_keys(connector: str) -> str:
    """The ``inbox.connector`` of a webhook connector's signed-request keys (``Accepted.replay_key``):
    not the connector's own name, so its sync, ``hub leads`` and reports never see them. Each
    is kept for ``Accepted.replay_ttl`` seconds (deleted by a later signed request)."""
    return f"{connector}#signed"[:100]


def _read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """The body, or ``None`` when it is larger than ``limit``."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            size = int(length)
        except ValueError:
            size = -1
        if size > limit:
            return None
        if size >= 0:
            return stream.read(size)
    body = stream.read(limit + 1)
    return None if len(body) > limit else body


def _content_type(header: str) -> dict[str, str]:
    """The media type and the ``charset`` parameter of a ``Content-Type``, lower case, and
    its ``boundary`` parameter as sent."""
    media, *params = header.split(";")
    found = {"charset": "", "boundary": ""}
    for param in params:
        key, _, value = param.partition("=")
        key = key.strip().lower()
        if key in found:
            found[key] = value.strip().strip('"')
    return {"media_type": media.strip().lower(), "charset": found["charset"].lower(), "boundary": found["boundary"]}


def _answer_text(start_response: StartResponse, text: str) -> Iterable[bytes]:
    payload = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(payload)))])
    return [payload]


def _answer(start_response: StartResponse, status: int, data: dict[str, Any],
            headers: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    payload = json.dumps(data, ensure_ascii=False).encode()
    start_response(f"{status} {_REASONS.get(status, '')}".strip(),
                   [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), *(headers or [])])
    return [payload]


class SyncWorker:
    """Runs a sync of the webhook connectors a moment after new inbox rows arrive.

    One run at a time; requests accepted during a run bring another run after it. A run
    that finds the store lock held (a ``hub sync`` from cron) is tried again later."""

    def __init__(self, config: Any, store: Store, names: list[str], delay: float = 1.0, retry: float = 5.0):
        self.config = config
        self.store = store
        self.names = names
        self.delay = delay
        self.retry = retry
        self.runs = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hub-serve-sync", daemon=True)

    def start(self) -> None:
        self._wake.set()  # rows stored before a restart are read at once
        self._thread.start()

    def notify(self, _name: str = "") -> None:
        self._idle.clear()
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no sync is due or running (tests, shutdown)."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(0.5):
                continue
            if self._stop.wait(self.delay):
                return
            self._wake.clear()
            try:
                self._run_once()
            except LockedError:
                log.info("sync of %s waits: another hub sync holds the store lock", ", ".join(self.names))
                self._wake.set()
                if self._stop.wait(self.retry):
                    return
                continue
            except HubError as error:
                log.error("sync of %s failed: %s", ", ".join(self.names), redact(str(error)))
            except Exception:  # a bug must not stop the receiver: it keeps storing requests
                log.exception("sync of %s failed", ", ".join(self.names))
            if not self._wake.is_set():
                self._idle.set()

    def _run_once(self) -> None:
        from hub.sync import Sync

        report = Sync(self.config, self.store).run(self.names)
        self.runs += 1
        for error in report.errors:
            log.error("sync of the webhook connectors: %s", redact(str(error)))


def _logged_channel() -> type:
    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class LoggedErrorTask(ErrorTask):  # type: ignore[misc]
        """Requests waitress refuses before the app sees them (a body over the limit, a
        malformed request) are logged like the app's own refusals."""

        def execute(self) -> None:
            error = self.request.error
            path = getattr(self.request, "path", "") or "?"  # the path only, never the query string
            match = _HOOK_PATH.match(path)
            log.warning("webhook %s: %d %s (from %s)", match.group(1) if match else ascii(path), error.code,
                        redact(str(error.body or error.reason)), (self.channel.addr or ("?",))[0])
            super().execute()

    class LoggedChannel(HTTPChannel):  # type: ignore[misc]
        error_task_class = LoggedErrorTask

    return LoggedChannel


_LoggedChannel = _logged_channel()


class Server:
    """The WSGI app on waitress with the sync worker; ``serve`` blocks, ``start`` runs it in a thread."""

    def __init__(self, config: Any, store: Store, host: str = "127.0.0.1", port: int = 8080, *,
                 threads: int = 8, sync_delay: float = 1.0, sync: bool = True, trusted_proxy: str | None = None):
        from waitress.server import BaseWSGIServer, create_server

        names = webhook_connectors(config)
        self.worker = SyncWorker(config, store, names, delay=sync_delay) if sync and names else None
        self.app = WebhookApp(config, store, on_accepted=self.worker.notify if self.worker else None)
        # waitress refuses bodies over its own limit before the app reads them
        # behind a reverse proxy the sender's address (the burst rule of leads) is the
        # proxy's X-Forwarded-For, believed from that proxy only
        proxy = {"trusted_proxy": trusted_proxy, "trusted_proxy_headers": {"x-forwarded-for"},
                 "trusted_proxy_count": 1, "clear_untrusted_proxy_headers": True} if trusted_proxy else {}
        self._map: dict[int, Any] = {}
        try:
            self.server = create_server(self.app, map=self._map, host=host, port=port, threads=threads,
                                        max_request_body_size=self.app.max_body + 1, ident="hub", **proxy)
        except ValueError:  # waitress's word for a host that resolves to no address
            raise OSError(f"{host} does not resolve to an address") from None
        # a name may stand for several addresses (localhost: ::1 and 127.0.0.1): one listener each
        self.listeners = [item for item in self._map.values() if isinstance(item, BaseWSGIServer)]
        for listener in self.listeners:
            listener.channel_class = _LoggedChannel
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        """The port of the first address listened on."""
        return int(self.listeners[0].effective_port)

    @property
    def host(self) -> str:
        """The first address listened on."""
        return str(self.listeners[0].effective_host)

    @property
    def urls(self) -> list[str]:
        """``http://host:port`` of each address listened on."""
        return [f"http://{f'[{item.effective_host}]' if ':' in str(item.effective_host) else item.effective_host}"
                f":{item.effective_port}" for item in self.listeners]

    def serve(self) -> None:
        from waitress import wasyncore

        if self.worker is not None:
            self.worker.start()
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=0.2, map=self._map, use_poll=True, count=1)
        finally:
            self._drain()
            for channel in list(self._map.values()):
                channel.close()
            self.server.task_dispatcher.shutdown()
            if self.worker is not None:
                self.worker.stop()

    def _drain(self, timeout: float = 15.0) -> None:
        """Stop listening and let the requests being served finish, their answers sent: a
        delivery stored as the server stops is answered 200, not cut off. A connection with
        no request under way is closed at once (one still being sent is dropped unanswered,
        and its sender sends it again); ``timeout`` covers a store busy up to its own
        busy timeout (10 s)."""
        from waitress import wasyncore
        from waitress.channel import HTTPChannel

        for listener in self.listeners:
            listener.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            channels = [item for item in self._map.values() if isinstance(item, HTTPChannel)]
            if not channels:
                return
            for channel in channels:
                with channel.requests_lock:  # a request thread pops its request under it
                    if not channel.requests:
                        channel.close_when_flushed = True
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)

    def start(self) -> Server:
        self._thread = threading.Thread(target=self.serve, name="hub-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(30)
