"""The composition root passes every dependency explicitly; nothing it builds makes its own.

``cli.composition`` builds the services and ``cli.wiring`` binds the worker's activities to
them. A parameter left to its default there, or a constructor that makes a collaborator
when it is given none (``changes or ChangeRecorder(24 * 3600)``), would let one process
run with a value its settings never said: these tests read the root's source and fail on
either.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import cli.composition
import cli.wiring

FIRST_PARTY = {"adapters", "api", "activities", "cli", "core", "storage", "workflows"}
#: The root modules: where engines, stores, services and activities are built.
ROOT_MODULES = (cli.composition, cli.wiring)
#: Parameters the root leaves on purpose, with the reason.
LEFT_TO_THE_APP = {
    # ``create_app`` registers the hooks once the registry exists (the audit hook needs it).
    ("Registry", "hooks"),
}


@dataclass(frozen=True)
class Construction:
    """One call in a root module to a first-party callable."""

    where: str
    name: str
    target: Any
    positional: int
    keywords: frozenset[str]


def _resolve(module: ModuleType, func: ast.expr) -> tuple[str, Any] | None:
    """The first-party object a call's ``func`` names in ``module`` (``None``: other calls)."""
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.insert(0, func.attr)
        func = func.value
    if not isinstance(func, ast.Name) or func.id == "self":
        return None
    target: Any = getattr(module, func.id, None)
    for part in parts:
        target = getattr(target, part, None)
    home = getattr(target, "__module__", None) or ""
    if target is None or home.split(".")[0] not in FIRST_PARTY:
        return None
    return ".".join([func.id, *parts]), target


def constructions(module: ModuleType) -> list[Construction]:
    source = Path(inspect.getfile(module)).read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        resolved = _resolve(module, node.func)
        if resolved is None:
            continue
        assert not any(isinstance(arg, ast.Starred) for arg in node.args), ast.unparse(node)
        assert all(keyword.arg for keyword in node.keywords), ast.unparse(node)
        found.append(
            Construction(
                f"{module.__name__}:{node.lineno}",
                resolved[0],
                resolved[1],
                len(node.args),
                frozenset(str(keyword.arg) for keyword in node.keywords),
            )
        )
    return found


def unbound(call: Construction) -> list[str]:
    """The parameters of ``call``'s target that the call leaves to their defaults."""
    signature = inspect.signature(call.target)
    parameters = [
        p
        for p in signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    bound = {p.name for p in positional[: call.positional]} | call.keywords
    return [
        p.name
        for p in parameters
        if p.name not in bound and (call.name, p.name) not in LEFT_TO_THE_APP
    ]


def _all_constructions() -> list[Construction]:
    return [call for module in ROOT_MODULES for call in constructions(module)]


def test_the_root_builds_the_services_and_the_activities() -> None:
    """The scan sees what the root builds (else the other tests would pass vacuously)."""
    names = {call.name for call in _all_constructions()}
    for expected in (
        "SqlMetadata",
        "ChangeRecorder",
        "UploadService",
        "ManifestService",
        "RepositoryService",
        "Registry",
        "GcActivities",
        "UploadActivities",
        "RetentionActivities",
        "KeyActivities",
    ):
        assert expected in names


def test_every_call_in_the_root_passes_every_parameter() -> None:
    left = {
        f"{call.where} {call.name}: {', '.join(missing)}"
        for call in _all_constructions()
        if (missing := unbound(call))
    }
    assert not left, "parameters left to their defaults:\n" + "\n".join(sorted(left))


def test_the_unbound_finder_sees_a_defaulted_parameter() -> None:
    class Service:
        def __init__(self, store: object, changes: object = None) -> None: ...

    call = Construction("here", "Service", Service, 1, frozenset())
    assert unbound(call) == ["changes"]
    assert unbound(Construction("here", "Service", Service, 1, frozenset({"changes"}))) == []


def _default_builders(cls: type) -> list[str]:
    """``x or Factory(...)`` expressions in ``cls.__init__`` (a collaborator made in place)."""
    init = cls.__dict__.get("__init__")
    if init is None:
        return []
    try:
        source = textwrap.dedent(inspect.getsource(init))
    except (OSError, TypeError):  # generated (a dataclass's): no defaults built in code
        return []
    return [
        ast.unparse(node)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.BoolOp)
        and isinstance(node.op, ast.Or)
        and isinstance(node.values[-1], ast.Call)
    ]


def test_nothing_the_root_builds_makes_a_default_collaborator() -> None:
    classes = {call.target for call in _all_constructions() if inspect.isclass(call.target)}
    found = {
        f"{cls.__module__}.{cls.__qualname__}: {expression}"
        for cls in classes
        for expression in _default_builders(cls)
    }
    assert not found, "constructors that build their own default:\n" + "\n".join(sorted(found))


def test_the_default_builder_finder_sees_one() -> None:
    class Service:
        def __init__(self, changes: object | None = None) -> None:
            self._changes = changes or timedelta(seconds=86400)

    assert _default_builders(Service) == ["changes or timedelta(seconds=86400)"]


@pytest.mark.parametrize(
    "module",
    ["activities.gc", "activities.keys", "activities.retention", "activities.uploads"],
)
def test_activities_read_the_time_from_the_injected_clock(module: str) -> None:
    """One clock: activities never call ``datetime.now`` (they get ``Composition.clock``)."""
    source = inspect.getsource(importlib.import_module(module))
    assert "datetime.now(" not in source
    assert "clock" in source
