"""The deployment files (Dockerfile, .dockerignore, deploy/): what can be checked without containers.

No Docker daemon here, so the files are checked for what would break a real deployment: the compose
file's services, ports, volumes, mounts and health checks agree with each other and with the
Dockerfile; the Hedge config in deploy/ loads with the environment compose hands the replicas; the
Prometheus targets are the replicas' ports; the Grafana provisioning points at the Prometheus service
and the mounted dashboard; and every metric and label the dashboard queries exists, with a type its
query suits, in a real scrape of a gateway that has served chat, streams, cache hits, failovers and
errors. The image's and the mocks' health-check commands are run against live processes.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import MASTER_KEY, Gateway, Mock, start_gateway, start_mock, two_provider_config
from hedge.cli import build_parser
from hedge.cli.net import free_port
from hedge.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
MOCK_ENV = DEPLOY / "mock.env"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "hedge.json"

# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}
# Series Prometheus makes itself, with their labels.
SYNTHETIC = {"up": TARGET_LABELS}
RATE_FUNCTIONS = {"rate", "irate", "increase"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


# -- reading the files -----------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: not NAME=value: {line!r}"
            env[name.strip()] = value.strip()
    return env


_COMPOSE_VAR = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def compose_interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``; a required variable unset fails."""
    if isinstance(value, dict):
        return {k: compose_interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [compose_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        got = env.get(name)
        if op in (":?", "?") and (got is None or (op == ":?" and got == "")):
            raise AssertionError(f"compose needs {name}: {arg}")
        if (op == ":-" and not got) or (op == "-" and got is None):
            return str(arg)
        return got or ""

    return _COMPOSE_VAR.sub(sub, value)


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return compose_interpolate(data, read_env_file(MOCK_ENV) if env is None else env)


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
        return value


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions per build stage (continuations joined, comments dropped, ARGs
    before the first FROM substituted)."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or not (line or pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends in a line continuation"
    args: dict[str, str] = {}
    stages: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "ARG" and not stages:
            name, _, default = ins.args.partition("=")
            args[name] = default
        elif ins.keyword == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ins.args)
            stages.append([Instruction("FROM", image)])
        else:
            assert stages, f"{ins.keyword} before the first FROM"
            stages[-1].append(ins)
    return stages


def final_stage() -> list[Instruction]:
    return dockerfile_stages()[-1]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [ins for ins in stage if ins.keyword == keyword]
    assert found, f"no {keyword} in the image's stage"
    return found[-1]  # the last one is the one in force


def image_entrypoint() -> list[str]:
    return only(final_stage(), "ENTRYPOINT").exec_form()


def exposed_port() -> int:
    ports = only(final_stage(), "EXPOSE").args.split()
    assert len(ports) == 1, ports
    return int(ports[0].removesuffix("/tcp"))


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match with ``**``) as a regex over slash paths."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def dockerignored(path: str) -> bool:
    """Whether the build context leaves ``path`` out: the last pattern matching it or a parent wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        regex = _glob_regex(line.removeprefix("!").strip("/"))
        if any(regex.match(c) for c in candidates):
            ignored = not negated
    return ignored


# -- compose helpers -------------------------------------------------------------------------------


def builds_repo_image(svc: dict[str, Any]) -> bool:
    build = svc.get("build")
    if build is None:
        return False
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    return (DEPLOY / context).resolve() == ROOT and dockerfile == "Dockerfile"


def argv(svc: dict[str, Any]) -> list[str]:
    """What the container runs: the entrypoint (the service's or the image's) and the command."""
    entrypoint = svc.get("entrypoint")
    if entrypoint is None and builds_repo_image(svc):
        entrypoint = image_entrypoint()
    assert isinstance(entrypoint, list), f"entrypoint must be exec form, got {entrypoint!r}"
    command = svc.get("command", [])
    assert isinstance(command, list), f"command must be exec form, got {command!r}"
    return [*entrypoint, *command]


def hedge_args(svc: dict[str, Any]) -> Any:
    """The service's ``hedge`` command line, parsed by Hedge's own parser (None: it runs something else)."""
    if not builds_repo_image(svc):
        return None
    cmd = argv(svc)
    assert cmd[0] == "hedge", cmd
    return build_parser().parse_args(cmd[1:])


def gateways(compose: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, svc in compose["services"].items():
        args = hedge_args(svc)
        if args is not None and args.command == "serve":
            out[name] = args
    return out


@dataclass
class Mount:
    source: str
    target: str
    read_only: bool

    @property
    def bind(self) -> bool:
        return self.source.startswith((".", "/"))


def mounts(svc: dict[str, Any]) -> list[Mount]:
    out = []
    for spec in svc.get("volumes", []):
        assert isinstance(spec, str), f"use the short volume syntax: {spec!r}"
        source, target, *mode = spec.split(":")
        out.append(Mount(source, target, mode == ["ro"]))
    return out


def repo_path(svc: dict[str, Any], container_path: str) -> Path | None:
    """The file in the repository that a bind mount puts at ``container_path``."""
    for m in mounts(svc):
        if m.bind and (container_path == m.target or container_path.startswith(m.target + "/")):
            return DEPLOY / m.source / container_path[len(m.target) :].lstrip("/")
    return None


def named_volume_at(svc: dict[str, Any], container_path: str) -> str | None:
    for m in mounts(svc):
        if not m.bind and m.target == container_path:
            return m.source
    return None


def published(svc: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each published port."""
    out = []
    for spec in svc.get("ports", []):
        *host, container = str(spec).split(":")
        address = host[0] if len(host) == 2 else "0.0.0.0"
        out.append((address, int(host[-1]), int(container)))
    return out


