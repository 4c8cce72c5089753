"""Deterministic demo legacy sources for ``assay demo seed``.

The demo must exercise what makes legacy data hard, so that the quickstart shows assay doing real work:
an ERP batch export in cp1252 with CRLF, decimal commas, header/trailer control records and planted faults,
and a 300-column CRM table with cryptic custom fields and planted PII canaries. Everything is generated from
fixed seeds (no wall clock, no network, no checked-in binaries), so two seeds produce byte-identical files and
tests can assert exact outcomes from ``expected.json``.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

# --- canaries: values that must never reach an agent, a log or metadata unmasked -------------------------
CANARY_EMAIL = "canary.5f2c9a71@assay-canary.test"
CANARY_PHONE = "+1-646-555-0387"
CANARY_NAME = "Cassia Canaryfield"
CANARY_NATIONAL_ID = "512-47-8093"
CANARY_UNDECLARED = "canary.0137e4d2@assay-canary.test"
CANARY_ERP_EMAIL = "canary.erp.3b8d61f0@assay-canary.test"
CANARIES = (CANARY_EMAIL, CANARY_PHONE, CANARY_NAME, CANARY_NATIONAL_ID, CANARY_UNDECLARED, CANARY_ERP_EMAIL)

# --- ERP batch export ------------------------------------------------------------------------------------
ERP_DATASET = "erp.orders"
ERP_ENCODING = "cp1252"
CRLF = "\r\n"
CLEAN, FAULTY, UNRECONCILED = "clean", "faulty", "unreconciled"
# (business date, number of detail records, kind): one nightly file each.
ERP_BATCHES: tuple[tuple[date, int, str], ...] = (
    (date(2026, 11, 1), 300, CLEAN),
    (date(2026, 11, 2), 304, FAULTY),
    (date(2026, 11, 3), 296, UNRECONCILED),
    (date(2026, 11, 4), 310, CLEAN),
)
ERP_CANARY_BATCH = date(2026, 11, 1)  # a clean batch, so the canary is published (and must be masked)
AMOUNT_FIELD = 7  # 0-based position of the amount in a detail record, counting the record type "D"
EMAIL_FIELD = 11  # the last field of a well-formed detail record
CURRENCIES = ("EUR", "EUR", "EUR", "USD", "GBP", "CHF")
STATUSES = ("OPEN", "SHIPPED", "INVOICED", "INVOICED", "CANCELLED")
# SKU -> list price. The non-ASCII ones only exist in cp1252 (``€`` is not even latin-1).
SKUS: dict[str, Decimal] = {
    "GRÖSSE-XL-01": Decimal("24.90"),
    "CAFÉ-500G": Decimal("7.45"),
    "MÜSLI-750G": Decimal("4.19"),
    "CRÈME-FRAÎCHE-200": Decimal("1.89"),
    "JALAPEÑO-SAUCE": Decimal("3.25"),
    "BÜRO-STUHL-42": Decimal("189.00"),
    "GUTSCHEIN-50€": Decimal("50.00"),
    "STRAßENSCHILD-A4": Decimal("39.90"),
    "WIDGET-0001": Decimal("12.50"),
    "WIDGET-0002": Decimal("14.75"),
    "BOLT-M8X40-ZN": Decimal("0.12"),
    "PUMP-HYD-3000": Decimal("1249.00"),
    "CABLE-NYM-3X1,5": Decimal("0.98"),
    "PALLET-EUR-1200": Decimal("18.40"),
    "MOTOR-AC-7KW": Decimal("2380.00"),
    "LABEL-ROLL-100": Decimal("6.60"),
}
WEIGHED_SKUS = frozenset({"CAFÉ-500G", "MÜSLI-750G", "CABLE-NYM-3X1,5"})
SALES_REPS = (
    "anna.schmidt@example-erp.com",
    "jonas.weber@example-erp.com",
    "lea.fischer@example-erp.com",
    "mehmet.yilmaz@example-erp.com",
    "sophie.martin@example-erp.com",
    "lukas.becker@example-erp.com",
)

# --- CRM table -------------------------------------------------------------------------------------------
CRM_DATASET = "crm.accounts"
CRM_ROWS = 2000
CRM_CUSTOM_COLUMNS = 290
CRM_UNDECLARED_CANARY_COLUMN = "cf_0137__c"
TIERS = ("Gold", "Silver", "Silver", "Bronze", "Bronze", "Bronze")
COUNTRIES = ("United States", "United States", "Canada", "Germany", "United Kingdom", "France", "Switzerland")
AREA_CODES = ("212", "312", "415", "617", "713", "206", "303", "404")
FIRST_NAMES = (
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Mason",
    "Mia",
    "Lucas",
    "Zoe",
    "Ethan",
    "Grace",
    "Henry",
)
LAST_NAMES = ("Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Lopez", "Wilson", "Moore", "Clark")
COMPANY_WORDS = (
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Litware",
    "Adatum",
    "Proseware",
    "Wingtip",
    "Woodgrove",
    "Lucerne",
    "Alpine",
    "Fourth Coffee",
    "Müller Feinkost",
    "Société Lumière",
)
COMPANY_KINDS = ("Logistics", "Foods", "Systems", "Industries", "Retail", "Partners", "Labs", "Trading")
COMPANY_SUFFIXES = ("Inc.", "LLC", "GmbH", "Ltd", "AG", "S.A.", "Corp.")
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


@dataclass(frozen=True)
class CrmColumn:
    """One column of the CRM table: its SQLite type, how values are drawn, and how often it is null."""

    name: str
    sql_type: str
    kind: str
    null_rate: float


# Custom fields the crm.accounts contract declares (index -> value kind); all others stay undeclared.
DECLARED_CUSTOM: dict[int, str] = {
    4: "score100",  # renewal_score
    11: "ratio",  # churn_risk
    23: "date",  # last_contact_date
    31: "bool",  # is_partner
    42: "headcount",  # employee_count
    58: "naics",  # industry_code
    65: "region",  # region
    77: "score10",  # nps_score
    89: "date",  # contract_end_date
    102: "money",  # lifetime_value
    118: "support",  # support_level
    150: "bool",  # is_active
    163: "timestamp",  # last_order_at
    199: "count",  # open_opportunities
    214: "discount",  # discount_rate
    245: "lead",  # lead_source
}
RANDOM_KINDS = ("int", "real", "text", "code", "date", "timestamp", "bool")
SQL_TYPES = {
    "int": "INTEGER",
    "real": "REAL",
    "bool": "INTEGER",
    "score100": "INTEGER",
    "score10": "INTEGER",
    "headcount": "INTEGER",
    "count": "INTEGER",
    "ratio": "REAL",
    "discount": "REAL",
}


def seed(home: Path) -> dict[str, Any]:
    """Write the demo sources under ``home/demo/`` from scratch and return what a run should find.

    The folder is deleted first so a rerun is byte-identical, never a merge of old and new files.
    """
    demo = Path(home) / "demo"
    if demo.exists():
        shutil.rmtree(demo)
    erp_expected = _write_erp(demo / "erp" / "drop")
    crm_expected = _write_crm(demo / "crm" / "crm.db")
    expected: dict[str, Any] = {
        ERP_DATASET: erp_expected,
        CRM_DATASET: crm_expected,
        "canaries": list(CANARIES),
    }
    text = json.dumps(expected, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    (demo / "expected.json").write_text(text, encoding="utf-8", newline="\n")
    return expected


# ==========================================================================================================
# ERP
# ==========================================================================================================


@dataclass
class DetailRecord:
    """A detail line as text fields (after ``D``), plus the amount it contributes to the control total.

    Faults are planted on the text, so the amount is kept separately: it stays readable on every line.
    """

    fields: list[str]
    amount: Decimal


@dataclass(frozen=True)
class Fault:
    """A planted fault: how it breaks a record's text, and the rule a validator must name for it."""

    column: str
    check: str
    plant: Callable[[list[str]], list[str]]


