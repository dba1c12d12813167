"""What each replayed answer cost, from the price table (``prices:`` in the config, the same one the
usage ledger bills with; config/prices.py). Token prices only: a local model's per-hour cost depends
on what else it ran at the time, which a replay does not know, so it counts as no price."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lumbung.config.prices import Price, Prices
from lumbung.config.routes import RouteConfig
from lumbung.proof.answer import Answer
from lumbung.proof.exchange import Exchange

Pricer = Callable[[Exchange, Answer, Answer], None]


def price_of(prices: Prices, routes: Sequence[RouteConfig], name: str) -> Price | None:
    """A candidate's price: a target's own (``provider/model``), a local model's (``local/NAME``), or
    for a route its first target's (where the replay's requests go while it is healthy)."""
    if "/" in name and (found := prices.of(name)) is not None:
        return found
    if (found := prices.of(f"local/{name}")) is not None:
        return found
    for route in routes:
        if name == route.name or name in route.aliases:
            return prices.of(route.tiers[0][0].target) if route.tiers and route.tiers[0] else None
    return None


def _cost(price: Price | None, answer: Answer) -> float | None:
    if price is None or answer.failed or answer.prompt_tokens is None or answer.completion_tokens is None:
        return None
    if price.input == 0 and price.output == 0 and price.per_hour is not None:
        return None  # priced by the hour only
    return price.tokens(answer.prompt_tokens, answer.completion_tokens, 0)


def pricer(prices: Prices, routes: Sequence[RouteConfig], candidate: str, baseline: str) -> Pricer:
    """Sets ``cost`` on each pair of answers. A recorded baseline costs what the target that served it
    charges (``provider`` of the exchange), else the route's reference price (the API it left)."""
    cand_price = price_of(prices, routes, candidate)
    base_price = None if baseline == "recorded" else price_of(prices, routes, baseline)

    def apply(exchange: Exchange, base: Answer, cand: Answer) -> None:
        cand.cost = _cost(cand_price, cand)
        price = base_price
        if baseline == "recorded":
            price = prices.of(exchange.provider) if exchange.provider and "/" in exchange.provider else None
            if price is None and exchange.route:
                price = prices.routes.get(exchange.route)
        base.cost = _cost(price, base)

    return apply
