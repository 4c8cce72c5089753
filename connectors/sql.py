"""CRM and other SQL tables: one extraction of the declared columns of a (wide) table.

Every declared column is selected as text (``CAST(... AS VARCHAR)`` rendered per dialect), so a
column whose values have drifted from its type (SQLite stores anything anywhere) reaches validation
as the source held it and fails there row by row, rather than breaking the read. Columns the
contract does not declare are never selected; their names are reported in the manifest.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import polars as pl
from sqlalchemy import MetaData, String, Table, cast, create_engine, select

from connectors.errors import SourceError
from connectors.manifest import Extraction, Manifest


def read_table(url: str, table: str, columns: dict[str, str], key: list[str]) -> Extraction:
    """Extract ``columns`` (contract name -> source column name) of ``table``, ordered by ``key``.

    The checksum is over the extracted content, so an unchanged table is recognised as the same
    delivery and ingested once. ``_source_line`` is the row's ordinal in key order.
    """
    engine = create_engine(url)
    try:
        try:
            conn = engine.connect()
        except Exception as exc:  # driver errors (refused, auth) are a source that cannot be read
            raise SourceError(
                f"{_safe(url)}: cannot connect ({type(exc).__name__}). "
                "Fix: check the server, the credentials and the connection URL."
            ) from exc
        with conn:
            meta = MetaData()
            try:
                src = Table(table, meta, autoload_with=conn)
            except Exception as exc:  # NoSuchTableError and driver errors alike
                raise SourceError(
                    f"{_safe(url)}: table {table!r} cannot be read ({type(exc).__name__}). "
                    "Fix: check the table name in the contract's source and the connection."
                ) from exc
            present = {c.name for c in src.columns}
            missing = sorted(set(columns.values()) - present)
            if missing:
                raise SourceError(
                    f"{_safe(url)} table {table}: declared column(s) {missing} are not in the source. "
                    "Fix: correct physicalName in the contract, or remove the column."
                )
            query = select(*[cast(src.c[phys], String).label(name) for name, phys in columns.items()])
            query = query.order_by(*[src.c[columns[k]] for k in key])
            result = conn.execute(query)
            rows = result.fetchall()
    finally:
        engine.dispose()
    frame = pl.DataFrame(rows, schema={name: pl.String for name in columns}, orient="row")
    frame = frame.with_row_index("_source_line", offset=1).with_columns(pl.col("_source_line").cast(pl.Int64))
    digest = hashlib.sha256(frame.drop("_source_line").write_csv().encode("utf-8")).hexdigest()
    undeclared = tuple(sorted(present - set(columns.values())))
    manifest = Manifest(
        source=f"{table}",
        checksum=digest,
        size=int(frame.estimated_size()),
        batch_id=f"{table}-{digest[:12]}",
        business_date=datetime.now(UTC).date(),
        rows_read=frame.height,
        undeclared_columns=undeclared,
    )
    return Extraction(records=frame, manifest=manifest)


def _safe(url: str) -> str:
    """A connection URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
