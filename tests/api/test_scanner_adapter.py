"""The served scanner API (Harbor's Pluggable Scanner API v1.2): metadata, refusals and
the SBOM report of the ``sbom`` capability (read from a served scan as its run stores it).

A scan that runs end to end, between two installations, is in
``tests/integration/test_scanner_api.py``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from litestar.testing import TestClient
from pydantic import SecretStr
from spdx_tools.spdx.parser.json import json_parser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from api.app import create_app
from cli.startup import prepare_installation
from core.scan.packages import Package, PackageType
from core.scan_records import Inventory
from core.scanner_api import AdapterStatus, ScanRequestIn
from core.scanner_api_service import AdapterScans
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
    assert [c["type"] for c in document["capabilities"]] == ["vulnerability", "sbom"]
    capability = document["capabilities"][0]
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


def test_a_report_type_the_adapter_does_not_produce_is_501(http: TestClient[Any]) -> None:
    """v1.2: "the scanner has no capability to handle the mime type"."""
    accept = {"Accept": "application/vnd.scanner.adapter.vuln.report.raw"}
    response = http.get(f"{BASE}/scan/0123456789abcdef/report", headers=BEARER | accept)
    assert response.status_code == 501
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


# --- the sbom capability (v1.2) -------------------------------------------------------------

SBOM_REPORT = "application/vnd.security.sbom.report+json; version=1.0"
SPDX = "application/spdx+json"
CYCLONEDX = "application/vnd.cyclonedx+json"
SBOM_ACCEPT = BEARER | {"Accept": SBOM_REPORT}


def test_metadata_offers_the_sbom_capability_in_both_formats(http: TestClient[Any]) -> None:
    document = http.get(f"{BASE}/metadata", headers=BEARER).json()
    (sbom,) = [c for c in document["capabilities"] if c["type"] == "sbom"]
    assert sbom["produces_mime_types"] == [SBOM_REPORT]
    assert {OCI_MANIFEST, DOCKER_V2} <= set(sbom["consumes_mime_types"])
    assert set(sbom["additional_attributes"]["sbom_media_types"]) == {SPDX, CYCLONEDX}


@pytest.mark.parametrize(
    ("capabilities", "status", "words"),
    [
        ([{"type": "malware"}], 501, "capability"),
        ([{"type": "sbom", "produces_mime_types": [REPORT]}], 501, "does not produce"),
        ([{"type": "vulnerability", "produces_mime_types": [SBOM_REPORT]}], 501, "does not"),
        (
            [{"type": "sbom", "parameters": {"sbom_media_types": ["text/spdx"]}}],
            422,
            "sbom_media_types",
        ),
    ],
)
def test_a_capability_the_adapter_lacks_is_refused(
    http: TestClient[Any], capabilities: list[dict[str, Any]], status: int, words: str
) -> None:
    body = _request() | {"enabled_capabilities": capabilities}
    response = http.post(f"{BASE}/scan", headers=BEARER, json=body)
    assert response.status_code == status, response.text
    assert words in _error_message(response)


def _scans(http: TestClient[Any]) -> AdapterScans:
    scans = http.app.state["registry"].extras["scanner_api"]  # type: ignore[attr-defined]
    assert isinstance(scans, AdapterScans)
    return scans


def _served(http: TestClient[Any], capabilities: list[dict[str, Any]] | None = None) -> str:
    """A served scan finished with two packages (stored as a run of the scan stores it)."""
    scans = _scans(http)
    body = _request(digest="sha256:" + secrets.token_hex(32))
    if capabilities is not None:
        body["enabled_capabilities"] = capabilities
    scan = scans.accept(ScanRequestIn.model_validate(body))
    packages = (
        Package(PackageType.DEB, "openssl", "3.0.11-1", "pkg:deb/debian/openssl@3.0.11-1", "s"),
        Package(PackageType.PYPI, "idna", "3.7", "pkg:pypi/idna@3.7", "m", licenses=("MIT",)),
    )
    done = replace(
        scan,
        status=AdapterStatus.SUCCEEDED,
        finished_at=datetime.now(UTC),
        inventories=(Inventory(scan.digest, None, None, packages),),
        authorization="",
    )
    scans.store.finish(done)
    return scan.id


def test_the_sbom_report_holds_moorages_documents(http: TestClient[Any], tmp_path: Path) -> None:
    scan_id = _served(http)
    url = f"{BASE}/scan/{scan_id}/report"
    cdx = http.get(url, headers=SBOM_ACCEPT, params={"sbom_media_type": CYCLONEDX})
    assert cdx.status_code == 200, cdx.text
    assert cdx.headers["content-type"].startswith("application/vnd.security.sbom.report+json")
    envelope = cdx.json()
    assert envelope["media_type"] == CYCLONEDX
    assert envelope["artifact"]["mime_type"] == OCI_MANIFEST
    assert envelope["scanner"]["name"] == "Moorage"
    assert envelope["generated_at"]
    bom = envelope["sbom"]
    assert bom["specVersion"] == "1.6"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    assert bom["metadata"]["component"]["version"] == envelope["artifact"]["digest"]
    assert {c["purl"] for c in bom["components"]} == {
        "pkg:deb/debian/openssl@3.0.11-1",
        "pkg:pypi/idna@3.7",
    }

    spdx = http.get(url, headers=SBOM_ACCEPT, params={"sbom_media_type": SPDX})
    assert spdx.status_code == 200, spdx.text
    document = spdx.json()["sbom"]
    assert document["spdxVersion"] == "SPDX-2.3"
    path = tmp_path / "served.spdx.json"
    path.write_text(json.dumps(document))
    assert validate_full_spdx_document(json_parser.parse_from_file(str(path))) == []
    assert {p["name"] for p in document["packages"]} >= {"openssl", "idna"}

    # the vulnerability report of the same scan is still there
    assert http.get(url, headers=BEARER | {"Accept": REPORT}).status_code == 200


@pytest.mark.parametrize("query", [{}, {"sbom_media_type": "text/spdx"}])
def test_an_sbom_report_without_a_known_format_is_400(
    http: TestClient[Any], query: dict[str, str]
) -> None:
    scan_id = _served(http)
    response = http.get(f"{BASE}/scan/{scan_id}/report", headers=SBOM_ACCEPT, params=query)
    assert response.status_code == 400, response.text
    assert "sbom_media_type" in _error_message(response)


def test_an_sbom_report_the_request_did_not_enable_is_400(http: TestClient[Any]) -> None:
    only = _served(http, [{"type": "vulnerability"}])
    url = f"{BASE}/scan/{only}/report"
    refused = http.get(url, headers=SBOM_ACCEPT, params={"sbom_media_type": SPDX})
    assert refused.status_code == 400, refused.text
    assert "did not enable the sbom capability" in _error_message(refused)

    spdx_only = [{"type": "sbom", "parameters": {"sbom_media_types": [SPDX]}}]
    scan_id = _served(http, spdx_only)
    url = f"{BASE}/scan/{scan_id}/report"
    wrong = http.get(url, headers=SBOM_ACCEPT, params={"sbom_media_type": CYCLONEDX})
    assert wrong.status_code == 400, wrong.text
    assert CYCLONEDX in _error_message(wrong)
    right = http.get(url, headers=SBOM_ACCEPT, params={"sbom_media_type": SPDX})
    assert right.status_code == 200, right.text
