"""What lumbung costs in front of a vLLM server, and whether it speaks every API through it: the
measuring half of ``scripts/gpu-check`` (which installs vLLM, serves a model and starts lumbung).

1. Added latency: short requests one at a time, direct and through lumbung taking turns; the p50
   difference must stay under 1 ms.
2. Throughput at saturation: ``--concurrency`` clients sending whole (non-streamed) requests of
   ``--tokens`` tokens (``ignore_eos``) for ``--seconds``, direct then through lumbung then direct
   again; lumbung must keep at least 98% of the direct rate (the better of the two direct runs).
3. Conformance through lumbung: OpenAI chat (whole, streamed, tools, json_schema), completions,
   Anthropic messages and Ollama chat, each answered in its own shape.

    python bench/vllm_overhead.py --direct http://127.0.0.1:8100 --lumbung http://127.0.0.1:8000 \
        --model MODEL [--route ROUTE] [--key KEY] [--json out.json]

Exits 1 when a limit is broken or a check fails. Runs against any OpenAI-compatible server (the
tests run it against a fake vLLM on CPU with ``--quick``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ADDED_P50_LIMIT_MS = 1.0
THROUGHPUT_FLOOR = 0.98


@dataclass
class Target:
    name: str
    base: str  # server root, no /v1
    model: str
    key: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"} if self.key else {}


def chat_body(
    model: str, tokens: int, prompt: str = "Count slowly from one to a thousand."
) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": tokens,
        "temperature": 0,
        "ignore_eos": True,  # vLLM's extension; lumbung passes unknown fields through to vLLM
    }


async def one(client: httpx.AsyncClient, target: Target, tokens: int) -> tuple[float, int]:
    start = time.perf_counter()
    response = await client.post(
        f"{target.base}/v1/chat/completions", json=chat_body(target.model, tokens), headers=target.headers
    )
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, int(response.json()["usage"]["completion_tokens"])


async def added_latency(direct: Target, through: Target, rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {"direct": [], "lumbung": []}
    async with httpx.AsyncClient(timeout=60) as client:
        for target in (direct, through):  # warm both paths
            await one(client, target, 4)
        for _ in range(rounds):
            for key, target in (("direct", direct), ("lumbung", through)):
                elapsed, _ = await one(client, target, 4)
                times[key].append(elapsed * 1000)
    p50 = {key: statistics.median(values) for key, values in times.items()}
    return {
        "direct_p50_ms": p50["direct"],
        "lumbung_p50_ms": p50["lumbung"],
        "added_p50_ms": p50["lumbung"] - p50["direct"],
    }


async def saturate(target: Target, concurrency: int, tokens: int, seconds: float) -> float:
    """Completion tokens per second with ``concurrency`` clients for ``seconds``."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        done = 0
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                _, produced = await one(client, target, tokens)
                done += produced

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


