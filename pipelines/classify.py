"""Classification drift as a batch check: detectors over every valid row, added up across chunks.

A declared column in which a detector finds a kind of personal data its contract does not declare
(at least 10 % of its non-null values, 3 matches, medium confidence or more) blocks certification of
the batch. The check names column and detector and counts; never a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import polars as pl

from governance.classification import Finding, Scan, drift
from pipelines.batch import CheckOutcome
from schemas import Contract

THRESHOLD = 0.1
MIN_MATCHES = 3


@dataclass
class ClassificationTally:
    """The batch's valid rows, chunk by chunk, through every detector (:class:`governance.classification.Scan`).

    A chunk costs little when it is added: its non-null values are counted and only the distinct values
    that could match a detector are kept; the detectors run on those once enough have piled up. Counts,
    ratios and confidence are those of the whole batch.
    """

    contract: Contract
    today: date
    scan: Scan = field(init=False)

    def __post_init__(self) -> None:
        self.scan = Scan(self.today)

    @property
    def rows(self) -> int:
        return self.scan.rows

    def add(self, valid: pl.DataFrame) -> None:
        """Take one chunk of valid rows (every declared column; every row is counted)."""
        if valid.height == 0:
            return
        self.scan.add(valid, [c.name for c in self.contract.columns if c.name in valid.columns])

    def findings(self) -> dict[str, list[Finding]]:
        return {
            column: found
            for column, found in self.scan.findings(threshold=THRESHOLD, min_matches=MIN_MATCHES).items()
            if found
        }

    def check(self) -> CheckOutcome:
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
