"""Hugging Face Hub through ``huggingface_hub``: ``HfApi.model_info`` lists a revision (its commit,
files, LFS sha256s, licence), and ``file_download.http_get`` streams a file at that commit, with the
library's own retries, Range resumes and error mapping (gated, missing repo, missing revision)."""

from __future__ import annotations

import logging
from typing import Any

from lumbung.errors import HubError
from lumbung.store.download import PartFile
from lumbung.store.refs import Hub
from lumbung.store.remote import Listing, RemoteFile

DEFAULT_ENDPOINT = "https://huggingface.co"


class _Quiet:
    """A progress-bar class for ``http_get`` that shows nothing: lumbung reports progress itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: float = 1) -> None:
        pass


def _license(info: Any) -> str | None:
    card = getattr(info, "card_data", None)
    value = getattr(card, "license", None) if card is not None else None
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    if isinstance(value, str) and value:
        return value
    for tag in getattr(info, "tags", None) or []:
        if isinstance(tag, str) and tag.startswith("license:"):
            return tag.removeprefix("license:")
    return None


def _summary(exc: Exception) -> str:
    """The library's message in one line (its first line alone is often just "401 Client Error.")."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return (text[:300] + "...") if len(text) > 300 else text or type(exc).__name__


def _hub_error(exc: Exception, what: str) -> HubError:
    from huggingface_hub import errors

    first = _summary(exc)
    if isinstance(exc, errors.GatedRepoError):
        return HubError(
            f"{what}: the repository is gated; accept its terms on the Hub and set HF_TOKEN ({first})"
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return HubError(f"{what}: repository not found (or private without a token): {first}")
    if isinstance(exc, errors.RevisionNotFoundError):
        return HubError(f"{what}: revision not found: {first}")
    if isinstance(exc, errors.EntryNotFoundError):
        return HubError(f"{what}: file not found: {first}")
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return HubError(f"{what}: offline mode is on (HF_HUB_OFFLINE)")
    return HubError(f"{what}: {type(exc).__name__}: {first}")


class HfHub:
    kind: Hub = "hf"

    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        from huggingface_hub import constants

        self.endpoint = (endpoint or constants.ENDPOINT or DEFAULT_ENDPOINT).rstrip("/")
        self.token = token
        # huggingface_hub's HTTP client logs every request at INFO; lumbung logs the pull itself.
        logging.getLogger("httpx2").setLevel(logging.WARNING)

    def listing(self, repo: str, revision: str) -> Listing:
        from huggingface_hub import HfApi

        try:
            info = HfApi(endpoint=self.endpoint, token=self.token).model_info(
                repo, revision=revision, files_metadata=True
            )
        except Exception as exc:  # every library and transport error becomes one HubError
            raise _hub_error(exc, f"hf:{repo}@{revision}") from exc
        files = [
            RemoteFile(
                path=s.rfilename,
                size=s.lfs.size if s.lfs else s.size,
                sha256=s.lfs.sha256 if s.lfs else None,
                git_oid=None if s.lfs else s.blob_id,
            )
            for s in info.siblings or []
        ]
        return Listing("hf", repo, revision, info.sha, files, _license(info), self.endpoint)

    def download(self, listing: Listing, file: RemoteFile, out: PartFile) -> None:
        from huggingface_hub import file_download
        from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]  # lazily exported

        url = file_download.hf_hub_url(
            listing.repo, file.path, revision=listing.commit or listing.revision, endpoint=self.endpoint
        )
        headers = build_hf_headers(token=self.token, library_name="lumbung")
        try:
            file_download.http_get(
                url,
                out,  # type: ignore[arg-type]  # file-like enough: write, seek, tell, truncate
                resume_size=out.size,
                headers=headers,
                expected_size=file.size,
                displayed_filename=file.path,
                tqdm_class=_Quiet,
            )
        except OSError as exc:
            if exc.errno is not None:
                raise  # a local write failed (a full disk): the caller keeps the part for resuming
            raise HubError(f"hf:{listing.repo}: {file.path}: {exc}") from exc
        except Exception as exc:
            raise _hub_error(exc, f"hf:{listing.repo}: {file.path}") from exc
