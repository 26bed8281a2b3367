"""A small OpenAI-style upstream that plays an LLM judge, for the judge grader's end-to-end test.

It reads the pairwise prompt the ``judge`` grader sends: the conversation (whose question ends
``Answer with: X``, as the quality mocks' datasets do) and answers A and B; it says ``A`` or ``B``
when exactly one of them is ``X``, else ``TIE``. It never sees the dataset: like a real judge, it
knows only what the prompt tells it. Run: ``python tests/evals/judge_upstream.py PORT``.
"""

from __future__ import annotations

import re
import sys

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_MARKER = re.compile(r"Answer with: (.+)")


def verdict(prompt: str) -> str:
    right = _MARKER.findall(prompt)
    a = prompt.split("[Answer A]\n", 1)[1].split("\n\n[Answer B]", 1)[0].strip()
    b = prompt.split("[Answer B]\n", 1)[1].split("\n\nVerdict:", 1)[0].strip()
    if not right:
        return "TIE"
    x = right[-1].strip()
    if (a == x) != (b == x):
        return "A" if a == x else "B"
    return "TIE"


async def chat(request: Request) -> Response:
    body = orjson.loads(await request.body())
    said = verdict(body["messages"][-1]["content"])
    answer = {
        "id": "chatcmpl-judge",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": said}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
    }
    return Response(orjson.dumps(answer), media_type="application/json")


async def ready(request: Request) -> Response:
    return Response(b"{}", media_type="application/json")


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/ready", ready)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
