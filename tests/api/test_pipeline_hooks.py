"""Every ``/v2`` request passes the pipeline's hook points, whichever path answers it.

A probe registered at app creation records what each hook point sees. Two apps share one
database on each backend: the default one (with the manifest fast path) and one built
with ``shortcuts=False``. Manifest GET/HEAD/PUT and blob GET/HEAD, by tag and by digest,
must reach the same hooks in both; a pull-policy hook that refuses yields the same OCI
error on both paths; after-store hooks see pushes from both.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from litestar.testing import TestClient

from api.app import MoorageApp, create_app
from core.errors import OCIErrorCode, RegistryError
from core.pipeline import Hooks, OCIRequest, OCIRoute, ServedBlob, StoredManifest
from core.records import ManifestRecord
from core.settings import Settings
from tests.api.conftest import PASSWORD
from tests.api.oci import OCIClient, digest_of, unique_project

POLICY = "the image is not signed"


@dataclass
class Probe:
    """Records each hook point's calls; refuses to serve what ``refused`` names."""

    started: list[tuple[str, str, OCIRoute]] = field(default_factory=list)
    ended: list[tuple[str, str, int, str]] = field(default_factory=list)
    served: list[tuple[str, str, str, str]] = field(default_factory=list)
    blobs: list[tuple[str, str, str]] = field(default_factory=list)
    stored: list[tuple[str, str, str, str]] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)

    async def start(self, request: OCIRequest, /) -> None:
        self.started.append((request.method, request.path, request.route))

    async def end(self, request: OCIRequest, status: int, /) -> None:
        subject = request.identity.subject if request.identity is not None else ""
        self.ended.append((request.method, request.path, status, subject))

    async def serve(self, request: OCIRequest, manifest: ManifestRecord, /) -> None:
        self.served.append(
            (request.method, request.repository or "", request.reference or "", manifest.digest)
        )
        if manifest.digest in self.refused:
            raise RegistryError(OCIErrorCode.DENIED, POLICY)

    async def blob(self, request: OCIRequest, blob: ServedBlob, /) -> None:
        self.blobs.append((request.method, blob.repository, blob.digest))
        if blob.digest in self.refused:
            raise RegistryError(OCIErrorCode.DENIED, POLICY)

    async def store(self, request: OCIRequest, stored: StoredManifest, /) -> None:
        self.stored.append((request.method, stored.repository, stored.reference, stored.digest))

    def hooks(self) -> Hooks:
        return Hooks(
            request_start=(self.start,),
            request_end=(self.end,),
            manifest_serve=(self.serve,),
            manifest_stored=(self.store,),
            blob_serve=(self.blob,),
        )


@dataclass
class Path:
    """One app on the shared database, its client and its probe."""

    oci: OCIClient
    probe: Probe
    app: MoorageApp

    @property
    def answered(self) -> int:
        shortcut = self.app.shortcut
        return 0 if shortcut is None else shortcut.answered


@pytest.fixture(scope="module")
def paths(app_settings: Settings) -> Iterator[dict[str, Path]]:
    built: dict[str, Path] = {}
    with (
        TestClient(create_app(app_settings, hooks=(fast := Probe()).hooks())) as fast_client,
        TestClient(
            create_app(app_settings, shortcuts=False, hooks=(full := Probe()).hooks())
        ) as full_client,
    ):
        for which, client, probe in (("fast", fast_client, fast), ("full", full_client, full)):
            app = client.app
            assert isinstance(app, MoorageApp)
            built[which] = Path(OCIClient(client, PASSWORD), probe, app)
        yield built


@pytest.mark.parametrize("which", ["fast", "full"])
def test_the_probe_sees_every_manifest_and_blob_request(paths: dict[str, Path], which: str) -> None:
    path = paths[which]
    oci, probe = path.oci, path.probe
    repo = f"{unique_project()}/app"
    manifest = oci.image(repo)
    payload = json.dumps(manifest).encode()
    digest = digest_of(payload)
    config = manifest["config"]["digest"]
    before = path.answered
    for reference in ("v1", digest):
        pushed = oci.put_manifest(repo, reference, payload)
        assert pushed.status_code == 201, pushed.text
    assert probe.stored[-2:] == [("PUT", repo, "v1", digest), ("PUT", repo, digest, digest)]
    if which == "fast":
        assert path.answered - before == 2  # the pushes took the fast path

    before = path.answered
    probe.served.clear()
    reads = [(m, r) for m in ("GET", "HEAD") for r in ("v1", digest)]
    for method, reference in reads:
        response = oci.request(method, f"/v2/{repo}/manifests/{reference}", repo)
        assert response.status_code == 200
    assert probe.served == [(m, repo, r, digest) for m, r in reads]
    if which == "fast":
        assert path.answered - before == len(reads)  # on both backends

    probe.blobs.clear()
    for method in ("GET", "HEAD"):
        response = oci.request(method, f"/v2/{repo}/blobs/{config}", repo)
        assert response.status_code == 200
    assert probe.blobs == [("GET", repo, config), ("HEAD", repo, config)]

    # Start and end were seen for each request, with its route, status and caller.
    manifest_paths = {f"/v2/{repo}/manifests/{r}" for r in ("v1", digest)}
    seen = [s for s in probe.started if s[1] in manifest_paths]
    assert len(seen) == 6  # two pushes, four reads
    assert {route for _, _, route in seen} == {OCIRoute.MANIFEST}
    ended = [e for e in probe.ended if e[1] in manifest_paths]
    assert sorted((m, s, who) for m, _, s, who in ended) == sorted(
        [("PUT", 201, "admin")] * 2 + [(m, 200, "admin") for m, _ in reads]
    )
    blob_ends = [e for e in probe.ended if e[1] == f"/v2/{repo}/blobs/{config}"]
    assert [(m, s) for m, _, s, _ in blob_ends] == [("GET", 200), ("HEAD", 200)]


