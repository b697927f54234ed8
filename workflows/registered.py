"""Every workflow the worker registers (one list, read by the worker and the replay tests).

Kept out of the package's ``__init__``: Temporal's sandbox imports a workflow's module
afresh for every workflow run, parent package first, so an ``__init__`` that imported
every workflow module would re-run all of them for each run of any one workflow.
"""

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
