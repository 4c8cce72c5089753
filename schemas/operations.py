"""How a dataset is operated, from its contract: arrival, expected schedule, landing retention.

Declared under the contract's top-level ``customProperties``::

    - property: arrival
      value: {doneMarker: ".done"}          # a delivery is complete once <file>.done exists;
                                            # default: its size is unchanged across two sensor ticks
    - property: schedule
      value: {expectedBy: "0 7 * * 1-5", within: 24h}   # cron in the contract's sourceTimezone;
                                                         # within: at most the shortest interval between ticks
    - property: landing
      value: {retentionDays: 90}            # landed raw files older than this may be removed
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

DURATION = re.compile(r"^(\d+)\s*([mhd])$")
CRON = re.compile(r"^(\S+\s+){4}\S+$")


@dataclass(frozen=True)
class Schedule:
    """A certified delivery is expected by each ``expected_by`` cron tick, no older than ``within``."""

    expected_by: str
    within: timedelta


@dataclass(frozen=True)
class Operations:
    done_marker: str | None = None
    schedule: Schedule | None = None
    retention_days: int | None = None


@dataclass
class OperationsProblems:
    items: list[tuple[str, str, str]] = field(default_factory=list)  # (property, message, fix)


def duration(text: Any) -> timedelta | None:
    """``30m``, ``26h`` or ``2d`` as a timedelta (None if it is not one)."""
    m = DURATION.fullmatch(str(text).strip())
    if not m:
        return None
    amount, unit = int(m.group(1)), m.group(2)
    return {"m": timedelta(minutes=amount), "h": timedelta(hours=amount), "d": timedelta(days=amount)}[unit]


def parse_operations(props: dict[str, Any]) -> tuple[Operations, OperationsProblems]:
    problems = OperationsProblems()
    marker = None
    arrival = props.get("arrival")
    if arrival is not None:
        if not isinstance(arrival, dict) or set(arrival) - {"doneMarker"}:
            problems.items.append(
                (
                    "arrival",
                    f"arrival {arrival!r} is not {{doneMarker: <suffix>}}",
                    'write e.g. arrival: {doneMarker: ".done"}, or remove it to wait for a stable size',
                )
            )
        else:
            marker = arrival.get("doneMarker")
            if marker is not None and (
                not isinstance(marker, str) or not re.fullmatch(r"\.?[A-Za-z0-9_.-]+", marker)
            ):
                problems.items.append(
                    (
                        "arrival",
                        f"doneMarker {marker!r} is not a file-name suffix",
                        'write e.g. doneMarker: ".done"',
                    )
                )
                marker = None
    schedule = None
    raw = props.get("schedule")
    if raw is not None:
        cron = raw.get("expectedBy") if isinstance(raw, dict) else None
        within = duration(raw.get("within", "24h")) if isinstance(raw, dict) else None
        if not isinstance(cron, str) or not CRON.fullmatch(cron.strip()):
            problems.items.append(
                (
                    "schedule",
                    f"schedule.expectedBy {cron!r} is not a five-field cron expression",
                    'write e.g. schedule: {expectedBy: "0 7 * * 1-5", within: 26h}',
                )
            )
        elif within is None:
            problems.items.append(
                (
                    "schedule",
                    f"schedule.within {raw.get('within')!r} is not a duration",
                    "write e.g. within: 26h (m, h or d)",
                )
            )
        else:
            schedule = Schedule(expected_by=cron.strip(), within=within)
    retention = None
    landing = props.get("landing")
    if landing is not None:
        days = landing.get("retentionDays") if isinstance(landing, dict) else None
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            problems.items.append(
                (
                    "landing",
                    f"landing.retentionDays {days!r} is not a whole number of days >= 1",
                    "write e.g. landing: {retentionDays: 90}",
                )
            )
        else:
            retention = days
    return Operations(done_marker=marker, schedule=schedule, retention_days=retention), problems
