"""docker-compose.yml's one-shot containers played without a Docker engine: `setup`, then `demo`, each as its own
process running its compose command with exactly the environment docker-compose gives that container, its volumes
as directories and nothing else. Only what a container network changes is changed: the host names `rabbitmq` and
`postgres` point at this test's vhost and database, and the broker users and roles carry the test session's
prefix (users are global to a broker)."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg
import yaml

from tests.support.session import SESSION_PREFIX

ROOT = Path(__file__).resolve().parents[2]
PARAAF = Path(sys.executable).with_name("paraaf")
DEMO_SOURCES = {"notula", "omgeving", "personeel", "loket"}


def _env_file(directory: Path) -> Path:
    """deploy/compose-secrets.sh > .env, with the session's prefix on the broker users and database roles it names."""
    made = subprocess.run(["bash", str(ROOT / "deploy" / "compose-secrets.sh")], capture_output=True, text=True, check=True)
    text = made.stdout.replace("//paraaf.", f"//{SESSION_PREFIX}.").replace("//paraaf_", f"//{SESSION_PREFIX}_")
    path = directory / ".env"
    path.write_text(text)
    return path


def _containers(env_file: Path) -> dict[str, dict]:
    resolved = subprocess.run(
        [
            "docker-compose",
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(env_file),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "config",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return yaml.safe_load(resolved.stdout)["services"]


class _Host:
    """This machine in place of the compose network: its vhost and database, the volumes as directories."""

    def __init__(self, amqp_url: str, database_url: str, admin: str, volumes: dict[str, Path]) -> None:
        self.vhost = urlsplit(amqp_url).path.lstrip("/")
        self.database = urlsplit(database_url).path.lstrip("/")
        self.admin = admin
        self.volumes = volumes

    def value(self, value: str) -> str:
        value = value.replace("//admin:", f"//{self.admin}:")
        value = value.replace("@rabbitmq:5672/", f"@127.0.0.1:5672/{self.vhost}").replace(
            "//rabbitmq:5672/", f"//127.0.0.1:5672/{self.vhost}"
        )
        value = value.replace("@rabbitmq:15672/", "@127.0.0.1:15672/")
        value = value.replace("@postgres:5432/paraaf", f"@127.0.0.1:5432/{self.database}")
        value = value.replace("//postgres:5432/paraaf", f"//postgres@127.0.0.1:5432/{self.database}")
        for inside, outside in sorted(self.volumes.items(), reverse=True):  # /var/lib/paraaf-secrets before /var/lib/paraaf
            value = value.replace(inside, str(outside))
        return value

    def run(self, container: dict, **extra: str) -> subprocess.CompletedProcess[str]:
        for directory in self.volumes.values():  # the image has them, the volumes start as its copies
            directory.mkdir(mode=0o700, exist_ok=True)
        image_env = {"PARAAF_DATA_DIR": "/var/lib/paraaf", "PARAAF_HTTP_HOST": "0.0.0.0"}  # deploy/Dockerfile's ENV
        environment = {name: self.value(str(value)) for name, value in {**image_env, **container["environment"], **extra}.items()}
        environment |= {
            "PATH": f"{PARAAF.parent}:{os.environ['PATH']}",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "HOME": self.value("/var/lib/paraaf"),
            "PARAAF_BROKER_USER_PREFIX": SESSION_PREFIX,
            "PARAAF_DB_ROLE_PREFIX": SESSION_PREFIX,
        }
        command = [self.value(part) for part in container["command"]]
        if command[:2] == ["sh", "-c"]:
            command[2] = command[2].replace("$$", "$")  # compose's escape for a literal $
        return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)


def _broker_admin(user: str, password: str, vhost: str) -> None:
    # The password on standard input, not as an argument: a generated one starts with "-" one time in 64, and
    # rabbitmqctl took it for an option (exit 64, "usage").
    subprocess.run(["rabbitmqctl", "add_user", user], input=password, text=True, check=True, capture_output=True, timeout=60)
    for args in (
        ["set_user_tags", user, "administrator"],
        ["set_permissions", "-p", unquote(vhost), user, ".*", ".*", ".*"],
    ):
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


async def test_compose_setup_then_demo_load_the_demo_city_once(
    database_url: str, amqp_url: str, secrets_dir: str, tmp_path: Path
) -> None:
    """setup files the portal's URL and the seal's certificate in the shared volume; demo loads the city and its
    four sources as make demo does, and started again it changes nothing."""
    env_file = _env_file(tmp_path)
    containers = _containers(env_file)
    admin_password = dict(line.split("=", 1) for line in env_file.read_text().splitlines())["PARAAF_BROKER_ADMIN_PASSWORD"]
    host = _Host(amqp_url, database_url, f"{SESSION_PREFIX}.admin", {})
    await asyncio.to_thread(_broker_admin, host.admin, admin_password, host.vhost)

    shared_secrets = tmp_path / "volume-secrets"
    host.volumes = {"/var/lib/paraaf-secrets": shared_secrets, "/var/lib/paraaf": tmp_path / "setup-container"}
    setup = await asyncio.to_thread(host.run, containers["setup"])
    assert setup.returncode == 0, setup.stderr
    assert json.loads((shared_secrets / "signer.json").read_text())["portal_amqp_url"]
    assert json.loads((shared_secrets / "audit.json").read_text())["seal_cert"].startswith("-----BEGIN CERTIFICATE-----")

    demo_volume = tmp_path / "volume-demo"
    host.volumes = {"/var/lib/paraaf-secrets": tmp_path / "demo-container-secrets", "/var/lib/paraaf": demo_volume}
    first = await asyncio.to_thread(host.run, containers["demo"])
    assert first.returncode == 0, first.stderr
    urls = {path.stem: path.read_text().strip() for path in (demo_volume / "sources").glob("*.url")}
    assert set(urls) == DEMO_SOURCES
    assert all(unquote(urlsplit(url).username or "") == f"{SESSION_PREFIX}.source.{source}" for source, url in urls.items())
    database = await asyncpg.connect(database_url)
    try:
        people = await database.fetchval("SELECT count(*) FROM router.people")
        flows = {row["key"] for row in await database.fetch("SELECT key FROM router.flows")}
    finally:
        await database.close()
    assert people > 0 and flows == {path.stem for path in (ROOT / "deploy" / "demo" / "flows").glob("*.yaml")}

    again = await asyncio.to_thread(host.run, containers["demo"])
    assert again.returncode == 0, again.stderr
    assert again.stdout == again.stderr == ""
    assert {path.stem: path.read_text().strip() for path in (demo_volume / "sources").glob("*.url")} == urls
