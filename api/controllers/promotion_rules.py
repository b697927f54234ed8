"""Management API: a project's promotion rules (``/api/v1/projects/{p}/promotion-rules``).

A rule promotes what a matching identity pushes with a matching tag into its target
project (``core.promotion_rules``). ``promotion-rule`` rights in the source project are
needed (administrators write, maintainers read), and writing a rule needs the promotion
permission on its target. The promotions a rule starts are ordinary promotions
(``/api/v1/promotions``), requested by ``rule:<project>/<name>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.context import registry_of
from api.controllers.promotions import GatesIn
from api.pagination import IDS, Page, PageParams
from api.principal import api_caller, require_caller
from core.paging import window
from core.promotion import Gates
from core.promotion_rules import PromotionRule, RuleInput
from core.services.promotion_rules import PromotionRuleService


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=63)
    description: str = Field(default="", max_length=1024)
    repositories: str = Field(
        default="**", max_length=255, description="Glob on repository paths inside the project."
    )
    tags: str = Field(default="**", max_length=255, description="Glob on the pushed tag.")
    pusher: str | None = Field(
        default=None,
        max_length=255,
        description="Glob on who pushed (user name, robot$<project>+<name>); null: anyone.",
    )
    pusher_kind: str | None = Field(
        default=None, max_length=16, description="user, oidc_user, robot or issuer; null: any."
    )
    target_project: str = Field(max_length=63)
    target_repository: str | None = Field(
        default=None,
        max_length=255,
        description="Repository path in the target project; null: the source's path.",
    )
    gates: GatesIn = Field(default_factory=GatesIn)
    sign: bool = Field(
        default=False, description="Sign the promoted image (cosign's and notation's formats)."
    )
    enabled: bool = True

    def value(self) -> RuleInput:
        values = self.model_dump(exclude={"gates"})
        return RuleInput(**values, gates=Gates(**self.gates.model_dump()))


class RuleOut(BaseModel):
    id: int
    project: str
    name: str
    description: str
    repositories: str
    tags: str
    pusher: str | None
    pusher_kind: str | None
    target_project: str
    target_repository: str | None
    gates: GatesIn
    sign: bool
    enabled: bool
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rule: PromotionRule) -> RuleOut:
        gates = rule.gates
        return cls(
            id=rule.id,
            project=rule.project,
            name=rule.name,
            description=rule.description,
            repositories=rule.repositories,
            tags=rule.tags,
            pusher=rule.pusher,
            pusher_kind=rule.pusher_kind,
            target_project=rule.target_project,
            target_repository=rule.target_repository,
            gates=GatesIn(
                max_severity=gates.max_severity,
                signed=gates.signed,
                builder=gates.builder,
                approval=gates.approval,
                approval_timeout_seconds=gates.approval_timeout_seconds,
                wait_seconds=gates.wait_seconds,
            ),
            sign=rule.sign,
            enabled=rule.enabled,
            created_by=rule.created_by,
            created_at=rule.created_at,
            updated_at=rule.updated_at,
        )


class RulePage(Page[RuleOut]):
    """A project's promotion rules, by id."""


def _service(request: Request[Any, Any, Any]) -> PromotionRuleService:
    return cast("PromotionRuleService", registry_of(request).extras["promotion_rules"])


def _id(rule: PromotionRule) -> int:
    return rule.id


class PromotionRuleController(Controller):
    path = "/api/v1/projects/{project:str}/promotion-rules"
    tags = ["promotions"]  # noqa: RUF012

    @get("/", summary="A project's promotion rules, by id")
    async def list_rules(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        page: NamedDependency[PageParams],
    ) -> Response[RulePage]:
        caller = await api_caller(request, registry_of(request))
        rules = await anyio.to_thread.run_sync(_service(request).rules, caller, project)

        def fetch(after: int | None, count: int) -> list[PromotionRule]:
            return window(rules, _id, after, count)

        found = await page.fetch(fetch, key=_id, cursor=IDS)
        return found.respond(request, RulePage, [RuleOut.of(r) for r in found.items])

    @post("/", summary="Add a promotion rule", status_code=201)
    async def create_rule(
        self, request: Request[Any, Any, Any], project: FromPath[str], data: JSONBody[RuleIn]
    ) -> RuleOut:
        caller = await require_caller(request, registry_of(request))
        service = _service(request)
        rule = await anyio.to_thread.run_sync(service.create, caller, project, data.value())
        return RuleOut.of(rule)

    @get("/{rule_id:int}", summary="One promotion rule")
    async def read_rule(
        self, request: Request[Any, Any, Any], project: FromPath[str], rule_id: FromPath[int]
    ) -> RuleOut:
        caller = await api_caller(request, registry_of(request))
        service = _service(request)
        return RuleOut.of(await anyio.to_thread.run_sync(service.rule, caller, project, rule_id))

    @put("/{rule_id:int}", summary="Replace a promotion rule")
    async def replace_rule(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        rule_id: FromPath[int],
        data: JSONBody[RuleIn],
    ) -> RuleOut:
        caller = await require_caller(request, registry_of(request))
        service = _service(request)
        rule = await anyio.to_thread.run_sync(
            service.update, caller, project, rule_id, data.value()
        )
        return RuleOut.of(rule)

    @delete("/{rule_id:int}", summary="Remove a promotion rule", status_code=204)
    async def delete_rule(
        self, request: Request[Any, Any, Any], project: FromPath[str], rule_id: FromPath[int]
    ) -> None:
        caller = await require_caller(request, registry_of(request))
        await anyio.to_thread.run_sync(_service(request).delete, caller, project, rule_id)
