"""The classification tally's shortcuts against the plain way: every value of every column through every
detector, at once.

The tally counts per distinct value, settles date columns from their extremes, leaves out detectors no value
has the shape for, and skips columns its contract's rules prove inert. None of that may change a finding:
the same detectors, counts, ratios, confidence and (masked) evidence, whatever the values and however
the batch is cut into chunks.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Literal
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.classification import DETECTORS, Finding, Scan, detect, row_verdicts
from governance.detectors import CANDIDATE, TEXT, Plan, plan_text, reading, stand_ins, text_of, years_before
from pipelines.classify import ClassificationTally, inert_columns, pattern_items
from schemas.contract import Column, Rule, load_contract

REPO = Path(__file__).resolve().parents[2]
ERP = load_contract(REPO / "schemas" / "contracts" / "erp.orders.yaml")
TODAY = date(2026, 11, 1)

# Values each detector matches (and a few it must not), padded or not: the mix the columns are drawn from.
SEEN = [
    "jane.doe@example.com",
    "josé.1@exämple.de",
    "+49 30 1234567",
    "(555) 555-5555",
    "030 12345678",
    "Olivia Smith",
    "Smith, John",
    "Northwind Logistics Inc.",
    "221B Baker Street",
    "Hauptstraße 5",
    "Hauptstr.5",
    "10115 Berlin",
    "1985-03-12",
    "12.03.1985",
    "19850312",
    "1950-01-01T00:00:00",
    "2015-06-01",
    "512-47-8093",
    "AB123456C",
    "ab 12 34 56 c",
    "DE89370400440532013000",
    "GB82 WEST 1234 5698 7654 32",
    "4111 1111 1111 1111",
    "4111 1111 1111 1112",
    "378282246310005",
    "192.168.1.10",
    "2001:db8::1",
    "please call +1 212 555 0100 tomorrow",
    "paid with card 4111 1111 1111 1111 last week",
    "refund to DE89 3704 0044 0532 0130 00 asap",
    "SSN on file 512-47-8093, verified by phone",
    "card 4111 1111 1111 1112 declined today",
    "order 12345 shipped on time",
    "SO00001234",
    "C123456",
    "MAT-35761",
    "EUR",
    "OPEN",
    "Lieferung 761 Größe ä €",
]
BLANKS = ["", " ", "\t", "\u00a0", "\u3000 ", "\n"]
TEXTS = st.one_of(
    st.none(),
    st.sampled_from(SEEN),
    st.sampled_from(SEEN).map(lambda v: f"  {v}\t"),
    st.sampled_from(BLANKS),
    st.text(max_size=20),
    st.text(alphabet="0123456789 -+()./@:,ABCDEFGHNOSTXZabcdeinorstwgäßéÄ\u00a0", max_size=25),
)
INTEGERS = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([4111111111111111, 378282246310005, 19850312, 20150601, 19500101, 5124780, 7, -19850312]),
)
BIRTH_EDGES = [TODAY.replace(year=TODAY.year - 100), TODAY.replace(year=TODAY.year - 16)]
DAYS = st.one_of(
    st.none(),
    st.dates(date(1900, 1, 1), date(2100, 1, 1)),
    st.sampled_from(BIRTH_EDGES).flatmap(lambda d: st.integers(-3, 3).map(lambda k: d + timedelta(days=k))),
    st.dates(date(2020, 1, 1), date(2025, 1, 1)),
)
MOMENTS = st.one_of(
    st.none(),
    st.datetimes(datetime(1900, 1, 1), datetime(2100, 1, 1)).map(lambda d: d.replace(tzinfo=UTC)),
    st.tuples(st.sampled_from(BIRTH_EDGES), st.integers(-3, 3), st.sampled_from([0, 1, 13, 23])).map(
        lambda e: (
            datetime.combine(e[0] + timedelta(days=e[1]), datetime.min.time(), UTC) + timedelta(hours=e[2])
        )
    ),
)
ZONES = ["UTC", "Europe/Berlin", "Pacific/Kiritimati", "Etc/GMT+12"]


def plainly(frame: pl.DataFrame, *, today: date = TODAY) -> dict[str, list[Finding]]:
    """The findings of every value of every column through every detector, the plain way (no gate, no
    distinct values, no shortcut), turned into findings as :meth:`Scan.findings` does."""
    scan = Scan(today)
    texts = [n for n, t in frame.schema.items() if reading(t) == "text"]
    plan = Plan()
    verdicts, born = plan_text(plan, today)
    every = pl.concat(  # the text columns one under the other: one query for all
        [frame.lazy().select(pl.lit(n).alias("column"), text_of(n).alias(TEXT)) for n in texts]
        or [pl.LazyFrame(schema={"column": pl.String, TEXT: pl.String})]
    )
    counts = (
        plan.apply(every)
        .group_by("column")
        .agg(
            pl.col(TEXT).is_not_null().sum().alias("non_null"),
            *(v.sum().alias(det) for det, v in verdicts.items()),
            born.dt.year().min().alias("first"),
            born.dt.year().max().alias("last"),
        )
        .collect(engine="in-memory")
    )
    found = {row.pop("column"): row for row in counts.iter_rows(named=True)}
    for name, dtype in frame.schema.items():
        kind = reading(dtype)
        assert kind is not None
        scan._kinds[name], scan._counts[name] = kind, {}
        if kind == "none":
            continue
        if kind == "text":
            rows = found[name]
        else:
            value = pl.col(name)
            day = value.dt.date() if isinstance(dtype, pl.Datetime) else value
            if isinstance(dtype, pl.Datetime):
                day = pl.when(value.dt.time() == datetime.min.time()).then(day)
            lo, hi = years_before(today, 100), years_before(today, 16)
            is_born = day.is_between(lo, hi).fill_null(False)
            rows = frame.select(
                value.is_not_null().sum().alias("non_null"),
                is_born.sum().alias("date_of_birth"),
                day.filter(is_born).dt.year().min().alias("first"),
                day.filter(is_born).dt.year().max().alias("last"),
            ).row(0, named=True)
        first, last = rows.pop("first"), rows.pop("last")
        scan._counts[name] = {k: int(v) for k, v in rows.items()}
        if first is not None:
            scan._born[name] = (first, last)
    return scan.findings(threshold=1e-9, min_matches=1)


def chunked(scan: Scan, frame: pl.DataFrame, size: int) -> dict[str, list[Finding]]:
    for offset in range(0, max(frame.height, 1), size):
        scan.add(frame.slice(offset, size), frame.columns)
    return scan.findings(threshold=1e-9, min_matches=1)


def test_the_plain_way_finds_every_kind_on_values_the_detectors_know() -> None:
    """The reference itself: on the values the detectors know, it finds each kind detect finds."""
    frame = pl.DataFrame({"value": SEEN * 3})
    assert plainly(frame) == detect(frame, today=TODAY, threshold=1e-9, min_matches=1)
    assert {f.detector for f in plainly(frame)["value"]} == set(DETECTORS)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.data(),
    rows=st.integers(1, 50),
    size=st.integers(1, 40),
    few=st.sampled_from([0.0, 0.2, 1.0]),
    pool=st.sampled_from([7, 1_000_000]),
    zone=st.sampled_from(ZONES),
)
def test_a_tally_in_chunks_finds_what_every_value_through_every_detector_finds(
    data: st.DataObject, rows: int, size: int, few: float, pool: int, zone: str
) -> None:
    """Random columns mixing matching and non-matching values, cut into chunks of any size."""
    moments = [
        m.astimezone(ZoneInfo(zone)) if m else None
        for m in data.draw(st.lists(MOMENTS, min_size=rows, max_size=rows))
    ]
    frame = pl.DataFrame(
        {
            "text": data.draw(st.lists(TEXTS, min_size=rows, max_size=rows)),
            "repeated": data.draw(
                st.lists(st.sampled_from([None, *SEEN[:8], *BLANKS[:3]]), min_size=rows, max_size=rows)
            ),
            "number": data.draw(st.lists(INTEGERS, min_size=rows, max_size=rows)),
            "day": data.draw(st.lists(DAYS, min_size=rows, max_size=rows)),
            "moment": moments,
            "amount": [1.5] * rows,
        },
        schema={
            "text": pl.String,
            "repeated": pl.String,
            "number": pl.Int64,
            "day": pl.Date,
            "moment": pl.Datetime("us", zone),
            "amount": pl.Float64,
        },
    )
    frame = frame.with_columns(pl.col("repeated").cast(pl.Categorical).alias("category"))
    assert chunked(Scan(TODAY, pool_rows=pool, few_distinct=few), frame, size) == plainly(frame)


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("unit", ["ms", "ns"])
def test_moments_near_the_birth_window_are_never_settled_from_their_extremes(
    zone: str, unit: Literal["ms", "ns"]
) -> None:
    """Moments in any time zone, a day or so either side of the window's edges, one chunk or one a row."""
    edges = [datetime.combine(d, datetime.min.time()) for d in BIRTH_EDGES]
    moments = [e.replace(tzinfo=ZoneInfo(zone)) + timedelta(days=k) for e in edges for k in (-2, -1, 0, 1, 2)]
    for far in (-400, 400):
        frame = pl.DataFrame(
            {"at": [m + timedelta(days=far) for m in moments]}, schema={"at": pl.Datetime(unit, zone)}
        )
        frame = pl.concat([frame, pl.DataFrame({"at": moments}, schema=frame.schema)])
        for size in (1, 5, frame.height):
            assert chunked(Scan(TODAY), frame, size) == plainly(frame)


