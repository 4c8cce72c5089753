"""Classification: each detector on values an owner would recognise, the demo's columns, and drift.

What a security officer relies on: personal data is found in every row (not a sample) with evidence and a
confidence, ids, amounts, codes and company names are not mistaken for it, and a declared column holding an
undeclared kind of personal data is drift, reported without ever printing a value.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.classification import (
    DETECTORS,
    ClassificationError,
    Finding,
    Scan,
    detect,
    drift,
    row_verdicts,
)
from governance.detectors import CANDIDATE
from pipelines.demo import CANARIES, seed
from schemas import TextFormat, compile_contract, validate
from schemas.contract import Contract, load_contract

REPO = Path(__file__).resolve().parents[2]
CRM = load_contract(REPO / "schemas" / "contracts" / "crm.accounts.yaml")
ERP = load_contract(REPO / "schemas" / "contracts" / "erp.orders.yaml")
TODAY = date(2026, 11, 1)  # the demo's business dates

POSITIVE: dict[str, list[str]] = {
    "email": ["jane.doe@example.com", "o'brien+crm@mail.example.co.uk", "josé.1@exämple.de"],
    "phone": [
        "+1-646-555-0387",
        "+49 30 1234567",
        "+44 (0)20 7946 0958",
        "(555) 555-5555",
        "0044 20 7946 0958",
        "030 12345678",
        "01 23 45 67 89",
        "555.555.5555",
        "+1 212 555 0100 ext. 12",
    ],
    "person_name": [
        "Olivia Smith",
        "Smith, John",
        "JOHN SMITH",
        "Jean-Pierre Dubois",
        "Hans van der Berg",
        "José García",
        "Mehmet Yılmaz",
        "Mary J. Blige",
    ],
    "address": [
        "221B Baker Street",
        "3927 Saticoy St",
        "12 Main St., Springfield",
        "Hauptstraße 5",
        "Berliner Str. 12a, 10115 Berlin",
        "12 rue de la Paix",
        "Calle Mayor 12",
        "Via Roma 10",
        "10115 Berlin",
        "Springfield, IL 62704",
        "BURLINGTON NC  27215",
        "London NW1 6XE",
    ],
    "date_of_birth": [
        "1985-03-12",
        "12.03.1985",
        "03/25/1985",
        "25/03/1985",
        "19850312",
        "1950-01-01T00:00:00",
    ],
    "national_id": ["512-47-8093", "123 45 6789", "AB123456C", "ab 12 34 56 c", "OA123456D"],
    "iban": [
        "DE89370400440532013000",
        "GB82 WEST 1234 5698 7654 32",
        "FR1420041010050500013M02606",
        "de89 3704 0044 0532 0130 00",
        "NO9386011117947",
    ],
    "payment_card": [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4012888888881881",
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
        "3530111333300000",
        "36227206271667",
    ],
    "ip_address": [
        "192.168.1.10",
        "10.0.0.1",
        "2001:db8::1",
        "fe80::1ff:fe23:4567:890a",
        "::ffff:192.0.2.128",
    ],
    "free_text": [
        "please call +1 212 555 0100 tomorrow",
        "Customer wrote from jane@example.com about the invoice",
        "paid with card 4111 1111 1111 1111 last week",
        "refund to DE89 3704 0044 0532 0130 00 asap",
        "SSN on file 512-47-8093, verified by phone",
    ],
}
NEGATIVE: dict[str, list[str]] = {
    "email": ["jane.doe@", "not-an-email", "@example.com", "a@b", "jane doe@example.com"],
    "phone": [
        "1305025",  # a plain numeric id
        "0000620981",  # SAP zero-padded number
        "12345678901",
        "20261101",
        "2019-11-11",
        "12.03.1985",
        "512-47-8093",  # an SSN, not a phone
        "10.20.30.40",
        "1.234.567,89",
        "12.345.678",
        "1234567.89",
        "+12",
        "12-34",
        "(000) 000-0000",
    ],
    "person_name": [
        "Northwind Logistics Inc.",
        "Grace Systems Ltd",
        "Emma Foods GmbH",
        "Olivia & Partners",
        "Liam Trading LLC",
        "Henry Schein S.A.",
        "Noah und Söhne",
        "Société Lumière Labs S.A.",
        "United States",
        "Cold Call",
        "olivia smith",
        "Olivia Smith 42",
        "Zorblax Quintero",  # name-shaped, but no given name it knows
    ],
    "address": [
        "Spring 2024",
        "Baker Street",
        "Gold",
        "123",
        "2019-11-11",
        "Version 2 release notes",
        "ORDER NO 12345",
    ],
    "date_of_birth": [
        "2015-06-01",  # 11 years old
        "1900-01-01",  # 126 years old
        "1985-13-01",
        "1985-02-30",
        "2019-03-04T10:15:00",
        "1985-03-12T10:15:00",  # a moment, not a birthday
        "20261101",
        "1985",
        "311045",
    ],
    "national_id": [
        "000-12-3456",  # area 000
        "666-12-3456",  # area 666
        "900-12-3456",  # area 9xx
        "123-00-4567",  # group 00
        "123-45-0000",  # serial 0000
        "512478093",  # no separators: any 9-digit id would match
        "DA123456C",  # D never first
        "AO123456C",  # O never second
        "BG123456C",
        "GB123456C",
        "ZZ123456C",
        "AB123456E",  # suffix A-D only
    ],
    "iban": [
        "DE89370400440532013001",  # checksum off by one
        "GB82WEST12345698765433",
        "DE8937040044053201300",  # one digit short for DE
        "XX89370400440532013000",  # no such country
        "DE00370400440532013000",
    ],
    "payment_card": [
        "4111 1111 1111 1112",  # Luhn off by one
        "5555555555554445",
        "378282246310006",
        "0000000000000000",  # Luhn-valid, no issuer
        "1234567812345670",  # Luhn-valid, no issuer
        "4222222222222",  # Luhn-valid 13 digits: an EAN-13 looks the same
        "41111111111111111111",  # 20 digits
    ],
    "ip_address": ["256.1.1.1", "12:30:45", "00:1A:2B:3C:4D:5E", "1.2.3", "2001:db8:::1"],
    "free_text": [
        "legacy import from the old system",
        "card 4111 1111 1111 1112 declined today",  # Luhn fails
        "SSN 666-12-3456 is a test value",  # invalid area
        "4111 1111 1111 1111",  # a card on its own is a card, not free text
        "order 12345 shipped on time",
        "+1 212 555 0100",
    ],
}


def _verdicts(values: list[str]) -> pl.DataFrame:
    return row_verdicts(pl.DataFrame({"value": values}, schema={"value": pl.String}), "value", today=TODAY)


@pytest.mark.parametrize("detector", DETECTORS)
def test_each_detector_matches_its_positives(detector: str) -> None:
    verdicts = _verdicts(POSITIVE[detector])
    missed = [v for v, hit in zip(POSITIVE[detector], verdicts[detector], strict=True) if not hit]
    assert missed == []


@pytest.mark.parametrize("detector", DETECTORS)
def test_each_detector_rejects_its_negatives(detector: str) -> None:
    verdicts = _verdicts(NEGATIVE[detector])
    wrong = [v for v, hit in zip(NEGATIVE[detector], verdicts[detector], strict=True) if hit]
    assert wrong == []


def test_positives_are_claimed_by_their_own_detector_only() -> None:
    """A value is one kind of personal data: an SSN is not a phone, a card is not free text."""
    for detector, values in POSITIVE.items():
        verdicts = _verdicts(values)
        for row, value in zip(verdicts.iter_rows(named=True), values, strict=True):
            others = [d for d in DETECTORS if d != detector and row[d]]
            assert others == [], (detector, value)


def test_missing_values_have_no_verdict_and_do_not_count() -> None:
    verdicts = _verdicts([None, "", "   "])  # type: ignore[list-item]
    assert verdicts.null_count().row(0) == (3,) * len(DETECTORS)
    frame = pl.DataFrame({"email": ["a@example.com", "b@example.com", "c@example.com", None, "", " "]})
    (finding,) = detect(frame, today=TODAY)["email"]
    assert (finding.matches, finding.non_null, finding.ratio) == (3, 3, 1.0)


# --- findings: thresholds, confidence, evidence ---------------------------------------------------------


def _column(values: list[str], filler: str = "n/a", rows: int = 100) -> list[str]:
    return values + [filler] * (rows - len(values))


def test_a_finding_needs_enough_matches_and_a_high_enough_ratio() -> None:
    emails = [f"user{i}@example.com" for i in range(20)]
    frame = pl.DataFrame(
        {
            "two_only": _column(emails[:2]),  # ratio 2% and 2 matches
            "five_percent": _column(emails[:5]),
            "twenty_percent": _column(emails[:20]),
        }
    )
    found = detect(frame, today=TODAY)
    assert found["two_only"] == [] and found["five_percent"] == []
    assert [f.detector for f in found["twenty_percent"]] == ["email"]
    lenient = detect(frame, today=TODAY, threshold=0.02, min_matches=2)
    assert all(lenient[c][0].detector == "email" for c in frame.columns)
    with pytest.raises(ClassificationError):
        detect(frame, today=TODAY, threshold=0)


def test_every_row_is_read_not_a_sample() -> None:
    """Ten thousand clean rows, then cards in the last 1,500 only: a head sample would see nothing."""
    cards = ["4111 1111 1111 1111", "5555555555554444", "378282246310005"] * 500
    frame = pl.DataFrame({"ref": [f"ORD-{i:06d}" for i in range(10_000)] + cards})
    (finding,) = detect(frame, today=TODAY)["ref"]
    assert (finding.detector, finding.matches, finding.non_null) == ("payment_card", 1_500, 11_500)


def test_confidence_rises_with_checksums_and_agreeing_names_never_with_names_alone() -> None:
    phones = [f"+1 212 555 {i:04d}" for i in range(15)]
    frame = pl.DataFrame(
        {
            "cf_0001__c": _column(phones),  # 15%: weak on its own
            "mobile_phone": _column(phones),  # 15%, and the name agrees
            "email": _column([]),  # a telling name, no such values
            "cf_0002__c": _column(["DE89370400440532013000"] * 15),
        }
    )
    found = detect(frame, today=TODAY)
    assert [(f.detector, f.confidence) for f in found["cf_0001__c"]] == [("phone", "low")]
    assert [(f.detector, f.confidence) for f in found["mobile_phone"]] == [("phone", "medium")]
    assert "column name agrees" in found["mobile_phone"][0].evidence
    assert found["email"] == []
    assert [(f.detector, f.confidence) for f in found["cf_0002__c"]] == [("iban", "high")]


def test_dates_of_birth_need_a_population_of_birth_years() -> None:
    births = [date(1950 + (i * 7) % 50, 1 + i % 12, 1 + i % 28) for i in range(60)]
    founded = [date(1995 + i % 5, 1 + i % 12, 1 + i % 28) for i in range(60)]
    frame = pl.DataFrame({"cf_0003__c": births, "founded_on": founded, "geburtsdatum": founded})
    found = detect(frame, today=TODAY)  # Date columns are read as ISO text
    assert [(f.detector, f.confidence) for f in found["cf_0003__c"]] == [("date_of_birth", "medium")]
    assert [(f.detector, f.confidence) for f in found["founded_on"]] == [("date_of_birth", "low")]
    assert [(f.detector, f.confidence) for f in found["geburtsdatum"]] == [("date_of_birth", "medium")]


def test_numbers_and_typed_columns_are_scanned_as_text() -> None:
    frame = pl.DataFrame(
        {
            "card_number": pl.Series(
                [4111111111111111, 5555555555554444, 378282246310005] * 4, dtype=pl.Int64
            ),
            "amount": pl.Series([1234.5, 99.0, 0.25] * 4),
            "tags": pl.Series([["a"], ["b"], ["c"]] * 4),
        }
    )
    found = detect(frame, today=TODAY)
    assert set(found) == {"card_number", "amount"}  # a list column cannot be read as text
    assert [f.detector for f in found["card_number"]] == ["payment_card"]
    assert found["amount"] == []
    with pytest.raises(ClassificationError, match="tags"):
        detect(frame, ["tags"], today=TODAY)
    with pytest.raises(ClassificationError, match="missing_column"):
        detect(frame, ["missing_column"], today=TODAY)


def test_evidence_names_detector_and_ratio_never_a_value() -> None:
    values = [CANARIES[0]] * 5 + [f"user{i}@example.com" for i in range(5)]
    (finding,) = detect(pl.DataFrame({"notes_email": values}), today=TODAY)["notes_email"]
    assert finding.evidence.startswith("email: 10 of 10 non-null values match (100.0%)")
    assert all(v not in repr(finding) for v in values)


# --- the demo's sources ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("demo")
    seed(home)
    return home / "demo"


def _crm_table(demo: Path) -> pl.DataFrame:
    """Every column of the demo CRM table, as text (how the SQL connector lands it)."""
    with sqlite3.connect(demo / "crm" / "crm.db") as conn:
        names = [row[1] for row in conn.execute("PRAGMA table_info(accounts)")]
        select = ", ".join(f'CAST("{n}" AS TEXT)' for n in names)
        rows = conn.execute(f"SELECT {select} FROM accounts").fetchall()  # noqa: S608 - names from the table
    conn.close()
    return pl.DataFrame(rows, schema={n: pl.String for n in names}, orient="row")


def _declared(table: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    return table.select([pl.col(c.source_name).alias(c.name) for c in contract.columns])


def _erp_orders(demo: Path) -> pl.DataFrame:
    """The detail records of every demo ERP file, as text, in the erp.orders contract's column order."""
    names = [c.name for c in ERP.columns]
    rows = []
    for path in sorted((demo / "erp" / "drop").glob("orders_*.csv")):
        for line in path.read_bytes().decode("cp1252").splitlines():
            fields = line.split(";")
            if fields[0] == "D" and len(fields) == len(names) + 1:
                rows.append([f or None for f in fields[1:]])
    return pl.DataFrame(rows, schema={n: pl.String for n in names}, orient="row")


