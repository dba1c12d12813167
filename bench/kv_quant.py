"""What a quantized KV cache costs in quality and saves in memory, on a fixed text.

The embedded model reads the same text (teacher-forced: every position sees the true tokens before
it) with its KV cache in f16, q8_0 and q4_0 (flash attention on for all three, as lumbung runs
quantized caches; f16 without flash attention is shown as the noise floor of a kernel change), and
compares each position's next-token distribution with f16's: mean KL divergence, mean absolute
difference of the true token's log-probability, and how often the most likely token is the same.
Then the memory side: how many concurrent 4k-token sequences fit in a fixed budget with each type,
as the engine sizes its context.

    python bench/kv_quant.py [--model PATH] [--threads 2] [--budget-mb 600]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import tempfile

import llama_cpp

from lumbung.engines.llamacpp.context import plan_context
from lumbung.engines.llamacpp.kv_types import cell_bytes, ggml_type
from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.store.embedded import SMOLLM2, embedded_model_path

ROOT = Path(__file__).resolve().parents[1]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def read(path: str, tokens: list[int], kv: str, flash: bool, threads: int) -> np.ndarray:
    """Log-probabilities at every position of ``tokens`` (teacher-forced), with the given KV type."""
    llm = llama_cpp.Llama(
        model_path=path,
        n_ctx=len(tokens) + 16,
        n_batch=len(tokens),
        n_ubatch=len(tokens),
        n_threads=threads,
        logits_all=True,
        type_k=ggml_type(kv),  # type: ignore[arg-type]
        type_v=ggml_type(kv),  # type: ignore[arg-type]
        flash_attn=flash,
        verbose=False,
    )
    llm.eval(tokens)
    scores = np.array(llm.scores[: len(tokens)], dtype=np.float64)
    llm.close()
    return log_softmax(scores)


def compare(reference: np.ndarray, other: np.ndarray, tokens: list[int]) -> dict[str, float]:
    p = np.exp(reference[:-1])
    kl = float(np.mean(np.sum(p * (reference[:-1] - other[:-1]), axis=-1)))
    nxt = np.array(tokens[1:])
    rows = np.arange(len(nxt))
    true_diff = float(np.mean(np.abs(reference[:-1][rows, nxt] - other[:-1][rows, nxt])))
    top1 = float(np.mean(reference[:-1].argmax(-1) == other[:-1].argmax(-1)))
    return {"kl": kl, "true_token_logprob_diff": true_diff, "top1_agreement": top1}


def sequences_that_fit(f16_cell: int, kind: str, weights: int, budget: int, context: int = 4096) -> int:
    parallel = 0
    while True:
        try:
            plan = plan_context(
                name="m", trained=max(context, 8192), configured=context, rope_scaling=None,
                kv_bytes_per_token=cell_bytes(f16_cell, kind),  # type: ignore[arg-type]
                weights_bytes=weights, parallel=parallel + 1, cache_cells=0, budget_bytes=budget,
            )  # fmt: skip
        except Exception:
            return parallel
        if plan.size < context:
            return parallel
        parallel += 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="A GGUF (default: the embedded SmolLM2-135M-Instruct).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget-mb", type=int, default=600)
    parser.add_argument("--tokens", type=int, default=1024, help="Tokens of the fixed text read.")
    args = parser.parse_args()
    path = str(args.model or embedded_model_path(Path(tempfile.mkdtemp(prefix="kvq-")), SMOLLM2))
    model = LlamaModel(Path(path))
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    vocab_llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    tokens = vocab_llm.tokenize(text.encode("utf-8"))[: args.tokens]
    vocab_llm.close()
    print(f"model {Path(path).name}, {len(tokens)} tokens of docs/architecture.md, teacher-forced\n")
    reference = read(path, tokens, "f16", True, args.threads)
    print(f"{'KV cache':<22} {'mean KL':>10} {'|d logprob|':>12} {'top-1 same':>11}")
    for label, kind, flash in (
        ("f16, no flash attn", "f16", False),
        ("q8_0", "q8_0", True),
        ("q4_0", "q4_0", True),
    ):
        got = compare(reference, read(path, tokens, kind, flash, args.threads), tokens)
        print(
            f"{label:<22} {got['kl']:>10.5f} {got['true_token_logprob_diff']:>12.4f} "
            f"{got['top1_agreement']:>10.1%}"
        )
    f16_cell, weights = model.kv_bytes_per_cell, model.size_bytes
    if f16_cell:
        budget = args.budget_mb * 2**20
        fits = {kind: sequences_that_fit(f16_cell, kind, weights, budget) for kind in ("f16", "q8_0", "q4_0")}
        print(f"\nconcurrent 4,096-token sequences in a {args.budget_mb} MiB budget (weights included):")
        for kind, n in fits.items():
            ratio = n / fits["f16"] if fits["f16"] else math.inf
            print(f"  {kind:<5} {n:>4}  ({ratio:.2f}x f16)")


if __name__ == "__main__":
    main()
