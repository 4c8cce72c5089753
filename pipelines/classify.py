"""Classification drift as a batch check: detectors over every valid row, added up across chunks.

A declared column in which a detector finds a kind of personal data its contract does not declare
(at least 10 % of its non-null values, 3 matches, medium confidence or more) blocks certification of
the batch. The check names column and detector and counts; never a value.

A valid row passed every rule of its contract, so a column whose rules admit only values no detector can
match (codes from a list, ids of a fixed pattern, small integer ranges) can have no finding and need not be
read: :func:`inert_columns` proves which, once per batch, and the tally leaves them out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from itertools import product

import polars as pl

from governance.classification import Finding, Scan, drift, matches_none
from governance.detectors import CANDIDATE, stand_ins
from pipelines.batch import CheckOutcome
from schemas import Contract
from schemas.contract import Column

THRESHOLD = 0.1
MIN_MATCHES = 3
ENUMERABLE = 10_000  # the most admitted values (or interchangeable stand-ins) a column's proof looks at


@dataclass
class ClassificationTally:
    """The batch's valid rows, chunk by chunk, through every detector (:class:`governance.classification.Scan`).

    A chunk costs little when it is added: its non-null values are counted and only the distinct values
    that could match a detector are kept; the detectors run on those once enough have piled up. Counts,
    ratios and confidence are those of the whole batch. Columns :func:`inert_columns` proves inert are
    not read.
    """

    contract: Contract
    today: date
    scan: Scan = field(init=False)

    def __post_init__(self) -> None:
        self.scan = Scan(self.today, inert=inert_columns(self.contract, self.today))

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


def inert_columns(contract: Contract, today: date) -> frozenset[str]:
    """The contract's columns no value of which, in a valid row, can match a detector (see
    :class:`governance.classification.Scan`).

    A column is inert when its rules admit a set of values (a list of valid values, a simple pattern, an
    integer range) no detector matches: each admitted value is run through the detectors, or, for a
    pattern admitting too many, each string of characters interchangeable with its own (one stand-in per
    kind, :func:`governance.detectors.stand_ins`) through the gate every detector needs.
    """
    inert: set[str] = set()
    complete: dict[str, list[str]] = {}
    for column in contract.columns:
        for whole, values in _admitted(column):
            if whole:
                complete.setdefault(column.name, values)
            elif not pl.Series(values, dtype=pl.String).str.contains(CANDIDATE).any():
                inert.add(column.name)
                break
    inert |= matches_none({n: v for n, v in complete.items() if n not in inert}, today)
    return frozenset(inert)


def _admitted(column: Column) -> Iterator[tuple[bool, list[str]]]:
    """Lists of strings each value of ``column`` in a valid row is one of (``True``), or is, character by
    character, interchangeable with one of (``False``); none where its rules do not bound it enough."""
    lows, highs = [], []  # an integer column's bounds, from its rules
    for rule in column.rules:
        value = rule.args.get("value")
        text = column.logical_type == "string"
        listed = rule.args.get("values") if rule.kind == "in_set" else None
        if (
            text
            and isinstance(listed, list)
            and len(listed) <= ENUMERABLE
            and all(isinstance(v, str) for v in listed)
        ):
            yield True, list(listed)
        elif text and rule.kind == "pattern" and isinstance(value, str) and (items := pattern_items(value)):
            for whole, stand_in in ((False, _stand_ins), (True, sorted)):
                strings = _strings([(stand_in(chars), n, m) for chars, n, m in items])
                if strings is not None:
                    yield whole, strings
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            if rule.kind in ("ge", "gt"):
                lows.append(math.ceil(value) if rule.kind == "ge" else math.floor(value) + 1)
            elif rule.kind in ("le", "lt"):
                highs.append(math.floor(value) if rule.kind == "le" else math.ceil(value) - 1)
    if column.logical_type == "integer" and lows and highs:
        low, high = max(lows), min(highs)
        if -(2**53) <= low and high <= 2**53 and high - low < ENUMERABLE:  # bounds exact as floats too
            yield True, [str(i) for i in range(low, high + 1)]


@lru_cache(maxsize=256)
def _stand_ins(chars: str) -> list[str]:
    return sorted(set(stand_ins(chars).values()))


def _strings(items: list[tuple[list[str], int, int]]) -> list[str] | None:
    """Every string of the items (characters, fewest, most) in turn; None past :data:`ENUMERABLE`."""
    if math.prod(sum(len(chars) ** k for k in range(n, m + 1)) for chars, n, m in items) > ENUMERABLE:
        return None
    parts = [["".join(p) for k in range(n, m + 1) for p in product(chars, repeat=k)] for chars, n, m in items]
    return ["".join(p) for p in product(*parts)]


_META = frozenset("\\.+*?()|[]{}^$")
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def pattern_items(pattern: str) -> list[tuple[str, int, int]] | None:
    """A declared pattern as (characters, fewest, most) items in turn, when it is that simple: anchored at
    both ends (``^...$``), of printable ASCII characters, escaped punctuation and bracketed sets of them
    (ranges allowed, not negated), each taken once, optionally (``?``) or ``{n}`` / ``{n,m}`` times.

    Anything else gives None: alternation, groups, classes such as ``\\d`` (which is not only ASCII),
    flags, unbounded repeats. Read as polars (Rust) reads it, which for this subset is plain.
    """
    if len(pattern) < 2 or pattern[0] != "^" or pattern[-1] != "$" or pattern[-2] == "\\":
        return None
    body, i, items = pattern[1:-1], 0, []
    while i < len(body):
        if body[i] == "[":
            chars, i = _bracket(body, i + 1)
        elif body[i] == "\\" and i + 1 < len(body) and body[i + 1] in _PUNCTUATION:
            chars, i = body[i + 1], i + 2
        elif " " <= body[i] <= "~" and body[i] not in _META:
            chars, i = body[i], i + 1
        else:
            return None
        if chars is None:
            return None
        low = high = 1
        if i < len(body) and body[i] == "?":
            low, i = 0, i + 1
        elif i < len(body) and body[i] == "{":
            end = body.find("}", i)
            bounds = body[i + 1 : end].split(",") if end > 0 else []
            if not 1 <= len(bounds) <= 2 or not all(b.isdigit() for b in bounds):
                return None
            low, high, i = int(bounds[0]), int(bounds[-1]), end + 1
            if low > high:
                return None
        if i < len(body) and body[i] in "*+{":
            return None
        i += i < len(body) and body[i] == "?"  # a lazy repeat admits the same strings
        items.append((chars, low, high))
    return items


def _bracket(body: str, i: int) -> tuple[str | None, int]:
    """The characters of a bracketed set whose body starts at ``body[i]``, and where it ends."""
    chars: set[str] = set()
    if i >= len(body) or body[i] in "^]":
        return None, i
    while i < len(body) and body[i] != "]":
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in _PUNCTUATION:
            char, i = body[i + 1], i + 2
        elif " " <= body[i] <= "~" and body[i] not in "[\\" and body[i : i + 2] not in ("&&", "--", "~~"):
            char, i = body[i], i + 1
        else:
            return None, i
        if i + 1 < len(body) and body[i] == "-" and body[i + 1] != "]":
            last = body[i + 1]
            if not (" " <= last <= "~") or last in "[\\" or last < char:
                return None, i
            chars.update(chr(c) for c in range(ord(char), ord(last) + 1))
            i += 2
        else:
            chars.add(char)
    if i >= len(body):
        return None, i
    return "".join(sorted(chars)), i + 1
