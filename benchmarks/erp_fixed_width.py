"""The ERP benchmark's batch as a fixed-width export, for ``benchmarks/erp.py --fixed-width``.

The same 20 fields and arithmetic as the delimited batch (``erp._details``), laid out as a COBOL program
writes them: a 1-character record type, every field at a fixed position, money as implied decimals
(``9(10)V99``) and signed zoned decimals with the sign overpunched on the last digit (``S9(12)V99``),
dates as ``YYYYMMDD`` with ``00000000`` as empty, text padded with blanks; a header record (batch id,
business date) and a trailer record (count of detail records of type D, their exact amount total, overpunched). About
0.5% of the records are bad: an unknown currency or status, an impossible date, a negative quantity, a
key repeated a million records away, a broken pattern, priority 0, a blank SKU, an undeclared record type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (name, width, how the field is written); positions follow from the order, after the record type.
FIELDS: list[tuple[str, int, str]] = [
    ("order_id", 12, "text"),
    ("customer_id", 7, "text"),
    ("order_date", 8, "text"),
    ("sku", 18, "text"),
    ("quantity", 12, "S9(9)V999"),
    ("unit_price", 12, "9(10)V99"),
    ("amount", 14, "S9(12)V99"),
    ("currency", 3, "text"),
    ("status", 9, "text"),
    ("changed_at", 14, "text"),
    ("sales_rep_email", 30, "text"),
    ("plant", 4, "text"),
    ("sales_org", 4, "text"),
    ("ship_date", 8, "text"),
    ("discount", 5, "9(3)V99"),
    ("tax_rate", 5, "9(3)V99"),
    ("priority", 1, "text"),
    ("channel", 5, "text"),
    ("cost_center", 8, "text"),
    ("note", 40, "text"),
]
RECORD_LENGTH = 1 + sum(width for _, width, _ in FIELDS)
POSITIVE = "{ABCDEFGHI"  # overpunched last digit 0-9 of a positive number
NEGATIVE = "}JKLMNOPQR"


def source_yaml() -> str:
    """The contract's ``customProperties`` for the fixed-width batch (replaces the delimited source)."""
    layout, start = [], 2
    for name, width, kind in FIELDS:
        field = f"{{name: {name}, start: {start}, " + (
            f"width: {width}}}" if kind == "text" else f'picture: "{kind}"}}'
        )
        layout.append(f"        - {field}")
        start += width
    layout_text = "\n".join(layout)
    return f"""customProperties:
  - property: source
    value:
      kind: fixed_width
      path: drop
      pattern: "erp_orders_*.dat"
      encoding: utf-8
      recordLength: {RECORD_LENGTH}
      recordType: {{start: 1, width: 1}}
      records: {{H: file_header, D: detail, T: file_trailer}}
      batchId: {{record: H, start: 2, width: 10}}
      businessDate: {{record: H, start: 12, width: 8, format: YYYYMMDD}}
      layout:
{layout_text}
      controls:
        - level: file
          record: T
          figures:
            - {{name: record_count, start: 2, width: 9, count: [D]}}
            - {{name: amount_total, start: 11, width: 18, scale: 2, signed: overpunch,
               sum: {{of: D, column: amount}}}}
  - property: sourceTimezone
    value: Europe/Berlin
  - property: quarantine
    value: {{maxRatio: 0.05}}
"""


