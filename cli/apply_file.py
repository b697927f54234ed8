"""Read configuration files (YAML or JSON) into validated documents, with precise errors.

``-f`` names a file, a directory (its ``*.yaml``, ``*.yml`` and ``*.json`` files, sorted)
or ``-`` (stdin). A YAML file holds one or more ``---`` separated documents; a JSON file
one document or a list of them. Every problem of every document is collected before
anything is applied, each naming the file, the document (and its line) and the path of
the field: ``team.yaml: document 2 (line 7): spec.public: Input should be a valid boolean``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from core.ascode_models import DOCUMENT, KINDS
from core.ascode_plan import Located, PlanError

SUFFIXES = (".yaml", ".yml", ".json")


def load_documents(paths: Sequence[Path]) -> list[Located]:
    """Every document of ``paths``, validated; ``PlanError`` lists all problems found."""
    problems: list[str] = []
    found: list[Located] = []
    for path in _expand(paths, problems):
        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        try:
            raw = list(_raw_documents(str(path), text))
        except (yaml.YAMLError, ValueError) as exc:
            problems.append(f"{path}: not valid {'JSON' if _is_json(path) else 'YAML'}: {exc}")
            continue
        for where, data in raw:
            try:
                found.append(Located(where, DOCUMENT.validate_python(data)))
            except ValidationError as exc:
                problems.extend(f"{where}: {message}" for message in describe_errors(exc))
    if problems:
        raise PlanError(problems)
    return found


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per error: the field path (``spec.rules[0].tag``) and the message."""
    lines = []
    for error in exc.errors(include_url=False):
        path = ""
        for part in error["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif not path and part in KINDS:
                continue  # the union's tag, not a field of the document
            else:
                path += f".{part}" if path else str(part)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{path or '(document)'}: {message}")
    return lines


def _expand(paths: Sequence[Path], problems: list[str]) -> Iterator[Path]:
    for path in paths:
        if str(path) != "-" and path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        elif str(path) == "-" or path.exists():
            yield path
        else:
            problems.append(f"{path}: no such file")


def _is_json(path: Path) -> bool:
    return path.suffix == ".json"


def _raw_documents(name: str, text: str) -> Iterator[tuple[str, Any]]:
    if name.endswith(".json"):
        data = json.loads(text)
        items = data if isinstance(data, list) else [data]
        for number, item in enumerate(items, start=1):
            yield f"{name}: document {number}", item
        return
    loader = yaml.SafeLoader(text)
    try:
        number = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node said there is one
                break
            number += 1
            where = f"{name}: document {number} (line {node.start_mark.line + 1})"
            data = loader.construct_document(node)
            if data is not None:
                yield where, data
    finally:
        loader.dispose()
