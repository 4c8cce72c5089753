"""Real bank files from the shared corpus, read unchanged: NACHA ACH (moov-io/ach) and BAI2 (moov-io/bai2).

Each assertion is a fact the corpus MANIFEST (or its FACTS_derived.txt) states: valid files reconcile at
batch and file level including NACHA's entry hash; broken files are rejected for the reason given; the
two BAI2 files whose trailers do not add up are rejected although moov's validator accepts them.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors import Extraction, read_bai2, read_fixed_width
from governance.catalog import Catalog
from governance.store import Store
from pipelines.batch import land_file, process
from schemas import Contract, TextFormat, compile_contract, validate
from schemas.contract import Bai2Source, FixedWidthSource

DEBIT, CREDIT = ["5", "6", "7", "8", "9"], ["0", "1", "2", "3", "4"]


def amount_total(name: str, start: int, width: int, side: list[str]) -> dict[str, Any]:
    """A NACHA dollar total: entry amounts (cents) whose transaction code's 2nd digit is on ``side``."""
    when = {"start": 3, "width": 1, "in": side}
    return {"name": name, "start": start, "width": width, "scale": 2,
            "sum": {"of": "6", "column": "amount", "when": when}}  # fmt: skip


ENTRY_HASH = {
    "of": "6",
    "start": 4,
    "width": 8,
    "digits": 10,
}  # low ten digits of the 8-digit RDFI routing numbers
ACH_SOURCE: dict[str, Any] = {
    "kind": "fixed_width",
    "path": "drop/ach",
    "pattern": "*.ach",
    "encoding": "cp1252",
    "recordLength": 94,
    "recordType": {"start": 1, "width": 1},
    "padding": "9",
    "records": {"1": "file_header", "5": "batch_header", "6": "detail", "7": "other", "8": "batch_trailer",
                "9": "file_trailer"},
    "layout": [
        {"name": "transaction_code", "start": 2, "width": 2},
        {"name": "rdfi_routing", "start": 4, "end": 12, "checkDigit": "aba"},
        {"name": "account_number", "start": 13, "width": 17},
        {"name": "amount", "start": 30, "picture": "9(8)V99"},
        {"name": "individual_id", "start": 40, "width": 15},
        {"name": "individual_name", "start": 55, "width": 22},
        {"name": "addenda_indicator", "start": 79, "width": 1},
        {"name": "trace_number", "start": 80, "width": 15},
    ],
    "batchId": {"record": "1", "start": 24, "width": 11},
    "businessDate": {"record": "1", "start": 24, "width": 6, "format": "YYMMDD"},
    "controls": [
        {"level": "batch", "record": "8", "figures": [
            {"name": "entry_addenda_count", "start": 5, "width": 6, "count": ["6", "7"]},
            {"name": "entry_hash", "start": 11, "width": 10, "hash": ENTRY_HASH},
            amount_total("total_debit", 21, 12, DEBIT),
            amount_total("total_credit", 33, 12, CREDIT),
        ]},
        {"level": "file", "record": "9", "figures": [
            {"name": "batch_count", "start": 2, "width": 6, "count": ["5"]},
            {"name": "block_count", "start": 8, "width": 6, "blocks": 10},
            {"name": "entry_addenda_count", "start": 14, "width": 8, "count": ["6", "7"]},
            {"name": "entry_hash", "start": 22, "width": 10, "hash": ENTRY_HASH},
            amount_total("total_debit", 32, 12, DEBIT),
            amount_total("total_credit", 44, 12, CREDIT),
        ]},
    ],
}  # fmt: skip
ACH_COLUMNS = [
    {"name": "transaction_code", "logicalType": "string", "required": True,
     "logicalTypeOptions": {"pattern": "^[2-5][0-9]$"}},
    {"name": "rdfi_routing", "logicalType": "string", "required": True},
    {"name": "account_number", "logicalType": "string", "required": True, "classification": "confidential"},
    {"name": "amount", "logicalType": "number", "physicalType": "decimal(12,2)", "required": True},
    {"name": "individual_id", "logicalType": "string"},
    {"name": "individual_name", "logicalType": "string", "classification": "confidential",
     "customProperties": [{"property": "piiType", "value": "person_name"}]},
    {"name": "addenda_indicator", "logicalType": "string"},
    {"name": "trace_number", "logicalType": "string", "required": True},
]  # fmt: skip
BAI2_COLUMNS = [
    {"name": "account_number", "logicalType": "string", "required": True, "classification": "confidential"},
    {"name": "currency", "logicalType": "string"},
    {"name": "as_of_date", "logicalType": "date", "required": True},
    {"name": "type_code", "logicalType": "string", "required": True, "logicalTypeOptions": {"pattern": "^[0-9]{3}$"}},
    {"name": "amount", "logicalType": "number", "physicalType": "decimal(18,2)", "required": True},
    {"name": "funds_type", "logicalType": "string"},
    {"name": "bank_reference", "logicalType": "string"},
    {"name": "customer_reference", "logicalType": "string"},
    {"name": "text", "logicalType": "string"},
]  # fmt: skip


