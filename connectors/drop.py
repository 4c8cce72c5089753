"""Drop folders: where deliveries arrive, on a local disk or any ``pyarrow.fs`` filesystem.

A contract's source ``path`` is a local folder (absolute, or relative to ``ASSAY_HOME``) or a URI that
``pyarrow.fs.FileSystem.from_uri`` understands (``s3://bucket/erp/drop``, ``gs://…``, ``hdfs://…``,
``file:///…``). Files are listed, checked for completeness and copied into landing through the same
interface, streamed in blocks, so a delivery never has to fit in memory.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from connectors.errors import SourceError

BLOCK = 1 << 20


@dataclass(frozen=True)
class Delivery:
    """A file in a drop folder, as last listed."""

    name: str
    path: str  # within the folder's filesystem
    size: int
    mtime_ns: int


class DropFolder:
    """One contract's drop folder."""

    def __init__(self, location: str, home: Path, filesystem: pafs.FileSystem | None = None) -> None:
        self.location = location
        if filesystem is not None:
            self.fs, self.base = filesystem, location
        elif "://" in location:
            try:
                self.fs, self.base = pafs.FileSystem.from_uri(location)
            except (OSError, ValueError, TypeError) as exc:
                raise SourceError(
                    f"drop folder {location!r} cannot be opened ({type(exc).__name__}). Fix: check "
                    "the URI in the contract's source path and the filesystem's credentials."
                ) from exc
        else:
            path = Path(location)
            self.fs, self.base = pafs.LocalFileSystem(), str(path if path.is_absolute() else home / path)

    def list(self, pattern: str) -> list[Delivery]:
        """Files matching ``pattern`` directly in the folder, by name; none if the folder does not exist."""
        info = self.fs.get_file_info(self.base)
        if info.type != pafs.FileType.Directory:
            return []
        found = self.fs.get_file_info(pafs.FileSelector(self.base, recursive=False))
        return sorted(
            (
                Delivery(i.base_name, i.path, int(i.size or 0), int(i.mtime_ns or 0))
                for i in found
                if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.base_name, pattern)
            ),
            key=lambda d: d.name,
        )

    def get(self, name: str) -> Delivery | None:
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            return None  # a delivery name is a plain file name, never a path
        path = f"{self.base.rstrip('/')}/{name}"
        info = self.fs.get_file_info(path)
        if info.type != pafs.FileType.File:
            return None
        return Delivery(name, path, int(info.size or 0), int(info.mtime_ns or 0))

    def checksum(self, delivery: Delivery) -> str:
        digest = hashlib.sha256()
        with self.fs.open_input_stream(delivery.path) as stream:
            while block := stream.read(BLOCK):
                digest.update(block)
        return digest.hexdigest()

    def copy_to(self, delivery: Delivery, target: Path) -> str:
        """Stream ``delivery`` into the local file ``target``; return the SHA-256 of what was copied."""
        digest = hashlib.sha256()
        with self.fs.open_input_stream(delivery.path) as stream, target.open("wb") as out:
            while block := stream.read(BLOCK):
                digest.update(block)
                out.write(block)
        return digest.hexdigest()
