"""Appends audit records from its own process: the worker behind the concurrent-writer tests.

Not a test module; ``test_audit_anchors.py`` puts this folder on ``sys.path`` so spawned processes can
import it.
"""

from __future__ import annotations

import os
from typing import Any


def append_many(url: str, worker: int, count: int, key: bytes, start: Any) -> None:
    """Wait for every writer to be ready, then append ``count`` records (anchoring every 10)."""
    from governance.audit import append
    from governance.store import catalog_engine

    engine = catalog_engine(url)
    start.wait(timeout=120)
    for i in range(count):
        append(
            engine,
            actor=f"proc-{worker}",
            action="read",
            dataset=None,
            decision="allow",
            detail={"i": i, "pid": os.getpid()},
            anchor_key=key,
            anchor_every=10,
        )
    engine.dispose()
