"""Reading a vLLM replica's Prometheus /metrics into a typed load: vLLM's own metric names (as written
by prometheus_client, which vLLM uses), old and new KV-cache names, several engines, the prefix-cache
hit rate between two reads, a sleeping engine, and text that is not what it should be."""

from __future__ import annotations

import pytest

from lumbung.engines.vllm_metrics import MetricsFormatError, parse_metrics
from tests.support.fake_upstream import FakeUpstream


def text(**state: object) -> str:
    fake = FakeUpstream("r")
    for key, value in state.items():
        setattr(fake, key, value)
    return fake.metrics_text().decode()


def test_queues_kv_usage_and_sleep_state_are_read() -> None:
    load = parse_metrics(text(running=3, waiting=2, kv_usage=0.4), at=7.0)
    assert (load.running, load.waiting, load.kv_usage, load.sleeping, load.scraped_at) == (
        3,
        2,
        0.4,
        False,
        7.0,
    )
    assert parse_metrics(text(sleeping=True), at=0.0).sleeping


def test_the_kv_gauge_of_vllm_before_0_10_is_read_too() -> None:
    load = parse_metrics(text(kv_usage=0.7, kv_metric="vllm:gpu_cache_usage_perc"), at=0.0)
    assert load.kv_usage == 0.7


def test_several_engines_add_their_queues_and_average_their_kv_usage() -> None:
    body = "\n".join(
        [
            "# TYPE vllm:num_requests_running gauge",
            'vllm:num_requests_running{engine="0",model_name="m"} 2.0',
            'vllm:num_requests_running{engine="1",model_name="m"} 5.0',
            "# TYPE vllm:num_requests_waiting gauge",
            'vllm:num_requests_waiting{engine="0",model_name="m"} 1.0',
            'vllm:num_requests_waiting{engine="1",model_name="m"} 0.0',
            "# TYPE vllm:kv_cache_usage_perc gauge",
            'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2',
            'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.6',
            "",
        ]
    )
    load = parse_metrics(body, at=0.0)
    assert (load.running, load.waiting) == (7, 1)
    assert load.kv_usage == pytest.approx(0.4)
    assert load.prefix_hit_rate is None  # the server did not say


def test_prefix_hit_rate_is_over_the_last_interval_and_survives_a_restart() -> None:
    first = parse_metrics(text(prefix_queries=100, prefix_hits=10), at=0.0)
    assert first.prefix_hit_rate == pytest.approx(0.1)
    second = parse_metrics(text(prefix_queries=200, prefix_hits=90), at=1.0, previous=first)
    assert second.prefix_hit_rate == pytest.approx(0.8)  # 80 of the last 100 tokens
    idle = parse_metrics(text(prefix_queries=200, prefix_hits=90), at=2.0, previous=second)
    assert idle.prefix_hit_rate == pytest.approx(0.8)  # no queries since: the last rate stands
    restarted = parse_metrics(text(prefix_queries=40, prefix_hits=30), at=3.0, previous=idle)
    assert restarted.prefix_hit_rate == pytest.approx(0.75)  # counters began again


@pytest.mark.parametrize(
    "body",
    [
        "vllm:num_requests_running{{{ nonsense\n",
        "# TYPE process_open_fds gauge\nprocess_open_fds 12.0\n",  # some server, not vLLM
        "vllm:num_requests_running 1\nvllm:num_requests_waiting NaN\n",
        "vllm:num_requests_running -3\nvllm:num_requests_waiting 0\n",
        "",
    ],
)
def test_text_that_is_not_a_vllm_servers_metrics_is_refused(body: str) -> None:
    with pytest.raises(MetricsFormatError):
        parse_metrics(body, at=0.0)
