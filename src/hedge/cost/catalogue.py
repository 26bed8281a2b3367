"""The price catalogue: a versioned data file of per-model prices, never prices in code.

The shipped file (``hedge/data/prices.yaml``) can be superseded by one installed into the state
directory: ``hedge prices update --file F`` merges a catalogue file into the one in use (``--replace``
installs it as it is), and ``hedge prices import --format litellm|openrouter FILE_OR_URL`` merges the
two public price lists people already maintain (:mod:`hedge.cost.formats`). Each price may say where it
came from (``source``) and when (``as_of``); an entry's ``context_window`` feeds routing (a deployment
whose window the prompt exceeds is left out of the plan: :func:`hedge.routing.router.fitting`).
A deployment's own ``price:`` in the config always wins over the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hedge.config import Config, Price

INSTALLED_NAME = "prices.yaml"


@dataclass(frozen=True, slots=True)
class Catalogue:
    version: str
    prices: dict[str, Price]
    source: str
    context_windows: dict[str, int] = field(default_factory=dict)
    """Tokens each model takes in, where the catalogue knows it."""

    def _find(self, table: dict[str, Any], model: str) -> Any:
        if model in table:
            return table[model]
        lowered = {k.lower(): v for k, v in table.items()}
        name = model.lower()
        found = lowered.get(name)
        return found if found is not None else lowered.get(name.rsplit("/", 1)[-1])

    def lookup(self, model: str) -> Price | None:
        """Exact name first, then the last path segment, case-insensitively (``meta-llama/X`` finds ``x``)."""
        found: Price | None = self._find(self.prices, model)
        return found

    def context_window(self, model: str) -> int | None:
        """The model's context window in tokens, found as :meth:`lookup` finds its price."""
        found: int | None = self._find(self.context_windows, model)
        return found


def parse_entry(name: str, value: Any, source: str) -> tuple[Price, int | None]:
    """One ``models`` entry: a price, with an optional ``context_window`` beside its fields."""
    if not isinstance(value, dict):
        raise ValueError(f"{source}: models.{name}: must be a mapping of prices")
    fields = dict(value)
    window = fields.pop("context_window", None)
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window <= 0):
        raise ValueError(f"{source}: models.{name}.context_window: must be a positive whole number")
    try:
        return Price.model_validate(fields), window
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{source}: models.{name}{'.' + where if where else ''}: {first['msg']}") from None


def parse_catalogue(data: Any, source: str) -> Catalogue:
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict) or not data.get("version"):
        raise ValueError(f"{source}: a catalogue needs 'version' and a 'models' mapping")
    prices: dict[str, Price] = {}
    windows: dict[str, int] = {}
    for name, value in data["models"].items():
        price, window = parse_entry(str(name), value, source)
        prices[str(name)] = price
        if window is not None:
            windows[str(name)] = window
    return Catalogue(str(data["version"]), prices, source, windows)


def to_yaml(cat: Catalogue, header: str = "") -> str:
    """The catalogue as a file :func:`parse_catalogue` reads back (defaults left out)."""
    models: dict[str, Any] = {}
    for name in sorted(cat.prices):
        entry = cat.prices[name].model_dump(exclude_defaults=True)
        if name in cat.context_windows:
            entry["context_window"] = cat.context_windows[name]
        models[name] = entry
    body = yaml.safe_dump({"version": cat.version, "models": models}, sort_keys=False, allow_unicode=True)
    return header + body


def shipped() -> Catalogue:
    text = resources.files("hedge").joinpath("data", INSTALLED_NAME).read_text(encoding="utf-8")
    return parse_catalogue(yaml.safe_load(text), "shipped catalogue")


def read(file: str) -> Catalogue:
    return parse_catalogue(yaml.safe_load(Path(file).read_text(encoding="utf-8")), file)


