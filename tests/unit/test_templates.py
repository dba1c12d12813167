"""Chat templates: lumbung's built-in ones, GGUF templates in the sandbox, errors as 400s."""

from __future__ import annotations

import pytest

from lumbung.engines.llamacpp.templates import ChatTemplate, builtin_source, select_template
from lumbung.errors import ConfigError, InvalidRequest
from lumbung.types import Message, Tool, ToolCall

GEMMA = ChatTemplate(builtin_source("gemma"), bos_token="<bos>", eos_token="<eos>", name="gemma")


def test_gemma_folds_system_into_first_user_turn_and_names_assistant_model() -> None:
    text = GEMMA.render(
        [
            Message("system", "Be brief."),
            Message("user", "Hi"),
            Message("assistant", "Hello!"),
            Message("user", "Again"),
        ]
    )
    assert text == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nAgain<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert GEMMA.stop_strings == ["<end_of_turn>"]


def test_gemma_without_generation_prompt() -> None:
    text = GEMMA.render([Message("user", "Hi")], add_generation_prompt=False)
    assert text == "<bos><start_of_turn>user\nHi<end_of_turn>\n"


def test_gemma_system_only() -> None:
    assert GEMMA.render([Message("system", "Rules")]).startswith(
        "<bos><start_of_turn>user\nRules<end_of_turn>"
    )


def test_chatml_fallback_for_unknown_architectures() -> None:
    chosen = select_template(
        override=None, gguf_template=None, architecture="llama", bos_token="", eos_token=""
    )
    assert chosen.name == "chatml"
    assert chosen.render([Message("user", "Hi")]) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_gguf_template_wins_over_builtin_and_config_wins_over_gguf() -> None:
    gguf = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
    chosen = select_template(
        override=None, gguf_template=gguf, architecture="gemma3", bos_token="", eos_token=""
    )
    assert chosen.render([Message("user", "x")]) == "[user]x"
    forced = select_template(
        override="gemma", gguf_template=gguf, architecture="qwen2", bos_token="<bos>", eos_token=""
    )
    assert forced.name == "gemma"


def test_hf_conventions_tools_tool_calls_and_tojson() -> None:
    source = (
        "{{ tools | tojson }}|{% for m in messages %}{% for c in m.tool_calls or [] %}"
        "{{ c.function.name }}{{ c.function.arguments.city }}{% endfor %}{% endfor %}"
    )
    tpl = ChatTemplate(source, bos_token="", eos_token="")
    text = tpl.render(
        [Message("assistant", None, tool_calls=[ToolCall("c1", "weather", '{"city": "Jakarta"}')])],
        tools=[Tool("weather", "Get weather", {"type": "object"})],
    )
    assert text.endswith("|weatherJakarta")
    assert '"name": "weather"' in text


def test_raise_exception_in_template_is_a_400() -> None:
    tpl = ChatTemplate(
        "{{ raise_exception('Conversation roles must alternate') }}", bos_token="", eos_token=""
    )
    with pytest.raises(InvalidRequest, match="roles must alternate"):
        tpl.render([Message("user", "x")])


def test_sandbox_blocks_python_internals() -> None:
    tpl = ChatTemplate("{{ messages.__class__.__mro__[1].__subclasses__() }}", bos_token="", eos_token="")
    with pytest.raises(InvalidRequest):
        tpl.render([Message("user", "x")])


def test_broken_template_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        ChatTemplate("{% for %}", bos_token="", eos_token="")
    with pytest.raises(ConfigError):
        builtin_source("nope")


DEEP = "[" * 5000 + "]" * 5000  # json.loads raises RecursionError on this


def test_deeply_nested_earlier_arguments_render_as_the_clients_text() -> None:
    source = (
        "{% for m in messages %}{% for c in m.tool_calls or [] %}"
        "{% if c.function.arguments is string %}S:{{ c.function.arguments }}"
        "{% else %}J:{{ c.function.arguments | tojson }}{% endif %}{% endfor %}{% endfor %}"
    )
    tpl = ChatTemplate(source, bos_token="", eos_token="")
    deep = tpl.render([Message("assistant", None, tool_calls=[ToolCall("c1", "f", DEEP)])])
    assert deep == "S:" + DEEP
    # Deep enough to stress re-serialising, shallow enough to parse: still the client's text.
    nested = "[" * 900 + "]" * 900
    assert tpl.render([Message("assistant", None, tool_calls=[ToolCall("c1", "f", nested)])]) == "S:" + nested
    plain = tpl.render([Message("assistant", None, tool_calls=[ToolCall("c1", "f", '{"a": [[1]]}')])])
    assert plain == 'J:{"a": [[1]]}'


