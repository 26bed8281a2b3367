"""Conformance suite: prove a provider compatible before it takes traffic.

``hedge check`` sends canonical cases (YAML data in ``cases/``, plus the
user's own) to each selected deployment directly through its adapter and the
transport, checks the answers deterministically, prints a compatibility matrix
and records the results in a :class:`~hedge.store.conformance.ResultStore`.
"""

from hedge.conformance.runner import CaseResult, Report, SelectionError, Target, run, select_targets
from hedge.conformance.suite import Case, CaseError, load_cases
from hedge.store.conformance import ConformanceRecord, JsonlResultStore, Latest, ResultStore

__all__ = [
    "Case",
    "CaseError",
    "CaseResult",
    "ConformanceRecord",
    "JsonlResultStore",
    "Latest",
    "Report",
    "ResultStore",
    "SelectionError",
    "Target",
    "load_cases",
    "run",
    "select_targets",
]
