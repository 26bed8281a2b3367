"""The cheapest strategy's ``min_quality`` reads measured quality in preference to configured quality."""

from __future__ import annotations

from typing import Any

from hedge.config import parse_config
from hedge.providers import make_adapter
from hedge.routing.router import Router


def _router(qualities: dict[str, float | None]) -> Router:
    deployments: list[dict[str, Any]] = []
    for i, (model, quality) in enumerate(qualities.items()):
        dep: dict[str, Any] = {
            "provider": "p",
            "model": model,
            "price": {"input": 1.0 + i, "output": 1.0 + i},
        }
        if quality is not None:
            dep["quality"] = quality
        deployments.append(dep)
    config = parse_config(
        {
            "server": {"master_key": "k"},
            "providers": {"p": {"style": "openai", "base_url": "http://127.0.0.1:1/v1"}},
            "models": {
                "pick": {"strategy": "cheapest", "min_quality": 0.85, "deployments": deployments},
                "other": {"deployments": [{"provider": "p", "model": "cheap"}]},
            },
        }
    )
    adapters = {name: make_adapter(name, provider) for name, provider in config.providers.items()}
    return Router(config, adapters)


def _first(router: Router) -> str:
    return router.plan("pick")[1][0].id


def test_measured_beats_configured_in_both_directions() -> None:
    router = _router({"cheap": 0.99, "mid": 0.9, "dear": None})
    assert _first(router) == "p/cheap"  # configured: the cheapest qualifies
    router.set_measured_quality({"p/cheap": 0.47, "p/dear": 0.95})
    assert _first(router) == "p/mid"  # measured 0.47 disqualifies it; mid keeps its configured 0.9
    router.set_measured_quality({"p/cheap": 0.47, "p/mid": 0.6, "p/dear": 0.95})
    assert _first(router) == "p/dear"  # measured 0.95 qualifies a deployment configured with none
    dep = next(d for d in router.aliases["pick"].deployments if d.id == "p/dear")
    assert (dep.effective_quality, dep.quality_source) == (0.95, "measured")
    other = router.aliases["other"].deployments[0]
    assert (other.measured_quality, other.quality_source) == (0.47, "measured")  # shared by id
    router.set_measured_quality({})
    assert _first(router) == "p/cheap" and dep.quality_source is None
