"""ERP batch pipeline: a large delimited export through assay, side by side with polars, pandera and GX.

Generates (deterministically) an ERP-style delimited batch: a header and a trailer record around detail
records of 20 fields (decimal commas, ``YYYYMMDD`` dates, ``00000000`` as empty, a quoted field holding
the delimiter now and then) with about 0.5% bad rows (unknown currency or status, impossible dates,
negative quantities, a key repeated a million rows away, an extra field, broken patterns, an over-long
code); and its
cp1252 twin. Then measures, each in its own process (its peak RSS from ``wait4``), in one run:

1. polars' own streaming ``scan_csv -> sink_parquet`` on the UTF-8 file (every field as text): the baseline;
   beside it polars typing the fields as assay does (``polars-typed``, no checks), and polars with lenient
   casts and the same rules (``polars-lenient``: what a plain polars job would do, and what it lets through);
2. assay's full pipeline on it (``pipelines.batch.process``: read, type and validate every row, quarantine
   split, controls, one Delta commit, audit, certify), the landing copy timed apart;
3. pandera on pandas, the same rules (``DataFrameSchema``, ``lazy=True``), valid and failing rows written out;
4. Great Expectations, where it is installed;
5. assay on the cp1252 twin: the extra cost of transcoding chunk by chunk.

    .venv/bin/python benchmarks/erp.py [--rows 5000000] [--workdir DIR] [--compare-python PY]
    .venv/bin/python benchmarks/erp.py --large            # a >= 2.5 GB file: the pipeline's peak RSS
    .venv/bin/python benchmarks/erp.py --fixed-width      # also the batch as a fixed-width export

``--fixed-width`` adds the same records as a fixed-width file (``benchmarks/erp_fixed_width.py``: implied
decimals, overpunched signs, header and trailer control records): polars slicing it (its own baseline)
and assay's full pipeline on it, side by side with the delimited runs.

pandas, pandera's pandas backend and Great Expectations are not assay dependencies: ``--compare-python``
names an interpreter that has them (see docs/performance.md); without one they are reported as not
installed. Targets (DESIGN.md): assay within 1.5x of the baseline; peak RSS under 1 GB on >= 2.5 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import erp_fixed_width

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: bench.erp_orders
name: erp_orders
domain: bench
version: 1.0.0
status: active
team:
  name: bench
  members:
    - {username: owner@example.com, role: businessOwner}
    - {username: team:bench-ops, role: operationsOwner}
schema:
  - name: erp_orders
    properties:
      - {name: order_id, logicalType: string, required: true, primaryKey: true, classification: internal,
         logicalTypeOptions: {pattern: "^SO[0-9]{10}$"}}
      - {name: customer_id, logicalType: string, required: true, classification: internal,
         logicalTypeOptions: {pattern: "^C[0-9]{6}$"}}
      - {name: order_date, logicalType: date, required: true, classification: internal}
      - {name: sku, logicalType: string, required: true, classification: public, logicalTypeOptions: {maxLength: 18}}
      - {name: quantity, logicalType: number, physicalType: "decimal(12,3)", required: true,
         classification: internal, logicalTypeOptions: {exclusiveMinimum: 0}}
      - {name: unit_price, logicalType: number, physicalType: "decimal(12,2)", required: true,
         classification: internal, logicalTypeOptions: {minimum: 0}}
      - {name: amount, logicalType: number, physicalType: "decimal(14,2)", required: true, classification: confidential}
      - name: currency
        logicalType: string
        required: true
        classification: public
        quality: [{name: currency_known, metric: invalidValues, arguments: {validValues: [EUR, USD, GBP, CHF]},
                   mustBeLessOrEqualTo: 5, unit: percent}]
      - name: status
        logicalType: string
        required: true
        classification: public
        quality: [{name: status_known, metric: invalidValues,
                   arguments: {validValues: [OPEN, SHIPPED, INVOICED, CANCELLED]}, mustBeLessOrEqualTo: 5, unit: percent}]
      - {name: changed_at, logicalType: timestamp, classification: internal}
      - name: sales_rep_email
        logicalType: string
        classification: confidential
        customProperties: [{property: piiType, value: email}]
      - {name: plant, logicalType: string, required: true, classification: internal,
         logicalTypeOptions: {pattern: "^[0-9]{4}$"}}
      - name: sales_org
        logicalType: string
        required: true
        classification: internal
        quality: [{name: sales_org_known, metric: invalidValues, arguments: {validValues: [DE01, DE02, AT01, CH01]},
                   mustBeLessOrEqualTo: 5, unit: percent}]
      - {name: ship_date, logicalType: date, classification: internal}
      - {name: discount, logicalType: number, physicalType: "decimal(5,2)", classification: internal,
         logicalTypeOptions: {minimum: 0, maximum: 100}}
      - {name: tax_rate, logicalType: number, physicalType: "decimal(5,2)", classification: internal,
         logicalTypeOptions: {minimum: 0}}
      - {name: priority, logicalType: integer, required: true, classification: internal,
         logicalTypeOptions: {minimum: 1, maximum: 9}}
      - name: channel
        logicalType: string
        required: true
        classification: public
        quality: [{name: channel_known, metric: invalidValues, arguments: {validValues: [WEB, EDI, PHONE, STORE]},
                   mustBeLessOrEqualTo: 5, unit: percent}]
      - {name: cost_center, logicalType: string, classification: internal, logicalTypeOptions: {maxLength: 10}}
      - {name: note, logicalType: string, classification: internal, logicalTypeOptions: {maxLength: 60}}
customProperties:
  - property: source
    value:
      kind: delimited
      path: drop
      pattern: "erp_orders_*.csv"
      encoding: ENCODING
      delimiter: ";"
      quote: '"'
      decimalSeparator: ","
      dateFormat: YYYYMMDD
      timestampFormat: YYYYMMDDHHMISS
      emptyDates: ["00000000"]
      recordTypes: {field: 0, header: H, detail: D, trailer: T}
      header: {batchId: 1, businessDate: 2}
      trailer: {recordCount: 1, amountTotal: {field: 2, column: amount}}
  - property: sourceTimezone
    value: Europe/Berlin
  - property: quarantine
    value: {maxRatio: 0.05}
"""
COLUMNS = 20
FAULTS = 10  # kinds of planted fault, one every 200 rows in turn
CURRENCIES = ["EUR", "USD", "GBP", "CHF"]
STATUSES = ["OPEN", "SHIPPED", "INVOICED", "CANCELLED"]
SALES_ORGS = ["DE01", "DE02", "AT01", "CH01"]
CHANNELS = ["WEB", "EDI", "PHONE", "STORE"]


