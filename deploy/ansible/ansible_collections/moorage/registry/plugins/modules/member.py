#!/usr/bin/python
# Copyright: Moorage maintainers
# Apache License 2.0 (see LICENSE in the Moorage source)
"""Ansible module: a member of a Moorage project."""

from __future__ import annotations

DOCUMENTATION = r"""
module: member
short_description: Manage a member of a Moorage project
description:
  - Adds a user, an identity-provider group or a robot account to a project with a role,
    changes its role, or removes it (project admins).
version_added: "0.1.0"
author: Moorage maintainers (@moorage)
extends_documentation_fragment: moorage.registry.moorage
options:
  project:
    description: The project's name.
    type: str
    required: true
  kind:
    description: What the member is.
    type: str
    choices: [user, group, robot]
    required: true
  name:
    description: The user's, group's or robot's name.
    type: str
    required: true
  role:
    description: The member's role (Harbor's roles), required when I(state=present).
    type: str
    choices: [admin, maintainer, developer, guest, limited-guest]
  state:
    description: Whether the member should exist.
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
- name: Alice develops in team
  moorage.registry.member:
    url: https://registry.example.test
    username: admin
    password: "{{ admin_password }}"
    project: team
    kind: user
    name: alice
    role: developer
"""

RETURN = r"""
member:
  description: The membership after the task.
  returned: when the member exists after the task
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.moorage.registry.plugins.module_utils.moorage_api import (
    CONNECTION_ARGS,
    MoorageClient,
    MoorageError,
    segment,
)


def _view(member):
    if member is None:
        return {}
    return {"kind": member["kind"], "name": member["name"], "role": member["role"]}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_ARGS,
            project=dict(type="str", required=True),
            kind=dict(type="str", choices=["user", "group", "robot"], required=True),
            name=dict(type="str", required=True),
            role=dict(
                type="str",
                choices=["admin", "maintainer", "developer", "guest", "limited-guest"],
            ),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ["role"])],
        supports_check_mode=True,
    )
    params = module.params
    client = MoorageClient(module)
    base = "/api/v1/projects/%s/members" % segment(params["project"])
    try:
        current = None
        # In check mode the project may be one an earlier task would have created.
        for member in client.pages(base, missing_ok=module.check_mode) or []:
            if member["kind"] == params["kind"] and member["name"] == params["name"]:
                current = member
        after = current
        if params["state"] == "absent":
            after = None
            if current is not None and not module.check_mode:
                client.call("DELETE", "%s/%s" % (base, current["id"]))
        elif current is None:
            after = {"kind": params["kind"], "name": params["name"], "role": params["role"]}
            if not module.check_mode:
                body = {params["kind"]: params["name"], "role": params["role"]}
                after = client.call("POST", base, body)
        elif current["role"] != params["role"]:
            after = dict(current, role=params["role"])
            if not module.check_mode:
                after = client.call(
                    "PATCH", "%s/%s" % (base, current["id"]), {"role": params["role"]}
                )
    except MoorageError as error:
        module.fail_json(msg=str(error), status=error.status, problem=error.problem)
    result = dict(changed=_view(current) != _view(after))
    if after is not None:
        result["member"] = after
    if module._diff:
        result["diff"] = dict(before=_view(current), after=_view(after))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