def _write_erp(drop: Path) -> dict[str, Any]:
    drop.mkdir(parents=True)
    faults: list[dict[str, Any]] = []
    rejected: list[dict[str, str]] = []
    files: dict[str, dict[str, Any]] = {}
    next_id = 40_000_001
    for business_date, count, kind in ERP_BATCHES:
        rng = random.Random(int(business_date.strftime("%Y%m%d")))
        name = f"orders_{business_date:%Y%m%d}.csv"
        records: list[DetailRecord] = []
        for _ in range(count):
            records.append(_detail(rng, f"SO{next_id:08d}", business_date))
            next_id += rng.randint(1, 3)
        if business_date == ERP_CANARY_BATCH:
            _plant_erp_canary(records, (17, 203))
        if kind == FAULTY:
            faults.extend({"file": name, **f} for f in _plant_erp_faults(rng, records))
        total = sum((r.amount for r in records), Decimal("0.00"))
        trailer_total = total + Decimal("0.01") if kind == UNRECONCILED else total
        if kind == UNRECONCILED:
            rejected.append({"file": name, "reason": "controls"})
        (drop / name).write_bytes(_erp_file(business_date, records, trailer_total))
        files[name] = {
            "detail_records": len(records),
            "amount_total": str(total),
            "trailer_amount_total": str(trailer_total),
        }
    return {"faults": faults, "rejected": rejected, "files": files}


