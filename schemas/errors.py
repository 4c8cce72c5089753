"""Errors raised by ``schemas``.

    SchemaError
    ├── ContractError      a contract file breaks ODCS or assay's rules (file, line, fix for each problem)
    └── ValidationError    a batch cannot be validated at all (e.g. a declared column is missing)

Row-level failures are never exceptions: they become quarantined rows with reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class SchemaError(Exception):
    """Base of every error raised by ``schemas``."""


@dataclass(frozen=True)
class ContractProblem:
    line: int
    message: str
    fix: str


class ContractError(SchemaError):
    """One or more problems in contract files, each naming file, line and fix."""

    def __init__(self, path: Path, problems: Sequence[ContractProblem], others: Sequence[ContractError] = ()):
        self.path = Path(path)
        self.problems = list(problems)
        self.others = list(others)
        super().__init__(str(self))

    @classmethod
    def combine(cls, errors: Sequence[ContractError]) -> ContractError:
        return cls(errors[0].path, errors[0].problems, errors[1:])

    def lines(self) -> list[str]:
        out = []
        for err in (self, *self.others):
            for p in err.problems:
                fix = f" Fix: {p.fix}." if p.fix else ""
                out.append(f"{err.path}:{p.line}: {p.message}.{fix}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


class ValidationError(SchemaError):
    """A batch could not be validated as a whole; the message names the batch, the column and the fix."""
