"""Process-tree CPU and memory from /proc (Linux only, no psutil needed).

A target is measured as its whole process tree (a gateway with several workers,
or a CLI that forks its server), so the numbers hold whatever way it was started.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def tree(root: int) -> list[int]:
    """``root`` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo and len(out) < 10_000:
        pid = todo.pop()
        if _stat_fields(pid) is None:
            continue
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds consumed so far by these processes (threads included)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            # After the command name: state=0, ppid=1, ..., utime=11, stime=12.
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def hwm_bytes(pids: list[int]) -> int:
    """Sum of each process's own peak RSS (VmHWM): an upper bound of the tree's peak."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"VmHWM:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue
    return total


@dataclass
class RssSampler:
    """Samples the RSS of a few process trees in a background thread."""

    roots: dict[str, int]
    interval: float = 0.25
    peaks: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _trees: dict[str, list[int]] = field(default_factory=dict)

    def start(self) -> None:
        self._refresh_trees()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _refresh_trees(self) -> None:
        self._trees = {name: tree(pid) for name, pid in self.roots.items()}

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(self.interval):
            ticks += 1
            if ticks % 20 == 0:  # children can come and go (worker restarts): re-walk now and then
                self._refresh_trees()
            self.sample()

    def sample(self) -> None:
        for name, pids in self._trees.items():
            rss = rss_bytes(pids)
            if rss > self.peaks.get(name, 0):
                self.peaks[name] = rss

    def reset(self, name: str) -> None:
        self.peaks.pop(name, None)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def wait_idle(pids: list[int], threshold: float = 0.05, window: float = 0.5, limit: float = 10.0) -> float:
    """Wait (at most ``limit`` s) until the processes use under ``threshold`` of a core over ``window`` s."""
    deadline = time.monotonic() + limit
    while True:
        before = cpu_seconds(pids)
        time.sleep(window)
        used = (cpu_seconds(pids) - before) / window
        if used < threshold or time.monotonic() > deadline:
            return used


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores) since boot."""
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return (sum(parts[:8]) - idle) / _TICKS


def wait_machine_quiet(threshold: float = 0.3, window: float = 0.5, limit: float = 10.0) -> float:
    """Wait (at most ``limit`` s) until the machine uses under ``threshold`` cores; return the last reading.

    Other work on the machine (a test suite, a build) steals CPU from the runs; this
    waits for it to pass rather than measure through it, and the caller records what
    it saw.
    """
    deadline = time.monotonic() + limit
    while True:
        before = machine_busy_seconds()
        time.sleep(window)
        busy = (machine_busy_seconds() - before) / window
        if busy < threshold or time.monotonic() > deadline:
            return busy


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread id of one process."""
    out: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as fh:
                raw = fh.read().decode()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out
