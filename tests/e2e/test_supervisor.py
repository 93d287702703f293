"""`paraaf run all`: five processes, restarted when one dies, all stopped by Ctrl-C."""

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.smtp import SmtpServer
from tests.support.system import ROOT, SERVICES, System
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


async def healthy(system: System, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        for service in SERVICES:
            while True:
                try:
                    if (await client.get(system.url(service, "/health"))).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{service} not healthy under `paraaf run all`"
                await asyncio.sleep(0.2)


def children(pid: int) -> dict[str, int]:
    """The supervisor's child processes: module name -> pid."""
    listing = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    found = {}
    for line in listing.splitlines():
        child_pid, args = line.strip().split(" ", 1)
        found[args.split()[-1]] = int(child_pid)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_run_all_supervises_the_five_services_and_stops_them_on_ctrl_c(
    database_url: str, amqp_url: str, smtp_server: SmtpServer, secrets_dir: str
) -> None:
    """After `paraaf setup`, all five answer; a killed one comes back; SIGINT stops every process cleanly. With
    --log-file (as `make run` does) the terminal gets three lines saying what to do next, and the logs go to the file."""
    system = System(name="run_all", database_url=database_url, amqp_url=amqp_url, smtp=smtp_server, secrets_dir=secrets_dir)
    system.setup()
    terminal, log_file = system.logs / "run-all.terminal", system.logs / "run-all.log"
    log_file.unlink(missing_ok=True)
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "services", "run", "all", "--log-file", str(log_file)],
        env=system.env,
        cwd=ROOT,
        stdout=terminal.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stop_group ends the services with it
    )
    try:
        await healthy(system)
        shown = await eventually(lambda: asyncio.to_thread(lambda: "Paraaf is up" in terminal.read_text() and terminal.read_text()),
                                 "the three lines of `paraaf run all --log-file`")
        assert len(shown.splitlines()) == 3 and "paraaf demo" in shown and str(log_file) in shown, shown
        assert "service started" in log_file.read_text()
        first = children(supervisor.pid)
        assert set(first) == {f"services.{s}" for s in SERVICES}
        os.kill(first["services.router"], signal.SIGKILL)
        await asyncio.sleep(1)
        await healthy(system)
        second = children(supervisor.pid)
        assert second["services.router"] != first["services.router"]
        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=60) == 0
        assert not any(alive(pid) for pid in second.values()), "a service outlived its supervisor"
    finally:
        stop_group(supervisor)


def stop_group(supervisor: subprocess.Popen[bytes]) -> None:
    """After the test, pass or fail: SIGKILL the supervisor's process group, its services included. Killing the
    supervisor alone (as these tests did) left a failed test's services running on the CI machine, orphaned."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(supervisor.pid, signal.SIGKILL)
    supervisor.wait(timeout=30)


def listening_pids(port: int) -> set[int]:
    """The processes listening on ``port`` (ss names each socket's owner)."""
    listing = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", listing)}


async def test_run_all_with_scale_runs_replicas_that_share_the_signers_port(
    database_url: str, amqp_url: str, smtp_server: SmtpServer, secrets_dir: str
) -> None:
    """`paraaf run all --scale signer=2,router=2`: seven processes; both signers listen on the one public port; a
    killed signer replica comes back beside the other, which answered meanwhile; a wrong scale starts nothing."""
    system = System(name="run_scaled", database_url=database_url, amqp_url=amqp_url, smtp=smtp_server, secrets_dir=secrets_dir)
    system.setup()
    wrong = subprocess.run([sys.executable, "-m", "services", "run", "all", "--scale", "singer=2"], env=system.env, cwd=ROOT,
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "`singer` is not a service" in wrong.stderr
    log_file = system.logs / "run-scaled.log"
    log_file.unlink(missing_ok=True)
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "services", "run", "all", "--scale", "signer=2,router=2", "--log-file", str(log_file)],
        env=system.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        await healthy(system)
        signers = await eventually(
            lambda: asyncio.to_thread(signers_listening, supervisor.pid, system.ports["signer"]),
            "two signer processes listening on the signer's port",
        )
        assert len(sibling_pids(supervisor.pid, "services.router")) == 2
        assert len(sibling_pids(supervisor.pid, "services.intake")) == 1
        killed, kept = sorted(signers)
        os.kill(killed, signal.SIGKILL)
        # A connection the kernel had already queued on the killed replica's socket is reset with it, as with any
        # server that crashes (CI once sent /health in that instant); once its socket is gone, every new connection
        # reaches the other replica while the killed one restarts.
        await eventually(
            lambda: asyncio.to_thread(lambda: killed not in listening_pids(system.ports["signer"])),
            "the killed signer replica's socket closed",
        )
        async with httpx.AsyncClient() as client:
            assert (await client.get(system.url("signer", "/health"))).status_code == 200
        back = await eventually(
            lambda: asyncio.to_thread(signers_listening, supervisor.pid, system.ports["signer"], killed),
            "the killed signer replica back and listening",
        )
        assert kept in back
        logged = log_file.read_text()
        assert '"replica": 2' in logged and '"replica": 1' in logged
        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=60) == 0
        assert not any(alive(pid) for pid in back), "a replica outlived its supervisor"
    finally:
        stop_group(supervisor)


def sibling_pids(supervisor: int, module: str) -> set[int]:
    """The pids of the supervisor's children running ``module`` (several when it is scaled)."""
    listing = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(supervisor)], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in listing.splitlines() if line.split()[-1] == module}


def signers_listening(supervisor: int, port: int, gone: int | None = None) -> set[int] | None:
    """The two signer processes' pids once both listen on ``port`` (and ``gone`` is not among them); else None."""
    pids = sibling_pids(supervisor, "services.signer")
    return pids if len(pids) == 2 and gone not in pids and pids <= listening_pids(port) else None
