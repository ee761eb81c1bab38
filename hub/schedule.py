"""``hub schedule``: a foreground scheduler running the jobs of ``schedule:`` in hub.yaml
(syncs, and ``hub clean`` for a job with ``run: clean``).

* Runs never overlap: the scheduler holds the store's ``schedule`` lock for its
  lifetime (a second scheduler exits with code 3), and each run takes the ``sync``
  lock like ``hub sync`` (a run due while a manual sync holds it waits for the next
  try, per the missed-run policy). On PostgreSQL, a scheduler whose lock session the
  server ended stops before its next job: another one may have started since.
* Missed runs: the last time each job ran is kept in the store (for a new job, the time
  the scheduler first saw it). A time missed while
  the scheduler was stopped, or while another run held the lock, is run once as soon
  as possible (``missed: run_once``, the default), however many times were missed; or
  not at all (``missed: skip``).
* Daylight saving time: a time the clock skips runs that much later, a time it repeats
  runs once (twice for a job whose hour field is ``*``); see ``Scheduler._instants``.
* ``hub schedule --once`` exits with code 1 when a run it made failed.
* SIGTERM or SIGINT: a waiting scheduler exits at once; a running one finishes the
  batch in hand (committed with its cursor), records the run as interrupted and exits
  with code 0. A second signal stops at once, as ``hub sync`` does.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import select

from hub.config import LoadedConfig, ScheduleJob
from hub.errors import LockedError, StopRequested, UsageError
from hub.store import LockLostError, Store, set_setting
from hub.store.schema import store_settings
from hub.sync import Sync, utcnow

log = logging.getLogger("hub.schedule")

#: How long to wait before trying a run again that found the sync lock taken.
RETRY_LOCKED = dt.timedelta(seconds=30)
#: The longest sleep: the clock is looked at again at least this often.
LONGEST_SLEEP = 60.0


@dataclass
class _Job:
    name: str
    spec: ScheduleJob
    #: the last scheduled time that was run (or skipped by policy)
    last: dt.datetime
    #: when to look at this job next (a scheduled time, or a retry)
    due: dt.datetime


class Scheduler:
    """Runs the scheduled jobs of one config until ``stop`` is set."""

    def __init__(
        self, config: LoadedConfig, store: Store, stop: threading.Event | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ):
        self.config = config
        self.store = store
        self.stop = stop or threading.Event()
        self.clock = clock
        settings = config.model.schedule
        self.zone = ZoneInfo(settings.timezone)
        self.policy = settings.missed
        self.runs: list[dict[str, Any]] = []

    def run(self, once: bool = False) -> list[dict[str, Any]]:
        """Run jobs as they fall due; with ``once``, only those due now (missed ones by
        the policy), then return. Returns the reports of the runs made."""
        jobs_config = self.config.model.schedule.jobs
        if not jobs_config:
            raise UsageError(f"{self.config.path.name} has no schedule jobs",
                             hint="add schedule: jobs: NAME: {cron: '*/15 * * * *'} (see README, Operations)")
        with self.store.lock("schedule"):
            log.info("started (pid %d): %d job(s), time zone %s, missed runs: %s", os.getpid(), len(jobs_config),
                     self.zone.key, self.policy)
            jobs = self._load(jobs_config)
            for job in jobs:
                log.info("job %s (%s): next run %s", job.name, job.spec.cron,
                         "now" if job.due <= self.clock() else self._local(job.due))
            while not self.stop.is_set():
                now = self.clock()
                ready = sorted((job for job in jobs if job.due <= now), key=lambda job: job.due)
                if not ready:
                    if once:
                        break
                    wait = min(job.due for job in jobs) - now
                    self.stop.wait(max(0.0, min(wait.total_seconds(), LONGEST_SLEEP)))
                    continue
                if not self.store.holds("schedule"):
                    raise LockLostError(
                        "the database server ended the session that held the scheduler's lock; another scheduler "
                        "may have started since, so this one stopped before running a job twice",
                        hint="start it again (it waits if another one runs); if the server ends idle sessions "
                        "(idle_session_timeout), turn that off for hub's database user",
                    )
                for job in ready:
                    if self.stop.is_set():
                        break
                    self._run_job(job, now)
        return self.runs

    # --- one job --------------------------------------------------------------
    def _run_job(self, job: _Job, now: dt.datetime) -> None:
        slot = self._latest_slot(job.spec.cron, now)
        try:
            report, done = self._clean(job) if job.spec.run == "clean" else self._sync(job)
        except LockedError as error:
            if self.policy == "run_once":
                job.due = now + RETRY_LOCKED
                log.warning("job %s: %s; trying again at %s", job.name, str(error).splitlines()[0],
                            self._local(job.due))
            else:
                log.warning("job %s: %s; skipped until %s", job.name, str(error).splitlines()[0],
                            self._local(self._next(job.spec.cron, slot)))
                self._done(job, slot)
            return
        self.runs.append(report)
        if done:
            self._done(job, slot)

    def _sync(self, job: _Job) -> tuple[dict[str, Any], bool]:
        """A sync's report, and whether the job's time is done (not when stopped midway)."""
        sync = Sync(self.config, self.store)
        sync.stop = self.stop
        try:
            return sync.run(job.spec.connectors).as_dict(), True
        except LockedError:
            raise
        except StopRequested:
            log.warning("job %s: stopped on request; the next run goes on from the last committed batch", job.name)
            return sync.report.as_dict(), False
        except Exception as error:  # noqa: BLE001 - a failed run is in `hub runs`; the schedule goes on
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            log.warning("job %s: the run failed: %s", job.name, message)
            report = sync.report.as_dict()
            if report["status"] != "failed":  # it stopped before recording its end: failed all the same
                report.update(status="failed", errors=[*report["errors"], message])
            return report, True

    def _clean(self, job: _Job) -> tuple[dict[str, Any], bool]:
        """``hub clean`` as a job: what it did, in short (``kind: clean``)."""
        from hub.clean import Cleaner

        try:
            result = Cleaner(self.config, self.store, "schedule").clean()
        except LockedError:
            raise
        except Exception as error:  # noqa: BLE001 - the mass-delete guard, a failure: logged; the schedule goes on
            message = str(error).splitlines()[0]
            log.warning("job %s: the clean-up failed: %s", job.name, message)
            return {"kind": "clean", "status": "failed", "error": message}, True
        summary = {key: len(result[key]) for key in ("flagged", "unflagged", "deleted", "invalid_identifiers")}
        log.info("job %s: clean-up done (run %s): %s", job.name, result["run_id"],
                 ", ".join(f"{n} {key.replace('_', ' ')}" for key, n in summary.items()))
        return {"kind": "clean", "status": "ok", "run_id": result["run_id"], "changes": result["changes"],
                **summary}, True

    def _done(self, job: _Job, slot: dt.datetime) -> None:
        job.last = slot
        job.due = self._next(job.spec.cron, slot)
        with self.store.begin() as c:
            set_setting(c, _key(job.name), slot.isoformat())

    # --- times ------------------------------------------------------------------
    def _load(self, jobs_config: dict[str, ScheduleJob]) -> list[_Job]:
        now = self.clock()
        with self.store.connect() as c:
            saved = {
                row.name: row.value for row in c.execute(
                    select(store_settings.c.name, store_settings.c.value).where(
                        store_settings.c.name.in_([_key(name) for name in jobs_config])
                    )
                )
            }
        jobs = []
        new = []
        for name, spec in jobs_config.items():
            text = saved.get(_key(name))
            if text is None:  # a new job: from now on
                last = now
                due = self._next(spec.cron, now)
                new.append(name)
            else:
                last = dt.datetime.fromisoformat(text)
                due = self._next(spec.cron, last)
                if due <= now:
                    missed = len(self._slots(spec.cron, last, now))
                    if self.policy == "run_once":
                        log.warning("job %s missed %d run(s) since %s: running it once now", name, missed,
                                    self._local(last))
                    else:
                        last = self._latest_slot(spec.cron, now)
                        due = self._next(spec.cron, last)
                        log.warning("job %s missed %d run(s) since %s: skipped (missed: skip)", name, missed,
                                    self._local(last))
            jobs.append(_Job(name, spec, last, due))
        if new:  # kept, so that a later start (`--once` from cron) sees the times passed since
            with self.store.begin() as c:
                for name in new:
                    set_setting(c, _key(name), now.isoformat())
        return jobs

    # Cron expressions name wall-clock times in ``self.zone``; a daylight saving change
    # skips some of them or repeats them. croniter is only asked about wall-clock times
    # (naive datetimes), and each is mapped to its instants here:
    # * a time in the skipped hour (spring) runs as much later as the clock jumped
    #   (02:30 on a night 02:00 becomes 03:00 runs at 03:30);
    # * a time in the repeated hour (autumn) runs at its first occurrence, and once
    #   more at the second for a job whose hour field is ``*`` (an hourly job runs
    #   every hour; ``30 2 * * *`` runs once that night).
    def _instants(self, cron: str, wall: dt.datetime) -> list[dt.datetime]:
        first = wall.replace(tzinfo=self.zone, fold=0)
        instants = [first.astimezone(dt.timezone.utc)]
        if cron.split()[1].startswith("*"):
            second = wall.replace(tzinfo=self.zone, fold=1)
            if second.utcoffset() != first.utcoffset() and _exists(second):
                instants.append(second.astimezone(dt.timezone.utc))
        return instants

    def _next(self, cron: str, after: dt.datetime) -> dt.datetime:
        """The first scheduled time after ``after``."""
        wall = after.astimezone(self.zone).replace(tzinfo=None)
        it = croniter(cron, wall - _SHIFT)
        best: dt.datetime | None = None
        while True:
            candidate = it.get_next(dt.datetime)
            if best is not None and candidate > best.astimezone(self.zone).replace(tzinfo=None) + _SHIFT:
                return best
            for instant in self._instants(cron, candidate):
                if instant > after and (best is None or instant < best):
                    best = instant

    def _latest_slot(self, cron: str, now: dt.datetime) -> dt.datetime:
        """The latest scheduled time at or before ``now``."""
        wall = now.astimezone(self.zone).replace(tzinfo=None)
        it = croniter(cron, wall + _SHIFT)
        best: dt.datetime | None = None
        while True:
            candidate = it.get_prev(dt.datetime)
            if best is not None and candidate < best.astimezone(self.zone).replace(tzinfo=None) - _SHIFT:
                return best
            for instant in self._instants(cron, candidate):
                if instant <= now and (best is None or instant > best):
                    best = instant

    def _slots(self, cron: str, after: dt.datetime, until: dt.datetime, limit: int = 10000) -> list[dt.datetime]:
        """The scheduled times after ``after`` up to ``until`` (at most about ``limit``)."""
        it = croniter(cron, after.astimezone(self.zone).replace(tzinfo=None) - _SHIFT)
        end = until.astimezone(self.zone).replace(tzinfo=None) + _SHIFT
        found: set[dt.datetime] = set()
        for _ in range(limit):
            candidate = it.get_next(dt.datetime)
            if candidate > end:
                break
            found.update(instant for instant in self._instants(cron, candidate) if after < instant <= until)
        return sorted(found)

    def _local(self, moment: dt.datetime) -> str:
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M %Z")


#: More than any daylight saving change: wall-clock times this far apart are in order in real time.
_SHIFT = dt.timedelta(hours=3)


def _exists(moment: dt.datetime) -> bool:
    """Whether an aware local time is a real one (not in the hour a clock change skips)."""
    back = moment.astimezone(dt.timezone.utc).astimezone(moment.tzinfo)
    return back.replace(tzinfo=None) == moment.replace(tzinfo=None)


def _key(job: str) -> str:
    return f"schedule:{job}"


@contextmanager
def graceful_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (the run ends after its batch); a second one stops at once."""

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt(f"signal {signum}")
        log.warning("signal %d: stopping after the current batch (again to stop at once)", signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
