"""A replay's report: every number as JSON, the same as one HTML page (proof/report_html.py), and
the thresholds' verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumbung.proof.compare import Comparison, badness, by_group, metrics, pass_rates
from lumbung.proof.thresholds import Threshold, Verdict, judge

VERSION = 1
WORST = 10  # worst cases shown side by side


def metric_names() -> set[str]:
    """Every name a threshold may use."""
    return set(metrics([]))


@dataclass
class Report:
    title: str
    recording: str
    candidate: str
    baseline: str  # "recorded", a model or route name, or "shadow-live"
    created: float
    comparisons: list[Comparison]
    thresholds: list[Threshold] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.metrics = metrics(self.comparisons)
        self.checks = pass_rates(self.comparisons)
        self.groups = by_group(self.comparisons)
        self.verdicts: list[Verdict] = judge(self.thresholds, self.metrics)

    @property
    def passed(self) -> bool:
        """No threshold failed (a metric nothing measured does not fail)."""
        return all(v.passed is not False for v in self.verdicts)

    def worst(self, count: int = WORST) -> list[Comparison]:
        bad = [
            c for c in self.comparisons if c.checks.failed or (c.similarity is not None and c.similarity < 1)
        ]
        return sorted(bad, key=badness)[:count]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "title": self.title,
            "recording": self.recording,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "created": self.created,
            "passed": self.passed,
            "metrics": self.metrics,
            "checks": self.checks,
            "groups": self.groups,
            "thresholds": [v.to_dict() for v in self.verdicts],
            "worst": [c.id for c in self.worst()],
            "requests": [c.to_dict() for c in self.comparisons],
        }

    def write_json(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
        return path

    def write(self, path: Path) -> tuple[Path, Path]:
        """The HTML page and the JSON beside it (same name; ``path`` may name either)."""
        from lumbung.proof.report_html import render

        html_path, json_path = path.with_suffix(".html"), path.with_suffix(".json")
        self.write_json(json_path)
        html_path.write_text(render(self), encoding="utf-8")
        return html_path, json_path