def test_demo_crm_declared_pii_columns_are_found_with_their_declared_type(demo: Path) -> None:
    frame = _declared(_crm_table(demo), CRM)
    found = detect(frame, today=TODAY)
    pii = {c.name: c.pii for c in CRM.columns if c.pii}
    assert pii == {
        "contact_name": "person_name",
        "contact_email": "email",
        "phone": "phone",
        "national_id": "national_id",
    }
    for column, kind in pii.items():
        assert [f.detector for f in found[column]] == [kind], column
        assert found[column][0].ratio > 0.99 and found[column][0].confidence == "high"
    assert drift(CRM, found) == []


def test_demo_crm_non_pii_columns_raise_no_finding(demo: Path) -> None:
    table = _crm_table(demo)
    found = detect(_declared(table, CRM), today=TODAY)
    declared_clean = [c.name for c in CRM.columns if c.pii is None]
    assert {c: found[c] for c in declared_clean} == {c: [] for c in declared_clean}
    # The 290 undocumented custom fields too: none holds personal data above the threshold (the two
    # canary emails in cf_0137__c are 0.1% of its values, well under it).
    physical = {c.source_name for c in CRM.columns}
    undeclared = detect(table, [c for c in table.columns if c not in physical], today=TODAY)
    assert {c: f for c, f in undeclared.items() if f} == {}