@pytest.fixture(scope="module")
def ach(make_contract) -> Contract:
    return make_contract(ACH_SOURCE, ACH_COLUMNS, "bank.ach_entries")


@pytest.fixture(scope="module")
def bai2(make_contract) -> Contract:
    return make_contract(
        {"kind": "bai2", "path": "drop/bai2", "pattern": "*.txt"}, BAI2_COLUMNS, "bank.statement_lines"
    )


@pytest.fixture(scope="module")
def ach_files(corpus: Path) -> Path:
    return corpus / "moov-ach" / "testdata"


@pytest.fixture(scope="module")
def bai2_files(corpus: Path) -> Path:
    return corpus / "moov-bai2"


def read_ach(contract: Contract, path: Path, encoding: str = "cp1252") -> Extraction:
    assert isinstance(contract.source, FixedWidthSource)
    return read_fixed_width(
        path, replace(contract.source, encoding=encoding), [c.name for c in contract.columns]
    )


def read_statement(contract: Contract, path: Path) -> Extraction:
    assert isinstance(contract.source, Bai2Source)
    return read_bai2(path, contract.source, [c.name for c in contract.columns])


def figures(ex: Extraction) -> dict[str, tuple[str | None, str | None]]:
    return {name: (declared, actual) for name, declared, actual in ex.manifest.controls.figures}


def mismatches(ex: Extraction) -> dict[str, tuple[str | None, str | None]]:
    return {p.column or p.check: (p.expected, p.actual) for p in ex.manifest.controls.problems if p.expected}


# --- NACHA ACH ------------------------------------------------------------------------------------

VALID_ACH = [
    # file, encoding, entry rows, file-control facts from the MANIFEST / FACTS_derived.txt (declared = recomputed)
    ("ppd-debit.ach", "cp1252", 1, {"batch_count": "1", "entry_hash": "23138010", "total_debit": "1000000.00"}),
    ("ppd-debit-fixedLength.ach", "cp1252", 1, {"entry_addenda_count": "1", "entry_hash": "5320001", "total_debit": "105.00"}),
    ("short-line.ach", "cp1252", 1, {"batch_count": "1", "entry_hash": "23138010"}),
    ("long-line.ach", "cp1252", 1, {"batch_count": "1", "entry_hash": "23138010"}),
    ("web-debit.ach", "cp1252", 6, {"batch_count": "3", "entry_addenda_count": "6", "entry_hash": "50600106",
                                    "total_debit": "150.00", "total_credit": "268.20"}),
    ("ppd-mixedDebitCredit.ach", "cp1252", 3, {"entry_hash": "69414030", "total_debit": "2000000.00",
                                               "total_credit": "2000000.00"}),
    ("ppd-mixedDebitCredit-invalid.ach", "cp1252", 2, {"entry_addenda_count": "2", "entry_hash": "46276020"}),
    ("cor-example.ach", "cp1252", 1, {"entry_addenda_count": "2", "entry_hash": "23138010"}),
    ("return-WEB.ach", "cp1252", 2, {"batch_count": "2", "entry_addenda_count": "4", "entry_hash": "18280120",
                                     "total_debit": "123.54", "total_credit": "45.65"}),
    ("iat-debit.ach", "cp1252", 1, {"entry_addenda_count": "10", "entry_hash": "12104288", "total_debit": "1000.00"}),
    ("extended-ascii.ach", "utf-8", 6, {"batch_count": "2", "entry_addenda_count": "12", "entry_hash": "72625728",
                                        "total_debit": "1.20", "total_credit": "1.20"}),
    ("FISERV-ZEROFILE-PIMRET825324_032720_110221.ach", "cp1252", 0,
     {"batch_count": "0", "block_count": "1", "entry_addenda_count": "0", "entry_hash": "0", "total_debit": "0.00"}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "encoding", "entries", "facts"), VALID_ACH, ids=[v[0] for v in VALID_ACH])
