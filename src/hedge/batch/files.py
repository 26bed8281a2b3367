"""Uploaded files on disk, under ``state.dir/files``: written as they arrive, never whole in memory.

A file is written to a temporary name first and renamed once complete, so a file that is listed
is whole. Only the replica that received an upload holds its bytes; a batch copies the input
file's lines into the database when it is created, so any replica can run and answer it (several
replicas behind one address should share ``state.dir``, or create a batch where they uploaded).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

from hedge.errors import HedgeError


class FileDisk:
    def __init__(self, state_dir: str) -> None:
        self.root = Path(state_dir) / "files"

    def path(self, file_id: str) -> Path:
        if not file_id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"not a file id: {file_id!r}")
        return self.root / f"{file_id}.jsonl"

    def open(self, file_id: str) -> IO[bytes]:
        """A complete upload, for reading; a 404 when this replica does not hold its bytes."""
        try:
            return self.path(file_id).open("rb")
        except OSError:
            raise HedgeError(
                "This file's content is not on this gateway (it was uploaded to another replica).",
                status=404,
                type="invalid_request_error",
            ) from None

    def open_new(self, file_id: str) -> IO[bytes]:
        """A temporary file for an upload in progress; :meth:`keep` or :meth:`discard` it."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.path(file_id).with_suffix(".part").open("wb")

    def keep(self, file_id: str) -> None:
        part = self.path(file_id).with_suffix(".part")
        os.replace(part, self.path(file_id))

    def discard(self, file_id: str) -> None:
        with contextlib.suppress(OSError):
            self.path(file_id).with_suffix(".part").unlink()

    def remove(self, file_id: str) -> None:
        with contextlib.suppress(OSError):
            self.path(file_id).unlink()

    def exists(self, file_id: str) -> bool:
        return self.path(file_id).exists()
