#!/usr/bin/python
# Copyright: Moorage maintainers
# Apache License 2.0 (see LICENSE in the Moorage source)
"""Ansible module: a Moorage project's quota."""

from __future__ import annotations

DOCUMENTATION = r"""
module: quota
short_description: Set a Moorage project's quota
description:
  - Sets the storage and artifact-count limits of a project (system administrators only).
  - A limit left out (or null) is unlimited.
version_added: "0.1.0"
author: Moorage maintainers (@moorage)
extends_documentation_fragment: moorage.registry.moorage
options:
  project:
    description: The project's name.
    type: str
    required: true
  bytes:
    description: Most bytes the project may store; unlimited when left out.
    type: int
  artifacts:
    description: Most artifacts the project may hold; unlimited when left out.
    type: int
attributes:
  check_mode:
    description: Reports what would change and changes nothing.
    support: full
  diff_mode:
    description: Shows the state before and after the task.
    support: full
"""

EXAMPLES = r"""
- name: Ten GiB and a thousand artifacts
  moorage.registry.quota:
    url: https://registry.example.test
    username: admin
    password: "{{ admin_password }}"
    project: team
    bytes: 10737418240
    artifacts: 1000
"""

RETURN = r"""
document:
  description: The quota and usage after the task.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.moorage.registry.plugins.module_utils.moorage_api import (
    CONNECTION_ARGS,
    MoorageClient,
    ensure_document,
    segment,
)


def _limits(document):
    return {"bytes": document.get("bytes"), "artifacts": document.get("artifacts")}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_ARGS,
            project=dict(type="str", required=True),
            bytes=dict(type="int"),
            artifacts=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    for name in ("bytes", "artifacts"):
        if module.params[name] is not None and module.params[name] < 0:
            module.fail_json(msg="%s must be 0 or more (leave it out for unlimited)" % name)
    wanted = {"bytes": module.params["bytes"], "artifacts": module.params["artifacts"]}
    path = "/api/v1/projects/%s/quota" % segment(module.params["project"])
    ensure_document(module, MoorageClient(module), path, wanted, view=_limits)


if __name__ == "__main__":
    main()
