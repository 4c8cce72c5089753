"""The demo sources are what the quickstart and end-to-end tests measure assay against.

So they must be exactly what ``expected.json`` says: reproducible to the byte, faults exactly where they are
recorded (and nowhere else), control totals that reconcile except in the batch meant to be rejected, and
canaries actually present in the sources a leak test will look for them in.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest

from pipelines.demo import CANARY_ERP_EMAIL, CANARY_UNDECLARED, CRM_UNDECLARED_CANARY_COLUMN, seed
from schemas.contract import Column, Contract, Rule, load_contract

REPO = Path(__file__).resolve().parents[2]
ERP_CONTRACT = REPO / "schemas" / "contracts" / "erp.orders.yaml"
CRM_CONTRACT = REPO / "schemas" / "contracts" / "crm.accounts.yaml"
DETAIL_FIELDS = 12  # "D" plus the 11 columns of erp.orders


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("home")
    seed(path)
    return path


@pytest.fixture(scope="module")
def expected(home: Path) -> dict[str, Any]:
    return json.loads((home / "demo" / "expected.json").read_text("utf-8"))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _erp_lines(home: Path, name: str) -> list[list[str]]:
    text = (home / "demo" / "erp" / "drop" / name).read_bytes().decode("cp1252")
    return [line.split(";") for line in text.split("\r\n")[:-1]]


def _erp_decimal(text: str) -> Decimal:
    """Decimal comma with ``.`` thousands separators, as the ERP writes numbers."""
    if not re.fullmatch(r"-?\d{1,3}(\.\d{3})*(,\d+)?|-?\d+(,\d+)?", text):
        raise InvalidOperation(text)
    return Decimal(text.replace(".", "").replace(",", "."))


def test_seed_is_byte_identical_and_idempotent(tmp_path: Path) -> None:
    first = seed(tmp_path / "a")
    second = seed(tmp_path / "b")
    (tmp_path / "a" / "demo" / "stray.txt").write_text("left over from an older seed")
    again = seed(tmp_path / "a")
    assert first == second == again
    files = _files(tmp_path / "a" / "demo")
    assert files == _files(tmp_path / "b" / "demo")
    assert "stray.txt" not in files
    assert json.loads(files["expected.json"]) == first


def test_erp_files_are_cp1252_with_crlf(home: Path, expected: dict[str, Any]) -> None:
    names = sorted(p.name for p in (home / "demo" / "erp" / "drop").iterdir())
    assert names == sorted(expected["erp.orders"]["files"])
    assert len(names) >= 4
    for name in names:
        raw = (home / "demo" / "erp" / "drop" / name).read_bytes()
        assert raw.count(b"\n") == raw.count(b"\r\n") > 0, name
        text = raw.decode("cp1252")
        assert "GRÖSSE-XL-01" in text and "CAFÉ-500G" in text, name
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")


def test_records_and_control_totals(home: Path, expected: dict[str, Any]) -> None:
    rejected = {r["file"] for r in expected["erp.orders"]["rejected"]}
    assert rejected == {"orders_20261103.csv"}
    for name, facts in expected["erp.orders"]["files"].items():
        lines = _erp_lines(home, name)
        header, details, trailer = lines[0], lines[1:-1], lines[-1]
        assert header == ["H", f"ORD{name[7:15]}", name[7:15]]
        assert trailer[0] == "T" and all(d[0] == "D" for d in details)
        assert int(trailer[1]) == len(details) == facts["detail_records"]
        assert 250 <= len(details) <= 350
        total = sum((_erp_decimal(d[7]) for d in details), Decimal("0.00"))
        assert re.fullmatch(r"-?\d+,\d{2}", trailer[2]), "trailer total has no thousands separator"
        claimed = _erp_decimal(trailer[2])
        assert Decimal(facts["amount_total"]) == total
        assert Decimal(facts["trailer_amount_total"]) == claimed
        if name in rejected:
            assert claimed - total == Decimal("0.01")
        else:
            assert claimed == total


def test_amounts_use_decimal_comma_and_thousands_separator(home: Path) -> None:
    amounts = [d[7] for d in _erp_lines(home, "orders_20261101.csv")[1:-1]]
    assert any(re.fullmatch(r"\d{1,3}(\.\d{3})+,\d{2}", a) for a in amounts)
    assert all(re.fullmatch(r"\d{1,3}(\.\d{3})*,\d{2}", a) for a in amounts)
    for d in _erp_lines(home, "orders_20261104.csv")[1:-1]:
        exact = _erp_decimal(d[5]) * _erp_decimal(d[6])
        assert _erp_decimal(d[7]) == exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _rule_values(contract: Contract, column: str, kind: str) -> Any:
    rule = next(r for r in contract.column(column).rules if r.kind == kind)
    return rule.args.get("values", rule.args.get("value"))


def _detail_faults(fields: list[str], contract: Contract) -> set[tuple[str, str]]:
    """The faults of one detail record by erp.orders' rules, worked out independently of the generator."""
    faults: set[tuple[str, str]] = set()
    if len(fields) != DETAIL_FIELDS:
        faults.add(("_record", "field_count"))
    row = dict(zip([c.name for c in contract.columns], fields[1:], strict=False))
    if not row["order_id"]:
        faults.add(("order_id", "not_null"))
    elif not re.fullmatch(_rule_values(contract, "order_id", "pattern"), row["order_id"]):
        faults.add(("order_id", "pattern"))
    if not re.fullmatch(_rule_values(contract, "customer_id", "pattern"), row["customer_id"]):
        faults.add(("customer_id", "pattern"))
    try:
        datetime.strptime(row["order_date"], "%Y%m%d")
    except ValueError:
        faults.add(("order_date", "type"))
    if row.get("changed_at"):
        datetime.strptime(row["changed_at"], "%Y%m%d%H%M%S")
    assert 0 < len(row["sku"]) <= 18
    for column, minimum in (("quantity", "gt"), ("unit_price", "ge"), ("amount", None)):
        try:
            value = _erp_decimal(row[column])
        except InvalidOperation:
            faults.add((column, "type"))
            continue
        if minimum == "gt" and not value > 0 or minimum == "ge" and not value >= 0:
            faults.add((column, minimum))
    for column, check in (("currency", "currency_known"), ("status", "status_known")):
        if row[column] not in _rule_values(contract, column, "in_set"):
            faults.add((column, check))
    email = row.get("sales_rep_email")
    assert not email or re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email)
    return faults


