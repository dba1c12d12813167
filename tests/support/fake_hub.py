"""A model hub on 127.0.0.1 speaking the Hugging Face Hub and ModelScope HTTP protocols.

It serves real files (the embedded GGUF, GGUFs built with ``gguf``) the way the real hubs do, as read
from ``huggingface_hub`` (hf_api.py ``model_info``, file_download.py ``hf_hub_url``/``http_get``,
utils/_http.py ``hf_raise_for_status``) and ``modelscope_hub`` (_legacy_api.py):

Hugging Face (``HF_ENDPOINT``)
    GET  /api/models/{repo}[/revision/{rev}]?blobs=true   model info: ``sha`` (the commit), siblings
                                                           with size, blobId, lfs {sha256,size}
    HEAD|GET /{repo}/resolve/{rev}/{path}                  LFS files: 302 to the CDN with X-Repo-Commit,
                                                           X-Linked-Etag, X-Linked-Size; others: 200
    GET  /fake-cdn/{sha256}                                the bytes, with Range (206)
    errors: 401 + X-Error-Code RepoNotFound, 404 + RevisionNotFound / EntryNotFound
ModelScope (``MODELSCOPE_ENDPOINT``)
    GET  /openapi/v1/models/{repo}                          {"success", "data": {... "license"}}
    GET  /api/v1/models/{repo}/repo/files?Revision=&Recursive=   {"Code", "Data": {"Files": [...]}}
    GET  /api/v1/models/{repo}/repo?Revision=&FilePath=     the bytes, with Range (206)

It misbehaves on command, as real networks do: ``cut`` closes the connection mid-body, ``corrupt``
flips a byte in transit, and every request is recorded (method, path, Range) for assertions.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CHUNK = 1 << 20


@dataclass
class FakeFile:
    path: str
    data: bytes | None = None
    source: Path | None = None  # a large file streamed from disk
    sha256: str | None = None  # computed unless given (saves hashing a known file again)
    lfs: bool | None = None  # default: weights go to LFS, small text files do not

    def __post_init__(self) -> None:
        if self.lfs is None:
            self.lfs = self.path.endswith((".gguf", ".safetensors", ".bin"))
        if self.sha256 is None:
            digest = hashlib.sha256()
            for block in self.blocks(0):
                digest.update(block)
            self.sha256 = digest.hexdigest()

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.source.stat().st_size  # type: ignore[union-attr]

    @property
    def git_oid(self) -> str:
        if self.data is None:  # only small files live in git proper
            return hashlib.sha1(self.path.encode()).hexdigest()
        return hashlib.sha1(f"blob {len(self.data)}\0".encode() + self.data).hexdigest()

    def blocks(self, start: int) -> Iterator[bytes]:
        if self.data is not None:
            for i in range(start, len(self.data), CHUNK):
                yield self.data[i : i + CHUNK]
            return
        assert self.source is not None
        with self.source.open("rb") as fh:
            fh.seek(start)
            while block := fh.read(CHUNK):
                yield block


@dataclass
class Commit:
    sha: str
    files: dict[str, FakeFile]
    date: int


@dataclass
class FakeRepo:
    repo_id: str
    license: str | None = "apache-2.0"
    history: list[Commit] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit sha

    def resolve(self, rev: str) -> Commit | None:
        sha = self.refs.get(rev, rev)
        return next((c for c in self.history if c.sha == sha), None)

    def last_change(self, commit: Commit, path: str) -> Commit:
        """The commit that last changed ``path`` up to ``commit`` (ModelScope lists it per file)."""
        last = commit
        previous: FakeFile | None = None
        for c in self.history[: self.history.index(commit) + 1]:
            f = c.files.get(path)
            if f is not None and (previous is None or f.sha256 != previous.sha256):
                last = c
            previous = f
        return last


@dataclass
class Faults:
    cut: dict[str, list[int]] = field(
        default_factory=dict
    )  # path -> byte counts to cut after, one per request
    corrupt: set[str] = field(default_factory=set)  # paths whose byte in the middle is flipped
    ignore_range: bool = False
    delay: float = 0.0  # seconds before each body block (a slow link)
    # path -> (bytes, action): run the action once, after that many bytes of the file went out
    after: dict[str, tuple[int, Callable[[], None]]] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    range: str | None


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.faults = Faults()
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._commits = 0

    # -- content -------------------------------------------------------------------------
    def commit(
        self,
        repo_id: str,
        files: list[FakeFile],
        *,
        branches: tuple[str, ...] = ("main", "master"),
        tags: tuple[str, ...] = (),
        license: str | None = "apache-2.0",
    ) -> str:
        """Add a commit holding exactly ``files`` on ``branches`` (HF's default branch is main,
        ModelScope's master); returns its sha."""
        repo = self.repos.setdefault(repo_id, FakeRepo(repo_id, license))
        self._commits += 1
        sha = hashlib.sha1(f"{repo_id}:{self._commits}".encode()).hexdigest()
        repo.history.append(Commit(sha, {f.path: f for f in files}, 1_700_000_000 + self._commits))
        for ref in (*branches, *tags):
            repo.refs[ref] = sha
        return sha

    def file_for(self, sha256: str) -> FakeFile | None:
        for repo in self.repos.values():
            for c in repo.history:
                for f in c.files.values():
                    if f.sha256 == sha256:
                        return f
        return None

    # -- server --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            owner = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def seen(self, method: str | None = None, contains: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.requests if (method is None or s.method == method) and contains in s.path]

    def take_cut(self, path: str) -> int | None:
        with self._lock:
            cuts = self.faults.cut.get(path)
            return cuts.pop(0) if cuts else None

    def take_after(self, path: str) -> tuple[int, Callable[[], None]] | None:
        with self._lock:
            return self.faults.after.pop(path, None)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ------------------------------------------------------------------------
    def _record(self) -> None:
        with self.owner._lock:
            self.owner.requests.append(Seen(self.command, self.path, self.headers.get("Range")))

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def _bytes(self, f: FakeFile, headers: dict[str, str]) -> None:
        """Serve a file's bytes with Range support and the configured faults."""
        start = 0
        requested = self.headers.get("Range")
        faults = self.owner.faults
        if requested and not faults.ignore_range and requested.startswith("bytes="):
            start = int(requested[6:].split("-")[0] or 0)
            if start >= f.size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{f.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{f.size - 1}/{f.size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(f.size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        cut = self.owner.take_cut(f.path)
        after = self.owner.take_after(f.path)
        flip = f.size // 2 if f.path in faults.corrupt else -1
        pos = start
        for block in f.blocks(start):
            if faults.delay:
                time.sleep(faults.delay)
            if after is not None and pos - start >= after[0]:
                after[1]()
                after = None
            if pos <= flip < pos + len(block):
                i = flip - pos
                block = block[:i] + bytes([block[i] ^ 0xFF]) + block[i + 1 :]
            if cut is not None and pos - start + len(block) > cut:
                self.wfile.write(block[: max(0, cut - (pos - start))])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # the link drops mid-body
                return
            self.wfile.write(block)
            pos += len(block)

    # -- routing -------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self._record()
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if path.startswith("/api/models/"):
            return self._hf_info(path[len("/api/models/") :])
        if path.startswith("/fake-cdn/"):
            f = self.owner.file_for(path[len("/fake-cdn/") :])
            return self._bytes(f, {}) if f else self._json(404, {"error": "no such object"})
        if "/resolve/" in url.path:
            return self._hf_resolve(url.path)
        if path.startswith("/openapi/v1/models/"):
            return self._ms_repo(path[len("/openapi/v1/models/") :])
        if path.startswith("/api/v1/models/"):
            return self._ms_api(path[len("/api/v1/models/") :], query)
        self._json(404, {"error": f"unknown path {path}"})

    # -- Hugging Face --------------------------------------------------------------------
    def _hf_repo(self, repo_id: str) -> FakeRepo | None:
        repo = self.owner.repos.get(repo_id)
        if repo is None:
            self._json(
                401,
                {"error": "Repository not found"},
                {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
            )
        return repo

    def _hf_info(self, rest: str) -> None:
        repo_id, _, rev = rest.partition("/revision/")
        repo = self._hf_repo(repo_id)
        if repo is None:
            return
        commit = repo.resolve(rev or "main")
        if commit is None:
            self._json(404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"})
            return
        siblings = []
        for f in commit.files.values():
            entry: dict[str, Any] = {"rfilename": f.path, "blobId": f.git_oid, "size": f.size}
            if f.lfs:
                entry["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": 134}
            siblings.append(entry)
        body = {
            "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit.sha,
            "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.date)),
            "createdAt": "2024-01-01T00:00:00.000Z",
            "private": False,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "library_name": "gguf",
            "tags": ["gguf", *([f"license:{repo.license}"] if repo.license else [])],
            "cardData": {"license": repo.license} if repo.license else {},
            "siblings": siblings,
            "usedStorage": sum(f.size for f in commit.files.values()),
        }
        self._json(200, body)

    def _hf_resolve(self, raw_path: str) -> None:
        repo_part, _, rest = raw_path.lstrip("/").partition("/resolve/")
        repo = self._hf_repo(unquote(repo_part))
        if repo is None:
            return
        rev, _, file_path = rest.partition("/")
        commit = repo.resolve(unquote(rev))
        if commit is None:
            self._json(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
            return
        f = commit.files.get(unquote(file_path))
        if f is None:
            self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            return
        if f.lfs:
            self.send_response(302)
            # The CDN is another host, as on the real Hub (HEAD requests must not follow it).
            self.send_header(
                "Location", f"{self.owner.url.replace('127.0.0.1', 'localhost')}/fake-cdn/{f.sha256}"
            )
            self.send_header("X-Repo-Commit", commit.sha)
            self.send_header("X-Linked-Etag", f'"{f.sha256}"')
            self.send_header("X-Linked-Size", str(f.size))
            self.send_header("ETag", f'"{f.git_oid}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._bytes(f, {"X-Repo-Commit": commit.sha, "ETag": f'"{f.git_oid}"'})

    # -- ModelScope ----------------------------------------------------------------------
    def _ms_repo(self, repo_id: str) -> None:
        repo = self.owner.repos.get(repo_id)
        if repo is None:
            self._json(404, {"success": False, "code": "NotFound", "message": f"model {repo_id} not found"})
            return
        owner, name = repo_id.split("/")
        self._json(
            200,
            {
                "success": True,
                "request_id": "fake",
                "data": {
                    "id": repo_id,
                    "owner": owner,
                    "name": name,
                    "license": repo.license,
                    "visibility": 5,
                    "downloads": 0,
                    "likes": 0,
                    "tags": [],
                },
            },
        )

    def _ms_api(self, rest: str, query: dict[str, str]) -> None:
        parts = rest.split("/")
        repo_id = "/".join(parts[:2])
        repo = self.owner.repos.get(repo_id)
        if repo is None:
            self._json(404, {"Code": 10010205001, "Message": f"model {repo_id} not found", "Success": False})
            return
        commit = repo.resolve(query.get("Revision", "master"))
        if commit is None:
            self._json(404, {"Code": 10010205001, "Message": "revision not found", "Success": False})
            return
        tail = "/".join(parts[2:])
        if tail == "repo/files":
            files = []
            for f in commit.files.values():
                changed = repo.last_change(commit, f.path)
                files.append(
                    {
                        "Name": f.path.rsplit("/", 1)[-1],
                        "Path": f.path,
                        "Size": f.size,
                        "Sha256": f.sha256,
                        "Type": "blob",
                        "Revision": changed.sha,
                        "CommittedDate": changed.date,
                        "IsLFS": bool(f.lfs),
                        "Mode": "33188",
                    }
                )
            self._json(200, {"Code": 200, "Data": {"Files": files}, "Message": "success", "Success": True})
        elif tail == "repo":
            f = commit.files.get(query.get("FilePath", ""))
            if f is None:
                self._json(404, {"Code": 10010205001, "Message": "file not found", "Success": False})
                return
            self._bytes(f, {})
        else:
            self._json(404, {"Code": 404, "Message": f"unknown path {tail}", "Success": False})
