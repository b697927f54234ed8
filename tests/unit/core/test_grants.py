"""The one grant check (``core.access.held_actions``) every ``/v2`` path reads grants with."""

from __future__ import annotations

from core.access import Scope, grants, held_actions, missing_actions


def _scope(name: str, *actions: str, kind: str = "repository") -> Scope:
    return Scope(kind, name, frozenset(actions))


def test_actions_add_up_over_entries_of_the_same_name() -> None:
    access = [_scope("p/a", "pull"), _scope("p/a", "push"), _scope("p/b", "delete")]
    assert held_actions(access, "repository", "p/a") == {"pull", "push"}
    assert grants(access, "repository", "p/a", "push")
    assert not grants(access, "repository", "p/a", "delete")
    assert not grants(access, "repository", "p/ab", "pull")


def test_star_on_a_repository_holds_every_action() -> None:
    access = [_scope("p/a", "*")]
    for action in ("pull", "push", "delete"):
        assert grants(access, "repository", "p/a", action)
    assert missing_actions(access, _scope("p/a", "pull", "push", "delete")) == frozenset()


def test_star_elsewhere_is_only_itself() -> None:
    access = [_scope("catalog", "*", kind="registry")]
    assert held_actions(access, "registry", "catalog") == {"*"}
    assert not grants(access, "repository", "catalog", "pull")


def test_missing_actions_name_what_is_lacking() -> None:
    access = [_scope("p/a", "pull")]
    assert missing_actions(access, _scope("p/a", "pull", "push")) == {"push"}
    assert missing_actions([], _scope("p/a", "pull")) == {"pull"}
