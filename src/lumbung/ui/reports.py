"""The migration reports the dashboard lists: ``lumbung replay`` and ``lumbung shadow report`` write
theirs under ``HOME/reports`` by default (cli_proof.py's ``REPORTS_DIR``), a JSON file each, with an
HTML page beside it when one was drawn. Only names found in that folder are ever opened."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lumbung.errors import InvalidRequest, NotFound

FOLDER = "reports"  # under the data directory: cli_proof.py REPORTS_DIR
LISTED = 200  # newest reports listed
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def folder(home: Path) -> Path:
    return home / FOLDER


def _summary(path: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": path.stem, "html": path.with_suffix(".html").is_file()}
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return entry | {"error": f"unreadable: {exc}"}
    if not isinstance(body, dict):
        return entry | {"error": "not a report"}
    return entry | {
        "title": body.get("title"),
        "kind": "shadow" if body.get("baseline") == "shadow-live" else "replay",
        "recording": body.get("recording"),
        "candidate": body.get("candidate"),
        "baseline": body.get("baseline"),
        "created": body.get("created"),
        "passed": body.get("passed"),
        "requests": len(body.get("requests") or []),
    }


def listing(home: Path) -> list[dict[str, Any]]:
    """Newest first."""
    found = sorted(folder(home).glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [_summary(p) for p in found[:LISTED]]


def path_of(home: Path, name: str, suffix: str) -> Path:
    """A report's file by its name, never outside the folder."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise InvalidRequest(f"not a report name: {name!r}", param="name")
    path = folder(home) / f"{name}{suffix}"
    if not path.is_file():
        raise NotFound(f"no report {name!r} in {folder(home)}", param="name")
    return path
