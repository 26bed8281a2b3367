"""Conformance cases: one request (or a few) and deterministic assertions about the answer.

Cases are YAML data, the built-in ones in ``hedge/conformance/cases/*.yaml``;
``--cases FILE_OR_DIR`` adds more or overrides built-ins by ``id``. The format
is documented in ``README.md`` next to this module. A file holds one case (a
mapping with ``id``), a list of cases, or a mapping ``{cases: [...]}``.

A problem in a case file is a :class:`CaseError` naming the file, the case
and the field, like a config error.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from hedge.providers.base import Capabilities

CAPABILITIES = frozenset(f.name for f in dataclasses.fields(Capabilities))
Api = Literal["chat", "responses"]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_STATUS = re.compile(r"^[1-5](\d\d|xx)$")


class CaseError(Exception):
    """A problem in a case file, already formatted as one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


StrList = str | list[str]
StatusSpec = int | str | list[int | str]


def _as_list(value: StrList | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _status_ok(value: StatusSpec) -> StatusSpec:
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str) and not _STATUS.match(item):
            raise ValueError(f"status {item!r} must be a number like 404 or a class like '4xx'")
    return value


def status_matches(spec: StatusSpec, status: int | None) -> bool:
    """Whether an HTTP status fits ``404``, ``'4xx'`` or a list of those."""
    if status is None:
        return False
    for item in spec if isinstance(spec, list) else [spec]:
        text = str(item)
        if text.endswith("xx") and str(status)[0] == text[0]:
            return True
        if text == str(status):
            return True
    return False


class ContentSpec(_Strict):
    """Every choice's ``message.content`` (for a stream: the content deltas joined)."""

    equals: str | None = None
    contains: StrList | None = None
    not_contains: StrList | None = None
    regex: StrList | None = None
    not_regex: StrList | None = None

    @field_validator("regex", "not_regex")
    @classmethod
    def _compiles(cls, value: StrList | None) -> StrList | None:
        for pattern in _as_list(value):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return value


class JsonSpec(_Strict):
    """Every choice's content parses as JSON (of ``type``), valid against ``schema`` if given."""

    type: Literal["object", "array", "any"] = "any"
    json_schema: dict[str, Any] | Literal["request"] | None = Field(None, alias="schema")
    """A JSON schema, or ``request``: the schema in the request's ``response_format``."""


class ToolCallsSpec(_Strict):
    """The first choice's tool calls."""

    count: int | None = Field(None, ge=0)
    min_count: int | None = Field(None, ge=0)
    names: list[str] | None = None
    """The called tools' names, in any order (a name listed twice must be called twice)."""
    arguments: Literal["schema", "json"] = "schema"
    """``json``: arguments are a string holding a JSON object; ``schema``: that object also
    validates against the tool's ``parameters`` in the request."""


