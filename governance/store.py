"""Where assay keeps its state: the catalog database and the folders under ``ASSAY_HOME``.

``Store`` is built once by the composition root (the CLI or the Dagster resources) from explicit
settings; nothing below reads the environment except :meth:`Store.from_env`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event

DEFAULT_HOME = ".assay"


@dataclass(frozen=True)
class Store:
    """Paths and the catalog engine for one assay installation."""

    home: Path
    catalog_url: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Store:
        env = os.environ if environ is None else environ
        home = Path(env.get("ASSAY_HOME") or DEFAULT_HOME).resolve()
        url = env.get("ASSAY_CATALOG_URL") or f"sqlite:///{home / 'catalog.db'}"
        return cls(home=home, catalog_url=url)

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    def table_path(self, dataset_id: str) -> Path:
        """The Delta table holding a dataset's rows (certified versions and uncertified commits)."""
        return self.warehouse / dataset_id

    def resolve(self, path: str) -> Path:
        """A source path from a contract: absolute, or relative to ``ASSAY_HOME``."""
        p = Path(path)
        return p if p.is_absolute() else self.home / p

    def engine(self) -> Engine:
        return catalog_engine(self.catalog_url, self.home)


_ENGINES: dict[str, Engine] = {}


READ_ONLY = "assay_read_only"


def reading(engine: Engine) -> Connection:
    """A connection for reads only (never commits): on SQLite its transaction begins DEFERRED.

    Every other transaction on a SQLite catalog begins IMMEDIATE, taking the database's write lock; a
    read does not need it, and taking it made every agent call queue behind every other's audit append.
    """
    return engine.connect().execution_options(**{READ_ONLY: True})


def catalog_engine(url: str, home: Path | None = None) -> Engine:
    """One engine per URL per process; SQLite gets WAL and a busy timeout so processes can share it."""
    engine = _ENGINES.get(url)
    if engine is not None:
        return engine
    if url.startswith("sqlite"):
        if home is not None:
            home.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            # Let SQLAlchemy's BEGIN go through so writes take the lock at the start (see catalog.begin_write).
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Writes take the write lock at BEGIN, so read-decide-write transactions serialise without
            # deadlocking; reads (see reading()) begin deferred and, under WAL, never wait for a writer.
            conn.exec_driver_sql(
                "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
            )
    else:
        engine = create_engine(url, pool_pre_ping=True)
    _ENGINES[url] = engine
    return engine