def has_healthcheck(svc: dict[str, Any]) -> bool:
    check = svc.get("healthcheck")
    if check is not None:
        return not check.get("disable") and check.get("test", ["NONE"])[0] != "NONE"
    # The image's HEALTHCHECK probes the gateway: it only fits a service that runs the gateway.
    args = hedge_args(svc)
    return args is not None and args.command == "serve"


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    assert isinstance(env, dict), "use the mapping form of environment"
    return {k: str(v) for k, v in env.items()}


# -- PromQL ----------------------------------------------------------------------------------------

_PROMQL_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<braces>\{[^}]*\})
  | (?P<range>\[[^\]]*\])
  | (?P<duration>\d+(?:ms|[smhdwy])\b)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<variable>\$\w+)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<space>\s+)
  | (?P<op>[-+*/%^,=!<>~]+)
    """,
    re.VERBOSE,
)
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)\s*"')
_AGGREGATIONS = {"sum", "min", "max", "avg", "count", "group", "stddev", "stdvar", "topk", "bottomk"}
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset"}


@dataclass
class Selector:
    name: str
    labels: list[str]
    functions: tuple[str, ...]
    """The functions and aggregations it is inside, outermost first."""


@dataclass
class Query:
    selectors: list[Selector] = field(default_factory=list)
    grouping: list[str] = field(default_factory=list)


def parse_promql(expr: str) -> Query:
    """The metric selectors of a PromQL expression, the labels they match on, the grouping labels."""
    tokens = []
    pos = 0
    while pos < len(expr):
        match = _PROMQL_TOKEN.match(expr, pos)
        assert match, f"cannot read PromQL at {expr[pos:]!r} in {expr!r}"
        pos = match.end()
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
    query = Query()
    stack: list[str | None] = []
    pending: str | None = None  # an aggregation waiting for its parenthesis after by (...)
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "ident" and text in _LABEL_LISTS:
            assert following[0] == "open", f"{text} without a label list in {expr!r}"
            j = i + 2
            while tokens[j][0] != "close":
                if tokens[j][0] == "ident":
                    query.grouping.append(tokens[j][1])
                j += 1
            i = j + 1
            continue
        if kind == "ident" and following[0] == "open":
            stack.append(text)
            i += 2
            continue
        if kind == "ident" and text in _AGGREGATIONS and following == ("ident", "by"):
            pending = text
        elif kind == "ident" and text not in _KEYWORDS:
            labels = []
            if following[0] == "braces":
                labels = _MATCHER.findall(following[1])
                i += 1
            functions = tuple(f for f in stack if f is not None)
            query.selectors.append(Selector(text, labels, functions))
        elif kind == "braces":
            raise AssertionError(f"a selector without a metric name in {expr!r}")
        elif kind == "open":
            stack.append(pending)
            pending = None
        elif kind == "close":
            stack.pop()
        i += 1
    assert not stack, f"unbalanced parentheses in {expr!r}"
    return query


# -- the dashboard ---------------------------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(where, PromQL, whether it is graphed) for every panel target and every template variable
    (``label_values(metric, label)`` as ``sum by (label) (metric)``: only its series and labels count)."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} target {target['refId']}", target["expr"], True
    for var in dashboard["templating"]["list"]:
        query = var["query"] if isinstance(var["query"], str) else var["query"]["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, f"variable {var['name']}: expected label_values(metric, label), got {query!r}"
        yield f"variable {var['name']!r}", f"sum by ({match.group(2)}) ({match.group(1)})", False


# -- tests: the Dockerfile -------------------------------------------------------------------------


def test_the_image_is_a_slim_python_3_11_or_later_installing_the_package_without_dev_extras() -> None:
    stages = dockerfile_stages()
    for stage in stages:
        image = stage[0].args.split()[0]
        match = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?-slim(?:-\w+)?", image)
        assert match, f"base image {image!r} is not a slim Python"
        assert (int(match.group(1)), int(match.group(2))) >= (3, 11), image
    runs = [ins.args for stage in stages for ins in stage if ins.keyword == "RUN"]
    installs = [run for run in runs if re.search(r"\bpip install\b", run)]
    assert installs, "the package is never installed"
    for run in installs:
        assert not re.search(r"\[[^\]]*\bdev\b", run), f"dev extras installed: {run}"
    assert any(re.search(r"\bpip install \.(\s|$)", run) for run in installs), installs


def test_the_image_runs_as_an_unprivileged_user_created_in_it() -> None:
    stage = final_stage()
    user = only(stage, "USER").args.split(":")[0]
    assert user not in ("root", "0"), "the gateway must not run as root"
    created = [ins.args for ins in stage if ins.keyword == "RUN" and "useradd" in ins.args]
    assert created, "the user is not created in the final stage"
    if user.isdigit():
        assert any(f"--uid {user}" in run for run in created), created
    else:
        assert any(re.search(rf"useradd\b.*\b{user}\b", run) for run in created), created


def test_the_image_serves_the_mounted_config_and_checks_health_on_its_port() -> None:
    entry = image_entrypoint()
    assert entry == ["hedge", "serve", "--config", "/etc/hedge/hedge.yaml", "--host", "0.0.0.0"]
    args = build_parser().parse_args(entry[1:])
    assert (args.command, args.config, args.host) == ("serve", "/etc/hedge/hedge.yaml", "0.0.0.0")
    check = only(final_stage(), "HEALTHCHECK").args
    cmd = json.loads(check[check.index("CMD") + 3 :].strip())
    assert any(f"127.0.0.1:{exposed_port()}/health" in part for part in cmd), cmd


def test_the_build_context_holds_what_the_image_copies_and_no_local_state_or_secrets() -> None:
    for stage in dockerfile_stages():
        for ins in stage:
            if ins.keyword != "COPY" or ins.args.startswith("--from"):
                continue
            *sources, _dest = ins.args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not dockerignored(source), f"COPY {source}: left out by .dockerignore"
    # The package's metadata needs its readme; everything under src/ ships.
    assert not dockerignored("src/hedge/data/prices.yaml")
    assert not dockerignored("src/hedge/ui/index.html")
    for path in (
        ".hedge/hedge.db",
        "hedge.yaml",
        ".env",
        "deploy/.env",
        ".git/config",
        ".venv/bin/python",
        "tests/conftest.py",
        "src/hedge/__pycache__/config.cpython-311.pyc",
    ):
        assert dockerignored(path), f"{path} would be sent to the Docker daemon"


# -- tests: compose --------------------------------------------------------------------------------


def test_compose_services_ports_volumes_and_health_checks_agree() -> None:
    compose = load_compose()
    services = compose["services"]
    assert {"postgres", "redis", "prometheus", "grafana"} <= set(services)
    assert len(gateways(compose)) == 2, "two Hedge replicas"
    declared = set(compose.get("volumes") or {})
    users: dict[str, list[str]] = {}
    host_ports: list[tuple[str, int]] = []
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        if "build" in svc:
            assert builds_repo_image(svc), f"{name}: builds something other than the repo's Dockerfile"
        assert has_healthcheck(svc), f"{name} has no health check"
        depends = svc.get("depends_on", {})
        for dep in depends:
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = depends[dep].get("condition") if isinstance(depends, dict) else None
            if condition == "service_healthy":
                assert has_healthcheck(services[dep]), (
                    f"{name} waits for {dep} to be healthy: it has no check"
                )
            assert "profiles" not in services[dep] or "profiles" in svc, f"{name} needs optional {dep}"
        for m in mounts(svc):
            if m.bind:
                assert (DEPLOY / m.source).exists(), f"{name} mounts {m.source}: not in the repository"
                assert m.read_only, f"{name}: mount configuration read-only: {m.source}"
            else:
                assert m.source in declared, f"{name}: volume {m.source} is not declared"
                users.setdefault(m.source, []).append(name)
        for address, host_port, _container in published(svc):
            host_ports.append((address, host_port))
    assert set(users) == declared, f"declared but unused volumes: {declared - set(users)}"
    shared = {volume: names for volume, names in users.items() if len(names) > 1}
    assert not shared, f"volumes used by more than one service: {shared}"
    assert len(host_ports) == len(set(host_ports)), f"a host port is published twice: {host_ports}"


def test_the_replicas_run_the_deploy_config_with_the_environment_compose_hands_them() -> None:
    compose = load_compose()
    services = compose["services"]
    postgres_env = environment(services["postgres"])
    state_volumes = set()
    for name, args in gateways(compose).items():
        svc = services[name]
        assert args.host == "0.0.0.0", f"{name} must listen on every interface in its container"
        config_path = repo_path(svc, args.config)
        assert config_path == DEPLOY / "hedge.yaml", f"{name}: {args.config} is not deploy/hedge.yaml"
        config = load_config(config_path, env=environment(svc))
        port = args.port if args.port is not None else config.server.port
        assert port == exposed_port(), f"{name} listens on {port}; the image checks {exposed_port()}"
        assert [c for _a, _h, c in published(svc)] == [port], f"{name}: publish its port {port}"
        assert all(a == "127.0.0.1" for a, _h, _c in published(svc)), "plain HTTP stays on loopback"
        # Several replicas need shared state: PostgreSQL and Redis, both compose services.
        db = urlsplit(config.state.database_url or "")
        assert db.scheme == "postgresql" and db.hostname == "postgres" and db.port == 5432, db
        assert db.username == postgres_env["POSTGRES_USER"], db
        assert db.password == postgres_env["POSTGRES_PASSWORD"], "the replicas' password is postgres's"
        assert db.path.lstrip("/") == postgres_env["POSTGRES_DB"], db
        redis = urlsplit(config.state.redis_url or "")
        assert redis.scheme == "redis" and redis.hostname == "redis" and redis.port in (None, 6379), redis
        volume = named_volume_at(svc, config.state.dir)
        assert volume is not None, f"{name}: state.dir {config.state.dir} is not on a volume"
        state_volumes.add(volume)
        assert not config.server.metrics_auth, "Prometheus scrapes without a key"
    assert len(state_volumes) == 2, "each replica has its own state.dir (its spool)"


def test_the_deploy_config_takes_its_master_key_and_provider_keys_from_the_environment() -> None:
    env = read_env_file(MOCK_ENV)
    config = load_config(DEPLOY / "hedge.yaml", env=env)
    assert config.server.master_key == env["HEDGE_MASTER_KEY"]
    assert {p.api_key for p in config.providers.values()} <= set(env.values())
    for name in ("HEDGE_MASTER_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "POSTGRES_PASSWORD"):
        missing = {k: v for k, v in env.items() if k != name}
        with pytest.raises(ConfigError, match=name):
            load_config(DEPLOY / "hedge.yaml", env=missing)
        # compose hands the variable over empty when it is unset; empty counts as unset.
        with pytest.raises(ConfigError, match=name):
            load_config(DEPLOY / "hedge.yaml", env={**missing, name: ""})
    # Without the mocks' URLs the providers are the real APIs.
    real = {k: v for k, v in env.items() if not k.endswith("_BASE_URL")}
    urls = {name: p.base_url for name, p in load_config(DEPLOY / "hedge.yaml", env=real).providers.items()}
    assert all(url.startswith("https://") for url in urls.values()), urls


def test_compose_refuses_to_start_without_the_master_key_and_passwords() -> None:
    env = read_env_file(MOCK_ENV)
    for name in ("HEDGE_MASTER_KEY", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        with pytest.raises(AssertionError, match=name):
            load_compose({k: v for k, v in env.items() if k != name})


def test_mock_env_points_the_providers_at_the_mock_services() -> None:
    env = read_env_file(MOCK_ENV)
    compose = load_compose()
    mocks = {}
    for name, svc in compose["services"].items():
        args = hedge_args(svc)
        if args is not None and args.command == "mock":
            assert svc.get("profiles") == ["mock"], f"{name} must only run with --profile mock"
            assert args.host == "0.0.0.0", name
            mocks[name] = args
    config = load_config(DEPLOY / "hedge.yaml", env=env)
    assert config.providers
    for provider in config.providers.values():
        url = urlsplit(provider.base_url)
        assert url.hostname in mocks, f"{provider.base_url} is not a mock service"
        mock = mocks[url.hostname]
        assert (mock.style, mock.port) == (provider.style, url.port), provider


# -- tests: Prometheus and Grafana -----------------------------------------------------------------


def test_prometheus_scrapes_every_replica_on_its_port() -> None:
    compose = load_compose()
    services = compose["services"]
    prometheus = services["prometheus"]
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in prometheus["command"])
    assert repo_path(prometheus, flags["config.file"]) == DEPLOY / "prometheus.yml"
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    hedge = jobs["hedge"]
    assert hedge.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for static in hedge["static_configs"] for t in static["targets"]]
    replicas = gateways(compose)
    scraped = {}
    for target in targets:
        host, _, port = target.partition(":")
        assert host in replicas, f"prometheus scrapes {host}, not a Hedge service"
        config = load_config(DEPLOY / "hedge.yaml", env=environment(services[host]))
        assert int(port) == config.server.port, target
        scraped[host] = target
    assert set(scraped) == set(replicas), "every replica is scraped"
    for job in jobs.values():
        for static in job["static_configs"]:
            for target in static["targets"]:
                host = target.partition(":")[0]
                assert host == "localhost" or host in services, f"{job['job_name']}: unknown {host}"


def test_grafana_reads_the_prometheus_service_and_the_mounted_dashboard() -> None:
    compose = load_compose()
    services = compose["services"]
    grafana = services["grafana"]
    provisioning = repo_path(grafana, "/etc/grafana/provisioning")
    assert provisioning is not None and provisioning.is_dir()
    sources = [
        ds
        for path in sorted((provisioning / "datasources").glob("*.y*ml"))
        for ds in yaml.safe_load(path.read_text())["datasources"]
    ]
    assert len(sources) == 1 and sources[0]["type"] == "prometheus", sources
    url = urlsplit(sources[0]["url"])
    assert url.hostname == "prometheus" and "prometheus" in services
    assert url.port in [c for _a, _h, c in published(services["prometheus"])], url
    providers = [
        p
        for path in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for p in yaml.safe_load(path.read_text())["providers"]
    ]
    assert len(providers) == 1, providers
    folder = repo_path(grafana, providers[0]["options"]["path"])
    assert folder is not None and folder == DASHBOARD.parent, folder
    home = repo_path(grafana, grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home == DASHBOARD

    dashboard = load_dashboard()
    uid = sources[0]["uid"]
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: set[tuple[int, int]] = set()
    for panel in all_panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        mine = set(
            itertools.product(range(pos["x"], pos["x"] + pos["w"]), range(pos["y"], pos["y"] + pos["h"]))
        )
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and target["expr"].strip(), panel["title"]
    for var in dashboard["templating"]["list"]:
        assert var["datasource"]["uid"] == uid, var["name"]


# -- tests: the dashboard against a real scrape ----------------------------------------------------


def test_promql_reader_finds_metrics_labels_and_functions() -> None:
    query = parse_promql(
        'histogram_quantile(0.95, sum by (le, provider) (rate(hedge_x_bucket{alias=~"$a", b!="ok"}'
        "[$__rate_interval]))) / sum(hedge_y) by (team) + on(alias) 3600 * up offset 5m"
    )
    assert [(s.name, s.labels, s.functions) for s in query.selectors] == [
        ("hedge_x_bucket", ["alias", "b"], ("histogram_quantile", "sum", "rate")),
        ("hedge_y", [], ("sum",)),
        ("up", [], ()),
    ]
    assert query.grouping == ["le", "provider", "team", "alias"]
    with pytest.raises(AssertionError):
        parse_promql('sum({__name__="x"})')


@dataclass
class Scrape:
    text: str
    usable: dict[str, tuple[str, set[str]]]
    """Series names a query may use (family name plus its type's suffix): (type, label names)."""


def read_scrape(text: str) -> Scrape:
    usable: dict[str, tuple[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        names = {family.name + suffix for suffix in SUFFIXES.get(family.type, ())}
        for sample in family.samples:
            if sample.name in names:
                usable.setdefault(sample.name, (family.type, set()))[1].update(sample.labels)
    return Scrape(text, usable)


@pytest.fixture(scope="module")
def served(cheap: Mock, premium: Mock, logs: Path) -> Iterator[tuple[Gateway, Scrape]]:
    """A gateway after chat, a stream, a cache hit, failovers past an open breaker, and errors."""
    config = two_provider_config(cheap, premium)
    config["models"]["premium"]["cache_ttl_s"] = 300
    config["resilience"] = {"breaker": {"failures": 2, "cooldown_s": 3600}}
    gw = start_gateway(config, logs)
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}

    def body(model: str, content: str, **extra: Any) -> dict[str, Any]:
        return {"model": model, "messages": [{"role": "user", "content": content}], **extra}

    def chat(model: str, content: str) -> httpx.Response:
        return httpx.post(
            f"{gw.base_url}/chat/completions", headers=auth, json=body(model, content), timeout=30
        )

    def scrape() -> Scrape:
        resp = httpx.get(f"{gw.url}/metrics", timeout=10)
        assert resp.status_code == 200, resp.text
        return read_scrape(resp.text)

    try:
        for i in range(3):
            assert chat("chat", f"plain request {i}").status_code == 200
        stream = body("chat", "a stream of words", stream=True, stream_options={"include_usage": True})
        with httpx.stream(
            "POST", f"{gw.base_url}/chat/completions", headers=auth, json=stream, timeout=30
        ) as resp:
            assert resp.status_code == 200
            assert b"data: [DONE]" in resp.read()
        for _ in range(2):
            assert chat("premium", "the same question twice").status_code == 200
        cheap.configure(fail_rate=1.0, fail_status=503)
        for i in range(20):  # until a request failed over and the open breaker passed cheap over
            assert chat("chat", f"cheap is down {i}").status_code == 200
            seen = scrape().usable
            if "hedge_failovers_total" in seen and "hedge_deployment_skips_total" in seen:
                break
        premium.configure(fail_rate=1.0, fail_status=503)
        assert chat("premium", "nobody can answer this").status_code >= 500
        assert chat("no-such-alias", "hello").status_code == 404
        yield gw, scrape()
    finally:
        cheap.reset()
        premium.reset()
        gw.stop()


def test_every_metric_and_label_the_dashboard_queries_is_in_a_real_scrape(
    served: tuple[Gateway, Scrape],
) -> None:
    _gw, scrape = served
    usable = scrape.usable
    checked = set()
    for where, expr, graphed in dashboard_queries(load_dashboard()):
        query = parse_promql(expr)
        assert query.selectors, f"{where}: no metric in {expr!r}"
        available = []
        for sel in query.selectors:
            if sel.name in SYNTHETIC:
                labels = SYNTHETIC[sel.name]
                kind = "gauge"
            else:
                assert sel.name in usable, (
                    f"{where}: {sel.name} is not a series of the scrape; have {sorted(usable)}"
                )
                kind, labels = usable[sel.name]
                labels = labels | TARGET_LABELS
                checked.add(sel.name)
            rated = [f for f in sel.functions if f in RATE_FUNCTIONS]
            if not graphed:
                pass
            elif kind == "gauge":
                assert not rated, f"{where}: {'/'.join(rated)} of the gauge {sel.name}"
            else:
                assert rated, f"{where}: the {kind} series {sel.name} needs rate() or increase()"
            if sel.name.endswith("_bucket"):
                assert "histogram_quantile" in sel.functions, f"{where}: buckets outside histogram_quantile"
                assert "le" in query.grouping, f"{where}: histogram_quantile needs the buckets by le"
            unknown = set(sel.labels) - labels
            assert not unknown, f"{where}: {sel.name} has no label {sorted(unknown)} (has {sorted(labels)})"
            available.append(labels)
        for label in query.grouping:
            missing = [
                s.name for s, labels in zip(query.selectors, available, strict=True) if label not in labels
            ]
            assert not missing, f"{where}: grouping by {label}, which {missing} lack"
    # What the brief asks to chart is charted.
    for name in (
        "hedge_requests_total",
        "hedge_request_errors_total",
        "hedge_request_duration_seconds_bucket",
        "hedge_time_to_first_token_seconds_bucket",
        "hedge_input_tokens_total",
        "hedge_output_tokens_total",
        "hedge_cost_usd_total",
        "hedge_baseline_cost_usd_total",
        "hedge_upstream_attempts_total",
        "hedge_failovers_total",
        "hedge_breaker_state",
        "hedge_requests_in_flight",
    ):
        assert name in checked, f"the dashboard does not chart {name}"


def test_the_dashboard_check_catches_a_misspelt_metric(served: tuple[Gateway, Scrape]) -> None:
    """The names come from the scrape, so the comparison above is not vacuous: a typo is caught."""
    usable = served[1].usable
    assert "hedge_requests_total" in usable and "hedge_requests" not in usable
    assert (
        "hedge_request_duration_seconds_bucket" in usable and "hedge_request_duration_seconds" not in usable
    )
    assert "hedge_breaker_state" in usable and "hedge_breaker_state_total" not in usable
    assert usable["hedge_breaker_state"][0] == "gauge" and usable["hedge_requests_total"][0] == "counter"


def _health_command(cmd: list[str], old: str, new: str) -> list[str]:
    assert any(old in part for part in cmd), f"{old} not in {cmd}"
    replaced = [part.replace(old, new) for part in cmd]
    return [sys.executable if part == "python" else part for part in replaced]


def test_the_image_health_check_passes_on_a_live_gateway_and_fails_without_one(
    served: tuple[Gateway, Scrape],
) -> None:
    gw, _ = served
    check = only(final_stage(), "HEALTHCHECK").args
    cmd = json.loads(check[check.index("CMD") + 3 :].strip())
    old = f"127.0.0.1:{exposed_port()}"
    live = subprocess.run(_health_command(cmd, old, f"127.0.0.1:{gw.port}"), capture_output=True, timeout=30)
    assert live.returncode == 0, live.stderr.decode()
    dead = subprocess.run(
        _health_command(cmd, old, f"127.0.0.1:{free_port()}"), capture_output=True, timeout=30
    )
    assert dead.returncode != 0


def test_the_mock_services_health_checks_pass_on_live_mocks(logs: Path) -> None:
    for name, svc in load_compose()["services"].items():
        args = hedge_args(svc)
        if args is None or args.command != "mock":
            continue
        test = svc["healthcheck"]["test"]
        assert test[0] == "CMD", name
        mock = start_mock(args.style, logs)
        try:
            cmd = _health_command(test[1:], f"127.0.0.1:{args.port}", f"127.0.0.1:{mock.port}")
            result = subprocess.run(cmd, capture_output=True, timeout=30)
            assert result.returncode == 0, f"{name}: {result.stderr.decode()}"
        finally:
            mock.stop()
