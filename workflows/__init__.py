"""Temporal workflow definitions: deterministic, one module per job."""

from __future__ import annotations

from workflows.events import ArtifactEventWorkflow
from workflows.gc import GarbageCollectionWorkflow
from workflows.keys import KeyRotationWorkflow
from workflows.quota import QuotaReconcileWorkflow
from workflows.retention import RetentionWorkflow
from workflows.uploads import ReapUploadsWorkflow

#: Every workflow the worker registers.
ALL_WORKFLOWS: list[type] = [
    ReapUploadsWorkflow,
    GarbageCollectionWorkflow,
    ArtifactEventWorkflow,
    RetentionWorkflow,
    QuotaReconcileWorkflow,
    KeyRotationWorkflow,
]

__all__ = [
    "ALL_WORKFLOWS",
    "ArtifactEventWorkflow",
    "GarbageCollectionWorkflow",
    "KeyRotationWorkflow",
    "QuotaReconcileWorkflow",
    "ReapUploadsWorkflow",
    "RetentionWorkflow",
]
