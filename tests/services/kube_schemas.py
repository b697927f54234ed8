"""Kubernetes API schemas for checking rendered manifests offline.

The schemas are the Kubernetes project's own OpenAPI v2 document (``swagger.json`` of the
``k8s.io/kubernetes`` module, fetched by ``scripts/install-tools`` through the Go module
proxy). Each object is checked against the definition whose
``x-kubernetes-group-version-kind`` names its ``apiVersion`` and ``kind``, strictly:
properties the API does not define are errors (a misspelt field would be dropped
silently by the API server), ``IntOrString`` accepts both, as the server does.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

from tests.services.tools import built_file

KUBERNETES_VERSION = "v1.36.3"


class MissingSchemaError(RuntimeError):
    """No schema for an object's apiVersion and kind."""


def schema_file() -> Path:
    """The cached ``swagger.json``; fails loudly when install-tools has not fetched it."""
    path = built_file(f"k8s-openapi/swagger-{KUBERNETES_VERSION}.json")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run scripts/install-tools")
    return path


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if out.get("format") == "int-or-string":
            return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


class KubeSchemas:
    """Validators per (group, version, kind) from one OpenAPI v2 document."""

    def __init__(self, path: Path) -> None:
        definitions = json.loads(path.read_text())["definitions"]
        self._definitions = _strict(copy.deepcopy(definitions))
        self._by_gvk: dict[tuple[str, str, str], str] = {}
        for name, definition in definitions.items():
            for gvk in definition.get("x-kubernetes-group-version-kind", []):
                self._by_gvk[(gvk["group"], gvk["version"], gvk["kind"])] = name
        self._validators: dict[str, Draft4Validator] = {}

    def errors(self, obj: dict[str, Any]) -> Iterator[str]:
        """Every schema violation of ``obj``, as ``path: message``."""
        api_version = str(obj.get("apiVersion", ""))
        group, _, version = api_version.rpartition("/")
        key = (group, version, str(obj.get("kind", "")))
        name = self._by_gvk.get(key)
        if name is None:
            raise MissingSchemaError(f"no schema for {api_version} {obj.get('kind')}")
        validator = self._validators.get(name)
        if validator is None:
            schema = {"$ref": f"#/definitions/{name}", "definitions": self._definitions}
            validator = Draft4Validator(schema)
            self._validators[name] = validator
        for error in validator.iter_errors(obj):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            yield f"{where}: {error.message}"
