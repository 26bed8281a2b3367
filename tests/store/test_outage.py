"""The ledger and the key store through a PostgreSQL outage, with real processes.

A real ``hedge serve`` talks to the shared PostgreSQL through a fault proxy
(``tests/faultproxy.py``) that the test switches to ``refuse`` (the server is down)
or ``blackhole`` (it silently stops answering). What the client was served must end
up in the ledger whatever happens to the database or the gateway in between; a
virtual-key request gets a prompt 503, never a 500 or a hang; a poisoned record never
stops the ledger.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import MASTER_KEY, PG_BASE, Gateway, Mock, start_gateway
from faultproxy import FaultProxy, Mode

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
MSG = [{"role": "user", "content": "count the ledger rows for me"}]
FLUSH_S = 0.2
DB_TIMEOUT_S = 1.0
HANG_BOUND_S = 20.0
"""Far above anything expected (about DB_TIMEOUT_S): only proves that nothing waited for the outage."""
OUTAGES: tuple[Mode, ...] = ("refuse", "blackhole")
PRICE = {"input": 1, "output": 2}


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    p = FaultProxy("127.0.0.1", 5432).start()
    yield p
    p.close()


@pytest.fixture
def gateways() -> Iterator[list[Gateway]]:
    """Gateways the test starts, stopped (killed if they hang) whatever the test did to them."""
    started: list[Gateway] = []
    yield started
    for gw in started:
        if gw.proc.poll() is None:
            gw.proc.kill()
            gw.proc.wait()


def _config(mock: Mock, db_url: str, state_dir: Path) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {"p": {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "sk-up"}},
        "models": {
            "chat": {
                "deployments": [{"provider": "p", "model": "gpt-4o", "price": {"input": 1, "output": 2}}]
            }
        },
        "state": {
            "database_url": db_url,
            "dir": str(state_dir),
            "flush_interval_s": FLUSH_S,
            "db_timeout_s": DB_TIMEOUT_S,
            "shutdown_timeout_s": 2.0,
            "key_cache_ttl_s": 0,
        },
    }


def _via(proxy: FaultProxy, schema: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{proxy.port}/test?search_path={schema}"


def _chat(gw: Gateway, key: str = MASTER_KEY, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "chat", "messages": MSG, **body},
        headers={"authorization": f"Bearer {key}"},
        timeout=HANG_BOUND_S,
    )


def _served(gw: Gateway, n: int) -> list[str]:
    """Send ``n`` requests with the master key; the request ids of those answered 200."""
    ids = []
    for _ in range(n):
        resp = _chat(gw)
        assert resp.status_code == 200, resp.text
        ids.append(resp.headers["x-hedge-request-id"])
    return ids


def _get(gw: Gateway, path: str) -> httpx.Response:
    return httpx.get(f"{gw.url}{path}", headers=AUTH, timeout=HANG_BOUND_S)


def _booked(gw: Gateway) -> set[str]:
    resp = _get(gw, "/admin/dashboard/requests?since=1d&limit=500")
    assert resp.status_code == 200, resp.text
    return {row["request_id"] for row in resp.json()["rows"]}


def _until(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _spooled(state_dir: Path) -> int:
    """Records waiting in the ledger's spool files (one JSON line each)."""
    return sum(p.read_bytes().count(b"\n") for p in (state_dir / "spool").glob("ledger-*.jsonl"))


