"""Classification drift as a batch check: detectors over every valid row, added up across chunks.

A declared column in which a detector finds a kind of personal data its contract does not declare
(at least 10 % of its non-null values, 3 matches, medium confidence or more) blocks certification of
the batch. The check names column and detector and counts; never a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import polars as pl

from governance.classification import LEVELS, Finding, detect, drift
from pipelines.batch import CheckOutcome
from schemas import Contract

THRESHOLD = 0.1
MIN_MATCHES = 3
BUFFER_ROWS = 500_000


@dataclass
class ClassificationTally:
    contract: Contract
    today: date
    rows: int = 0
    counts: dict[tuple[str, str], list[int]] = field(
        default_factory=dict
    )  # -> [matches, non_null, confidence]

    buffer: list[pl.DataFrame] = field(default_factory=list)
    buffered: int = 0

    def add(self, valid: pl.DataFrame) -> None:
        """Take one chunk of valid rows; detectors run on every row, in frames of about BUFFER_ROWS
        (a detector pass has a fixed cost, so small chunks are pooled first)."""
        if valid.height == 0:
            return
        declared = [c.name for c in self.contract.columns if c.name in valid.columns]
        self.buffer.append(valid.select(declared))
        self.buffered += valid.height
        if self.buffered >= BUFFER_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        frame = pl.concat(self.buffer, how="vertical_relaxed") if len(self.buffer) > 1 else self.buffer[0]
        self.buffer, self.buffered = [], 0
        self.rows += frame.height
        for column, findings in detect(
            frame, frame.columns, today=self.today, threshold=1e-12, min_matches=1
        ).items():
            for f in findings:
                slot = self.counts.setdefault((column, f.detector), [0, 0, 0])
                slot[0] += f.matches
                slot[1] += f.non_null
                slot[2] = max(slot[2], LEVELS.index(f.confidence))

    def findings(self) -> dict[str, list[Finding]]:
        out: dict[str, list[Finding]] = {}
        for (column, detector), (matches, non_null, level) in sorted(self.counts.items()):
            ratio = matches / non_null if non_null else 0.0
            if matches >= MIN_MATCHES and ratio >= THRESHOLD:
                evidence = f"{detector}: {matches} of {non_null} non-null values match ({ratio:.1%})"
                out.setdefault(column, []).append(
                    Finding(column, detector, matches, non_null, ratio, LEVELS[level], evidence)
                )
        return out

    def check(self) -> CheckOutcome:
        self._flush()
        found = self.findings()
        drifts = drift(self.contract, found)
        text = " ".join(d.message for d in drifts) or (
            f"no undeclared personal data in {len(self.contract.columns)} declared columns "
            f"({self.rows} valid rows scanned)"
        )
        meta = {
            "drifts": [
                {
                    "column": d.column,
                    "detector": d.detector,
                    "ratio": round(d.ratio, 4),
                    "confidence": d.confidence,
                }
                for d in drifts
            ],
            "findings": {c: [f.evidence for f in fs] for c, fs in found.items()},
            "rows_scanned": self.rows,
        }
        return CheckOutcome("classification_drift", not drifts, True, text, meta)