def _detail(rng: random.Random, order_id: str, business_date: date) -> DetailRecord:
    """One well-formed order line; amount = quantity x unit price, rounded half-up as the ERP does."""
    sku = rng.choice(sorted(SKUS))
    order_date = business_date - timedelta(days=rng.randint(0, 3))
    if sku in WEIGHED_SKUS:
        quantity = Decimal(rng.randint(1, 4000)) / Decimal(8)  # e.g. 12.5, 0.125
    elif SKUS[sku] >= 100:
        quantity = Decimal(rng.choice((1, 1, 2, 3, 5)))
    else:
        quantity = Decimal(rng.choice((1, 1, 2, 3, 5, 10, 12, 24, 50, 100, 250)))
    unit_price = (SKUS[sku] * Decimal(rng.randint(90, 110)) / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
    amount = (quantity * unit_price).quantize(Decimal("0.01"), ROUND_HALF_UP)
    fields = [
        order_id,
        f"C{rng.randint(100_000, 100_149):06d}",
        f"{order_date:%Y%m%d}",
        sku,
        _erp_quantity(quantity),
        _erp_decimal(unit_price, 2),
        _erp_decimal(amount, 2),
        rng.choice(CURRENCIES),
        rng.choice(STATUSES),
        _changed_at(rng, order_date, business_date),
        rng.choice(SALES_REPS) if rng.random() < 0.85 else "",
    ]
    return DetailRecord(fields, amount)


def _changed_at(rng: random.Random, order_date: date, business_date: date) -> str:
    """Local plant time between the order and the end of the business day; empty for never-changed lines.

    Times stay in 06:00-21:59 so no value falls in a daylight-saving gap or overlap of the plant's zone.
    """
    if rng.random() < 0.2:
        return ""
    day = order_date + timedelta(days=rng.randint(0, (business_date - order_date).days))
    moment = datetime(
        day.year, day.month, day.day, rng.randint(6, 21), rng.randint(0, 59), rng.randint(0, 59)
    )
    return f"{moment:%Y%m%d%H%M%S}"


def _erp_decimal(value: Decimal, places: int) -> str:
    """German ERP style: decimal comma, ``.`` between thousands (``1.234,56``)."""
    text = f"{value:,.{places}f}"
    return text.replace(",", "_").replace(".", ",").replace("_", ".")


def _erp_quantity(value: Decimal) -> str:
    """Whole quantities keep three decimals (``3,000``); weighed ones drop trailing zeros (``12,5``)."""
    if value == value.to_integral_value():
        return _erp_decimal(value, 3)
    return format(value.normalize(), "f").replace(".", ",")


def _trailer_decimal(value: Decimal) -> str:
    """The trailer's control total: decimal comma, no thousands separator."""
    return f"{value:.2f}".replace(".", ",")


def _erp_file(business_date: date, records: list[DetailRecord], trailer_total: Decimal) -> bytes:
    lines = [f"H;ORD{business_date:%Y%m%d};{business_date:%Y%m%d}"]
    lines.extend(";".join(["D", *r.fields]) for r in records)
    lines.append(f"T;{len(records)};{_trailer_decimal(trailer_total)}")
    return (CRLF.join(lines) + CRLF).encode(ERP_ENCODING)


def _plant_erp_canary(records: list[DetailRecord], positions: tuple[int, ...]) -> None:
    """A sales rep's email that is a canary: it must only ever leave the pipeline hashed."""
    for i in positions:
        records[i].fields[EMAIL_FIELD - 1] = CANARY_ERP_EMAIL


def _with(index: int, value: str) -> Callable[[list[str]], list[str]]:
    def plant(fields: list[str]) -> list[str]:
        return [value if i == index else f for i, f in enumerate(fields)]

    return plant


def _extra_field(fields: list[str]) -> list[str]:
    return [*fields, "EXTRA"]


def _missing_last_field(fields: list[str]) -> list[str]:
    return fields[:-1]


# Single-line faults; the duplicate order id (two lines) is planted separately.
SINGLE_LINE_FAULTS: tuple[Fault, ...] = (
    Fault("order_id", "not_null", _with(0, "")),
    Fault("quantity", "gt", _with(4, "-2,000")),
    Fault("status", "status_known", _with(8, "BACKORDR")),
    Fault("currency", "currency_known", _with(7, "XYZ")),
    Fault("order_date", "type", _with(2, "20261341")),
    Fault("unit_price", "type", _with(5, "12,5x")),
    Fault("order_id", "pattern", _with(0, "SO12")),
    Fault("_record", "field_count", _extra_field),
    Fault("_record", "field_count", _missing_last_field),
)


def _plant_erp_faults(rng: random.Random, records: list[DetailRecord]) -> list[dict[str, Any]]:
    """Break one line per fault (exactly one fault per line) and report each by its physical line number.

    Each line is first made consistent with what the fault will show (quantity -2, unit price 12.50, a full
    tail before a field is dropped), so its amount stays a readable, correct decimal and the trailer still
    reconciles: the batch must be accepted with these lines quarantined, not rejected.
    """
    slots = rng.sample(range(5, len(records) - 5), len(SINGLE_LINE_FAULTS) + 2)
    planted: list[dict[str, Any]] = []
    for fault, index in zip(SINGLE_LINE_FAULTS, slots, strict=False):
        record = records[index]
        if fault.column == "quantity":
            _reprice(record, quantity=Decimal(-2))
        elif fault.column == "unit_price":
            _reprice(record, unit_price=Decimal("12.50"))
        elif fault.column == "_record":
            record.fields[9] = record.fields[9] or "20261102120000"
            record.fields[10] = record.fields[10] or SALES_REPS[0]
        elif fault.column == "status":
            record.fields[EMAIL_FIELD - 1] = CANARY_ERP_EMAIL  # a quarantine preview must mask it too
        record.fields = fault.plant(record.fields)
        planted.append({"line": index + 2, "column": fault.column, "check": fault.check})
    first, second = sorted(slots[len(SINGLE_LINE_FAULTS) :])
    records[second].fields[0] = records[first].fields[0]
    planted.extend({"line": i + 2, "column": "order_id", "check": "unique"} for i in (first, second))
    return sorted(planted, key=lambda f: f["line"])


def _reprice(
    record: DetailRecord, quantity: Decimal | None = None, unit_price: Decimal | None = None
) -> None:
    """Set a line's quantity or unit price and recompute its amount the way the ERP does."""
    quantity = _parse_erp_decimal(record.fields[4]) if quantity is None else quantity
    unit_price = _parse_erp_decimal(record.fields[5]) if unit_price is None else unit_price
    record.amount = (quantity * unit_price).quantize(Decimal("0.01"), ROUND_HALF_UP)
    record.fields[4] = _erp_quantity(quantity)
    record.fields[5] = _erp_decimal(unit_price, 2)
    record.fields[AMOUNT_FIELD - 1] = _erp_decimal(record.amount, 2)


def _parse_erp_decimal(text: str) -> Decimal:
    return Decimal(text.replace(".", "").replace(",", "."))


# ==========================================================================================================
# CRM
# ==========================================================================================================


def _write_crm(db: Path) -> dict[str, Any]:
    db.parent.mkdir(parents=True)
    rng = random.Random(2024_03_01)
    columns = _crm_columns(rng)
    rows = [_crm_row(rng, columns) for _ in range(CRM_ROWS)]
    _dedupe_ids(rng, rows)
    faults = _plant_crm_faults(rng, rows)
    _create_table(db, columns, rows)
    return {"faults": faults, "rows": len(rows)}


def _crm_columns(rng: random.Random) -> list[CrmColumn]:
    """Standard Salesforce-like columns, then 290 cryptic custom fields of mixed types and sparse nulls."""
    columns = [
        CrmColumn("Id", "TEXT", "sfid", 0.0),
        CrmColumn("Name", "TEXT", "company", 0.0),
        CrmColumn("Contact_Name__c", "TEXT", "person", 0.0),
        CrmColumn("Contact_Email__c", "TEXT", "email", 0.0),
        CrmColumn("Phone", "TEXT", "phone", 0.08),
        CrmColumn("BillingCountry", "TEXT", "country", 0.02),
        CrmColumn("AnnualRevenue", "TEXT", "revenue", 0.1),
        CrmColumn("CreatedDate", "TEXT", "created", 0.0),
        CrmColumn("Customer_Tier__c", "TEXT", "tier", 0.0),
        CrmColumn("National_Id__c", "TEXT", "ssn", 0.05),
        CrmColumn("OwnerId", "TEXT", "owner", 0.0),
        CrmColumn("IsDeleted", "INTEGER", "zero", 0.0),
        CrmColumn("LastModifiedDate", "TEXT", "timestamp", 0.0),
        CrmColumn("BillingCity", "TEXT", "text", 0.15),
        CrmColumn("Website", "TEXT", "website", 0.3),
        CrmColumn("Industry", "TEXT", "code", 0.2),
    ]
    for i in range(1, CRM_CUSTOM_COLUMNS + 1):
        name = f"cf_{i:04d}__c"
        kind = DECLARED_CUSTOM.get(i) or rng.choice(RANDOM_KINDS)
        if name == CRM_UNDECLARED_CANARY_COLUMN:
            kind = "notes"
        columns.append(CrmColumn(name, SQL_TYPES.get(kind, "TEXT"), kind, round(rng.uniform(0.10, 0.60), 2)))
    return columns


def _crm_row(rng: random.Random, columns: list[CrmColumn]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    company = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_KINDS)} {rng.choice(COMPANY_SUFFIXES)}"
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    domain = company.split()[0].lower().replace("ü", "ue").replace("é", "e") + ".example"
    context = {"company": company, "person": f"{first} {last}", "email": f"{first}.{last}@{domain}".lower()}
    for col in columns:
        if col.null_rate and rng.random() < col.null_rate:
            row[col.name] = None
        elif col.kind in context:
            row[col.name] = context[col.kind]
        else:
            row[col.name] = _crm_value(rng, col.kind)
    return row


