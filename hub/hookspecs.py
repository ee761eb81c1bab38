"""The plugin contract of hub. These docstrings are its documentation.

A plugin is a module (or object) with functions decorated by ``hub.hookimpl``
and named like the specifications below. Built-in connectors in ``hub_plugins``
are registered exactly like third-party ones, which declare themselves in the
``hub.connectors`` entry-point group of their distribution::

    [project.entry-points."hub.connectors"]
    my_tool = "my_package.my_module"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from hub.connector import Connector

hookspec = pluggy.HookspecMarker("hub")
hookimpl = pluggy.HookimplMarker("hub")


@hookspec
def hub_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register connector classes by calling ``register(ConnectorClass)`` once each.

    Called once when the plugin manager starts. The class's ``plugin`` attribute is
    the name users write as ``plugin:`` in hub.yaml; two classes with one name is an
    error that names both.
    """


@hookspec
def hub_run_finished(run: dict[str, Any]) -> None:
    """Called once after every sync run, whatever its outcome (also from ``hub schedule``).

    ``run`` is the run report as ``hub sync --json`` prints it: ``run_id``, ``status``
    (``ok``, ``failed``, ``interrupted``, ``dry-run``), ``counts`` per connector,
    ``changes``, ``errors`` (secrets masked). Notify a chat or monitoring from here.
    An exception raised here is logged and never changes the run's outcome; keep it
    quick, the next run waits for it. The built-in ``hub.run_summary`` logs one line.
    """
