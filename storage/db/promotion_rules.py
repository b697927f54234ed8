"""SQL of promotion rules (``core.promotion_rules.PromotionRuleStore``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from core.promotion import Gates
from core.promotion_rules import PromotionRule
from storage.db.engine import Engines
from storage.db.promotion_rule_tables import PromotionRuleRow
from storage.db.repos.base import table_of
from storage.db.rows import TableRows

_RULE = table_of(PromotionRuleRow)
_GATES = (
    "max_severity",
    "signed",
    "builder",
    "approval",
    "approval_timeout_seconds",
    "wait_seconds",
)


def _rule(row: Any) -> PromotionRule:
    return PromotionRule(
        id=row.id,
        project_id=row.project_id,
        project=row.project,
        name=row.name,
        description=row.description,
        repositories=row.repositories,
        tags=row.tags,
        pusher=row.pusher,
        pusher_kind=row.pusher_kind,
        target_project=row.target_project,
        target_repository=row.target_repository,
        gates=Gates(
            max_severity=row.max_severity,
            signed=bool(row.signed),
            builder=row.builder,
            approval=bool(row.approval),
            approval_timeout_seconds=row.approval_timeout_seconds,
            wait_seconds=row.wait_seconds,
        ),
        sign=bool(row.sign),
        enabled=bool(row.enabled),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _values(rule: PromotionRule) -> dict[str, Any]:
    values = {
        name: getattr(rule, name)
        for name in (
            "project_id",
            "project",
            "name",
            "description",
            "repositories",
            "tags",
            "pusher",
            "pusher_kind",
            "target_project",
            "target_repository",
            "sign",
            "enabled",
            "created_by",
            "created_at",
            "updated_at",
        )
    }
    values |= {name: getattr(rule.gates, name) for name in _GATES}
    return values


class SqlPromotionRuleStore:
    """Promotion rules on the metadata database, one short transaction per call."""

    def __init__(self, engines: Engines) -> None:
        self._rows = TableRows(engines, _RULE)

    def add(self, rule: PromotionRule) -> PromotionRule | None:
        rule_id = self._rows.add(_values(rule))
        return None if rule_id is None else replace(rule, id=rule_id)

    def get(self, rule_id: int) -> PromotionRule | None:
        row = self._rows.by_id(rule_id)
        return None if row is None else _rule(row)

    def of_project(self, project_id: int) -> list[PromotionRule]:
        return [_rule(row) for row in self._rows.all(_RULE.c.project_id == project_id)]

    def enabled_of(self, project_ids: list[int]) -> list[PromotionRule]:
        if not project_ids:
            return []
        where = _RULE.c.project_id.in_(sorted(set(project_ids))) & _RULE.c.enabled.is_(True)
        return [_rule(row) for row in self._rows.all(where)]

    def save(self, rule: PromotionRule) -> bool:
        return self._rows.save(rule.id, _values(rule))

    def delete(self, rule_id: int) -> bool:
        return self._rows.delete(rule_id)
