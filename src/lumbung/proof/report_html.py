"""The report as one self-contained HTML page: verdict, thresholds, pass rates by check and by group,
latency and similarity distributions, the worst cases side by side, every request. Inline CSS and
SVG only, so it opens from a CI artefact or an e-mail with no network."""

from __future__ import annotations

import time
from html import escape
from typing import TYPE_CHECKING, Any

from lumbung.proof.answer import Answer
from lumbung.proof.compare import Checks, Comparison
from lumbung.proof.svg import bars, histogram

if TYPE_CHECKING:
    from lumbung.proof.report import Report

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:22px} h2{font-size:17px;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top} th{background:#f4f4f4} .num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#2a7a45;font-weight:600} .fail{color:#b03a48;font-weight:600} .none{color:#888}
.verdict{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:700}
.verdict.pass{background:#3a9a5b;color:#fff} .verdict.fail{background:#b03a48;color:#fff}
.case{display:grid;grid-template-columns:1fr 1fr;gap:8px;margin:1em 0 2em}
.case pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:8px;margin:0;max-height:320px;
overflow:auto} .case h3{grid-column:1/3;font-size:14px;margin:0} .prompt{grid-column:1/3}
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _answer_text(answer: Answer) -> str:
    if answer.error:
        return f"[error] {answer.error}"
    calls = "\n".join(f"{c.name}({c.arguments})" for c in answer.calls)
    return "\n".join(part for part in (answer.text, calls) if part) or "[empty]"


def _state(value: bool | None) -> str:
    return {True: '<span class="pass">pass</span>', False: '<span class="fail">FAIL</span>'}.get(
        value,  # type: ignore[arg-type]
        '<span class="none">not measured</span>',
    )


def _thresholds(report: Report) -> str:
    if not report.verdicts:
        return "<p>No thresholds given (<code>--thresholds FILE</code>).</p>"
    rows = "".join(
        f"<tr><td>{escape(v.threshold.metric)}</td><td>{escape(v.threshold.op)} {v.threshold.value:g}</td>"
        f'<td class="num">{_fmt(v.actual)}</td><td>{_state(v.passed)}</td></tr>'
        for v in report.verdicts
    )
    return f"<table><tr><th>metric</th><th>condition</th><th>actual</th><th></th></tr>{rows}</table>"


def _check_bars(report: Report) -> str:
    items = [
        (name, rate["rate"], f"{rate['passed']}/{rate['applicable']}")
        for name, rate in report.checks.items()
        if rate["applicable"]
    ]
    return bars(items, label="pass rate by check") if items else "<p>No check applied.</p>"


def _group_section(report: Report) -> str:
    items = []
    for group, members in _groups(report.comparisons).items():
        clean = sum(1 for c in members if not c.checks.failed)
        items.append((group, clean / len(members), f"{clean}/{len(members)} clean"))
    chart = bars(items, label="requests with every check passed, by group") if items else ""
    names = [n for n in Checks.names() if any(g[n]["applicable"] for g in report.groups.values())]
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><td>{escape(group)}</td>"
        + "".join(f'<td class="num">{_fmt(rates[n]["rate"])}</td>' for n in names)
        + "</tr>"
        for group, rates in report.groups.items()
    )
    return f"{chart}<table><tr><th>group</th>{head}</tr>{rows}</table>"


def _groups(comparisons: list[Comparison]) -> dict[str, list[Comparison]]:
    out: dict[str, list[Comparison]] = {}
    for c in comparisons:
        out.setdefault(c.group, []).append(c)
    return dict(sorted(out.items()))


def _latency(report: Report, what: str) -> str:
    series = [
        (who, [v for c in report.comparisons if (v := getattr(getattr(c, who), f"{what}_ms")) is not None])
        for who in ("baseline", "candidate")
    ]
    values = [v for _, vs in series for v in vs]
    if not values:
        return f"<p>No {what} measured.</p>"
    return histogram(
        series, low=0.0, high=max(values) * 1.05 or 1.0, bins=20, label=f"{what} distribution", unit="ms"
    )


def _similarity(report: Report) -> str:
    sims = [c.similarity for c in report.comparisons if c.similarity is not None]
    if not sims:
        return "<p>No similarity measured (no text answers, or <code>--embedding-model none</code>).</p>"
    rouge = [c.rouge_l for c in report.comparisons if c.rouge_l is not None]
    return histogram(
        [("cosine similarity", sims), ("ROUGE-L", rouge)],
        low=0.0,
        high=1.0,
        bins=20,
        label="similarity histogram",
        unit="score",
    )


def _worst(report: Report) -> str:
    worst = report.worst()
    if not worst:
        return "<p>No request differs from the baseline.</p>"
    out = []
    for c in worst:
        failed = ", ".join(c.checks.failed) or "none"
        out.append(
            f'<div class="case"><h3>{escape(c.id)} ({escape(c.group)}): failed {escape(failed)}; '
            f"similarity {_fmt(c.similarity)}, ROUGE-L {_fmt(c.rouge_l)}</h3>"
            f'<div class="prompt"><b>prompt</b><pre>{escape(c.prompt[:2000])}</pre></div>'
            f"<div><b>baseline</b><pre>{escape(_answer_text(c.baseline))}</pre></div>"
            f"<div><b>candidate</b><pre>{escape(_answer_text(c.candidate))}</pre></div></div>"
        )
    return "".join(out)


def _requests(report: Report) -> str:
    rows = "".join(
        f"<tr><td>{escape(c.id)}</td><td>{escape(c.group)}</td><td>{escape(', '.join(c.checks.failed))}</td>"
        f'<td class="num">{_fmt(c.similarity)}</td><td class="num">{_fmt(c.rouge_l)}</td>'
        f'<td class="num">{_fmt(c.candidate.latency_ms)}</td><td class="num">{_fmt(c.candidate.ttft_ms)}</td>'
        f"<td>{escape(c.candidate.finish_reason or '-')}</td></tr>"
        for c in report.comparisons
    )
    return (
        "<table><tr><th>id</th><th>group</th><th>failed checks</th><th>similarity</th><th>ROUGE-L</th>"
        f"<th>latency ms</th><th>TTFT ms</th><th>finish</th></tr>{rows}</table>"
    )


def _metrics(report: Report) -> str:
    rows = "".join(
        f'<tr><td>{escape(k)}</td><td class="num">{_fmt(v)}</td></tr>' for k, v in report.metrics.items()
    )
    return f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>"


def render(report: Report) -> str:
    verdict = "pass" if report.passed else "fail"
    created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.created))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(report.title)}</title>
<style>{STYLE}</style></head><body>
<h1>{escape(report.title)} <span class="verdict {verdict}">{verdict.upper()}</span></h1>
<p>candidate <b>{escape(report.candidate)}</b>, baseline <b>{escape(report.baseline)}</b>,
recording <code>{escape(report.recording)}</code>, {len(report.comparisons)} requests, {created}.</p>
<h2>Thresholds</h2>{_thresholds(report)}
<h2>Pass rate by check</h2>{_check_bars(report)}
<h2>By request group</h2>{_group_section(report)}
<h2>Latency</h2>{_latency(report, "latency")}
<h2>Time to first token</h2>{_latency(report, "ttft")}
<h2>Similarity to the baseline</h2>{_similarity(report)}
<h2>Worst cases</h2>{_worst(report)}
<h2>Every number</h2>{_metrics(report)}
<h2>Every request</h2>{_requests(report)}
</body></html>
"""
