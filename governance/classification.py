"""Classification detectors: find the personal data a contract does not declare, in every row of a batch.

Each detector is a vectorised polars expression over a column's text (no per-row Python). :func:`detect`
runs all of them over every row of every column in one streaming query (no sampling) and turns the match
counts into :class:`Finding` s with evidence and a confidence; :func:`drift` compares findings with the
contract: a declared column holding a kind of personal data its contract does not declare is classification
drift, which blocks certification. :func:`row_verdicts` shows the per-row verdicts behind a finding.

=================  ===========================================================================================
detector           a value matches when
=================  ===========================================================================================
``email``          it is an address ``local@domain.tld``
``phone``          7-15 digits written as a phone number: a leading ``+``/``00``, an area code in brackets,
                   2+ separator-joined digit groups, or a ``0``-trunk prefix; never a bare number, a date,
                   an SSN, an IPv4 address or a thousands-grouped amount
``person_name``    1-4 capitalised words (or ``Last, First``) whose given name is in an embedded lexicon of
                   ~330 common given names from 20-odd countries; company forms (GmbH, Inc, LLC, S.A.,
                   ``&``, ``and``...) never match
``address``        house number + street word (English, German, French, Spanish, Italian, Portuguese), or
                   postcode + city (``10115 Berlin``, ``Springfield, IL 62704``, ``London NW1 6XE``)
``date_of_birth``  a date (ISO, ``DD.MM.YYYY``, ``DD/MM/YYYY``, ``MM/DD/YYYY``, ``YYYYMMDD``, a midnight
                   timestamp, or a Date column) of someone aged 16 to 100 on ``today``
``national_id``    a US SSN (``AAA-GG-SSSS``; areas 000, 666, 900-999, group 00, serial 0000 excluded) or a
                   UK NINO (prefix letters and the prefixes BG GB KN NK NT TN ZZ checked)
``iban``           country code, that country's length, and the ISO 7064 mod-97 check
``payment_card``   13-19 digits (spaces/hyphens allowed), an issuer prefix with its lengths, the Luhn check
``ip_address``     an IPv4 or IPv6 address
``free_text``      a text of 3+ words and 20+ characters that *contains* an email, phone, SSN, IBAN or card
                   (and is not wholly one of them)
=================  ===========================================================================================

Confidence: checksum-validated detectors (``iban``, ``payment_card``) are ``high``. ``email``,
``national_id`` and ``ip_address`` are ``medium`` (``high`` at a ratio of 0.8 or more); ``free_text`` is
``medium``; ``phone``, ``person_name`` and ``address`` are ``low`` below a ratio of 0.3, else ``medium``;
``date_of_birth`` is ``low`` unless the matching birth years span 20 years or more (a population, not a
business calendar), then ``medium``. A column name that agrees (``dob``, ``geburt``, ``email``, ``iban``...)
raises the level by one; a name alone never produces a finding. Values never appear in findings, evidence,
drifts or messages.

Cost: most values of an ERP batch (ids, codes, amounts as text) cannot match any detector, and the rest
repeat (currencies, statuses, plants): :data:`governance.detectors.CANDIDATE`, a necessary condition of every
detector, lets through only values that could match, and the detectors run once per distinct value
(weighted by its count), so verdicts and counts are those of every row; a detector whose shape no value has
does not run at all. A column of few distinct values is counted per value and tested once per batch; one
of mostly distinct values (ids) is tested row by row, and only what the gate lets through is counted.
Date and Datetime columns are only checked for dates of birth, without parsing, and a column all of whose
dates lie outside the birth window is settled from its smallest and largest; floats, decimals, booleans and
times are not scanned (no detector can match them); integers are read as text (cards and dates get stored
as numbers), and counted before they are cast. A column a caller proves inert (no value it may hold matches
a detector, see :func:`pipelines.classify.inert_columns`) can have no finding, and is not read at all.
:class:`Scan` adds a batch up frame by frame, in flat memory; :func:`detect` is one frame's scan.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import polars as pl

from governance._pii_patterns import DETECTORS, NAME_HINTS
from governance.detectors import (
    CANDIDATE_OR_BLANK,
    COLUMN,
    RAW,
    TEXT,
    WEIGHT,
    Plan,
    birth_window,
    births,
    counted,
    merge_candidates,
    plan_text,
    reading,
    text_of,
    verdict_counts,
)
from governance.errors import GovernanceError
from schemas.contract import Contract

__all__ = [
    "CHECKSUM_VALIDATED",
    "COVERS",
    "DETECTORS",
    "LEVELS",
    "ClassificationError",
    "Confidence",
    "Drift",
    "Finding",
    "Scan",
    "detect",
    "drift",
    "matches_none",
    "row_verdicts",
]

Confidence = Literal["low", "medium", "high"]
LEVELS: tuple[Confidence, ...] = ("low", "medium", "high")
CHECKSUM_VALIDATED = frozenset({"iban", "payment_card"})
# Declared piiType -> detectors whose findings it already covers. ``free_text`` is declared for columns that
# may hold anything personal, so it covers every detector; other kinds cover only themselves.
COVERS: Mapping[str, frozenset[str]] = {"free_text": frozenset(DETECTORS)}


class ClassificationError(GovernanceError, ValueError):
    """:func:`detect` was asked for a column the frame lacks or cannot read as text."""


@dataclass(frozen=True)
class Finding:
    """One detector's verdict on one column: how many non-null values match, and how sure it is."""

    column: str
    detector: str
    matches: int
    non_null: int
    ratio: float
    confidence: Confidence
    evidence: str


