"""Management API: CI promotions (``/api/v1/promotions``).

``POST`` checks the caller (pull on the source, the ``promotion`` permission on the
target: a project role's ``promotion:create`` or a robot's ``promote`` action), resolves
the source to its digest and starts the promotion's workflow (``202``). The id derives
from the source digest and the target: the same request again answers the same
promotion (``200``) and starts nothing. ``GET /{id}`` shows its gates and state,
``POST /{id}/approve`` sends the manual approval, ``GET /`` lists promotions (from
Temporal's visibility, by target project when ``project`` is given). A project's signing
key is exported at ``/api/v1/projects/{p}/signing-key`` (the active one) and
``/signing-keys`` (every key, rotated-out ones included); ``POST .../signing-keys/rotate``
(project administrators) makes a new active key.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, cast

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from pydantic import BaseModel, Field

from api.backup_runs import TemporalUnavailableError
from api.controllers.backups import unavailable
from api.guards import project_permission, signed_in
from api.pagination import IDS, NEWEST_FIRST, Page, PageParams
from api.promotion_runs import PromotionRuns, PromotionSummary
from core.access import Identity
from core.errors import ForbiddenError, NotFoundError
from core.names import validate_project_name
from core.paging import window
from core.promotion import DEFAULT_APPROVAL_TIMEOUT, Gates, PromotionState
from core.promotion_signing import fingerprint
from core.services.promotion_keys import KeyInfo, PromotionKeys
from core.services.promotions import PromotionService


class GatesIn(BaseModel):
    """The gates a promotion must pass (each optional)."""

    max_severity: str | None = Field(
        default=None, description="Refuse a finding at or above it (low, medium, high, critical)."
    )
    signed: bool = Field(default=False, description="Meet the source project's trust policy.")
    builder: str | None = Field(
        default=None, max_length=1024, description="Verified SLSA provenance from this builder id."
    )
    approval: bool = Field(default=False, description="Wait for a manual approval.")
    approval_timeout_seconds: int = DEFAULT_APPROVAL_TIMEOUT
    wait_seconds: int = Field(
        default=0,
        description=(
            "How long failing scan, signature and provenance gates are evaluated again "
            "(every 10 s) before the promotion is refused; 0: decided once."
        ),
    )


class PromotionIn(BaseModel):
    source: str = Field(max_length=512, description="project/repo@sha256:… or project/repo:tag")
    target: str = Field(max_length=512, description="project/repo:tag")
    gates: GatesIn = Field(default_factory=GatesIn)
    sign: bool = Field(
        default=False,
        description=(
            "Sign the promoted image with the target project's key (cosign's and notation's"
            " formats)."
        ),
    )


class GateOut(BaseModel):
    gate: str
    passed: bool
    reason: str


class PromotionOut(BaseModel):
    id: str
    source: str
    target: str
    status: str
    reason: str
    gates: list[GateOut]
    copied: dict[str, Any] | None

    @classmethod
    def of(cls, state: PromotionState) -> PromotionOut:
        copied = state.copied
        return cls(
            id=state.id,
            source=state.source,
            target=state.target,
            status=state.status,
            reason=state.reason,
            gates=[GateOut(gate=g.gate, passed=g.passed, reason=g.reason) for g in state.gates],
            copied=None
            if copied is None
            else {
                "digest": copied.digest,
                "manifests": copied.manifests,
                "blobs": copied.blobs,
                "referrers": copied.referrers,
            },
        )


class SummaryOut(BaseModel):
    id: str
    #: The run's state (``running``, ``completed``...); ``GET /{id}`` tells the outcome.
    state: str
    started_at: datetime
    #: The target repository.
    repository: str
    digest: str


class PromotionPage(Page[SummaryOut]):
    """Promotions, newest first."""


def _newest(summary: PromotionSummary) -> tuple[datetime, str]:
    return summary.started_at, summary.id


def _service(request: Request[Any, Any, Any]) -> PromotionService:
    return cast("PromotionService", request.app.state["registry"].extras["promotions"])


def _runs(request: Request[Any, Any, Any]) -> PromotionRuns:
    return cast("PromotionRuns", request.app.state["registry"].extras["promotion_runs"])


async def _authorized_state(
    request: Request[Any, Any, Any], caller: Identity, promotion_id: str, *, approve: bool
) -> PromotionState:
    """The promotion's state if ``caller`` may read it (``approve``: and approve it)."""
    state = await _runs(request).read(promotion_id)
    target = state.target.rpartition(":")[0]
    service = _service(request)
    if approve:
        await anyio.to_thread.run_sync(service.require_promote, caller, target)
    elif not await anyio.to_thread.run_sync(service.may_see, caller, target):
        raise ForbiddenError(f"promotions into {target!r} are not visible", field="id")
    return state


