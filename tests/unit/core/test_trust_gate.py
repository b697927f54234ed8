"""The signature pull gate's decisions, caches and staleness bounds (in-memory store)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from core.access import Identity
from core.errors import OCIErrorCode, RegistryError
from core.records import ManifestRecord
from core.signature_formats import SIMPLE_SIGNING, Finding, Format, Kind
from core.trust_gate import TrustGate
from core.trust_policy import StoredResult
from core.trust_ports import ResultRecord, StoredPolicy
from core.trust_settings import TrustSettings
from tests.unit.core.trust_fixtures import new_key, public_pem

KEY = new_key()
IMAGE = "sha256:" + "ab" * 32
INDEX = "sha256:" + "cd" * 32


class FakeStore:
    def __init__(self) -> None:
        self.signed: dict[str, list[StoredResult]] = {}
        self.parent: dict[str, list[str]] = {}
        self.stored: dict[str, list[ResultRecord]] = {}
        self.reads = 0
        self.document: dict[str, Any] = {"keys": [{"name": "ci", "public_key": public_pem(KEY)}]}

    def policies(self) -> list[StoredPolicy]:
        now = datetime.now(UTC)
        return [StoredPolicy(1, "team", 3, self.document, "admin", now)]

    def verified(self, repository: str, digest: str) -> list[StoredResult]:
        del repository
        self.reads += 1
        return self.signed.get(digest, [])

    def parents(self, repository: str, digest: str) -> list[str]:
        del repository
        return self.parent.get(digest, [])

    def results(self, repository: str, digest: str) -> list[ResultRecord]:
        del repository
        return self.stored.get(digest, [])


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def _gate(store: FakeStore, clock: Clock, pushers: set[str] | None = None) -> TrustGate:
    settings = TrustSettings(verdict_cache_seconds=5, policy_cache_seconds=5)
    allowed = pushers or set()
    gate = TrustGate(store, lambda who, _repo: who.subject in allowed, settings, clock)  # type: ignore[arg-type]
    gate.load()
    return gate


def _manifest(digest: str = IMAGE, layers: list[str] | None = None) -> ManifestRecord:
    payload = {
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json"},
        "layers": [
            {"mediaType": m} for m in (layers or ["application/vnd.oci.image.layer.v1.tar"])
        ],
    }
    raw = json.dumps(payload).encode()
    return ManifestRecord(
        1, 1, digest, "application/vnd.oci.image.manifest.v1+json", None, None, None, len(raw), raw
    )


def _signed(gate: TrustGate) -> list[StoredResult]:
    policy = gate.policy_for("team/app")
    assert policy is not None
    return [StoredResult("signature", policy.keys[0].fingerprint, None)]


def test_projects_without_a_policy_are_not_looked_up() -> None:
    store = FakeStore()
    gate = _gate(store, Clock())
    assert gate.policy_for("other/app") is None
    assert store.reads == 0


def test_an_unsigned_image_is_refused_naming_the_requirement() -> None:
    gate = _gate(FakeStore(), Clock())
    policy = gate.policy_for("team/app")
    assert policy is not None
    with pytest.raises(RegistryError) as raised:
        gate.check(policy, "team/app", _manifest(), Identity("reader"))
    assert raised.value.code is OCIErrorCode.DENIED
    assert raised.value.message == (
        "trust policy of project 'team' not met: "
        "signatures: 0 of 1 required distinct signers verified (trusted: ci)"
    )


def _refused(format_: Format, reason: str) -> ResultRecord:
    finding = Finding(
        "sha256:" + "ef" * 32,
        0,
        "referrer",
        Kind.SIGNATURE,
        format_,
        None,
        None,
        None,
        False,
        reason,
    )
    return ResultRecord(1, "team/app", IMAGE, finding, 3, datetime.now(UTC))


def test_a_refusal_names_why_notation_signatures_were_refused() -> None:
    store = FakeStore()
    revoked = "certificate 'CN=ci' (serial 70) is revoked by the CRL of 'CN=ci'"
    store.stored[IMAGE] = [
        _refused(Format.NOTATION, revoked),
        _refused(Format.SIMPLE_SIGNING, "signature does not verify with any policy key (ci)"),
    ]
    gate = _gate(store, Clock())
    policy = gate.policy_for("team/app")
    assert policy is not None
    with pytest.raises(RegistryError) as raised:
        gate.check(policy, "team/app", _manifest(), Identity("reader"))
    assert raised.value.message == (
        "trust policy of project 'team' not met: "
        "signatures: 0 of 1 required distinct signers verified (trusted: ci); "
        f"notation signature refused: {revoked}"
    )


def test_verdicts_are_cached_for_their_time_and_policy_revision() -> None:
    store, clock = FakeStore(), Clock()
    gate = _gate(store, clock)
    policy = gate.policy_for("team/app")
    assert policy is not None
    assert not gate.verdict(policy, "team/app", IMAGE).allowed
    store.signed[IMAGE] = _signed(gate)
    assert not gate.verdict(policy, "team/app", IMAGE).allowed  # cached
    assert store.reads == 1
    clock.now += 5
    assert gate.verdict(policy, "team/app", IMAGE).allowed
    assert store.reads == 2


def test_one_reload_is_claimed_per_cache_period() -> None:
    clock = Clock()
    gate = _gate(FakeStore(), clock)
    assert not gate.claim_reload()
    clock.now += 5
    assert gate.claim_reload()
    assert not gate.claim_reload()


def test_signatures_children_of_trusted_indexes_and_pushers_pass() -> None:
    store = FakeStore()
    gate = _gate(store, Clock(), pushers={"ci-robot"})
    policy = gate.policy_for("team/app")
    assert policy is not None
    gate.check(policy, "team/app", _manifest(layers=[SIMPLE_SIGNING]), None)
    gate.check(policy, "team/app", _manifest(), Identity("ci-robot"))
    store.signed[INDEX] = _signed(gate)
    store.parent[IMAGE] = [INDEX]
    gate.check(policy, "team/app", _manifest(), None)


def test_pushers_are_not_exempt_when_the_policy_says_so() -> None:
    store = FakeStore()
    store.document["exempt_pushers"] = False
    gate = _gate(store, Clock(), pushers={"ci-robot"})
    policy = gate.policy_for("team/app")
    assert policy is not None
    with pytest.raises(RegistryError):
        gate.check(policy, "team/app", _manifest(), Identity("ci-robot"))


def _index(entries: list[dict[str, Any]]) -> ManifestRecord:
    raw = json.dumps({"schemaVersion": 2, "manifests": entries}).encode()
    return ManifestRecord(
        1, 1, INDEX, "application/vnd.oci.image.index.v1+json", None, None, None, len(raw), raw
    )


def test_the_referrers_tag_index_passes_and_an_index_of_images_does_not() -> None:
    """notation reads ``sha256-<hex>`` back before adding a second signature."""
    gate = _gate(FakeStore(), Clock())
    policy = gate.policy_for("team/app")
    assert policy is not None
    signature = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + "ef" * 32,
        "size": 700,
        "artifactType": "application/vnd.cncf.notary.signature",
    }
    gate.check(policy, "team/app", _index([signature]), Identity("reader"))
    image = {key: value for key, value in signature.items() if key != "artifactType"}
    for entries in ([image], [signature, image], [signature | {"artifactType": ""}]):
        with pytest.raises(RegistryError):
            gate.check(policy, "team/app", _index(entries), Identity("reader"))
