"""Thresholds that turn a report into a yes or no: a YAML mapping of metric name to a condition.

    tool_call_validity: ">= 0.98"
    schema_validity: "= 1.0"
    median_similarity: ">= 0.85"
    latency_p95_ms: "<= 3000"
    errors: 0            # a bare number means "=="

A metric that no request measured (no request asked for a schema, say) is reported as not measured
and does not fail the gate; a name that is no metric at all is an error, so a typo cannot pass.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lumbung.errors import ReplayError

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "=": operator.eq,
}
CONDITION = re.compile(r"^\s*(>=|<=|==|=|>|<)?\s*([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float

    def check(self, actual: float | None) -> bool | None:
        return None if actual is None else OPS[self.op](float(actual), self.value)


@dataclass(frozen=True)
class Verdict:
    threshold: Threshold
    actual: float | None
    passed: bool | None  # None: not measured

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.threshold.metric,
            "op": self.threshold.op,
            "value": self.threshold.value,
            "actual": self.actual,
            "passed": self.passed,
        }


def parse(data: Any, known: set[str]) -> list[Threshold]:
    if not isinstance(data, Mapping):
        raise ReplayError("thresholds: a YAML mapping of metric name to condition is expected")
    out = []
    for metric, condition in data.items():
        if metric not in known:
            raise ReplayError(f"thresholds: {metric!r} is no metric (known: {', '.join(sorted(known))})")
        match = CONDITION.match(str(condition)) if not isinstance(condition, bool) else None
        if match is None:
            raise ReplayError(
                f"thresholds: {metric}: {condition!r} is no condition (expected e.g. '>= 0.98' or '= 1')"
            )
        out.append(Threshold(str(metric), match.group(1) or "==", float(match.group(2))))
    return out


def load(path: Path, known: set[str]) -> list[Threshold]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReplayError(f"cannot read thresholds {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ReplayError(f"thresholds {path} is not valid YAML: {exc}") from exc
    return parse(data, known)


def judge(thresholds: list[Threshold], metrics: Mapping[str, float | None]) -> list[Verdict]:
    return [Verdict(t, metrics.get(t.metric), t.check(metrics.get(t.metric))) for t in thresholds]