class PromotionController(Controller):
    path = "/api/v1/promotions"
    tags = ["promotions"]  # noqa: RUF012
    guards = [signed_in]  # noqa: RUF012
    exception_handlers = {TemporalUnavailableError: unavailable}  # noqa: RUF012

    @post("/", summary="Promote an image to a target tag through gates")
    async def create(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        data: JSONBody[PromotionIn],
    ) -> Response[PromotionOut]:
        gates = Gates(**data.gates.model_dump())
        service = _service(request)
        checked = await anyio.to_thread.run_sync(
            partial(service.request, caller, data.source, data.target, gates, sign=data.sign)
        )
        started = await _runs(request).start(checked)
        state = await _runs(request).read(checked.id) if not started else None
        if state is None:
            state = PromotionState(
                id=checked.id,
                source=f"{checked.source_repository}@{checked.source_digest}",
                target=f"{checked.target_repository}:{checked.target_tag}",
            )
        return Response(PromotionOut.of(state), status_code=202 if started else 200)

    @get("/", summary="Promotions, newest first (from Temporal's visibility)")
    async def list_promotions(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        page: NamedDependency[PageParams],
        project: Annotated[
            str | None, QueryParameter(description="Only promotions into this project.")
        ] = None,
    ) -> Response[PromotionPage]:
        if project is not None:
            validate_project_name(project)  # NOTE: it goes into a visibility query
        found = await _runs(request).summaries(project)
        service = _service(request)

        def fetch(after: tuple[datetime, str] | None, count: int) -> list[PromotionSummary]:
            visible = [s for s in found if service.may_see(caller, s.repository)]
            return window(visible, _newest, after, count, descending=True)

        window_ = await page.fetch(fetch, key=_newest, cursor=NEWEST_FIRST)
        items = [
            SummaryOut(
                id=s.id,
                state=s.state,
                started_at=s.started_at,
                repository=s.repository,
                digest=s.digest,
            )
            for s in window_.items
        ]
        return window_.respond(request, PromotionPage, items)

    @get("/{promotion_id:str}", summary="A promotion's gates and state")
    async def show(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        promotion_id: FromPath[str],
    ) -> PromotionOut:
        state = await _authorized_state(request, caller, promotion_id, approve=False)
        return PromotionOut.of(state)

    @post(
        "/{promotion_id:str}/approve", summary="Approve a promotion waiting for it", status_code=202
    )
    async def approve(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        promotion_id: FromPath[str],
    ) -> PromotionOut:
        await _authorized_state(request, caller, promotion_id, approve=True)
        state = await _runs(request).approve(promotion_id, caller.subject)
        return PromotionOut.of(state)


class SigningKeyOut(BaseModel):
    project: str
    #: PEM (SubjectPublicKeyInfo), what ``cosign verify --key`` takes.
    public_key: str
    fingerprint: str
    #: PEM, the key's self-signed code-signing certificate: what ``notation cert add
    #: --type ca`` takes to verify the registry's notation signatures.
    certificate: str


class SigningKeyController(Controller):
    path = "/api/v1/projects/{project:str}/signing-key"
    tags = ["promotions"]  # noqa: RUF012

    @get(
        "/",
        summary="The project's public key of promotion signatures",
        guards=[project_permission("project", "read")],
    )
    async def public_key(
        self, request: Request[Any, Any, Any], project: FromPath[str]
    ) -> SigningKeyOut:
        registry = request.app.state["registry"]
        found = registry.projects.find(project)
        keys = cast("PromotionKeys", registry.extras["promotion_keys"])
        pem = None if found is None else await anyio.to_thread.run_sync(keys.public_pem, found.id)
        if found is None or pem is None:
            raise NotFoundError(f"project {project!r} has signed no promotion yet", field="project")
        certificate = await anyio.to_thread.run_sync(keys.certificate, found.id)
        return SigningKeyOut(
            project=project,
            public_key=pem,
            fingerprint=fingerprint(pem),
            certificate=certificate or "",
        )


class SigningKeyItem(BaseModel):
    version: int
    public_key: str
    fingerprint: str
    #: The key the project signs with now; the others were retired by rotations.
    active: bool
    created_at: str
    retired_at: str | None
    #: The key's notation certificate (PEM); ``None`` for a key retired before those.
    certificate: str | None

    @classmethod
    def of(cls, key: KeyInfo) -> SigningKeyItem:
        return cls(
            version=key.version,
            public_key=key.public_pem,
            fingerprint=key.fingerprint,
            active=key.active,
            created_at=key.created_at,
            retired_at=key.retired_at,
            certificate=key.certificate_pem,
        )


class SigningKeyPage(Page[SigningKeyItem]):
    """A project's signing keys, oldest first (the active one last)."""


def _version(key: KeyInfo) -> int:
    return key.version


class SigningKeysController(Controller):
    path = "/api/v1/projects/{project:str}/signing-keys"
    tags = ["promotions"]  # noqa: RUF012

    @get(
        "/",
        summary="Every signing key of the project: the active one and those rotated out",
        guards=[project_permission("project", "read")],
    )
    async def list_keys(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        page: NamedDependency[PageParams],
    ) -> Response[SigningKeyPage]:
        keys = await anyio.to_thread.run_sync(_keys_of, request, project)

        def fetch(after: int | None, count: int) -> list[KeyInfo]:
            return window(keys, _version, after, count)

        found = await page.fetch(fetch, key=_version, cursor=IDS)
        return found.respond(request, SigningKeyPage, [SigningKeyItem.of(k) for k in found.items])

    @post(
        "/rotate",
        summary="Make a new active signing key; earlier keys stay listed for verification",
        guards=[project_permission("signing-key", "create")],
        status_code=201,
    )
    async def rotate(
        self, request: Request[Any, Any, Any], project: FromPath[str]
    ) -> SigningKeyItem:
        registry = request.app.state["registry"]
        found = registry.projects.find(project)
        if found is None:
            raise NotFoundError(f"project {project!r} not found", field="project")
        keys = cast("PromotionKeys", registry.extras["promotion_keys"])
        return SigningKeyItem.of(await anyio.to_thread.run_sync(keys.rotate, found.id))


def _keys_of(request: Request[Any, Any, Any], project: str) -> list[KeyInfo]:
    registry = request.app.state["registry"]
    found = registry.projects.find(project)
    keys = cast("PromotionKeys", registry.extras["promotion_keys"])
    return [] if found is None else keys.keys(found.id)