def test_demo_erp_columns_raise_no_false_finding(demo: Path) -> None:
    frame = _erp_orders(demo)
    assert frame.height > 1_000
    found = detect(frame, today=TODAY)
    assert {c: [f.detector for f in fs] for c, fs in found.items() if fs} == {"sales_rep_email": ["email"]}
    assert drift(ERP, found) == []


def test_the_batch_call_on_validated_typed_rows(demo: Path) -> None:
    """What the batch checks run: detect on the validated rows' declared columns, as validation typed them."""
    raw = _declared(_crm_table(demo), CRM)
    result = validate(compile_contract(CRM), raw, TextFormat.of(CRM))
    assert result.valid.schema["created_at"] != pl.String  # typed: dates and numbers are not text any more
    found = detect(result.valid, [c.name for c in CRM.columns], today=TODAY)
    assert set(found) == {c.name for c in CRM.columns}
    assert {c: [f.detector for f in fs] for c, fs in found.items() if fs} == {
        c.name: [c.pii] for c in CRM.columns if c.pii
    }
    assert drift(CRM, found) == []


# --- drift -----------------------------------------------------------------------------------------------


def test_drift_flags_planted_emails_in_a_column_declaring_no_pii(demo: Path) -> None:
    frame = _declared(_crm_table(demo), CRM)
    planted = [f"lead{i}.{CANARIES[0]}" for i in range(400)]
    frame = frame.with_columns(
        pl.concat([pl.Series(planted), frame["lead_source"].slice(400)]).alias("lead_source")
    )
    drifts = drift(CRM, detect(frame, today=TODAY))
    assert [(d.column, d.detector, d.confidence) for d in drifts] == [("lead_source", "email", "medium")]
    message = drifts[0].message
    assert "'lead_source'" in message and "email" in message and f"{drifts[0].ratio:.1%}" in message
    assert "declare piiType email" in message and "confidential or restricted" in message
    assert "or fix the source" in message
    assert not any(value in message for value in [*planted, *CANARIES, "assay-canary"])


