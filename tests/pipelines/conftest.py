"""One run of the whole demo per test session, shared by the end-to-end and the canary tests.

The demo (seed, ``assay run`` through the real Dagster instance, verify, a rerun) takes about a minute;
the end-to-end checks and the canary search both read what it left behind, so it runs once.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


def end_to_end_module() -> ModuleType:
    """The end-to-end test module, for its helpers (run_demo, environment, assay): one way to run the demo."""
    name = "demo_end_to_end_helpers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "test_demo_end_to_end.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it is being executed
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """``(root, DemoRun)``: the demo run once on SQLite under ``root`` (``root/assay``, ``root/dagster``)."""
    root = tmp_path_factory.mktemp("demo")
    return root, end_to_end_module().run_demo(root)
