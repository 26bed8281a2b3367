"""Request ids: ``req_`` and 24 hex digits, in time order (the ledger's primary key takes them at
its right edge), never repeated, not even by a forked worker."""

from __future__ import annotations

import os
import re
import types

import pytest

from hedge import record
from hedge.record import new_request_id


def test_ids_are_well_formed_and_unique_across_refills() -> None:
    ids = [new_request_id() for _ in range(3000)]  # several refills of the pool
    assert all(re.fullmatch(r"req_[0-9a-f]{24}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_ids_sort_by_the_millisecond_they_were_made_in(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_800_000_000.0014]
    monkeypatch.setattr(record, "time", types.SimpleNamespace(time=lambda: clock[0]))
    first = new_request_id()
    clock[0] += 0.002  # a later millisecond
    second = new_request_id()
    assert first < second
    assert first[4:16] == f"{1_800_000_000_001:012x}", "the first 12 hex digits are the millisecond"
    assert second[4:16] == f"{1_800_000_000_003:012x}"


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_request_id()  # the pool is filled: a child that kept it would hand out the parent's next ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids and leave at once
        os.write(write, " ".join(new_request_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split()
    os.close(read)
    parent = [new_request_id() for _ in range(5)]
    assert len(child) == 5
    assert not set(child) & set(parent)
