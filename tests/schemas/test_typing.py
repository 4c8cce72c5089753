"""Typing in validation: the fast typing gives exactly the values and reasons the reference typing gives.

The reference (``reference_typing``) is the typing validation used before the fast paths. Every test
here runs the real :class:`~schemas.validate.Validator` over frames of text and expects, row for row,
the published values and the quarantine reasons that typing implies, for every dialect option.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import Contract, TextFormat, compile_contract, dtype_of, load_contract
from schemas.frame_typing import FrameTyping, localize_values, sample_rows
from schemas.parse import localize
from schemas.validate import RECORD, RECORD_ERROR, CompiledContract, Validator, reason_check
from tests.schemas.reference_typing import typed_and_present

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: test.typing
name: typing
domain: test
version: 1.0.0
status: active
team:
  members:
    - {username: owner@example.com, role: businessOwner}
    - {username: team:ops, role: operationsOwner}
schema:
  - name: typing
    properties:
      - {name: name, logicalType: string, required: true}
      - {name: note, logicalType: string}
      - {name: qty, logicalType: integer, unique: true}
      - {name: amount, logicalType: number, physicalType: "decimal(14,2)", required: true}
      - {name: rate, logicalType: number, physicalType: "decimal(5,2)"}
      - {name: units, logicalType: number, physicalType: "decimal(3,0)"}
      - {name: share, logicalType: number, physicalType: "decimal(2,2)"}
      - {name: ratio, logicalType: number, physicalType: double}
      - {name: flag, logicalType: boolean}
      - {name: day, logicalType: date}
      - {name: booked, logicalType: date, required: true, logicalTypeOptions: {format: DD.MM.YYYY}}
      - {name: at, logicalType: timestamp}
customProperties:
  - property: source
    value: {kind: delimited, path: drop, pattern: "*.csv"}
"""

# Blank to Rust and polars (Unicode White_Space), then some that only look blank or that Python alone
# calls whitespace (U+001C, U+200B, U+180E, U+FEFF): stripping must tell them apart as before.
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000"
LOOKALIKES = "\x1c\x1f\u200b\u180e\ufeff"
EDGES = ["", "", "", "", *WHITESPACE, *LOOKALIKES]

DIALECTS = [
    TextFormat(),
    TextFormat(
        decimal_separator=",",
        date_format="%Y%m%d",
        timestamp_format="%Y%m%d%H%M%S",
        empty_dates=("00000000",),
        timezone="Europe/Berlin",
    ),
    TextFormat(decimal_separator=",", thousands_separator=".", empty_dates=("00000000", "000000")),
    TextFormat(thousands_separator=",", date_format="%y%m%d", timestamp_format="%y%m%d%H%M"),
    TextFormat(thousands_separator=" ", timestamp_format="%Y-%m-%d %H:%M:%S", empty_dates=("99991231",)),
    TextFormat(
        decimal_separator=",", thousands_separator="'", timestamp_format=None, timezone="America/New_York"
    ),
]


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    path = tmp_path_factory.mktemp("typing") / "test.typing.yaml"
    path.write_text(CONTRACT, encoding="utf-8")
    return load_contract(path)


def frame_of(rows: list[dict[str, str | None]], columns: list[str], first_line: int = 1) -> pl.DataFrame:
    data = {c: [row.get(c) for row in rows] for c in columns}
    frame = pl.DataFrame(data, schema={c: pl.String for c in columns})
    return frame.with_row_index("_source_line", offset=first_line).with_columns(
        pl.col("_source_line").cast(pl.Int64)
    )