def test_a_template_that_recurses_without_end_is_a_400() -> None:
    tpl = ChatTemplate("{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}", bos_token="", eos_token="")
    with pytest.raises(InvalidRequest, match="recursed"):
        tpl.render([Message("user", "x")])


def _calls_template(body: str) -> ChatTemplate:
    return ChatTemplate(
        "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% for c in m.tool_calls or [] %}"
        + body
        + "{% endfor %}{% endfor %}",
        bos_token="",
        eos_token="",
    )


def test_template_that_needs_text_content_gets_empty_text_for_null() -> None:
    tpl = ChatTemplate(
        "{% for m in messages %}{{ m.role + ':' + m.content }}{{ m.tool_calls | tojson }}{% endfor %}",
        bos_token="",
        eos_token="",
    )
    call = ToolCall("c1", "f", '{"a": 1}')
    assert tpl.render([Message("assistant", None, tool_calls=[call])]).startswith("assistant:[")


def test_template_that_concatenates_arguments_gets_json_text() -> None:
    tpl = _calls_template("{{ '<' + c.function.arguments + '>' }}")
    text = tpl.render([Message("assistant", None, tool_calls=[ToolCall("c1", "f", '{"a": 1}')])])
    assert text.endswith('<{"a": 1}>')


def test_template_printing_a_mapping_gets_json_text_not_pythons_repr() -> None:
    tpl = _calls_template("{{ c.function.arguments }}")
    text = tpl.render([Message("assistant", None, tool_calls=[ToolCall("c1", "f", '{"a": "b"}')])])
    assert text.endswith('{"a": "b"}')


def test_template_refusing_system_gets_it_in_the_first_user_turn() -> None:
    tpl = ChatTemplate(
        "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}[{{ m.role }}]{{ m.content }}{% endfor %}",
        bos_token="",
        eos_token="",
    )
    assert tpl.render([Message("system", "Rules"), Message("user", "Hi")]) == "[user]Rules\n\nHi"


def test_template_helpers_tojson_options_generation_blocks_and_mutable_lists() -> None:
    tpl = ChatTemplate(
        "{% set seen = [] %}{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}"
        "{% set _ = seen.append(m.role) %}{% endfor %}|{{ seen | tojson }}"
        "|{{ {'b': 1, 'a': [1, 2]} | tojson(sort_keys=true, separators=(',', ':')) }}"
        "|{{ messages | map(attribute='role') | tojson }}",
        bos_token="",
        eos_token="",
    )
    text = tpl.render([Message("user", "Hi"), Message("assistant", "Yo")])
    assert text == 'HiYo|["user", "assistant"]|{"a":[1,2],"b":1}|["user", "assistant"]'


def test_a_template_failing_in_its_own_code_is_a_400_not_a_500() -> None:
    tpl = ChatTemplate("{{ messages[0].content + 1 }}", bos_token="", eos_token="")
    with pytest.raises(InvalidRequest, match="TypeError"):
        tpl.render([Message("user", "x")])


def test_a_template_cannot_change_the_requests_tool_schema() -> None:
    tpl = ChatTemplate(
        "{% for t in tools %}{% set _ = t.function.parameters.update({'x': 1}) %}{% endfor %}ok",
        bos_token="",
        eos_token="",
    )
    tool = Tool("f", None, {"type": "object"})
    assert tpl.render([Message("user", "x")], tools=[tool]) == "ok"
    assert tool.parameters == {"type": "object"}


def test_null_content_printed_by_a_template_is_empty_not_none() -> None:
    tpl = ChatTemplate("{% for m in messages %}[{{ m.content }}]{% endfor %}", bos_token="", eos_token="")
    assert tpl.render([Message("assistant", None, tool_calls=[ToolCall("c", "f", "{}")])]) == "[]"


def test_a_template_filtering_null_content_into_none_gets_empty_text() -> None:
    tpl = ChatTemplate(
        "{% for m in messages %}[{{ m.content | trim }}]{% for c in m.tool_calls or [] %}"
        "{{ c.function.arguments | tojson }}{% endfor %}{% endfor %}",
        bos_token="",
        eos_token="",
    )
    call = ToolCall("c", "f", '{"a": 1}')
    assert tpl.render([Message("assistant", None, tool_calls=[call])]) == '[]{"a": 1}'
