"""Settings of content trust (``core.signatures``, ``core.trust``): limits and caches."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TrustSettings(BaseModel):
    """Bounds on what signature verification reads, and how fresh the pull gate is.

    The pull gate (``api.trust_wiring``) knows which projects have a trust policy from a
    cache reloaded every ``policy_cache_seconds`` (a change made through this API process
    applies at once; one made through another process within that time). The verdict of
    one image is kept ``verdict_cache_seconds`` (at most ``verdict_cache_entries`` of
    them), so a verification that completes is seen by pulls within that time.
    """

    #: Largest signature payload, DSSE envelope or Sigstore bundle read (bytes).
    envelope_max_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: Deepest JSON nesting accepted in a payload, envelope or statement.
    json_max_depth: int = Field(default=64, ge=8, le=1024)
    #: Signatures and attestations verified per image, over all its referrers and tags
    #: (further ones are ignored).
    entries_max: int = Field(default=64, ge=1, le=10_000)
    policy_cache_seconds: float = Field(default=5.0, ge=0)
    verdict_cache_seconds: float = Field(default=5.0, ge=0)
    verdict_cache_entries: int = Field(default=10_000, ge=0)
    #: Images of a project re-verified per round after its policy changed.
    reverify_max: int = Field(default=10_000, ge=1)
