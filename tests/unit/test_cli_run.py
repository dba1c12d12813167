"""`lumbung run`'s terminal rules: multi-line input, slash commands, the host, the --verbose report."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lumbung.cli_run import MORE, PROMPT, Session, Timing, command, host_url, read_message, timings
from lumbung.types import Message, Usage


def lines(*typed: str) -> tuple[Callable[[str], str], list[str]]:
    """A fake terminal: returns the typed lines in order and records the prompts shown."""
    shown: list[str] = []
    pending = list(typed)

    def read(prompt: str) -> str:
        shown.append(prompt)
        if not pending:
            raise EOFError
        return pending.pop(0)

    return read, shown


def test_a_plain_line_is_one_message() -> None:
    read, shown = lines("hello there")
    assert read_message(read) == "hello there"
    assert shown == [PROMPT]


def test_triple_quotes_open_a_block_until_a_line_ends_with_them() -> None:
    read, shown = lines('"""', "first line", "", 'second line"""')
    assert read_message(read) == "first line\n\nsecond line"
    assert shown == [PROMPT, MORE, MORE, MORE]


def test_block_may_start_on_the_first_line_and_end_on_it() -> None:
    read, _ = lines('"""one line in quotes"""')
    assert read_message(read) == "one line in quotes"
    read, _ = lines('"""starts here', 'ends here"""')
    assert read_message(read) == "starts here\nends here"


def test_ctrl_d_inside_a_block_ends_the_session() -> None:
    read, _ = lines('"""', "never closed")
    with pytest.raises(EOFError):
        read_message(read)


def test_set_system_and_clear() -> None:
    session = Session()
    assert command("/set system You answer in French.", session) == "Set system message."
    session.history += [Message("user", "a"), Message("assistant", "b")]
    msgs = session.messages("c")
    assert [(m.role, m.content) for m in msgs] == [
        ("system", "You answer in French."),
        ("user", "a"),
        ("assistant", "b"),
        ("user", "c"),
    ]
    assert command("/clear", session) == "Cleared session context."
    assert [(m.role, m.content) for m in session.messages("d")] == [
        ("system", "You answer in French."),
        ("user", "d"),
    ]
    assert command("/show system", session) == "You answer in French."


def test_bye_ends_and_unknown_commands_are_named() -> None:
    session = Session()
    assert command("/bye", session) is None
    assert command("/frobnicate now", session) == "Unknown command '/frobnicate'. Type /? for help."
    assert "/set system" in (command("/?", session) or "")
    assert command("/set system", session) is not None and session.system is None  # no text: usage
    command("/set verbose", session)
    assert session.verbose
    command("/set quiet", session)
    assert not session.verbose


def test_host_without_scheme_gets_http() -> None:
    assert host_url("127.0.0.1:9000") == "http://127.0.0.1:9000"
    assert host_url("https://example.test/") == "https://example.test"


def test_verbose_report_counts_the_rate_after_the_first_token() -> None:
    t = Timing(started=10.0, first=10.5, ended=12.5, usage=Usage(12, 21, 4))
    report = timings(t, load=1.25)
    assert "time to first token:  0.500s" in report
    assert "eval rate:            10.00 tokens/s" in report  # 20 tokens after the first, in 2 s
    assert "prompt eval count:    12 token(s)" in report
    assert "cached prompt tokens: 4 token(s)" in report
    assert "load duration:        1.250s" in report


def test_verbose_report_without_an_answer_has_no_rate() -> None:
    report = timings(Timing(started=1.0, ended=1.5), load=0.0)
    assert "eval rate" not in report and "time to first token" not in report
