"""Temporal workflow definitions: deterministic, one module per job."""

from __future__ import annotations

from workflows.backup import BACKUP_WORKFLOWS
from workflows.events import ArtifactEventWorkflow, EventBatchWorkflow
from workflows.gc import GarbageCollectionWorkflow
from workflows.keys import KeyRotationWorkflow
from workflows.preheat import PreheatExecutionWorkflow
from workflows.promotions import PromotionWorkflow
from workflows.quota import QuotaReconcileWorkflow
from workflows.replication import ReplicationArtifactWorkflow, ReplicationExecutionWorkflow
from workflows.retention import RetentionWorkflow
from workflows.scanner_api import ScannerApiScanWorkflow
from workflows.scans import ScanArtifactWorkflow, ScanManyWorkflow, ScanRematchWorkflow
from workflows.uploads import ReapUploadsWorkflow
from workflows.vulndb import VulnDbImportWorkflow
from workflows.webhooks import WebhookTargetWorkflow

#: Every workflow the worker registers.
ALL_WORKFLOWS: list[type] = [
    ReapUploadsWorkflow,
    GarbageCollectionWorkflow,
    EventBatchWorkflow,
    ArtifactEventWorkflow,
    RetentionWorkflow,
    QuotaReconcileWorkflow,
    KeyRotationWorkflow,
    WebhookTargetWorkflow,
    *BACKUP_WORKFLOWS,
    ReplicationExecutionWorkflow,
    ReplicationArtifactWorkflow,
    ScanArtifactWorkflow,
    ScanManyWorkflow,
    ScanRematchWorkflow,
    ScannerApiScanWorkflow,
    VulnDbImportWorkflow,
    PromotionWorkflow,
    PreheatExecutionWorkflow,
]

__all__ = [
    "ALL_WORKFLOWS",
    "ArtifactEventWorkflow",
    "EventBatchWorkflow",
    "GarbageCollectionWorkflow",
    "KeyRotationWorkflow",
    "PreheatExecutionWorkflow",
    "PromotionWorkflow",
    "QuotaReconcileWorkflow",
    "ReapUploadsWorkflow",
    "ReplicationArtifactWorkflow",
    "ReplicationExecutionWorkflow",
    "RetentionWorkflow",
    "ScanArtifactWorkflow",
    "ScanManyWorkflow",
    "ScanRematchWorkflow",
    "ScannerApiScanWorkflow",
    "VulnDbImportWorkflow",
    "WebhookTargetWorkflow",
]
