"""Drop folders on any pyarrow filesystem: listing, completeness facts, streamed copies with checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from connectors.drop import DropFolder


@pytest.fixture
def mock_fs() -> pafs.FileSystem:
    fs = pafs._MockFileSystem()
    fs.create_dir("bucket/drop")
    for name, body in (("orders_1.csv", b"H;1\n" * 1000), ("orders_2.csv", b"x"), ("notes.txt", b"n")):
        with fs.open_output_stream(f"bucket/drop/{name}") as out:
            out.write(body)
    return fs


def test_lists_matching_files_by_name_on_a_non_local_filesystem(
    mock_fs: pafs.FileSystem, tmp_path: Path
) -> None:
    folder = DropFolder("bucket/drop", tmp_path, filesystem=mock_fs)
    found = folder.list("orders_*.csv")
    assert [d.name for d in found] == ["orders_1.csv", "orders_2.csv"]
    assert found[0].size == 4000
    assert DropFolder("bucket/missing", tmp_path, filesystem=mock_fs).list("*") == []


def test_copy_streams_and_returns_the_checksum_of_what_was_copied(
    mock_fs: pafs.FileSystem, tmp_path: Path
) -> None:
    folder = DropFolder("bucket/drop", tmp_path, filesystem=mock_fs)
    delivery = folder.get("orders_1.csv")
    assert delivery is not None
    target = tmp_path / "copy"
    digest = folder.copy_to(delivery, target)
    assert target.read_bytes() == b"H;1\n" * 1000
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest() == folder.checksum(delivery)


def test_names_are_plain_file_names_never_paths(mock_fs: pafs.FileSystem, tmp_path: Path) -> None:
    folder = DropFolder("bucket/drop", tmp_path, filesystem=mock_fs)
    for bad in ("../drop/orders_1.csv", "sub/orders_1.csv", "..", ""):
        assert folder.get(bad) is None


def test_local_paths_and_file_uris_resolve_alike(tmp_path: Path) -> None:
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "a.csv").write_text("x")
    relative = DropFolder("drop", tmp_path)  # relative to ASSAY_HOME
    uri = DropFolder((tmp_path / "drop").as_uri(), tmp_path)
    assert [d.name for d in relative.list("*.csv")] == [d.name for d in uri.list("*.csv")] == ["a.csv"]
