"""What ``hedge serve`` and ``hedge mock`` print when they start."""

from __future__ import annotations

from hedge.cli.banner import mock_banner, serve_banner
from hedge.config import Config, parse_config
from hedge.mock.state import Knobs


def _config(**state: object) -> Config:
    return parse_config(
        {
            "server": {"master_key": "sk-master-banner"},
            "providers": {
                "a": {"style": "openai", "base_url": "http://127.0.0.1:9101/v1", "api_key": "sk-secret-a"},
                "b": {"style": "anthropic", "base_url": "http://127.0.0.1:9102", "api_key": "sk-secret-b"},
            },
            "models": {
                "chat": {
                    "strategy": "ordered",
                    "deployments": [{"provider": "a", "model": "m"}, {"provider": "b", "model": "n"}],
                }
            },
            "state": {"dir": "/tmp/hedge-banner", **state},
        },
        "<test>",
    )


def test_serve_says_where_it_listens_what_it_routes_and_what_is_off() -> None:
    text = serve_banner(_config(), "hedge.yaml", "127.0.0.1", 8080, 1)
    assert text.startswith("hedge serve: http://127.0.0.1:8080/v1 (1 worker), config hedge.yaml")
    assert "a (openai, http://127.0.0.1:9101/v1), b (anthropic, http://127.0.0.1:9102)" in text
    assert "chat (ordered, 2)" in text
    assert "sqlite:////tmp/hedge-banner/hedge.db" in text
    assert "tracing (set tracing.otlp_endpoint)" in text
    assert "sk-secret" not in text and "sk-master" not in text


def test_serve_masks_state_passwords_and_warns_of_unshared_workers() -> None:
    config = _config(database_url="postgresql://hedge:pw-secret@db:5432/hedge")
    text = serve_banner(config, "hedge.yaml", "0.0.0.0", 8080, 4)
    assert "postgresql://hedge:***@db:5432/hedge" in text and "pw-secret" not in text
    assert "sharing limits between workers (set state.redis_url)" in text
    assert "(4 workers)" in text


def test_mock_says_its_base_url_and_how_it_misbehaves() -> None:
    assert mock_banner("openai", "127.0.0.1", 9101, Knobs()) == (
        "hedge mock: openai-style upstream, base_url http://127.0.0.1:9101/v1 (always answers)"
    )
    flaky = mock_banner("gemini", "127.0.0.1", 9103, Knobs(latency_ms=20, fail_rate=0.15, fail_status=503))
    assert "base_url http://127.0.0.1:9103 (" in flaky
    assert "latency 20 ms" in flaky and "fails 15% of requests with 503" in flaky
