"""Composition root: builds the concrete collaborators a process needs from settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from activities.uploads import UploadActivities
from storage.blobs import build_blob_store
from storage.db.engine import create_db_engine

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.settings import Settings


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to real storage."""
    engine = create_db_engine(settings)
    store = build_blob_store(settings)
    uploads = UploadActivities(settings, engine, store)
    return [uploads.reap_expired_uploads]
