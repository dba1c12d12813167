"""What the store needs from a model hub, whichever hub it is: a listing of a repository at a
revision (files, sizes, published hashes, the commit, the licence) and the bytes of one file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lumbung.store.download import PartFile
from lumbung.store.refs import Hub


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int | None
    sha256: str | None  # the content sha256 the hub publishes (HF: LFS oid; ModelScope: Sha256)
    git_oid: str | None = None  # HF: the git blob sha1 of files not stored in LFS


@dataclass
class Listing:
    hub: Hub
    repo: str
    revision: str  # as asked for
    commit: str | None  # what it resolved to
    files: list[RemoteFile]
    license: str | None
    endpoint: str


class HubClient(Protocol):
    kind: Hub
    endpoint: str

    def listing(self, repo: str, revision: str) -> Listing:
        """The repository's files at ``revision``; raises ``HubError``."""
        ...

    def download(self, listing: Listing, file: RemoteFile, out: PartFile) -> None:
        """Append the rest of ``file`` to ``out`` (which already holds ``out.size`` bytes of it).
        Network failures raise ``HubError``; write failures (a full disk) raise ``OSError``."""
        ...
