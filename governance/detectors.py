"""The detectors as vectorised polars expressions, and the cheap gate in front of them.

Each detector is an expression over a value's stripped text (:func:`text_of`), built in stages by
:func:`plan_text` so shared work (a compact form, a parsed date) is done once. :data:`CANDIDATE` is a
necessary condition of every detector, proved pattern by pattern below: a value it rejects cannot match
any detector, so the expressions run only on the values it lets through (once per distinct value, weighted
by how often the value occurs), and a detector whose shape none of them has does not run at all
(:meth:`Plan.run`). :func:`stand_ins` tells which characters :data:`CANDIDATE` cannot tell apart, so a
caller can prove that no value of a given form gets through it. What counts as a match is in
:mod:`governance._pii_patterns`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, time
from functools import lru_cache

import polars as pl

from governance._pii_patterns import (
    ADDRESS,
    CARD,
    CARD_IN,
    COMPANY,
    DETECTORS,
    EMAIL,
    EMAIL_IN,
    GIVEN_NAMES,
    IBAN,
    IBAN_IN,
    IBAN_SHAPE,
    IP,
    LETTER_DIGITS,
    LETTERS,
    NAME_SHAPE,
    NINO,
    NINO_BAD_PREFIX,
    NINO_SHAPE,
    NOT_FREE_TEXT,
    NOT_PHONE,
    PHONE_CANDIDATE,
    PHONE_EXTENSION,
    PHONE_GROUPS,
    PHONE_IN,
    PHONE_INTL,
    PHONE_PARENS,
    PHONE_TRUNK,
    SSN,
    SSN_IN,
    STREET_WORDS,
    date_shape,
)

TEXT = "__assay_text"
COLUMN = "__assay_column"
RAW = "__assay_raw"
WEIGHT = "__assay_n"

# A necessary condition of every detector, on a value as it is stored (before stripping, hence ``^\s*`` and
# ``\s*$``; ``\S\s+\S`` is whitespace inside the stripped text). Why each detector implies one branch:
#   phone (PHONE_CANDIDATE), date of birth (date_shape), SSN, card, and every street-number-first address
#     start with ``+``, ``(``, ``)``, ``.``, ``-``, ``/`` or a digit;
#   person name (NAME_SHAPE): a capital letter first, then letters, apostrophes, hyphens, dots, commas and
#     spaces only, never a digit;
#   free text, postcode + city, street-number-first and ``calle``-style addresses, spaced NINOs and IBANs:
#     whitespace between two non-blanks;
#   street-name-first addresses without a space (``Hauptstr.5``): one of the street words;
#   email: ``@``; IP address: IPv4 has ``.``, every IPv6 form ``:``;
#   NINO and IBAN without spaces: their shapes, verbatim.
# A character class added here must be added to CANDIDATE_CLASSES too (stand_ins relies on it).
CANDIDATE = (
    r"^\s*[+().\-/\d]"
    r"|^\s*\p{Lu}\D*$"
    r"|\S\s+\S"
    r"|[@.:]"
    rf"|(?i:{STREET_WORDS})"
    r"|^\s*[A-Za-z]{2}\d{6}[A-Da-d]\s*$"
    r"|^\s*[A-Za-z]{2}\d{2}[A-Za-z0-9-]{11,45}\s*$"
)


CANDIDATE_OR_BLANK = rf"{CANDIDATE}|^\s*$"  # the candidates and the values whose stripped text is empty

# Every character class :data:`CANDIDATE` tests. Two characters that pass the same of these classes are
# interchangeable in it: a value with one put for the other is let through or held back alike.
CANDIDATE_CLASSES = (
    r"\s",
    r"\d",
    r"\p{Lu}",
    r"[+().\-/]",
    r"[@.:]",
    r"[A-Za-z]",
    r"[A-Da-d]",
    r"[A-Za-z0-9-]",
    *(f"(?i:{re.escape(c)})" for c in sorted(set(STREET_WORDS.replace("\\", "").replace("|", "")))),
)


def stand_ins(chars: Iterable[str]) -> dict[str, str]:
    """Each of ``chars`` mapped to one character standing in for every character of ``chars`` that is
    interchangeable with it in :data:`CANDIDATE` (the smallest)."""
    chars = sorted(set(chars))
    char = pl.col(RAW)
    passes = pl.DataFrame({RAW: chars}, schema={RAW: pl.String}).select(
        char.str.contains(f"^(?:{c})$").alias(c) for c in CANDIDATE_CLASSES
    )
    firsts: dict[tuple[bool, ...], str] = {}
    return {c: firsts.setdefault(signature, c) for c, signature in zip(chars, passes.rows(), strict=True)}


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


class Plan:
    """Intermediate columns in stages, so shared work (stripped text, compact form, parsed date) is done once.

    polars does not reliably share common subexpressions this deep, and a detector reading one parsed value
    ten times would otherwise parse it ten times. Stage n may only read columns made in stages before it.

    A column may name an ``owner`` (a detector, or one part of one): each of the owner's columns is null on
    a value where the owner's ``gate`` columns of an earlier stage (or the same one) are all null; so a
    verdict an idle owner's columns would give is null, which counts as no match (see :meth:`run`).
    """

    def __init__(self) -> None:
        self.stages: list[dict[str, pl.Expr]] = []
        self.owner: dict[str, str] = {}
        self.gates: set[str] = set()

    def add(
        self, stage: int, name: str, expr: pl.Expr, owner: str | None = None, *, gate: bool = False
    ) -> pl.Expr:
        while len(self.stages) <= stage:
            self.stages.append({})
        self.stages[stage][name] = expr
        if owner is not None:
            self.owner[name] = owner
        if gate:
            self.gates.add(name)
        return pl.col(name)

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        for stage in self.stages:
            frame = frame.with_columns(**stage)
        return frame

    def run(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The stages over ``frame``, eagerly, for counting. An owner is idle once all its gates of one stage
        are null on every row: its later columns are not computed but null (which, for a verdict, counts
        as it would: no match).
        """
        idle: set[str] = set()
        for stage in self.stages:
            kept = {n: e for n, e in stage.items() if self.owner.get(n) not in idle}
            if len(kept) < len(stage):
                schema = frame.lazy().with_columns(**stage).collect_schema()
                kept.update((n, pl.lit(None, schema[n])) for n in stage if n not in kept)
            frame = frame.with_columns(**kept)
            gates: dict[str, list[str]] = {}
            for name in stage:
                if name in self.gates and self.owner[name] not in idle:
                    gates.setdefault(self.owner[name], []).append(name)
            idle.update(
                o for o, names in gates.items() if all(frame[n].null_count() == frame.height for n in names)
            )
        return frame


