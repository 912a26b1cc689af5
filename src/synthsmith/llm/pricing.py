"""What a call costs: a price override from params, else litellm's price map (live runs only)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cache

from synthsmith.contract.params import LLMParams
from synthsmith.llm.answers import count_tokens

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Price:
    input_usd_per_token: float
    output_usd_per_token: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * self.input_usd_per_token + completion_tokens * self.output_usd_per_token


def price(params: LLMParams, model: str, live: bool) -> Price:
    """The override when both prices are set; otherwise litellm's map in live runs (importing
    litellm costs seconds, so replay uses overrides only) and 0 for a model nobody prices."""
    override = params.model(model)
    if override.input_usd_per_mtok is not None and override.output_usd_per_mtok is not None:
        return Price(override.input_usd_per_mtok / 1e6, override.output_usd_per_mtok / 1e6)
    return _litellm_price(model) if live else Price(0.0, 0.0)


@cache
def _litellm_price(model: str) -> Price:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    try:
        prompt_cost, completion_cost = litellm.cost_per_token(model=model, prompt_tokens=1, completion_tokens=1)
    except Exception:  # noqa: BLE001 - litellm raises a bare Exception for a model it does not price
        log.warning("no price for model %s (set llm.models.%s.input_usd_per_mtok / output_usd_per_mtok); "
                    "its calls count as $0", model, model)
        return Price(0.0, 0.0)
    return Price(float(prompt_cost), float(completion_cost))


def estimate_tokens(messages: list[dict]) -> int:
    """Tokens of the prompt, estimated before the call (rate limits and the budget need it first)."""
    return sum(count_tokens(str(m.get("content") or m.get("response") or "")) for m in messages)
