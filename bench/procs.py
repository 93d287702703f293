"""What each service process costs, read from /proc: CPU seconds (its own and
its worker processes', living or reaped) and peak resident memory (VmHWM);
and py-spy profiles of them, saved as collapsed stacks with a summary of
where the time went."""

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Machine", "Profiler", "Usage", "machine", "usage"]

_TICKS = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    return children


def _tree(pid: int) -> list[int]:
    children, found, todo = _children(), [], [pid]
    while todo:
        found.append(current := todo.pop())
        todo += children.get(current, [])
    return found


def _cpu(pid: int) -> float:
    """utime + stime + cutime + cstime: a living child is counted by itself, a reaped one in its parent's c-times."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / _TICKS


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float  # the process and its workers, since they started
    peak_rss_mib: float  # the main process's VmHWM
    peak_rss_tree_mib: float  # the sum of every process's VmHWM (an upper bound: peaks need not coincide)
    processes: int


def usage(pid: int) -> Usage:
    cpu, hwm, main, count = 0.0, 0, 0, 0
    for member in _tree(pid):
        try:
            cpu += _cpu(member)
            peak = _hwm_kib(member)
        except (OSError, IndexError, ValueError):
            continue  # gone between the listing and the read
        hwm += peak
        main = peak if member == pid else main
        count += 1
    return Usage(cpu, main / 1024, hwm / 1024, count)


@dataclass(frozen=True)
class Machine:
    """CPU seconds used so far: by the whole machine (every core), and by the processes of each program that the
    pipeline leans on but that are not Paraaf's (PostgreSQL, RabbitMQ), machine-wide: whoever else uses them on a
    shared machine is counted too."""

    busy: float  # every core's non-idle time
    total: float  # every core's time, idle included
    programs: dict[str, float]  # "PostgreSQL", "RabbitMQ" -> CPU seconds of their processes (reaped ones included)


_PROGRAMS = {"postgres": "PostgreSQL", "beam.smp": "RabbitMQ"}


def machine() -> Machine:
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in cpu[:8]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    programs = dict.fromkeys(_PROGRAMS.values(), 0.0)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                name = Path(f"/proc/{entry}/comm").read_text().strip()
                if name in _PROGRAMS:
                    programs[_PROGRAMS[name]] += _cpu(int(entry))
            except (OSError, IndexError, ValueError):
                continue  # gone between the listing and the read
    return Machine((sum(ticks) - idle) / _TICKS, sum(ticks) / _TICKS, programs)


def _py_spy() -> str:
    """py-spy from this environment (the bench's extra), else from PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy") or "py-spy"


class Profiler:
    """py-spy sampling each service (with its worker processes) while the peak phase runs; collapsed stacks saved
    to ``folder/<service>.txt`` (speedscope.app and flamegraph.pl open them)."""

    def __init__(self, folder: Path, rate: int = 50) -> None:
        self.folder = folder
        self._rate = rate
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, pids: dict[str, int]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for service, pid in pids.items():
            self._running[service] = subprocess.Popen(
                [_py_spy(), "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", str(self._rate),
                 "--format", "raw", "--output", str(self.folder / f"{service}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        for process in self._running.values():
            process.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        for process in self._running.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        self._running.clear()


def _frame_name(frame: str) -> str:
    return frame.split(" (")[0] + (" (" + frame.split(" (")[1].split(":")[0] + ")" if " (" in frame else "")


def summarise(collapsed: Path, top: int = 12) -> list[str]:
    """The frames where the samples were taken (self time), heaviest first, with their share; idle waits
    (epoll, sleeping threads) listed like any other so the busy share is readable against them."""
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        own[_frame_name(stack.split(";")[-1])] += int(count)
    return [f"{count / total:6.1%}  {frame}" for frame, count in own.most_common(top)] if total else []