def text_of(name: str) -> pl.Expr:
    """Column ``name`` as stripped text; empty strings count as missing."""
    v = pl.col(name).cast(pl.String).str.strip_chars()
    return pl.when(v.str.len_bytes() > 0).then(v)


def _phone(core: pl.Expr) -> pl.Expr:
    """``core``: a phone-shaped value (:data:`PHONE_CANDIDATE`) without its extension, else null."""
    return (
        (
            core.str.contains(PHONE_INTL)
            | core.str.contains(PHONE_PARENS)
            | core.str.contains(PHONE_GROUPS)
            | core.str.contains(PHONE_TRUNK)
        )
        & core.str.contains(r"[1-9]")
        & ~core.str.contains(NOT_PHONE)
    )


def _given_name(name: pl.Expr) -> pl.Expr:
    """The lower-cased given name of a name-shaped value (``First Last`` or ``Last, First``)."""
    comma = name.str.extract(r"^[^,]+,\s*(\p{L}+)", 1)
    return comma.fill_null(name.str.extract(r"^(\p{L}+)", 1)).str.to_lowercase()


def _person_name(name: pl.Expr, given: pl.Expr) -> pl.Expr:
    """``name``: a name-shaped value, else null; ``given``: its given name."""
    return given.is_in(sorted(GIVEN_NAMES)) & (name.str.len_chars() <= 60) & ~name.str.contains(COMPANY)


def _birth_date(date_like: pl.Expr, today: date) -> pl.Expr:
    """``date_like``: a date-shaped value with a plausible year (:func:`date_shape`), else null.

    Returns its day if that makes someone 16 to 100 years old on ``today``. Year-first values are read as
    ``YYYYMMDD`` once their separators are gone; day-and-month-first ones day first (``DD.MM.YYYY``),
    then month first (``MM/DD/YYYY``).
    """
    year_first = date_like.str.slice(0, 10).str.replace_all(r"[-/]", "").str.to_date("%Y%m%d", strict=False)
    dotted = date_like.str.replace_all(r"[/-]", ".")
    day = pl.coalesce(
        year_first,
        dotted.str.to_date("%d.%m.%Y", strict=False),
        dotted.str.to_date("%m.%d.%Y", strict=False),
    )
    return pl.when(day.is_between(years_before(today, 100), years_before(today, 16))).then(day)


