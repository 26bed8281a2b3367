"""Reading the two public price lists people already maintain into catalogue entries.

* LiteLLM's ``model_prices_and_context_window.json`` (https://github.com/BerriAI/litellm, file
  ``model_prices_and_context_window.json``): one object per model name with USD *per token*
  (``input_cost_per_token``, ``output_cost_per_token``, ``cache_read_input_token_cost``,
  ``cache_creation_input_token_cost``, ``output_cost_per_reasoning_token``), long-context tiers
  (``input_cost_per_token_above_200k_tokens`` ...), service tiers (``input_cost_per_token_flex``,
  ``..._priority``), ``input_cost_per_request`` and ``max_input_tokens``. Its ``sample_spec`` entry
  documents the fields and is skipped. Batch prices (``..._batches``) are not read here.
* OpenRouter's ``GET https://openrouter.ai/api/v1/models``: ``{"data": [{"id", "context_length",
  "pricing": {"prompt", "completion", "request", "input_cache_read", "input_cache_write",
  "internal_reasoning"}}]}``, USD per token as decimal strings; ``"-1"`` means the price varies (a
  router such as ``openrouter/auto``), so such a model is skipped.

Prices become USD per million tokens; each entry keeps ``source`` and ``as_of``. What a list does
not price (a zero cache-write price, an absent reasoning price) is left unset, so the catalogue's
defaults apply (``input``'s price, ``output``'s price).
"""

from __future__ import annotations

import re
from typing import Any

from hedge.config import Price

FORMATS = ("litellm", "openrouter")
_PER = 1_000_000
_ABOVE = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|"
    r"cache_creation_input_token_cost)_above_(\d+)(k?)_tokens$"
)
_TIER_FIELD = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cached_input",
    "cache_creation_input_token_cost": "cache_write_input",
}
_SERVICE_TIERS = ("flex", "priority")
_LITELLM_MODES = {None, "chat", "completion", "responses", "embedding"}

Entries = dict[str, tuple[Price, int | None]]
"""Model name -> (price, context window)."""


def _per_million(value: Any) -> float | None:
    """A per-token USD amount (number or decimal string) as USD per million tokens; None if absent
    or not a non-negative number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number < 0 or number != number or number == float("inf"):
        return None
    return round(number * _PER, 9)


def _positive(value: float | None) -> float | None:
    return value if value else None


def _window(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def litellm(data: Any, source: str, as_of: str) -> Entries:
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a LiteLLM price file is one JSON object of models")
    out: Entries = {}
    for name, spec in data.items():
        if name == "sample_spec" or not isinstance(spec, dict) or spec.get("mode") not in _LITELLM_MODES:
            continue
        inp = _per_million(spec.get("input_cost_per_token"))
        outp = _per_million(spec.get("output_cost_per_token"))
        if inp is None and outp is None:
            continue  # priced per image, per second, per character...: not a token price
        tiers: dict[int, dict[str, float]] = {}
        for key, value in spec.items():
            match = _ABOVE.match(key)
            amount = _per_million(value)
            if match and amount is not None:
                threshold = int(match.group(2)) * (1000 if match.group(3) else 1)
                tiers.setdefault(threshold, {})[_TIER_FIELD[match.group(1)]] = amount
        service: dict[str, dict[str, float]] = {}
        for tier in _SERVICE_TIERS:
            fields = {
                target: amount
                for key, target in _TIER_FIELD.items()
                if (amount := _per_million(spec.get(f"{key}_{tier}"))) is not None
            }
            if fields:
                service[tier] = fields
        fee = spec.get("input_cost_per_request")
        if isinstance(fee, bool) or not isinstance(fee, int | float) or not fee > 0:
            fee = 0.0
        price = Price.model_validate(
            {
                "input": inp or 0.0,
                "output": outp or 0.0,
                "cached_input": _per_million(spec.get("cache_read_input_token_cost")),
                "cache_write_input": _positive(_per_million(spec.get("cache_creation_input_token_cost"))),
                "reasoning": _positive(_per_million(spec.get("output_cost_per_reasoning_token"))),
                "per_request": fee,
                "tiers": [{"above_prompt_tokens": n, **f} for n, f in sorted(tiers.items())],
                "service_tiers": service,
                "source": source,
                "as_of": as_of,
            }
        )
        out[str(name)] = (price, _window(spec.get("max_input_tokens")) or _window(spec.get("max_tokens")))
    return out


def openrouter(data: Any, source: str, as_of: str) -> Entries:
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ValueError(f"{source}: an OpenRouter model list is an object with a 'data' array")
    out: Entries = {}
    for model in models:
        if not isinstance(model, dict) or not isinstance(model.get("id"), str):
            continue
        pricing = model.get("pricing")
        if not isinstance(pricing, dict):
            continue
        inp, outp = _per_million(pricing.get("prompt")), _per_million(pricing.get("completion"))
        if inp is None or outp is None:
            continue  # "-1": the price depends on the model a router picks
        fee = _per_million(pricing.get("request"))
        price = Price(
            input=inp,
            output=outp,
            cached_input=_positive(_per_million(pricing.get("input_cache_read"))),
            cache_write_input=_positive(_per_million(pricing.get("input_cache_write"))),
            reasoning=_positive(_per_million(pricing.get("internal_reasoning"))),
            per_request=(fee or 0.0) / _PER,
            source=source,
            as_of=as_of,
        )
        top = model.get("top_provider")
        window = _window(model.get("context_length")) or (
            _window(top.get("context_length")) if isinstance(top, dict) else None
        )
        out[model["id"]] = (price, window)
    return out


def read_format(fmt: str, data: Any, source: str, as_of: str) -> Entries:
    if fmt == "litellm":
        return litellm(data, source, as_of)
    if fmt == "openrouter":
        return openrouter(data, source, as_of)
    raise ValueError(f"unknown price list format {fmt!r}; choose from {', '.join(FORMATS)}")
