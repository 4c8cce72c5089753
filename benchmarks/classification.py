"""Classification quality and cost: precision and recall per detector on labelled columns, and the cost of a scan.

    .venv/bin/python benchmarks/classification.py [--corpus PATH] [--cost ROWS]

Labelled columns:

- the demo CRM (``pipelines.demo.seed`` into a temporary folder), read as text from its SQLite table: the
  ``crm.accounts`` contract's declared columns, each labelled with its declared ``piiType`` (no label for the
  others); and the demo ERP's detail records, labelled by the ``erp.orders`` contract the same way.
- real wide extracts from the shared corpus (``$ASSAY_CORPUS`` or ``../shared/corpus``): the Salesforce lead,
  contact, user and account objects (``fivetran-dbt_salesforce``) and the SAP customer and vendor masters KNA1
  and LFA1 (``fivetran-dbt_sap``). Their columns are labelled **by hand** in :data:`CORPUS_LABELS` after
  reading every value: a label names the kind of value a column holds (a company's street is an ``address``);
  hashed or pseudonymised values (the user and account files) hold no detectable personal data and have no
  label; city, postcode and state columns alone are not labelled ``address`` (the detector looks for
  street lines and postcode-with-city). Every column not listed there has no label. Columns without a
  single value are left out (there is nothing to detect). Files of fewer than 20 rows (most hold 1-10) are
  scanned with ``min_matches=1``; the ratio threshold stays at its default.
- also labelled by hand from the corpus: a real North Carolina voter-register extract and the FDIC failed-bank
  list (``duckdb-csv``), and a Salesforce Data Loader account load (``sfdc-dataloader``).

Counting is per column and detector: a true positive is a labelled column whose label's detector reports a
finding, a false negative one whose label's detector does not, a false positive a finding for a detector
other than the column's label. The table counts every finding, and also, as P/R at medium+, only findings of
medium or high confidence (what blocks certification as drift). It is a report: it always exits 0.

``--cost ROWS`` also times :func:`governance.classification.detect` on ROWS x 20 string columns of mixed,
synthetic content (ids, amounts, dates, codes, names, emails, phones, addresses, notes...).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from governance.classification import DETECTORS, LEVELS, Finding, detect
from pipelines.demo import seed
from schemas.contract import Contract, load_contract

REPO = Path(__file__).resolve().parents[1]
TODAY = date(2026, 11, 1)

# Hand labels: file -> {column: piiType}. Unlisted columns hold no personal data (every value was read).
CORPUS_LABELS: dict[str, dict[str, str]] = {
    "fivetran-dbt_salesforce/seeds/sf_lead_data.csv": {
        "email": "email",
        "name": "person_name",  # 'h': a pseudonymised name
        "first_name": "person_name",  # 'H'
        "last_name": "person_name",  # a surname only
    },
    "fivetran-dbt_salesforce/seeds/sf_contact_data.csv": {
        "email": "email",
        "name": "person_name",  # full names, and one given name alone
        "first_name": "person_name",  # 'x'
        "last_name": "person_name",  # 'G'
        "phone": "phone",
        "mailing_street": "address",
    },
    # Every personal field of the user and account objects is hashed (base64), except the users' names.
    "fivetran-dbt_salesforce/seeds/sf_user_data.csv": {"name": "person_name"},
    "fivetran-dbt_salesforce/seeds/sf_account_data.csv": {},
    # name1 holds company names; ernam is the SAP user who created the record, ktokd an account group.
    "fivetran-dbt_sap/seeds/sap_kna1_data.csv": {"stras": "address"},
    "fivetran-dbt_sap/seeds/sap_lfa1_data.csv": {"stras": "address"},
    # A Salesforce Data Loader account load: 100 accounts with office phone numbers.
    "sfdc-dataloader/testfiles/data/insertAccountCsv.csv": {"PHONE": "phone"},
    # A real North Carolina voter-register extract (94 unnamed columns, 10 voters). column_36/37 are the
    # phone's area code and local number apart, column_50 the registration date, column_91 the state voter
    # id (not a national id), column_48 the age; none of those is labelled.
    "duckdb-csv/data/csv/real/ncvoter.csv": {
        "column_9": "person_name",  # last name alone
        "column_10": "person_name",  # first name alone
        "column_11": "person_name",  # middle name alone
        "column_13": "person_name",  # LAST, FIRST MIDDLE
        "column_14": "person_name",  # FIRST MIDDLE LAST
        "column_26": "address",  # residential street line
        "column_27": "address",  # CITY ST  ZIP
        "column_28": "address",  # mailing street line
        "column_35": "address",  # mailing CITY ST  ZIP
        "column_38": "phone",
    },
    # The FDIC failed-bank list: 568 banks, their cities, states and acquirers; no personal data.
    "duckdb-csv/data/csv/error/banklist.csv": {},
}
# How to read the files that are not comma-separated with a header.
READ_OPTIONS: dict[str, dict[str, object]] = {
    "duckdb-csv/data/csv/real/ncvoter.csv": {"separator": "\t", "has_header": False},
}
SMALL_FILE_ROWS = 20  # files this small are scanned with min_matches=1


@dataclass(frozen=True)
class Labelled:
    """One frame of columns to scan, their labels and how findings are counted."""

    source: str
    frame: pl.DataFrame
    labels: dict[str, str]
    min_matches: int = 3


def demo_sets(home: Path) -> list[Labelled]:
    """The demo CRM and ERP, labelled by their contracts' declared piiType."""
    seed(home)
    crm = load_contract(REPO / "schemas" / "contracts" / "crm.accounts.yaml")
    erp = load_contract(REPO / "schemas" / "contracts" / "erp.orders.yaml")
    with sqlite3.connect(home / "demo" / "crm" / "crm.db") as conn:
        columns = ", ".join(f'CAST("{c.source_name}" AS TEXT)' for c in crm.columns)
        rows = conn.execute(f"SELECT {columns} FROM accounts").fetchall()  # noqa: S608 - names from the contract
    conn.close()
    crm_frame = pl.DataFrame(rows, schema={c.name: pl.String for c in crm.columns}, orient="row")
    erp_rows = []
    for path in sorted((home / "demo" / "erp" / "drop").glob("*.csv")):
        for line in path.read_bytes().decode(getattr(erp.source, "encoding", "cp1252")).splitlines():
            fields = line.split(";")
            if fields[0] == "D" and len(fields) == len(erp.columns) + 1:
                erp_rows.append([f or None for f in fields[1:]])
    erp_frame = pl.DataFrame(erp_rows, schema={c.name: pl.String for c in erp.columns}, orient="row")
    return [
        Labelled("demo crm.accounts", crm_frame, _declared(crm)),
        Labelled("demo erp.orders", erp_frame, _declared(erp)),
    ]


