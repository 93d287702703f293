"""What `paraaf` imports before it does anything: operators type it on every incident and the suite runs it
often, so it must not load the services' broker, web and signing stacks just to parse its arguments."""

import json
import os
import subprocess
import sys
from pathlib import Path

from shared.names import CONSUMING_QUEUES
from shared.topology import TOPOLOGY

ROOT = Path(__file__).resolve().parents[2]
# `import services.cli` held 1689 modules when every sub-CLI imported whole services (694 once they did not).
MODULE_BUDGET = 1689 // 2


def _modules_after_importing_the_cli() -> list[str]:
    """sys.modules after `import services.cli` in a fresh interpreter, so this process's own imports do not count."""
    script = "import json, sys; import services.cli; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, check=True, timeout=120)
    return json.loads(done.stdout)


def test_the_cli_loads_no_broker_web_or_pdf_stack_and_no_service_wiring() -> None:
    """Importing the `paraaf` command loads neither FastStream, FastAPI nor pyHanko, nor any service's main or HTTP module."""
    modules = _modules_after_importing_the_cli()
    heavy = [
        m
        for m in modules
        if m.split(".")[0] in {"faststream", "fastapi", "starlette", "uvicorn", "pyhanko", "pyhanko_certvalidator", "fontTools", "jinja2"}
        or (m.startswith("services.") and m.endswith((".main", ".http")))
    ]
    assert heavy == []
    assert len(modules) <= MODULE_BUDGET


def test_the_queues_the_cli_names_are_the_queues_the_topology_declares() -> None:
    """`paraaf dlq` and `paraaf incidents` look after exactly the queues `paraaf broker setup` declares, in its order."""
    assert CONSUMING_QUEUES == tuple(q.name for q in TOPOLOGY.queues)
