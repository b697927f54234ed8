"""A workflow's module loads alone: the sandbox re-imports it (and its package) every run.

Temporal's sandbox imports the module of a workflow afresh for each workflow run, its
package's ``__init__`` first. If that ``__init__`` imported every workflow module, each
run of any workflow (one per replicated artifact, per event batch, per webhook target)
would execute all of them again.
"""

from __future__ import annotations

import subprocess
import sys

from tests.services.moorage import REPO_ROOT


def test_importing_one_workflow_module_loads_no_other() -> None:
    probe = (
        "import sys, workflows.replication; "
        "print(sorted(m for m in sys.modules if m.startswith('workflows')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # NOTE: workflows.execution_stop and workflows.task_pages are helpers (no workflow),
    # passed through
    helpers = ["workflows.execution_stop", "workflows.task_pages"]
    assert done.stdout.strip() == str(sorted(["workflows", "workflows.replication", *helpers]))
