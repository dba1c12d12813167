"""The dashboard's scripts and styles, read from the package (``lumbung/ui/assets``) on first use and
served with a content hash in their URL, so a browser fetches each once per release and a slow link
pays for it once; gzip-compressed copies are made once, for clients that accept them."""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    gzipped: bytes
    media_type: str

    @property
    def version(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:12]

    @property
    def url(self) -> str:
        return f"/ui/assets/{self.name}?v={self.version}"


def _read(name: str) -> bytes:
    return (resources.files("lumbung.ui") / "assets" / name).read_bytes()


@functools.cache
def assets() -> dict[str, Asset]:
    out = {}
    for entry in (resources.files("lumbung.ui") / "assets").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if suffix in TYPES:
            body = entry.read_bytes()
            out[entry.name] = Asset(entry.name, body, gzip.compress(body, 9, mtime=0), TYPES[suffix])
    return out


@functools.cache
def fragment(name: str) -> str:
    """A page's body (``assets/NAME.html``), wrapped by pages.py."""
    return _read(f"{name}.html").decode("utf-8")
