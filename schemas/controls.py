"""Control records as data owners declare them: which record closes a file or batch, and its figures.

A control record (a trailer) declares figures about the records of its scope: counts, amount totals,
hash totals (NACHA's entry hash), block counts. This module turns the ``controls:`` list of a source
into frozen dataclasses; :mod:`connectors.controls` recomputes and compares them. It also holds what
every file-layout option shares: :class:`Span` (where a value sits) and :class:`LayoutError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class LayoutError(ValueError):
    """A source option that cannot be used; ``path`` leads from ``source`` to the offending key."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Span:
    """Where a value sits in a record: by position (1-based ``start``, ``width``), by delimited ``field``
    (0-based), or as a ``column`` the reader already produced. ``scale`` = implied decimals."""

    start: int | None = None
    width: int | None = None
    field: int | None = None
    column: str | None = None
    scale: int = 0
    overpunch: bool = False


@dataclass(frozen=True)
class Condition:
    """Records whose value at ``at`` is one of ``values`` (e.g. the debit transaction codes)."""

    at: Span
    values: tuple[str, ...]


@dataclass(frozen=True)
class Figure:
    """One control figure: declared in the control record at ``at``, recomputed from the scope's records.

    ``kind`` is ``count`` (records of types ``of``; all when empty), ``sum`` (exact total of ``value``),
    ``hash`` (the sum of ``value`` keeping the low ``digits`` digits, as NACHA's entry hash) or ``blocks``
    (physical records of the file divided by ``per``, rounded up).
    """

    name: str
    at: Span
    kind: str
    of: tuple[str, ...] = ()
    value: Span | None = None
    when: Condition | None = None
    negate_when: Condition | None = None
    digits: int | None = None
    per: int | None = None


@dataclass(frozen=True)
class ControlRecord:
    """A control (trailer) record of type ``record`` closing a scope: the whole file, or each batch
    opened by a record of type ``opens``. ``level`` names the scope in messages (file, batch, group…)."""

    level: str
    record: str
    opens: str | None
    figures: tuple[Figure, ...]