class UsageSpec(_Strict):
    """``usage`` present, with prompt and completion tokens above 0 and a consistent total."""

    max_completion_tokens: int | None = Field(None, ge=0)
    min_prompt_tokens: int | str | None = None
    """A number, or ``"NN%"`` of the deployment's context window."""
    min_reasoning_tokens: int | None = Field(None, ge=0)
    """At least this many ``completion_tokens_details.reasoning_tokens`` (the model thought, and said so)."""
    min_cache_tokens: int | None = Field(None, ge=0)
    """At least this many prompt tokens written to or read from the prompt cache
    (``prompt_tokens_details.cache_write_tokens`` + ``cached_tokens``)."""

    @field_validator("min_prompt_tokens")
    @classmethod
    def _share(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and not re.fullmatch(r"\d+(\.\d+)?%", value):
            raise ValueError(f"must be a number or a share of the context window like '50%', got {value!r}")
        return value


class ErrorSpec(_Strict):
    """The request must fail: the adapter's translated :class:`~hedge.errors.UpstreamError`."""

    status: StatusSpec | None = None
    """The status the gateway would give the client."""
    upstream_status: StatusSpec | None = "4xx"
    """The status the provider answered with."""
    type: str | None = None

    @field_validator("status", "upstream_status")
    @classmethod
    def _statuses(cls, value: StatusSpec | None) -> StatusSpec | None:
        return value if value is None else _status_ok(value)


class StreamSpec(_Strict):
    """The raw SSE the gateway would send. Chat: role first, deltas, one finish_reason per choice,
    [DONE]. Responses: named events numbered in order, each output item and part added, streamed
    and done, the final response last (see :mod:`hedge.conformance.events`)."""

    usage: bool = False
    """Chat: expect the final usage chunk (the request asks ``stream_options.include_usage``);
    otherwise no chunk may carry usage."""
    events: list[str] | None = None
    """Responses: these event types occur in this order (other events may come between them)."""


class PathSpec(_Strict):
    """A value in the (non-streaming, or assembled) completion, e.g. ``choices[0].message.role``."""

    at: str
    equals: Any = None
    regex: str | None = None
    exists: bool | None = None
    type: Literal["object", "array", "string", "integer", "number", "boolean", "null"] | None = None
    one_of: list[Any] | None = None
    length: int | None = Field(None, ge=0)


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    kind: str
    spec: Any
    explicit: frozenset[str] = frozenset()
    """The spec's keys written in the file (``equals: null`` differs from no ``equals``)."""


_SPECS: dict[str, type[BaseModel]] = {
    "content": ContentSpec,
    "json": JsonSpec,
    "tool_calls": ToolCallsSpec,
    "usage": UsageSpec,
    "error": ErrorSpec,
    "stream": StreamSpec,
    "path": PathSpec,
}
CHECK_KINDS = (*_SPECS, "finish_reason", "choices", "status", "same_content")
CHAT_ONLY = {"finish_reason": "use 'status' on a responses case", "choices": "a response has no choices"}
RESPONSES_ONLY = {"status": "use 'finish_reason' on a chat case"}


def _parse_check(raw: Any, where: str) -> Check:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ValueError(f"{where}: each check is a mapping with one key, one of: {', '.join(CHECK_KINDS)}")
    ((kind, value),) = raw.items()
    if kind in ("finish_reason", "status"):
        reasons = _as_list(value) if isinstance(value, str | list) else None
        what = "reason" if kind == "finish_reason" else "status"
        if not reasons or not all(isinstance(r, str) for r in reasons):
            raise ValueError(f"{where}.{kind}: expected a {what} or a list of them")
        return Check(kind, reasons)
    if kind == "choices":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{where}.choices: expected a number of choices (at least 1)")
        return Check(kind, value)
    if kind == "same_content":
        if value is not True:
            raise ValueError(f"{where}.same_content: must be true")
        return Check(kind, True)
    model = _SPECS.get(str(kind))
    if model is None:
        raise ValueError(f"{where}: unknown check {kind!r} (known: {', '.join(CHECK_KINDS)})")
    if value is True or value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}.{kind}: expected a mapping (or true)")
    try:
        spec = model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = (
            "unknown key"
            if err["type"] == "extra_forbidden"
            else str(err["msg"]).removeprefix("Value error, ")
        )
        raise ValueError(f"{where}.{kind}{'.' + loc if loc else ''}: {msg}") from None
    return Check(str(kind), spec, frozenset(value))


def _checks_of(expect: list[Any], where: str = "expect") -> list[Check]:
    return [_parse_check(raw, f"{where}[{i}]") for i, raw in enumerate(expect)]


def request_problem(request: dict[str, Any], api: Api) -> str | None:
    """What is wrong with a case's (or a step's) request for its API, if anything."""
    if "stream" in request:
        return "set 'stream' on the case, not in the request"
    if api == "chat":
        messages = request.get("messages")
        return None if isinstance(messages, list) and messages else "needs a non-empty 'messages' list"
    if "messages" in request:
        return "a Responses request takes 'input', not 'messages'"
    if "previous_response_id" in request:
        return "leave out previous_response_id: each of a case's steps continues the one before it"
    value = request.get("input")
    if not (isinstance(value, str) or (isinstance(value, list) and value)):
        return "needs an 'input': a string or a non-empty list of items"
    return None


