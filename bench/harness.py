"""What the benchmarks share: a child process run under a wrapper that times it and
reads its peak RSS, the machine, and the revision of hub measured.

Every measured process is started by a small wrapper interpreter that times it and
reads ``getrusage(RUSAGE_CHILDREN)`` after waiting for it: the wrapper has one child,
so ``ru_maxrss`` is the peak RSS of that child alone (not of the benchmark process,
whose memory a forked child would otherwise report as its own high-water mark).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Runs argv[2:], then writes wall time, CPU time and the child's peak RSS to argv[1].
WRAPPER = r"""
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[2:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as fh:
    json.dump({"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
               "max_rss_kb": usage.ru_maxrss, "exit": done.returncode}, fh)
sys.stdout.buffer.write(done.stdout)
sys.stderr.buffer.write(done.stderr)
sys.exit(done.returncode)
"""


class ToolFailed(Exception):
    """A measured process exited with an error (the message ends with its output)."""


def child_env(work: Path) -> dict[str, str]:
    """The environment of every child: bytecode cached in the work folder (never in the
    source tree), as an installed package has it, whatever PYTHONDONTWRITEBYTECODE says."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / ".pycache")
    env.pop("HUB_CONFIG", None)
    return env


def cpu_pressure_us() -> int | None:
    """Total time (µs) some runnable task waited for a CPU, system-wide (Linux PSI)."""
    try:
        with open("/proc/pressure/cpu") as fh:
            return int(fh.readline().rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


def measure(argv: list[str], cwd: Path, label: str) -> dict:
    """Run ``argv`` under the wrapper: wall time, CPU time, peak RSS and its output.

    ``cpu_wait_us`` is how long some task on the machine waited for a CPU meanwhile, and
    ``cpu_wait_pct`` that as a share of the wall time: near 0 on a quiet machine; high
    values mean the wall time was stretched by other work. Raises :class:`ToolFailed`."""
    stats = cwd / f".measure-{label}.json"
    pressure = cpu_pressure_us()
    done = subprocess.run([sys.executable, "-c", WRAPPER, str(stats), *argv], cwd=cwd, capture_output=True,
                          text=True, env=child_env(cwd), check=False)
    result = json.loads(stats.read_text())
    stats.unlink()
    if result["exit"] != 0:
        raise ToolFailed(f"{label}: {' '.join(argv)} exited with {result['exit']}\n"
                         f"{done.stdout[-4000:]}{done.stderr[-4000:]}")
    result["max_rss_mb"] = round(result.pop("max_rss_kb") / 1024, 1)  # Linux: KiB
    after = cpu_pressure_us()
    if pressure is not None and after is not None:
        result["cpu_wait_us"] = after - pressure
        if result["wall_s"] > 0:
            result["cpu_wait_pct"] = round(100 * (after - pressure) / 1e6 / result["wall_s"], 1)
    for key in ("wall_s", "user_s", "sys_s"):
        result[key] = round(result[key], 3)
    result["stdout"] = done.stdout
    return result


def hub_command(explicit: str | None = None) -> list[str]:
    """``explicit`` split into words, else the ``hub`` console script next to this
    interpreter (there is no ``python -m hub``)."""
    if explicit:
        return explicit.split()
    script = Path(sys.executable).parent / "hub"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from hub.cli import main; main()"]


def source_state() -> dict:
    """The revision of hub measured: HEAD and the uncommitted changes under hub/ and plugins/."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD").strip()
    if not commit:
        return {}
    diff = git("diff", "HEAD", "--", "hub", "plugins")
    dirty = sorted(line[3:] for line in git("status", "--porcelain", "--", "hub", "plugins").splitlines())
    state: dict = {"commit": commit, "dirty": dirty}
    if diff:
        state["diff_sha1"] = hashlib.sha1(diff.encode()).hexdigest()[:12]
    return state


def python_loop_seconds() -> float:
    """Seconds this interpreter takes to add up ten million integers in a loop (best of
    three): how fast the machine runs Python today. Runs of one revision on one host
    vary with it (shared hosts), so figures of different days are compared through it."""
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return round(best, 3)


def machine(*packages: str) -> dict:
    """The machine, Python, SQLite, and the versions of hub and of ``packages``."""
    info: dict = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "sqlite": sqlite3.sqlite_version,
        "python_loop_s": python_loop_seconds(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            info["memory_mb"] = int(fh.readline().split()[1]) // 1024
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    for package in ("hub-contacts", *packages):
        try:
            info["hub" if package == "hub-contacts" else package] = version(package)
        except PackageNotFoundError:
            pass
    return info
