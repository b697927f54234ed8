"""An app whose framework was built before its registry serves as one built in one go.

``moorage api`` builds the framework part of the app (routes, handlers, middleware) once
before its server forks the workers, and each worker binds its own registry to its copy
(``api.app.build_framework``, ``cli.asgi.prebuild_framework``). What a client sees must not
depend on which way the app was built, and one framework must never serve two registries.
"""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from api.app import build_framework, create_app
from core.settings import Settings
from tests.api.conftest import PASSWORD
from tests.api.oci import OCIClient, unique_project


def test_a_framework_built_first_serves_pushes_pulls_and_the_management_api(
    app_settings: Settings,
) -> None:
    framework = build_framework()
    app = create_app(app_settings, framework=framework)
    assert app is framework
    with TestClient(app) as client:
        oci = OCIClient(client, PASSWORD)
        project_name = unique_project()
        repo = f"{project_name}/app"
        pushed = oci.push_image(repo, "v1")
        pulled = oci.request("GET", f"/v2/{repo}/manifests/v1", repo)
        assert pulled.status_code == 200, pulled.text
        assert pulled.content == pushed.payload
        project = client.get(f"/api/v1/projects/{project_name}", auth=("admin", PASSWORD))
        assert project.status_code == 200, project.text
        assert client.get("/readyz").status_code == 200  # NOTE: Temporal down is degraded
        assert client.get("/metrics").status_code == 200


def test_a_framework_serves_one_registry(app_settings: Settings) -> None:
    framework = build_framework()
    create_app(app_settings, framework=framework)
    with pytest.raises(ValueError, match="already serves a registry"):
        create_app(app_settings, framework=framework)
