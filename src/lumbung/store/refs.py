"""Model references: where a model comes from, parsed and written back in one canonical form.

    hf:ORG/REPO[@REVISION][:FILE_OR_QUANT]     Hugging Face (also hf.co/ORG/REPO[:QUANT], Ollama's form)
    ms:ORG/REPO[@REVISION][:FILE_OR_QUANT]     ModelScope (also modelscope.cn/ORG/REPO[:QUANT])
    file:/path/model.gguf                      a local file, copied into the store
    NAME[:TAG]                                 a short name from the built-in catalogue (catalog.py)

A selector that ends in a file suffix (``.gguf``, ``.safetensors``, ``.bin``...) or holds a ``/`` names a file;
anything else picks a quantisation (``q4_k_m``, ``Q8_0``, ``ud-q4_k_xl``) from the repo's files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lumbung.errors import BadReference, UnsafeFile
from lumbung.store.formats import PICKLE_SUFFIXES

Hub = Literal["hf", "ms"]
Kind = Literal["hf", "ms", "file", "embedded"]

DEFAULT_REVISION: dict[str, str] = {"hf": "main", "ms": "master"}
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_QUANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HOST_PREFIXES: dict[str, Hub] = {
    "hf.co/": "hf",
    "huggingface.co/": "hf",
    "modelscope.cn/": "ms",
    "www.modelscope.cn/": "ms",
}
WEIGHT_SUFFIXES = (".gguf", ".safetensors")
FILE_SUFFIXES = WEIGHT_SUFFIXES + PICKLE_SUFFIXES  # a selector with one of these names a file


@dataclass(frozen=True)
class Reference:
    kind: Kind
    repo: str | None = None
    revision: str | None = None
    selector: str | None = None
    path: Path | None = None
    catalog_name: str | None = None  # the short name it came from, if any

    @property
    def hub(self) -> Hub:
        assert self.kind in ("hf", "ms")
        return self.kind

    @property
    def selects_file(self) -> bool:
        return self.selector is not None and (
            self.selector.lower().endswith(FILE_SUFFIXES) or "/" in self.selector
        )

    def effective_revision(self) -> str:
        return self.revision or DEFAULT_REVISION[self.kind]

    def canonical(self) -> str:
        """The one spelling of this reference (quantisations lower-cased, defaults left out)."""
        if self.kind == "file":
            return f"file:{self.path}"
        if self.kind == "embedded":
            return f"embedded:{self.repo}"
        out = f"{self.kind}:{self.repo}"
        if self.revision:
            out += f"@{self.revision}"
        if self.selector:
            out += ":" + (self.selector if self.selects_file else self.selector.lower())
        return out

    def __str__(self) -> str:
        return self.canonical()


def check_relative_path(name: str, what: str = "file name") -> str:
    """A repo-relative path that cannot escape a directory: no absolute paths, no ``..``, no
    backslashes or control characters. Returns it unchanged, or raises ``UnsafeFile``."""
    problem = None
    if not name or len(name) > 1024:
        problem = "it is empty or too long"
    elif name.startswith("/") or "\\" in name or re.search(r"[\x00-\x1f\x7f]", name):
        problem = "it is absolute, or holds a backslash or control character"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        problem = "it would leave its directory (an empty, '.' or '..' component)"
    elif any(len(part.encode()) > 255 for part in name.split("/")):
        problem = "a component is longer than 255 bytes"
    if problem:
        raise UnsafeFile(f"refusing {what} {name!r}: {problem}")
    return name


def _hub_reference(kind: Hub, body: str, raw: str) -> Reference:
    repo, rest = body, ""
    cut = min((i for i in (body.find("@"), body.find(":")) if i >= 0), default=-1)
    if cut >= 0:
        repo, rest = body[:cut], body[cut:]
    if not _REPO.match(repo) or ".." in repo:
        raise BadReference(f"{raw!r}: {repo!r} is not a repository id of the form ORG/REPO")
    revision = selector = None
    if rest.startswith("@"):
        revision, sep, selected = rest[1:].partition(":")
        selector = selected if sep else None
        if not _REVISION.match(revision) or ".." in revision:
            raise BadReference(f"{raw!r}: {revision!r} is not a valid revision")
    elif rest.startswith(":"):
        selector = rest[1:]
    if selector is not None:
        if selector == "":
            raise BadReference(f"{raw!r}: empty file or quantisation after ':'")
        is_file = selector.lower().endswith(FILE_SUFFIXES) or "/" in selector
        if is_file:
            check_relative_path(selector)
        elif not _QUANT.match(selector):
            raise BadReference(f"{raw!r}: {selector!r} is neither a file name nor a quantisation")
    return Reference(kind=kind, repo=repo, revision=revision, selector=selector)


def parse_reference(raw: str) -> Reference:
    """Parse a reference or catalogue short name (see the module docstring)."""
    text = raw.strip()
    if not text:
        raise BadReference("empty model reference")
    lowered = text.lower()
    if lowered.startswith(("hf:", "ms:")):
        return _hub_reference(lowered[:2], text[3:], raw)  # type: ignore[arg-type]
    for prefix, hub in _HOST_PREFIXES.items():
        if lowered.startswith(prefix):
            return _hub_reference(hub, text[len(prefix) :], raw)
    if lowered.startswith("file:"):
        path = Path(text[5:]).expanduser()
        if not text[5:]:
            raise BadReference(f"{raw!r}: file: needs a path")
        return Reference(kind="file", path=path.absolute())
    if lowered.startswith("embedded:"):
        return Reference(kind="embedded", repo=text[9:])
    from lumbung.store.catalog import lookup

    return lookup(text)
