"""Secrets in configuration files: by reference only, never inline.

A secret field holds ``env:NAME`` (the environment variable ``NAME`` of the process
applying the file) or ``file:/absolute/path`` (the file's content, one trailing newline
dropped). Anything else is refused when the file is validated, so a password pasted
into a file under version control is an error, not a setting. References are resolved by
the applying process (``cli.apply_secrets``), right before the value is sent; export
never writes a secret (the registry keeps only hashes anyway).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

SECRET_REF_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/.+)$"  # noqa: S105 - a pattern

SecretRef = Annotated[
    str,
    Field(
        pattern=SECRET_REF_PATTERN,
        description="A secret by reference: env:NAME or file:/absolute/path (never inline).",
        json_schema_extra={"examples": ["env:MOORAGE_CI_PASSWORD", "file:/run/secrets/ci"]},
    ),
]

_REF = re.compile(SECRET_REF_PATTERN)


@dataclass(frozen=True, slots=True)
class ParsedRef:
    source: Literal["env", "file"]
    name: str


def parse_ref(text: str) -> ParsedRef:
    """Split a reference; ``ValueError`` for anything that is not one."""
    if not _REF.match(text):
        raise ValueError("a secret is given as env:NAME or file:/absolute/path, never inline")
    source, _, name = text.partition(":")
    return ParsedRef("env" if source == "env" else "file", name)