def _declared(contract: Contract) -> dict[str, str]:
    return {c.name: c.pii for c in contract.columns if c.pii}


def corpus_sets(corpus: Path) -> list[Labelled]:
    sets = []
    for name, labels in CORPUS_LABELS.items():
        path = corpus / name
        if not path.exists():
            print(f"(skipped {name}: not in {corpus})")
            continue
        options = READ_OPTIONS.get(name, {})
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy", **options)  # type: ignore[arg-type]
        frame = frame.rename({c: c.replace("\ufffd", "").strip() for c in frame.columns})  # banklist's NBSPs
        filled = [c for c in frame.columns if frame[c].str.strip_chars().str.len_bytes().fill_null(0).max()]
        min_matches = 1 if frame.height < SMALL_FILE_ROWS else 3
        sets.append(Labelled(f"corpus {Path(name).stem}", frame.select(filled), labels, min_matches))
    return sets


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tp_medium: int = 0
    fp_medium: int = 0

    @staticmethod
    def ratio(hits: int, misses: int) -> str:
        return f"{hits / (hits + misses):.2f}" if hits + misses else "-"


def score(sets: Iterable[Labelled]) -> None:
    tallies = {d: Tally() for d in DETECTORS}
    confusions: list[tuple[str, str, str, str]] = []
    columns = labelled_columns = 0
    for labelled in sets:
        found = detect(labelled.frame, today=TODAY, min_matches=labelled.min_matches)
        for column, findings in found.items():
            columns += 1
            label = labelled.labels.get(column)
            labelled_columns += label is not None
            by_detector: dict[str, Finding] = {f.detector: f for f in findings}
            medium = {d for d, f in by_detector.items() if LEVELS.index(f.confidence) >= 1}
            if label is not None:
                tally = tallies[label]
                if label in by_detector:
                    tally.tp += 1
                    tally.tp_medium += label in medium
                else:
                    tally.fn += 1
            for det in by_detector:
                if det != label:
                    tallies[det].fp += 1
                    tallies[det].fp_medium += det in medium
            if label is not None or by_detector:
                seen = ", ".join(f"{d} {f.ratio:.0%} {f.confidence}" for d, f in by_detector.items()) or "-"
                verdict = "ok" if set(by_detector) == ({label} if label else set()) else "MISMATCH"
                confusions.append((labelled.source, column, label or "-", f"{seen}  [{verdict}]"))
    print(
        f"\n{columns} columns scanned, {labelled_columns} of them labelled personal data (today = {TODAY}).\n"
    )
    header = f"{'detector':<14}{'TP':>4}{'FP':>4}{'FN':>4}{'precision':>11}{'recall':>8}    P/R at medium+"
    print(header)
    print("-" * len(header))
    for det, t in tallies.items():
        fn_medium = t.tp + t.fn - t.tp_medium
        print(
            f"{det:<14}{t.tp:>4}{t.fp:>4}{t.fn:>4}{Tally.ratio(t.tp, t.fp):>11}{Tally.ratio(t.tp, t.fn):>8}"
            f"    {Tally.ratio(t.tp_medium, t.fp_medium)} / {Tally.ratio(t.tp_medium, fn_medium)}"
        )
    total = Tally(
        *(sum(getattr(t, f) for t in tallies.values()) for f in ("tp", "fp", "fn", "tp_medium", "fp_medium"))
    )
    print("-" * len(header))
    print(
        f"{'all':<14}{total.tp:>4}{total.fp:>4}{total.fn:>4}"
        f"{Tally.ratio(total.tp, total.fp):>11}{Tally.ratio(total.tp, total.fn):>8}"
        f"    {Tally.ratio(total.tp_medium, total.fp_medium)} / "
        f"{Tally.ratio(total.tp_medium, total.tp + total.fn - total.tp_medium)}"
    )
    print("\nPer column (labelled columns and every finding): source, column, label -> findings")
    for source, column, label, seen in confusions:
        print(f"  {source:<26} {column:<22} {label:<13} -> {seen}")


