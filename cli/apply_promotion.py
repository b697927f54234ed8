"""Carry out changes to promotion rules (``Executor``'s part).

Rules are addressed by id (read with the live state). A deleted rule created again by an
undo gets a new id; the promotions it started stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.ascode_plan import Change

Undo = Callable[[], object]
#: Fields of a rule's API answer that are not its spec.
RULE_META = frozenset({"id", "project", "name", "created_by", "created_at", "updated_at"})


def rule_body(doc: Any) -> dict[str, Any]:
    """The API body of a ``PromotionRule``."""
    return {"name": doc.metadata.name, **doc.canonical_spec()}


def rules_path(project: str) -> str:
    return f"/api/v1/projects/{project}/promotion-rules"


def rule_document(project: str, rule: dict[str, Any]) -> dict[str, Any]:
    """The ``PromotionRule`` document of a rule as the API answers it."""
    spec = {k: v for k, v in rule.items() if k not in RULE_META}
    return {
        "kind": "PromotionRule",
        "metadata": {"project": project, "name": rule["name"]},
        "spec": spec,
    }


class PromotionKinds:
    """The ``_promotionrule`` handler."""

    ids: dict[tuple[str, str], int]
    _undo: list[tuple[str, Undo]]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        raise NotImplementedError

    def _promotionrule(self, change: Change) -> None:
        key, doc = change.key, change.after or change.before
        base = rules_path(doc.metadata.project)
        if change.action == "create":
            created = self._call("POST", base, rule_body(change.after))
            self.ids["PromotionRule", key] = int(created["id"])
            path = f"{base}/{created['id']}"
            self._undo.append((f"delete promotion rule {key}", lambda: self._call("DELETE", path)))
            return
        path, before = f"{base}/{self.ids['PromotionRule', key]}", change.before
        if change.action == "delete":
            self._call("DELETE", path)
            body = rule_body(before)
            self._undo.append(
                (f"recreate promotion rule {key}", lambda: self._call("POST", base, body))
            )
            return
        self._call("PUT", path, rule_body(change.after))
        previous = rule_body(before)
        self._undo.append(
            (f"restore promotion rule {key}", lambda: self._call("PUT", path, previous))
        )