def _ssn(ssn: pl.Expr) -> pl.Expr:
    """``ssn``: an SSN-shaped value (:data:`SSN`), else null."""
    area = ssn.str.slice(0, 3).cast(pl.Int32, strict=False)
    group = ssn.str.slice(4, 2).cast(pl.Int32, strict=False)
    serial = ssn.str.slice(7, 4).cast(pl.Int32, strict=False)
    return ~area.is_in([0, 666]) & (area < 900) & (group != 0) & (serial != 0)


def _nino(compact: pl.Expr) -> pl.Expr:
    return compact.str.contains(NINO) & ~compact.str.slice(0, 2).is_in(NINO_BAD_PREFIX)


def _iban_digits(iban: pl.Expr) -> pl.Expr:
    """``BBAN + country + check`` with letters as two digits (A=10 ... Z=35), left-padded to 70 digits."""
    rearranged = iban.str.slice(4) + iban.str.slice(0, 4)
    return rearranged.str.replace_many(LETTERS, LETTER_DIGITS).str.zfill(70)


def _iban_valid(iban: pl.Expr, digits: pl.Expr) -> pl.Expr:
    """Country, length and ISO 7064 mod-97 of an IBAN-shaped value, as integer expressions.

    The up-to-68-digit number (leading zeros do not change a remainder) is folded seven digits at a time:
    ``r = (r * 10**7 + chunk) % 97``, which stays far inside Int64; a valid IBAN leaves 1.
    """
    remainder = pl.lit(0, pl.Int64)
    for k in range(10):
        chunk = digits.str.slice(7 * k, 7).cast(pl.Int64, strict=False)
        remainder = (remainder * 10_000_000 + chunk) % 97
    return iban.str.contains(IBAN) & (remainder == 1)


