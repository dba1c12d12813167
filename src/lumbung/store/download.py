"""A download in progress: a ``.part`` file hashed as it is written, kept across runs for resuming.

The hub clients write into a ``PartFile`` as if it were a plain file. It hashes every byte on the
way to disk (sha256, plus git's blob sha1 where the hub publishes only that), so checking a finished
download costs no second read. On resume, the bytes already on disk are hashed first; the file's
length is the resume point, because a failed write (a full disk) leaves a prefix of the stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from lumbung.errors import IntegrityError

BLOCK = 1 << 20


class PartFile:
    def __init__(
        self, path: Path, *, git_size: int | None = None, on_size: Callable[[int], None] | None = None
    ):
        """``git_size``: also compute git's blob sha1 (which needs the size up front). ``on_size`` hears
        the number of bytes held after every write (progress)."""
        self.path = path
        self.git_size = git_size
        self.on_size = on_size or (lambda n: None)
        self.size = 0
        self._fh: BinaryIO | None = None
        self._reset_hashes()

    def _reset_hashes(self) -> None:
        self.sha256 = hashlib.sha256()
        self.sha1 = hashlib.sha1(f"blob {self.git_size}\0".encode()) if self.git_size is not None else None

    def _update(self, data: bytes) -> None:
        self.sha256.update(data)
        if self.sha1 is not None:
            self.sha1.update(data)

    def __enter__(self) -> PartFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        self._rehash(self.path.stat().st_size)
        fh = self._fh = self.path.open("r+b")
        fh.seek(self.size)
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            # On a full disk the final flush fails again; the caller is already handling the first
            # error, and the bytes on disk are still a valid prefix to resume from.
            with contextlib.suppress(OSError):
                fh.close()

    def _rehash(self, upto: int) -> None:
        """Hash the first ``upto`` bytes already on disk (a resumed or rewound download)."""
        self._reset_hashes()
        self.size = 0
        with self.path.open("rb") as fh:
            while self.size < upto and (block := fh.read(min(BLOCK, upto - self.size))):
                self._update(block)
                self.size += len(block)
        self.on_size(self.size)

    # -- the file-like surface the hub clients use ---------------------------------------
    def write(self, data: bytes) -> int:
        assert self._fh is not None
        self._fh.write(data)
        self._update(data)
        self.size += len(data)
        self.on_size(self.size)
        return len(data)

    def tell(self) -> int:
        return self.size

    def seek(self, pos: int, whence: int = 0) -> int:
        """Only rewinds (a server that ignored our Range header sends the whole file again)."""
        assert self._fh is not None and whence == 0 and pos <= self.size
        if pos != self.size:
            self._fh.flush()
            self._rehash(pos)
            self._fh.seek(pos)
        return pos

    def truncate(self, size: int | None = None) -> int:
        assert self._fh is not None
        size = self.size if size is None else size
        self.seek(size)
        self._fh.truncate(size)
        return size

    def restart(self) -> None:
        self.truncate(0)

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    # -- finishing -------------------------------------------------------------------------
    def finish(self, *, size: int | None, sha256: str | None, git_oid: str | None, display: str) -> str:
        """Flush to disk and check the size and hash the hub published; returns the sha256."""
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.close()
        if size is not None and self.size != size:
            raise IntegrityError(f"{display}: received {self.size} bytes, the hub lists {size}")
        actual = self.sha256.hexdigest()
        if sha256 is not None and actual != sha256.lower():
            self.path.unlink(missing_ok=True)  # wrong bytes are not worth resuming from
            raise IntegrityError(
                f"{display}: sha256 mismatch: the hub publishes {sha256.lower()}, the downloaded bytes hash "
                f"to {actual}. The file was corrupted in transit or on the server; nothing was stored."
            )
        if git_oid is not None and self.sha1 is not None and self.sha1.hexdigest() != git_oid.lower():
            self.path.unlink(missing_ok=True)
            raise IntegrityError(
                f"{display}: git blob id mismatch: the hub publishes {git_oid.lower()}, the downloaded bytes "
                f"give {self.sha1.hexdigest()}; nothing was stored."
            )
        return actual
