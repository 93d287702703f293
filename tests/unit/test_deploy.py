"""The deployment files, checked without a Docker engine or a cluster: Debian's docker-compose parses the compose
file, kubernetes-validate (strict) accepts every Kubernetes manifest, the operators' own CRD schemas (vendored in
deploy/kubernetes/schemas/) accept their resources, and what the files run is what README and the Makefile run."""

import fnmatch
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv
import pytest
import yaml

from services.admin.config import AdminSettings
from services.audit.config import AuditSettings
from services.intake.config import IntakeSettings
from services.notifier.config import NotifierSettings
from services.ops.config import OpsSettings
from services.router.config import RouterSettings
from services.signer.config import SignerSettings
from shared.credentials import FIELDS
from shared.names import CONSUMING_QUEUES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
KUBERNETES = ROOT / "deploy" / "kubernetes"
SCHEMAS = KUBERNETES / "schemas"
SERVICES = {
    "intake": IntakeSettings,
    "router": RouterSettings,
    "signer": SignerSettings,
    "notifier": NotifierSettings,
    "audit": AuditSettings,
}
PORTS = {name: cls.model_fields[f"{name}_port"].default for name, cls in SERVICES.items()}
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"paraaf:{VERSION}"
# The oldest Kubernetes the operators' current releases support (CloudNativePG 1.30: 1.34) and the newest known.
KUBERNETES_VERSIONS = ("1.34", kv.latest_version())
# Secrets that something other than deploy/kubernetes/secrets.sh makes: the operators, the setup Job, the issuer.
MADE_ELSEWHERE = {"paraaf-rabbitmq-default-user", "paraaf-db-superuser", "paraaf-setup-output", "paraaf-public-tls"}