def conformance(through: Target) -> dict[str, bool | str]:
    """Each API through lumbung, answered in its own shape (SDKs where they are installed)."""
    results: dict[str, bool | str] = {}
    headers = through.headers
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    with httpx.Client(base_url=through.base, headers=headers, timeout=300) as client:

        def check(name: str, fn: Any) -> None:
            try:
                results[name] = bool(fn())
            except Exception as exc:  # a check that breaks is a failed check, named in the report
                results[name] = f"failed: {type(exc).__name__}: {exc}"[:300]

        def chat() -> bool:
            body = client.post("/v1/chat/completions", json=chat_body(through.model, 8)).json()
            return body["object"] == "chat.completion" and body["usage"]["completion_tokens"] > 0

        def stream() -> bool:
            body = {**chat_body(through.model, 8), "stream": True, "stream_options": {"include_usage": True}}
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                lines = [line for line in response.iter_lines() if line.startswith("data: ")]
            return lines[-1] == "data: [DONE]" and any('"usage"' in line for line in lines)

        def tools() -> bool:
            body = {
                "model": through.model,
                "messages": [{"role": "user", "content": "What is the weather in Jakarta?"}],
                "tools": [weather],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "max_tokens": 64,
                "stream": True,  # the way agents ask: the call's arguments arrive in pieces
            }
            name, arguments = "", ""
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                for line in response.iter_lines():
                    if not line.startswith("data: {"):
                        continue
                    for choice in json.loads(line[6:])["choices"]:
                        for call in choice["delta"].get("tool_calls") or []:
                            name += call.get("function", {}).get("name") or ""
                            arguments += call.get("function", {}).get("arguments") or ""
            assert name == "get_weather", f"called {name!r}"
            return isinstance(json.loads(arguments), dict)

        def schema() -> bool:
            body = {
                "model": through.model,
                "messages": [{"role": "user", "content": "Give a city and its country."}],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "place",
                        "strict": True,
                        "schema": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
                            "required": ["city", "country"],
                            "additionalProperties": False,
                        },
                    },
                },
                "max_tokens": 64,
            }
            content = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"][
                "content"
            ]
            return set(json.loads(content)) == {"city", "country"}

        def completions() -> bool:
            body = {"model": through.model, "prompt": "Once upon a time", "max_tokens": 8}
            return client.post("/v1/completions", json=body).json()["object"] == "text_completion"

        def anthropic() -> bool:
            body = {"model": through.model, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}
            answer = client.post(
                "/v1/messages",
                json=body,
                headers={"x-api-key": through.key or "none", "anthropic-version": "2023-06-01"},
            ).json()
            assert answer["type"] == "message", answer
            return any(block["type"] == "text" for block in answer["content"])

        def ollama() -> bool:
            body = {
                "model": through.model,
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": False,
                "options": {"num_predict": 8},
            }
            answer = client.post("/api/chat", json=body).json()
            return answer["done"] is True and answer["message"]["role"] == "assistant"

        for name, fn in (
            ("openai chat", chat),
            ("openai chat streamed", stream),
            ("openai tools (forced call)", tools),
            ("openai json_schema (strict)", schema),
            ("openai completions", completions),
            ("anthropic messages", anthropic),
            ("ollama chat", ollama),
        ):
            check(name, fn)
    return results


async def run(args: argparse.Namespace) -> dict[str, Any]:
    direct = Target("direct", args.direct.rstrip("/"), args.model)
    through = Target("lumbung", args.lumbung.rstrip("/"), args.route or args.model, args.key)
    latency = await added_latency(direct, through, args.rounds)
    print(
        f"added latency: p50 direct {latency['direct_p50_ms']:.2f} ms, through lumbung "
        f"{latency['lumbung_p50_ms']:.2f} ms: +{latency['added_p50_ms']:.2f} ms (limit {ADDED_P50_LIMIT_MS} ms)"
    )
    rates = []
    for target in (direct, through, direct):
        rate = await saturate(target, args.concurrency, args.tokens, args.seconds)
        rates.append(rate)
        print(f"saturation, {target.name}: {rate:,.0f} tokens/s ({args.concurrency} clients)")
    ratio = rates[1] / max(rates[0], rates[2])
    print(f"throughput through lumbung: {ratio:.3f} of direct (floor {THROUGHPUT_FLOOR})")
    checks = await asyncio.to_thread(conformance, through)
    for name, ok in checks.items():
        print(f"conformance {name}: {'ok' if ok is True else ok}")
    passed = (
        latency["added_p50_ms"] < ADDED_P50_LIMIT_MS
        and ratio >= THROUGHPUT_FLOOR
        and all(ok is True for ok in checks.values())
    )
    print("PASS" if passed else "FAIL")
    return {
        "latency": latency,
        "tokens_per_second": {"direct": max(rates[0], rates[2]), "lumbung": rates[1]},
        "throughput_ratio": ratio,
        "conformance": checks,
        "passed": passed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--direct", required=True, help="The vLLM server's root URL.")
    parser.add_argument(
        "--lumbung", required=True, help="lumbung's root URL, with the vLLM provider behind it."
    )
    parser.add_argument("--model", required=True, help="The model name vLLM serves.")
    parser.add_argument("--route", help="The name to ask lumbung for (default: the model name).")
    parser.add_argument("--key", help="An API key for lumbung, if it needs one.")
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=256, help="Completion tokens per request.")
    parser.add_argument("--seconds", type=float, default=60.0, help="Seconds of each saturation run.")
    parser.add_argument("--rounds", type=int, default=200, help="Requests per path for the added latency.")
    parser.add_argument(
        "--quick", action="store_true", help="Tiny runs: proves the script, measures nothing."
    )
    parser.add_argument("--json", type=Path, help="Also write every number here.")
    args = parser.parse_args()
    if args.quick:
        args.concurrency, args.tokens, args.seconds, args.rounds = 4, 8, 1.0, 5
    result = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
