"""``hedge init``: write a starter config, commented, that runs against the local mocks as it is."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

STARTER = """\
# Hedge config: a starter written by `hedge init`. Every setting is in the README's
# "Configuration reference". As written, it routes to three local mock upstreams:
#   hedge mock --style openai --port 9101 &
#   hedge mock --style anthropic --port 9102 &
#   hedge mock --style gemini --port 9103 &
#   hedge serve --config hedge.yaml --port 8080

server:
  # Clients send this as their API key (Authorization: Bearer ...). Set HEDGE_MASTER_KEY in production.
  master_key: ${HEDGE_MASTER_KEY:-sk-hedge-dev}

providers:
  # One entry per upstream account. `style` is its wire format: openai (any OpenAI-compatible
  # server), anthropic or gemini. Real keys belong in the environment: api_key: ${OPENAI_API_KEY}
  cheap:   {style: openai,    base_url: "http://127.0.0.1:9101/v1", api_key: "sk-mock-a"}
  claude:  {style: anthropic, base_url: "http://127.0.0.1:9102",    api_key: "sk-mock-b"}
  gemini:  {style: gemini,    base_url: "http://127.0.0.1:9103",    api_key: "sk-mock-c"}

models:
  # What clients ask for (`model: chat`), and the deployments that may serve it.
  chat:
    strategy: weighted          # or ordered, cheapest, least-latency, least-busy
    fallbacks: [premium]        # tried when every deployment of `chat` has failed
    baseline: premium           # savings are reported against this alias's price
    deployments:
      # price: USD per million tokens (input, output); the catalogue knows common models' prices.
      - {provider: cheap,  model: qwen2.5-72b-instruct, weight: 70, price: {input: 0.35, output: 0.40}}
      - {provider: gemini, model: gemini-2.0-flash,     weight: 30, price: {input: 0.10, output: 0.40}}
  premium:
    deployments:
      - {provider: claude, model: claude-sonnet-4-5, price: {input: 3.00, output: 15.00}}

state:
  dir: .hedge                   # the SQLite ledger and keys; set database_url/redis_url to scale out
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = sub.add_parser("init", help="write a commented starter config (three local mocks, one alias)")
    init.add_argument("path", nargs="?", default="hedge.yaml", help="where to write it (default hedge.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.exists() and not args.force:
        print(f"hedge: {path} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    path.write_text(STARTER)
    print(f"wrote {path}: start the three mocks it names, then `hedge serve --config {path}`")
    return 0