def test_planted_erp_faults_are_exactly_the_recorded_ones(home: Path, expected: dict[str, Any]) -> None:
    contract = load_contract(ERP_CONTRACT)
    recorded = expected["erp.orders"]["faults"]
    assert len({(f["column"], f["check"]) for f in recorded}) >= 9
    for name in expected["erp.orders"]["files"]:
        details = _erp_lines(home, name)[1:-1]
        found: set[tuple[int, str, str]] = set()
        ids = Counter(d[1] for d in details if d[1])
        for line, fields in enumerate(details, start=2):
            faults = _detail_faults(fields, contract)
            if ids[fields[1]] > 1:
                faults.add(("order_id", "unique"))
            assert len(faults) <= 1, f"{name}:{line} has more than one fault: {faults}"
            found |= {(line, column, check) for column, check in faults}
        planted = {(f["line"], f["column"], f["check"]) for f in recorded if f["file"] == name}
        assert found == planted, name
        assert len(found) < 0.25 * len(details)


def test_field_count_faults_keep_the_amount_readable(home: Path, expected: dict[str, Any]) -> None:
    lines = _erp_lines(home, "orders_20261102.csv")
    counts = sorted(
        len(lines[f["line"] - 1]) for f in expected["erp.orders"]["faults"] if f["check"] == "field_count"
    )
    assert counts == [DETAIL_FIELDS - 1, DETAIL_FIELDS + 1]
    for fault in expected["erp.orders"]["faults"]:
        fields = lines[fault["line"] - 1]
        assert fields[0] == "D"
        _erp_decimal(fields[7])
    assert sum(f["check"] == "unique" for f in expected["erp.orders"]["faults"]) == 2


