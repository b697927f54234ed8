"""WWW-Authenticate parsing and the realm pinning rule of upstream token auth."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.challenges import parse_challenges, realm_refusal
from core.endpoints import CredentialKind, EndpointRecord, EndpointType
from core.names import RepositoryName
from core.proxy import upstream_repository


def test_quoted_values_with_commas_and_escapes_stay_whole() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push repository:c:pull", error="say \\"hi\\""'
    )
    (challenge,) = parse_challenges([header])
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.example/token"
    assert challenge.params["service"] == "registry.example"
    assert challenge.params["scope"] == "repository:a/b:pull,push repository:c:pull"
    assert challenge.params["error"] == 'say "hi"'


def test_several_challenges_in_one_header_and_across_headers() -> None:
    found = parse_challenges(['Basic realm="r1", Bearer realm="https://x/t"', "Negotiate"])
    assert [c.scheme for c in found] == ["basic", "bearer", "negotiate"]
    assert found[0].realm == "r1"
    assert found[1].realm == "https://x/t"


@pytest.mark.parametrize(
    ("realm", "upstream", "allowed"),
    [
        ("https://reg.example/token", "https://reg.example", True),
        ("https://reg.example:5001/token", "https://reg.example", True),
        ("https://evil.example/token", "https://reg.example", False),
        ("http://reg.example/token", "https://reg.example", False),
        ("https://user:pw@reg.example/token", "https://reg.example", False),
        ("ftp://reg.example/token", "https://reg.example", False),
        ("http://127.0.0.1:9/token", "http://127.0.0.1:5000", True),
        ("http://localhost:9/token", "http://127.0.0.1:5000", False),
    ],
)
def test_credentials_go_only_to_the_upstreams_own_host(
    realm: str, upstream: str, allowed: bool
) -> None:
    assert (realm_refusal(realm, upstream) is None) is allowed


def test_an_administrator_may_allow_another_realm_host() -> None:
    assert realm_refusal("https://auth.docker.io/token", "https://registry-1.docker.io") is not None
    allowed = realm_refusal(
        "https://auth.docker.io/token", "https://registry-1.docker.io", ["auth.docker.io"]
    )
    assert allowed is None


def _endpoint(url: str, kind: EndpointType) -> EndpointRecord:
    now = datetime.now(UTC)
    return EndpointRecord(
        1, "hub", url, kind, CredentialKind.NONE, "", None, None, False, (), now, now
    )


def test_docker_hub_official_images_live_under_library() -> None:
    hub = _endpoint("https://registry-1.docker.io", EndpointType.DOCKER_HUB)
    assert upstream_repository(hub, RepositoryName.parse("proxy/alpine")) == "library/alpine"
    assert upstream_repository(hub, RepositoryName.parse("proxy/library/alpine")) == (
        "library/alpine"
    )
    assert upstream_repository(hub, RepositoryName.parse("proxy/bitnami/redis")) == "bitnami/redis"
    other = _endpoint("https://registry.example", EndpointType.DISTRIBUTION)
    assert upstream_repository(other, RepositoryName.parse("proxy/alpine")) == "alpine"
