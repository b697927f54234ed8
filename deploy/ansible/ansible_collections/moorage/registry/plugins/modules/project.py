#!/usr/bin/python
# Copyright: Moorage maintainers
# Apache License 2.0 (see LICENSE in the Moorage source)
"""Ansible module: a Moorage project."""

from __future__ import annotations

DOCUMENTATION = r"""
module: project
short_description: Manage a Moorage project
description:
  - Creates, updates (the public flag) or deletes a project of a Moorage registry.
  - Deleting a project deletes everything stored in it.
version_added: "0.1.0"
author: Moorage maintainers (@moorage)
extends_documentation_fragment: moorage.registry.moorage
options:
  name:
    description: The project's name.
    type: str
    required: true
  public:
    description: Whether anyone may pull from the project.
    type: bool
  state:
    description: Whether the project should exist.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    description: Reports what would change and changes nothing.
    support: full
  diff_mode:
    description: Shows the state before and after the task.
    support: full
"""

EXAMPLES = r"""
- name: A private project
  moorage.registry.project:
    url: https://registry.example.test
    username: admin
    password: "{{ admin_password }}"
    name: team
    public: false
"""

RETURN = r"""
project:
  description: The project after the task (absent when deleted).
  returned: when the project exists after the task
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.moorage.registry.plugins.module_utils.moorage_api import (
    CONNECTION_ARGS,
    MoorageClient,
    MoorageError,
    segment,
)


def _view(project):
    return None if project is None else {"name": project["name"], "public": project["public"]}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_ARGS,
            name=dict(type="str", required=True),
            public=dict(type="bool"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    client = MoorageClient(module)
    name, public, state = module.params["name"], module.params["public"], module.params["state"]
    path = "/api/v1/projects/" + segment(name)
    try:
        current = client.call("GET", path, missing_ok=True)
        after = current
        if state == "absent":
            after = None
            if current is not None and not module.check_mode:
                client.call("DELETE", path)
        elif current is None:
            after = {"name": name, "public": bool(public)}
            if not module.check_mode:
                after = client.call("POST", "/api/v1/projects", {"name": name, "public": bool(public)})
        elif public is not None and current["public"] != public:
            after = dict(current, public=public)
            if not module.check_mode:
                after = client.call("PATCH", path, {"public": public})
    except MoorageError as error:
        module.fail_json(msg=str(error), status=error.status, problem=error.problem)
    before_view, after_view = _view(current), _view(after)
    result = dict(changed=before_view != after_view)
    if after is not None:
        result["project"] = after
    if module._diff:
        result["diff"] = dict(before=before_view or {}, after=after_view or {})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