def _crm_rows(home: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    with sqlite3.connect(home / "demo" / "crm" / "crm.db") as conn:
        cursor = conn.execute("SELECT * FROM accounts")
        rows = cursor.fetchall()
        names = [d[0] for d in cursor.description]
    conn.close()
    return names, rows


def test_crm_table_is_wide_sparse_and_mixed(home: Path, expected: dict[str, Any]) -> None:
    names, rows = _crm_rows(home)
    assert len(names) >= 300
    assert len(rows) == expected["crm.accounts"]["rows"] >= 1500
    ids = [r[names.index("Id")] for r in rows]
    assert all(re.fullmatch(r"001[0-9A-Za-z]{15}", i) for i in ids)
    assert len({i.upper() for i in ids}) == len(ids)
    custom = [i for i, n in enumerate(names) if n.startswith("cf_")]
    assert len(custom) >= 290
    types: set[type] = set()
    for i in custom:
        values = [r[i] for r in rows]
        assert 0.07 <= values.count(None) / len(values) <= 0.63, names[i]
        types |= {type(v) for v in values if v is not None}
    assert types == {int, float, str}


def test_canaries_are_planted(home: Path, expected: dict[str, Any]) -> None:
    names, rows = _crm_rows(home)
    crm_values = {str(v) for r in rows for v in r if v is not None}
    erp_text = "".join(_erp_lines_text(home))
    canaries = expected["canaries"]
    assert len(canaries) >= 5
    for canary in canaries:
        assert canary in crm_values or canary in erp_text, canary
    assert CANARY_ERP_EMAIL in erp_text
    hidden = names.index(CRM_UNDECLARED_CANARY_COLUMN)
    assert any(r[hidden] == CANARY_UNDECLARED for r in rows)
    assert CRM_UNDECLARED_CANARY_COLUMN not in {c.source_name for c in load_contract(CRM_CONTRACT).columns}
    declared_pii = {c.source_name for c in load_contract(CRM_CONTRACT).columns if c.pii}
    for canary in set(canaries) - {CANARY_UNDECLARED, CANARY_ERP_EMAIL}:
        assert any(r[names.index(n)] == canary for r in rows for n in declared_pii), canary


def _erp_lines_text(home: Path) -> list[str]:
    return [p.read_bytes().decode("cp1252") for p in sorted((home / "demo" / "erp" / "drop").iterdir())]


def _conforms(value: Any, column: Column) -> bool:
    """Whether a stored SQLite value can be read as the column's logical type (ISO text for dates)."""
    try:
        match column.logical_type:
            case "integer":
                return type(value) is int
            case "boolean":
                return value in (0, 1)
            case "date":
                return bool(date.fromisoformat(value))
            case "timestamp":
                return bool(datetime.fromisoformat(value))
            case "number" if column.decimal:
                number = Decimal(str(value))
                return number == number.quantize(Decimal(1).scaleb(-column.decimal[1]))
            case "number":
                return isinstance(value, float)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def _breaks(value: Any, rule: Rule) -> bool:
    arg: Any = rule.args.get("value")
    match rule.kind:
        case "not_null":
            return value is None
        case "pattern":
            return value is not None and not re.fullmatch(arg, value)
        case "in_set":
            return value is not None and value not in rule.args["values"]
        case "ge" | "le":
            number = None if value is None else Decimal(str(value))
            return number is not None and (number < arg if rule.kind == "ge" else number > arg)
    return False


def test_crm_contract_maps_the_table_and_only_planted_rows_fail(home: Path, expected: dict[str, Any]) -> None:
    contract = load_contract(CRM_CONTRACT)
    assert contract.id == "crm.accounts" and contract.primary_key == ["account_id"]
    assert 20 <= len(contract.columns) <= 30
    names, rows = _crm_rows(home)
    key = names.index("Id")
    found: set[tuple[str, str, str]] = set()
    for column in contract.columns:
        assert column.source_name in names, column.source_name
        index = names.index(column.source_name)
        for row in rows:
            value = row[index]
            assert value is None or _conforms(value, column), (column.name, value)
            for rule in column.rules:
                if _breaks(value, rule):
                    check = rule.kind if rule.name == f"{column.name}_{rule.kind}" else rule.name
                    found.add((row[key], column.name, check))
    planted = {(f["key"], f["column"], f["check"]) for f in expected["crm.accounts"]["faults"]}
    assert found == planted == {(k, c, ch) for k, c, ch in planted if c in ("customer_tier", "contact_email")}
    assert len(planted) == 2
