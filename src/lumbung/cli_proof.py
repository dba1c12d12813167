"""``lumbung replay`` and ``lumbung shadow report``: recorded traffic compared on a candidate, and the
report that gates the switch (docs/migration.md)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import click
import httpx

from lumbung.errors import LumbungError, ReplayError
from lumbung.proof.compare import Checks
from lumbung.proof.exchange import Exchange, read_exchanges, recording_path
from lumbung.proof.pricing import Pricer, pricer
from lumbung.proof.replay import Target, compare_all, embedder, replay, select, shadow_pairs
from lumbung.proof.report import Report, metric_names
from lumbung.proof.thresholds import Threshold
from lumbung.proof.thresholds import load as load_thresholds
from lumbung.settings import Settings, load_settings

EMBEDDING_MODEL = "all-minilm:l6-v2"
REPORTS_DIR = "reports"  # under the data directory, when --report is not given


def _settings(config: Path | None) -> Settings:
    try:
        settings, _ = load_settings(config)
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings


def recording_file(settings: Settings, recording: str) -> Path:
    """A recording's name (HOME/recordings/NAME.jsonl) or a path to a JSONL file."""
    path = Path(recording).expanduser()
    if path.is_file():
        return path
    named = recording_path(settings.home, recording)
    if named.is_file():
        return named
    raise ReplayError(f"no recording {recording!r}: neither a file nor {named}")


def read_recording(path: Path) -> list[Exchange]:
    try:
        return list(read_exchanges(path))
    except (OSError, ValueError) as exc:
        raise ReplayError(f"cannot read recording {path}: {exc}") from exc


def report_path(settings: Settings, given: Path | None, name: str) -> Path:
    if given is not None:
        return given
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return settings.home / REPORTS_DIR / f"{name}-{stamp}.html"


def summary(report: Report) -> list[str]:
    m = report.metrics
    lines = [f"{report.title}: {m['requests']:.0f} requests, {m['errors']:.0f} failed"]
    for name in Checks.names():
        rate = report.checks[name]
        if rate["applicable"]:
            lines.append(f"  {name:22} {rate['rate']:7.1%}  ({rate['passed']}/{rate['applicable']})")
    for name in (
        "median_similarity", "mean_rouge_l", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms",
        "cost", "baseline_cost",
    ):  # fmt: skip
        if m.get(name) is not None:
            lines.append(f"  {name:22} {m[name]:.3f}")
    for verdict in report.verdicts:
        t = verdict.threshold
        state = {True: "pass", False: "FAIL", None: "not measured"}[verdict.passed]
        actual = "-" if verdict.actual is None else f"{verdict.actual:.4g}"
        lines.append(f"  threshold {t.metric} {t.op} {t.value:g}: {actual} {state}")
    return lines


def finish(report: Report, path: Path) -> None:
    html, data = report.write(path)
    for line in summary(report):
        click.echo(line)
    click.echo(f"report: {html} (every number: {data})")
    if not report.passed:
        raise SystemExit(1)


def client(settings: Settings, url: str | None, timeout: float) -> httpx.AsyncClient:
    base = url or f"http://{settings.host}:{settings.port}"
    return httpx.AsyncClient(base_url=base.rstrip("/"), timeout=httpx.Timeout(timeout, connect=10))


common: list[Any] = [
    click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="YAML config file (default: $LUMBUNG_CONFIG).",
    ),
    click.option(
        "--url", default=None, help="The lumbung server to go through (default: configured host/port)."
    ),
    click.option(
        "--api-key", envvar="LUMBUNG_API_KEY", default=None, help="API key (default: $LUMBUNG_API_KEY)."
    ),
    click.option(
        "--embedding-model",
        default=EMBEDDING_MODEL,
        show_default=True,
        help="Embedding model on that server for text similarity ('none': no similarity).",
    ),
    click.option(
        "--thresholds",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="YAML: metric -> condition; exit 1 when one fails.",
    ),
    click.option(
        "--report",
        "report_to",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="The report's HTML file; the JSON goes beside it (default: HOME/reports/NAME-TIME.html).",
    ),
]


def with_common(f: Any) -> Any:
    for option in reversed(common):
        f = option(f)
    return f


async def reachable(http: httpx.AsyncClient) -> None:
    """One clear error when no server answers, rather than every request failing the same way."""
    try:
        await http.get("/health")
    except httpx.HTTPError as exc:
        raise ReplayError(
            f"cannot reach the lumbung server at {http.base_url}: {exc} (start `lumbung serve`, or pass --url)"
        ) from exc