def _openai_error(resp: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# -- one bad row never stops the ledger ------------------------------------------------------------


def test_poisoned_records_do_not_stop_the_ledger(
    mock: Mock, pg_schema: str, logs: Path, tmp_path: Path, gateways: list[Gateway]
) -> None:
    gw = start_gateway(_config(mock, f"{PG_BASE}?search_path={pg_schema}", tmp_path / "state"), logs)
    gateways.append(gw)
    # A client-chosen model name with U+0000 ends up in the ledger row's error text (404).
    poisoned = _chat(gw, model="chat\u0000evil")
    assert poisoned.status_code == 404
    # Tags with U+0000 used to break every by=tag query on PostgreSQL (jsonb rejects \u0000).
    tagged = _chat(gw, metadata={"tags": ["nul\u0000tag", "plain"]})
    assert tagged.status_code == 200
    later = _served(gw, 5)

    _until("the requests after the poisoned one to be booked", lambda: set(later) <= _booked(gw))
    assert poisoned.headers["x-hedge-request-id"] in _booked(gw), "the bad row is cleaned, not dropped"
    by_tag = _get(gw, "/admin/spend?by=tag&since=1d")
    assert by_tag.status_code == 200, by_tag.text
    assert {row["group"] for row in by_tag.json()["rows"]} == {"nultag", "plain"}
    spend = _get(gw, "/admin/spend?by=provider&since=1d")
    assert spend.status_code == 200 and spend.json()["total"]["requests"] == 6
    assert _get(gw, "/admin/dashboard/summary").status_code == 200
    # Text PostgreSQL cannot store is refused up front with a 400 naming the field, not a 500.
    bad_key = httpx.post(f"{gw.url}/admin/keys", json={"name": "a\u0000b"}, headers=AUTH, timeout=10)
    assert bad_key.status_code == 400 and _openai_error(bad_key)["param"] == "name"


# -- nothing served is lost ------------------------------------------------------------------------


@pytest.mark.parametrize("outage", OUTAGES)
def test_sigterm_during_an_outage_exits_promptly_and_loses_nothing(
    outage: Mode,
    mock: Mock,
    proxy: FaultProxy,
    pg_schema: str,
    logs: Path,
    tmp_path: Path,
    gateways: list[Gateway],
) -> None:
    config = _config(mock, _via(proxy, pg_schema), tmp_path / "state")
    gw = start_gateway(config, logs)
    gateways.append(gw)
    served = _served(gw, 10)
    _until("the first requests to be booked", lambda: set(served) <= _booked(gw))
    proxy.set_mode(outage)
    served += _served(gw, 20)

    gw.proc.send_signal(signal.SIGTERM)
    gw.proc.wait(HANG_BOUND_S)  # raises if shutdown waits for the database

    proxy.set_mode("pass")
    again = start_gateway(config, logs)
    gateways.append(again)
    _until("every served request to be booked after the restart", lambda: _booked(again) == set(served))
    assert _get(again, "/admin/spend?since=1d").json()["total"]["requests"] == len(served)


def test_sigkill_during_an_outage_loses_at_most_the_last_flush(
    mock: Mock,
    proxy: FaultProxy,
    pg_schema: str,
    logs: Path,
    tmp_path: Path,
    gateways: list[Gateway],
) -> None:
    state_dir = tmp_path / "state"
    config = _config(mock, _via(proxy, pg_schema), state_dir)
    gw = start_gateway(config, logs)
    gateways.append(gw)
    before = _served(gw, 10)
    _until("the first requests to be booked", lambda: set(before) <= _booked(gw))
    proxy.set_mode("blackhole")  # the harder outage: the database has to time out before it is noticed
    during = _served(gw, 20)
    # Within a flush interval (plus one database timeout to notice a silent database) they are on disk.
    _until("the outage's records to reach the spool", lambda: _spooled(state_dir) >= len(during))
    last = _served(gw, 5)  # still in memory when the process dies: at most one flush interval's worth

    gw.proc.send_signal(signal.SIGKILL)
    gw.proc.wait(HANG_BOUND_S)

    proxy.set_mode("pass")
    again = start_gateway(config, logs)
    gateways.append(again)
    _until("the spooled records to be replayed", lambda: set(before + during) <= _booked(again))
    assert _booked(again) <= set(before + during + last)


# -- the state stores fail fast --------------------------------------------------------------------


@pytest.mark.parametrize("outage", OUTAGES)
def test_while_postgres_is_down_keys_get_a_prompt_503_and_what_is_served_is_booked_after(
    outage: Mode,
    mock: Mock,
    proxy: FaultProxy,
    pg_schema: str,
    logs: Path,
    tmp_path: Path,
    gateways: list[Gateway],
) -> None:
    state_dir = tmp_path / "state"
    gw = start_gateway(_config(mock, _via(proxy, pg_schema), state_dir), logs)
    gateways.append(gw)
    created = httpx.post(f"{gw.url}/admin/keys", json={"name": "alice"}, headers=AUTH, timeout=10)
    assert created.status_code == 201, created.text
    secret = created.json()["key"]
    answered = [_chat(gw, secret)]
    assert answered[0].status_code == 200

    proxy.set_mode(outage)
    refused = _chat(gw, secret)  # the client's own timeout (HANG_BOUND_S) raises on a hang
    assert refused.status_code == 503, refused.text
    error = _openai_error(refused)
    assert error["code"] == "limits_unavailable" and error["type"] == "service_unavailable"
    for path in ("/admin/spend?since=1d", "/admin/keys", "/admin/dashboard/summary"):
        resp = _get(gw, path)
        assert resp.status_code == 503, (path, resp.text)
        assert "database" in _openai_error(resp)["message"]
    answered += [refused, *(_chat(gw) for _ in range(10))]
    assert [r.status_code for r in answered[2:]] == [200] * 10, "the master key is still served"
    _until("the outage's records to reach the spool", lambda: _spooled(state_dir) >= 11)

    proxy.set_mode("pass")
    _until("the key to work again", lambda: _chat(gw, secret).status_code == 200)
    ids = {r.headers["x-hedge-request-id"] for r in answered}
    _until("what was answered in the outage to be booked, without a restart", lambda: ids <= _booked(gw))
    _until("the spool to be emptied once written", lambda: _spooled(state_dir) == 0)
