"""Notation's signature verification levels, as a trust policy's certificate entry sets them.

Notary Project trust-policy semantics (a Moorage certificate entry plays the part of a
notation trust-policy statement: its trust store and trusted identities). Each
validation is *enforced* (a failure refuses the signature) or *logged* (the failure is
kept as a warning of the stored result and the signature still counts):

============  =========  ============  ===================  ========  ==========
level         integrity  authenticity  authentic timestamp  expiry    revocation
============  =========  ============  ===================  ========  ==========
strict        enforce    enforce       enforce              enforce   enforce
permissive    enforce    enforce       log                  log       log
audit         enforce    log           log                  log       log
skip          --         --            --                   --        --
============  =========  ============  ===================  ========  ==========

``override`` changes single validations of ``strict``, ``permissive`` or ``audit``
(notation's custom level): ``authenticity``, ``authentic_timestamp`` and ``expiry`` to
``enforce`` or ``log``; ``revocation`` to ``enforce``, ``log`` or ``skip``. Integrity
cannot be overridden and ``skip`` cannot be customized.

``skip`` verifies nothing; for Moorage that means a signature under a ``skip`` entry
never counts as a signer (a pull gate cannot count what it did not verify).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, model_validator


class Action(StrEnum):
    """What a failed validation does."""

    ENFORCE = "enforce"
    LOG = "log"
    SKIP = "skip"


class OverrideDocument(BaseModel):
    """Single validations of a level changed (notation's ``override`` map)."""

    model_config = ConfigDict(extra="forbid")
    authenticity: Literal["enforce", "log"] | None = None
    authentic_timestamp: Literal["enforce", "log"] | None = None
    expiry: Literal["enforce", "log"] | None = None
    revocation: Literal["enforce", "log", "skip"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_integrity(cls, data: Any) -> Any:
        if isinstance(data, dict) and "integrity" in data:
            raise ValueError("integrity cannot be overridden")
        return data


class VerificationDocument(BaseModel):
    """A certificate entry's ``signature_verification`` (notation's ``signatureVerification``)."""

    model_config = ConfigDict(extra="forbid")
    level: Literal["strict", "permissive", "audit", "skip"] = "strict"
    override: OverrideDocument | None = None

    @model_validator(mode="after")
    def _skip_is_not_customized(self) -> VerificationDocument:
        if self.level == "skip" and self.override is not None:
            raise ValueError("the skip level cannot be customized (override)")
        return self


@dataclass(frozen=True, slots=True)
class Verification:
    """The resolved action of each validation a level leaves to choose."""

    level: str
    authenticity: Action
    authentic_timestamp: Action
    expiry: Action
    revocation: Action

    @property
    def skip(self) -> bool:
        return self.level == "skip"


_E, _L = Action.ENFORCE, Action.LOG
LEVELS: Final = {
    "strict": Verification("strict", _E, _E, _E, _E),
    "permissive": Verification("permissive", _E, _L, _L, _L),
    "audit": Verification("audit", _L, _L, _L, _L),
    "skip": Verification("skip", Action.SKIP, Action.SKIP, Action.SKIP, Action.SKIP),
}
STRICT: Final = LEVELS["strict"]


def resolve(document: VerificationDocument | None) -> Verification:
    """The actions of ``document`` (``None``: ``strict``, notation's default)."""
    if document is None:
        return STRICT
    base = LEVELS[document.level]
    override = document.override
    if override is None:
        return base
    return Verification(
        document.level,
        Action(override.authenticity or base.authenticity),
        Action(override.authentic_timestamp or base.authentic_timestamp),
        Action(override.expiry or base.expiry),
        Action(override.revocation or base.revocation),
    )