@dataclass(frozen=True)
class Drift:
    """A declared column holding personal data of a kind its contract does not declare."""

    column: str
    detector: str
    ratio: float
    confidence: Confidence
    message: str


def row_verdicts(frame: pl.DataFrame, column: str, *, today: date) -> pl.DataFrame:
    """Each detector's verdict on each row of ``column`` (Boolean, null where the value is missing).

    What :func:`detect` counts, row by row: for explaining a finding to an owner and for tests.
    """
    plan = Plan()
    verdicts, _ = plan_text(plan, today)
    present = pl.col(TEXT).is_not_null()
    return (
        plan.apply(frame.lazy().select(text_of(column).alias(TEXT)))
        .select([pl.when(present).then(verdicts[det]).alias(det) for det in DETECTORS])
        .collect(engine="in-memory")  # the streaming engine spends several times the CPU on this plan
    )


def _hint(column: str, detector: str) -> bool:
    return re.search(NAME_HINTS[detector], column.lower()) is not None


def _confidence(detector: str, ratio: float, hint: bool, span_years: int) -> Confidence:
    if detector in CHECKSUM_VALIDATED:
        return "high"
    if detector in ("email", "national_id", "ip_address"):
        level = 2 if ratio >= 0.8 else 1
    elif detector == "free_text":
        level = 1
    elif detector == "date_of_birth":
        level = 1 if span_years >= 20 else 0
    else:
        level = 1 if ratio >= 0.3 else 0
    return LEVELS[min(level + hint, 2)]


FEW_DISTINCT = 0.2  # a column with at most this share of distinct values is counted per distinct value
OPTIMIZATIONS = (
    pl.QueryOptFlags.none()
)  # a frame's counting query is plain: optimising it costs, gains nothing
POOL_ROWS = 1_000_000  # distinct candidate values pooled before the detectors run (a run has a fixed cost)


