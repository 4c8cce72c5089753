"""YAML loading that remembers where each value came from, so errors can name the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


class YamlSyntaxError(ValueError):
    """The file is not valid YAML; the message names file, line and column."""

    def __init__(self, message: str, line: int = 1, problem: str = "") -> None:
        super().__init__(message)
        self.line = line
        self.problem = problem


def load_with_lines(path: Path) -> tuple[Any, dict[PathKey, int]]:
    """Parse ``path`` and return its data with a map from each value's path to its 1-based line."""
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlSyntaxError(
            f"{where}: not valid YAML ({problem}). Fix the syntax at that position.",
            line=mark.line + 1 if mark else 1,
            problem=f"not valid YAML ({problem}) at column {mark.column + 1}"
            if mark
            else f"not valid YAML ({problem})",
        ) from exc
    lines: dict[PathKey, int] = {}
    if node is not None:
        _index(node, (), lines)
    return data, lines


def _index(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), lines)


def line_of(lines: dict[PathKey, int], path: PathKey) -> int:
    """The line of ``path``, or of its nearest ancestor that has one."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get((), 1)