def _error(response: object) -> tuple[int, list[str], str]:
    status = response.status_code  # type: ignore[attr-defined]
    if response.request.method == "HEAD":  # type: ignore[attr-defined]
        return status, [], ""
    errors = response.json()["errors"]  # type: ignore[attr-defined]
    return status, [e["code"] for e in errors], errors[0]["message"]


def _seen(response: object) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "date")  # type: ignore[attr-defined]
    return response.status_code, headers, response.content  # type: ignore[attr-defined]


def test_a_refusing_pull_policy_answers_an_oci_error_on_both_paths(
    paths: dict[str, Path],
) -> None:
    fast, full = paths["fast"], paths["full"]
    repo = f"{unique_project()}/app"
    pushed = fast.oci.push_image(repo, "v1")
    layer = fast.oci.image(repo)["layers"][0]["digest"]
    for path in (fast, full):
        path.probe.refused |= {pushed.digest, layer}
    before = fast.answered
    auth = fast.oci.headers(repo, "pull")
    cases = [
        (m, f"/v2/{repo}/manifests/{r}") for m in ("GET", "HEAD") for r in ("v1", pushed.digest)
    ]
    cases += [(m, f"/v2/{repo}/blobs/{layer}") for m in ("GET", "HEAD")]
    for method, url in cases:
        request_id = uuid.uuid4().hex
        headers = {**auth, "X-Request-ID": request_id}
        answers = [p.oci.client.request(method, url, headers=headers) for p in (fast, full)]
        assert _seen(answers[0]) == _seen(answers[1]), (method, url)
        expected = (403, [], "") if method == "HEAD" else (403, ["DENIED"], POLICY)
        assert _error(answers[0]) == expected, (method, url)
        assert answers[0].headers["x-request-id"] == request_id
    assert fast.answered - before == 4  # the fast path itself refused the manifest reads
    for path in (fast, full):
        refusals = [e for e in path.probe.ended if e[1] in {u for _, u in cases} and e[2] == 403]
        assert len(refusals) == len(cases)
        path.probe.refused.clear()
    # Without the refusal the same reads are served again.
    assert fast.oci.request("GET", f"/v2/{repo}/manifests/v1", repo).status_code == 200


def test_after_store_hooks_see_pushes_of_both_paths(paths: dict[str, Path]) -> None:
    fast, full = paths["fast"], paths["full"]
    repo = f"{unique_project()}/app"
    for path, tag in ((fast, "fast"), (full, "full")):
        before = path.answered
        pushed = path.oci.push_image(repo, tag)
        assert path.probe.stored[-1] == ("PUT", repo, tag, pushed.digest)
        assert path.answered - before == (1 if path is fast else 0)
    refused = fast.oci.put_manifest(repo, "bad", b"{not json")
    assert refused.status_code == 400
    assert all(entry[2] != "bad" for entry in fast.probe.stored)


class _Closed:
    """A request-start hook that refuses pushes (a read-only mode, say)."""

    async def __call__(self, request: OCIRequest, /) -> None:
        if request.method in {"PUT", "POST", "PATCH", "DELETE"}:
            raise RegistryError(OCIErrorCode.DENIED, "the registry is read-only")


class _Broken:
    """An after-store hook that fails: the push it follows must still succeed."""

    async def __call__(self, request: OCIRequest, stored: StoredManifest, /) -> None:
        raise RuntimeError(f"cannot announce {stored.digest} of {request.path}")


@pytest.mark.parametrize("shortcuts", [True, False])
def test_start_hooks_may_refuse_and_store_hooks_may_not(
    app_settings: Settings, shortcuts: bool
) -> None:
    repo = f"{unique_project()}/app"
    with TestClient(create_app(app_settings, shortcuts=shortcuts)) as client:
        writer = OCIClient(client, PASSWORD)
        pushed = writer.push_image(repo, "v1")
    probe = Probe()
    hooks = Hooks(request_start=(_Closed(),), request_end=(probe.end,))
    with TestClient(create_app(app_settings, shortcuts=shortcuts, hooks=hooks)) as client:
        oci = OCIClient(client, PASSWORD)
        assert oci.request("GET", f"/v2/{repo}/manifests/v1", repo).status_code == 200
        refused = oci.put_manifest(repo, "v2", pushed.payload)
        assert refused.status_code == 403
        assert refused.json()["errors"][0] == {
            "code": "DENIED",
            "message": "the registry is read-only",
        }
        assert refused.headers["x-request-id"]
        assert ("PUT", f"/v2/{repo}/manifests/v2", 403, "") in probe.ended
    broken = Hooks(manifest_stored=(_Broken(),))
    with TestClient(create_app(app_settings, shortcuts=shortcuts, hooks=broken)) as client:
        oci = OCIClient(client, PASSWORD)
        assert oci.put_manifest(repo, "v3", pushed.payload).status_code == 201
        assert oci.request("GET", f"/v2/{repo}/manifests/v3", repo).content == pushed.payload
