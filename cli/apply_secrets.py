"""Resolve secret references (``core.ascode_secrets``) in the applying process."""

from __future__ import annotations

import os
from pathlib import Path

from core.ascode_secrets import parse_ref


class SecretError(ValueError):
    """A reference that names no value."""


def resolve(reference: str) -> str:
    """The secret ``reference`` names; ``SecretError`` when it names nothing usable."""
    ref = parse_ref(reference)
    if ref.source == "env":
        value = os.environ.get(ref.name)
        if not value:
            raise SecretError(f"{reference}: the environment variable {ref.name} is not set")
        return value
    try:
        text = Path(ref.name).read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretError(f"{reference}: {exc.strerror or exc}") from exc
    value = text.removesuffix("\n")
    if not value:
        raise SecretError(f"{reference}: the file is empty")
    return value