def _docker_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: run deploy/system-packages.sh (Debian package docker-compose)"
    command = [binary, "--project-directory", str(ROOT), "--env-file", str(env_file), "-f", str(COMPOSE), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env={"PATH": os.environ["PATH"]})


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .env as an operator makes it: deploy/compose-secrets.sh > .env."""
    made = subprocess.run(["bash", str(ROOT / "deploy" / "compose-secrets.sh")], capture_output=True, text=True, check=True)
    path = tmp_path_factory.mktemp("compose") / ".env"
    path.write_text(made.stdout)
    return path


@pytest.fixture(scope="module")
def compose(env_file: Path) -> dict[str, Any]:
    """The compose file as docker-compose resolves it (anchors merged, variables filled in)."""
    resolved = _docker_compose("config", env_file=env_file)
    assert resolved.returncode == 0, resolved.stderr
    return yaml.safe_load(resolved.stdout)


def _paraaf_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose["services"].items() if "build" in service}


# --- docker-compose.yml ------------------------------------------------------------------------------------------


def test_docker_compose_parses_the_compose_file_with_the_secrets_it_asks_for(env_file: Path) -> None:
    """`docker-compose config -q` (Debian's 1.29) accepts docker-compose.yml with a .env from compose-secrets.sh."""
    checked = _docker_compose("config", "-q", env_file=env_file)
    assert checked.returncode == 0, checked.stderr


def test_compose_without_its_secrets_refuses_and_says_what_to_run() -> None:
    """With .env.example as it is (no passwords), compose stops and names the command that makes them."""
    refused = _docker_compose("config", "-q", env_file=ROOT / ".env.example")
    assert refused.returncode != 0
    assert "run deploy/compose-secrets.sh > .env" in refused.stderr


def test_every_paraaf_container_runs_the_image_deploy_dockerfile_builds(compose: dict[str, Any]) -> None:
    """setup, demo and the five services are built from deploy/Dockerfile at the root, tagged with the version."""
    services = _paraaf_services(compose)
    assert set(services) == {"setup", "demo", *SERVICES}
    for name, service in services.items():
        assert Path(service["build"]["context"]) == ROOT, name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert service["image"] == IMAGE, name
    copied = re.findall(r"^COPY (.+) \S+$", (ROOT / "deploy" / "Dockerfile").read_text(), re.MULTILINE)
    for sources in copied:
        for source in sources.split():
            assert (ROOT / source).exists(), f"deploy/Dockerfile copies {source}, which is not in the repository"


def test_the_build_context_leaves_out_the_env_file_but_nothing_the_dockerfile_copies() -> None:
    """.dockerignore keeps .env (every password) and local installs out of the image; no COPY source is ignored."""
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert {".env", ".venv", ".git"} <= set(ignored)
    copied = re.findall(r"^COPY (.+) \S+$", (ROOT / "deploy" / "Dockerfile").read_text(), re.MULTILINE)
    for source in (source for sources in copied for source in sources.split()):
        assert not any(fnmatch.fnmatch(source, pattern) or source.startswith(f"{pattern}/") for pattern in ignored), source


class _Probe(http.server.BaseHTTPRequestHandler):
    status = 503

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_each_service_is_healthy_only_while_its_readyz_answers_200(compose: dict[str, Any]) -> None:
    """Each service's healthcheck asks /readyz on the service's own port: it fails on 503, passes on 200."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Probe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for name, port in PORTS.items():
            test = compose["services"][name]["healthcheck"]["test"]
            assert test[:3] == ["CMD", "python", "-c"], name
            assert f"http://127.0.0.1:{port}/readyz" in test[3], name
            probe = test[3].replace(f"127.0.0.1:{port}", f"127.0.0.1:{server.server_port}")
            for status, healthy in ((503, False), (200, True)):
                _Probe.status = status
                ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30)
                assert (ran.returncode == 0) is healthy, f"{name}'s healthcheck with /readyz answering {status}"
    finally:
        server.shutdown()


def test_env_example_documents_every_variable_compose_reads_and_no_other(env_file: Path) -> None:
    """Every ${VAR} of docker-compose.yml is in .env.example under a comment, as are all compose-secrets.sh prints."""
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    lines = (ROOT / ".env.example").read_text().splitlines()
    documented = {}
    for number, line in enumerate(lines):
        if match := re.match(r"^([A-Z0-9_]+)=", line):
            comments = [earlier for earlier in reversed(lines[:number]) if not re.match(r"^[A-Z0-9_]+=", earlier)][:1]
            documented[match[1]] = bool(comments and comments[0].startswith("# "))
    assert used == set(documented)
    assert all(documented.values()), [name for name, commented in documented.items() if not commented]
    assert {line.split("=", 1)[0] for line in env_file.read_text().splitlines()} <= set(documented)


def _readme_commands() -> set[str]:
    """Every `paraaf ...` and `python -m services....` line README shows in its code blocks and spans."""
    readme = (ROOT / "README.md").read_text()
    shown = re.findall(r"```(?:sh|bash)?\n(.*?)```", readme, re.DOTALL) + re.findall(r"`([^`\n]+)`", readme)
    return {line.split("#", 1)[0].strip() for block in shown for line in block.splitlines()}


def _shell_commands(script: str) -> list[str]:
    """The commands a `sh -c` line runs, in order, less its guards ([ ... ] ||, { }, touch)."""
    commands = []
    for part in re.split(r"&&|\|\|", script):
        part = re.sub(r"^[\s{]+|[\s};]+$", "", part)
        if part and not part.startswith(("[", "touch ")):
            commands.append(" ".join(part.split()))
    return commands


def _allowed(command: list[str], readme: set[str]) -> bool:
    if command[:2] == ["python", "-m"]:
        return command[2] in {f"services.{name}" for name in SERVICES} and "python -m services.<name>" in readme
    if command[0] == "paraaf":
        words = " ".join(command[:3] if len(command) > 2 and not command[2].startswith("-") else command[:2])
        return any(line.startswith(words.split(" deploy/")[0]) for line in readme if line.startswith("paraaf "))
    return False


def test_compose_runs_only_commands_that_readme_shows_and_loads_the_demo_as_make_demo_does(compose: dict[str, Any]) -> None:
    """Each container runs `paraaf ...` or `python -m services.X` as README shows them; `demo` runs make demo's lines."""
    readme = _readme_commands()
    for name, service in _paraaf_services(compose).items():
        if name != "demo":
            assert _allowed(service["command"], readme), f"{name} runs {service['command']}, which README does not show"
    demo = compose["services"]["demo"]["command"]
    assert demo[:2] == ["sh", "-c"]
    makefile = (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    make_demo = [" ".join(line.strip().replace("$(BIN)/", "").split()) for line in makefile.splitlines()[1:]]
    assert _shell_commands(demo[2].replace("$$", "$")) == make_demo
    assert "deploy/demo/sources.sh" in (ROOT / "README.md").read_text()


# --- deploy/kubernetes ------------------------------------------------------------------------------------------


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())


def _documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/kubernetes` applies: the listed files' resources, as they are."""
    return [resource for name in _kustomization()["resources"] for resource in _documents(KUBERNETES / name)]


@pytest.fixture(scope="module")
def crds() -> dict[tuple[str, str], dict[str, Any]]:
    """The vendored CRDs: (apiVersion, kind) -> the served version's OpenAPI schema."""
    found = {}
    for path in SCHEMAS.glob("*.yaml"):
        for crd in _documents(path):
            for version in crd["spec"]["versions"]:
                if version["served"]:
                    api_version = f"{crd['spec']['group']}/{version['name']}"
                    found[(api_version, crd["spec"]["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return found


def _json_schema(node: Any) -> Any:
    """An OpenAPI v3 schema of a CRD as the API server reads it, in JSON Schema, strict: a field the schema does not
    name is an error (as `kubectl apply --validate=strict` reports it), unless the schema preserves unknown fields."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {}
    for key, value in node.items():
        if key == "properties":
            schema[key] = {name: _json_schema(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            schema[key] = _json_schema(value)
        elif not key.startswith("x-kubernetes-") and key != "nullable":
            schema[key] = value
    if node.get("nullable") and isinstance(schema.get("type"), str):
        schema["type"] = [schema["type"], "null"]
    if node.get("x-kubernetes-int-or-string"):
        schema.pop("type", None)
        schema.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    return schema


def _validate(resource: dict[str, Any], crds: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Raises when the resource is not valid: the operator's CRD for a custom resource, kubernetes-validate else."""
    key = (resource["apiVersion"], resource["kind"])
    if key in crds:
        jsonschema.Draft202012Validator(_json_schema(crds[key])).validate(resource)
        # The API server checks a custom resource's metadata as any object's: Kubernetes' own ObjectMeta schema.
        for version in KUBERNETES_VERSIONS:
            kv.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": resource["metadata"]}, version, strict=True)
        assert resource["metadata"]["namespace"] == "paraaf"
        return
    for version in KUBERNETES_VERSIONS:
        kv.validate(resource, version, strict=True)  # SchemaNotFoundError for a kind it does not know: a failure here


def test_kustomization_lists_every_manifest_and_needs_no_rendering() -> None:
    """kustomization.yaml lists each manifest file of deploy/kubernetes, and only lists them (no patches, generators)."""
    kustomization = _kustomization()
    assert set(kustomization) == {"apiVersion", "kind", "resources"}
    present = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(present)


def test_every_manifest_passes_strict_validation(manifests: list[dict[str, Any]], crds: dict) -> None:
    """kubernetes-validate --strict accepts every built-in resource; the operators' CRDs accept their resources."""
    kinds = set()
    for resource in manifests:
        try:
            _validate(resource, crds)
        except (jsonschema.ValidationError, kv.ValidationError) as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{resource['kind']}/{resource['metadata']['name']}: {path}: {exc.message}")
        kinds.add(resource["kind"])
    assert {"RabbitmqCluster", "Cluster", "ObjectStore", "ScheduledBackup", "ScaledObject", "TriggerAuthentication"} <= kinds
    assert {"Deployment", "Service", "PodDisruptionBudget", "Job", "ConfigMap", "Ingress"} <= kinds


def test_kubernetes_validate_command_passes_every_file_and_leaves_only_the_vendored_kinds_to_the_crds(crds: dict) -> None:
    """`kubernetes-validate --strict` on each listed file exits 0; the only kinds it cannot check have a vendored CRD."""
    files = [str(KUBERNETES / name) for name in _kustomization()["resources"]]
    validate = str(Path(sys.executable).with_name("kubernetes-validate"))
    for version in KUBERNETES_VERSIONS:
        ran = subprocess.run(
            [validate, "--strict", "--quiet", "-k", version, *files], capture_output=True, text=True, timeout=300
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        unknown = set(re.findall(r"Couldn't find schema for kind (\S+) with api version (\S+)", ran.stdout))
        assert unknown == {(kind, api_version) for api_version, kind in crds}


def _one(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [r for r in manifests if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def test_strict_validation_refuses_a_misspelt_field_in_a_deployment_and_in_each_custom_resource(
    manifests: list[dict[str, Any]], crds: dict
) -> None:
    """A field that does not exist (`replica` for `replicas`, a typo in a spec) fails, built-in or custom."""
    deployment = _one(manifests, "Deployment", "paraaf-intake")
    with pytest.raises(kv.ValidationError):
        _validate({**deployment, "spec": {**deployment["spec"], "replica": 2}}, crds)
    for resource in manifests:
        if (resource["apiVersion"], resource["kind"]) in crds:
            with pytest.raises(jsonschema.ValidationError):
                _validate({**resource, "spec": {**resource["spec"], "replica": 3}}, crds)


def test_vendored_crds_are_the_operators_released_files_and_valid_crds() -> None:
    """Each file in schemas/ has the sha256 its SOURCES.md row gives (a released tag), and is a valid CRD."""
    rows = re.findall(r"^\| `([^`]+\.yaml)` \|.*\| `([0-9a-f]{64})` \|$", (SCHEMAS / "SOURCES.md").read_text(), re.MULTILINE)
    assert {name for name, _ in rows} == {path.name for path in SCHEMAS.glob("*.yaml")}
    for name, digest in rows:
        assert hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest() == digest, f"{name} differs from the upstream file"
        for crd in _documents(SCHEMAS / name):
            kv.validate(crd, KUBERNETES_VERSIONS[0], strict=True)


@pytest.fixture(scope="module")
def made_secrets() -> list[dict[str, Any]]:
    env = {"PATH": os.environ["PATH"], "BACKUP_ACCESS_KEY_ID": "key", "BACKUP_ACCESS_SECRET_KEY": "secret"}
    made = subprocess.run(["bash", str(KUBERNETES / "secrets.sh")], capture_output=True, text=True, check=True, env=env)
    return [document for document in yaml.safe_load_all(made.stdout) if document]


def _secret_references(node: Any) -> set[tuple[str, str | None]]:
    """(secret, key) for each secretKeyRef, secretTargetRef and S3 credential; (secret, None) for envFrom/volumes."""
    found: set[tuple[str, str | None]] = set()
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            found.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
        if "secretRef" in node:
            found.add((node["secretRef"]["name"], None))
        if "secretName" in node:
            found.add((node["secretName"], None))
        if "parameter" in node and "name" in node and "key" in node:
            found.add((node["name"], node["key"]))
        if set(node) == {"name", "key"}:
            found.add((node["name"], node["key"]))
        for value in node.values():
            found |= _secret_references(value)
    elif isinstance(node, list):
        for value in node:
            found |= _secret_references(value)
    return found


def test_secrets_script_makes_valid_secrets_with_every_key_the_manifests_read(
    manifests: list[dict[str, Any]], made_secrets: list[dict[str, Any]], crds: dict
) -> None:
    """secrets.sh prints valid Secrets; each Secret a manifest reads comes from it (or an operator), with the key read."""
    for secret in made_secrets:
        _validate(secret, crds)
    made = {s["metadata"]["name"]: set(s["stringData"]) for s in made_secrets}
    config_map_keys = {r["metadata"]["name"]: set(r["data"]) for r in manifests if r["kind"] == "ConfigMap"}
    for secret, key in _secret_references(manifests):
        if secret in MADE_ELSEWHERE or secret in config_map_keys:
            continue
        assert secret in made, f"no Secret {secret}: secrets.sh does not make it"
        assert key is None or key in made[secret], f"Secret {secret} has no key {key}"
    for name in SERVICES:
        upper = name.upper()
        assert {f"PARAAF_{upper}_AMQP_URL", f"PARAAF_{upper}_DATABASE_URL"} <= made[f"paraaf-{name}"]
    assert "PARAAF_KEY_SECRET" in made["paraaf-signer"] and "PARAAF_AUDIT_SEAL_KEY" in made["paraaf-audit"]
    assert not any("PARAAF_KEY_SECRET" in keys for secret, keys in made.items() if secret != "paraaf-signer")


def _deployment(manifests: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return _one(manifests, "Deployment", f"paraaf-{name}")


def test_each_service_runs_the_compose_image_and_command_and_takes_traffic_once_ready(
    manifests: list[dict[str, Any]], compose: dict[str, Any]
) -> None:
    """Each Deployment runs the compose file's image and command, probes /readyz on its port, and has a budget."""
    for name, port in PORTS.items():
        pod = _deployment(manifests, name)["spec"]["template"]
        [container] = pod["spec"]["containers"]
        assert container["image"] == compose["services"][name]["image"] == IMAGE
        assert container["command"] == compose["services"][name]["command"] == ["python", "-m", f"services.{name}"]
        assert [p["containerPort"] for p in container["ports"]] == [port]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        [budget] = [r for r in manifests if r["kind"] == "PodDisruptionBudget" and r["metadata"]["name"] == f"paraaf-{name}"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        service = _one(manifests, "Service", f"paraaf-{name}")
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        assert service["spec"]["ports"][0]["port"] == port
    job = _one(manifests, "Job", "paraaf-setup")["spec"]["template"]["spec"]
    paraaf = [c for c in job["initContainers"] + job["containers"] if c["command"][0] == "paraaf"]
    assert [(c["image"], c["command"]) for c in paraaf] == [(IMAGE, compose["services"]["setup"]["command"])]
    assert {c["image"] for c in job["initContainers"] if c["image"].startswith("paraaf")} == {IMAGE}
    assert _allowed(compose["services"]["setup"]["command"], _readme_commands())


def test_setup_job_files_what_the_services_mount(manifests: list[dict[str, Any]]) -> None:
    """The setup Job puts in Secret paraaf-setup-output every key a service mounts from it (so each waits for it)."""
    job = _one(manifests, "Job", "paraaf-setup")["spec"]["template"]["spec"]
    [filer] = job["containers"]
    filed = {re.match(r"--from-(?:file|literal)=([^=]+)=", arg)[1] for arg in filer["command"] if arg.startswith("--from-")}
    for name in SERVICES:
        volumes = _deployment(manifests, name)["spec"]["template"]["spec"]["volumes"]
        [output] = [v["secret"] for v in volumes if v.get("secret", {}).get("secretName") == "paraaf-setup-output"]
        assert {item["key"] for item in output["items"]} <= filed, name
    assert filed == {"signer.json", "audit.json", "done"}


def test_router_and_signer_scale_on_cpu_and_on_their_own_queues_depth(manifests: list[dict[str, Any]]) -> None:
    """A KEDA ScaledObject per router and signer, with a CPU trigger and a RabbitMQ trigger on its own queue."""
    scaled = {r["spec"]["scaleTargetRef"]["name"]: r for r in manifests if r["kind"] == "ScaledObject"}
    assert set(scaled) == {"paraaf-router", "paraaf-signer"}
    for name in ("router", "signer"):
        spec = scaled[f"paraaf-{name}"]["spec"]
        assert spec["minReplicaCount"] >= 2
        triggers = {t["type"]: t for t in spec["triggers"]}
        assert set(triggers) == {"cpu", "rabbitmq"}
        queue = triggers["rabbitmq"]["metadata"]["queueName"]
        assert queue in CONSUMING_QUEUES and queue.startswith(f"{name}.")
        assert "replicas" not in _deployment(manifests, name)["spec"], "KEDA owns the replicas"
        container = _deployment(manifests, name)["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["requests"]["cpu"], "a CPU trigger needs a CPU request"


def test_broker_and_database_are_three_node_operator_clusters_with_wal_archiving(manifests: list[dict[str, Any]]) -> None:
    """Three RabbitMQ nodes; three PostgreSQL instances whose WAL the Barman Cloud plugin archives, backed up nightly."""
    assert _one(manifests, "RabbitmqCluster", "paraaf-rabbitmq")["spec"]["replicas"] == 3
    cluster = _one(manifests, "Cluster", "paraaf-db")["spec"]
    assert cluster["instances"] == 3
    [archiver] = [p for p in cluster["plugins"] if p.get("isWALArchiver")]
    _one(manifests, "ObjectStore", archiver["parameters"]["barmanObjectName"])
    [backup] = [r for r in manifests if r["kind"] == "ScheduledBackup"]
    assert backup["spec"]["cluster"]["name"] == "paraaf-db" and backup["spec"]["pluginConfiguration"]["name"] == archiver["name"]


def _known_settings() -> set[str]:
    classes = (*SERVICES.values(), AdminSettings, OpsSettings)
    names = {f"PARAAF_{field.upper()}" for cls in classes for field in cls.model_fields}
    names |= {f"PARAAF_{who.upper()}_{field.upper()}" for who in (*SERVICES, "operator") for field in FIELDS}
    return names


def test_every_paraaf_variable_the_deployment_files_set_is_a_setting_paraaf_reads(
    manifests: list[dict[str, Any]], compose: dict[str, Any], made_secrets: list[dict[str, Any]]
) -> None:
    """No PARAAF_* name the containers get (compose, the ConfigMap, the Job's env, secrets.sh) is misspelt or stale."""
    named: set[str] = set()
    for service in compose["services"].values():
        named |= {key for key in service.get("environment", {}) if key.startswith("PARAAF_")}
    for resource in manifests:
        if resource["kind"] == "ConfigMap":
            named |= set(resource["data"])
        named |= set(re.findall(r"'name': '(PARAAF_[A-Z0-9_]+)'", str(resource)))
    for secret in made_secrets:
        named |= {key for key in secret["stringData"] if key.startswith("PARAAF_")}
    assert named - _known_settings() == set()
