"""The worker's database-derived gauges: outbox backlog, quota usage and its cardinality cap."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cli.worker_metrics import OpsCollector
from core.observability_settings import MetricsSettings
from core.settings import Settings
from storage.db.engine import create_engines
from storage.db.ops_stats import OpsStats
from tests.api.oci import OCIClient, unique_project


def _gauges(settings: Settings, metrics: MetricsSettings) -> dict[tuple[str, str], float]:
    engines = create_engines(settings)
    try:
        registry = CollectorRegistry()
        registry.register(OpsCollector(OpsStats(engines), metrics))
        text = generate_latest(registry).decode()
    finally:
        engines.dispose()
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = sample.labels.get("project_name") or sample.labels.get("type", "")
            values[sample.name, label] = sample.value
    return values


def _project_with_quota(oci: OCIClient, quota: int) -> str:
    project = unique_project()
    auth = ("admin", oci.password)
    assert oci.client.post("/api/v1/projects", json={"name": project}, auth=auth).status_code == 201
    put = oci.client.put(f"/api/v1/projects/{project}/quota", json={"bytes": quota}, auth=auth)
    assert put.status_code == 200, put.text
    return project


def test_quota_usage_and_outbox_backlog(oci: OCIClient, app_settings: Settings) -> None:
    project = _project_with_quota(oci, 10_000_000)
    oci.push_image(f"{project}/app", "v1")
    used = oci.client.get(f"/api/v1/projects/{project}/quota", auth=("admin", oci.password)).json()[
        "used_bytes"
    ]

    gauges = _gauges(app_settings, MetricsSettings(quota_projects_max=10_000))
    assert gauges["moorage_project_quota_usage_byte", project] == used > 0
    assert gauges["moorage_project_quota_byte", project] == 10_000_000
    assert gauges["moorage_project_quota_truncated", ""] == 0
    # No dispatcher runs here: the push's events wait in the outbox.
    assert gauges["moorage_task_queue_size", "outbox"] >= 1
    assert gauges["moorage_task_queue_latency", "outbox"] >= 0
    assert gauges["moorage_ops_stats_up", ""] == 1


def test_quota_projects_beyond_the_cap_are_left_out(oci: OCIClient, app_settings: Settings) -> None:
    _project_with_quota(oci, 1000)
    _project_with_quota(oci, 2000)
    gauges = _gauges(app_settings, MetricsSettings(quota_projects_max=1))
    exported = [key for key in gauges if key[0] == "moorage_project_quota_usage_byte"]
    assert len(exported) == 1
    assert gauges["moorage_project_quota_truncated", ""] == 1
