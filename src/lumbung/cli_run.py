"""``lumbung run MODEL [PROMPT]``: chat with a model in the terminal, as ``ollama run`` does.

Interactive when stdin is a terminal and no prompt is given (``>>>``; ``\"\"\"`` opens a multi-line
message, slash commands change the session); otherwise one answer to the prompt and/or stdin, then
exit, so pipes work. The answer comes from a running server (``LUMBUNG_HOST``) or, when none
answers there, from the model loaded in this process (cli_chat.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

import click

from lumbung.cli_chat import HEALTH_WAIT, Chat, LocalChat, RemoteChat, server_state, wait_until_ready
from lumbung.errors import ApiError, LumbungError
from lumbung.types import Message, SamplingParams, Usage

DEFAULT_HOST = "http://127.0.0.1:8000"
PROMPT = ">>> "
MORE = "... "
FENCE = '"""'

HELP = f"""Available commands:
  /set system <text>   Set the system message
  /set verbose         Show timings after each answer
  /set quiet           Stop showing them
  /show system         Show the system message
  /clear               Forget the conversation so far
  /bye                 Exit
  /?, /help            Show this help

Use {FENCE} to begin a multi-line message, and {FENCE} at the end of a line to send it."""


def host_url(value: str) -> str:
    """``LUMBUNG_HOST`` as a URL: a bare ``host:port`` (as OLLAMA_HOST allows) gets ``http://``."""
    value = value.strip().rstrip("/")
    return value if "://" in value else f"http://{value}"


def read_message(read_line: Callable[[str], str]) -> str:
    """One message from the terminal: a line, or a ``\"\"\"`` block that ends on a line ending in
    ``\"\"\"``. EOFError (Ctrl-D) and KeyboardInterrupt pass through."""
    line = read_line(PROMPT)
    if not line.lstrip().startswith(FENCE):
        return line
    rest = line.lstrip()[len(FENCE) :]
    parts = []
    while not rest.rstrip().endswith(FENCE):
        parts.append(rest)
        rest = read_line(MORE)
    parts.append(rest.rstrip()[: -len(FENCE)])
    return "\n".join(parts).strip("\n")


@dataclass
class Session:
    """The conversation and the settings slash commands change."""

    system: str | None = None
    verbose: bool = False
    history: list[Message] = field(default_factory=list)

    def messages(self, text: str) -> list[Message]:
        system = [Message("system", self.system)] if self.system else []
        return [*system, *self.history, Message("user", text)]


def command(text: str, session: Session) -> str | None:
    """Apply a slash command; the reply to print, or None for /bye."""
    name, _, arg = text.strip().partition(" ")
    arg = arg.strip()
    if name == "/bye":
        return None
    if name in {"/?", "/help"}:
        return HELP
    if name == "/clear":
        session.history.clear()
        return "Cleared session context."
    if name == "/set":
        what, _, value = arg.partition(" ")
        if what == "system" and value.strip():
            session.system = value.strip()
            return "Set system message."
        if what == "verbose":
            session.verbose = True
            return "Set 'verbose' mode."
        if what == "quiet":
            session.verbose = False
            return "Set 'quiet' mode."
        return "Usage: /set system <text> | /set verbose | /set quiet"
    if name == "/show" and arg == "system":
        return session.system or "No system message was specified."
    return f"Unknown command '{name}'. Type /? for help."


@dataclass
class Timing:
    started: float
    first: float | None = None
    ended: float = 0.0
    usage: Usage | None = None


def timings(t: Timing, load: float) -> str:
    """The --verbose report, after the answer."""
    usage = t.usage or Usage()
    lines = [f"total duration:       {t.ended - t.started:.3f}s", f"load duration:        {load:.3f}s"]
    lines.append(f"prompt eval count:    {usage.prompt_tokens} token(s)")
    if usage.cached_tokens:
        lines.append(f"cached prompt tokens: {usage.cached_tokens} token(s)")
    if t.first is not None:
        lines.append(f"time to first token:  {t.first - t.started:.3f}s")
    lines.append(f"eval count:           {usage.completion_tokens} token(s)")
    if t.first is not None and usage.completion_tokens > 1 and t.ended > t.first:
        # The first token's time is the prompt's; the rate counts the tokens after it.
        rate = (usage.completion_tokens - 1) / (t.ended - t.first)
        lines.append(f"eval rate:            {rate:.2f} tokens/s")
    return "\n".join(lines)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


async def answer(
    chat: Chat, model: str, messages: list[Message], sampling: SamplingParams
) -> tuple[str, Timing]:
    """Stream one answer to stdout; its text and timing."""
    t = Timing(time.monotonic())
    text: list[str] = []
    thinking = False
    async with aclosing(chat.stream(model, messages, sampling)) as chunks:
        async for chunk in chunks:
            if (chunk.text or chunk.reasoning) and t.first is None:
                t.first = time.monotonic()
            if chunk.reasoning:
                if not thinking:
                    _write("Thinking...\n")
                    thinking = True
                _write(chunk.reasoning)
            if chunk.text:
                if thinking:
                    _write("\n...done thinking.\n\n")
                    thinking = False
                _write(chunk.text)
                text.append(chunk.text)
            if chunk.usage is not None:
                t.usage = chunk.usage
    t.ended = time.monotonic()
    return "".join(text), t


