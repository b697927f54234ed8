"""Kinds of outbox events and of GC review triggers (plain constants)."""

from __future__ import annotations

from typing import Final

MANIFEST_PUSHED: Final = "manifest.pushed"
MANIFEST_DELETED: Final = "manifest.deleted"
TAG_CREATED: Final = "tag.created"
TAG_MOVED: Final = "tag.moved"
TAG_DELETED: Final = "tag.deleted"
BLOB_UNLINKED: Final = "blob.unlinked"
PROJECT_DELETED: Final = "project.deleted"
GC_REQUESTED: Final = "gc.requested"
RETENTION_REQUESTED: Final = "retention.requested"

#: Events that describe a change of an artifact (each starts an artifact-event workflow).
ARTIFACT_EVENTS: Final = frozenset(
    {
        MANIFEST_PUSHED,
        MANIFEST_DELETED,
        TAG_CREATED,
        TAG_MOVED,
        TAG_DELETED,
        BLOB_UNLINKED,
        PROJECT_DELETED,
    }
)

# review-queue triggers (GitLab's event names)
BLOB_UPLOAD: Final = "blob_upload"
BLOB_MOUNT: Final = "blob_mount"
LAYER_DELETE: Final = "layer_delete"
MANIFEST_UPLOAD: Final = "manifest_upload"
MANIFEST_DELETE: Final = "manifest_delete"
MANIFEST_LIST_DELETE: Final = "manifest_list_delete"
TAG_DELETE: Final = "tag_delete"
TAG_SWITCH: Final = "tag_switch"