async def replay_report(
    http: httpx.AsyncClient,
    path: Path,
    exchanges: list[Exchange],
    candidate: str,
    baseline: str,
    api_key: str | None,
    embedding_model: str,
    *,
    concurrency: int = 4,
    seed: int | None = None,
    thresholds: list[Threshold] | None = None,
    price: Pricer | None = None,
) -> Report:
    """The replay of ``exchanges`` through the server behind ``http``, as its report."""
    await reachable(http)
    comparisons = await replay(
        exchanges,
        Target(http, candidate, api_key),
        baseline=None if baseline == "recorded" else Target(http, baseline, api_key),
        embed=None if embedding_model == "none" else embedder(http, embedding_model, api_key),
        concurrency=concurrency,
        seed=seed,
        price=price,
    )
    title = f"replay of {path.stem} on {candidate}"
    return Report(title, str(path), candidate, baseline, time.time(), comparisons, thresholds or [])


@click.command("replay")
@click.argument("recording")
@click.option("--against", "candidate", required=True, help="Route or model to replay on (the candidate).")
@click.option(
    "--baseline",
    default="recorded",
    show_default=True,
    help="'recorded' (the recorded answers) or a route or model asked the same way.",
)
@click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Replay at most N requests.")
@click.option(
    "--seed", type=int, default=None, help="Sample --limit requests with this seed; sent as `seed`."
)
@click.option("--timeout", type=float, default=300, show_default=True, help="Seconds per request.")
@with_common
def replay_command(
    recording: str,
    candidate: str,
    baseline: str,
    concurrency: int,
    limit: int | None,
    seed: int | None,
    timeout: float,
    config: Path | None,
    url: str | None,
    api_key: str | None,
    embedding_model: str,
    thresholds: Path | None,
    report_to: Path | None,
) -> None:
    """Replay RECORDING (a recording's name or a JSONL file) against a route or model through a
    lumbung server, compare with the baseline and write the report."""
    settings = _settings(config)
    try:
        path = recording_file(settings, recording)
        limits = load_thresholds(thresholds, metric_names()) if thresholds else []
        exchanges = select(read_recording(path), limit, seed)

        async def run() -> Report:
            async with client(settings, url, timeout) as http:
                return await replay_report(
                    http, path, exchanges, candidate, baseline, api_key, embedding_model,
                    concurrency=concurrency, seed=seed, thresholds=limits,
                    price=pricer(settings.prices, settings.routes, candidate, baseline),
                )  # fmt: skip

        report = asyncio.run(run())
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc
    finish(report, report_path(settings, report_to, f"replay-{path.stem}"))


@click.group("shadow")
def shadow() -> None:
    """Shadow traffic: live requests mirrored to a candidate."""


@shadow.command("report")
@click.argument("route")
@with_common
def shadow_report(
    route: str,
    config: Path | None,
    url: str | None,
    api_key: str | None,
    embedding_model: str,
    thresholds: Path | None,
    report_to: Path | None,
) -> None:
    """The replay report from ROUTE's shadow recording (shadow-ROUTE): the live answers as the
    baseline, the candidate's beside them."""
    settings = _settings(config)
    try:
        path = recording_file(settings, f"shadow-{route}")
        limits = load_thresholds(thresholds, metric_names()) if thresholds else []
        exchanges = read_recording(path)
        pairs = shadow_pairs(exchanges)
        if not pairs:
            raise ReplayError(f"{path} holds no pair of shadow-live and shadow-candidate answers yet")
        # the shadow's target, as the candidate's exchanges name it
        candidate = next(
            (e.route for e in exchanges if e.role == "shadow-candidate" and e.route), f"shadow of {route}"
        )

        async def run() -> Report:
            async with client(settings, url, 60) as http:
                embed = None if embedding_model == "none" else embedder(http, embedding_model, api_key)
                price = pricer(settings.prices, settings.routes, str(candidate), "recorded")
                comparisons = await compare_all(pairs, embed, price)
            return Report(
                f"shadow report of {route}", str(path), str(candidate), "shadow-live", time.time(),
                comparisons, limits,
            )  # fmt: skip

        report = asyncio.run(run())
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc
    finish(report, report_path(settings, report_to, f"shadow-{route}"))
