"""Promotion rules as project administrators manage them (``core.promotion_rules``).

Rights: a source project's rules need ``promotion-rule`` rights there (administrators
write them, maintainers read them); a project the caller cannot read answers 404 like a
missing one. Writing a rule also needs the promotion permission on its target (what a
manual promotion into it needs, ``PromotionService.require_promote``), checked when the
rule is written: a rule then promotes on its own, as ``rule:<project>/<name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Final

from core.access import Identity
from core.errors import ConflictError, ForbiddenError, NotFoundError
from core.promotion_rules import PromotionRule, PromotionRuleStore, RuleInput, check_rule
from core.services.access_control import AccessControl
from core.services.promotions import PromotionService

_RESOURCE: Final = "promotion-rule"


class PromotionRuleService:
    """A project's promotion rules: list, read, create, replace, delete."""

    def __init__(
        self,
        store: PromotionRuleStore,
        access: AccessControl,
        promotions: PromotionService,
        clock: Callable[[], datetime],
    ) -> None:
        self._store, self._access, self._promotions, self._now = store, access, promotions, clock

    def rules(self, caller: Identity, project: str) -> list[PromotionRule]:
        record = self._access.require(caller, project, _RESOURCE, "list")
        return self._store.of_project(record.id)

    def rule(self, caller: Identity, project: str, rule_id: int) -> PromotionRule:
        return self._owned(caller, project, rule_id, "read")

    def create(self, caller: Identity, project: str, data: RuleInput) -> PromotionRule:
        record = self._access.require(caller, project, _RESOURCE, "create")
        checked = self._checked(caller, data)
        now = self._now()
        stored = self._store.add(
            PromotionRule(
                id=0,
                project_id=record.id,
                project=record.name,
                name=checked.name,
                description=checked.description,
                repositories=checked.repositories,
                tags=checked.tags,
                pusher=checked.pusher,
                pusher_kind=checked.pusher_kind,
                target_project=checked.target_project,
                target_repository=checked.target_repository,
                gates=checked.gates,
                sign=checked.sign,
                enabled=checked.enabled,
                created_by=caller.subject,
                created_at=now,
                updated_at=now,
            )
        )
        if stored is None:
            raise ConflictError(f"promotion rule {data.name!r} already exists in {project!r}")
        return stored

    def update(
        self, caller: Identity, project: str, rule_id: int, data: RuleInput
    ) -> PromotionRule:
        current = self._owned(caller, project, rule_id, "update")
        checked = self._checked(caller, data)
        changed = replace(
            current,
            name=checked.name,
            description=checked.description,
            repositories=checked.repositories,
            tags=checked.tags,
            pusher=checked.pusher,
            pusher_kind=checked.pusher_kind,
            target_project=checked.target_project,
            target_repository=checked.target_repository,
            gates=checked.gates,
            sign=checked.sign,
            enabled=checked.enabled,
            updated_at=self._now(),
        )
        if not self._store.save(changed):
            raise ConflictError(f"promotion rule {data.name!r} already exists in {project!r}")
        return changed

    def delete(self, caller: Identity, project: str, rule_id: int) -> PromotionRule:
        rule = self._owned(caller, project, rule_id, "delete")
        self._store.delete(rule.id)
        return rule

    def _owned(self, caller: Identity, project: str, rule_id: int, action: str) -> PromotionRule:
        record = self._access.require(caller, project, _RESOURCE, action)
        rule = self._store.get(rule_id)
        if rule is None or rule.project_id != record.id:
            raise NotFoundError(f"promotion rule {rule_id} not found")
        return rule

    def _checked(self, caller: Identity, data: RuleInput) -> RuleInput:
        checked = check_rule(data)
        target = f"{checked.target_project}/{checked.target_repository or checked.repositories}"
        try:
            self._promotions.require_promote(caller, target)
        except NotFoundError as exc:
            raise NotFoundError(str(exc), field="target_project") from exc
        except ForbiddenError as exc:
            raise ForbiddenError(str(exc), field="target_project") from exc
        return checked
