"""The signature pull policy: may this manifest be served under its project's policy?

Cost on a manifest pull (the hot path):

- a project **without** a policy: one dictionary lookup (:meth:`TrustGate.policy_for`),
  no query;
- a project **with** one: a cached verdict, else one indexed read of the image's
  verified signers (``TrustStore.verified``) and :func:`core.trust_policy.evaluate`
  (no cryptography: verification ran when the signature arrived).

Staleness is bounded: the policies are reloaded every ``policy_cache_seconds`` (and at
once after a change made through this process), a verdict is kept at most
``verdict_cache_seconds`` (``verdict_cache_entries`` of them; a verdict of an older policy
revision is never used). Only a refusal does more work: it lets through signature,
attestation and SBOM artifacts themselves (stored under cosign's tags, without a
``subject``), the children of an index that meets the policy, and, when the policy says
so, callers who may push to the repository.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from core.access import Identity
from core.errors import OCIErrorCode, RegistryError
from core.mediatypes import OCI_INDEX
from core.records import ManifestRecord
from core.signature_formats import Format, entry_format
from core.trust_policy import TrustPolicy, Verdict, compile_policy, evaluate
from core.trust_ports import TrustStore
from core.trust_settings import TrustSettings
from core.verdict_cache import VerdictCache

logger = logging.getLogger(__name__)

#: Config media types of cosign's attachments (``application/vnd.dev.cosign.artifact.*``).
_COSIGN_ARTIFACT = "application/vnd.dev.cosign.artifact."
#: Layer media types of SBOMs cosign attaches under ``sha256-<hex>.sbom``.
_SBOM_TYPES = frozenset(
    {
        "text/spdx",
        "text/spdx+json",
        "text/spdx+xml",
        "application/spdx+json",
        "application/vnd.cyclonedx",
        "application/vnd.cyclonedx+json",
        "application/vnd.cyclonedx+xml",
    }
)

PushRight = Callable[[Identity, str], bool]


class TrustGate:
    """Policies by project name and recent verdicts, shared by one process's requests.

    Args:
        store: Policies and verification results.
        may_push: Whether an identity may push to a repository (an exemption).
        settings: Cache bounds.
        monotonic: The clock of the caches.
    """

    def __init__(
        self,
        store: TrustStore,
        may_push: PushRight,
        settings: TrustSettings,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._may_push, self._settings = store, may_push, settings
        self._monotonic = monotonic
        self._policies: dict[str, TrustPolicy] = {}
        self._loaded_at = float("-inf")
        self._verdicts: VerdictCache[tuple[str, str, int], Verdict] = VerdictCache(
            settings.verdict_cache_seconds, settings.verdict_cache_entries, monotonic
        )
        self._loading = threading.Lock()
        self._claim = threading.Lock()

    # -- policies -------------------------------------------------------------------

    def load(self) -> None:
        """Reload every project's policy (blocking; one query)."""
        with self._loading:
            policies: dict[str, TrustPolicy] = {}
            for stored in self._store.policies():
                try:
                    policies[stored.project] = compile_policy(
                        stored.project_id, stored.project, stored.revision, stored.document
                    )
                except Exception:
                    logger.exception("trust policy of %s cannot be used", stored.project)
            self._policies = policies
            self._loaded_at = self._monotonic()

    def claim_reload(self) -> bool:
        """Whether the caller should reload now (stale, and nobody else claimed it).

        A claim counts as a load for staleness, so one reload runs per cache period
        however many requests end meanwhile.
        """
        with self._claim:
            now = self._monotonic()
            if now - self._loaded_at < self._settings.policy_cache_seconds:
                return False
            if self._loading.locked():
                return False
            self._loaded_at = now
            return True

    def policy_for(self, repository: str) -> TrustPolicy | None:
        """The enforced policy of the repository's project (no I/O)."""
        policy = self._policies.get(repository.partition("/")[0])
        return policy if policy is not None and policy.document.enforce else None

    # -- verdicts -------------------------------------------------------------------

    def cached(self, policy: TrustPolicy, repository: str, digest: str) -> Verdict | None:
        """A recent verdict of this image under this policy revision, if any."""
        found = self._verdicts.get((repository, digest, policy.revision))
        return None if found is None else found[0]

    def verdict(self, policy: TrustPolicy, repository: str, digest: str) -> Verdict:
        """The image's verdict from its stored results (blocking: one indexed read)."""
        cached = self.cached(policy, repository, digest)
        if cached is not None:
            return cached
        verdict = evaluate(policy, self._store.verified(repository, digest))
        self._verdicts.put((repository, digest, policy.revision), verdict)
        return verdict

    def check(
        self,
        policy: TrustPolicy,
        repository: str,
        manifest: ManifestRecord,
        identity: Identity | None,
    ) -> None:
        """Raise ``DENIED`` naming the failed requirement unless the manifest may be served.

        Blocking (reads the store): call it off the event loop.
        """
        verdict = self.verdict(policy, repository, manifest.digest)
        if verdict.allowed or is_trust_artifact(manifest):
            return
        for parent in self._store.parents(repository, manifest.digest):
            if self.verdict(policy, repository, parent).allowed:
                return
        exempt = policy.document.exempt_pushers and identity is not None
        if exempt and identity is not None and self._may_push(identity, repository):
            return
        message = f"trust policy of project {policy.project!r} not met: {verdict.failed}"
        refused = self._refused_notation(repository, manifest.digest)
        if refused:
            message += f"; notation signature refused: {refused}"
        raise RegistryError(
            OCIErrorCode.DENIED,
            message,
            detail={"digest": manifest.digest, "requirement": verdict.failed},
        )

    def _refused_notation(self, repository: str, digest: str) -> str:
        """Why the image's notation signatures were refused (revoked, expired, ...), if any.

        Read on a refusal only; at most two reasons, so the error stays short.
        """
        reasons = [
            r.finding.reason[:300]
            for r in self._store.results(repository, digest)
            if not r.finding.verified and r.finding.format is Format.NOTATION
        ]
        return "; ".join(dict.fromkeys(reasons[:2]))


def is_trust_artifact(manifest: ManifestRecord) -> bool:
    """Whether the manifest holds signatures, attestations or cosign attachments.

    Also the index of the referrers tag schema (tagged ``sha256-<hex>``, which notation
    writes by default and reads back before adding a signature): an index each of whose
    entries names an ``artifactType``. Serving it opens nothing: each entry is a manifest
    of its own, judged when it is pulled.
    """
    if manifest.subject_digest is not None:
        return True
    document = _document(manifest.payload)
    if document is None:
        return False
    if manifest.media_type == OCI_INDEX:
        return _referrers_index(document)
    config = document.get("config")
    if isinstance(config, dict) and str(config.get("mediaType", "")).startswith(_COSIGN_ARTIFACT):
        return True
    layers = document.get("layers")
    if not isinstance(layers, list) or not layers:
        return False
    return all(
        isinstance(layer, dict) and _attached(str(layer.get("mediaType"))) for layer in layers
    )


def _document(payload: bytes) -> dict[str, Any] | None:
    try:
        document: Any = json.loads(payload)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _referrers_index(document: dict[str, Any]) -> bool:
    entries = document.get("manifests")
    return isinstance(entries, list) and all(
        isinstance(entry, dict)
        and isinstance(entry.get("artifactType"), str)
        and entry["artifactType"]
        for entry in entries
    )


def _attached(media_type: str) -> bool:
    return entry_format(media_type) is not None or media_type in _SBOM_TYPES