# --- inert columns: proved from the contract, never counted differently --------------------------------------


def test_the_erp_contract_proves_its_coded_and_patterned_columns_inert() -> None:
    inert = inert_columns(ERP, TODAY)
    assert {"order_id", "customer_id", "currency", "status"} <= set(inert)
    assert {"sku", "sales_rep_email"}.isdisjoint(inert)


@pytest.mark.parametrize(
    ("pattern", "items"),
    [
        ("^SO[0-9]{8}$", [("S", 1, 1), ("O", 1, 1), ("0123456789", 8, 8)]),
        ("^[A-C\\-]{1,2}x?$", [("-ABC", 1, 2), ("x", 0, 1)]),
        ("^a\\.b{2}?$", [("a", 1, 1), (".", 1, 1), ("b", 2, 2)]),
        ("^[0-9]+$", None),  # unbounded
        ("^\\d{3}$", None),  # \d is not ASCII only
        ("^(ab){2}$", None),
        ("^a|b$", None),
        ("^[^a]$", None),
        ("^[a-z&&[^x]]$", None),
        ("SO[0-9]{8}", None),  # not anchored: anything around it
        ("^(?i)so$", None),
        ("^x{3,}$", None),
        ("^x{3$", None),
    ],
)
def test_only_simple_patterns_are_read(pattern: str, items: list[tuple[str, int, int]] | None) -> None:
    assert pattern_items(pattern) == items


