"""Names and payloads of Moorage's Temporal activities.

Workflows call activities by name (``workflow.execute_activity(NAME, params,
result_type=...)``), so they import nothing from the modules that do I/O. This module
holds only plain values: it must stay free of I/O imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Task queue the worker polls unless configured otherwise.
DEFAULT_TASK_QUEUE: Final = "moorage"

#: Activity name: drop upload sessions older than a cut-off and their stored parts.
REAP_EXPIRED_UPLOADS: Final = "reap_expired_uploads"


@dataclass(frozen=True, slots=True)
class ReapUploadsInput:
    """What the upload reaper should collect.

    Attributes:
        older_than_seconds: Reap sessions whose last activity is older than this.
    """

    older_than_seconds: int


@dataclass(frozen=True, slots=True)
class ReapUploadsResult:
    """What one reaper run removed.

    Attributes:
        sessions_reaped: Upload sessions deleted from the metadata database.
        storage_leftovers_aborted: Upload data in the blob store that had no session
            row (or an expired one) and was aborted.
    """

    sessions_reaped: int
    storage_leftovers_aborted: int
