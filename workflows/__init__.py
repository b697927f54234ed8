"""Temporal workflow definitions: deterministic, one module per job."""

from __future__ import annotations

from workflows.uploads import ReapUploadsWorkflow

#: Every workflow the worker registers.
ALL_WORKFLOWS: list[type] = [ReapUploadsWorkflow]

__all__ = ["ALL_WORKFLOWS", "ReapUploadsWorkflow"]
