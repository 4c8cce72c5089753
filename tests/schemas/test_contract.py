"""Loading contracts: the shipped ones load; every broken one is refused with file, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import ContractError, load_contract, load_contracts
from schemas.contract import DelimitedSource, SqlSource

CONTRACTS = Path(__file__).resolve().parents[2] / "schemas" / "contracts"
ORDERS = CONTRACTS / "erp.orders.yaml"


def variant(folder: Path, *edits: tuple[str, str], name: str = "erp.orders.yaml") -> Path:
    """erp.orders.yaml with each ``(old, new)`` text edit applied (each ``old`` must occur once)."""
    text = ORDERS.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"test setup: {old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, needle: str, after: str | None = None) -> int:
    """1-based line of the first line of ``path`` containing ``needle`` (past the line holding ``after``)."""
    lines = path.read_text("utf-8").splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if after in line) + 1
    return next(i for i, line in enumerate(lines[start:], start=start + 1) if needle in line)


def problems(path: Path) -> list[str]:
    with pytest.raises(ContractError) as info:
        load_contract(path)
    return str(info.value).splitlines()


def test_shipped_contracts_load_with_owners_sources_and_types() -> None:
    contracts = load_contracts(CONTRACTS)
    assert [c.id for c in contracts] == ["crm.accounts", "erp.orders"]
    crm, erp = contracts

    assert erp.owners == ["revenue-lead@example.com", "team:erp-integration"]
    assert erp.primary_key == ["order_id"]
    assert erp.source_timezone == "Europe/Berlin"
    assert erp.max_quarantine_ratio == 0.25
    src = erp.source
    assert isinstance(src, DelimitedSource)
    assert (src.encoding, src.delimiter, src.decimal_separator, src.thousands_separator) == (
        "cp1252",
        ";",
        ",",
        ".",
    )
    assert (src.date_format, src.timestamp_format) == ("%Y%m%d", "%Y%m%d%H%M%S")
    assert src.record_types is not None and src.record_types.detail == "D"
    assert src.controls.amount_column == "amount" and src.controls.record_count_field == 1
    assert erp.column("amount").decimal == (14, 2)
    assert erp.column("quantity").source_name == "KWMENG"
    email = erp.column("sales_rep_email")
    assert (email.classification, email.pii, email.mask) == ("confidential", "email", "hash")
    assert {r.name for r in erp.column("status").rules} >= {"status_known", "status_not_null"}

    assert isinstance(crm.source, SqlSource) and crm.source.table == "accounts"
    assert crm.primary_key == ["account_id"]
    assert len(crm.columns) > 10
    assert crm.checksum != erp.checksum and len(erp.checksum) == 64


# (case, text edits, (text on the line the problem must name, past this text), words the message names)
BROKEN = [
    ("status not a string", [("status: active", "status: 5")], ("status: 5", None), ["status", "string"]),
    (
        "unknown top-level key",
        [("tags: [erp, orders]", "tags: [erp, orders]\nowner_notes: hello")],
        ("owner_notes:", None),
        ["owner_notes"],
    ),
    (
        "dataset id not lowercase",
        [("id: erp.orders", "id: ERP.Orders")],
        ("id: ERP.Orders", None),
        ["ERP.Orders"],
    ),
    (
        "no operations owner",
        [("role: operationsOwner", "role: reviewer")],
        ("- username: revenue-lead@example.com", None),
        ["operations owner"],
    ),
    (
        "personal data classified public",
        [
            (
                "        classification: confidential\n        customProperties:\n          - property: piiType",
                "        classification: public\n        customProperties:\n          - property: piiType",
            )
        ],
        ("classification: public", "name: sales_rep_email"),
        ["sales_rep_email", "personal data", "public"],
    ),
    (
        "decimal without scale",
        [("physicalType: decimal(12,2)", "physicalType: decimal(12)")],
        ("decimal(12)", None),
        ["unit_price", "decimal(12)"],
    ),
    (
        "unknown classification",
        [
            (
                "classification: public\n        logicalTypeOptions",
                "classification: secret\n        logicalTypeOptions",
            )
        ],
        ("classification: secret", None),
        ["sku", "secret"],
    ),
    (
        "regex does not compile",
        [('{pattern: "^C[0-9]{6}$"}', '{pattern: "^C[0-9{6}$"}')],
        ("^C[0-9{6}$", None),
        ["customer_id", "regex"],
    ),
    (
        "minimum not a number",
        [("{minimum: 0}", '{minimum: "zero"}')],
        ('minimum: "zero"', None),
        ["minimum", "zero"],
    ),
    (
        "unknown source option",
        [("      quote: '\"'\n", "      quote: '\"'\n      escapeChar: '\\'\n")],
        ("escapeChar:", None),
        ["escapeChar"],
    ),
    (
        "unknown time zone",
        [("value: Europe/Berlin", "value: Europe/Springfield")],
        ("Europe/Springfield", None),
        ["sourceTimezone", "Europe/Springfield"],
    ),
    (
        "two columns with one name",
        [("      - name: customer_id", "      - name: order_id")],
        ("- name: order_id", "physicalName: ORDNR"),
        ["order_id", "twice"],
    ),
    (
        "column name reserved for assay's own columns",
        [("      - name: customer_id", "      - name: _customer_id")],
        ("- name: _customer_id", None),
        ["_customer_id", "reserved", "physicalName"],
    ),
    (
        "validValues not a list",
        [("arguments: {validValues: [EUR, USD, GBP, CHF]}", "arguments: {validValues: EUR}")],
        ("validValues: EUR", None),
        ["validValues"],
    ),
    (
        "header position not a number",
        [("header: {batchId: 1, businessDate: 2}", "header: {batchId: first, businessDate: 2}")],
        ("batchId: first", None),
        ["batchId", "first"],
    ),
]


@pytest.mark.parametrize(("edits", "where", "words"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_contract_names_file_line_and_fix(
    tmp_path: Path, edits: list[tuple[str, str]], where: tuple[str, str | None], words: list[str]
) -> None:
    path = variant(tmp_path, *edits)
    line = line_of(path, *where)
    found = problems(path)
    matching = [p for p in found if p.startswith(f"{path}:{line}: ") and all(w in p for w in words)]
    assert matching, f"expected a problem at {path}:{line} naming {words}; got:\n" + "\n".join(found)
    assert all("Fix: " in p for p in matching)


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = variant(
        tmp_path,
        ("id: erp.orders", "id: ERP.Orders"),
        ("physicalType: decimal(14,2)", "physicalType: decimal(14)"),
        ("value: Europe/Berlin", "value: Mars/Olympus"),
        ("role: operationsOwner", "role: reviewer"),
        ('{pattern: "^C[0-9]{6}$"}', '{pattern: "(unclosed"}'),
    )
    found = problems(path)
    expected = {
        "ERP.Orders": line_of(path, "id: ERP.Orders"),
        "decimal(14)": line_of(path, "decimal(14)"),
        "Mars/Olympus": line_of(path, "Mars/Olympus"),
        "operations owner": line_of(path, "- username: revenue-lead@example.com"),
        "regex": line_of(path, "(unclosed"),
    }
    for word, line in expected.items():
        assert any(p.startswith(f"{path}:{line}: ") and word in p and "Fix: " in p for p in found), (
            word,
            found,
        )
    assert [int(p.split(":")[1]) for p in found] == sorted(int(p.split(":")[1]) for p in found)


def test_load_contracts_reports_every_broken_file_together(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    bad_id = variant(folder, ("id: erp.orders", "id: ERP.Orders"), name="a.yaml")
    bad_tz = variant(
        folder,
        ("id: erp.orders", "id: erp.returns"),
        ("value: Europe/Berlin", "value: Nowhere/Town"),
        name="b.yaml",
    )
    variant(folder, name="c.yaml")  # a good one does not hide the others

    with pytest.raises(ContractError) as info:
        load_contracts(folder)
    text = str(info.value)
    assert f"{bad_id}:{line_of(bad_id, 'ERP.Orders')}: " in text
    assert f"{bad_tz}:{line_of(bad_tz, 'Nowhere/Town')}: " in text
    assert "c.yaml" not in text


def test_the_same_dataset_id_in_two_files_is_refused(tmp_path: Path) -> None:
    variant(tmp_path, name="one.yaml")
    variant(tmp_path, name="two.yaml")
    with pytest.raises(ContractError, match=r"erp\.orders.*defined twice.*Fix: "):
        load_contracts(tmp_path)


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = variant(tmp_path, ("tags: [erp, orders]", "tags: [erp, orders"))
    (found,) = problems(path)
    # The scanner notices the unclosed bracket where the next key starts.
    assert found.startswith(f"{path}:{line_of(path, 'team:')}: not valid YAML")
    assert "Fix: " in found


@pytest.mark.parametrize(
    "edits",
    [
        [("schema:\n  - name: orders", "schema: 5\nschema_old:\n  - name: orders")],
        [("  members:\n", "  members: 5\n  old_members:\n")],
        [("customProperties:\n  - property: source", "customProperties: 5\nold:\n  - property: source")],
        [("      - name: changed_at", "      - just a string\n      - name: changed_at")],
        [
            (
                "        quality:\n          - name: currency_known",
                "        quality:\n          - 5\n          - name: x",
            )
        ],
    ],
    ids=[
        "schema-not-a-list",
        "members-not-a-list",
        "custom-not-a-list",
        "property-a-string",
        "quality-item-int",
    ],
)
def test_wrongly_shaped_documents_are_refused_not_a_traceback(
    tmp_path: Path, edits: list[tuple[str, str]]
) -> None:
    path = variant(tmp_path, *edits)
    found = problems(path)
    assert found and all(p.startswith(f"{path}:") and "Fix: " in p for p in found)


def test_missing_file_and_non_mapping_are_contract_errors(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"nope\.yaml:1: cannot read.*Fix: "):
        load_contract(tmp_path / "nope.yaml")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ContractError, match=r"list\.yaml:1: a contract is a YAML mapping"):
        load_contract(listed)