ALPHABET = "0123456789 -+()./@:,ABCDEFGHKNOSTXZabcdeiknorstwgzäßéÄ\u00a0\u212a\u017f\t"


STAND_IN = stand_ins(ALPHABET)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40), st.randoms())
def test_interchangeable_characters_are_let_through_alike(value: str, random: Random) -> None:
    """A value with any of its characters put for its stand-in, or for another it stands in for."""
    kinds = {rep: [c for c, r in STAND_IN.items() if r == rep] for rep in STAND_IN.values()}
    swapped = ["".join(STAND_IN[c] for c in value), "".join(random.choice(kinds[STAND_IN[c]]) for c in value)]
    verdicts = pl.Series([value, *swapped], dtype=pl.String).str.contains(CANDIDATE).to_list()
    assert verdicts == [verdicts[0]] * 3


def test_stand_ins_keep_apart_what_the_gate_tells_apart() -> None:
    assert len(set(STAND_IN.values())) > 20
    assert STAND_IN["7"] == STAND_IN["0"] and STAND_IN["\t"] == STAND_IN[" "] == STAND_IN["\u00a0"]
    assert STAND_IN["@"] == STAND_IN[":"]
    # case and case folding tell letters apart: ſ folds to s, the Kelvin sign to k; S and Z are capitals
    assert len({STAND_IN[c] for c in "sS\u017fK\u212akZ@."}) == 9


