"""Bounded JSON: refuse documents nested deeper than a limit before parsing them."""

from __future__ import annotations

import json
import re
from typing import Any

from core.scan.errors import ScanFailedError

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def nesting_depth(text: str, limit: int) -> int:
    """The deepest ``[``/``{`` nesting of ``text`` (strings skipped), stopping past ``limit``."""
    opened = text.count("[") + text.count("{")
    if opened <= limit:
        return opened  # NOTE: a document cannot nest deeper than it opens
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub('""', text)):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > limit:
            break
    return deepest


def load_bounded(data: bytes, path: str, max_depth: int) -> Any:
    """Parse JSON, failing the analysis when it nests deeper than ``max_depth``.

    A document that is not valid JSON gives ``None`` (a broken file is skipped, as the
    package managers themselves would refuse it).
    """
    text = data.decode("utf-8", "replace")
    if nesting_depth(text, max_depth) > max_depth:
        raise ScanFailedError(f"/{path} nests JSON deeper than max_json_depth ({max_depth})")
    try:
        return json.loads(text)
    except ValueError:
        return None
