"""Per-project policy documents: tag immutability rules (Harbor's model).

A rule selects repositories (by their path inside the project) and tags with
doublestar patterns, each either ``matches`` or ``excludes``; a tag is immutable when
any enabled rule selects it (rules OR together). Rules are evaluated at request time.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.patterns import matches

MAX_RULES = 15


class Selector(BaseModel):
    """One doublestar selector; ``excludes`` selects what the pattern does not match."""

    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(min_length=1, max_length=255)
    decoration: Literal["matches", "excludes"] = "matches"

    def selects(self, text: str) -> bool:
        return matches(self.pattern, text) == (self.decoration == "matches")


class ImmutabilityRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repository: Selector = Selector(pattern="**")
    tag: Selector
    disabled: bool = False

    def protects(self, repository_path: str, tag: str) -> bool:
        return (
            not self.disabled and self.repository.selects(repository_path) and self.tag.selects(tag)
        )


class ImmutabilityPolicy(BaseModel):
    rules: list[ImmutabilityRule] = Field(default_factory=list, max_length=MAX_RULES)

    @classmethod
    def load(cls, body: str | None) -> ImmutabilityPolicy:
        return cls.model_validate(json.loads(body)) if body else cls()

    def rule_for(self, repository_name: str, tag: str) -> int | None:
        """Index of the first rule making ``tag`` immutable in ``repository_name``."""
        path = repository_name.partition("/")[2]
        for index, rule in enumerate(self.rules):
            if rule.protects(path, tag):
                return index
        return None
