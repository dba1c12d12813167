"""Virtual keys in the state database (state/db.py): each a name, a stable id, a ``KeyPolicy`` and
the sha256 digest of its secret; never the secret, which is shown once, when the key is made or
rotated.

A generation counter (one row) goes up in the same transaction as every change, so a server holding
keys in memory (accounts/virtual.py) learns that something changed with one cheap query, whichever
process or machine made the change (a clock-based "last changed" would miss changes from a machine
whose clock is behind).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, Integer, String, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from lumbung.accounts.keys import digest
from lumbung.accounts.policy import KeyPolicy, Period
from lumbung.errors import InvalidRequest, NotFound
from lumbung.state.db import Base, Database

SECRET_PREFIX = "lb-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@: -]{0,99}$")
_REGION = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_DURATION = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class VirtualKeyRow(Base):
    __tablename__ = "virtual_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))  # "lb-...wxyz": enough to tell keys apart in a list
    created: Mapped[float] = mapped_column(Float)  # unix seconds
    revoked: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires: Mapped[float | None] = mapped_column(Float, nullable=True)
    routes: Mapped[str] = mapped_column(Text, default="[]")  # JSON lists
    models: Mapped[str] = mapped_column(Text, default="[]")
    egress: Mapped[str] = mapped_column(Text, default="[]")
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_concurrent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    period: Mapped[str | None] = mapped_column(String(8), nullable=True)
    record: Mapped[float | None] = mapped_column(Float, nullable=True)


class KeyGenerationRow(Base):
    __tablename__ = "virtual_key_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """A stored key as everyone but its holder sees it: no secret, no digest."""

    policy: KeyPolicy
    hint: str
    created: datetime
    revoked: datetime | None = None

    @property
    def id(self) -> str:
        return self.policy.id

    @property
    def name(self) -> str:
        return self.policy.name

    def state(self, now: datetime) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.policy.expires is not None and self.policy.expires <= now:
            return "expired"
        return "active"

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        p = self.policy
        return {
            "id": p.id,
            "object": "virtual_key",
            "name": p.name,
            "hint": self.hint,
            "state": self.state(now or datetime.now(UTC)),
            "created": _iso(self.created),
            "revoked": _iso(self.revoked),
            "expires": _iso(p.expires),
            "routes": list(p.routes),
            "models": list(p.models),
            "egress": list(p.egress),
            "rpm": p.rpm,
            "tpm": p.tpm,
            "max_concurrent": p.max_concurrent,
            "budget": p.budget,
            "period": p.period,
            "record": p.record,
        }


@dataclass(frozen=True, slots=True)
class Stored:
    """A key with the digest of its secret: what the server's in-memory view holds."""

    key: VirtualKey
    digest: str


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _moment(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


def new_secret() -> str:
    """A new key: the prefix, then 256 random bits (43 URL-safe characters)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _hint(secret: str) -> str:
    return f"{SECRET_PREFIX}...{secret[-4:]}"


def parse_expires(text: str, now: datetime) -> datetime:
    """``30d``, ``12h``, ``90m``, ``2w`` from ``now``, or an ISO date or time (UTC when it names no
    zone); a 400 naming ``expires`` otherwise."""
    found = _DURATION.match(text.strip())
    if found:
        return now + timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidRequest(
            "expires: give a duration (30d, 12h, 90m, 2w) or an ISO date/time (2027-01-31, "
            "2027-01-31T12:00Z).",
            param="expires",
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _names(values: Sequence[str], what: str, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        value = value.strip()
        if not value or (pattern is not None and not pattern.match(value)):
            raise InvalidRequest(f"Invalid {what} {value!r}.", param=what)
        if value not in out:
            out.append(value)
    return tuple(out)


def checked_policy(policy: KeyPolicy, now: datetime) -> KeyPolicy:
    """``policy`` as stored, or a 400 naming the first field that cannot be honoured."""
    if not _NAME.match(policy.name):
        raise InvalidRequest(
            "A key's name is 1-100 characters: letters, digits and . _ @ : - or spaces, "
            "starting with a letter or digit.",
            param="name",
        )
    for field in ("rpm", "tpm", "max_concurrent"):
        value = getattr(policy, field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidRequest(f"{field} must be a whole number of at least 1.", param=field)
    if (policy.budget is None) != (policy.period is None):
        raise InvalidRequest("A budget needs a period (day or month), and a period a budget.", param="budget")
    if policy.budget is not None and not policy.budget > 0:
        raise InvalidRequest("budget must be more than 0.", param="budget")
    if policy.period is not None and policy.period not in ("day", "month"):
        raise InvalidRequest("period must be 'day' or 'month'.", param="period")
    if policy.record is not None and not 0 <= policy.record <= 1:
        raise InvalidRequest("record is a fraction of requests, from 0 to 1.", param="record")
    if policy.expires is not None:
        if policy.expires.tzinfo is None:
            raise InvalidRequest("expires needs a time zone (e.g. 2027-01-31T00:00:00Z).", param="expires")
        if policy.expires <= now:
            raise InvalidRequest("expires is in the past.", param="expires")
    return replace(
        policy,
        routes=_names(policy.routes, "routes"),
        models=_names(policy.models, "models"),
        egress=_names(policy.egress, "egress", _REGION),
    )


def _row_key(row: VirtualKeyRow) -> VirtualKey:
    period: Period | None = "day" if row.period == "day" else "month" if row.period == "month" else None
    policy = KeyPolicy(
        id=row.id,
        name=row.name,
        routes=tuple(json.loads(row.routes)),
        models=tuple(json.loads(row.models)),
        egress=tuple(json.loads(row.egress)),
        rpm=row.rpm,
        tpm=row.tpm,
        max_concurrent=row.max_concurrent,
        budget=row.budget,
        period=period,
        expires=_moment(row.expires),
        record=row.record,
    )
    created = _moment(row.created)
    assert created is not None
    return VirtualKey(policy=policy, hint=row.hint, created=created, revoked=_moment(row.revoked))


class KeyStore:
    """The virtual keys of one database. ``clock``: unix seconds (a test steps it)."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self._generation_made = False

    async def _ensure_generation(self) -> None:
        """The generation's one row, made once by whichever process gets there first."""
        if self._generation_made:
            return
        try:
            async with self.db.session() as session, session.begin():
                session.add(KeyGenerationRow(id=1, n=0))
        except IntegrityError:
            pass  # made already (by this database's first key, or by another process just now)
        self._generation_made = True

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def create(self, policy: KeyPolicy) -> tuple[VirtualKey, str]:
        """A new key with ``policy`` (its id is given here; ``policy.id`` is ignored): the key and its
        secret, which is not kept anywhere."""
        policy = checked_policy(replace(policy, id=f"key_{secrets.token_hex(10)}"), self.now())
        secret = new_secret()
        await self._ensure_generation()
        async with self.db.session() as session, session.begin():
            await _bump(session)  # first: the transaction takes the write lock before it reads
            clash = await session.execute(
                select(VirtualKeyRow.id).where(
                    VirtualKeyRow.name == policy.name, VirtualKeyRow.revoked.is_(None)
                )
            )
            if clash.first() is not None:
                raise InvalidRequest(
                    f"A key named {policy.name!r} exists already (revoke it first, or rotate it).",
                    param="name",
                    code="key_exists",
                )
            row = VirtualKeyRow(
                id=policy.id,
                name=policy.name,
                digest=digest(secret),
                hint=_hint(secret),
                created=self.clock(),
                revoked=None,
                expires=policy.expires.timestamp() if policy.expires is not None else None,
                routes=json.dumps(list(policy.routes)),
                models=json.dumps(list(policy.models)),
                egress=json.dumps(list(policy.egress)),
                rpm=policy.rpm,
                tpm=policy.tpm,
                max_concurrent=policy.max_concurrent,
                budget=policy.budget,
                period=policy.period,
                record=policy.record,
            )
            session.add(row)
        return _row_key(row), secret

    async def all(self) -> list[VirtualKey]:
        """Every key, revoked ones included, oldest first."""
        async with self.db.session() as session:
            rows = (await session.scalars(select(VirtualKeyRow).order_by(VirtualKeyRow.created))).all()
        return [_row_key(row) for row in rows]

    async def get(self, ref: str) -> VirtualKey:
        """A key by id, or by name (the key of that name not revoked, else the newest revoked one)."""
        async with self.db.session() as session:
            row = await _find(session, ref)
        return _row_key(row)

    async def revoke(self, ref: str) -> VirtualKey:
        """Revoke a key for good (its row stays, for the record and the ledger); revoking a revoked
        key changes nothing."""
        await self._ensure_generation()
        async with self.db.session() as session, session.begin():
            await _bump(session)
            row = await _find(session, ref)
            if row.revoked is None:
                row.revoked = self.clock()
        return _row_key(row)

    async def rotate(self, ref: str) -> tuple[VirtualKey, str]:
        """A new secret for a key (same id, name, scopes and limits; usage stays with it); the old
        secret stops working."""
        secret = new_secret()
        await self._ensure_generation()
        async with self.db.session() as session, session.begin():
            await _bump(session)
            row = await _find(session, ref)
            if row.revoked is not None:
                raise InvalidRequest(
                    f"Key {row.id} is revoked; create a new one.", param="key", code="key_revoked"
                )
            row.digest, row.hint = digest(secret), _hint(secret)
        return _row_key(row), secret

    async def generation(self) -> int:
        """A number that changes whenever any key does (made, revoked, rotated)."""
        async with self.db.session() as session:
            n = await session.scalar(select(KeyGenerationRow.n).where(KeyGenerationRow.id == 1))
        return n or 0

    async def snapshot(self) -> tuple[int, list[Stored]]:
        """The generation and every key with its digest, read together."""
        async with self.db.session() as session, session.begin():
            n = await session.scalar(select(KeyGenerationRow.n).where(KeyGenerationRow.id == 1))
            rows = (await session.scalars(select(VirtualKeyRow))).all()
        return n or 0, [Stored(_row_key(row), row.digest) for row in rows]


async def _find(session: AsyncSession, ref: str) -> VirtualKeyRow:
    row = await session.get(VirtualKeyRow, ref)
    if row is None:
        named = await session.scalars(
            select(VirtualKeyRow)
            .where(VirtualKeyRow.name == ref)
            .order_by(VirtualKeyRow.revoked.is_not(None), VirtualKeyRow.created.desc())
        )
        row = named.first()
    if row is None:
        raise NotFound(f"No key with id or name {ref!r}.", code="key_not_found")
    return row


async def _bump(session: AsyncSession) -> None:
    """Move the generation. Every write transaction here starts with it: on SQLite a transaction
    that reads first cannot write once another writer (the usage ledger) committed meanwhile; one
    that writes first waits for the lock (busy_timeout) instead."""
    await session.execute(
        update(KeyGenerationRow).where(KeyGenerationRow.id == 1).values(n=KeyGenerationRow.n + 1)
    )