def _crm_value(rng: random.Random, kind: str) -> Any:
    """A value of one kind; dates and timestamps are ISO text, booleans 0/1, as the CRM's SQLite stores them.

    Times stay in 08:00-18:59 so none falls in a daylight-saving gap or overlap of America/New_York.
    """
    match kind:
        case "sfid":
            return _salesforce_id(rng, "001")
        case "owner":
            return _salesforce_id(rng, "005")
        case "phone":
            return f"+1-{rng.choice(AREA_CODES)}-555-01{rng.randint(0, 99):02d}"
        case "country":
            return rng.choice(COUNTRIES)
        case "revenue":
            return f"{Decimal(rng.randint(5_000_000, 90_000_000_000)) / 100:.2f}"
        case "created" | "timestamp":
            return _iso_moment(rng, date(2015, 1, 1), 3650).isoformat()
        case "tier":
            return rng.choice(TIERS)
        case "ssn":
            return f"{rng.randint(100, 499)}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
        case "zero":
            return 0
        case "website":
            return f"https://www.{rng.choice(COMPANY_WORDS).split()[0].lower()}.example"
        case "int" | "count":
            return rng.randint(0, 10 ** rng.choice((1, 2, 3, 5)))
        case "real":
            return round(rng.uniform(-1000, 1000), 4)
        case "text" | "notes":
            return rng.choice(("pending review", "ok", "n/a", "legacy import", "migrated 2019", "see ticket"))
        case "code":
            return f"{rng.choice(string.ascii_uppercase)}{rng.choice(string.ascii_uppercase)}-{rng.randint(1, 40)}"
        case "date":
            return (date(2018, 1, 1) + timedelta(days=rng.randint(0, 3000))).isoformat()
        case "bool":
            return rng.randint(0, 1)
        case "score100":
            return rng.randint(0, 100)
        case "score10":
            return rng.randint(0, 10)
        case "headcount":
            return rng.randint(1, 250_000)
        case "ratio":
            return round(rng.random(), 4)
        case "discount":
            return round(rng.uniform(0, 0.35), 3)
        case "naics":
            return str(
                rng.choice((311_000, 423_000, 445_000, 511_200, 541_500, 621_100)) + rng.randint(0, 99)
            )
        case "region":
            return rng.choice(("NA", "EMEA", "APAC", "LATAM"))
        case "support":
            return rng.choice(("Standard", "Premium", "Enterprise"))
        case "lead":
            return rng.choice(("Web", "Partner", "Event", "Referral", "Cold Call"))
        case "money":
            return f"{Decimal(rng.randint(0, 500_000_000)) / 100:.2f}"
    raise ValueError(f"unknown CRM value kind {kind!r}")