def expected(compiled: CompiledContract, fmt: TextFormat, raw: pl.DataFrame) -> dict[str, Any]:
    """What validating ``raw`` must give if typing is the reference typing (unique judged in the frame)."""
    columns = compiled.contract.columns
    typed = raw.with_columns(
        e.alias(f"{c.name}:{part}")
        for c in columns
        for part, e in zip(("typed", "present"), typed_and_present(c, fmt), strict=True)
    )
    sound = pl.col(RECORD_ERROR).is_null() if RECORD_ERROR in raw.columns else pl.lit(True)
    fails = []
    for rule, _ in compiled.checks:
        value, present = pl.col(f"{rule.column}:typed"), pl.col(f"{rule.column}:present")
        fail = {
            "type": present & value.is_null(),
            "not_null": ~present,
            "unique": value.is_not_null() & value.is_duplicated(),
        }[rule.kind]
        fails.append((sound & fail).alias(rule.name))
    checked = typed.with_columns(fails).with_columns(
        bad=~sound | pl.any_horizontal([f.meta.output_name() for f in fails])
    )
    valid = checked.filter(~pl.col("bad")).select(
        *(pl.col(f"{c.name}:typed").cast(dtype_of(c)).alias(c.name) for c in columns), "_source_line"
    )
    reasons: dict[int, list[tuple[str, str]]] = {}
    flags = [
        "_source_line",
        *([RECORD_ERROR] if RECORD_ERROR in raw.columns else []),
        *(r.name for r, _ in compiled.checks),
    ]
    for row in checked.filter(pl.col("bad")).select(flags).to_dicts():
        error = row.get(RECORD_ERROR)
        listed = [(RECORD, error)] if error is not None else []
        listed += [(rule.column, reason_check(rule)) for rule, _ in compiled.checks if row[rule.name]]
        reasons[row["_source_line"]] = listed
    failures = {rule.name: int(checked.get_column(rule.name).sum()) for rule, _ in compiled.checks}
    if RECORD_ERROR in raw.columns:
        failures[RECORD] = int(raw.get_column(RECORD_ERROR).is_not_null().sum())
    return {"valid": valid, "reasons": reasons, "failures": failures}


def validator_for(contract: Contract, fmt: TextFormat, *, by_distinct: bool = True) -> Validator:
    """A validator whose typing goes by distinct text where text repeats, or (False) value by value."""
    validator = Validator(compile_contract(contract), fmt)
    validator.typing = FrameTyping(contract.columns, fmt, by_distinct=by_distinct)
    return validator


def assert_validates_as_reference(validator: Validator, raw: pl.DataFrame) -> None:
    result = validator(raw)
    want = expected(validator.compiled, validator.fmt, raw)
    assert result.valid.equals(want["valid"]), (result.valid, want["valid"])
    got = {
        row["_source_line"]: [(r["column"], r["check"]) for r in row["reasons"]]
        for row in result.quarantine.select("_source_line", "reasons").to_dicts()
    }
    assert got == want["reasons"]
    assert result.failures == want["failures"]


def plain_values(fmt: TextFormat) -> dict[str, str | None]:
    """A value of each column in the form most sources write it (the fast typing's own case); none for
    the unique ``qty``, whose equal values would put every such row in quarantine."""
    dec = fmt.decimal_separator
    form = fmt.timestamp_format or "%Y-%m-%d %H:%M:%S"  # SQL text: ISO with a space or a 'T'
    return {
        "name": "Lieferung ä",
        "note": "x",
        "qty": None,
        "amount": f"4357{dec}62",
        "rate": f"19{dec}5",
        "units": "7",
        "share": f"0{dec}25",
        "ratio": f"1{dec}5",
        "flag": "Yes",
        "day": _format(fmt.date_format, 2024, 2, 29),
        "booked": "29.02.2024",
        "at": _format(form, 2024, 3, 31, 1, 30, 0),
    }


