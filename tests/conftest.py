"""Shared fixtures: a project folder with hub.yaml, and stores on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

# Tests load only the built-in connectors, never whatever else is installed.
os.environ["HUB_LOAD_PLUGINS"] = ""

POSTGRES_ENV = "HUB_TEST_POSTGRES_URL"


def _postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store on each backend; PostgreSQL gets its own schema per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = _postgres_url()
    if not base:
        pytest.skip(f"PostgreSQL store tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as c:
        c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


class Project:
    """A folder with hub.yaml, mappings and data files, and a way to run `hub` in it."""

    def __init__(self, root: Path, store_url: str | None = None):
        self.root = root
        self.store_url = store_url

    def write(self, relative: str, text: str, encoding: str = "utf-8") -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding=encoding)
        return path

    def config(self, text: str) -> Path:
        text = textwrap.dedent(text)
        if self.store_url and "store:" not in text:
            text = f"store: {self.store_url}\n" + text
        return self.write("hub.yaml", text)

    def hub(self, *args: str, env: dict[str, str] | None = None) -> Result:
        from hub.cli import main

        runner = CliRunner()
        return runner.invoke(main, ["-c", str(self.root / "hub.yaml"), *args], env=env, catch_exceptions=False)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def store_project(tmp_path: Path, store_url: str) -> Project:
    """A project whose store is each backend in turn."""
    return Project(tmp_path, store_url)
