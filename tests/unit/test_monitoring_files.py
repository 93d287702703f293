"""deploy/monitoring/: the alert rules and the dashboard parse and speak of metrics the services expose."""

import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from shared import metrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
_NAME = re.compile(r"\b((?:paraaf|rabbitmq)_[a-z_]+)\b")
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}


def _exposed() -> set[str]:
    """The series names Paraaf's metrics appear under in /metrics."""
    return {
        family.name + suffix
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
        for family in metric.describe()
        for suffix in _SUFFIXES.get(family.type, ("",))
    }


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "paraaf-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_alert_has_an_expression_a_severity_and_a_summary() -> None:
    """Each rule in alerts.yml is complete enough for Alertmanager to route it and a person to act on it."""
    for rule in _rules():
        assert rule["alert"].startswith("Paraaf") and rule["expr"].strip(), rule
        assert rule["labels"]["severity"] in {"warning", "critical"} and rule["annotations"]["summary"], rule


def test_the_alerts_cover_stuck_documents_dead_letters_outbox_lag_and_smtp() -> None:
    """The four conditions of issue 12 each have a rule on the metric that shows them."""
    exprs = {rule["alert"]: rule["expr"] for rule in _rules()}
    assert "paraaf_stuck_requests" in exprs["ParaafDocumentsStuck"]
    assert "rabbitmq_queue_messages_ready" in exprs["ParaafDeadLetterQueueNotEmpty"]
    assert "paraaf_outbox_lag_seconds" in exprs["ParaafOutboxLag"] and "> 60" in exprs["ParaafOutboxLag"]
    assert "paraaf_mails_failed_total" in exprs["ParaafSmtpFailing"]


def test_alerts_and_dashboard_name_only_metrics_that_exist() -> None:
    """A typo in a metric name would make an alert that never fires: every paraaf_ name used is one we expose."""
    used = {name for expr in [r["expr"] for r in _rules()] + _dashboard_exprs() for name in _NAME.findall(expr)}
    assert {name for name in used if name.startswith("paraaf_")} - _exposed() == set()


def test_the_dashboard_shows_every_paraaf_metric() -> None:
    """No metric is collected that no panel shows."""
    shown = {name for expr in _dashboard_exprs() for name in _NAME.findall(expr)}
    assert {name for name in _exposed() if not name.endswith(("_sum", "_count"))} - shown == set()