def _format(
    form: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> str:
    """``form`` filled in digit by digit, so impossible dates (month 13, 30 February) can be written."""
    parts = {
        "%Y": f"{year:04d}",
        "%y": f"{year % 100:02d}",
        "%m": f"{month:02d}",
        "%d": f"{day:02d}",
        "%H": f"{hour:02d}",
        "%M": f"{minute:02d}",
        "%S": f"{second:02d}",
    }
    for directive, digits in parts.items():
        form = form.replace(directive, digits)
    return form


@pytest.mark.parametrize("by_distinct", [False, True])
@pytest.mark.parametrize("fmt", DIALECTS, ids=range(len(DIALECTS)))
def test_values_padded_with_any_whitespace_type_as_the_reference_types_them(
    contract: Contract, fmt: TextFormat, by_distinct: bool
) -> None:
    """Every column, every blank or blank-looking character before, after and around a plain value."""
    plain = plain_values(fmt)
    rows = [plain]
    for edge in WHITESPACE + LOOKALIKES:
        for column, text in {**plain, "qty": "42"}.items():
            value = text or ""
            rows += [
                {**plain, column: edge + value},
                {**plain, column: value + edge},
                {**plain, column: edge + value + edge},
                {**plain, column: edge},
            ]
    raw = frame_of(rows, list(plain))
    assert_validates_as_reference(validator_for(contract, fmt, by_distinct=by_distinct), raw)


def test_a_padded_trailing_minus_reads_the_same_whatever_else_the_frame_holds(contract: Contract) -> None:
    """'12,50- ' is -12.50 alone in its frame too, not a type failure (validation once skipped moving
    the minus in a frame where no raw value ended with '-')."""
    fmt = DIALECTS[1]
    plain = plain_values(fmt)
    result = validator_for(contract, fmt, by_distinct=False)(
        frame_of([{**plain, "amount": "12,50- "}], list(plain))
    )
    assert result.quarantine.height == 0
    assert result.valid.get_column("amount").to_list() == [Decimal("-12.50")]


def test_a_column_mostly_in_other_forms_types_the_same_on_later_frames(contract: Contract) -> None:
    """A frame of grouped amounts makes the column be typed the exact way from then on; values agree."""
    fmt = DIALECTS[2]
    plain = plain_values(fmt)
    validator = validator_for(contract, fmt, by_distinct=False)
    grouped = [{**plain, "qty": str(i), "amount": f"{i}.234,5{i % 10}"} for i in range(1, 40)]
    assert_validates_as_reference(validator, frame_of(grouped, list(plain)))
    mixed = [
        {**plain, "qty": str(i), "amount": ["1.234,5", "12,5", " 7-", "1.2.3"][i % 4]} for i in range(40)
    ]
    assert_validates_as_reference(validator, frame_of(mixed, list(plain), first_line=100))


NUMBERS = ("amount", "rate", "units", "share", "ratio")
NUMBER_DIALECTS = [
    TextFormat(decimal_separator=dec, thousands_separator=sep)
    for dec in (".", ",")
    for sep in (None, "", ".", ",", " ", "'", "\u00a0")
]


@pytest.mark.parametrize(
    "fmt", NUMBER_DIALECTS, ids=lambda f: f"{f.decimal_separator}{f.thousands_separator}"
)
@pytest.mark.parametrize("by_distinct", [False, True])
def test_number_forms_type_as_the_reference_types_them(
    contract: Contract, fmt: TextFormat, by_distinct: bool
) -> None:
    """Signs, digit counts past each precision, every mark and grouping, a trailing minus or exponent."""
    wholes = [
        "0",
        "7",
        "123",
        "1234",
        "123456789012",
        "1234567890123",
        "1.234",
        "1,234",
        "1 234",
        "1'234",
        "12.34",
    ]
    texts = [
        f"{sign}{whole}{mark}{frac}{tail}"
        for sign in ("", "-", "+")
        for whole in wholes
        for mark in (".", ",", "", "'")
        for frac in ("", "5", "50", "505")
        for tail in ("", "-", " -", "e3")
    ]
    plain = plain_values(fmt)
    rows = [{**plain, column: text} for text in [*texts, None] for column in NUMBERS]
    validator = validator_for(contract, fmt, by_distinct=by_distinct)
    assert_validates_as_reference(validator, frame_of(rows, list(plain)))


@pytest.mark.parametrize(
    "form",
    [
        "%Y%m%d",
        "%Y-%m-%d",
        "%y%m%d",
        "%d.%m.%Y",
        "%Y%m%d%H%M%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y%m%d ",
        " %Y%m%d",
        "%d %m %Y",
    ],
)
@pytest.mark.parametrize("empty", [(), ("00000000",), ("00000000", "000000"), ("99991231", "20240229")])
@pytest.mark.parametrize("by_distinct", [False, True])
def test_date_forms_type_as_the_reference_types_them(
    contract: Contract, form: str, empty: tuple[str, ...], by_distinct: bool
) -> None:
    """Dates and times real, impossible and short, empty-date markers (some of them real dates)."""
    fmt = TextFormat(date_format=form, timestamp_format=form, empty_dates=empty, timezone="Europe/Berlin")
    texts = [
        _format(form, year, month, day, hour, 30, 0)
        for year, month, day in [
            (2024, 2, 29),
            (2023, 2, 29),
            (2024, 3, 31),
            (2024, 10, 27),
            (2024, 13, 1),
            (1, 1, 1),
        ]
        for hour in (0, 2, 24)
    ]
    texts += [
        "00000000",
        "000000",
        "99991231",
        "20240229",
        "2024011",
        "240229",
        "2024-02-29",
        "29.02.2024",
        "",
        "x",
    ]
    texts += [f"{text} " for text in texts] + [f" {text}" for text in texts]
    plain = plain_values(fmt)
    rows = [{**plain, column: text} for text in [*texts, None] for column in ("day", "at")]
    validator = validator_for(contract, fmt, by_distinct=by_distinct)
    assert_validates_as_reference(validator, frame_of(rows, list(plain)))


def test_a_trailing_minus_the_frames_sample_missed_reads_the_same(contract: Contract) -> None:
    """The plan looks at a sample of rows; a minus behind a number outside it is still moved."""
    fmt = DIALECTS[1]
    plain = plain_values(fmt)
    rows = [{**plain, "amount": f"{i},50"} for i in range(5000)]
    missed = unsampled(5000)[0]
    rows[missed] = {**plain, "amount": "3,00-"}
    raw = frame_of(rows, list(plain))
    assert_validates_as_reference(validator_for(contract, fmt), raw)
    validator = Validator(compile_contract(contract), fmt)
    amounts = validator(raw).valid.get_column("amount")
    assert amounts[missed] == Decimal("-3.00")
    plan = validator.typing._plan_for(raw)[0]  # plans are shared by every validator of this layout
    (minus,) = {key[0] for key, known in validator.typing._plans.items() if known is plan}
    numbers = [c.name for c in contract.columns if c.logical_type == "number"]
    assert not minus[numbers.index("amount")]  # the sample did miss it: the exact typing moved the minus


def unsampled(height: int) -> list[int]:
    """The rows of a frame of ``height`` rows that its typing plan's sample does not look at."""
    return sorted(set(range(height)) - set(sample_rows(height).to_list()))


def test_the_sample_is_not_in_step_with_a_cycle_of_the_rows() -> None:
    """Every n-th row would see one value of a column cycling with the stride (every 36th of 37,116 rows,
    every 4th of 5000): the sample sees every value of a short cycle, whatever rows it draws."""
    for height, cycle in ((37_116, 12), (5000, 4)):
        rows = sample_rows(height)
        assert rows.is_sorted() and rows.n_unique() == rows.len() == min(height, 1024)
        assert (rows % cycle).n_unique() == cycle
    assert sample_rows(5).to_list() == [0, 1, 2, 3, 4]
    assert sample_rows(5000).equals(sample_rows(5000))  # the same rows each time: reproducible runs


REPEATING = ("amount", "rate", "units", "share", "ratio", "at")


def rare_texts(fmt: TextFormat) -> dict[str, list[str]]:
    """Per repeating column, texts in every form but the plain one (and some plain ones)."""
    dec = fmt.decimal_separator
    numbers = [
        f"12{dec}5",
        " 7-",
        f"1.234{dec}5",
        f"3{dec}00-",
        f"-0{dec}5",
        "+5",
        "1e3",
        "x",
        "",
        " ",
        "\u3000",
    ]
    numbers += [f"{i}{dec}25" for i in range(3)] + ["99999999999999", f"1 234{dec}5", f"1'234{dec}5"]
    form = fmt.timestamp_format or "%Y-%m-%d %H:%M:%S"
    times = [
        _format(form, 2024, 3, 31, 2, 30, 0),  # the clocks skip it in Berlin and New York
        _format(form, 2024, 10, 27, 2, 30, 0),  # twice in Berlin
        _format(form, 2024, 11, 3, 1, 30, 0),  # twice in New York
        " " + _format(form, 2024, 1, 5, 12, 0, 0),
        _format(form, 2024, 1, 5, 12, 0, 0) + "\t",
        _format(form, 2024, 13, 1, 0, 0, 0),
        *fmt.empty_dates,
        "2024-03-31T01:30:00Z",
        "",
        " ",
        "x",
    ]
    return {**{n: numbers for n in REPEATING if n != "at"}, "at": times}


@pytest.mark.parametrize("fmt", DIALECTS, ids=range(len(DIALECTS)))
def test_texts_the_frames_sample_missed_type_as_the_reference_types_them(
    contract: Contract, fmt: TextFormat
) -> None:
    """A repeating number or time column is typed once per distinct text of a sample of its frame; a
    text outside the sample, in any form, reads as the reference reads it: where few texts are
    missed, where most are (the column stays typed by distinct text), and on the frame after."""
    plain = plain_values(fmt)
    validator = validator_for(contract, fmt)
    rows = [dict(plain) for _ in range(5000)]
    missed = iter(unsampled(5000))
    for column, texts in rare_texts(fmt).items():
        for text in texts:
            rows[next(missed)] = {**plain, column: text}
    few = frame_of(rows, list(plain))
    assert set(validator.typing._plan_for(few)[0].distinct) == set(REPEATING)
    assert_validates_as_reference(validator, few)

    dec = fmt.decimal_separator
    texts = {n: f"{{}}{dec}5" for n in REPEATING if n != "at"}
    sampled = set(sample_rows(4100).to_list())
    rows = [
        dict(plain) if i in sampled else {**plain, **{n: t.format(i % 97) for n, t in texts.items()}}
        for i in range(4100)
    ]
    most = frame_of(rows, list(plain), first_line=10_000)
    assert set(validator.typing._plan_for(most)[0].distinct) == set(REPEATING)
    assert_validates_as_reference(validator, most)
    assert not validator.typing._exact & set(REPEATING)
    assert_validates_as_reference(validator, frame_of(rows[:3000], list(plain), first_line=20_000))


def test_frames_without_rows_or_without_numbers_type_as_the_reference(tmp_path: Path) -> None:
    """An empty frame (the pipeline validates one for the schema) and a contract of text alone."""
    text_only = CONTRACT.split("      - {name: qty")[0] + CONTRACT[CONTRACT.index("customProperties:") :]
    path = tmp_path / "test.typing.yaml"
    path.write_text(text_only, encoding="utf-8")
    contract = load_contract(path)
    for fmt in DIALECTS[:2]:
        validator = validator_for(contract, fmt)
        assert_validates_as_reference(validator, frame_of([], ["name", "note"]))
        rows = [
            {"name": name, "note": note} for name in ("a", " ", "", None, "\u3000b") for note in ("x", "\t")
        ]
        assert_validates_as_reference(validator, frame_of(rows, ["name", "note"]))


def test_local_times_converted_once_per_distinct_time_match_each_converted_alone() -> None:
    fmt = TextFormat(timezone="Europe/Berlin")
    times = pl.Series(
        ["2024-03-31 02:30:00", "2024-10-27 02:30:00", "2024-10-27 01:59:59", None, "1890-01-01 00:00:00"]
        * 40
        + ["2024-07-01 12:00:00"],
        dtype=pl.String,
    ).str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S")
    each = times.to_frame("t").select(localize(pl.col("t"), fmt)).to_series()
    assert localize_values(times, fmt).equals(each)
    assert localize_values(times.head(3), fmt).equals(each.head(3))  # few repeats: converted directly


# -- random text -----------------------------------------------------------------------------------

edge = st.sampled_from(EDGES)
digits = st.text(alphabet="0123456789", min_size=1, max_size=4) | st.sampled_from(
    ["\u0663", "\uff11\uff12", "0" * 13]
)


def padded(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(edge, core, edge).map("".join)


@st.composite
def numbers(draw: st.DrawFn, fmt: TextFormat) -> str:
    sign = draw(st.sampled_from(["", "", "", "-", "+", "+-"]))
    whole = draw(digits)
    sep = fmt.thousands_separator
    if sep and draw(st.booleans()):
        groups = draw(
            st.lists(st.text(alphabet="0123456789", min_size=1, max_size=4), min_size=1, max_size=3)
        )
        whole = sep.join([whole[:3], *groups])
    mark = draw(st.sampled_from([fmt.decimal_separator, fmt.decimal_separator, ".", ",", ""]))
    frac = draw(st.text(alphabet="0123456789", max_size=3)) if mark else ""
    tail = draw(st.sampled_from(["", "", "", "-", "-", "e5"]))
    return f"{sign}{whole}{mark}{frac}{tail}"


@st.composite
def dates(draw: st.DrawFn, form: str, fmt: TextFormat) -> str:
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from([*fmt.empty_dates, "00000000", "000000", "99991231", "2024011"]))
    year = draw(st.sampled_from([2024, 2023, 1899, 1, 9999]))
    month = draw(st.sampled_from([3, 10, 11, 2, 1, 0, 13]))
    day = draw(st.sampled_from([31, 27, 10, 3, 29, 30, 0, 32]))
    return _format(
        form, year, month, day, draw(st.integers(0, 24)), draw(st.sampled_from([0, 30, 59, 60])), 0
    )


def iso_stamps() -> st.SearchStrategy[str]:
    day = st.sampled_from(["2024-03-31", "2024-10-27", "2024-03-10", "2024-11-03", "2024-02-30"])
    clock = st.sampled_from(["01:30:00", "02:30:00", "03:00:00", "12:00:00.5"])
    tail = st.sampled_from(["", "", "Z", "+00", "+01:00", "-0500"])
    return st.tuples(day, st.sampled_from([" ", "T"]), clock, tail).map("".join)


def cells(kind: str, fmt: TextFormat, form: str | None) -> st.SearchStrategy[str | None]:
    if kind in ("date", "timestamp"):
        structured = iso_stamps() if form is None else dates(form, fmt)
    elif kind == "number":
        structured = numbers(fmt)
    elif kind == "integer":
        structured = st.tuples(st.sampled_from(["", "-", "+"]), digits).map("".join)
    elif kind == "boolean":
        structured = st.sampled_from(["1", "0", "true", "FALSE", "Yes", "no", "x", "maybe", "\u0130"])
    else:
        structured = st.text(max_size=6)
    return st.one_of(
        st.none(),
        st.text(max_size=8),
        structured,
        structured,
        structured,
        padded(structured),
        st.sampled_from(EDGES),
    )


@st.composite
def batches(draw: st.DrawFn, contract: Contract) -> tuple[TextFormat, list[pl.DataFrame]]:
    fmt = TextFormat(
        decimal_separator=draw(st.sampled_from([".", ","])),
        thousands_separator=draw(st.sampled_from([None, None, ".", ",", " ", "'"])),
        date_format=draw(st.sampled_from(["%Y%m%d", "%Y-%m-%d", "%y%m%d"])),
        timestamp_format=draw(
            st.sampled_from(["%Y%m%d%H%M%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%y%m%d%H%M", None])
        ),
        empty_dates=draw(st.sampled_from([(), ("00000000",), ("00000000", "000000"), ("99991231",)])),
        timezone=draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"])),
    )
    forms = {
        c.name: c.format or (fmt.date_format if c.logical_type == "date" else fmt.timestamp_format)
        for c in contract.columns
    }
    # Mostly plain rows with a column or two drawn: a row suspect in one column is typed the exact way
    # in every column, which would hide a fast typing's mistake in the others.
    drawn = {c.name: cells(c.logical_type, fmt, forms[c.name]) for c in contract.columns}
    plain = plain_values(fmt)
    some = st.lists(st.sampled_from(list(drawn)), min_size=1, max_size=2, unique=True).flatmap(
        lambda names: st.fixed_dictionaries(
            {**{k: st.just(v) for k, v in plain.items()}, **{n: drawn[n] for n in names}}
        )
    )
    row = st.one_of(some, some, some, some, some, st.fixed_dictionaries(drawn))
    frames = []
    for part in range(draw(st.integers(1, 3))):
        rows = draw(st.lists(row, max_size=24))
        raw = frame_of(rows, [c.name for c in contract.columns], first_line=1000 * part + 1)
        if draw(st.booleans()):
            errors = draw(
                st.lists(
                    st.sampled_from([None, None, None, "field_count"]), min_size=len(rows), max_size=len(rows)
                )
            )
            raw = raw.with_columns(pl.Series(RECORD_ERROR, errors, dtype=pl.String))
        frames.append(raw)
    return fmt, frames


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(data=st.data())
def test_random_text_types_as_the_reference_types_it(contract: Contract, data: st.DataObject) -> None:
    """Frames of one batch through one validator: values, reasons and counts as the reference gives them."""
    fmt, frames = data.draw(batches(contract))
    validator = validator_for(contract, fmt, by_distinct=data.draw(st.booleans()))
    for raw in frames:
        assert_validates_as_reference(validator, raw)
