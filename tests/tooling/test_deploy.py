"""The deploy kit agrees with the app: every manifest parses and validates against the Kubernetes
schemas, probes name the app's health paths, ports the CLI's default port, environment variables
the options' names; the Dockerfile passes hadolint and builds what the manifests run; the Redis
URLs parse as the app parses them; the Sentinel configuration is accepted by redis-sentinel.

Docker cannot run on these machines (no engine), so the image itself is not built here: the
Dockerfile is linted and its instructions checked against the repository."""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from livetemplate.backends.redis_clients import parse_url
from livetemplate.cli.serve import DEFAULT_PORT
from livetemplate.options import ENVIRONMENT, Options
from tests.support.ports import free_port
from tests.tooling.processes import ROOT

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
OPTIONS = Options()
assert OPTIONS.health_path is not None
LIVE = OPTIONS.health_path + "/live"
READY = OPTIONS.health_path + "/ready"
#: Variables the kit may set beside the options' (read by uvicorn, Python or prometheus_client).
OTHER_VARIABLES = {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PROMETHEUS_MULTIPROC_DIR", "WEB_CONCURRENCY"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kubernetes(kind: str) -> list[dict[str, Any]]:
    found = [doc for path in sorted(KUBERNETES.glob("*.yaml")) for doc in documents(path) if doc.get("kind") == kind]
    assert found, f"no {kind} in {KUBERNETES}"
    return found


def tool(name: str) -> str:
    """A console script installed beside this interpreter (the dev extra)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else shutil.which(name) or name


def test_every_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 7
    for path in files:
        assert documents(path), f"{path} is empty"


def test_manifests_validate_against_the_kubernetes_schemas() -> None:
    manifests = [str(p) for p in sorted(KUBERNETES.glob("*.yaml")) if p.name != "kustomization.yaml"]
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", *manifests], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == 6


def test_kustomization_lists_every_manifest() -> None:
    [kustomization] = documents(KUBERNETES / "kustomization.yaml")
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}


def container() -> dict[str, Any]:
    [deployment] = kubernetes("Deployment")
    [app] = deployment["spec"]["template"]["spec"]["containers"]
    return app  # type: ignore[no-any-return]


def test_probes_use_the_health_paths_on_the_app_port() -> None:
    app = container()
    ports = {port["name"]: port["containerPort"] for port in app["ports"]}
    assert ports == {"http": DEFAULT_PORT}
    expected = {"livenessProbe": LIVE, "readinessProbe": READY, "startupProbe": LIVE}
    for probe, path in expected.items():
        get = app[probe]["httpGet"]
        assert get["path"] == path, probe
        assert ports.get(get["port"], get["port"]) == DEFAULT_PORT, probe
    # the guide's settings: liveness never restarts on a blip; readiness leaves after 20 s
    assert app["livenessProbe"]["failureThreshold"] * app["livenessProbe"]["periodSeconds"] >= 90
    assert app["readinessProbe"]["failureThreshold"] == 2
    assert app["startupProbe"]["failureThreshold"] * app["startupProbe"]["periodSeconds"] >= 150


def test_the_container_runs_the_cli_on_the_default_port() -> None:
    args = container()["args"]
    assert args[:3] == ["livetemplate", "serve", "examples.todos.app:app"]
    assert args[args.index("--port") + 1] == str(DEFAULT_PORT)
    assert args[args.index("--host") + 1] == "0.0.0.0"
    [deployment] = kubernetes("Deployment")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(DEFAULT_PORT)
    assert annotations["prometheus.io/path"] == OPTIONS.metrics_path


def test_environment_variables_are_the_apps() -> None:
    env = {item["name"]: item for item in container()["env"]}
    assert set(env) <= set(ENVIRONMENT) | OTHER_VARIABLES, set(env) - set(ENVIRONMENT)
    assert {"LIVETEMPLATE_BACKEND", "LIVETEMPLATE_SECRET_KEY"} <= set(env)
    [secret] = kubernetes("Secret")
    for item in env.values():
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in secret["stringData"]
        else:
            variable = ENVIRONMENT.get(item["name"])
            if variable is not None:
                _, parse = variable
                parse(item["value"])  # the app accepts the value
    parse_url(secret["stringData"]["backend-url"])


def test_drain_fits_in_the_grace_period() -> None:
    [deployment] = kubernetes("Deployment")
    spec = deployment["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    sleep = int(re.fullmatch(r"sleep (\d+)", command[-1]).group(1))  # type: ignore[union-attr]
    env = {item["name"]: item.get("value") for item in container()["env"]}
    drain = float(env.get("LIVETEMPLATE_SHUTDOWN_TIMEOUT") or OPTIONS.shutdown_timeout)
    assert pod["terminationGracePeriodSeconds"] >= sleep + drain + 2  # + uvicorn's margin (server.py)
    resources = container()["resources"]
    assert resources["requests"]["memory"] and resources["limits"]["memory"]


def test_the_pod_runs_as_the_images_user() -> None:
    [deployment] = kubernetes("Deployment")
    security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == dockerfile_user()


def test_service_ingress_and_network_policy_fit_together() -> None:
    [deployment] = kubernetes("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    [service] = kubernetes("Service")
    assert service["spec"]["selector"] == labels
    [port] = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container()["ports"]}
    [ingress] = kubernetes("Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": port["name"]}}
    annotations = ingress["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600  # WebSockets stay open
    [policy] = kubernetes("NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == labels
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [DEFAULT_PORT]
    egress = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {6379, 26379, 53} <= egress


def test_prometheus_scrapes_the_metrics_path() -> None:
    for path in DEPLOY.glob("prometheus/prometheus.yml"):  # deploy/prometheus, from the operations work
        [config] = documents(path)
        [job] = [job for job in config["scrape_configs"] if job["job_name"] == "livetemplate"]
        assert job["metrics_path"] == OPTIONS.metrics_path
        for target in job["static_configs"][0]["targets"]:
            assert target.endswith(f":{DEFAULT_PORT}")


# -- the Dockerfile ----------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n(?:\s*#[^\n]*\n)*", " ", text)
    found = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def dockerfile_user() -> str:
    users = [args for word, args in instructions() if word == "USER"]
    return users[-1]


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_the_wheel_and_runs_it_as_a_non_root_user() -> None:
    steps = instructions()
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    words = [word for word, _ in final]
    run = " ".join(args for word, args in final if word == "RUN")
    assert "COPY" in words and any(args.startswith("--from=build /wheels") for word, args in final if word == "COPY")
    assert "pip install" in run and "livetemplate-*.whl" in run and "[redis]" in run
    assert dockerfile_user() not in ("root", "0") and words.index("USER") < words.index("CMD")
    assert [args for word, args in final if word == "EXPOSE"] == [str(DEFAULT_PORT)]
    [healthcheck] = [args for word, args in final if word == "HEALTHCHECK"]
    assert f"http://127.0.0.1:{DEFAULT_PORT}{LIVE}" in healthcheck
    [cmd] = [args for word, args in final if word == "CMD"]
    command = yaml.safe_load(cmd)  # the exec form is a JSON array
    assert command[:2] == ["livetemplate", "serve"] and command[command.index("--port") + 1] == str(DEFAULT_PORT)
    assert command[2] == container()["args"][2]  # the manifests run the image's app


def test_dockerfile_copies_what_the_repository_has() -> None:
    for word, args in instructions():
        if word != "COPY" or args.startswith("--from"):
            continue
        sources = [a for a in shlex.split(args) if not a.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


# -- the Redis Sentinel example ------------------------------------------------------------------


def test_compose_example_uses_the_apps_variables_and_urls() -> None:
    [compose] = documents(DEPLOY / "redis-sentinel" / "compose.yaml")
    services = compose["services"]
    apps = [s for s in services.values() if s.get("image") == "livetemplate-app"]
    assert len(apps) == 2
    for app in apps:
        assert set(app["environment"]) <= set(ENVIRONMENT)
        url = parse_url(app["environment"]["LIVETEMPLATE_BACKEND"])
        assert url.topology == "sentinel" and url.service_name == "mymaster"
        assert {host for host, _ in url.hosts} == {n for n in services if n.startswith("sentinel-")}
        [mapping] = app["ports"]
        assert mapping.endswith(f":{DEFAULT_PORT}")
    replicas = [s for n, s in services.items() if n.startswith("redis-replica")]
    assert len(replicas) == 2 and all("--replicaof" in s["command"] for s in replicas)


def test_sentinel_configuration_is_accepted_by_redis_sentinel(tmp_path: Path) -> None:
    """The example's sentinel.conf, pointed at a real redis-server on loopback: the sentinel
    starts and names the master."""
    redis_server = shutil.which("redis-server")
    assert redis_server is not None, "apt-get install redis-server"
    master_port, sentinel_port = free_port(), free_port()
    conf = (DEPLOY / "redis-sentinel" / "sentinel.conf").read_text()
    conf = conf.replace("port 26379", f"port {sentinel_port}\nbind 127.0.0.1")
    conf = conf.replace("redis-master 6379", f"127.0.0.1 {master_port}")
    (tmp_path / "sentinel.conf").write_text(conf)
    master = subprocess.Popen(
        [redis_server, "--port", str(master_port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    sentinel = subprocess.Popen(
        [redis_server, str(tmp_path / "sentinel.conf"), "--sentinel", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        answer = ask(sentinel_port, b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$8\r\nmymaster\r\n")
        assert answer == f"*2\r\n$9\r\n127.0.0.1\r\n${len(str(master_port))}\r\n{master_port}\r\n".encode()
        assert sentinel.poll() is None
    finally:
        for process in (sentinel, master):
            process.terminate()
            process.wait(10)


def ask(port: int, command: bytes, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(command)
                return sock.recv(4096)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.dockerignore"])
def test_kit_files_exist(name: str) -> None:
    assert (DEPLOY / name).is_file()
