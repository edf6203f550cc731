"""deploy/ stays in step with the daemon: the metric names, labels, env vars and settings it names exist.

A renamed metric or label, a setting moved to another section, or a Ray upgrade that the deploy files do not
follow fails here instead of on a Grafana panel gone blank or a cluster that will not start.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml
from prometheus_client.metrics import MetricWrapperBase

from engine import daemon
from engine.api import metrics
from engine.config import ServerSettings, Settings, load_settings
from engine.web.server import CORS_EXPOSED_HEADERS, CORS_REQUEST_HEADERS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CLUSTER = DEPLOY / "ray" / "cluster.yaml"
KUBERAY = DEPLOY / "kuberay" / "raycluster.yaml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA = DEPLOY / "grafana" / "trademaster.json"
ENVOY = DEPLOY / "envoy.yaml"

_METRIC = re.compile(r"\btrademaster_[a-zA-Z0-9_]+")
_SELECTOR = re.compile(r"(trademaster_[a-zA-Z0-9_]+)\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _exposed() -> dict[str, set[str]]:
    """Every sample name the daemon's metrics expose, with the labels it carries (`le` on buckets)."""
    found: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        (family,) = metric.describe()
        labels = set(metric._labelnames)
        for suffix in _SUFFIXES[family.type]:
            found[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return found


def _dashboard() -> dict:
    return json.loads(GRAFANA.read_text())


def _expressions(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def _label_values(expr: str) -> tuple[str, str] | None:
    match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", expr)
    return (match[1], match[2]) if match else None


def test_the_expected_names_come_from_the_module() -> None:
    exposed = _exposed()
    # If this breaks, _exposed no longer reads the module and every check below would pass vacuously.
    assert "trademaster_orders_total" in exposed
    assert {"trademaster_rpc_duration_seconds_bucket", "trademaster_rpc_duration_seconds_count"} <= set(exposed)
    assert "le" in exposed["trademaster_rpc_duration_seconds_bucket"]


def test_dashboard_uses_only_metrics_and_labels_that_exist() -> None:
    exposed = _exposed()
    exprs = _expressions(_dashboard())
    assert exprs
    for expr in exprs:
        names = set(_METRIC.findall(expr))
        assert names, f"no trademaster metric in {expr!r}"
        unknown = names - set(exposed)
        assert not unknown, f"{expr!r} names {sorted(unknown)}, not in engine/api/metrics.py ({sorted(exposed)})"
        allowed = set().union(*(exposed[n] for n in names))
        used = {label for _, inner in _SELECTOR.findall(expr) for label in _MATCHER.findall(inner)}
        used |= {label.strip() for group in _GROUPING.findall(expr) for label in group.split(",") if label.strip()}
        if (pair := _label_values(expr)) is not None:
            used.add(pair[1])
        assert used <= allowed, f"{expr!r} uses labels {sorted(used - allowed)} that {sorted(names)} lack"


def test_dashboard_covers_every_metric() -> None:
    referenced = {n for expr in _expressions(_dashboard()) for n in _METRIC.findall(expr)}
    families = {m.describe()[0].name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    missing = {f for f in families if not any(r.startswith(f) for r in referenced)}
    assert not missing, f"metrics without a panel: {sorted(missing)}"


def test_dashboard_panels_all_use_the_datasource_variable() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_prometheus_scrapes_the_metrics_port_with_a_token_file() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    text = PROMETHEUS.read_text()
    unknown = set(_METRIC.findall(text)) - set(_exposed())
    assert not unknown, f"prometheus.yml names metrics that do not exist: {sorted(unknown)}"
    (job,) = config["scrape_configs"]
    assert job["authorization"]["credentials_file"]
    assert job["authorization"].get("type", "Bearer") == "Bearer"  # the daemon checks `Bearer <token>`
    assert "credentials" not in job["authorization"] and "bearer_token" not in job
    default_port = ServerSettings().metrics_listen.rpartition(":")[2]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets and all(t.rpartition(":")[2] == default_port for t in targets)
    # Any role may scrape; the file tells the reader to use a viewer, the least one.
    assert "--role viewer" in text


def test_cluster_yaml_is_a_valid_ray_cluster_config() -> None:
    config = yaml.safe_load(CLUSTER.read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    egress = {n: t["resources"] for n, t in types.items() if any(r.startswith("egress_ip_") for r in t["resources"])}
    assert len(egress) >= 2 and config["head_node_type"] not in egress
    assert len({r for res in egress.values() for r in res if r.startswith("egress_ip_")}) == len(egress)
    # The nodes' Ray must be one the daemon supports (pyproject: ray>=2.40) on its Python.
    assert tuple(int(n) for n in _ray_version(config["docker"]["image"]).split(".")[:2]) >= (2, 40)


def _ray_version(image: str) -> str:
    """The Ray version of a rayproject-style image tag, "<version>-py311"."""
    tag = image.rsplit(":", 1)[1]
    assert tag.endswith("-py311"), f"{image}: the daemon runs on Python 3.11"
    return tag.removesuffix("-py311")


def _kuberay() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(KUBERAY.read_text())}


def _head_container(docs: dict[str, dict]) -> dict:
    (container,) = docs["RayCluster"]["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    return container


def _egress_resources(group: dict) -> dict[str, float]:
    # KubeRay's documented form, pasted into the `ray start` shell line: "{\"name\": count}".
    return json.loads(group["rayStartParams"]["resources"].strip('"').replace('\\"', '"'))


def test_kuberay_cluster_matches_ray_and_the_cluster_yaml() -> None:
    docs = _kuberay()
    cluster = docs["RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    groups = cluster["spec"]["workerGroupSpecs"]
    images = [_head_container(docs)["image"]] + [
        c["image"] for g in groups for c in g["template"]["spec"]["containers"]
    ]
    launcher_config = yaml.safe_load(CLUSTER.read_text())
    # One Ray everywhere: the operator's, every pod's and the launcher's nodes'.
    versions = {cluster["spec"]["rayVersion"], _ray_version(launcher_config["docker"]["image"])}
    assert versions == {_ray_version(image) for image in images} and len(versions) == 1
    kube_egress = {r for g in groups for r in _egress_resources(g)}
    launcher = launcher_config["available_node_types"].values()
    launcher_egress = {r for t in launcher for r in t["resources"] if r.startswith("egress_ip_")}
    assert kube_egress == launcher_egress


def _env_names(container: dict) -> set[str]:
    return {e["name"] for e in container.get("env", [])}


def test_env_vars_named_are_the_ones_the_daemon_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _kuberay()
    head = _head_container(docs)
    key_env = Settings.model_fields["security"].default_factory().key_env
    assert {key_env, "RAY_ADDRESS", "TRADEMASTER_DATABASE__URL"} <= _env_names(head)
    for group in docs["RayCluster"]["spec"]["workerGroupSpecs"]:
        # Account actors on the workers decrypt broker credentials themselves.
        assert key_env in _env_names(group["template"]["spec"]["containers"][0]), group["groupName"]
    assert '"RAY_ADDRESS"' in inspect.getsource(daemon._start_ray)
    cluster_text = CLUSTER.read_text()
    assert key_env in cluster_text and "RAY_ADDRESS" in cluster_text and "TRADEMASTER_DATABASE__URL" in cluster_text
    # Every TRADEMASTER_ variable the files set must land in a setting (extra="forbid" refuses the rest).
    dsn = "postgresql://tm@db.example:5432/tm"
    monkeypatch.setenv("TRADEMASTER_DATABASE__URL", dsn)
    assert Settings().database.url == dsn
    others = {n for n in _env_names(head) if n.startswith("TRADEMASTER_")} - {key_env, "TRADEMASTER_DATABASE__URL"}
    assert not others, f"check these against engine/config.py too: {sorted(others)}"


def test_kuberay_config_map_is_a_valid_daemon_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _kuberay()
    config_file = tmp_path / "config.toml"
    config_file.write_text(docs["ConfigMap"]["data"]["config.toml"])
    monkeypatch.setenv("TRADEMASTER_DATABASE__URL", "postgresql://tm@db.example:5432/tm")
    settings = load_settings(config_file)
    assert settings.accounts, "no accounts would start the demo, whose simulators workers cannot reach"
    assert not settings.ray.address  # RAY_ADDRESS from the pod is what the daemon uses
    head = _head_container(docs)
    ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    assert ports["grpc"] == int(settings.server.listen.rpartition(":")[2])
    assert ports["metrics"] == int(settings.server.metrics_listen.rpartition(":")[2])
    mounts = {m["name"]: m["mountPath"] for m in head["volumeMounts"]}
    command = " ".join(head["args"])
    assert f"--config {mounts['config']}/config.toml" in command
    assert f"--data-dir {mounts['data']}" in command
    assert "trademaster serve" in command
    assert {p["targetPort"] for p in docs["Service"]["spec"]["ports"]} <= set(ports)


def _first_route(routes: list[dict], path: str) -> dict:
    """The route Envoy picks for `path`: the first whose prefix matches."""
    return next(r for r in routes if path.startswith(r["match"]["prefix"]))


def test_envoy_translates_grpc_web_to_the_daemons_grpc_port() -> None:
    config = yaml.safe_load(ENVOY.read_text())
    (listener,) = config["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (manager,) = [f["typed_config"] for f in chain["filters"] if f["name"].endswith("http_connection_manager")]
    filters = [f["name"] for f in manager["http_filters"]]
    assert filters[-1] == "envoy.filters.http.router"
    assert filters.index("envoy.filters.http.grpc_web") < filters.index("envoy.filters.http.router")
    assert "envoy.filters.http.cors" in filters
    assert manager["stream_idle_timeout"] == "0s"  # a quiet stream (no order events for hours) stays open

    (host,) = manager["route_config"]["virtual_hosts"]
    route = _first_route(host["routes"], "/trademaster.v1.OrderService/StreamOrderEvents")["route"]
    assert route["timeout"] == "0s" and route["max_stream_duration"]["grpc_timeout_header_max"] == "0s"
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    upstream = clusters[route["cluster"]]
    options = upstream["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]  # gRPC is HTTP/2
    (endpoints,) = upstream["load_assignment"]["endpoints"]
    ports = {e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints["lb_endpoints"]}
    assert ports == {int(ServerSettings().listen.rpartition(":")[2])}
    assert _first_route(host["routes"], "/index.html")["route"]["cluster"] != route["cluster"]

    cors = host["typed_per_filter_config"]["envoy.filters.http.cors"]
    allowed = {h.strip() for h in cors["allow_headers"].split(",")}
    exposed = {h.strip() for h in cors["expose_headers"].split(",")}
    assert set(CORS_REQUEST_HEADERS) <= allowed and set(CORS_EXPOSED_HEADERS) <= exposed  # as `serve --web` allows
