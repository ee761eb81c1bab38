"""Built-in ``hub_run_finished``: one log line per run (logger ``hub.runs``).

``hub schedule`` shows these lines; elsewhere ``-v`` does. A failed or interrupted
run is logged as a warning, so it shows without ``-v`` too."""

from __future__ import annotations

import logging
from typing import Any

from hub.hookspecs import hookimpl

log = logging.getLogger("hub.runs")

_SHOWN = ("read", "created", "updated", "merged", "removed", "deleted", "quarantined", "suppressed", "sent",
          "rejected", "retry")


def summary(run: dict[str, Any]) -> str:
    parts = []
    for name, counts in run.get("counts", {}).items():
        shown = " ".join(f"{key} {counts[key]}" for key in _SHOWN if counts.get(key))
        parts.append(f"{name}: {shown or 'nothing new'}")
    line = f"run {run.get('run_id')} {run.get('status')}: " + ("; ".join(parts) or "no connectors")
    line += f"; {run.get('changes', 0)} changes"
    if run.get("errors"):
        line += f"; error: {run['errors'][0].splitlines()[0]}"
    return line


@hookimpl
def hub_run_finished(run: dict[str, Any]) -> None:
    level = logging.INFO if run.get("status") in ("ok", "dry-run") else logging.WARNING
    log.log(level, summary(run))