def test_drift_flags_a_different_kind_and_respects_confidence_and_free_text() -> None:
    def finding(column: str, detector: str, confidence: str) -> Finding:
        return Finding(column, detector, 50, 100, 0.5, confidence, f"{detector}: 50 of 100")  # type: ignore[arg-type]

    columns = {c.name: c for c in CRM.columns}
    contract = replace(
        CRM,
        columns=(
            *CRM.columns,
            replace(columns["contact_name"], name="remarks", pii="free_text"),
        ),
    )
    findings = {
        "phone": [finding("phone", "phone", "high"), finding("phone", "email", "high")],
        "contact_name": [finding("contact_name", "person_name", "medium")],
        "churn_risk": [finding("churn_risk", "date_of_birth", "low")],
        "remarks": [finding("remarks", "iban", "high"), finding("remarks", "email", "high")],
        "not_in_contract": [finding("not_in_contract", "email", "high")],
    }
    assert [(d.column, d.detector) for d in drift(contract, findings)] == [("phone", "email")]
    assert "declares piiType phone" in drift(contract, findings)[0].message
    low = drift(contract, findings, min_confidence="low")
    assert [(d.column, d.detector) for d in low] == [("phone", "email"), ("churn_risk", "date_of_birth")]


# --- the gate and the chunked scan: cheaper, never different ------------------------------------------------

