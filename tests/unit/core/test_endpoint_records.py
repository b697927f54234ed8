"""An endpoint that is never stored carries no credentials and only what it was given."""

from __future__ import annotations

from datetime import UTC, datetime

from core.endpoints import CredentialKind, EndpointRecord, EndpointType


def test_an_unsaved_endpoint_has_no_credentials_and_no_extra_realm_hosts() -> None:
    before = datetime.now(UTC)
    record = EndpointRecord.unsaved(
        "scan-request", "https://registry.example:5000", EndpointType.DISTRIBUTION, insecure=True
    )
    assert (record.id, record.name, record.url, record.type) == (
        0,
        "scan-request",
        "https://registry.example:5000",
        EndpointType.DISTRIBUTION,
    )
    assert (record.credential, record.username, record.has_secret) == (
        CredentialKind.NONE,
        "",
        False,
    )
    assert (record.ca_bundle, record.insecure, record.realm_hosts) == (None, True, ())
    assert record.host == "registry.example"
    assert before <= record.created_at == record.updated_at <= datetime.now(UTC)
    assert (
        EndpointRecord.unsaved("local", "http://127.0.0.1:5000", EndpointType.MOORAGE).insecure
        is False
    )
