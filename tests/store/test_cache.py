"""The response cache's key: every option that can change the answer is part of it."""

from __future__ import annotations


def test_cache_key_covers_answer_changing_options() -> None:
    from hedge.store.cache import cache_key

    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    plain = cache_key("a", "chat", body)
    assert cache_key("a", "chat", {**body, "hedge": {"cache": True}}) == plain
    assert cache_key("a", "chat", {**body, "stream": False}) == plain
    assert cache_key("a", "chat", {**body, "hedge": {"on_unsupported": "drop"}}) != plain
    assert cache_key("a", "chat", {**body, "hedge": {"only": ["cheap"]}}) != plain
    assert cache_key("b", "chat", body) != plain
