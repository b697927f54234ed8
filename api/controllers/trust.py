"""Management API: a project's trust policy, and an image's signatures and verdict.

Under ``/api/v1/projects/{project}/trust``:

- ``GET/PUT/DELETE /policy``: the policy document (``core.trust_policy``); members read
  it, project admins change it (a change re-verifies the project's images);
- ``GET /artifacts?repository=&reference=``: the image's verdict under the policy;
- ``GET /artifacts/results?repository=&reference=[&kind=]``: its signatures and
  attestations, verified or refused with the reason, one item per signer (paginated).
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from pydantic import BaseModel

from api.guards import project_permission
from api.pagination import IDS, Page, PageParams
from api.trust_wiring import trust_of
from core.access import Identity
from core.errors import InvalidInputError
from core.paging import window
from core.trust_ports import ResultRecord, StoredPolicy
from core.trust_verify import describe

RepositoryParam = Annotated[str, QueryParameter(description="The repository (project/name).")]
ReferenceParam = Annotated[str, QueryParameter(description="A tag or a digest.")]
_KINDS = {"signature", "attestation"}


class PolicyOut(BaseModel):
    project: str
    revision: int
    document: dict[str, Any]
    updated_by: str
    updated_at: str

    @classmethod
    def of(cls, stored: StoredPolicy) -> PolicyOut:
        return cls(
            project=stored.project,
            revision=stored.revision,
            document=stored.document,
            updated_by=stored.updated_by,
            updated_at=stored.updated_at.isoformat(),
        )


class VerdictOut(BaseModel):
    repository: str
    digest: str
    #: ``False`` when the project has no trust policy.
    policy: bool
    policy_revision: int | None
    allowed: bool
    failed_requirement: str | None
    signatures_verified: int
    attestations_verified: int
    refused: int


class ResultOut(BaseModel):
    id: int
    artifact_digest: str
    entry: int
    location: str
    kind: str
    format: str
    predicate_type: str | None
    signer: str | None
    key_fingerprint: str | None
    verified: bool
    reason: str
    facts: dict[str, Any]
    policy_revision: int
    verified_at: str

    @classmethod
    def of(cls, record: ResultRecord) -> ResultOut:
        return cls(
            id=record.id,
            policy_revision=record.policy_revision,
            verified_at=record.verified_at.isoformat(),
            **describe(record.finding),
        )


class ResultPage(Page[ResultOut]):
    """An image's signatures and attestations, in the order they were found."""


def _result_id(record: ResultRecord) -> int:
    return record.id


class TrustController(Controller):
    path = "/api/v1/projects/{project:str}/trust"
    tags = ["trust"]  # noqa: RUF012

    @get(
        "/policy",
        summary="The project's trust policy",
        guards=[project_permission("configuration", "read")],
    )
    async def read_policy(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        caller: NamedDependency[Identity],
    ) -> PolicyOut:
        service = trust_of(request.app.state["registry"])
        return PolicyOut.of(await anyio.to_thread.run_sync(service.policy, caller, project))

    @put(
        "/policy",
        summary="Set the project's trust policy (its images are verified again)",
        guards=[project_permission("configuration", "update")],
    )
    async def set_policy(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        caller: NamedDependency[Identity],
        data: JSONBody[dict[str, Any]],
    ) -> PolicyOut:
        service = trust_of(request.app.state["registry"])
        saved = await anyio.to_thread.run_sync(service.set_policy, caller, project, data)
        return PolicyOut.of(saved)

    @delete(
        "/policy",
        summary="Remove the project's trust policy",
        guards=[project_permission("configuration", "update")],
    )
    async def delete_policy(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        caller: NamedDependency[Identity],
    ) -> None:
        service = trust_of(request.app.state["registry"])
        await anyio.to_thread.run_sync(service.delete_policy, caller, project)

    @get(
        "/artifacts",
        summary="An image's verdict under the trust policy",
        guards=[project_permission("accessory", "list")],
    )
    async def verdict(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        caller: NamedDependency[Identity],
        repository: RepositoryParam,
        reference: ReferenceParam,
    ) -> VerdictOut:
        service = trust_of(request.app.state["registry"])
        image = await anyio.to_thread.run_sync(
            service.image, caller, project, repository, reference
        )
        verified = [r.finding for r in image.results if r.finding.verified]
        return VerdictOut(
            repository=image.repository,
            digest=image.digest,
            policy=image.verdict is not None,
            policy_revision=image.policy_revision,
            allowed=image.verdict is None or image.verdict.allowed,
            failed_requirement=None if image.verdict is None else image.verdict.failed,
            signatures_verified=sum(f.kind == "signature" for f in verified),
            attestations_verified=sum(f.kind == "attestation" for f in verified),
            refused=sum(not r.finding.verified for r in image.results),
        )

    @get(
        "/artifacts/results",
        summary="An image's signatures and attestations with their verification results",
        guards=[project_permission("accessory", "list")],
    )
    async def results(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        caller: NamedDependency[Identity],
        page: NamedDependency[PageParams],
        repository: RepositoryParam,
        reference: ReferenceParam,
        kind: Annotated[
            str | None, QueryParameter(description="Only signatures or attestations.")
        ] = None,
    ) -> Response[ResultPage]:
        if kind is not None and kind not in _KINDS:
            raise InvalidInputError("kind is signature or attestation", field="kind")
        service = trust_of(request.app.state["registry"])
        image = await anyio.to_thread.run_sync(
            service.image, caller, project, repository, reference
        )
        chosen = [r for r in image.results if kind is None or r.finding.kind == kind]

        def fetch(after: int | None, count: int) -> list[ResultRecord]:
            return window(chosen, _result_id, after, count)

        found = await page.fetch(fetch, key=_result_id, cursor=IDS)
        return found.respond(request, ResultPage, [ResultOut.of(r) for r in found.items])