@dataclass
class Scan:
    """Every detector over every row of a batch's columns, added up frame by frame in flat memory.

    Each :meth:`add` counts the frame's non-null values and keeps distinct values with their counts: every
    one of a column of few distinct values (judged on its first frame), only the candidates
    (:data:`~governance.detectors.CANDIDATE`) and blanks of the others, in one query per frame. The
    blanks come off the non-null counts and the detectors run on the candidates when those pile up past
    :data:`POOL_ROWS`, and on what is left at :meth:`findings`. The counts are exactly those of running
    every detector on every row of the whole batch at once.

    ``inert`` names columns no value of which can match a detector (a caller proves it, e.g. from the
    rules every value passed: see :func:`pipelines.classify.inert_columns`). Such a column can have no
    finding, whatever its counts, so it is not read at all.
    """

    today: date
    pool_rows: int = POOL_ROWS
    few_distinct: float = FEW_DISTINCT
    inert: Collection[str] = frozenset()
    rows: int = 0
    _kinds: dict[str, str] = field(default_factory=dict)  # column -> "text" | "date" | "none" (order kept)
    _counts: dict[str, dict[str, int]] = field(default_factory=dict)
    _born: dict[str, tuple[int, int]] = field(default_factory=dict)
    _pool: list[pl.DataFrame] = field(default_factory=list)
    _pooled: int = 0
    _by_value: dict[str, bool] = field(default_factory=dict)  # text column -> counted per distinct value

    def add(self, frame: pl.DataFrame, columns: Sequence[str]) -> None:
        """Count one frame of the batch; ``columns`` must be readable (see :func:`detect`)."""
        for name in columns:
            if name not in self._kinds:
                kind = reading(frame.schema[name])
                if kind is None:
                    raise ClassificationError(
                        f"column {name!r} has no text form (nested, binary or duration). "
                        "Fix: scan only columns that hold text, numbers or dates."
                    )
                self._kinds[name] = kind
                self._counts[name] = {}
        self.rows += frame.height
        if frame.height == 0:
            return
        index = {name: i for i, name in enumerate(self._kinds)}
        texts = [c for c in columns if self._kinds[c] == "text"]
        undecided = [c for c in texts if c not in self._by_value and c not in self.inert]
        if undecided:  # judged on the first frame a column comes in
            shares = frame.select(pl.col(c).n_unique() / frame.height for c in undecided).row(0)
            self._by_value.update(
                (c, share <= self.few_distinct) for c, share in zip(undecided, shares, strict=True)
            )
        lazy, schema = frame.lazy(), frame.schema
        parts: list[pl.LazyFrame] = []
        extremes: list[pl.Expr] = []
        dates: list[str] = []  # date columns with a value, whose extremes are asked for
        for name in columns:
            values, dtype = frame.get_column(name), schema[name]
            if self._kinds[name] == "none" or name in self.inert:
                continue
            non_null = values.len() - values.null_count()
            self._bump(name, "non_null", non_null)  # blank texts are taken off when the pool is tested
            if self._kinds[name] == "date":
                if non_null:
                    physical = pl.col(name).to_physical()
                    extremes += [
                        physical.min().alias(f"{len(dates)}min"),
                        physical.max().alias(f"{len(dates)}max"),
                    ]
                    dates.append(name)
                continue
            text = pl.col(name) if isinstance(dtype, pl.String) else pl.col(name).cast(pl.String)
            if self._by_value[name]:
                parts.append(counted(lazy, pl.col(name), index[name]))
            else:
                parts.append(counted(lazy, text.filter(text.str.contains(CANDIDATE_OR_BLANK)), index[name]))
        queries = ([pl.concat(parts)] if parts else []) + ([lazy.select(extremes)] if extremes else [])
        results = pl.collect_all(queries, engine="in-memory", optimizations=OPTIMIZATIONS) if queries else []
        if extremes:
            extreme = iter(results.pop().row(0))
            for name in dates:  # a column whose dates all lie outside the birth window holds none
                lo, hi = next(extreme), next(extreme)
                first, last = birth_window(schema[name], self.today)
                if hi >= first and lo <= last:
                    born, *years = births(frame.get_column(name), self.today)
                    self._bump(name, "date_of_birth", born)
                    self._years(name, *years)
        if parts and results[0].height:
            self._pool.append(results[0])
            self._pooled += results[0].height
            if self._pooled >= self.pool_rows:
                self._run()

    def _run(self) -> None:
        """The pooled distinct values: blank ones taken off the non-null counts; the detectors run over the
        others, their weighted matches added to the counts."""
        if not self._pool:
            return
        pooled = merge_candidates(self._pool)
        self._pool, self._pooled = [], 0
        names = list(self._kinds)
        blank = pooled.filter(~pl.col(RAW).str.contains(r"\S")).group_by(COLUMN).agg(pl.col(WEIGHT).sum())
        for column, n in blank.iter_rows():
            self._bump(names[column], "non_null", -n)
        for row in verdict_counts(pooled, self.today).iter_rows(named=True):
            name = names[row.pop(COLUMN)]
            self._years(name, row.pop("born_min"), row.pop("born_max"))
            for det, n in row.items():
                self._bump(name, det, int(n or 0))

    def _bump(self, column: str, measure: str, n: int) -> None:
        self._counts[column][measure] = self._counts[column].get(measure, 0) + n

    def _years(self, column: str, first: int | None, last: int | None) -> None:
        if first is None or last is None:
            return
        lo, hi = self._born.get(column, (first, last))
        self._born[column] = (min(lo, first), max(hi, last))

    def findings(self, *, threshold: float = 0.1, min_matches: int = 3) -> dict[str, list[Finding]]:
        """Every scanned column, mapped to its findings (highest ratio first); empty when nothing is found."""
        self._run()
        result: dict[str, list[Finding]] = {}
        for name in self._kinds:
            row = self._counts[name]
            non_null = row.get("non_null", 0)
            lo, hi = self._born.get(name, (0, 0))
            span = hi - lo
            found: list[Finding] = []
            for det in DETECTORS:
                matches = row.get(det, 0)
                ratio = matches / non_null if non_null else 0.0
                if matches < min_matches or ratio < threshold:
                    continue
                hint = _hint(name, det)
                evidence = f"{det}: {matches} of {non_null} non-null values match ({ratio:.1%})"
                if det in CHECKSUM_VALIDATED:
                    evidence += ", checksum-validated"
                if det == "date_of_birth":
                    evidence += f", birth years spanning {span} years"
                if hint:
                    evidence += ", column name agrees"
                confidence = _confidence(det, ratio, hint, span)
                found.append(Finding(name, det, matches, non_null, ratio, confidence, evidence))
            result[name] = sorted(found, key=lambda f: -f.ratio)
        return result


