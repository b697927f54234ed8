"""``GET /metrics`` of an API process: RED metrics by route template, bytes, auth."""

from __future__ import annotations

import re

from tests.api.oci import OCI_MANIFEST, OCIClient

MANIFEST = "/v2/{name}/manifests/{reference}"
_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")


def _samples(oci: OCIClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = oci.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in response.text.splitlines():
        found = _SAMPLE.match(line)
        if found is None:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', found["labels"] or ""))
        samples[found["name"], labels] = float(found["value"])
    return samples


def _value(samples: dict, name: str, **labels: str) -> float:
    return float(samples.get((name, frozenset(labels.items())), 0.0))


def test_pulls_are_counted_by_route_template(oci: OCIClient, repo: str) -> None:
    pushed = oci.push_image(repo, "v1")
    labels = {"operation": MANIFEST, "method": "GET", "code": "200"}
    before = _samples(oci)
    for reference in ("v1", pushed.digest, "v1"):
        answer = oci.request(
            "GET", f"/v2/{repo}/manifests/{reference}", repo, headers={"Accept": OCI_MANIFEST}
        )
        assert answer.status_code == 200
    missing = oci.request("GET", f"/v2/{repo}/manifests/nope", repo)
    assert missing.status_code == 404
    after = _samples(oci)

    assert (
        _value(after, "moorage_http_request_total", **labels)
        - _value(before, "moorage_http_request_total", **labels)
        == 3
    )
    assert (
        _value(after, "moorage_http_request_total", **{**labels, "code": "404"})
        - _value(before, "moorage_http_request_total", **{**labels, "code": "404"})
        == 1
    )
    histogram = "moorage_http_request_duration_seconds_count"
    assert _value(after, histogram, **labels) - _value(before, histogram, **labels) == 3
    sent = _value(after, "moorage_http_sent_bytes_total", operation=MANIFEST) - _value(
        before, "moorage_http_sent_bytes_total", operation=MANIFEST
    )
    assert sent == 3 * len(pushed.payload) + len(missing.content)
    names = {name for name, _ in after}
    assert all(
        repo.split("/", maxsplit=1)[0] not in value for _, labels_ in after for _, value in labels_
    )
    assert "moorage_http_inflight_requests" in names


def test_uploads_count_received_bytes(oci: OCIClient, repo: str) -> None:
    blobs = "/v2/{name}/blobs/uploads/"
    before = _value(_samples(oci), "moorage_http_received_bytes_total", operation=blobs)
    oci.push_blob(repo, b"x" * 1000)
    after = _value(_samples(oci), "moorage_http_received_bytes_total", operation=blobs)
    assert after - before == 1000


def test_auth_failures_and_tokens_issued(oci: OCIClient, repo: str) -> None:
    before = _samples(oci)
    refused = oci.client.get(f"/v2/{repo}/tags/list", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401
    bad_password = oci.client.get("/auth/token", auth=("admin", "wrong"))
    assert bad_password.status_code == 401
    oci._fetch_token((f"repository:{repo}:pull",), anonymous=False)
    after = _samples(oci)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("moorage_auth_failures_total", endpoint="v2") == 1
    assert delta("moorage_auth_failures_total", endpoint="token") == 1
    assert delta("moorage_tokens_issued_total", endpoint="token") == 1
    token_ok = {"operation": "/auth/token", "method": "GET", "code": "200"}
    assert delta("moorage_http_request_total", **token_ok) == 1
