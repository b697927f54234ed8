"""Where the tests find the OCI client tools, failing loudly when one is missing.

Go-built tools (crane, oras, the conformance suite) live in the machine cache that
``scripts/install-tools`` fills; Debian-packaged ones (skopeo) come from ``PATH``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class MissingToolError(RuntimeError):
    """A client tool the tests need is not installed."""


def tools_bin_dir() -> Path:
    """The machine cache of Go-built tools: ``$MOORAGE_TOOLS_DIR/bin``."""
    base = os.environ.get("MOORAGE_TOOLS_DIR") or str(Path.home() / ".cache" / "moorage-tools")
    return Path(base) / "bin"


def find_tool(name: str) -> str:
    """Absolute path of the tool ``name`` from the tools cache, then ``PATH``."""
    cached = tools_bin_dir() / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    found = shutil.which(name)
    if found is not None:
        return found
    raise MissingToolError(
        f"required tool {name!r} is neither in {tools_bin_dir()} nor on PATH: "
        "run scripts/install-tools (or scripts/test, which runs it)"
    )
