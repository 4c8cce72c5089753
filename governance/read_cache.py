"""Certified versions held in memory for agent reads.

A certified Delta version never changes, so a gateway process may keep it decoded in memory and answer
every read from there: no Parquet decoding per call. Low-cardinality text columns are kept
dictionary-encoded (polars ``Categorical``), which makes equality predicates — the common agent
filter — integer comparisons. Agents never see the encoding: :func:`decode` turns those columns back
into text after the query has run. Each version also carries its row indexes
(:mod:`governance.read_index`), built on first use, so an equality filter reads only candidate rows.
The cache is a process-wide LRU bounded by bytes (frames and their indexes).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from governance.read_index import RowIndexes

DEFAULT_MAX_BYTES = 4 << 30
ENCODE_MAX_DISTINCT_RATIO = 0.2


@dataclass(frozen=True)
class CertifiedFrame:
    frame: pl.DataFrame | pl.LazyFrame  # in memory, low-cardinality text columns are Categorical
    schema: pl.Schema  # the table's own schema, as agents see it
    encoded: frozenset[str]
    indexes: RowIndexes | None = None  # in memory only: hash indexes for equality filters


class CertifiedFrames:
    """An LRU of decoded certified versions, keyed by (table path, Delta version)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._frames: OrderedDict[tuple[str, int], CertifiedFrame] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, int], threading.Lock] = {}

    def get(self, table: Path, version: int) -> CertifiedFrame:
        key = (str(table), version)
        with self._lock:
            hit = self._frames.get(key)
            if hit is not None:
                self._frames.move_to_end(key)
                return hit
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one loader per version; concurrent readers wait for it rather than load twice
            with self._lock:
                hit = self._frames.get(key)
            if hit is None:
                hit = _load(table, version)
                with self._lock:
                    self._frames[key] = hit
                    self._evict()
        return hit

    def _evict(self) -> None:
        sizes = {
            k: (f.frame.estimated_size() if isinstance(f.frame, pl.DataFrame) else 0)
            + (f.indexes.estimated_size() if f.indexes is not None else 0)
            for k, f in self._frames.items()
        }
        total = sum(sizes.values())
        while len(self._frames) > 1 and total > self.max_bytes:
            key, _ = self._frames.popitem(last=False)
            total -= sizes[key]

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()


def _load(table: Path, version: int) -> CertifiedFrame:
    frame = pl.read_delta(str(table), version=version)
    schema = frame.schema
    text = [name for name, dtype in schema.items() if dtype == pl.String and not name.startswith("_")]
    encoded: list[str] = []
    if text and frame.height:
        distinct = frame.select(pl.col(text).n_unique()).row(0, named=True)
        encoded = [c for c in text if distinct[c] <= max(1, frame.height * ENCODE_MAX_DISTINCT_RATIO)]
    if encoded:
        frame = frame.with_columns(pl.col(encoded).cast(pl.Categorical))
    return CertifiedFrame(
        frame=frame,
        schema=schema,
        encoded=frozenset(encoded),
        indexes=RowIndexes(frame=frame, schema=schema),
    )


def decode(frame: pl.DataFrame, encoded: frozenset[str]) -> pl.DataFrame:
    """Dictionary-encoded columns back to text, as stored."""
    columns = [c for c in frame.columns if c in encoded and frame.schema[c] == pl.Categorical]
    return frame.with_columns(pl.col(columns).cast(pl.String)) if columns else frame


FRAMES = CertifiedFrames()