def matches_none(values: Mapping[str, Sequence[str]], today: date) -> set[str]:
    """The names in ``values`` none of whose values any detector matches (each list read as a column)."""
    names = list(values)
    if not names:
        return set()
    every = pl.DataFrame(
        {
            COLUMN: [i for i, n in enumerate(names) for _ in values[n]],
            RAW: [v for n in names for v in values[n]],
        },
        schema={COLUMN: pl.UInt32, RAW: pl.String},
    )
    counts = verdict_counts(every.with_columns(pl.lit(1, pl.Int64).alias(WEIGHT)), today)
    matched = counts.filter(pl.any_horizontal(pl.col(DETECTORS) > 0)).get_column(COLUMN)
    return set(names) - {names[i] for i in matched}


def detect(
    frame: pl.DataFrame,
    columns: list[str] | None = None,
    *,
    today: date,
    threshold: float = 0.1,
    min_matches: int = 3,
) -> dict[str, list[Finding]]:
    """Run every detector over every row of ``columns`` (default: all scannable columns) of one frame.

    Parameters
    ----------
    frame
        The batch; non-string columns are read as their text form (dates as ISO, numbers as digits).
    columns
        The columns to scan; nested and binary columns cannot be scanned.
    today
        The day ages are computed on for ``date_of_birth`` (a batch's business date keeps reruns identical).
    threshold, min_matches
        A finding needs at least ``min_matches`` matching values and ``matches / non_null >= threshold``.

    Returns
    -------
    Every scanned column, mapped to its findings (highest ratio first); an empty list means nothing found.
    """
    if not 0 < threshold <= 1 or min_matches < 1:
        raise ClassificationError(
            f"threshold {threshold} / min_matches {min_matches} out of range. "
            "Fix: pass 0 < threshold <= 1 and min_matches >= 1."
        )
    schema = frame.schema
    if columns is None:
        names = [c for c in frame.columns if reading(schema[c]) is not None]
    else:
        missing = [c for c in columns if c not in schema]
        unreadable = [c for c in columns if c in schema and reading(schema[c]) is None]
        if missing or unreadable:
            problems = ([f"{missing} not in the frame"] if missing else []) + (
                [f"{unreadable} have no text form (nested, binary or duration)"] if unreadable else []
            )
            raise ClassificationError(
                f"cannot classify column(s): {'; '.join(problems)}. "
                "Fix: pass columns of the frame that hold text, numbers or dates."
            )
        names = list(dict.fromkeys(columns))
    scan = Scan(today)
    scan.add(frame, names)
    return scan.findings(threshold=threshold, min_matches=min_matches)


def drift(
    contract: Contract,
    findings: Mapping[str, Sequence[Finding]],
    min_confidence: Confidence = "medium",
) -> list[Drift]:
    """Declared columns where a detector (at ``min_confidence`` or above) finds undeclared personal data.

    A column's declared ``piiType`` covers findings of the same kind (``free_text`` covers every kind, see
    :data:`COVERS`). Findings for columns the contract does not declare are ignored here: such columns are
    never extracted, so never visible. Messages name column, detector and ratio, never a value.
    """
    floor = LEVELS.index(min_confidence)
    declared = {c.name: c for c in contract.columns}
    drifts: list[Drift] = []
    for name, column_findings in findings.items():
        column = declared.get(name)
        if column is None:
            continue
        covered = COVERS.get(column.pii or "", frozenset({column.pii}))
        for f in column_findings:
            if LEVELS.index(f.confidence) < floor or f.detector in covered:
                continue
            has = f"piiType {column.pii}" if column.pii else "no piiType"
            drifts.append(
                Drift(
                    name,
                    f.detector,
                    f.ratio,
                    f.confidence,
                    f"{contract.id}: column {name!r}: detector {f.detector} matched {f.matches} of {f.non_null} "
                    f"non-null values ({f.ratio:.1%}, {f.confidence} confidence), but {contract.path.name} "
                    f"declares {has} for it (classified {column.classification}). Fix: declare piiType "
                    f"{f.detector} and classify the column confidential or restricted, or fix the source so "
                    "it stops sending this data.",
                )
            )
    return drifts
