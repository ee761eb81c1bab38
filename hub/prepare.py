"""Mapping and normalization of records, and their identity profiles: in this
process, or in a worker process while the main process stores the previous batch (a
sync uses both cores).

The worker loads the same hub.yaml, so both run exactly the same code on the same
settings; results are identical wherever they are computed.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from hub.identity.compare import Profile, profile
from hub.mapping import Mapping
from hub.normalize import Normalizer

#: ``0``: prepare every batch in the main process; ``always``: in the worker from the
#: first batch on; unset: in the worker once a pull is big.
WORKERS_ENV = "HUB_WORKERS"
#: A pull starts the worker only after this many batches: small syncs never pay for it.
START_AFTER_BATCHES = 2

#: Collector thresholds while a sync runs, in both processes. With the default (700, 10,
#: 10) the collector walks every long-lived object (the profiles and caches identity
#: resolution keeps) again and again as a batch allocates: 19% of a first sync of 100k rows
#: (84.5 s -> 68.7 s on one machine, bench/sync_bench.py). A sync makes few reference cycles.
SYNC_GC_THRESHOLDS = (100_000, 50, 1_000)


@contextlib.contextmanager
def sync_collections() -> Iterator[None]:
    """Collect garbage at :data:`SYNC_GC_THRESHOLDS` inside, as before after."""
    before = gc.get_threshold()
    gc.set_threshold(*SYNC_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


#: Per row: canonical normalized values, the problems found, the values as JSON.
Prepared = list[tuple[dict[str, Any], list[str], str]]


def prepare(mapping: Mapping, normalizer: Normalizer, rows: Sequence[dict[str, Any]]) -> Prepared:
    """Canonical normalized values, the problems found and the values as stored, per raw row."""
    out: Prepared = []
    for raw in rows:
        problems: list[str] = []
        values, more = normalizer.normalize(mapping.apply(raw, problems))
        encoded = json.dumps(values, ensure_ascii=False, default=str)
        out.append((values, problems + more if more else problems, encoded))
    return out


#: A batch as a sync places it: :data:`Prepared` and each row's identity profile.
PreparedBatch = tuple[Prepared, list[Profile]]


def prepare_batch(mapping: Mapping, normalizer: Normalizer, rows: Sequence[dict[str, Any]]) -> PreparedBatch:
    """:func:`prepare`, and the profile identity resolution compares each row by: made
    here, it is made in the worker, off the process that stores (a few per cent of a
    first sync)."""
    prepared = prepare(mapping, normalizer, rows)
    return prepared, [profile(values) for values, _problems, _encoded in prepared]


_worker_config: Any = None
_worker_normalizer: Normalizer | None = None


def _start_worker(config_path: str, parent: int) -> None:
    global _worker_config, _worker_normalizer
    _exit_with(parent)
    gc.set_threshold(*SYNC_GC_THRESHOLDS)  # the worker lives for one sync
    from hub.config import load_config
    from hub.plugins import connector_classes

    _worker_config = load_config(Path(config_path), connector_classes())
    normalize = _worker_config.model.normalize
    _worker_normalizer = Normalizer(normalize.default_region, normalize.city_aliases)


def _exit_with(parent: int) -> None:
    """End this worker when the process that started it ends, even by SIGKILL: an
    orphan would keep the caller's output pipes open and live on for nothing."""
    try:  # Linux: the kernel delivers SIGKILL when the parent dies
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # elsewhere, and in case the parent died before prctl
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="hub-parent-watch", daemon=True).start()


def _prepare_in_worker(connector: str, rows: Sequence[dict[str, Any]]) -> PreparedBatch:
    assert _worker_config is not None and _worker_normalizer is not None
    return prepare_batch(_worker_config.mappings[connector], _worker_normalizer, rows)


class Preparer:
    """Hands out prepared batches; moves the work to a worker process once a pull is big."""

    def __init__(self, config_path: Path, mappings: dict[str, Mapping], normalizer: Normalizer):
        self.config_path = config_path
        self.mappings = mappings
        self.normalizer = normalizer
        setting = os.environ.get(WORKERS_ENV, "")
        self.enabled = setting == "always" or (setting != "0" and (os.cpu_count() or 1) > 1)
        self.start_after = 0 if setting == "always" else START_AFTER_BATCHES
        self._pool: ProcessPoolExecutor | None = None
        self._batches: dict[str, int] = {}

    def submit(self, connector: str, rows: Sequence[dict[str, Any]]) -> Future[PreparedBatch]:
        seen = self._batches[connector] = self._batches.get(connector, 0) + 1
        if self.enabled and rows and (self._pool is not None or seen > self.start_after):
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(str(self.config_path), os.getpid()),
                )
            return self._pool.submit(_prepare_in_worker, connector, list(rows))
        done: Future[PreparedBatch] = Future()
        done.set_result(prepare_batch(self.mappings[connector], self.normalizer, rows))
        return done

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
