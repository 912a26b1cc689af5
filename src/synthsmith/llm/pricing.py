"""What a call costs: a price override from params, else litellm's price map (live runs only)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from synthsmith.contract.params import LLMParams
from synthsmith.llm.answers import count_tokens
from synthsmith.llm.transport import load_litellm


@dataclass(frozen=True)
class Price:
    input_usd_per_token: float
    output_usd_per_token: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * self.input_usd_per_token + completion_tokens * self.output_usd_per_token


def price(params: LLMParams, model: str, live: bool) -> Price:
    """The override when both prices are set; otherwise litellm's map in live runs (importing
    litellm costs seconds, so replay uses overrides only) and 0 for a model nobody prices."""
    return known_price(params, model, live) or Price(0.0, 0.0)


def known_price(params: LLMParams, model: str, live: bool) -> Price | None:
    """None for a model nobody prices: its calls count as $0, and the report lists it once."""
    override = params.model(model)
    if override.input_usd_per_mtok is not None and override.output_usd_per_mtok is not None:
        return Price(override.input_usd_per_mtok / 1e6, override.output_usd_per_mtok / 1e6)
    return _litellm_price(model) if live else None


@cache
def _litellm_price(model: str) -> Price | None:
    litellm = load_litellm()
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(model=model, prompt_tokens=1, completion_tokens=1)
    except Exception:  # noqa: BLE001 - litellm raises a bare Exception for a model it does not price
        return None
    return Price(float(prompt_cost), float(completion_cost))


def estimate_tokens(messages: list[dict]) -> int:
    """Tokens of the prompt, estimated before the call (rate limits and the budget need it first)."""
    return sum(count_tokens(str(m.get("content") or m.get("response") or "")) for m in messages)
