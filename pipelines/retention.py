"""Landing retention: raw deliveries kept immutable for the contract's period, then removed and reported.

A landed delivery is removed only when it is older than ``landing.retentionDays`` *and* its batch is
settled (certified, replaced or rejected): a delivery a crashed run still needs is never removed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from governance.catalog import Catalog
from governance.store import Store
from schemas import Contract

SETTLED = ("certified", "replaced", "rejected")


@dataclass(frozen=True)
class Expired:
    dataset: str
    checksum: str
    files: tuple[str, ...]
    bytes: int
    landed_at: datetime
    batch: str | None


def expired_landings(
    store: Store, catalog: Catalog, contract: Contract, *, now: datetime | None = None
) -> list[Expired]:
    """Landed deliveries of ``contract`` past their retention period whose batch is settled."""
    days = contract.operations.retention_days
    folder = store.landing / contract.id
    if days is None or not folder.exists():
        return []
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    out = []
    for delivery in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = [f for f in delivery.iterdir() if f.is_file()]
        landed = datetime.fromtimestamp(
            min((f.stat().st_mtime for f in files), default=delivery.stat().st_mtime), UTC
        )
        if landed >= cutoff:
            continue
        batch = catalog.batch_by_checksum(contract.id, delivery.name)
        if batch is not None and batch.outcome not in SETTLED:
            continue
        out.append(
            Expired(
                contract.id,
                delivery.name,
                tuple(sorted(f.name for f in files)),
                sum(f.stat().st_size for f in files),
                landed,
                batch.batch_id if batch else None,
            )
        )
    return out


def remove(store: Store, expired: Expired) -> None:
    folder: Path = store.landing / expired.dataset / expired.checksum
    for f in folder.iterdir():
        f.chmod(0o644)  # landed files are read-only
    shutil.rmtree(folder)
