"""Agent read latency: a filtered read of a few hundred rows from a 10-million-row certified dataset.

Everything an agent pays for is included: policy lookup, the masked policy view, the query, the
provenance, and the hash-chained audit record written before data is returned. The predicate is on
a non-sort column (``customer_id``), so no file or row-group pruning helps.

    .venv/bin/python benchmarks/read.py [--rows 10000000] [--calls 1000] [--threads 1,16] [--gateway]

Baseline named side by side: the same filter as a bare ``pl.scan_delta(...).filter(...).collect()``
with no policy, masking or audit. Targets (DESIGN.md): p50 < 20 ms, p99 < 100 ms.

``--gateway`` also measures the same reads end to end as agents make them: ``assay gateway serve`` in
its own process, and MCP clients (one session each) calling ``read_dataset`` over HTTP, rows returned
as JSON. The clients run on the same two cores as the gateway, so with 16 of them the figure includes
their own cost too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import polars as pl
from deltalake import write_deltalake

from governance import Catalog, Store, add_agent, connect
from governance.catalog import BatchRecord

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: bench.orders
name: orders
domain: bench
version: 1.0.0
status: active
team:
  name: bench
  members:
    - {username: owner@example.com, role: businessOwner}
    - {username: team:bench-ops, role: operationsOwner}
schema:
  - name: orders
    properties:
      - {name: order_id, logicalType: integer, required: true, primaryKey: true, classification: internal}
      - {name: customer_id, logicalType: string, required: true, classification: internal}
      - {name: order_date, logicalType: date, classification: internal}
      - {name: amount, logicalType: number, physicalType: "decimal(14,2)", classification: confidential}
      - {name: region, logicalType: string, classification: public}
      - name: email
        logicalType: string
        classification: confidential
        customProperties: [{property: piiType, value: email}, {property: mask, value: hash}]
customProperties:
  - property: source
    value: {kind: sql, connection: bench, table: orders}
"""

KEY = b"benchmark-audit-key-0123456789ab"

POLICY = """\
agents:
  bench-junior:
    datasets: ["bench.*"]
    purpose: benchmark
    quota: {calls: 1000000, rows: 1000000000}  # the level's default (1M rows a day) would stop the run
"""


def build(root: Path, rows: int) -> tuple[Store, str]:
    """A certified 'bench.orders' of ``rows`` rows (30,000 customers: ~330 rows each)."""
    store = Store(home=root, catalog_url=f"sqlite:///{root / 'catalog.db'}")
    (root / "contracts").mkdir(parents=True, exist_ok=True)
    (root / "contracts" / "bench.orders.yaml").write_text(CONTRACT)
    (root / "policy.yaml").write_text(POLICY)
    frame = _frame(rows)
    table = store.table_path("bench.orders")
    write_deltalake(str(table), frame.to_arrow(), mode="overwrite", target_file_size=128 * 1024 * 1024)
    catalog = Catalog(store.engine())
    catalog.register_dataset(
        "bench.orders",
        contract_version="1.0.0",
        contract_checksum="bench",
        business_owner="owner@example.com",
        operations_owner="team:bench-ops",
    )
    batch: BatchRecord = catalog.start_batch(
        "bench.orders",
        batch_id="bench-1",
        checksum="bench",
        source_file=None,
        business_date=None,
        run_id="bench",
    )
    catalog.stage_batch(batch, delta_version=0, rows_read=rows, rows_published=rows, rows_quarantined=0)
    catalog.certify(batch, expected_version=None, new_version=0, rows=rows, business_date=None)
    token = add_agent(store.engine(), "bench-junior", "junior")
    return store, token