def parse_controls(raw: Any, records: tuple[tuple[str, str], ...]) -> tuple[ControlRecord, ...]:
    """The ``controls`` list of a source; ``records`` = (code, role) pairs declared, () when not typed."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise LayoutError(("controls",), "controls is a list of {level, record, figures}")
    return tuple(_control(c, ("controls", i), records) for i, c in enumerate(raw))


def span(raw: Any, where: tuple[str | int, ...]) -> Span:
    """``{start, width}`` or ``{start, end}`` (1-based, inclusive) or ``{field}``, with optional ``scale``."""
    if not isinstance(raw, dict):
        raise LayoutError(
            where, "a position is {start, width} (or {start, end}, or {field} in delimited files)"
        )
    scale = raw.get("scale", 0)
    if not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= 18:
        raise LayoutError((*where, "scale"), f"scale {scale!r} is not 0..18 implied decimals")
    overpunch = raw.get("signed") == "overpunch"
    if "column" in raw:
        return Span(column=str(raw["column"]), scale=scale, overpunch=overpunch)
    if "field" in raw:
        return Span(
            field=whole_number(raw, "field", None, minimum=0, where=where), scale=scale, overpunch=overpunch
        )
    start = whole_number(raw, "start", None, minimum=1, where=where)
    if start is None:
        raise LayoutError(where, "a position needs start (1-based) and width or end")
    width = raw.get("width")
    if width is None and raw.get("end") is not None:
        end = whole_number(raw, "end", None, minimum=start, where=where)
        assert end is not None
        width = end - start + 1
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise LayoutError(where, f"width {width!r} is not a positive whole number (or give end)")
    return Span(start=start, width=width, scale=scale, overpunch=overpunch)


def _control(raw: Any, where: tuple[str | int, ...], records: tuple[tuple[str, str], ...]) -> ControlRecord:
    if not isinstance(raw, dict) or "record" not in raw:
        raise LayoutError(where, "a control is {level, record, figures: [...]}")
    roles = dict(records)
    level = str(raw.get("level", "file"))
    record = str(raw["record"])
    opens = raw.get("opens")
    if opens is None and level != "file":
        found = [c for c, r in records if r == "batch_header"]
        if not found:
            raise LayoutError(
                (*where, "opens"), f"{level} controls need opens: the record type starting a {level}"
            )
        opens = found[0]
    for key, code in (("record", record), ("opens", opens)):
        if code is not None and roles and str(code) not in roles:
            raise LayoutError((*where, key), f"record type {code!r} is not declared under records")
    figures = [
        _figure(f, (*where, "figures", i), roles) for i, f in enumerate(as_list(raw, "figures", where))
    ]
    if not figures:
        raise LayoutError((*where, "figures"), "a control record declares at least one figure")
    if level != "file" and any(f.kind == "blocks" for f in figures):
        raise LayoutError((*where, "figures"), "a block count is a file-level figure")
    return ControlRecord(level, record, None if opens is None else str(opens), tuple(figures))


def _figure(raw: Any, where: tuple[str | int, ...], roles: dict[str, str]) -> Figure:
    if not isinstance(raw, dict) or "name" not in raw:
        raise LayoutError(where, "a figure is {name, start, width, count|sum|hash|blocks: ...}")
    kinds = [k for k in ("count", "sum", "hash", "blocks") if k in raw]
    if len(kinds) != 1:
        raise LayoutError(where, f"figure {raw['name']!r}: give exactly one of count, sum, hash, blocks")
    kind = kinds[0]
    at = span(
        {k: v for k, v in raw.items() if k in ("start", "width", "end", "field", "scale", "signed")}, where
    )
    spec = raw[kind]
    name = str(raw["name"])
    if kind == "blocks":
        if not isinstance(spec, int) or isinstance(spec, bool) or spec < 1:
            raise LayoutError((*where, kind), f"figure {name!r}: blocks is the records per block, e.g. 10")
        return Figure(name, at, kind, per=spec)
    if kind == "count":
        of = _codes(spec, (*where, kind), roles)
        return Figure(name, at, kind, of=of)
    if not isinstance(spec, dict):
        raise LayoutError((*where, kind), f"figure {name!r}: {kind} is {{of, start, width | column, ...}}")
    of = _codes(spec.get("of", []), (*where, kind, "of"), roles)
    locator = {
        k: v for k, v in spec.items() if k in ("start", "width", "end", "field", "column", "scale", "signed")
    }
    if "scale" not in locator and "column" not in locator:
        locator["scale"] = at.scale
    digits = spec.get("digits")
    if kind == "hash" and (not isinstance(digits, int) or isinstance(digits, bool) or digits < 1):
        raise LayoutError(
            (*where, kind, "digits"), f"figure {name!r}: hash needs digits (e.g. 10: the low ten)"
        )
    return Figure(
        name,
        at,
        kind,
        of=of,
        value=span(locator, (*where, kind)),
        when=_condition(spec.get("when"), (*where, kind, "when")),
        negate_when=_condition(spec.get("negateWhen"), (*where, kind, "negateWhen")),
        digits=digits if kind == "hash" else None,
    )


def _condition(raw: Any, where: tuple[str | int, ...]) -> Condition | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("in"), list):
        raise LayoutError(where, "a condition is {start, width, in: [values]}")
    return Condition(span(raw, where), tuple(str(v) for v in raw["in"]))


def _codes(raw: Any, where: tuple[str | int, ...], roles: dict[str, str]) -> tuple[str, ...]:
    if raw in ("all", "*"):
        return ()
    codes = [raw] if isinstance(raw, str | int) else raw
    if not isinstance(codes, list):
        raise LayoutError(where, f"{raw!r} is not a record type or a list of them (or 'all')")
    unknown = [str(c) for c in codes if roles and str(c) not in roles]
    if unknown:
        raise LayoutError(where, f"record type(s) {unknown} are not declared under records")
    return tuple(str(c) for c in codes)


def whole_number(
    raw: dict[str, Any], key: str, default: int | None, *, minimum: int, where: tuple = ()
) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise LayoutError((*where, key), f"{key} {value!r} is not a whole number >= {minimum}")
    return value


def as_list(raw: dict[str, Any], key: str, where: tuple = ()) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise LayoutError((*where, key), f"{key} is a list")
    return value