def _card_issuer(digits: pl.Expr) -> pl.Expr:
    """An issuer prefix with one of its lengths.

    Thirteen-digit numbers are card-shaped but no prefix here accepts them: the 13-digit Visa is retired, and
    EAN-13 barcodes (whose own check digit passes Luhn one time in ten) would otherwise look like cards.
    """
    n = digits.str.len_chars()
    p2 = digits.str.slice(0, 2).cast(pl.Int32, strict=False)
    p3 = digits.str.slice(0, 3).cast(pl.Int32, strict=False)
    p4 = digits.str.slice(0, 4).cast(pl.Int32, strict=False)
    return (
        ((p2 // 10 == 4) & n.is_in([16, 19]))  # Visa
        | ((p2.is_between(51, 55) | p4.is_between(2221, 2720) | p4.is_between(2200, 2204)) & (n == 16))
        | (p2.is_in([34, 37]) & (n == 15))  # American Express
        | (((p4 == 6011) | p3.is_between(644, 649) | p2.is_in([62, 65])) & n.is_between(16, 19))
        | ((p2 == 36) & n.is_between(14, 19))  # Diners Club
        | ((p3.is_between(300, 305) | p2.is_in([38, 39])) & n.is_between(16, 19))
        | (p4.is_between(3528, 3589) & n.is_between(16, 19))  # JCB
        | (((p2 == 50) | p2.is_between(56, 58)) & n.is_between(16, 19))  # Maestro
    )


def _luhn(digits: pl.Expr) -> pl.Expr:
    """Luhn over a digit string: reversed, cut into pairs (a digit kept, the next one doubled), summed % 10.

    Runs on the pairs of card candidates only (a list column, null elsewhere), so its cost follows the
    number of candidates, not of rows.
    """
    pairs = digits.str.reverse().str.extract_all(r"\d\d?")
    kept = pl.element().str.slice(0, 1).cast(pl.UInt16, strict=False)
    doubled = pl.element().str.slice(1, 1).cast(pl.UInt16, strict=False).fill_null(0) * 2
    contribution = (
        kept + doubled - pl.when(doubled > 9).then(pl.lit(9, pl.UInt16)).otherwise(pl.lit(0, pl.UInt16))
    )
    return pairs.list.eval(contribution).list.sum() % 10 == 0


def _contains_checked(v: pl.Expr, pattern: str, valid: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    """Some substring matching ``pattern`` passes ``valid`` (a checksum or validity rule)."""
    return v.str.extract_all(pattern).list.eval(valid(pl.element())).list.any()


def _iban_in(e: pl.Expr) -> pl.Expr:
    compact = e.str.replace_all(r"\s", "")
    return _iban_valid(compact, _iban_digits(compact))


def _card_in(e: pl.Expr) -> pl.Expr:
    digits = e.str.replace_all(r"[ -]", "")
    return _card_issuer(digits) & _luhn(digits)


_CHECKED_IN_TEXT = (("ssn", SSN_IN, _ssn), ("iban", IBAN_IN, _iban_in), ("card", CARD_IN, _card_in))


def plan_text(plan: Plan, today: date) -> tuple[dict[str, pl.Expr], pl.Expr]:
    """Add the intermediate columns over the text column :data:`TEXT` to ``plan``.

    Returns the per-row verdicts (false for missing values) by detector, and the parsed birth date.
    Regular expressions are cheap on every row; parsing, slicing and casting are not, so they run on
    candidate columns that are null except where a shape regex matched (``when(shape).then(text)``).
    """
    t = pl.col(TEXT)

    def candidate(key: str, shape: pl.Expr, owner: str) -> pl.Expr:
        return plan.add(0, f"__assay_{key}", pl.when(shape).then(t), owner, gate=True)

    date_like = candidate("date", t.str.contains(date_shape(today)), "date_of_birth")
    phone = candidate("phone", t.str.contains(PHONE_CANDIDATE), "phone")
    name_like = candidate("name", t.str.contains(NAME_SHAPE), "person_name")
    ssn = candidate("ssn", t.str.contains(SSN), "national_id")
    nino = candidate("nino", t.str.contains(NINO_SHAPE), "national_id")
    iban = candidate("iban", t.str.contains(IBAN_SHAPE), "iban")
    card = candidate("card", t.str.contains(CARD), "payment_card")
    prose = (t.str.len_chars() >= 20) & t.str.contains(r"\S\s+\S+\s+\S") & t.str.contains(r"[\d@]")
    long_text = candidate("long", prose, "free_text")

    born = plan.add(1, "__assay_born", _birth_date(date_like, today), "date_of_birth")
    core = plan.add(1, "__assay_core", phone.str.replace(PHONE_EXTENSION, ""), "phone")
    given = plan.add(1, "__assay_given", _given_name(name_like), "person_name")
    nino = plan.add(1, "__assay_nino_c", nino.str.to_uppercase().str.replace_all(r"\s", ""), "national_id")
    iban = plan.add(1, "__assay_iban_c", iban.str.to_uppercase().str.replace_all(r"[\s-]", ""), "iban")
    card = plan.add(1, "__assay_card_c", card.str.replace_all(r"[ -]", ""), "payment_card")
    prose_only = pl.when(~long_text.str.contains(NOT_FREE_TEXT)).then(long_text)
    prose = plan.add(1, "__assay_prose", prose_only, "free_text", gate=True)
    iban_digits = plan.add(2, "__assay_iban_digits", _iban_digits(iban), "iban")
    card = plan.add(2, "__assay_card_issued", pl.when(_card_issuer(card)).then(card), "payment_card")
    # Free text holds an email or phone, or a substring (SSN, IBAN, card) passing its check: each check runs
    # only on the texts holding its pattern (null elsewhere: with the other tests or-ed in, no different).
    checked = []
    for key, pattern, valid in _CHECKED_IN_TEXT:
        holding = plan.add(
            2,
            f"__assay_{key}_in",
            pl.when(prose.str.contains(pattern)).then(prose),
            f"free_text/{key}",
            gate=True,
        )
        checked.append(
            plan.add(3, f"__assay_{key}_ok", _contains_checked(holding, pattern, valid), f"free_text/{key}")
        )
    verdicts = {
        "email": t.str.contains(EMAIL),
        "phone": _phone(core),
        "person_name": _person_name(name_like, given),
        "address": t.str.contains(ADDRESS) & (t.str.len_chars() <= 120),
        "date_of_birth": born.is_not_null(),
        "national_id": _ssn(ssn) | _nino(nino),
        "iban": _iban_valid(iban, iban_digits),
        "payment_card": card.str.contains(r"^\d{13,19}$") & _luhn(card),
        "ip_address": t.str.contains(IP),
        "free_text": pl.any_horizontal(prose.str.contains(EMAIL_IN), prose.str.contains(PHONE_IN), *checked),
    }
    return {
        det: plan.add(4, f"__assay_is_{det}", verdicts[det].fill_null(False), det) for det in DETECTORS
    }, born


def reading(dtype: pl.DataType) -> str | None:
    """How detectors read a column of ``dtype``.

    ``text``: every detector, on the text form (integers included: cards, phones and dates get stored as
    numbers). ``date``: dates and moments can only be dates of birth, read without parsing. ``none``: no
    detector can match a float, decimal, boolean or time. ``None``: no text form (nested, binary, duration).
    """
    if isinstance(dtype, pl.String | pl.Categorical | pl.Enum | pl.Null) or dtype.is_integer():
        return "text"
    if isinstance(dtype, pl.Date | pl.Datetime):
        return "date"
    if dtype.is_float() or dtype.is_decimal() or isinstance(dtype, pl.Boolean | pl.Time):
        return "none"
    return None


def counted(frame: pl.LazyFrame, values: pl.Expr, column: int) -> pl.LazyFrame:
    """Each distinct value of ``values`` as text (:data:`RAW`), with how often it occurs (:data:`WEIGHT`),
    numbered ``column`` (:data:`COLUMN`). Numbers and categories are counted as they are; only their
    distinct values are cast. A missing value is counted too (its text is null).

    The texts are copied: a distinct value taken as it is may be a view into the frame's text buffers, and
    a pool of them would keep every frame's buffers alive.
    """
    counts = frame.select(values.alias(RAW).value_counts(name=WEIGHT).alias(COLUMN)).unnest(COLUMN)
    return counts.select(
        pl.lit(column, pl.UInt32).alias(COLUMN),
        pl.col(RAW).cast(pl.String) + pl.lit(""),
        pl.col(WEIGHT).cast(pl.Int64),
    )


EPOCH = date(1970, 1, 1)
_PER_DAY = {"ns": 86_400 * 10**9, "us": 86_400 * 10**6, "ms": 86_400 * 10**3}


def birth_window(dtype: pl.DataType, today: date) -> tuple[int, int]:
    """The smallest and largest physical value (days; a Datetime's time units) that may be a date of birth
    on ``today`` (someone 16 to 100 years old). A column whose values all lie outside holds none.

    A moment's local date is within a day of its UTC date: moments get two days' margin either side.
    """
    first, last = (years_before(today, 100) - EPOCH).days, (years_before(today, 16) - EPOCH).days
    if isinstance(dtype, pl.Datetime):
        per_day = _PER_DAY[dtype.time_unit]
        return (first - 2) * per_day, (last + 3) * per_day - 1
    return first, last


def births(values: pl.Series, today: date) -> tuple[int, int | None, int | None]:
    """A Date or Datetime column's dates of birth (of midnight moments only) and their first and last year."""
    if isinstance(values.dtype, pl.Datetime):
        values = values.filter(values.dt.time() == time(0)).dt.date()
    born = values.filter(values.is_between(years_before(today, 100), years_before(today, 16)))
    years = born.dt.year()
    return born.len(), years.min(), years.max()  # type: ignore[return-value]


def merge_candidates(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Several frames' :func:`counted` values as one, each distinct value once with its weights summed."""
    if len(parts) == 1:
        return parts[0]
    return pl.concat(parts).group_by(COLUMN, RAW).agg(pl.col(WEIGHT).sum())


@lru_cache(maxsize=4)
def _text_plan(today: date) -> tuple[Plan, dict[str, pl.Expr], pl.Expr]:
    """:func:`plan_text`, built once per day (a few thousand expressions; :meth:`Plan.run` only reads it)."""
    plan = Plan()
    verdicts, born = plan_text(plan, today)
    return plan, verdicts, born


def verdict_counts(candidates: pl.DataFrame, today: date) -> pl.DataFrame:
    """Per column number: how many values (weighted) each detector matches, and the birth years' range.

    Every detector runs on every distinct value :data:`CANDIDATE` lets through (the others match none); a
    value occurring n times counts n times. A detector whose shape no value has matches none without
    running (see :meth:`Plan.run`).
    """
    plan, verdicts, born = _text_plan(today)
    frame = plan.run(
        candidates.filter(pl.col(RAW).str.contains(CANDIDATE)).with_columns(text_of(RAW).alias(TEXT))
    )
    weight = pl.col(WEIGHT)
    return frame.group_by(COLUMN).agg(
        *(weight.filter(e).sum().alias(det) for det, e in verdicts.items()),
        born.dt.year().min().alias("born_min"),
        born.dt.year().max().alias("born_max"),
    )