_PADDED = [pad + v + end for vs in POSITIVE.values() for v in vs for pad, end in (("", ""), ("  ", " \t"))]


def _gate_misses(values: list[str | None]) -> list[str | None]:
    """Values some detector matches that the cheap gate would not let through (must be none)."""
    frame = pl.DataFrame({"value": values}, schema={"value": pl.String})
    verdicts = row_verdicts(frame, "value", today=TODAY)
    matched = verdicts.select(pl.any_horizontal(pl.all()).fill_null(False)).to_series()
    gated = frame.get_column("value").str.contains(CANDIDATE).fill_null(False)
    return frame.filter(matched & ~gated).get_column("value").to_list()


def test_the_gate_lets_through_every_value_a_detector_matches() -> None:
    assert _gate_misses(_PADDED) == []
    verdicts = _verdicts(_PADDED)
    assert verdicts.select(pl.any_horizontal(pl.all())).to_series().all()  # the positives do match


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.text(),
            st.text(alphabet="0123456789 -+()./@:,ABCDEFGHNOSTXZabcdeinorstwgäßé\t", max_size=45),
            st.sampled_from(_PADDED).flatmap(
                lambda v: st.integers(0, max(len(v) - 1, 0)).flatmap(
                    lambda i: st.sampled_from(" -./@:1aZß").map(lambda c: v[:i] + c + v[i + 1 :])
                )
            ),
        ),
        max_size=100,
    )
)
def test_no_value_a_detector_matches_is_gated_out(values: list[str]) -> None:
    """Arbitrary text, detector-like alphabets and positives with one character changed."""
    assert _gate_misses(values) == []


