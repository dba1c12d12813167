"""One request's comparison (every check, candidate against baseline) and the aggregate over a replay."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from lumbung.proof import checks
from lumbung.proof.answer import Answer

# A candidate answer at least this close to the baseline's (cosine) counts as similar.
SIMILAR = 0.8


@dataclass(slots=True)
class Checks:
    """Each check: True passed, False failed, None does not apply to this request."""

    answered: bool | None = None  # the candidate gave an answer (no error)
    json_validity: bool | None = None
    schema_validity: bool | None = None
    tool_call_validity: bool | None = None
    tool_call_match: bool | None = None
    exact_match: bool | None = None
    similar: bool | None = None  # cosine similarity >= SIMILAR
    finish_reason_match: bool | None = None
    non_empty: bool | None = None
    no_refusal: bool | None = None  # no refusal where the baseline answered

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def items(self) -> list[tuple[str, bool | None]]:
        return [(name, getattr(self, name)) for name in self.names()]

    @property
    def failed(self) -> list[str]:
        return [name for name, value in self.items() if value is False]


@dataclass(slots=True)
class Comparison:
    id: str
    group: str
    prompt: str  # the last user message, for the report
    baseline: Answer
    candidate: Answer
    checks: Checks
    similarity: float | None = None
    rouge_l: float | None = None
    candidate_refused: bool = False
    baseline_refused: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["failed"] = self.checks.failed
        return out


def last_user_text(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def compare(
    id: str,
    group: str,
    request: dict[str, Any],
    baseline: Answer,
    candidate: Answer,
    similarity: float | None,
) -> Comparison:
    """Every check of one request. ``similarity`` is the cosine of the two texts' embeddings (1.0 for
    identical texts; None where either has no text or no embedding model was asked)."""
    c = Checks(answered=not candidate.failed)
    cand_refused = not candidate.failed and checks.is_refusal(candidate.text)
    base_refused = not baseline.failed and checks.is_refusal(baseline.text)
    rouge = None
    if not candidate.failed:
        c.json_validity, c.schema_validity = checks.json_checks(request, candidate)
        c.tool_call_validity = checks.tool_validity(request, baseline, candidate)
        c.tool_call_match = checks.tool_match(baseline, candidate)
        c.non_empty = not checks.is_empty(candidate)
        if not baseline.failed and not base_refused:
            c.no_refusal = not cand_refused
        if baseline.finish_reason and candidate.finish_reason:
            c.finish_reason_match = baseline.finish_reason == candidate.finish_reason
        if baseline.text.strip() and not baseline.calls:
            c.exact_match = baseline.text.strip() == candidate.text.strip()
            rouge = checks.rouge_l(baseline.text, candidate.text)
            if similarity is not None:
                c.similar = similarity >= SIMILAR
    else:
        # A failed request fails every check that would have applied to an answer.
        c.json_validity = c.schema_validity = False if checks.response_schema(request) else None
        c.tool_call_validity = False if checks.tool_schemas(request) and baseline.calls else None
        c.tool_call_match = False if baseline.calls else None
    return Comparison(
        id=id,
        group=group,
        prompt=last_user_text(request),
        baseline=baseline,
        candidate=candidate,
        checks=c,
        similarity=similarity if (baseline.text.strip() and not baseline.calls) else None,
        rouge_l=rouge,
        candidate_refused=cand_refused,
        baseline_refused=base_refused,
    )


def percentile(values: Iterable[float | None], q: float) -> float | None:
    data = [v for v in values if v is not None]
    return float(np.percentile(data, q)) if data else None


def mean(values: Iterable[float | None]) -> float | None:
    data = [v for v in values if v is not None]
    return float(sum(data) / len(data)) if data else None


def pass_rates(comparisons: list[Comparison]) -> dict[str, dict[str, Any]]:
    """check -> {passed, applicable, rate} (rate None where no request applied)."""
    out: dict[str, dict[str, Any]] = {}
    for name in Checks.names():
        results = [getattr(c.checks, name) for c in comparisons]
        applicable = [r for r in results if r is not None]
        passed = sum(1 for r in applicable if r)
        rate = passed / len(applicable) if applicable else None
        out[name] = {"passed": passed, "applicable": len(applicable), "rate": rate}
    return out


def _tokens(answers: list[Answer], attr: str) -> int | None:
    values = [getattr(a, attr) for a in answers if getattr(a, attr) is not None]
    return int(sum(values)) if values else None


def metrics(comparisons: list[Comparison]) -> dict[str, float | None]:
    """Every number of the replay under one flat name (what thresholds refer to)."""
    rates = pass_rates(comparisons)
    cand = [c.candidate for c in comparisons]
    base = [c.baseline for c in comparisons]
    sims = [c.similarity for c in comparisons]
    out: dict[str, float | None] = {
        "requests": len(comparisons),
        "errors": sum(1 for a in cand if a.failed),
        "baseline_errors": sum(1 for a in base if a.failed),
        **{name: rate["rate"] for name, rate in rates.items()},
        "median_similarity": percentile(sims, 50),
        "mean_similarity": mean(sims),
        "p10_similarity": percentile(sims, 10),
        "mean_rouge_l": mean(c.rouge_l for c in comparisons),
        "empty_answers": sum(1 for a in cand if checks.is_empty(a)),
        "baseline_empty_answers": sum(1 for a in base if checks.is_empty(a)),
        "refusals": sum(1 for c in comparisons if c.candidate_refused),
        "baseline_refusals": sum(1 for c in comparisons if c.baseline_refused),
    }
    for who, answers in (("", cand), ("baseline_", base)):
        for what in ("latency", "ttft"):
            values = [getattr(a, f"{what}_ms") for a in answers]
            out[f"{who}{what}_p50_ms"] = percentile(values, 50)
            out[f"{who}{what}_p95_ms"] = percentile(values, 95)
        out[f"{who}prompt_tokens"] = _tokens(answers, "prompt_tokens")
        out[f"{who}completion_tokens"] = _tokens(answers, "completion_tokens")
        costs = [a.cost for a in answers if a.cost is not None]
        out[f"{who}cost"] = sum(costs) if costs else None
    return out


def by_group(comparisons: list[Comparison]) -> dict[str, dict[str, dict[str, Any]]]:
    groups: dict[str, list[Comparison]] = {}
    for c in comparisons:
        groups.setdefault(c.group, []).append(c)
    return {name: pass_rates(members) for name, members in sorted(groups.items())}


def badness(c: Comparison) -> tuple[int, float]:
    """Sort key for the worst cases: most failed checks first, then least similar."""
    similarity = c.similarity if c.similarity is not None else (c.rouge_l if c.rouge_l is not None else 1.0)
    return (-len(c.checks.failed), similarity)
