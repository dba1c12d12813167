"""Prices: what a request cost on the target that served it, and what it would have cost on the API
the traffic left (a route's reference price), so the usage ledger shows spend and savings.

Token prices are per million tokens, in ``currency``. A local model has no bill per token; its own
cost is the machine's (power and hardware) per hour, shared by the sequences it runs at once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(default=0.0, ge=0, description="Per million prompt tokens.")
    output: float = Field(default=0.0, ge=0, description="Per million completion tokens.")
    cached_input: float | None = Field(
        default=None,
        ge=0,
        description="Per million prompt tokens read from a prefix cache (default: `input`).",
    )
    per_hour: float | None = Field(
        default=None,
        ge=0,
        description="A local model's own cost per hour (power and hardware): a request costs its share "
        "of the hour it kept the model busy (its seconds / 3600 / `parallel`).",
    )

    def tokens(self, prompt: int, completion: int, cached: int) -> float:
        cached_price = self.input if self.cached_input is None else self.cached_input
        fresh = max(0, prompt - cached)
        return (fresh * self.input + cached * cached_price + completion * self.output) / 1e6


class Prices(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: str = Field(default="USD", description="The currency of every price and budget.")
    targets: dict[str, Price] = Field(
        default_factory=dict,
        description="Price per target: `provider/model`, or `provider/*` for all of a provider's models.",
    )
    routes: dict[str, Price] = Field(
        default_factory=dict,
        description="Reference price per route: what its traffic would have cost on the API it left "
        "(savings = reference - spend).",
    )

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: dict[str, Price]) -> dict[str, Price]:
        for name in value:
            provider, _, model = name.partition("/")
            if not provider or not model:
                raise ValueError(f"{name!r} must look like `provider/model` or `provider/*`")
        return value

    def of(self, target: str) -> Price | None:
        """The price of ``target`` (``provider/model``): its own, else its provider's ``provider/*``."""
        found = self.targets.get(target)
        if found is None:
            found = self.targets.get(target.partition("/")[0] + "/*")
        return found


def check_prices(prices: Prices, providers: set[str], routes: set[str]) -> None:
    """Every priced target names a configured provider, every reference price a route (or a local
    model's own name): a misspelt one would leave spend or savings silently empty."""
    from lumbung.config.routes import GatewayConfigError

    for name in prices.targets:
        if name.partition("/")[0] not in providers:
            raise GatewayConfigError(
                f"prices: {name!r} names no configured provider", ("prices", "targets", name)
            )
    for name in prices.routes:
        if name not in routes:
            raise GatewayConfigError(f"prices: {name!r} is not a route", ("prices", "routes", name))
