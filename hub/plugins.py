"""The plugin manager: built-in connectors and third-party ones, loaded the same way."""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

import pluggy

from hub import hookspecs
from hub.connector import Connector
from hub.errors import FatalError

ENTRY_POINT_GROUP = "hub.connectors"

#: Modules of the built-in connectors, registered like any third-party plugin.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "hub_plugins.csv_file",
    "hub_plugins.google_sheets",
    "hub_plugins.mailchimp",
    "hub_plugins.brevo",
    "hub_plugins.sendpulse",
    "hub_plugins.unisender",
    "hub_plugins.smsru",
    "hub_plugins.twilio",
    "hub_plugins.webhook",
    "hub_plugins.yandex_metrica",
    "hub_plugins.ga4",
)

#: Built-in features made as plugins: the one-line summary of every run (hub_run_finished).
DEFAULT_PLUGINS += ("hub.run_summary",)

#: Comma-separated entry-point names to load; unset loads all, empty loads none.
LOAD_PLUGINS_ENV = "HUB_LOAD_PLUGINS"


def get_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("hub")
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    wanted = os.environ.get(LOAD_PLUGINS_ENV)
    if wanted is None:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    else:
        names = {name.strip() for name in wanted.split(",") if name.strip()}
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in names and pm.get_plugin(entry_point.name) is None:
                pm.register(entry_point.load(), name=entry_point.name)
    pm.check_pending()
    return pm


def connector_classes(pm: pluggy.PluginManager | None = None) -> dict[str, type[Connector]]:
    """Every registered connector class by its ``plugin`` name."""
    pm = pm or get_plugin_manager()
    found: dict[str, type[Connector]] = {}

    def register(cls: type[Connector]) -> None:
        name = getattr(cls, "plugin", None)
        if not isinstance(name, str) or not name:
            raise FatalError(f"connector class {cls.__module__}.{cls.__qualname__} has no 'plugin' name")
        if name in found and found[name] is not cls:
            other = found[name]
            raise FatalError(
                f"two connectors are named {name!r}: {other.__module__}.{other.__qualname__} "
                f"and {cls.__module__}.{cls.__qualname__}",
                hint=f"uninstall one of them or limit loading with {LOAD_PLUGINS_ENV}",
            )
        found[name] = cls

    pm.hook.hub_connectors(register=register)
    return found
