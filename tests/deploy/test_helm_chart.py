"""The Helm chart: lints strictly, renders valid Kubernetes objects, travels as an OCI chart.

Rendered objects are checked against the Kubernetes API's own schemas
(``tests.services.kube_schemas``); the one custom resource (the ServiceMonitor) has no
schema there and is checked for the fields Prometheus' operator reads.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.clients.commands import make_client_home, run, unique
from tests.services.kube_schemas import KubeSchemas, schema_file

if TYPE_CHECKING:
    from tests.services.moorage import MoorageServer

pytestmark = pytest.mark.clients

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "moorage"
VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}
WORKLOADS = {"Deployment", "Job"}


@pytest.fixture(scope="module")
def schemas() -> KubeSchemas:
    return KubeSchemas(schema_file())


def _env(tmp_path: Path) -> dict[str, str]:
    return make_client_home(tmp_path / "home").env()


def _template(helm: str, tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    out = run([helm, "template", "moorage", str(CHART), *args], env=_env(tmp_path)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (obj["metadata"]["name"], obj["spec"]["template"]["spec"])
        for obj in objects
        if obj["kind"] in WORKLOADS
    ]


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_chart_lints_strictly(helm: str, tmp_path: Path, values: Path) -> None:
    result = run([helm, "lint", "--strict", str(CHART), "-f", str(values)], env=_env(tmp_path))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_rendered_objects_match_the_kubernetes_schemas(
    helm: str, tmp_path: Path, schemas: KubeSchemas, values: Path
) -> None:
    objects = _template(helm, tmp_path, "-f", str(values))
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "Service", "ServiceAccount"} <= kinds
    problems: list[str] = []
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_RESOURCES:
            endpoints = obj["spec"]["endpoints"]
            assert [(e["port"], e["path"]) for e in endpoints] == [("http", "/metrics")]
            continue
        problems += [f"{obj['kind']}/{obj['metadata']['name']} {e}" for e in schemas.errors(obj)]
    assert problems == []


def test_production_values_render_every_optional_object(helm: str, tmp_path: Path) -> None:
    objects = _template(helm, tmp_path, "-f", str(CHART / "ci" / "production-values.yaml"))
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds.count("Deployment") == 2
    assert kinds.count("PodDisruptionBudget") == 2
    assert kinds.count("NetworkPolicy") == 2
    for kind in ("HorizontalPodAutoscaler", "Ingress", "ServiceMonitor", "Job"):
        assert kind in kinds
    job = next(obj for obj in objects if obj["kind"] == "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    api = next(
        o for o in objects if o["metadata"]["name"].endswith("-api") and o["kind"] == "Deployment"
    )
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith(
        "@sha256:" + "0f0e0d0c0b0a0908070605040302010" + "0f0e0d0c0b0a09080706050403020100f"
    )
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "replicas" not in api["spec"]  # the autoscaler owns the count


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_pods_run_unprivileged_and_take_secrets_by_reference(
    helm: str, tmp_path: Path, values: Path
) -> None:
    objects = _template(helm, tmp_path, "-f", str(values))
    specs = _pod_specs(objects)
    assert specs
    for name, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            for env in container["env"]:
                secret_like = any(
                    w in env["name"] for w in ("PASSWORD", "SECRET", "API_KEY", "DATABASE_URL")
                )
                if secret_like and not env["name"].endswith("_FILE"):
                    assert "value" not in env, (name, env["name"])
                    assert "secretKeyRef" in env["valueFrom"], (name, env["name"])


def test_values_that_cannot_work_are_refused_with_the_field_named(
    helm: str, tmp_path: Path
) -> None:
    missing_key = run([helm, "template", "moorage", str(CHART)], env=_env(tmp_path), check=False)
    assert missing_key.returncode != 0
    assert "masterKeySecret.name is required" in missing_key.stderr
    wrong_backend = run(
        [helm, "template", "moorage", str(CHART), "-f", str(CHART / "ci" / "minimal-values.yaml"),
         "--set", "storage.backend=nfs"],
        env=_env(tmp_path), check=False,
    )  # fmt: skip
    assert wrong_backend.returncode != 0
    assert "storage.backend" in wrong_backend.stderr or "backend" in wrong_backend.stderr


def test_chart_is_pushed_to_moorage_and_pulled_back(
    helm: str, registry: MoorageServer, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    packaged = Path(
        run([helm, "package", str(CHART), "-d", str(tmp_path / "pkg")], env=env)
        .stdout.strip().rsplit(" ", 1)[-1]
    )  # fmt: skip
    run(
        [helm, "registry", "login", "--plain-http", registry.host_port,
         "-u", registry.admin_username, "--password-stdin"],
        env=env, stdin=registry.admin_password,
    )  # fmt: skip
    namespace = unique("charts/helm")
    pushed = run(
        [helm, "push", "--plain-http", str(packaged), f"oci://{registry.host_port}/{namespace}"],
        env=env,
    )  # fmt: skip
    assert "Digest: sha256:" in pushed.stdout + pushed.stderr
    pulled_dir = tmp_path / "pulled"
    pulled_dir.mkdir()
    run(
        [helm, "pull", "--plain-http", f"oci://{registry.host_port}/{namespace}/moorage",
         "--version", "0.1.0", "-d", str(pulled_dir)],
        env=env,
    )  # fmt: skip
    pulled = pulled_dir / packaged.name
    assert (
        hashlib.sha256(pulled.read_bytes()).digest()
        == hashlib.sha256(packaged.read_bytes()).digest()
    )
    with tarfile.open(pulled) as archive:
        assert "moorage/templates/api-deployment.yaml" in archive.getnames()


def _setting_exists(path: list[str]) -> bool:
    from pydantic import BaseModel

    from core.settings import Settings

    model: type[BaseModel] = Settings
    for index, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if index < len(path) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_every_rendered_setting_is_one_moorage_knows(
    helm: str, tmp_path: Path, values: Path
) -> None:
    objects = _template(helm, tmp_path, "-f", str(values))
    names = {
        env["name"]
        for _, spec in _pod_specs(objects)
        for container in spec["containers"]
        for env in container["env"]
    }
    unknown = [
        name
        for name in sorted(names)
        if name.startswith("MOORAGE_")
        and not _setting_exists(name.removeprefix("MOORAGE_").lower().split("__"))
    ]
    assert unknown == []
