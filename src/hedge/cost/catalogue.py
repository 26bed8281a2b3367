"""The price catalogue: a versioned data file of per-model prices, never prices in code.

The shipped file (``hedge/data/prices.yaml``) can be superseded by a newer one
installed with ``hedge prices update --file F`` into the state directory. A
deployment's own ``price:`` in the config always wins over the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hedge.config import Price

INSTALLED_NAME = "prices.yaml"


@dataclass(frozen=True, slots=True)
class Catalogue:
    version: str
    prices: dict[str, Price]
    source: str

    def lookup(self, model: str) -> Price | None:
        """Exact name first, then the last path segment, case-insensitively (``meta-llama/X`` finds ``x``)."""
        if model in self.prices:
            return self.prices[model]
        lowered = {k.lower(): v for k, v in self.prices.items()}
        name = model.lower()
        return lowered.get(name) or lowered.get(name.rsplit("/", 1)[-1])


def parse_catalogue(data: Any, source: str) -> Catalogue:
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict) or not data.get("version"):
        raise ValueError(f"{source}: a catalogue needs 'version' and a 'models' mapping")
    prices: dict[str, Price] = {}
    for name, value in data["models"].items():
        try:
            prices[str(name)] = Price.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"{source}: models.{name}: {first['msg']}") from None
    return Catalogue(str(data["version"]), prices, source)


def shipped() -> Catalogue:
    text = resources.files("hedge").joinpath("data", INSTALLED_NAME).read_text(encoding="utf-8")
    return parse_catalogue(yaml.safe_load(text), "shipped catalogue")


def load(state_dir: str | None = None) -> Catalogue:
    """The newest of the shipped catalogue and the one installed in ``state_dir``."""
    base = shipped()
    if state_dir:
        path = Path(state_dir) / INSTALLED_NAME
        if path.exists():
            installed = parse_catalogue(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
            if installed.version >= base.version:
                return installed
    return base


def install(file: str, state_dir: str) -> Catalogue:
    """Validate ``file`` and install it as the catalogue for this state directory."""
    text = Path(file).read_text(encoding="utf-8")
    catalogue = parse_catalogue(yaml.safe_load(text), file)
    current = load(state_dir)
    if catalogue.version < current.version:
        raise ValueError(
            f"{file}: version {catalogue.version} is older than the catalogue in use ({current.version})"
        )
    target = Path(state_dir) / INSTALLED_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return catalogue