def connect(host: str, api_key: str | None, config: Path | None, model: str) -> Chat:
    """The server at ``host`` if one answers there, else the model in this process."""
    from lumbung.settings import load_settings

    state = server_state(host)
    if state is not None:
        if state == "loading":
            click.echo(f"waiting for the server at {host} to load its model...", err=True)
            wait_until_ready(host, time.monotonic() + HEALTH_WAIT)
        return RemoteChat(host, api_key)
    settings, _ = load_settings(config)
    click.echo(f"no server at {host}; loading {model} in this process", err=True)
    return LocalChat(settings)


def repl(
    runner: asyncio.Runner, chat: Chat, model: str, session: Session, sampling: SamplingParams, load: float
) -> None:
    while True:
        try:
            text = read_message(input)
        except KeyboardInterrupt:
            click.echo("\nUse Ctrl + d or /bye to exit.")
            continue
        except EOFError:
            click.echo()
            return
        if not text.strip():
            continue
        if text.lstrip().startswith("/"):
            reply = command(text, session)
            if reply is None:
                return
            click.echo(reply)
            continue
        messages = session.messages(text)
        try:
            said, t = runner.run(answer(chat, model, messages, sampling))
        except KeyboardInterrupt:  # Ctrl-C stops this answer, not the session; it is not kept
            click.echo()
            continue
        except ApiError as exc:
            click.echo(f"\nError: {exc}", err=True)
            continue
        click.echo("\n")
        session.history += [messages[-1], Message("assistant", said)]
        if session.verbose:
            click.echo(timings(t, load) + "\n", err=True)
            load = 0.0


def one_shot(prompt: str, stdin_text: str | None) -> str:
    if stdin_text is None:
        return prompt
    return f"{prompt}\n\n{stdin_text}" if prompt else stdin_text


@click.command("run")
@click.argument("model")
@click.argument("prompt", nargs=-1)
@click.option(
    "--verbose", is_flag=True, help="After each answer, show timings: time to first token, tokens/s."
)
@click.option("--system", default=None, help="System message for the conversation.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature (0: greedy).")
@click.option("--seed", type=int, default=None, help="Random seed for sampling.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="Most tokens per answer.")
@click.option(
    "--host",
    envvar="LUMBUNG_HOST",
    default=DEFAULT_HOST,
    show_default=True,
    help="Server to talk to (also $LUMBUNG_HOST); when none answers there, the model loads in this process.",
)
@click.option(
    "--api-key", envvar="LUMBUNG_API_KEY", default=None, help="API key (default: $LUMBUNG_API_KEY)."
)
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML config file, for a model loaded in this process (default: $LUMBUNG_CONFIG).",
)
def run(
    model: str,
    prompt: tuple[str, ...],
    verbose: bool,
    system: str | None,
    temperature: float | None,
    seed: int | None,
    max_tokens: int | None,
    host: str,
    api_key: str | None,
    config: Path | None,
) -> None:
    """Chat with MODEL in the terminal, or answer PROMPT (and/or stdin) once and exit.

    Talks to the lumbung server at $LUMBUNG_HOST (default http://127.0.0.1:8000) when one runs there,
    else loads the model in this process. In the chat: \"\"\" starts a multi-line message, /set system
    TEXT sets the system message, /clear forgets the conversation, /bye (or Ctrl-D) exits, /? lists
    the commands; Ctrl-C stops an answer. `echo hi | lumbung run default` answers once.
    """
    from lumbung.cli import setup_logging

    setup_logging(os.environ.get("LUMBUNG_LOG_LEVEL", "warning"))
    sampling = SamplingParams()
    if temperature is not None:
        sampling.temperature = temperature
    sampling.seed = seed
    sampling.max_tokens = max_tokens
    stdin_text = None if sys.stdin.isatty() else sys.stdin.read()
    interactive = not prompt and stdin_text is None
    text = one_shot(" ".join(prompt), stdin_text)
    if not interactive and not text.strip():
        raise click.UsageError("nothing to send: stdin was empty and no PROMPT was given")
    session = Session(system=system, verbose=verbose)
    with asyncio.Runner() as runner:
        try:
            chat = connect(host_url(host), api_key, config, model)
        except LumbungError as exc:
            raise click.ClickException(str(exc)) from exc
        try:
            load = runner.run(chat.check(model))
            if interactive:
                repl(runner, chat, model, session, sampling, load)
                return
            _, t = runner.run(answer(chat, model, session.messages(text), sampling))
            _write("\n")
            if verbose:
                click.echo(timings(t, load), err=True)
        except LumbungError as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            click.echo(err=True)
            raise SystemExit(130) from None
        finally:
            runner.run(chat.aclose())