def load(state_dir: str | None = None) -> Catalogue:
    """The catalogue in use: the one installed in ``state_dir`` when it is as new as the shipped one
    (as it is: a ``--replace`` may have left models out); else the shipped one, with the models only
    the installed one has (imported ones) kept, so upgrading Hedge never drops them."""
    base = shipped()
    if state_dir:
        path = Path(state_dir) / INSTALLED_NAME
        if path.exists():
            installed = read(str(path))
            if installed.version >= base.version:
                return installed
            return merge(installed, base, f"{base.source} + {path}")
    return base


@dataclass(slots=True)
class Diff:
    """What installing a catalogue changes, model by model."""

    added: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)
    """Each changed model with its changes (``input 2.5 -> 2``)."""
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def lines(self, limit: int = 50) -> list[str]:
        """A preview: ``+`` added, ``~`` changed, ``-`` removed models, at most ``limit`` of each."""
        out: list[str] = []
        sections: list[tuple[str, list[str]]] = [
            ("+", self.added),
            ("~", [f"{m}: {'; '.join(c)}" for m, c in self.changed.items()]),
            ("-", self.removed),
        ]
        for mark, items in sections:
            out += [f"  {mark} {item}" for item in items[:limit]]
            if len(items) > limit:
                out.append(f"  {mark} ... and {len(items) - limit} more")
        out.append(
            f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged"
        )
        return out


_COMPARED = ("input", "output", "cached_input", "cache_write_input", "reasoning", "per_request", "tiers")


def _changes(old: Price, new: Price, old_window: int | None, new_window: int | None) -> list[str]:
    out = []
    for name in (*_COMPARED, "service_tiers"):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            if isinstance(before, list | dict):
                out.append(f"{name} changed")
            else:
                out.append(f"{name} {_show(before)} -> {_show(after)}")
    if old_window != new_window and new_window is not None:
        out.append(f"context_window {_show(old_window)} -> {new_window}")
    return out


def _show(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def diff(current: Catalogue, result: Catalogue) -> Diff:
    d = Diff()
    for name, price in result.prices.items():
        old = current.prices.get(name)
        if old is None:
            d.added.append(name)
            continue
        changes = _changes(old, price, current.context_windows.get(name), result.context_windows.get(name))
        if changes:
            d.changed[name] = changes
        else:
            d.unchanged += 1
    d.removed = [name for name in current.prices if name not in result.prices]
    d.added.sort()
    d.removed.sort()
    return d


def merge(current: Catalogue, incoming: Catalogue, source: str) -> Catalogue:
    """``current`` with ``incoming``'s models added or replaced (their context windows too); the
    newer of the two versions."""
    prices = {**current.prices, **incoming.prices}
    windows = {**current.context_windows, **incoming.context_windows}
    version = max(current.version, incoming.version)
    return Catalogue(version, prices, source, windows)


def install(cat: Catalogue, state_dir: str, header: str = "") -> Path:
    """Write ``cat`` as the catalogue for this state directory (atomically)."""
    target = Path(state_dir) / INSTALLED_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_suffix(".tmp")
    scratch.write_text(to_yaml(cat, header), encoding="utf-8")
    scratch.replace(target)
    return target


def unpriced(config: Config, cat: Catalogue) -> list[str]:
    """The deployments (``provider/model``) neither the config nor the catalogue prices, each once."""
    out: list[str] = []
    for model in config.models.values():
        for dep in model.deployments:
            name = f"{dep.provider}/{dep.model}"
            if dep.price is None and cat.lookup(dep.model) is None and name not in out:
                out.append(name)
    return out


def missing_prices(deployments: list[str], on_missing: str) -> str:
    """The one line naming the deployments without a price, for the log, ``hedge serve`` and
    ``hedge prices check``."""
    names = ", ".join(deployments)
    fix = "give each a price: in the config, or in the catalogue ('hedge prices import' / 'update')"
    if on_missing == "reject":
        return (
            f"pricing.on_missing is reject and {len(deployments)} deployment(s) have no price: {names}; {fix}"
        )
    return (
        f"{len(deployments)} deployment(s) have no price, so their requests are booked at 0 USD "
        f"(flagged price_missing in the ledger): {names}; {fix}, or set pricing.on_missing: zero "
        "if they are free"
    )
