"""ASGI entry point for servers that import the app by name (``cli.asgi:app``).

Each server worker process calls the factory and so builds its own settings from the
environment and configuration file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from api.app import create_app
from core.settings import Settings

if TYPE_CHECKING:
    from litestar import Litestar


def app() -> Litestar:
    """Build the Moorage HTTP application (uvicorn ``--factory``)."""
    return create_app(Settings())
