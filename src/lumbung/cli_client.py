"""How CLI commands that inspect a running server (`lumbung ps`, `lumbung status`) reach it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import httpx

from lumbung.errors import LumbungError
from lumbung.settings import load_settings


def get_json(
    config: Path | None,
    url: str | None,
    api_key: str | None,
    path: str,
    *,
    params: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[str, Any]:
    """(server URL, JSON body) of ``GET path`` on the server at ``url``, else at the configured host and
    port; failures as click errors that name the server."""
    if url is None:
        try:
            settings, _ = load_settings(config)
        except LumbungError as exc:
            raise click.ClickException(str(exc)) from exc
        url = f"http://{settings.host}:{settings.port}"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url.rstrip("/") + path, params=params, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from exc
    if response.status_code != 200:
        raise click.ClickException(f"{url} answered {response.status_code}: {response.text[:300]}")
    return url, response.json()