def _iso_moment(rng: random.Random, start: date, days: int) -> datetime:
    day = start + timedelta(days=rng.randint(0, days))
    return datetime(day.year, day.month, day.day, rng.randint(8, 18), rng.choice((0, 15, 30, 45)), 0)


def _salesforce_id(rng: random.Random, prefix: str) -> str:
    """An 18-character Salesforce-style id: 15 case-sensitive characters plus the 3-character checksum."""
    core = prefix + "".join(rng.choice(BASE62) for _ in range(12))
    suffix = ""
    for chunk in (core[0:5], core[5:10], core[10:15]):
        bits = sum(1 << i for i, c in enumerate(chunk) if c.isupper())
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return core + suffix


def _dedupe_ids(rng: random.Random, rows: list[dict[str, Any]]) -> None:
    """Ids are keys (case-insensitively, like Salesforce's 18-character ids): redraw the rare collision."""
    seen: set[str] = set()
    for row in rows:
        while row["Id"].upper() in seen:
            row["Id"] = _salesforce_id(rng, "001")
        seen.add(row["Id"].upper())


def _plant_crm_faults(rng: random.Random, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plant the canaries (in valid rows, which get published) and two faulty rows (which get quarantined).

    The unknown-tier row also carries the canary name and national id, so a quarantine preview that shows
    them unmasked is caught too.
    """
    picks = rng.sample(range(len(rows)), 7)
    tier_row, email_row = picks[:2]
    for i in picks[2:5]:
        rows[i].update(
            {
                "Contact_Name__c": CANARY_NAME,
                "Contact_Email__c": CANARY_EMAIL,
                "Phone": CANARY_PHONE,
                "National_Id__c": CANARY_NATIONAL_ID,
            }
        )
    for i in picks[5:]:
        rows[i][CRM_UNDECLARED_CANARY_COLUMN] = CANARY_UNDECLARED
    rows[tier_row].update(
        {"Customer_Tier__c": "Platinum", "Contact_Name__c": CANARY_NAME, "National_Id__c": CANARY_NATIONAL_ID}
    )
    rows[email_row]["Contact_Email__c"] = "not-an-email"
    return [
        {"key": rows[tier_row]["Id"], "column": "customer_tier", "check": "tier_known"},
        {"key": rows[email_row]["Id"], "column": "contact_email", "check": "pattern"},
    ]


def _create_table(db: Path, columns: list[CrmColumn], rows: list[dict[str, Any]]) -> None:
    names = [c.name for c in columns]
    quoted = ", ".join(f'"{n}"' for n in names)
    placeholders = ", ".join("?" * len(names))
    ddl = ", ".join(f'"{c.name}" {c.sql_type}' + (" PRIMARY KEY" if c.name == "Id" else "") for c in columns)
    # Identifiers come from this module's own column list, never from input; values are bound parameters.
    insert = f"INSERT INTO accounts ({quoted}) VALUES ({placeholders})"  # noqa: S608
    with sqlite3.connect(db) as conn:
        conn.execute(f"CREATE TABLE accounts ({ddl})")
        conn.executemany(insert, [tuple(r[n] for n in names) for r in rows])
    conn.close()
