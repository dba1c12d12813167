"""ModelScope through ``modelscope_hub`` (the client the ``modelscope`` package delegates to).

The listing comes from ``/api/v1/models/{repo}/repo/files`` (paths, sizes, Sha256, and each file's
last commit), the licence from the repository's metadata, and the bytes from the client's
``download_stream`` with a ``Range`` header when resuming. ModelScope has no "resolve this branch"
call, so the commit recorded is the newest commit among the files' own: the last commit that
changed the repository's tree.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from lumbung.errors import HubError
from lumbung.store.download import PartFile
from lumbung.store.refs import Hub
from lumbung.store.remote import Listing, RemoteFile

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://modelscope.cn"
ATTEMPTS = 5
CHUNK = 1 << 20


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _commit(entries: list[dict[str, Any]]) -> str | None:
    dated = [
        (int(e.get("CommittedDate") or 0), str(e["Revision"]))
        for e in entries
        if isinstance(e.get("Revision"), str) and e["Revision"]
    ]
    return max(dated)[1] if dated else None


class MsHub:
    kind: Hub = "ms"

    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        from modelscope_hub import HubApi

        self.api = HubApi(endpoint=endpoint, token=token)
        self.endpoint = (self.api.legacy.endpoint or DEFAULT_ENDPOINT).rstrip("/")

    def listing(self, repo: str, revision: str) -> Listing:
        what = f"ms:{repo}@{revision}"
        try:
            entries = self.api.legacy.list_repo_files(repo, "model", revision=revision, recursive=True)
        except Exception as exc:  # every library and transport error becomes one HubError
            raise HubError(f"{what}: {type(exc).__name__}: {_first_line(exc)}") from exc
        blobs = [e for e in entries if (e.get("Type") or "blob") == "blob"]
        files = [
            RemoteFile(
                path=str(e.get("Path") or e.get("Name") or ""),
                size=int(e["Size"]) if e.get("Size") is not None else None,
                sha256=(str(e["Sha256"]).lower() or None) if e.get("Sha256") else None,
            )
            for e in blobs
        ]
        try:
            license_name = self.api.get_repo(repo, "model").license
        except Exception as exc:  # the licence is worth recording, not worth failing a pull over
            log.warning("%s: could not read the licence: %s", what, _first_line(exc))
            license_name = None
        return Listing("ms", repo, revision, _commit(blobs), files, license_name or None, self.endpoint)

    def download(self, listing: Listing, file: RemoteFile, out: PartFile) -> None:
        import requests

        for attempt in range(1, ATTEMPTS + 1):
            start = out.size
            headers = {"Range": f"bytes={start}-"} if start else None
            try:
                resp = self.api.legacy.download_stream(
                    listing.repo, "model", file.path, listing.revision, headers=headers
                )
                with resp:
                    if start and resp.status_code != 206:
                        out.restart()  # the server ignored the Range header: the whole file follows
                    for chunk in resp.iter_content(CHUNK):
                        out.write(chunk)
                if file.size is None or out.size >= file.size:
                    return
                raise requests.ConnectionError(f"connection closed after {out.size} of {file.size} bytes")
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                if attempt == ATTEMPTS:
                    raise HubError(f"ms:{listing.repo}: {file.path}: {_first_line(exc)}") from exc
                log.warning(
                    "ms:%s: %s: %s; resuming from byte %d",
                    listing.repo,
                    file.path,
                    _first_line(exc),
                    out.size,
                )
                time.sleep(min(2 ** (attempt - 1), 8) * 0.5)
            except OSError as exc:
                if exc.errno is not None:
                    raise  # a local write failed (a full disk): the caller keeps the part for resuming
                raise HubError(
                    f"ms:{listing.repo}: {file.path}: {type(exc).__name__}: {_first_line(exc)}"
                ) from exc
            except Exception as exc:
                raise HubError(
                    f"ms:{listing.repo}: {file.path}: {type(exc).__name__}: {_first_line(exc)}"
                ) from exc