def test_a_batch_scanned_in_chunks_finds_what_one_scan_of_it_finds() -> None:
    rows = [(v, i, date(1950 + i % 50, 1 + i % 12, 1)) for i, v in enumerate(_PADDED * 3)]
    frame = pl.DataFrame(
        {
            "value": [r[0] for r in rows],
            "number": pl.Series([4111111111111111 if r[1] % 3 else r[1] for r in rows], dtype=pl.Int64),
            "born_on": [r[2] for r in rows],
        }
    )
    whole = detect(frame, today=TODAY, threshold=1e-9, min_matches=1)
    assert {f.detector for f in whole["value"]} == set(DETECTORS)
    scan = Scan(TODAY, pool_rows=60)  # the detectors run several times, on values pooled from chunks
    for offset in range(0, frame.height, 37):
        scan.add(frame.slice(offset, 37), frame.columns)
    assert scan.rows == frame.height
    assert scan.findings(threshold=1e-9, min_matches=1) == whole


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(st.none(), st.sampled_from([*_PADDED, "", "  ", "\u00a0", "x"]), st.text(max_size=30)),
        min_size=1,
        max_size=120,
    ),
    st.integers(min_value=1, max_value=50),
)
def test_counting_per_distinct_value_gives_the_counts_of_counting_row_by_row(
    values: list[str | None], chunk: int
) -> None:
    """Columns of few distinct values are counted per value, the others row by row: same findings."""
    frame = pl.DataFrame(
        {"value": values, "number": [len(v or "") for v in values]},
        schema={"value": pl.String, "number": pl.Int64},
    )
    found = []
    for few_distinct in (0.0, 1.0):  # never per distinct value, always
        scan = Scan(TODAY, pool_rows=40, few_distinct=few_distinct)
        for offset in range(0, frame.height, chunk):
            scan.add(frame.slice(offset, chunk), frame.columns)
        found.append(scan.findings(threshold=1e-9, min_matches=1))
    assert found[0] == found[1]
    assert found[0] == detect(frame, today=TODAY, threshold=1e-9, min_matches=1)


# --- robustness ------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(st.none(), st.text(), st.text(alphabet="0123456789 -+()./@:ABCDEFXZ", max_size=40)))
)
def test_detection_never_raises_on_arbitrary_unicode(values: list[str | None]) -> None:
    frame = pl.DataFrame({"value": values}, schema={"value": pl.String})
    found = detect(frame, today=TODAY, min_matches=1, threshold=0.01)
    assert set(found) == {"value"}
    for f in found["value"]:
        assert f.detector in DETECTORS and 0 < f.ratio <= 1 and f.matches <= f.non_null
    verdicts = row_verdicts(frame, "value", today=TODAY)
    assert verdicts.height == len(values)
