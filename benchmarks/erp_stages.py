"""The ERP pipeline's stages timed one at a time (CPU and wall seconds), on a batch ``erp.py`` generated.

Each stage runs alone over every chunk of the file, in the order the pipeline runs them, so a figure is
that stage's own cost (the pipeline overlaps them in threads)::

    .venv/bin/python benchmarks/erp.py --rows 1000000 --workdir /tmp/erp-1m --only polars
    .venv/bin/python benchmarks/erp_stages.py /tmp/erp-1m/erp_orders_1000000.csv

    .venv/bin/python benchmarks/erp.py --rows 1000000 --workdir /tmp/erp-1m --fixed-width --only polars-fixed
    .venv/bin/python benchmarks/erp_stages.py /tmp/erp-1m/erp_orders_1000000.dat   # the fixed-width twin

Stages: survey (pass 1: controls and duplicate keys), split (pass 2: every record's fields), validate
(type and check, quarantine reasons), classify (the drift tally over the valid rows), quarantine write,
Delta write (the valid rows as one commit) and, for comparison, polars writing the same rows to Parquet.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import erp_fixed_width
import polars as pl
from erp import CONTRACT

from connectors.delimited import DEFAULT_CHUNK_BYTES, DelimitedFile
from connectors.fixed_width import FixedWidthFile
from governance.publish import RowStream, stage
from governance.quarantine import QuarantineWriter
from pipelines.batch import header_names
from pipelines.classify import ClassificationTally
from schemas import TextFormat, compile_contract, load_contract, validate
from schemas.chunked import DuplicateKeys
from schemas.contract import DelimitedSource, FixedWidthSource


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@contextmanager
def timed(name: str, figures: dict[str, tuple[float, float]]) -> Iterator[None]:
    cpu, wall = _cpu(), time.perf_counter()
    yield
    figures[name] = (_cpu() - cpu, time.perf_counter() - wall)
    print(f"  {name:<18} {figures[name][0]:7.2f} CPU s {figures[name][1]:7.2f} s", flush=True)


class _Batch:
    """Stand-in for the catalog's batch record: what the Delta write reads of it."""

    batch_id = "BENCH0001"
    checksum = "0" * 64
    run_id = "stages"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("--chunk-mb", type=int, default=DEFAULT_CHUNK_BYTES >> 20, help="chunk size in MiB")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="assay-stages-"))
    contract_path = work / "bench.erp_orders.yaml"
    text = CONTRACT.replace("ENCODING", "utf-8")
    if args.file.suffix == ".dat":  # the fixed-width twin erp.py --fixed-width writes
        text = text[: text.index("\ncustomProperties:") + 1] + erp_fixed_width.source_yaml()
    contract_path.write_text(text, "utf-8")
    contract = load_contract(contract_path)
    compiled = compile_contract(contract)
    source = contract.source
    fmt = TextFormat.of(contract)
    columns = [c.name for c in contract.columns]
    reader: DelimitedFile | FixedWidthFile
    if isinstance(source, FixedWidthSource):
        reader = FixedWidthFile(
            args.file, source, columns, chunk_bytes=args.chunk_mb << 20, checksum="0" * 64
        )
    else:
        assert isinstance(source, DelimitedSource)
        reader = DelimitedFile(
            args.file,
            source,
            columns,
            chunk_bytes=args.chunk_mb << 20,
            checksum="0" * 64,
            names=header_names(contract),
        )
    print(f"{args.file} (load average {os.getloadavg()[0]:.1f})")
    figures: dict[str, tuple[float, float]] = {}
    keys = DuplicateKeys(compiled, fmt)
    with timed("survey", figures):
        m = reader.survey(keep=keys.names, each=keys.add)
        duplicated = keys.duplicated()
    with timed("split", figures):
        chunks = list(reader.records())
    with timed("validate", figures):
        results = [validate(compiled, c, fmt, duplicated=duplicated) for c in chunks]
    del chunks
    tally = ClassificationTally(contract, today=m.business_date or date(2024, 1, 31))
    with timed("classify", figures):
        for r in results:
            tally.add(r.valid)
        tally.check()
    writer = QuarantineWriter(work / "quarantine", "0" * 64, "BENCH0001", "stages", args.file.name)
    with timed("quarantine write", figures):
        for r in results:
            writer.write(r.quarantine)
        writer.close()
    valid = [r.valid for r in results]
    del results
    with timed("delta write", figures):
        stage(
            work / "table",
            RowStream(valid[0].schema, iter(valid)),
            _Batch(),  # type: ignore[arg-type]
            mode="replace",
            key=["order_id"],
            stats_columns=["sku", "currency", "status"],
        )
    write: Callable[[], None] = lambda: pl.concat(valid).write_parquet(work / "polars.parquet")  # noqa: E731
    with timed("polars parquet", figures):
        write()
    total = sum(cpu for name, (cpu, _) in figures.items() if name != "polars parquet")
    print(f"  {'pipeline stages':<18} {total:7.2f} CPU s (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
