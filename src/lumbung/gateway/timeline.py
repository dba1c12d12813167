"""The failover timeline: which provider failed, when, where its traffic went, and for how long.

``/metrics`` counts failovers (``Gateway.failovers``); an operator watching a provider go dark needs
the story instead (the dashboard's overview, ``GET /ui/api/overview``). One ``Outage`` per route and
failed provider: it opens when a request moves away from the provider, counts the requests moved while
it lasts, and ends when that provider answers again. Bounded: the oldest outages are forgotten first.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lumbung.clock import Clock

KEEP = 200  # outages remembered; a dashboard shows the recent ones


@dataclass(eq=False)
class Outage:
    route: str
    provider: str  # the provider that failed
    reason: str
    began: float  # on the gateway's clock
    began_wall: float  # Unix time, for people
    to: str | None  # where the traffic went (provider/model); None: nowhere answered
    moved: int = 1  # requests moved away while it lasted
    ended: float | None = None

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "route": self.route,
            "provider": self.provider,
            "reason": self.reason,
            "at": round(self.began_wall, 3),
            "to": self.to,
            "moved": self.moved,
            "ongoing": self.ended is None,
            "lasted_s": round((self.ended if self.ended is not None else now) - self.began, 1),
        }


class Timeline:
    def __init__(self, clock: Clock, wall: Callable[[], float] = time.time, keep: int = KEEP) -> None:
        self.clock = clock
        self.wall = wall
        self.outages: deque[Outage] = deque(maxlen=keep)
        self.serving: dict[str, tuple[str, float]] = {}  # route -> (target that answered last, when: wall)

    def _open(self, route: str, provider: str) -> Outage | None:
        for outage in reversed(self.outages):
            if outage.ended is None and outage.route == route and outage.provider == provider:
                return outage
        return None

    def moved(self, route: str, failed: list[tuple[str, str]], to: str | None) -> None:
        """A request on ``route`` left each ``(provider, reason)`` in ``failed`` and was answered by
        ``to`` (None: by no target)."""
        for provider, reason in dict(failed).items():  # a provider tried twice counts once
            outage = self._open(route, provider)
            if outage is None:
                self.outages.append(Outage(route, provider, reason, self.clock(), self.wall(), to))
            else:
                outage.moved += 1
                outage.reason = reason
                outage.to = to or outage.to

    def answered(self, route: str, provider: str, target: str) -> None:
        """``target`` (of ``provider``) answered a request on ``route``: the provider's outages end."""
        self.serving[route] = (target, self.wall())
        now = None
        for outage in self.outages:
            if outage.ended is None and outage.provider == provider:
                now = self.clock() if now is None else now
                outage.ended = now

    def snapshot(self) -> list[dict[str, Any]]:
        """Newest first."""
        now = self.clock()
        return [o.snapshot(now) for o in reversed(self.outages)]
