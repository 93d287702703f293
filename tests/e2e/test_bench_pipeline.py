"""`make bench` still runs its pipeline bench: a tiny run of bench/pipeline.py (a few seconds a phase) against the
five services, so CI sees the load generator, its signers and its report keep working. No figure is judged here:
speed lives in the bench's own output, not in a test."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
TINY = ["--peak-seconds", "4", "--half-seconds", "3", "--in-flight", "4", "--bare-seconds", "0.2", "--bare-messages", "50"]


def test_a_tiny_pipeline_bench_signs_every_document_it_submits_and_prints_its_figures_and_ratios(tmp_path: Path) -> None:
    """Every document the bench submitted ends completed, signed by the bench's signers through their mailed links,
    and the report names the throughput, both limits, the ratios and the latencies of both phases."""
    figures = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.pipeline", *TINY, "--json", str(figures)], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(figures.read_text())
    for phase in ("peak", "half"):
        assert report[phase]["documents"] > 0 and report[phase]["signatures"] >= report[phase]["documents"], report[phase]
        assert report[phase]["unfinished"] == 0 and report[phase]["failures"] == [], report[phase]
    assert all(report["half"]["latencies"][name] for name in ("submit → first mail", "sign click → confirmation page",
                                                              "submit → outcome")), report["half"]["latencies"]
    for words in ("signatures/s", "bare pyHanko loop", "bare aio-pika", "/ bare pyHanko loop", "/ stock pyHanko loop", "sign click → confirmation page",
                  "sign click → next signer's mail", "CPU/signature", "RSS", "reference city's year"):
        assert words in run.stdout, f"{words!r} missing from the report:\n{run.stdout}"