def synthetic(rows: int, seed_value: int = 1) -> pl.DataFrame:
    """``rows`` x 20 string columns of mixed content, 10% nulls, drawn from pools of 2,000 values each."""
    rng = random.Random(seed_value)
    first = ["Olivia", "Liam", "Emma", "Noah", "Hans", "Marie", "José", "Wei"]
    last = ["Smith", "Müller", "Garcia", "Dubois", "Rossi"]

    def pool(make: Callable[[], str], size: int = 2_000) -> list[str]:
        return [make() for _ in range(size)]

    def day(lo: int, hi: int, sep: str = "-") -> str:
        return f"{rng.randint(lo, hi)}{sep}{rng.randint(1, 12):02d}{sep}{rng.randint(1, 28):02d}"

    notes = [
        "pending review",
        "ok",
        "legacy import from the old system migrated 2019",
        "call +49 30 1234567 about renewal next week",
    ]
    words = ["alpha", "beta", "gamma", "delta", "order", "shipped"]
    pools = {
        "id": pool(lambda: "001" + "".join(rng.choice("ABCDEFGHJKabcdef0123456789") for _ in range(15))),
        "count": pool(lambda: str(rng.randint(0, 10**6))),
        "real": pool(lambda: f"{rng.uniform(-1000, 1000):.4f}"),
        "date": pool(lambda: day(2015, 2025)),
        "timestamp": pool(lambda: day(2015, 2025) + f"T{rng.randint(0, 23):02d}:15:00"),
        "code": pool(lambda: f"{rng.choice('ABC')}{rng.choice('XYZ')}-{rng.randint(1, 40)}"),
        "flag": ["0", "1"],
        "name": pool(lambda: f"{rng.choice(first)} {rng.choice(last)}"),
        "email": pool(lambda: f"{rng.choice(first).lower()}.{rng.randint(1, 999)}@example.com"),
        "phone": pool(lambda: f"+1-{rng.randint(200, 999)}-555-{rng.randint(0, 9999):04d}"),
        "street": pool(lambda: f"{rng.randint(1, 999)} {rng.choice(['Main', 'Oak', 'Baker'])} Street"),
        "notes": pool(lambda: rng.choice(notes)),
        "company": pool(
            lambda: f"{rng.choice(['Northwind', 'Contoso'])} Foods {rng.choice(['GmbH', 'Inc.'])}"
        ),
        "country": ["United States", "Germany", "France"],
        "amount": pool(lambda: f"{rng.randint(0, 99999):,}".replace(",", ".") + f",{rng.randint(0, 99):02d}"),
        "sap_number": pool(lambda: f"{rng.randint(0, 9_999_999):010d}"),
        "yyyymmdd": pool(lambda: day(1950, 2025, "")),
        "ssn": pool(lambda: f"{rng.randint(100, 499)}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"),
        "ip": pool(lambda: ".".join(str(rng.randint(0, 255)) for _ in range(4))),
        "text": pool(lambda: " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))),
    }
    columns = {}
    for j, (name, values) in enumerate(pools.items()):
        index = pl.int_range(0, rows, eager=True).shuffle(seed=j) % len(values)
        drawn = pl.Series(name, values).gather(index)
        missing = (pl.int_range(0, rows, eager=True).shuffle(seed=100 + j) % 10) == 0
        columns[name] = pl.select(pl.when(missing).then(None).otherwise(drawn)).to_series().alias(name)
    return pl.DataFrame(columns)


def cost(rows: int) -> None:
    frame = synthetic(rows)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nCost: detect() on {rows:,} rows x {frame.width} string columns ({frame.estimated_size() / 1e6:.0f} MB)"
    )
    for attempt in (1, 2, 3):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu, wall = usage.ru_utime + usage.ru_stime, time.perf_counter()
        found = detect(frame, today=TODAY)
        wall = time.perf_counter() - wall
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime - cpu
        per_million = wall / (rows * frame.width / 1e6)
        print(f"  run {attempt}: {wall:.2f} s wall, {cpu:.2f} s CPU, {per_million:.3f} s per million values")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS {peak:.0f} MB (before detect: {before:.0f} MB); load average {os.getloadavg()[0]:.1f}")
    flagged = {c: [f.detector for f in fs] for c, fs in found.items() if fs}
    print(f"  columns with findings: {flagged}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    default_corpus = os.environ.get("ASSAY_CORPUS") or str(REPO.parent / "shared" / "corpus")
    parser.add_argument("--corpus", default=default_corpus, help="the shared corpus folder")
    parser.add_argument("--cost", type=int, default=0, metavar="ROWS", help="also time detect on ROWS x 20")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sets = demo_sets(Path(tmp))
        sets += corpus_sets(Path(args.corpus))
        score(sets)
    if args.cost:
        cost(args.cost)
    return 0


if __name__ == "__main__":
    sys.exit(main())
