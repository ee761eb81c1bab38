"""The guarantee of ``bench/serve_bench.py`` on a small scale: a real ``hub serve``
process killed with SIGKILL in the middle of a burst loses no acknowledged request,
and senders retrying what was not acknowledged end with exactly one inbox row each."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import serve_bench


def test_every_acknowledged_request_survives_a_sigkill(tmp_path: Path) -> None:
    result = serve_bench.kill_phase(tmp_path, None, posts=100, concurrency=10, threads=4, sync=False, kill_after=30)
    assert result["killed"]
    assert result["acknowledged_before_kill"] >= 30
    assert result["unanswered"] > 0  # the kill came mid-burst
    assert result["lost"] == 0, result["lost_ids"]
    assert result["inbox_rows_after_restart"] >= result["acknowledged_before_kill"]
    assert result["exactly_once"], result


def test_a_burst_leaves_one_inbox_row_per_200(tmp_path: Path) -> None:
    result = serve_bench.load_phase(tmp_path, None, posts=100, concurrency=10, threads=4, sync=True)
    assert result["answers"] == {"200": 100}
    assert result["inbox_rows"] == 100 and result["acknowledged_missing"] == 0
