"""Real coding agents (Claude Code, Codex CLI) installed from npm and run against lumbung.

Each is installed once into a cache directory (``~/.cache/lumbung-tests/agents``, or under
``$LUMBUNG_TEST_CACHE``) and run in a directory of its own with a home of its own, so no user
configuration is read. Their own traffic beyond lumbung (telemetry, update checks) is switched off by
their settings, and anything that still tries goes to a proxy address where nothing listens: a test
fails fast instead of hanging on the network.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# An agent's turn on a local model, measured on a 2-core machine shared by other work:
# - Claude Code (on gemma3:270m) sends one request of 19.5k prompt tokens (its system prompt and tools): about 300 s
#   to read, and the model stopped by itself (781 tokens); 5 min 19 s in all (2 min 45 s once the
#   engine kept window-sized SWA KV: 162 s for the request, 2249 tokens answered). Without keep-alives
#   Claude Code drops the stream at 300 s (its watchdog counts pings as silence) and asks again,
#   reading the whole prompt again (measured with llama.cpp's full-size SWA cache, where the
#   prompt's KV, ~324 MiB, did not fit the 256 MiB default prefix cache; the test's server gets
#   1 GiB so that a retry or the next request reuses it). The answer's length is the model's
#   (Claude Code samples at temperature 1): a long one makes a slow turn. Runs by default
#   (LUMBUNG_AGENT_LOCAL_TURNS=0 skips it).
# - Codex CLI sends one request of 8.8k SmolLM2 tokens (4.6k of instructions, 4.2k of tool
#   definitions, which lumbung writes into the system message as compact JSON since SmolLM2's
#   template has no tools) and no max_output_tokens. It runs on smollm2:135m: the instruction-tuned
#   model answers "Say hi." in a few words and stops, where the base gemma3:270m writes until its
#   32k context is full (10-26 min) and Codex takes that cut answer (response.incomplete) for an
#   error and asks again. SmolLM2 is trained on 8k, so the test serves it as a user would: a model
#   entry with `context_size: 16384` and `rope_scaling: yarn`. Measured with the machine's load
#   average at 55-76: 8870 prompt tokens, 159 answered, one request of 732 s (12.5 min for the test);
#   at that load the prompt alone outlasts Codex's 300 s stream idle limit, which the test raises.
#   Runs by default.
CLAUDE_LOCAL_TURN = pytest.mark.skipif(
    os.environ.get("LUMBUNG_AGENT_LOCAL_TURNS") == "0", reason="LUMBUNG_AGENT_LOCAL_TURNS=0"
)

SECRET = "lumbung-rice-barn-42"
# The embedded gemma3:270m with its trained 32k context (test servers get 8k unless they ask), which
# holds the agent's first prompt; one request at a time, time enough on a small CPU to read it and
# answer, and a prefix cache that keeps the prompt for the agent's next request.
MODEL = "gemma3:270m"
LOCAL = {"context_size": 32768, "parallel": 1, "request_timeout": 3000, "prefix_cache_mb": 1024}

PACKAGES = {"claude": "@anthropic-ai/claude-code@2.1", "codex": "@openai/codex@0.171"}
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


def cache_dir() -> Path:
    root = os.environ.get("LUMBUNG_TEST_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "lumbung-tests") / "agents"


def agent_binary(name: str) -> Path:
    """The agent's executable, installed from npm on first use (skips where node or npm is missing)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to install the agents")
    prefix = cache_dir()
    prefix.mkdir(parents=True, exist_ok=True)
    binary = prefix / "node_modules" / ".bin" / name
    with (prefix / ".lock").open("w") as lock:  # one install at a time (parallel test runs)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), PACKAGES[name]],
                check=True,
                capture_output=True,
                timeout=900,
            )
    return binary


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr[-4000:]}"


def offline_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment with its own home and no way out but 127.0.0.1."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "HTTP_PROXY": DEAD_PROXY,
        "HTTPS_PROXY": DEAD_PROXY,
        "http_proxy": DEAD_PROXY,
        "https_proxy": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    return {**env, **extra}


def run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> Run:
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return Run(done.returncode, done.stdout, done.stderr)


def claude_code(base_url: str, model: str, prompt: str, *, workdir: Path, timeout: float) -> Run:
    """``claude -p PROMPT`` (print mode, default settings) with ANTHROPIC_BASE_URL at lumbung.

    A prompt that takes minutes to read needs no setting: lumbung starts the answer and sends
    Anthropic's ``ping`` events until the first token (surfaces/keepalive.py), so Claude Code's idle
    timeout (~300 s) never fires.
    """
    env = offline_env(
        workdir.parent / "claude-home",
        ANTHROPIC_BASE_URL=base_url,
        ANTHROPIC_API_KEY="sk-lumbung-test",
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        # The small model for background work (titles, summaries) is the same route.
        ANTHROPIC_SMALL_FAST_MODEL=model,
        ANTHROPIC_DEFAULT_HAIKU_MODEL=model,
    )
    return run(
        [str(agent_binary("claude")), "-p", prompt, "--model", model], cwd=workdir, env=env, timeout=timeout
    )


def codex_exec(
    base_url: str, model: str, prompt: str, *, workdir: Path, timeout: float, provider_extra: str = ""
) -> Run:
    """``codex exec PROMPT`` with a custom model provider (``wire_api = "responses"``) at lumbung;
    ``provider_extra``: more TOML lines for the provider's table."""
    codex_home = workdir.parent / "codex-home"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "lumbung"\n'
        "[model_providers.lumbung]\n"
        'name = "lumbung"\n'
        f'base_url = "{base_url}/v1"\n'
        'wire_api = "responses"\n'
        'env_key = "LUMBUNG_API_KEY"\n' + provider_extra
    )
    env = offline_env(workdir.parent / "codex-user", CODEX_HOME=str(codex_home), LUMBUNG_API_KEY="sk-test")
    cmd = [str(agent_binary("codex")), "exec", "--skip-git-repo-check", prompt]
    return run(cmd, cwd=workdir, env=env, timeout=timeout)
