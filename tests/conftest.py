"""Shared fixtures: an isolated ASSAY_HOME, real database servers, the shared corpus.

Tests that need PostgreSQL, MariaDB or the corpus skip with a message where those are absent
(a user's own clone); under ``CI=true`` they fail instead, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("ASSAY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("ASSAY_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")


def _unavailable(what: str, why: str) -> None:
    message = f"{what} is not available here ({why})"
    if IN_CI:
        pytest.fail(f"{message}; under CI=true this test must run, not skip")
    pytest.skip(message)


def _server(url: str, what: str) -> str:
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any driver error means: no server to test against
        _unavailable(what, type(exc).__name__)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return _server(POSTGRES_URL, "PostgreSQL at 127.0.0.1:5432")


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    return _server(MARIADB_URL, "MariaDB at 127.0.0.1:3306")


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test; the URL's search_path points at it."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        sep = "&" if "?" in postgres_url else "?"
        yield f"{postgres_url}{sep}options=-csearch_path%3D{name}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus of real legacy files (never modified, never copied into the project)."""
    path = Path(os.environ.get("ASSAY_CORPUS") or REPO.parent / "shared" / "corpus")
    if not (path / "README.md").exists():
        _unavailable("the shared corpus", f"looked in {path}; set ASSAY_CORPUS")
    return path


@pytest.fixture
def assay_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated ASSAY_HOME and DAGSTER_HOME for one test."""
    home = tmp_path / "assay"
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("ASSAY_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.delenv("ASSAY_CATALOG_URL", raising=False)
    monkeypatch.delenv("ASSAY_FAULT", raising=False)
    return home
