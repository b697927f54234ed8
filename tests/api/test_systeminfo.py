"""``GET /api/v1/systeminfo``: the version from ``pyproject.toml``, for signed-in callers."""

from __future__ import annotations

import tomllib

from core.version import PYPROJECT
from tests.api.oci import OCIClient


def test_systeminfo_shows_the_version_to_signed_in_callers(oci: OCIClient) -> None:
    with PYPROJECT.open("rb") as file:
        version = tomllib.load(file)["project"]["version"]
    answer = oci.client.get("/api/v1/systeminfo", auth=(oci.username, oci.password))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"version": version, "api_version": "v1"}
    schema = oci.client.get("/api/v1/schema/openapi.json").json()
    assert schema["info"]["version"] == version
    assert oci.client.get("/api/v1/systeminfo").status_code == 401


def test_retention_rules_refuse_unknown_keys(oci: OCIClient) -> None:
    project = "p-strict-" + oci.username
    auth = (oci.username, oci.password)
    oci.client.post("/api/v1/projects", json={"name": project}, auth=auth)
    refused = oci.client.put(
        f"/api/v1/projects/{project}/retention",
        json={"rules": [{"template": "always", "untaged": True}]},
        auth=auth,
    )
    assert refused.status_code == 400, refused.text
    assert "untaged" in refused.text
    assert oci.client.get(f"/api/v1/projects/{project}/retention", auth=auth).json() == {
        "rules": []
    }