def test_valid_ach_files_reconcile_at_batch_and_file_level(
    ach: Contract, ach_files: Path, name: str, encoding: str, entries: int, facts: dict[str, str]
) -> None:
    ex = read_ach(ach, ach_files / name, encoding)
    assert ex.manifest.controls.problems == ()  # every batch control (8) and the file control (9)
    assert ex.manifest.rows_read == entries == ex.records.height
    found = figures(ex)
    assert {k: found[k] for k in facts} == {k: (v, v) for k, v in facts.items()}
    result = validate(compile_contract(ach), ex.records, TextFormat.of(ach))
    assert result.valid.height == entries and result.quarantine.height == 0


def test_the_100k_entry_file_reconciles(ach: Contract, ach_files: Path, tmp_path: Path) -> None:
    path = tmp_path / "PPD-200-batches-100000-entries.ach"
    with (
        gzip.open(ach_files / "large-files" / "PPD-200-batches-100000-entries.ach.gz") as src,
        path.open("wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    ex = read_ach(ach, path)
    assert ex.manifest.controls.problems == ()
    assert ex.manifest.rows_read == 100_199  # not 100,000, as the MANIFEST notes
    assert figures(ex) == {
        "batch_count": ("200", "200"), "block_count": ("10061", "10061"),
        "entry_addenda_count": ("100199", "100199"), "entry_hash": ("8405463990", "8405463990"),
        "total_debit": ("0.00", "0.00"), "total_credit": ("201233987.66", "201233987.66"),
    }  # fmt: skip


def test_a_tampered_routing_number_breaks_the_entry_hash_of_batch_and_file(ach: Contract, ach_files: Path, tmp_path: Path) -> None:  # fmt: skip
    raw = (ach_files / "ppd-debit.ach").read_bytes()
    path = tmp_path / "ppd-debit.ach"
    path.write_bytes(raw.replace(b"62723138010412345678", b"62723138011412345678"))
    problems = {
        (p.line, p.column): (p.expected, p.actual) for p in read_ach(ach, path).manifest.controls.problems
    }
    assert problems == {
        (4, "entry_hash"): ("23138010", "23138011"),
        (5, "entry_hash"): ("23138010", "23138011"),
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # the file control declares 5 batches; 4 are present (moov's File.Validate BatchCount error)
        ("20110805A.ach", {"batch_count": ("5", "4")}),
        ("20110729A-invalid.ach", {"batch_count": ("5", "4")}),
        # the file control declares 665 batches / 10545 entries for 1 batch / 28 records
        ("shr-credit.ach", {"batch_count": ("665", "1"), "entry_addenda_count": ("10545", "28"),
                            "block_count": ("1188", "4"), "entry_hash": ("247745675", "57687350"),
                            "total_debit": ("2564393.81", "0.00"), "total_credit": ("8420463.09", "687.16")}),
        # 12 addenda the file control does not count: 1 declared, 13 present (and 20 records = 2 blocks)
        ("nonascii.ach", {"entry_addenda_count": ("1", "13"), "block_count": ("1", "2")}),
    ],
)  # fmt: skip
def test_ach_files_whose_file_control_does_not_reconcile(
    ach: Contract, ach_files: Path, name: str, expected: dict[str, tuple[str, str]]
) -> None:
    ex = read_ach(ach, ach_files / name)
    assert mismatches(ex) == expected
    assert len({p.line for p in ex.manifest.controls.problems if p.expected}) == 1  # all on the file control
    assert not [p for p in ex.manifest.controls.problems if "batch control" in p.message]  # batches balance


def test_a_malformed_93_character_header_is_caught(ach: Contract, ach_files: Path) -> None:
    ex = read_ach(ach, ach_files / "20110729A-invalid.ach")
    [date_problem] = [p for p in ex.manifest.controls.problems if p.check == "business_date"]
    assert date_problem.line == 1  # a character is missing mid-record, so the creation date is garbled
    assert ex.manifest.rows_read == 178


@pytest.mark.parametrize(
    ("name", "complaints"),
    [
        ("return-no-batch-controls.ach", ["line 1: no file header", "line 1: the batch opened here",
                                          "line 4: the batch opened here", "no file control record '9'"]),
        ("return-no-file-header-control.ach", ["line 1: no file header", "no file trailer", "no file control record '9'"]),
        ("file_parsing_missing_file_control.txt", ["line 2: the batch opened here (record '5') has no batch control",
                                                    "line 5: the file control record '9' holds no readable figure"]),
        ("bh-ed-ad-bh-ed-ad-ed-ad.ach", ["no file header", "line 4: the batch opened here", "no file control"]),
    ],
)  # fmt: skip
def test_ach_files_missing_control_records_are_rejected(
    ach: Contract, ach_files: Path, name: str, complaints: list[str]
) -> None:
    messages = " | ".join(p.message for p in read_ach(ach, ach_files / name).manifest.controls.problems)
    for complaint in complaints:
        assert complaint in messages


def test_cp1252_and_utf8_twins_read_the_same(ach: Contract, ach_files: Path) -> None:
    cp1252 = read_ach(ach, ach_files / "nonascii.ach", "cp1252")
    utf8 = read_ach(ach, ach_files / "nonascii-utf8.ach", "utf-8")
    assert cp1252.records.get_column("individual_name").to_list() == ["0012Receiver¦Acc Name"]
    assert cp1252.records.drop("_source_offset").equals(utf8.records.drop("_source_offset"))
    assert mismatches(cp1252) == mismatches(utf8)
    # read with the wrong encoding, the UTF-8 file's 2-byte characters make records too long: quarantined
    wrong = read_ach(ach, ach_files / "extended-ascii.ach", "cp1252")
    assert wrong.records.get_column("_record_error").to_list().count("record_length") == 1


def test_a_wrong_routing_check_digit_is_a_field_problem_not_a_control_problem(
    ach: Contract, ach_files: Path
) -> None:
    ex = read_ach(ach, ach_files / "ppd-debit-invalid-entryDetail-checkDigit.ach")
    assert ex.manifest.controls.problems == ()
    result = validate(compile_contract(ach), ex.records, TextFormat.of(ach))
    assert result.valid.height == 0
    assert result.quarantine.get_column("reasons").to_list() == [
        [{"column": "_record", "check": "check_digit:rdfi_routing"}]
    ]


# --- BAI2 -----------------------------------------------------------------------------------------

VALID_BAI2 = [
    # file, transactions (16), file trailer facts (total in currency units, groups, logical records)
    ("sample1.txt", 17, {"file_total": "12800.00", "file_groups": "1", "file_records": "27"}),
    ("sample2.txt", 4, {"file_total": "3454500.00", "file_groups": "4", "file_records": "31"}),
    ("sample3.txt", 26, {"file_total": "25084.40", "file_groups": "1", "file_records": "74"}),
]


@pytest.mark.parametrize(("name", "transactions", "facts"), VALID_BAI2, ids=[v[0] for v in VALID_BAI2])
def test_bai2_account_group_and_file_trailers_reconcile(
    bai2: Contract, bai2_files: Path, name: str, transactions: int, facts: dict[str, str]
) -> None:
    ex = read_statement(bai2, bai2_files / name)
    assert ex.manifest.controls.problems == ()  # every 49, 98 and the 99 trailer
    assert ex.manifest.rows_read == transactions
    assert figures(ex) == {k: (v, v) for k, v in facts.items()}
    result = validate(compile_contract(bai2), ex.records, TextFormat.of(bai2))
    assert result.valid.height == transactions and result.quarantine.height == 0


def test_bai2_records_continuations_and_funds_types(bai2: Contract, bai2_files: Path) -> None:
    two = read_statement(bai2, bai2_files / "sample2.txt").records.to_dicts()
    assert [(r["account_number"], r["amount"], r["funds_type"], r["text"]) for r in two] == [
        ("0123456789", "4500.00", "S", None),  # S: three availability amounts before the references
        ("9876543210", "5000.00", "S", "LOCK BOX NO.68751"),
        (
            "4589761203",
            "200000.00",
            "V",
            "PROCEEDS OF LETTER OF CREDIT FROM THE ARAMCO OIL CO",
        ),  # text in an 88
        ("4589761203", "100000.00", "1", None),
    ]
    assert two[2]["customer_reference"] == "YRC065321"
    three = read_statement(bai2, bai2_files / "sample3.txt").records
    # several records on one physical line keep their exact byte offsets
    raw = (bai2_files / "sample3.txt").read_bytes()
    assert all(raw[o : o + 3] == b"16," for o in three.get_column("_source_offset").to_list())
    assert three.get_column("_source_line").to_list()[:3] == [3, 3, 4]


def test_a_bai2_amount_changed_breaks_account_group_and_file(
    bai2: Contract, bai2_files: Path, tmp_path: Path
) -> None:
    path = tmp_path / "sample1.txt"
    path.write_bytes(
        (bai2_files / "sample1.txt")
        .read_bytes()
        .replace(b"16,409,000000000002500", b"16,409,000000000002501", 1)
    )
    problems = {
        (p.line, p.column): (p.expected, p.actual)
        for p in read_statement(bai2, path).manifest.controls.problems
    }
    assert problems == {
        (16, "account_total"): ("8340.00", "8340.01"),
        (26, "group_total"): ("12800.00", "12800.01"),
        (27, "file_total"): ("12800.00", "12800.01"),
    }


@pytest.mark.parametrize(("name", "records"), [("sample4-continuations-newline-delimited.txt", "116"), ("sample5-issue113.txt", "123")])  # fmt: skip
def test_bai2_files_whose_trailers_do_not_reconcile_are_rejected(
    bai2: Contract, bai2_files: Path, name: str, records: str
) -> None:
    """moov's reader and Validate() accept these files; their trailers do not add up (MANIFEST)."""
    problems = read_statement(bai2, bai2_files / name).manifest.controls.problems
    by_figure = {(p.line, p.column): (p.expected, p.actual) for p in problems}
    account = next(v for (line, col), v in by_figure.items() if col == "account_records" and v[0] == "26")
    assert account == ("26", "18")  # 49 declares 26 records for an account of 18
    assert next(v for (_, col), v in by_figure.items() if col == "account_total" and v[0] == "-12601613417.62") == (
        "-12601613417.62", "79999.60",
    )  # fmt: skip
    assert [v for (_, col), v in by_figure.items() if col == "group_accounts"] == [
        ("4", "5")
    ]  # 98 declares 4
    assert [v for (_, col), v in by_figure.items() if col == "file_records"] == [("18", records)]


def test_a_bai2_parse_error_file_is_rejected(bai2: Contract, bai2_files: Path) -> None:
    ex = read_statement(bai2, bai2_files / "errors" / "sample-parseError.txt")
    assert ex.records.get_column("_record_error").to_list() == ["record_type"]
    assert any("no file header (01)" in p.message for p in ex.manifest.controls.problems)


# --- the whole batch: certified, or rejected whole ----------------------------------------------------


@pytest.mark.parametrize(
    ("contract_name", "folder", "file", "outcome", "published"),
    [
        ("ach", "moov-ach/testdata", "web-debit.ach", "certified", 6),
        ("ach", "moov-ach/testdata", "20110805A.ach", "rejected", 0),
        ("bai2", "moov-bai2", "sample1.txt", "certified", 17),
        ("bai2", "moov-bai2", "sample4-continuations-newline-delimited.txt", "rejected", 0),
    ],
)
def test_a_batch_whose_controls_do_not_reconcile_is_rejected_whole(
    request: pytest.FixtureRequest, corpus: Path, tmp_path: Path,
    contract_name: str, folder: str, file: str, outcome: str, published: int,
) -> None:  # fmt: skip
    contract: Contract = request.getfixturevalue(contract_name)
    store = Store(home=tmp_path / "assay", catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog = Catalog(store.engine())
    catalog.register_dataset(
        contract.id,
        contract_version=contract.version,
        contract_checksum=contract.checksum,
        business_owner=contract.business_owner,
        operations_owner=contract.operations_owner,
    )
    landed = land_file(store, contract, corpus / folder / file)
    result = process(
        store, catalog, compile_contract(contract), landed, run_id="test", checkpoint=lambda stage: None
    )
    assert (result.outcome, result.rows_published) == (outcome, published)
    if outcome == "rejected":
        assert all(r["check"] in ("controls", "structure") for r in result.reasons)
        assert any("expected" in r["message"] and "found" in r["message"] for r in result.reasons)