# -- the batch ----------------------------------------------------------------------------------------
def _details(start: int, n: int) -> Any:
    """Detail lines ``start .. start+n`` (and each line's amount in cents), from arithmetic only."""
    import polars as pl

    i = pl.col("i")
    h = (i * 2654435761) % 4294967296  # Knuth's multiplicative hash: deterministic, well spread
    fault = pl.when(i % 200 == 7).then((i // 200) % FAULTS).otherwise(-1)
    cents = h % 1_000_000 + 1
    money = pl.format("{},{}", (cents // 100).cast(pl.String), (cents % 100).cast(pl.String).str.zfill(2))
    month, day = (h % 12 + 1).cast(pl.String).str.zfill(2), (h % 28 + 1).cast(pl.String).str.zfill(2)
    pick = lambda values, by: pl.lit(values).list.get(by % len(values))  # noqa: E731
    fields = [
        pl.lit("D"),
        pl.format(
            "SO{}", pl.when(fault == 4).then((i - 1_000_000).abs()).otherwise(i).cast(pl.String).str.zfill(10)
        ),
        pl.when(fault == 9)
        .then(pl.lit("C12345X"))
        .otherwise(pl.format("C{}", (h % 900_000 + 100_000).cast(pl.String))),
        pl.when(fault == 2).then(pl.lit("20241345")).otherwise(pl.format("2024{}{}", month, day)),
        pl.format("MAT-{}", (h % 50_000).cast(pl.String))
        + pl.when(fault == 8).then(pl.lit("-EXTRA-LONG-NAME")).otherwise(pl.lit("")),
        pl.when(fault == 3)
        .then(pl.lit("1,000-"))
        .otherwise(pl.format("{},000", (h % 90 + 1).cast(pl.String))),
        money,
        money,
        pl.when(fault == 0).then(pl.lit("XXX")).otherwise(pick(CURRENCIES, h)),
        pl.when(fault == 1).then(pl.lit("LOST")).otherwise(pick(STATUSES, h // 7)),
        pl.format("2024{}{}{}3000", month, day, (h % 24).cast(pl.String).str.zfill(2)),
        pl.format("rep{}@example.com", (h % 5000).cast(pl.String)),
        pl.when(fault == 5).then(pl.lit("12A4")).otherwise((h % 9000 + 1000).cast(pl.String)),
        pick(SALES_ORGS, h // 13),
        pl.when(h % 5 == 0).then(pl.lit("00000000")).otherwise(pl.format("2024{}{}", month, day)),
        pl.format("{},{}", (h % 30).cast(pl.String), (h % 100).cast(pl.String).str.zfill(2)),
        pick(["19,00", "7,00", "0,00"], h // 17),
        pl.when(fault == 6).then(pl.lit("0")).otherwise((h % 9 + 1).cast(pl.String)),
        pick(CHANNELS, h // 19),
        pl.format("CC{}", (h % 100_000).cast(pl.String).str.zfill(6)),
        pl.when(i % 1000 == 3)
        .then(pl.lit('"Kunde; ""VIP"" äöü €"'))
        .otherwise(pl.format("Lieferung {} Größe ä €", (h % 1000).cast(pl.String))),
    ]
    line = pl.concat_str(fields, separator=";")
    line = pl.when(fault == 7).then(line + ";EXTRA").otherwise(line)
    return (
        pl.select(i=pl.int_range(start, start + n, dtype=pl.Int64))
        .lazy()
        .select(line=line.alias("line"), cents=cents)
        .collect()
    )


def generate(path: Path, rows: int, block: int = 1_000_000) -> dict[str, Any]:
    """Write the UTF-8 batch (CRLF lines, header and trailer with count and exact amount total)."""
    total = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with tmp.open("wb") as fh:
        fh.write(b"H;BENCH0001;20240131\r\n")
        for start in range(0, rows, block):
            details = _details(start, min(block, rows - start))
            total += int(details.get_column("cents").sum())
            details.select("line").write_csv(
                fh, include_header=False, quote_style="never", line_terminator="\r\n"
            )
        fh.write(f"T;{rows};{total // 100},{total % 100:02d}\r\n".encode())
    tmp.replace(path)
    return {"rows": rows, "bytes": path.stat().st_size}


def transcode(source: Path, target: Path, encoding: str = "cp1252", block: int = 64 << 20) -> None:
    """The same batch in another encoding (every character here exists in cp1252), block by block."""
    tmp = target.with_suffix(".part")
    with source.open("rb") as src, tmp.open("wb") as dst:
        carry = b""
        while data := src.read(block):
            data = carry + data
            cut = data.rfind(b"\n") + 1
            dst.write(data[:cut].decode("utf-8").encode(encoding))
            carry = data[cut:]
        dst.write(carry.decode("utf-8").encode(encoding))
    tmp.replace(target)


def batch_files(workdir: Path, rows: int, twin: bool) -> tuple[Path, Path]:
    """The UTF-8 batch and its cp1252 twin, generated once per row count (kept in ``workdir``)."""
    utf8 = workdir / f"erp_orders_{rows}.csv"
    cp1252 = workdir / f"erp_orders_{rows}.cp1252.csv"
    if not utf8.exists():
        started = time.perf_counter()
        generate(utf8, rows)
        print(
            f"generated {utf8} ({utf8.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s"
        )
    if twin and not cp1252.exists():
        transcode(utf8, cp1252)
    return utf8, cp1252


# -- what is measured, each in its own process --------------------------------------------------------
def _scan(path: Path, names: list[str]) -> Any:
    """polars' streaming scan of the batch past its header, every field as text, as the polars runs read it."""
    import polars as pl

    return pl.scan_csv(
        path,
        separator=";",
        has_header=False,
        skip_rows=1,
        schema={name: pl.String for name in names},
        truncate_ragged_lines=True,
    )


def measure_polars(path: Path, workdir: Path) -> dict[str, Any]:
    import polars as pl

    out = workdir / "polars_baseline.parquet"
    started = time.perf_counter()
    _scan(path, [f"field_{i}" for i in range(COLUMNS + 1)]).sink_parquet(out)
    seconds = time.perf_counter() - started
    rows = pl.scan_parquet(out).select(pl.len()).collect().item()
    return {"seconds": seconds, "rows": rows, "note": "every field as text; no types, no checks"}


def measure_polars_typed(path: Path, workdir: Path) -> dict[str, Any]:
    """The baseline plus the contract's typing (assay's ``parse_expr``: exact decimals, dates, times in
    UTC): what typing alone costs polars, without checks, quarantine, controls or a Delta commit."""
    import polars as pl

    from schemas import TextFormat, load_contract
    from schemas.parse import parse_expr

    contract_path = workdir / "polars_typed.erp_orders.yaml"
    contract_path.write_text(CONTRACT.replace("ENCODING", "utf-8"), "utf-8")
    contract = load_contract(contract_path)
    fmt = TextFormat.of(contract)
    names = ["record_type", *(c.name for c in contract.columns)]
    out = workdir / "polars_typed.parquet"
    started = time.perf_counter()
    _scan(path, names).select(parse_expr(c, fmt).alias(c.name) for c in contract.columns).sink_parquet(out)
    seconds = time.perf_counter() - started
    rows = pl.scan_parquet(out).select(pl.len()).collect().item()
    return {"seconds": seconds, "rows": rows, "note": "the contract's types, no checks"}


def measure_polars_lenient(path: Path, workdir: Path) -> dict[str, Any]:
    """What a polars user would write for the same contract: one streaming query, lenient casts
    (``strict=False``), the same rules as one boolean per row, every row written with its verdict.

    Fast, and it shows what leniency costs in correctness: a record with an extra field is cut to
    the declared width and judged valid, an over-precise or unreadable value in an optional column
    becomes null without a reason, and nothing reconciles the trailer. Its valid count, beside assay's
    published count, shows the rows it passes that assay quarantines.
    """
    import polars as pl

    names = ["record_type", *_NAMES]
    out = workdir / "polars_lenient.parquet"
    text = {name: pl.col(name) for name in names}

    def number(name: str, precision: int, scale: int) -> pl.Expr:
        return text[name].str.replace(",", ".", literal=True).cast(pl.Decimal(precision, scale), strict=False)

    def day(name: str) -> pl.Expr:
        return text[name].str.to_date("%Y%m%d", strict=False)

    typed = {
        **{name: text[name] for name in _NAMES},
        "order_date": day("order_date"),
        "ship_date": day("ship_date"),
        "quantity": number("quantity", 12, 3),
        "unit_price": number("unit_price", 12, 2),
        "amount": number("amount", 14, 2),
        "discount": number("discount", 5, 2),
        "tax_rate": number("tax_rate", 5, 2),
        "priority": text["priority"].cast(pl.Int64, strict=False),
        "changed_at": text["changed_at"]
        .str.to_datetime("%Y%m%d%H%M%S", strict=False)
        .dt.replace_time_zone("Europe/Berlin", ambiguous="null", non_existent="null")
        .dt.convert_time_zone("UTC"),
    }
    c = pl.col
    rules = [
        *(c(n).is_not_null() for n in ("order_id", "customer_id", "order_date", "sku", "quantity")),
        *(c(n).is_not_null() for n in ("unit_price", "amount", "currency", "status", "plant")),
        *(c(n).is_not_null() for n in ("sales_org", "priority", "channel")),
        c("order_id").str.contains(r"^SO[0-9]{10}$"),
        c("_repeated").is_null(),  # order_id unique in the batch
        c("customer_id").str.contains(r"^C[0-9]{6}$"),
        c("sku").str.len_chars() <= 18,
        c("quantity") > 0,
        c("unit_price") >= 0,
        c("currency").is_in(CURRENCIES),
        c("status").is_in(STATUSES),
        c("plant").str.contains(r"^[0-9]{4}$"),
        c("sales_org").is_in(SALES_ORGS),
        c("discount").is_between(0, 100) | c("discount").is_null(),
        (c("tax_rate") >= 0) | c("tax_rate").is_null(),
        c("priority").is_between(1, 9),
        c("channel").is_in(CHANNELS),
        (c("cost_center").str.len_chars() <= 10) | c("cost_center").is_null(),
        (c("note").str.len_chars() <= 60) | c("note").is_null(),
    ]
    started = time.perf_counter()
    details = _scan(path, names).filter(pl.col("record_type") == "D")
    # The batch-wide unique key: the repeated keys from a scan of their own, joined back (Expr.is_unique
    # would hold the whole batch). polars would share one parse of the file between the two uses and
    # hold it for the join; it is told not to, so it reads the file twice, as assay does.
    repeated = details.group_by("order_id").len().filter(pl.col("len") > 1).select("order_id", _repeated=True)
    (
        details.select(**typed)
        .join(repeated, on="order_id", how="left")
        .with_columns(_valid=pl.all_horizontal(rules).fill_null(False))
        .drop("_repeated")
        .sink_parquet(out, optimizations=pl.QueryOptFlags(comm_subplan_elim=False))
    )
    seconds = time.perf_counter() - started
    counts = pl.scan_parquet(out).select(pl.len(), pl.col("_valid").sum()).collect().row(0)
    return {
        "seconds": seconds,
        "rows": counts[0],
        "note": f"{counts[1]} valid, {counts[0] - counts[1]} failing; lenient casts, extra fields cut off, "
        "no controls, no Delta commit",
    }


def measure_assay(path: Path, workdir: Path, encoding: str, fixed_width: bool = False) -> dict[str, Any]:
    from governance.catalog import Catalog
    from governance.store import Store
    from pipelines.batch import land_file, process
    from schemas import compile_contract, load_contract

    home = Path(tempfile.mkdtemp(prefix="assay-", dir=workdir))
    contract_path = home / "bench.erp_orders.yaml"
    text = CONTRACT.replace("ENCODING", encoding)
    if fixed_width:
        text = text[: text.index("\ncustomProperties:") + 1] + erp_fixed_width.source_yaml()
    contract_path.write_text(text, "utf-8")
    contract = load_contract(contract_path)
    compiled = compile_contract(contract)
    store = Store(home=home, catalog_url=f"sqlite:///{home / 'catalog.db'}")
    catalog = Catalog(store.engine())
    catalog.register_dataset(
        contract.id,
        contract_version=contract.version,
        contract_checksum=contract.checksum,
        business_owner=contract.business_owner,
        operations_owner=contract.operations_owner,
    )
    started = time.perf_counter()
    landed = land_file(store, contract, path)
    landing = time.perf_counter() - started
    started = time.perf_counter()
    outcome = process(store, catalog, compiled, landed, run_id="bench", checkpoint=lambda stage: None)
    seconds = time.perf_counter() - started
    shutil.rmtree(home, ignore_errors=True)  # the landed copy and the table: as large as the batch
    if outcome.outcome != "certified":
        raise SystemExit(f"assay did not certify the batch: {outcome.reasons}")
    return {
        "seconds": seconds,
        "rows": outcome.rows_read,
        "note": f"{outcome.rows_published} published, {outcome.rows_quarantined} quarantined, "
        f"Delta v{outcome.version} certified; landing copy {landing:.1f} s apart",
    }


def _pandas_frame(path: Path) -> Any:
    """The batch in pandas, every field as text (lines with a wrong field count are skipped)."""
    import pandas as pd

    frame = pd.read_csv(
        path,
        sep=";",
        header=None,
        skiprows=1,
        dtype=str,
        keep_default_na=False,
        on_bad_lines="skip",
        engine="c",
        names=list(range(COLUMNS + 1)),
    )
    return frame[frame[0] == "D"].drop(columns=[0]).set_axis(_NAMES, axis=1)


_NAMES = [
    "order_id", "customer_id", "order_date", "sku", "quantity", "unit_price", "amount", "currency",
    "status", "changed_at", "sales_rep_email", "plant", "sales_org", "ship_date", "discount", "tax_rate",
    "priority", "channel", "cost_center", "note",
]  # fmt: skip


def _pandas_typed(raw: Any) -> Any:
    """The contract's types in pandas: numbers from decimal commas, local timestamps to UTC."""
    import pandas as pd

    typed = raw.copy()
    for name in ("quantity", "unit_price", "amount", "discount", "tax_rate"):
        typed[name] = pd.to_numeric(raw[name].str.replace(",", ".", regex=False), errors="coerce")
    typed["priority"] = pd.to_numeric(raw["priority"], errors="coerce").astype("Int64")
    for name in ("order_date", "ship_date"):
        typed[name] = pd.to_datetime(
            raw[name].where(raw[name] != "00000000"), format="%Y%m%d", errors="coerce"
        )
    local = pd.to_datetime(raw["changed_at"], format="%Y%m%d%H%M%S", errors="coerce")
    typed["changed_at"] = local.dt.tz_localize(
        "Europe/Berlin", ambiguous="NaT", nonexistent="NaT"
    ).dt.tz_convert("UTC")
    return typed


def measure_pandera(path: Path, workdir: Path) -> dict[str, Any]:
    import pandas as pd
    import pandera.pandas as pa

    started = time.perf_counter()
    raw = _pandas_frame(path)
    typed = _pandas_typed(raw)
    text = lambda **kw: pa.Column(str, **kw)  # noqa: E731
    schema = pa.DataFrameSchema(
        {
            "order_id": text(checks=pa.Check.str_matches(r"^SO[0-9]{10}$"), unique=True),
            "customer_id": text(checks=pa.Check.str_matches(r"^C[0-9]{6}$")),
            "order_date": pa.Column("datetime64[ns]"),
            "sku": text(checks=pa.Check.str_length(max_value=18)),
            "quantity": pa.Column(float, pa.Check.gt(0)),
            "unit_price": pa.Column(float, pa.Check.ge(0)),
            "amount": pa.Column(float),
            "currency": text(checks=pa.Check.isin(CURRENCIES)),
            "status": text(checks=pa.Check.isin(STATUSES)),
            "changed_at": pa.Column(pd.DatetimeTZDtype(tz="UTC"), nullable=True),
            "sales_rep_email": text(nullable=True),
            "plant": text(checks=pa.Check.str_matches(r"^[0-9]{4}$")),
            "sales_org": text(checks=pa.Check.isin(SALES_ORGS)),
            "ship_date": pa.Column("datetime64[ns]", nullable=True),
            "discount": pa.Column(float, pa.Check.in_range(0, 100), nullable=True),
            "tax_rate": pa.Column(float, pa.Check.ge(0), nullable=True),
            "priority": pa.Column("Int64", pa.Check.in_range(1, 9)),
            "channel": text(checks=pa.Check.isin(CHANNELS)),
            "cost_center": text(checks=pa.Check.str_length(max_value=10), nullable=True),
            "note": text(checks=pa.Check.str_length(max_value=60), nullable=True),
        }
    )
    try:
        schema.validate(typed, lazy=True)
        bad = pd.Index([])
    except pa.errors.SchemaErrors as exc:
        bad = pd.Index(exc.failure_cases["index"].dropna().unique())
    failed = typed.index.isin(bad)
    typed[~failed].to_parquet(workdir / "pandera_valid.parquet")
    raw[failed].to_parquet(workdir / "pandera_quarantine.parquet")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": len(raw),
        "note": f"{int((~failed).sum())} valid, {int(failed.sum())} failing; floats for decimals; "
        "lines with a wrong field count skipped by pandas",
    }


def measure_gx(path: Path, workdir: Path) -> dict[str, Any]:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    started = time.perf_counter()
    raw = _pandas_frame(path)
    typed = _pandas_typed(raw)
    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas("erp")
    asset = source.add_dataframe_asset("orders")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": typed})
    expectations = [
        gxe.ExpectColumnValuesToMatchRegex(column="order_id", regex=r"^SO[0-9]{10}$"),
        gxe.ExpectColumnValuesToBeUnique(column="order_id"),
        gxe.ExpectColumnValuesToMatchRegex(column="customer_id", regex=r"^C[0-9]{6}$"),
        gxe.ExpectColumnValuesToNotBeNull(column="order_date"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="sku", max_value=18),
        gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=0, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column="unit_price", min_value=0),
        gxe.ExpectColumnValuesToNotBeNull(column="amount"),
        gxe.ExpectColumnValuesToNotBeNull(column="quantity"),
        gxe.ExpectColumnValuesToNotBeNull(column="unit_price"),
        gxe.ExpectColumnValuesToNotBeNull(column="priority"),
        gxe.ExpectColumnValuesToBeInSet(column="currency", value_set=CURRENCIES),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=STATUSES),
        gxe.ExpectColumnValuesToMatchRegex(column="plant", regex=r"^[0-9]{4}$"),
        gxe.ExpectColumnValuesToBeInSet(column="sales_org", value_set=SALES_ORGS),
        gxe.ExpectColumnValuesToBeBetween(column="discount", min_value=0, max_value=100),
        gxe.ExpectColumnValuesToBeBetween(column="tax_rate", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="priority", min_value=1, max_value=9),
        gxe.ExpectColumnValuesToBeInSet(column="channel", value_set=CHANNELS),
        gxe.ExpectColumnValueLengthsToBeBetween(column="cost_center", max_value=10),
        gxe.ExpectColumnValueLengthsToBeBetween(column="note", max_value=60),
    ]
    failing: set[Any] = set()
    for expectation in expectations:
        result = batch.validate(expectation, result_format={"result_format": "COMPLETE"})
        failing.update(result.result.get("unexpected_index_list") or [])
    failed = typed.index.isin(list(failing))
    typed[~failed].to_parquet(workdir / "gx_valid.parquet")
    raw[failed].to_parquet(workdir / "gx_quarantine.parquet")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(raw), "note": f"{int(failed.sum())} failing rows"}


def measure_polars_fixed(path: Path, workdir: Path) -> dict[str, Any]:
    """polars has no fixed-width reader: every record as one text column, each field a ``str.slice``."""
    import polars as pl

    out = workdir / "polars_fixed_baseline.parquet"
    fields, start = [], 2
    for name, width, _ in erp_fixed_width.FIELDS:
        fields.append(pl.col("record").str.slice(start - 1, width).alias(name))
        start += width
    started = time.perf_counter()
    records = pl.scan_csv(
        path, has_header=False, separator="\x1f", quote_char=None, schema={"record": pl.String}
    )
    records.select(pl.col("record").str.slice(0, 1).alias("kind"), *fields).sink_parquet(out)
    seconds = time.perf_counter() - started
    rows = pl.scan_parquet(out).select(pl.len()).collect().item()
    return {"seconds": seconds, "rows": rows, "note": "every field sliced as text; no types, no checks"}


MEASURES = {
    "polars": lambda path, workdir: measure_polars(path, workdir),
    "polars-typed": measure_polars_typed,
    "polars-lenient": measure_polars_lenient,
    "assay": lambda path, workdir: measure_assay(path, workdir, "utf-8"),
    "polars-fixed": measure_polars_fixed,
    "assay-fixed": lambda path, workdir: measure_assay(path, workdir, "utf-8", fixed_width=True),
    "assay-cp1252": lambda path, workdir: measure_assay(path, workdir, "cp1252"),
    "pandera": measure_pandera,
    "gx": measure_gx,
}
NEEDS = {"pandera": "pandera.pandas", "gx": "great_expectations"}


def run_measure(name: str, path: Path, workdir: Path, python: str) -> dict[str, Any]:
    """Run one measure in a child process; its peak RSS comes from ``wait4`` on that child alone."""
    if name in NEEDS:
        probe = subprocess.run([python, "-c", f"import {NEEDS[name]}"], capture_output=True)
        if probe.returncode != 0:
            return {"name": name, "missing": True}
    out = workdir / f"{name}.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [
        python,
        __file__,
        "--measure",
        name,
        "--file",
        str(path),
        "--workdir",
        str(workdir),
        "--out",
        str(out),
    ]
    log = workdir / f"{name}.log"
    with log.open("wb") as stderr:  # GX draws progress bars there
        child = subprocess.Popen(command, env=env, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        return {"name": name, "failed": os.waitstatus_to_exitcode(status)}
    result = json.loads(out.read_text())
    result.update(name=name, peak_rss_mb=usage.ru_maxrss / 1024)  # Linux: kilobytes
    return result


def table(results: list[dict[str, Any]], baseline: float | None) -> str:
    """The results as a Markdown table; fixed-width runs are compared with polars on the fixed-width file."""
    fixed_baseline = next(
        (r["seconds"] for r in results if r["name"] == "polars-fixed" and "seconds" in r), None
    )
    labels = {
        "polars": "polars scan_csv -> sink_parquet (baseline)",
        "polars-typed": "polars, the contract's typing (no checks)",
        "polars-lenient": "polars, lenient casts + the same rules",
        "assay": "assay full pipeline, UTF-8",
        "assay-cp1252": "assay full pipeline, cp1252",
        "polars-fixed": "polars fixed width: scan + str.slice -> sink",
        "assay-fixed": "assay full pipeline, fixed width",
        "pandera": "pandera on pandas, same rules",
        "gx": "Great Expectations, same rules",
    }
    lines = [
        f"| {'run':<44} | {'seconds':>8} | {'rows/s':>10} | {'x baseline':>10} | {'peak RSS MB':>11} |",
        f"|{'-' * 46}|{'-' * 10}:|{'-' * 11}:|{'-' * 11}:|{'-' * 12}:|",
    ]
    for r in results:
        label = labels.get(r["name"], r["name"])
        if r.get("missing"):
            lines.append(f"| {label:<44} | {'not installed':>8} | {'':>10} | {'':>10} | {'':>11} |")
            continue
        if r.get("failed") is not None:
            lines.append(f"| {label:<44} | {'failed':>8} | {'':>10} | {'':>10} | {'':>11} |")
            continue
        base = fixed_baseline if r["name"].endswith("-fixed") else baseline
        ratio = f"{r['seconds'] / base:.2f}" if base else "-"
        lines.append(
            f"| {label:<44} | {r['seconds']:>8.2f} | {r['rows'] / r['seconds']:>10,.0f} | {ratio:>10} "
            f"| {r['peak_rss_mb']:>11,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument(
        "--workdir", type=Path, help="where the batches are generated and kept (default: a temp dir)"
    )
    parser.add_argument("--compare-python", default=sys.executable, help="interpreter with pandas/pandera/GX")
    parser.add_argument("--large", action="store_true", help="a >= 2.5 GB file: the pipeline's peak RSS")
    parser.add_argument("--only", help="comma-separated measures to run (default: all)")
    parser.add_argument(
        "--fixed-width",
        action="store_true",
        help="also the same batch as a fixed-width export (implied decimals, overpunch), side by side",
    )
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # child process: one measure, its result as JSON
        result = MEASURES[args.measure](args.file, args.workdir)
        args.out.write_text(json.dumps(result))
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="assay-erp-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = 13_500_000 if args.large and args.rows == 5_000_000 else args.rows
    names = (
        ["polars", "assay"]
        if args.large
        else ["polars", "polars-typed", "polars-lenient", "assay", "pandera", "gx", "assay-cp1252"]
    )
    if args.fixed_width:
        names += ["polars-fixed", "assay-fixed"]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    fixed = workdir / f"erp_orders_{rows}.dat"
    if args.prepare:  # child process: generate the batches (a parent that grew would inflate every
        # measure's peak RSS: Linux counts the forked image in the child's ru_maxrss)
        batch_files(workdir, rows, twin="assay-cp1252" in names)
        if args.fixed_width and not fixed.exists():
            started = time.perf_counter()
            erp_fixed_width.generate(fixed, rows)
            print(f"generated {fixed} in {time.perf_counter() - started:.0f} s")
        return
    prepare = [sys.executable, __file__, "--prepare", "--workdir", str(workdir), "--rows", str(args.rows)]
    prepare += [flag for flag, on in (("--large", args.large), ("--fixed-width", args.fixed_width)) if on]
    subprocess.run(prepare + (["--only", args.only] if args.only else []), check=True)
    utf8, cp1252 = batch_files(workdir, rows, twin="assay-cp1252" in names)
    print(
        f"batch: {rows:,} detail records x {COLUMNS} fields, {utf8.stat().st_size / 1e9:.2f} GB UTF-8 ({workdir})"
    )
    if args.fixed_width:
        print(f"fixed width: the same records, {fixed.stat().st_size / 1e9:.2f} GB ({fixed.name})")
    print(f"load average before: {os.getloadavg()[0]:.1f} (2 cores, shared)")
    results = []
    for name in names:
        python = args.compare_python if name in NEEDS else sys.executable
        path = cp1252 if name == "assay-cp1252" else fixed if name.endswith("-fixed") else utf8
        results.append(run_measure(name, path, workdir, python))
        results[-1]["load"] = os.getloadavg()[0]
        print(f"  {name}: done (load average {results[-1]['load']:.1f})", flush=True)
    baseline = next((r["seconds"] for r in results if r["name"] == "polars" and "seconds" in r), None)
    print()
    print(table(results, baseline))
    print()
    for r in results:
        if r.get("note"):
            print(f"{r['name']}: {r['note']} (load average {r['load']:.1f} when it ended)")
    utf8_run = next((r for r in results if r["name"] == "assay" and "seconds" in r), None)
    cp_run = next((r for r in results if r["name"] == "assay-cp1252" and "seconds" in r), None)
    if utf8_run and cp_run:
        extra = cp_run["seconds"] - utf8_run["seconds"]
        print(f"cp1252 transcoding: +{extra:.2f} s ({extra / utf8_run['seconds']:+.0%} over UTF-8)")


if __name__ == "__main__":
    main()