def _details(start: int, n: int) -> Any:
    """Fixed-width detail records ``start .. start+n`` and each one's amount in cents."""
    import polars as pl
    from erp import CHANNELS, CURRENCIES, FAULTS, SALES_ORGS, STATUSES

    i = pl.col("i")
    h = (i * 2654435761) % 4294967296
    fault = pl.when(i % 200 == 7).then((i // 200) % FAULTS).otherwise(-1)
    cents = h % 1_000_000 + 1
    month, day = (h % 12 + 1).cast(pl.String).str.zfill(2), (h % 28 + 1).cast(pl.String).str.zfill(2)
    pick = lambda values, by: pl.lit(values).list.get(by % len(values))  # noqa: E731

    def zoned(value: pl.Expr, width: int, negative: pl.Expr | bool = False) -> pl.Expr:
        digits = value.abs().cast(pl.String).str.zfill(width)
        last = digits.str.slice(width - 1, 1).cast(pl.Int32)
        sign = pl.when(negative).then(pl.lit(list(NEGATIVE))).otherwise(pl.lit(list(POSITIVE)))
        return digits.str.slice(0, width - 1) + sign.list.get(last)

    def text(value: pl.Expr, width: int) -> pl.Expr:
        return value.str.slice(0, width).str.pad_end(width)

    values = {
        "order_id": pl.format(
            "SO{}", pl.when(fault == 4).then((i - 1_000_000).abs()).otherwise(i).cast(pl.String).str.zfill(10)
        ),
        "customer_id": pl.when(fault == 9)
        .then(pl.lit("C12345X"))
        .otherwise(pl.format("C{}", (h % 900_000 + 100_000).cast(pl.String))),
        "order_date": pl.when(fault == 2)
        .then(pl.lit("20241345"))
        .otherwise(pl.format("2024{}{}", month, day)),
        "sku": pl.when(fault == 8)
        .then(pl.lit(""))
        .otherwise(pl.format("MAT-{}", (h % 50_000).cast(pl.String))),
        "quantity": zoned((h % 90 + 1) * 1000, 12, negative=fault == 3),
        "unit_price": cents.cast(pl.String).str.zfill(12),
        "amount": zoned(cents, 14),
        "currency": pl.when(fault == 0).then(pl.lit("XXX")).otherwise(pick(CURRENCIES, h)),
        "status": pl.when(fault == 1).then(pl.lit("LOST")).otherwise(pick(STATUSES, h // 7)),
        "changed_at": pl.format("2024{}{}{}3000", month, day, (h % 24).cast(pl.String).str.zfill(2)),
        "sales_rep_email": pl.format("rep{}@example.com", (h % 5000).cast(pl.String)),
        "plant": pl.when(fault == 5).then(pl.lit("12A4")).otherwise((h % 9000 + 1000).cast(pl.String)),
        "sales_org": pick(SALES_ORGS, h // 13),
        "ship_date": pl.when(h % 5 == 0)
        .then(pl.lit("00000000"))
        .otherwise(pl.format("2024{}{}", month, day)),
        "discount": ((h % 30) * 100 + h % 100).cast(pl.String).str.zfill(5),
        "tax_rate": pick(["01900", "00700", "00000"], h // 17),
        "priority": pl.when(fault == 6).then(pl.lit("0")).otherwise((h % 9 + 1).cast(pl.String)),
        "channel": pick(CHANNELS, h // 19),
        "cost_center": pl.format("CC{}", (h % 100_000).cast(pl.String).str.zfill(6)),
        "note": pl.format("Lieferung {} Größe ä €", (h % 1000).cast(pl.String)),
    }
    kind = pl.when(fault == 7).then(pl.lit("X")).otherwise(pl.lit("D"))  # an undeclared record type
    line = pl.concat_str([kind, *[text(values[name], width) for name, width, _ in FIELDS]])
    counted = pl.when(fault == 7).then(0).otherwise(cents)  # the trailer sums detail (D) records only
    return (
        pl.select(i=pl.int_range(start, start + n, dtype=pl.Int64))
        .lazy()
        .select(line=line, cents=counted, detail=pl.when(fault == 7).then(0).otherwise(1))
        .collect()
    )


def generate(path: Path, rows: int, block: int = 1_000_000) -> dict[str, Any]:
    """Write the fixed-width batch (LF-terminated records, header and trailer with count and total)."""
    total = count = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with tmp.open("wb") as fh:
        fh.write(("HBENCH00001" + "20240131").ljust(RECORD_LENGTH).encode() + b"\n")
        for start in range(0, rows, block):
            details = _details(start, min(block, rows - start))
            total += int(details.get_column("cents").sum())
            count += int(details.get_column("detail").sum())
            details.select("line").write_csv(fh, include_header=False, quote_style="never")
        digits = f"{total:018d}"
        trailer = f"T{count:09d}" + digits[:-1] + POSITIVE[int(digits[-1])]
        fh.write(trailer.ljust(RECORD_LENGTH).encode() + b"\n")
    tmp.replace(path)
    return {"rows": rows, "bytes": path.stat().st_size}
