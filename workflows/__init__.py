"""Temporal workflow definitions: deterministic, one module per job.

The list the worker registers is ``workflows.registered.ALL_WORKFLOWS``. This file imports
nothing: the sandbox re-imports a workflow's package for every run (see there).
"""
