"""Choosing a model's files from a repository listing.

``:FILE`` takes that file (and the other parts, when it is one part of a split GGUF). ``:QUANT``
takes the GGUF whose name carries that quantisation. No selector: the repo's only GGUF, else its
Q4_K_M, else its safetensors weights with their config and tokenizer files. Pickle weights are
never chosen; every chosen name must stay inside the model's directory.
"""

from __future__ import annotations

import re
from collections import defaultdict

from lumbung.errors import BadReference, UnsafeFile
from lumbung.store.formats import is_pickle, kind_of, require_accepted
from lumbung.store.refs import Reference, check_relative_path
from lumbung.store.remote import RemoteFile

DEFAULT_QUANT = "q4_k_m"
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_QUANT_IN_NAME = re.compile(r"(?:^|[-._])((?:ud-)?(?:i?q\d[a-z0-9_]*|f16|bf16|f32))(?=[-.]|$)", re.IGNORECASE)


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def split_group(path: str) -> tuple[str, int, int] | None:
    """For ``x-00002-of-00003.gguf``: (``x``, 2, 3); None for a single-file GGUF."""
    m = _SPLIT.search(path)
    return (path[: m.start()], int(m.group(1)), int(m.group(2))) if m else None


def _model_key(path: str) -> str:
    group = split_group(path)
    return group[0] if group else path


def _gguf_models(files: list[RemoteFile]) -> dict[str, list[RemoteFile]]:
    """GGUF files grouped into models (a split model's parts together); projectors left out."""
    models: dict[str, list[RemoteFile]] = defaultdict(list)
    for f in files:
        if kind_of(f.path) == "gguf" and "mmproj" not in _base(f.path).lower():
            models[_model_key(f.path)].append(f)
    return {k: sorted(v, key=lambda f: f.path) for k, v in models.items()}


def _complete(key: str, parts: list[RemoteFile]) -> list[RemoteFile]:
    group = split_group(parts[0].path)
    if group is None:
        return parts
    total = group[2]
    numbers = sorted(g[1] for p in parts if (g := split_group(p.path)))
    if numbers != list(range(1, total + 1)):
        raise BadReference(f"split GGUF {key!r} is incomplete in the repository: parts {numbers} of {total}")
    return parts


def quant_of(path: str) -> str | None:
    stem = _SPLIT.sub(".gguf", _base(path))
    stem = stem[: -len(".gguf")] if stem.lower().endswith(".gguf") else stem
    found = _QUANT_IN_NAME.findall(stem)
    return found[-1].upper() if found else None


def _matches_quant(path: str, quant: str) -> bool:
    stem = _SPLIT.sub(".gguf", _base(path)).lower()
    return re.search(r"(?:^|[-._])" + re.escape(quant.lower()) + r"(?=[-.])", stem) is not None


def _describe(models: dict[str, list[RemoteFile]]) -> str:
    quants = sorted({q for parts in models.values() if (q := quant_of(parts[0].path))})
    return ", ".join(q.lower() for q in quants) or ", ".join(sorted(models))


def select_files(files: list[RemoteFile], ref: Reference) -> list[RemoteFile]:
    """The files to store for ``ref``; every name checked before anything is downloaded."""
    chosen = _choose(files, ref)
    for f in chosen:
        check_relative_path(f.path, "hub file name")
        require_accepted(f.path)
    return chosen


def _choose(files: list[RemoteFile], ref: Reference) -> list[RemoteFile]:
    what = ref.canonical()
    by_path = {f.path: f for f in files}
    if ref.selector is not None and ref.selects_file:
        require_accepted(ref.selector)
        if ref.selector not in by_path:
            raise BadReference(f"{what}: the repository has no file {ref.selector!r}")
        if kind_of(ref.selector) == "gguf":
            key = _model_key(ref.selector)
            return _complete(key, _gguf_models(files)[key])
        return [by_path[ref.selector]]
    models = _gguf_models(files)
    if ref.selector is not None:
        hits = {k: v for k, v in models.items() if _matches_quant(v[0].path, ref.selector)}
        if not hits:
            available = _describe(models) if models else "none (no GGUF files)"
            raise BadReference(f"{what}: no GGUF with quantisation {ref.selector!r}; available: {available}")
        if len(hits) > 1:
            raise BadReference(
                f"{what}: quantisation {ref.selector!r} matches several models ({', '.join(sorted(hits))}); "
                "name the file instead"
            )
        key, parts = next(iter(hits.items()))
        return _complete(key, parts)
    if len(models) == 1:
        key, parts = next(iter(models.items()))
        return _complete(key, parts)
    if models:
        hits = {k: v for k, v in models.items() if _matches_quant(v[0].path, DEFAULT_QUANT)}
        if len(hits) == 1:
            key, parts = next(iter(hits.items()))
            return _complete(key, parts)
        raise BadReference(
            f"{what}: the repository has several GGUF models; pick one with :QUANT ({_describe(models)})"
        )
    weights = [f for f in files if kind_of(f.path) == "safetensors"]
    if weights:
        return sorted(weights + [f for f in files if kind_of(f.path) == "metadata"], key=lambda f: f.path)
    if any(is_pickle(f.path) for f in files):
        raise UnsafeFile(
            f"{what}: the repository has only pickle-based weights (.bin/.pt); lumbung accepts GGUF and "
            "safetensors only, because pickle can run code when loaded"
        )
    raise BadReference(f"{what}: the repository has no GGUF or safetensors files")