class Step(_Strict):
    """A further request of a case, sent once the one before it passed, continuing its conversation."""

    title: str = ""
    request: dict[str, Any]
    """The next request: for ``chat`` a body whose ``messages`` follow the earlier ones and the
    assistant's answer; for ``responses`` a body whose ``input`` follows the earlier items, as with
    ``previous_response_id``. A string ``$call_id`` (``$call_id[N]``) anywhere in it becomes the id of
    the first (N-th) tool or function call of the answer before."""
    expect: list[Any] = Field(min_length=1)

    @property
    def checks(self) -> list[Check]:
        return _checks_of(self.expect)


class Case(_Strict):
    id: str
    title: str = ""
    description: str = ""
    api: Api = "chat"
    """``chat``: an OpenAI chat body, answered by a chat completion. ``responses``: a Responses API
    body, sent as Hedge's ``/v1/responses`` sends it (translated to chat, or passed through to a
    provider with ``responses_api: true``) and answered by a Response object."""
    required: bool = True
    """A failing required case makes ``hedge check`` exit 1."""
    stream: bool = False
    requires: list[str] = Field(default_factory=list)
    """Capabilities (``hedge.providers.base.Capabilities`` fields) the case needs; skipped without them."""
    model: str | None = None
    """Send this upstream model instead of the deployment's (e.g. one that does not exist)."""
    repeat: int = Field(1, ge=1, le=5)
    context_fill: float | None = Field(None, gt=0, lt=1)
    """Pad the last user message to this share of the context window (skipped when it is unknown)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Free parameters; ``context_window`` (a number, or a mapping of deployment id or model to a
    number) is read by ``context_fill`` and ``usage.min_prompt_tokens: "NN%"``."""
    request: dict[str, Any]
    expect: list[Any] = Field(min_length=1)
    steps: list[Step] = Field(default_factory=list)
    """Further requests, each sent after the one before it passed and continuing its conversation."""
    source: str = Field("", exclude=True)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("letters, digits, '.', '_' and '-' only, starting with a letter or digit")
        return value

    @field_validator("requires")
    @classmethod
    def _requires(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in CAPABILITIES]
        if unknown:
            raise ValueError(f"unknown capability {unknown[0]!r} (known: {', '.join(sorted(CAPABILITIES))})")
        return value

    @field_validator("request")
    @classmethod
    def _request(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        problem = request_problem(value, info.data.get("api", "chat"))
        if problem is not None:
            raise ValueError(problem)
        return value

    @property
    def checks(self) -> list[Check]:
        return _checks_of(self.expect)

    def validate_checks(self) -> None:
        if self.api == "responses" and self.context_fill is not None:
            raise ValueError("context_fill: only for chat cases")
        if self.steps and self.repeat > 1:
            raise ValueError("repeat: not with steps")
        expects = [
            ("expect", self.expect),
            *((f"steps[{i}].expect", s.expect) for i, s in enumerate(self.steps)),
        ]
        for i, step in enumerate(self.steps):
            problem = request_problem(step.request, self.api)
            if problem is not None:
                raise ValueError(f"steps[{i}].request: {problem}")
        for n, (where, expect) in enumerate(expects):
            self._validate(where, _checks_of(expect, where), last=n == len(expects) - 1)

    def _validate(self, where: str, checks: list[Check], last: bool) -> None:
        kinds = [c.kind for c in checks]
        wrong = CHAT_ONLY if self.api == "responses" else RESPONSES_ONLY
        for i, check in enumerate(checks):
            if check.kind in wrong:
                raise ValueError(
                    f"{where}[{i}]: '{check.kind}' is not for a {self.api} case: {wrong[check.kind]}"
                )
            if check.kind == "stream":
                key = "usage" if self.api == "responses" else "events"
                if key in check.explicit:
                    other = "chat" if self.api == "responses" else "responses"
                    raise ValueError(f"{where}[{i}].stream.{key}: only for {other} cases")
        if "error" in kinds and len(kinds) > 1:
            whose = "case's" if where == "expect" else "step's"
            raise ValueError(f"{where}: an 'error' check must be the {whose} only check")
        if "error" in kinds and not last:
            raise ValueError(f"{where}: an 'error' check can only be in the last step")
        if "stream" in kinds and not self.stream:
            raise ValueError(f"{where}: a 'stream' check needs 'stream: true' on the case")
        if "same_content" in kinds and where != "expect":
            raise ValueError(f"{where}: 'same_content' is not for steps")
        if "same_content" in kinds and self.repeat < 2:
            raise ValueError(f"{where}: 'same_content' needs 'repeat: 2' or more")


def _documents(data: Any) -> list[Any]:
    if isinstance(data, dict) and "cases" in data and "id" not in data:
        data = data["cases"]
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise ValueError("a case file holds a case, a list of cases or a mapping with 'cases'")


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "<case>"
    if err["type"] == "missing":
        return f"{loc}: missing required key"
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    return f"{loc}: {str(err['msg']).removeprefix('Value error, ')}"


def parse_case(raw: Any, source: str, index: int) -> Case:
    label = f"{source}: case {index + 1}"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        label = f"{source}: case {raw['id']!r}"
    if not isinstance(raw, dict):
        raise CaseError(f"{label}: expected a mapping")
    try:
        case = Case.model_validate({**raw, "source": source})
        case.validate_checks()
    except ValidationError as exc:
        raise CaseError(f"{label}: {_describe(exc)}") from None
    except ValueError as exc:
        raise CaseError(f"{label}: {exc}") from None
    return case


def _read(text: str, source: str) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CaseError(f"{source}: {where}invalid YAML: {problem}") from None
    if data is None:
        return []
    try:
        docs = _documents(data)
    except ValueError as exc:
        raise CaseError(f"{source}: {exc}") from None
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise CaseError(f"{source}: case {i + 1}: expected a mapping")
    return docs


def builtin_raw() -> list[tuple[str, dict[str, Any]]]:
    """The built-in cases as parsed YAML, in file order (files sorted by name)."""
    folder = resources.files("hedge.conformance").joinpath("cases")
    out: list[tuple[str, dict[str, Any]]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            source = f"<built-in>/{entry.name}"
            out.extend((source, doc) for doc in _read(entry.read_text(encoding="utf-8"), source))
    return out


def _user_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise CaseError(f"{path}: no .yaml case files in this directory")
        return files
    if not path.exists():
        raise CaseError(f"{path}: no such file or directory")
    return [path]


def load_cases(extra: Iterable[str | Path] = (), builtin: bool = True) -> list[Case]:
    """Built-in cases, then each file (or directory of ``*.yaml``) in ``extra``: a case whose id
    exists replaces it in place; a case with an existing id and no ``request`` only updates the
    fields it gives (``params`` are merged), e.g. to set ``params.context_window``."""
    raw: dict[str, tuple[str, dict[str, Any]]] = {}
    if builtin:
        for source, doc in builtin_raw():
            raw[str(doc.get("id"))] = (source, doc)
    for item in extra:
        for file in _user_files(Path(item)):
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise CaseError(f"{file}: cannot read file: {exc.strerror or exc}") from None
            for doc in _read(text, str(file)):
                key = str(doc.get("id"))
                if key in raw and "request" not in doc:
                    _, base = raw[key]
                    params = {**(base.get("params") or {}), **(doc.get("params") or {})}
                    doc = {**base, **doc, "params": params}
                raw[key] = (str(file), doc)
    cases = [parse_case(doc, source, i) for i, (source, doc) in enumerate(raw.values())]
    return cases


def select(cases: list[Case], only: Iterable[str]) -> list[Case]:
    """The cases named in ``only`` (comma-separated lists allowed), in suite order; all when empty."""
    wanted = [name.strip() for item in only for name in item.split(",") if name.strip()]
    if not wanted:
        return cases
    known = {c.id for c in cases}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise CaseError(f"unknown case {unknown[0]!r} (known: {', '.join(c.id for c in cases)})")
    return [c for c in cases if c.id in wanted]
