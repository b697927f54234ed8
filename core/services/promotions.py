"""Who may promote what, and the automatic gates of a promotion.

A promotion needs ``pull`` on the source repository and the ``promotion`` permission on
the target: a project role holding ``("promotion", "create")`` (admin, maintainer) or
an explicit ``promote`` action on a repository pattern matching the target (robots). The
gates read stored state only (trust results, scan reports): they never verify or scan.
"""

from __future__ import annotations

from core.access import Identity
from core.errors import ForbiddenError, NotFoundError
from core.promotion import (
    SLSA_PROVENANCE,
    Evaluation,
    GateResult,
    Gates,
    PromotionRequest,
    ScanReports,
    check_gates,
    parse_source,
    parse_target,
    promotion_id,
    scan_gate,
)
from core.records import ProjectRecord
from core.services.access_control import AccessControl
from core.services.projects import ProjectService
from core.services.promotion_copy import PromotionCopier
from core.trust_policy import StoredResult, compile_policy, evaluate
from core.trust_ports import TrustStore

#: The robot action (and token-free permission) a CI pipeline's robot holds.
PROMOTE_ACTION = "promote"
PROMOTION_PERMISSION = ("promotion", "create")


class PromotionService:
    """Turns a caller's request into a :class:`PromotionRequest` and evaluates its gates."""

    def __init__(
        self,
        access: AccessControl,
        projects: ProjectService,
        copier: PromotionCopier,
        trust: TrustStore,
        scans: ScanReports,
    ) -> None:
        self._access = access
        self._projects = projects
        self._copier = copier
        self._trust = trust
        self._scans = scans

    def request(
        self, caller: Identity, source: str, target: str, gates: Gates, *, sign: bool = False
    ) -> PromotionRequest:
        """The checked request (source resolved to its digest now).

        Raises:
            InvalidInputError: a malformed reference or gate (naming the field).
            NotFoundError: a project the caller cannot see, or no such source image.
            ForbiddenError: the caller may not pull the source or promote into the target.
        """
        parsed = parse_source(source)
        target_name, tag = parse_target(target)
        check_gates(gates)
        self.authorize(caller, str(parsed.repository), str(target_name))
        digest = self._copier.resolve(str(parsed.repository), parsed.reference)
        return PromotionRequest(
            id=promotion_id(digest, str(target_name), tag),
            source_repository=str(parsed.repository),
            source_digest=digest,
            target_repository=str(target_name),
            target_tag=tag,
            gates=gates,
            requested_by=caller.subject,
            sign=sign,
        )

    def authorize(self, caller: Identity, source: str, target: str) -> None:
        """Refuse unless ``caller`` may pull ``source`` and promote into ``target``."""
        source_project = self._visible(caller, source.partition("/")[0])
        if "pull" not in self._access.repository_rights(caller, source_project, source):
            raise ForbiddenError(f"pull of {source!r} is not allowed", field="source")
        self.require_promote(caller, target)

    def require_promote(self, caller: Identity, target: str) -> None:
        """Refuse unless ``caller`` holds the promotion permission on ``target``."""
        project = self._visible(caller, target.partition("/")[0])
        held = self._access.permissions(caller, project)
        rights = self._access.repository_rights(caller, project, target)
        if PROMOTION_PERMISSION not in held and PROMOTE_ACTION not in rights:
            raise ForbiddenError(f"promotion into {target!r} is not allowed", field="target")

    def may_see(self, caller: Identity, target: str) -> bool:
        """Whether ``caller`` may read promotions into ``target`` (lists filter by it)."""
        project = self._projects.find(target.partition("/")[0])
        if project is None:
            return False
        held = self._access.permissions(caller, project)
        rights = self._access.repository_rights(caller, project, target)
        return ("promotion", "read") in held or PROMOTE_ACTION in rights

    def _visible(self, caller: Identity, name: str) -> ProjectRecord:
        project = self._projects.find(name)
        if project is None:
            raise NotFoundError(f"project {name!r} not found", field="project")
        if not self._access.permissions(caller, project) and not caller.permissions:
            raise NotFoundError(f"project {name!r} not found", field="project")
        return project

    def evaluate(self, request: PromotionRequest) -> Evaluation:
        """The automatic gates (scan, signed, provenance) over stored results."""
        gates = request.gates
        results: list[GateResult] = []
        repository, digest = request.source_repository, request.source_digest
        if gates.max_severity is not None:
            results.append(scan_gate(self._scans.report(repository, digest), gates.max_severity))
        verified = self._trust.verified(repository, digest) if gates.signed or gates.builder else []
        if gates.signed:
            results.append(self._signed(repository, verified))
        if gates.builder is not None:
            builders = {
                str(r.facts.get("builder_id"))
                for r in verified
                if r.predicate_type in SLSA_PROVENANCE
            }
            passed = gates.builder in builders
            reason = (
                f"verified provenance from {gates.builder}"
                if passed
                else f"no verified provenance from {gates.builder}"
                + (f" (found: {', '.join(sorted(builders))})" if builders else "")
            )
            results.append(GateResult("provenance", passed=passed, reason=reason))
        return Evaluation(results)

    def _signed(self, repository: str, verified: list[StoredResult]) -> GateResult:
        project = self._projects.find(repository.partition("/")[0])
        stored = None if project is None else self._trust.policy(project.id)
        if project is None or stored is None:
            return GateResult(
                "signed", passed=False, reason="the source project has no trust policy"
            )
        policy = compile_policy(project.id, project.name, stored.revision, stored.document)
        verdict = evaluate(policy, verified)
        if verdict.allowed:
            return GateResult(
                "signed", passed=True, reason="meets the source project's trust policy"
            )
        return GateResult("signed", passed=False, reason=verdict.failed or "trust policy not met")