def _frame(rows: int) -> pl.DataFrame:
    n = pl.int_range(0, rows, eager=True).alias("n").to_frame()
    return n.select(
        order_id=pl.col("n"),
        customer_id=pl.format("C{}", (pl.col("n") * 7919 % 30_000).cast(pl.String).str.zfill(6)),
        order_date=pl.lit(date(2026, 1, 1)) + pl.duration(days=pl.col("n") % 300),
        amount=((pl.col("n") % 100_000).cast(pl.Decimal(14, 2)) / 100).cast(pl.Decimal(14, 2)),
        region=pl.when(pl.col("n") % 3 == 0)
        .then(pl.lit("EU"))
        .when(pl.col("n") % 3 == 1)
        .then(pl.lit("US"))
        .otherwise(pl.lit("APAC")),
        email=pl.format("user{}@example.com", pl.col("n") % 250_000),
        _batch_id=pl.lit("bench-1"),
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def measure(store: Store, root: Path, token: str, calls: int, threads: int) -> tuple[list[float], int]:
    """Latencies (ms) of ``calls`` reads spread over ``threads`` readers, each with its own client."""
    latencies: list[float] = []
    rows_seen: list[int] = []
    lock = threading.Lock()

    def reader(worker: int, count: int) -> None:
        client = connect(
            store,
            "bench-junior",
            token,
            contracts_dir=root / "contracts",
            policy_path=root / "policy.yaml",
            audit_key=KEY,
        )
        client.read("bench.orders", where="customer_id = 'C000001'", limit=1000)  # warm the scan cache
        for i in range(count):
            customer = f"C{(worker * 1009 + i * 7) % 30_000:06d}"
            start = time.perf_counter()
            result = client.read("bench.orders", where=f"customer_id = '{customer}'", limit=1000)
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(elapsed)
                rows_seen.append(result.frame.height)

    per = calls // threads
    workers = [threading.Thread(target=reader, args=(w, per)) for w in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return latencies, int(statistics.median(rows_seen))


def measure_gateway(
    root: Path, token: str, calls: int, clients: int, workers: int = 1
) -> tuple[list[float], int]:
    """Latencies (ms) of ``read_dataset`` over MCP from ``clients`` concurrent sessions to a gateway process."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")}
    env.update(
        ASSAY_HOME=str(root),
        ASSAY_CONTRACTS=str(root / "contracts"),
        ASSAY_POLICY=str(root / "policy.yaml"),
        ASSAY_AUDIT_KEY=KEY.hex(),
    )
    command = [sys.executable, "-m", "pipelines.cli", "gateway", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    with (root / "gateway.log").open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}/mcp"
    latencies: list[float] = []
    rows_seen: list[int] = []

    async def agent(worker: int, count: int) -> None:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                args = {"dataset": "bench.orders", "where": "customer_id = 'C000001'", "limit": 1000}
                await client.call_tool("read_dataset", args)  # warm the scan cache
                for i in range(count):
                    customer = f"C{(worker * 1009 + i * 7) % 30_000:06d}"
                    args["where"] = f"customer_id = '{customer}'"
                    start = time.perf_counter()
                    result = await client.call_tool("read_dataset", args)
                    latencies.append((time.perf_counter() - start) * 1000)
                    if result.is_error:
                        raise RuntimeError(f"read_dataset failed: {result.content}")
                    rows_seen.append(len(result.structured_content["rows"]))

    async def all_agents() -> None:
        await asyncio.gather(*(agent(w, calls // clients) for w in range(clients)))

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "gateway.log").read_text()) from None
                time.sleep(0.1)
        asyncio.run(all_agents())
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    return latencies, int(statistics.median(rows_seen))


def baseline(store: Store, calls: int) -> list[float]:
    """The bare polars read of the same Delta version and filter: no policy, no masks, no audit."""
    frame = pl.scan_delta(str(store.table_path("bench.orders")), version=0)
    out = []
    for i in range(calls):
        customer = f"C{(i * 7) % 30_000:06d}"
        start = time.perf_counter()
        frame.filter(pl.col("customer_id") == customer).head(1000).collect()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--threads", default="1,16")
    parser.add_argument(
        "--gateway", action="store_true", help="also read through `assay gateway serve` over MCP"
    )
    parser.add_argument("--gateway-workers", default="1", help="gateway processes to measure, e.g. 1,2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="assay-bench-read-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        store, token = build(root, args.rows)
        print(f"built a certified {args.rows:,}-row dataset in {time.perf_counter() - t0:.1f} s")
        rows = [
            (
                "polars scan_delta+filter (baseline, no policy/audit)",
                baseline(store, min(args.calls, 200)),
                1,
                0,
            )
        ]
        for threads in (int(t) for t in args.threads.split(",")):
            lat, returned = measure(store, root, token, args.calls, threads)
            rows.append((f"assay read, {threads} concurrent reader(s)", lat, threads, returned))
        if args.gateway:
            for workers in (int(w) for w in args.gateway_workers.split(",")):
                for clients in (int(t) for t in args.threads.split(",")):
                    lat, returned = measure_gateway(root, token, args.calls, clients, workers)
                    what = f"gateway over MCP, {workers} worker(s), {clients} session(s)"
                    rows.append((what, lat, clients, returned))
        print(f"\n{'what':<55} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'rows/call':>9}")
        for name, lat, _, returned in rows:
            print(
                f"{name:<55} {len(lat):>6} {percentile(lat, 50):>8.1f} {percentile(lat, 99):>8.1f} "
                f"{returned or '':>9}"
            )
        print("\ntargets: p50 < 20 ms, p99 < 100 ms (DESIGN.md, on this 2-core machine)")


if __name__ == "__main__":
    main()