PIECES = st.sampled_from(
    ["S", "O", "C", "A", "x", "-", "\\.", "@", " ", "[0-9]", "[A-Z]", "[a-c]", "[0-9A-F]", "[ .]"]
)
QUANTITIES = st.sampled_from(["", "?", "{2}", "{1,3}", "{6}", "{8}", "{10}", "{0,2}"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(st.lists(st.tuples(PIECES, QUANTITIES), min_size=1, max_size=5), st.data())
def test_a_column_proved_inert_holds_no_value_a_detector_matches(
    pieces: list[tuple[str, str]], data: st.DataObject
) -> None:
    """Any value the pattern admits: no detector matches it, and it is blank only where that was allowed."""
    pattern = "^" + "".join(p + q for p, q in pieces) + "$"
    column = replace(
        ERP.columns[0], name="code", rules=(Rule("code_pattern", "code", "pattern", {"value": pattern}),)
    )
    inert = inert_columns(replace(ERP, columns=(column,)), TODAY)
    if "code" not in inert:
        return
    values = data.draw(st.lists(st.from_regex(pattern, fullmatch=True), min_size=1, max_size=30))
    frame = pl.DataFrame({"code": values}, schema={"code": pl.String})
    verdicts = row_verdicts(frame, "code", today=TODAY)
    assert not verdicts.select(pl.any_horizontal(pl.all()).fill_null(False)).to_series().any(), pattern


@pytest.mark.parametrize(
    ("bounds", "inert"),
    [
        ({"ge": 1, "le": 9}, True),
        ({"gt": 0.5, "lt": 9.5}, True),
        ({"ge": 19850310, "le": 19850315}, False),  # dates of birth stored as numbers
        ({"ge": 1}, False),  # no upper bound: card numbers and dates get through
        ({"le": 9}, False),
        ({"ge": 2**60, "le": 2**60 + 5}, False),  # not exact as floats: not enumerated
        ({"ge": 0, "le": 20_000}, False),  # too many to enumerate
        ({"ge": 5, "le": 4}, True),  # no value passes both
        ({"ge": float("-inf"), "le": 3}, False),
    ],
)
def test_an_integer_column_is_inert_when_its_bounds_admit_only_values_no_detector_matches(
    bounds: dict[str, float], inert: bool
) -> None:
    base = replace(ERP.columns[0], name="level", logical_type="integer")
    rules = tuple(Rule(f"level_{k}", "level", k, {"value": v}) for k, v in bounds.items())
    contract = replace(ERP, columns=(replace(base, rules=rules),))
    assert ("level" in inert_columns(contract, TODAY)) is inert


def _contract_columns() -> tuple[Column, ...]:
    base = ERP.columns[0]
    text = replace(base, logical_type="string", primary_key=False, required=False, unique=False)
    return (
        replace(text, name="code", rules=(Rule("p", "code", "pattern", {"value": "^[A-Z]{2}[0-9]{2}$"}),)),
        replace(
            text,
            name="status",
            rules=(Rule("s", "status", "in_set", {"values": ["OPEN", "Olivia Smith", " "]}),),
        ),
        replace(text, name="plant", rules=(Rule("p", "plant", "pattern", {"value": "^[0-9]{3}$"}),)),
        replace(text, name="flag", rules=(Rule("f", "flag", "in_set", {"values": ["Y", "N", " "]}),)),
        replace(text, name="free", rules=()),
        replace(
            base,
            name="level",
            logical_type="integer",
            rules=(Rule("g", "level", "ge", {"value": 0.5}), Rule("l", "level", "lt", {"value": 10})),
        ),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), st.integers(1, 40), st.integers(1, 25))
def test_a_tally_skipping_inert_columns_finds_what_the_plain_way_finds(
    data: st.DataObject, rows: int, size: int
) -> None:
    """Valid rows of a contract (each value passes its column's rules): the tally, with the columns it
    proves inert not read, finds exactly what every value through every detector finds."""
    contract = replace(ERP, columns=_contract_columns())
    inert = inert_columns(contract, TODAY)
    assert inert == {"code", "plant", "flag", "level"}  # 'Olivia Smith' is a name

    def column(strategy: st.SearchStrategy[str | int]) -> list[str | int | None]:
        return data.draw(st.lists(st.one_of(st.none(), strategy), min_size=rows, max_size=rows))

    frame = pl.DataFrame(
        {
            "code": column(st.from_regex("^[A-Z]{2}[0-9]{2}$", fullmatch=True)),
            "status": column(st.sampled_from(["OPEN", "Olivia Smith", " "])),
            "plant": column(st.from_regex("^[0-9]{3}$", fullmatch=True)),
            "flag": column(st.sampled_from(["Y", "N", " "])),
            "free": column(TEXTS.filter(lambda v: v is not None)),
            "level": column(st.integers(1, 9)),
        },
        schema={
            "code": pl.String,
            "status": pl.String,
            "plant": pl.String,
            "flag": pl.String,
            "free": pl.String,
            "level": pl.Int64,
        },
    )
    tally = ClassificationTally(contract, TODAY)
    for offset in range(0, frame.height, size):
        tally.add(frame.slice(offset, size))
    assert tally.rows == frame.height
    assert tally.scan.findings(threshold=1e-9, min_matches=1) == plainly(frame)
