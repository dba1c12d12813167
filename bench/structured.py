"""Decode speed with and without a JSON schema, side by side, on the embedded model.

Four ways to decode the same request in one process, interleaved round by round so that machine
noise hits them alike:
  free        no constraint (the baseline)
  llguidance  lumbung's constrained decoding (engines/llamacpp/grammar.py), with the tokens the
              schema forces decoded as a batch (fast-forward, engines/llamacpp/forced.py)
  llg-no-ff   the same without fast-forward: every token sampled in a step of its own
  gbnf        the peer: llama.cpp's own grammar sampler with a GBNF made from the same schema
              (llama-cpp-python's json_schema_to_gbnf), placed first in the same sampler chain
Then the sampling step alone (no decode), repeated on the logits the last decode left: microseconds
per token for each sampler chain, i.e. the cost a schema adds to every token whatever the machine's
load. Prints tokens/s (decode only: from the first token to the last) and CPU milliseconds per token
(the process's CPU time, all threads: steadier than wall time on a shared machine), each with its
ratio to free.

Two workloads (``--workload``): ``story`` (a schema of four keys around a long free-text story:
little for fast-forward) and ``record`` (an extraction record of many keys with short values, the
common structured-output case: keys, quotes and punctuation are forced).

    .venv/bin/python bench/structured.py [--workload record] [--rounds 3] [--tokens 96] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp.llama_grammar import json_schema_to_gbnf

from lumbung.engines.llamacpp.backend import LocalModel, LocalModelSpec
from lumbung.engines.llamacpp.engine import EngineConfig, Sequence
from lumbung.engines.llamacpp.grammar import json_schema_grammar
from lumbung.engines.llamacpp.sampler import Sampler
from lumbung.store.embedded import GEMMA, embedded_model_path
from lumbung.types import SamplingParams

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "year": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "story": {"type": "string"},
    },
    "required": ["title", "year", "tags", "story"],
    "additionalProperties": False,
}
PROMPT = "<start_of_turn>user\nWrite a long story about a rice barn in Java, as JSON.<end_of_turn>\n<start_of_turn>model\n"
RECORD: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "customer_name": {"type": "string"},
        "customer_city": {"type": "string"},
        "issue_year": {"type": "integer"},
        "total_amount": {"type": "number"},
        "currency": {"type": "string", "enum": ["IDR", "USD", "EUR"]},
        "paid": {"type": "boolean"},
        "payment_method": {"type": "string", "enum": ["cash", "transfer", "card"]},
        "line_item_count": {"type": "integer"},
        "delivery_required": {"type": "boolean"},
        "priority": {"type": "string", "enum": ["low", "normal", "high"]},
    },
    "required": [
        "invoice_number",
        "customer_name",
        "customer_city",
        "issue_year",
        "total_amount",
        "currency",
        "paid",
        "payment_method",
        "line_item_count",
        "delivery_required",
        "priority",
    ],
    "additionalProperties": False,
}
RECORD_PROMPT = (
    "<start_of_turn>user\nExtract the invoice as JSON: Invoice INV-2291 for Ibu Sari Wulandari of "
    "Yogyakarta, issued 2024, total 1250000 rupiah for 3 items, paid by bank transfer, to be delivered, "
    "urgent.<end_of_turn>\n<start_of_turn>model\n"
)
WORKLOADS = {"story": (SCHEMA, PROMPT), "record": (RECORD, RECORD_PROMPT)}


async def decode(
    model: LocalModel, tokens: list[int], pre: tuple[Any, ...], n: int
) -> tuple[int, float, float]:
    seq = Sequence(
        prompt=tokens,
        params=SamplingParams(temperature=0.8, seed=42, max_tokens=n),
        max_tokens=n,
        loop=asyncio.get_running_loop(),
        out=asyncio.Queue(),
        stop_tokens=model.stop_tokens,
        sampler_pre=pre,
    )
    model.engine.submit(seq)
    first = last = cpu_first = 0.0
    while True:
        item = await seq.out.get()
        if isinstance(item, BaseException):
            raise item
        now = time.perf_counter()
        if not first:
            first, cpu_first = now, time.process_time()
        last = now
        if item.finish_reason is not None:
            assert item.usage is not None
            return item.usage.completion_tokens, last - first, time.process_time() - cpu_first


def variants(model: LocalModel, schema: dict[str, Any]) -> dict[str, Any]:
    gbnf = json_schema_to_gbnf(json.dumps(schema)).encode()
    json_grammar = f"start: answer\nanswer: {json_schema_grammar(schema, 'bench')}\n"  # as request_grammar

    def free() -> tuple[Any, ...]:
        return ()

    def llg() -> tuple[Any, ...]:
        return (model.grammars.sampler(model.grammars.matcher(json_grammar, "bench")),)

    def peer() -> tuple[Any, ...]:
        return (llama_cpp.llama_sampler_init_grammar(model.model.vocab, gbnf, b"root"),)

    return {"free": free, "llguidance": llg, "llg-no-ff": llg, "gbnf": peer}


def sampling_cost(model: LocalModel, makers: dict[str, Any], steps: int) -> dict[str, float]:
    """Fastest microseconds of one ``llama_sampler_sample`` (mask, sample, accept) per chain.

    Runs on the engine's context while its thread is idle (every sequence has finished)."""
    ctx = model.engine.ctx
    out: dict[str, float] = {}
    for name, make in makers.items():
        sampler = Sampler(SamplingParams(temperature=0.8, seed=1), model.model.n_vocab, pre=make())
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            sampler.sample(ctx, -1)
            times.append(time.perf_counter() - start)
        sampler.close()
        out[name] = 1e6 * min(times)  # the least disturbed step: closest to an idle machine
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="story")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        spec = LocalModelSpec(
            id="bench",
            path=embedded_model_path(Path(home), GEMMA),
            engine=EngineConfig(threads=args.threads, parallel=1),
        )
        model = LocalModel(spec, request_timeout=600)
        try:
            schema, prompt = WORKLOADS[args.workload]
            tokens = model.model.tokenize(prompt, add_special=True, parse_special=True)
            makers = variants(model, schema)
            makers["llguidance"]()  # builds the vocabulary view once (as a server does on first use)
            await decode(model, tokens, (), args.tokens)  # warm-up: first-use costs stay out of the figures
            rates: dict[str, list[float]] = {name: [] for name in makers}
            cpu: dict[str, list[float]] = {name: [] for name in makers}
            for _ in range(args.rounds):
                for name, make in makers.items():
                    model.engine.config.fast_forward = name != "llg-no-ff"  # read as a request starts
                    n, seconds, cpu_seconds = await decode(model, tokens, make(), args.tokens)
                    rates[name].append((n - 1) / seconds if seconds > 0 else 0.0)
                    cpu[name].append(1000 * cpu_seconds / max(n - 1, 1))
            base, base_cpu = statistics.median(rates["free"]), statistics.median(cpu["free"])
            print(
                f"embedded Gemma 3 270M, {args.workload} workload, {args.threads} threads, {args.tokens} tokens, "
                f"{args.rounds} rounds"
            )
            print(f"{'decoder':<12} {'tok/s':>8} {'vs free':>8} {'cpu ms/tok':>11} {'vs free':>8}  (medians)")
            for name in makers:
                rate, ms = statistics.median(rates[name]), statistics.median(cpu[name])
                print(f"{name:<12} {rate:8.1f} {rate / base:8.2f} {ms:11.1f} {ms / base_cpu:8.2f}")
            cost = sampling_cost(model, makers, steps=args.tokens)
            decode_us = 1e6 / max(rates["free"])
            print(
                f"\nsampling step alone, fastest of {args.tokens} steps, as a share of the fastest free decode"
                f" step ({decode_us:.0f} us)"
            )
            for name in makers:
                extra = cost[name] - cost["free"]
                print(
                    f"{name:<12} {cost[name]:8.0f} us   +{extra:6.0f} us = {100 * extra / decode_us:5.1f}% slower"
                )
        finally:
            model.close()


if __name__ == "__main__":
    asyncio.run(main())
