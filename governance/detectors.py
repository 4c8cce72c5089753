"""The detectors as vectorised polars expressions, and the cheap gate in front of them.

Each detector is an expression over a value's stripped text (:func:`text_of`), built in stages by
:func:`plan_text` so shared work (a compact form, a parsed date) is done once. :data:`CANDIDATE` is a
necessary condition of every detector, proved pattern by pattern below: a value it rejects cannot match
any detector, so the expressions run only on the values it lets through (once per distinct value, weighted
by how often the value occurs). What counts as a match is in :mod:`governance._pii_patterns`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time

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
CANDIDATE = (
    r"^\s*[+().\-/\d]"
    r"|^\s*\p{Lu}\D*$"
    r"|\S\s+\S"
    r"|[@.:]"
    rf"|(?i:{STREET_WORDS})"
    r"|^\s*[A-Za-z]{2}\d{6}[A-Da-d]\s*$"
    r"|^\s*[A-Za-z]{2}\d{2}[A-Za-z0-9-]{11,45}\s*$"
)


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


class Plan:
    """Intermediate columns in stages, so shared work (stripped text, compact form, parsed date) is done once.

    polars does not reliably share common subexpressions this deep, and a detector reading one parsed value
    ten times would otherwise parse it ten times. Stage n may only read columns made in stages before it.
    """

    def __init__(self) -> None:
        self.stages: list[dict[str, pl.Expr]] = []

    def add(self, stage: int, name: str, expr: pl.Expr) -> pl.Expr:
        while len(self.stages) <= stage:
            self.stages.append({})
        self.stages[stage][name] = expr
        return pl.col(name)

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        for stage in self.stages:
            frame = frame.with_columns(**stage)
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


def _free_text(text: pl.Expr) -> pl.Expr:
    """``text``: values of 20+ characters and 3+ words (else null)."""
    return (
        text.str.contains(EMAIL_IN)
        | text.str.contains(PHONE_IN)
        | _contains_checked(text, SSN_IN, _ssn)  # the pattern already has the SSN shape
        | _contains_checked(text, IBAN_IN, _iban_in)
        | _contains_checked(text, CARD_IN, _card_in)
    )


def plan_text(plan: Plan, today: date) -> tuple[dict[str, pl.Expr], pl.Expr]:
    """Add the intermediate columns over the text column :data:`TEXT` to ``plan``.

    Returns the per-row verdicts (false for missing values) by detector, and the parsed birth date.
    Regular expressions are cheap on every row; parsing, slicing and casting are not, so they run on
    candidate columns that are null except where a shape regex matched (``when(shape).then(text)``).
    """
    t = pl.col(TEXT)

    def candidate(key: str, shape: pl.Expr) -> pl.Expr:
        return plan.add(0, f"__assay_{key}", pl.when(shape).then(t))

    date_like = candidate("date", t.str.contains(date_shape(today)))
    phone = candidate("phone", t.str.contains(PHONE_CANDIDATE))
    name_like = candidate("name", t.str.contains(NAME_SHAPE))
    ssn = candidate("ssn", t.str.contains(SSN))
    nino = candidate("nino", t.str.contains(NINO_SHAPE))
    iban = candidate("iban", t.str.contains(IBAN_SHAPE))
    card = candidate("card", t.str.contains(CARD))
    prose = (t.str.len_chars() >= 20) & t.str.contains(r"\S\s+\S+\s+\S") & t.str.contains(r"[\d@]")
    long_text = candidate("long", prose)

    born = plan.add(1, "__assay_born", _birth_date(date_like, today))
    core = plan.add(1, "__assay_core", phone.str.replace(PHONE_EXTENSION, ""))
    given = plan.add(1, "__assay_given", _given_name(name_like))
    nino = plan.add(1, "__assay_nino_c", nino.str.to_uppercase().str.replace_all(r"\s", ""))
    iban = plan.add(1, "__assay_iban_c", iban.str.to_uppercase().str.replace_all(r"[\s-]", ""))
    card = plan.add(1, "__assay_card_c", card.str.replace_all(r"[ -]", ""))
    prose_only = pl.when(~long_text.str.contains(NOT_FREE_TEXT)).then(long_text)
    long_text = plan.add(1, "__assay_prose", prose_only)
    iban_digits = plan.add(2, "__assay_iban_digits", _iban_digits(iban))
    card = plan.add(2, "__assay_card_issued", pl.when(_card_issuer(card)).then(card))
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
        "free_text": _free_text(long_text),
    }
    return {det: plan.add(3, f"__assay_is_{det}", verdicts[det].fill_null(False)) for det in DETECTORS}, born


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


def typed_birth_dates(name: str, dtype: pl.DataType, today: date) -> list[pl.Expr]:
    """``non_null``, ``date_of_birth`` and the first and last birth year of a Date or Datetime column
    (midnight moments only), as aggregates that add up across frames."""
    value = pl.col(name)
    day = value.dt.date() if isinstance(dtype, pl.Datetime) else value
    if isinstance(dtype, pl.Datetime):
        day = pl.when(value.dt.time() == time(0)).then(day)
    born = pl.when(day.is_between(years_before(today, 100), years_before(today, 16))).then(day)
    return [
        value.is_not_null().sum().cast(pl.Int64).alias(f"{name}\x00non_null"),
        born.is_not_null().sum().cast(pl.Int64).alias(f"{name}\x00date_of_birth"),
        born.dt.year().min().alias(f"{name}\x00born_min"),
        born.dt.year().max().alias(f"{name}\x00born_max"),
    ]


def present_counts(frame: pl.DataFrame, texts: list[str]) -> dict[str, int]:
    """Non-null values of each text column: those whose stripped text is not empty (as :func:`text_of`)."""
    if not texts:
        return {}
    row = frame.select(
        [pl.col(n).cast(pl.String).str.contains(r"\S").sum().cast(pl.Int64).alias(n) for n in texts]
    ).row(0)
    return {n: int(v or 0) for n, v in zip(texts, row, strict=True)}


def candidate_values(frame: pl.DataFrame, texts: list[tuple[int, str]]) -> pl.DataFrame:
    """The distinct values of the text columns that :data:`CANDIDATE` lets through, with how often each occurs.

    ``texts`` pairs each column with a number that stays the same across frames, so frames' results can
    be concatenated and added up (:func:`merge_candidates`). Columns: :data:`COLUMN`, :data:`RAW`, :data:`WEIGHT`.
    """
    parts = [
        frame.lazy()
        .select(pl.lit(i, pl.UInt32).alias(COLUMN), pl.col(name).cast(pl.String).alias(RAW))
        .filter(pl.col(RAW).str.contains(CANDIDATE))
        for i, name in texts
    ]
    if not parts:
        return pl.DataFrame(schema={COLUMN: pl.UInt32, RAW: pl.String, WEIGHT: pl.Int64})
    return pl.concat(parts).group_by(COLUMN, RAW).agg(pl.len().cast(pl.Int64).alias(WEIGHT)).collect()


def distinct_counts(frame: pl.DataFrame, texts: list[tuple[int, str]]) -> tuple[dict[str, int], pl.DataFrame]:
    """:func:`present_counts` and :func:`candidate_values` at once, for columns holding few distinct values.

    Each column's values are counted first, and both tests run once per distinct value, weighted by its
    count: the same figures, without a regular expression per row. A column of mostly distinct values
    (ids) is cheaper the other way, testing every row and counting only the few candidates.
    """
    present: dict[str, int] = {}
    parts = []
    for i, name in texts:
        counted = (
            frame.lazy()
            .select(pl.col(name).cast(pl.String).alias(RAW))
            .group_by(RAW)
            .agg(pl.len().cast(pl.Int64).alias(WEIGHT))
            .collect()
        )
        present[name] = int(counted.filter(pl.col(RAW).str.contains(r"\S")).get_column(WEIGHT).sum())
        parts.append(
            counted.filter(pl.col(RAW).str.contains(CANDIDATE)).select(
                pl.lit(i, pl.UInt32).alias(COLUMN), RAW, WEIGHT
            )
        )
    if not parts:
        return present, pl.DataFrame(schema={COLUMN: pl.UInt32, RAW: pl.String, WEIGHT: pl.Int64})
    return present, pl.concat(parts)


def merge_candidates(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Several frames' :func:`candidate_values` as one, each distinct value once with its weights summed."""
    if len(parts) == 1:
        return parts[0]
    return pl.concat(parts).group_by(COLUMN, RAW).agg(pl.col(WEIGHT).sum())


def verdict_counts(candidates: pl.DataFrame, today: date) -> pl.DataFrame:
    """Per column number: how many values (weighted) each detector matches, and the birth years' range.

    Every detector runs on every distinct candidate value; a value occurring n times counts n times.
    """
    plan = Plan()
    verdicts, born = plan_text(plan, today)
    weight = pl.col(WEIGHT)
    return (
        plan.apply(candidates.lazy().with_columns(text_of(RAW).alias(TEXT)))
        .group_by(COLUMN)
        .agg(
            *(weight.filter(e).sum().alias(det) for det, e in verdicts.items()),
            born.dt.year().min().alias("born_min"),
            born.dt.year().max().alias("born_max"),
        )
        .collect()
    )
