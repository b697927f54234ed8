"""Rules of scanner registrations: auth headers, the adapter's metadata, who scans a project."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from core.scanner_api import ExternalScannerError, metadata
from core.scanner_api_settings import DelegateSettings
from core.scanners import (
    SETTINGS_SCANNER,
    ScannerAuth,
    ScannerCall,
    ScannerInput,
    auth_headers,
    check_metadata,
    delegate_of,
    selected_name,
)
from core.sealing import NamedSecrets, SealError, SecretBox, named_context

REGISTERED = ScannerCall("trivy", "https://trivy.example", {"Authorization": "Bearer t"}, False)


def test_each_auth_sends_its_header() -> None:
    assert auth_headers(ScannerAuth.NONE, None) == {}
    assert auth_headers(ScannerAuth.BEARER, "t0k") == {"Authorization": "Bearer t0k"}
    assert auth_headers(ScannerAuth.API_KEY, "k3y") == {"X-ScannerAdapter-API-Key": "k3y"}
    basic = auth_headers(ScannerAuth.BASIC, "user:pa:ss")["Authorization"]
    assert basic.startswith("Basic ")
    assert base64.b64decode(basic.removeprefix("Basic ")) == b"user:pa:ss"


def test_a_registration_comes_before_the_setting_which_comes_before_the_analyzer() -> None:
    setting = DelegateSettings(url="https://setting.example", token=SecretStr("s"), projects=["a"])
    assert delegate_of("a", lambda _: REGISTERED, setting) is REGISTERED
    from_setting = delegate_of("a", lambda _: None, setting)
    assert from_setting is not None
    assert (from_setting.name, from_setting.url) == (SETTINGS_SCANNER, "https://setting.example")
    assert from_setting.headers == {"Authorization": "Bearer s"}
    assert delegate_of("b", lambda _: None, setting) is None
    assert delegate_of("a", lambda _: None, DelegateSettings()) is None


def test_the_adapters_metadata_is_checked() -> None:
    found = check_metadata(metadata(None))
    assert (found.name, found.vendor) == ("Moorage", "Moorage")
    assert found.capabilities[0]["type"] == "vulnerability"
    with pytest.raises(ExternalScannerError, match="names no scanner"):
        check_metadata({"capabilities": [{"type": "vulnerability"}]})
    with pytest.raises(ExternalScannerError, match="no capabilities"):
        check_metadata({"scanner": {"name": "x"}, "capabilities": []})


def test_a_project_document_selects_by_name() -> None:
    assert selected_name(None) is None
    assert selected_name('{"scanner": null}') is None
    assert selected_name('{"scanner": "trivy"}') == "trivy"


def test_credentials_never_show_in_reprs() -> None:
    data = ScannerInput("trivy", "https://t", auth=ScannerAuth.BEARER, credential="s3cret")
    assert "s3cret" not in repr(data)
    assert "Bearer" not in repr(REGISTERED)


def test_a_sealed_credential_opens_only_for_its_own_name() -> None:
    box = SecretBox([b"k" * 32])
    secrets = NamedSecrets(lambda: box, "scanner-registration")
    sealed = secrets.seal("trivy", "s3cret")
    assert sealed is not None
    assert "s3cret" not in sealed
    assert secrets.open("trivy", sealed) == "s3cret"
    with pytest.raises(SealError):
        secrets.open("clair", sealed)
    assert secrets.seal("trivy", None) is None
    # the same rule as registry endpoints' credentials
    assert named_context("registry-endpoint", "hub") == "registry-endpoint:hub:secret"
