"""The served scanner API (Harbor's Pluggable Scanner API v1.2): metadata and refusals.

A scan that runs end to end, between two installations, is in
``tests/integration/test_scanner_api.py``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

from api.app import create_app
from cli.startup import prepare_installation
from core.scanner_api_settings import ScannerApiSettings
from core.settings import AuthSettings, Settings

TOKEN = secrets.token_urlsafe(16)
BASE = "/scanner-adapter/api/v1"
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REPORT = "application/vnd.security.vulnerability.report; version=1.1"
ERROR = "application/vnd.scanner.adapter.error+json; version=1.0"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    root: Path = tmp_path_factory.mktemp("adapter")
    settings = Settings(
        data_dir=root,
        auth=AuthSettings(admin_password=SecretStr(secrets.token_urlsafe(12))),
        scanner_api=ScannerApiSettings(tokens=[SecretStr(TOKEN)]),
    )
    prepare_installation(settings)
    with TestClient(create_app(settings)) as client:
        yield client


def _request(**artifact: Any) -> dict[str, Any]:
    return {
        "registry": {"url": "https://registry.example", "authorization": "Bearer x"},
        "artifact": {
            "repository": "library/app",
            "digest": "sha256:" + "a" * 64,
            "mime_type": OCI_MANIFEST,
        }
        | artifact,
    }


def _error_message(response: Any) -> str:
    assert response.headers["content-type"].startswith(ERROR.split(";", maxsplit=1)[0])
    message = response.json()["error"]["message"]
    assert isinstance(message, str)
    assert message
    return message


def test_metadata_names_the_scanner_and_what_harbor_requires(http: TestClient[Any]) -> None:
    response = http.get(f"{BASE}/metadata", headers=BEARER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(
        "application/vnd.scanner.adapter.metadata+json"
    )
    document = response.json()
    assert document["scanner"] == {"name": "Moorage", "vendor": "Moorage", "version": "1.0"}
    (capability,) = document["capabilities"]
    assert capability["type"] == "vulnerability"
    assert DOCKER_V2 in capability["consumes_mime_types"]
    assert OCI_MANIFEST in capability["consumes_mime_types"]
    assert REPORT in capability["produces_mime_types"]
    assert isinstance(document["properties"], dict)

    by_key = http.get(f"{BASE}/metadata", headers={"X-ScannerAdapter-API-Key": TOKEN})
    assert by_key.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/metadata"), ("POST", "/scan"), ("GET", "/scan/abc/report")],
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_every_endpoint_refuses_a_caller_without_the_token(
    http: TestClient[Any], method: str, path: str, headers: dict[str, str]
) -> None:
    response = http.request(method, f"{BASE}{path}", headers=headers, json=_request())
    assert response.status_code == 401
    assert "token" in _error_message(response)


def test_an_unknown_scan_id_is_404(http: TestClient[Any]) -> None:
    response = http.get(f"{BASE}/scan/0123456789abcdef/report", headers=BEARER | {"Accept": REPORT})
    assert response.status_code == 404
    assert "0123456789abcdef" in _error_message(response)


def test_a_report_type_the_adapter_does_not_produce_is_422(http: TestClient[Any]) -> None:
    accept = {"Accept": "application/vnd.security.sbom.report+json; version=1.0"}
    response = http.get(f"{BASE}/scan/0123456789abcdef/report", headers=BEARER | accept)
    assert response.status_code == 422
    assert "report media type" in _error_message(response)


def test_an_artifact_mime_type_the_adapter_cannot_scan_is_422(http: TestClient[Any]) -> None:
    body = _request(mime_type="application/vnd.cncf.helm.config.v1+json")
    response = http.post(f"{BASE}/scan", headers=BEARER, json=body)
    assert response.status_code == 422
    assert "mime_type" in _error_message(response)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"artifact": {}}',
        b'{"registry": {"url": "https://r.example"}, "artifact": {"repository": "a"}}',
    ],
)
def test_a_malformed_scan_request_is_400(http: TestClient[Any], body: bytes) -> None:
    headers = BEARER | {"Content-Type": "application/vnd.scanner.adapter.scan.request+json"}
    response = http.post(f"{BASE}/scan", headers=headers, content=body)
    assert response.status_code == 400
    assert "invalid scan request" in _error_message(response)


def test_a_digest_that_is_no_digest_is_400(http: TestClient[Any]) -> None:
    response = http.post(f"{BASE}/scan", headers=BEARER, json=_request(digest="latest"))
    assert response.status_code == 400
    assert "digest" in _error_message(response)


def test_a_registry_url_that_is_not_http_is_400(http: TestClient[Any]) -> None:
    body = _request()
    body["registry"]["url"] = "file:///etc/passwd"
    response = http.post(f"{BASE}/scan", headers=BEARER, json=body)
    assert response.status_code == 400
    assert "registry url" in _error_message(response)
