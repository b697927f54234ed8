#!/usr/bin/python
# Copyright: Moorage maintainers
# Apache License 2.0 (see LICENSE in the Moorage source)
"""Ansible module: a robot account of a Moorage project."""

from __future__ import annotations

DOCUMENTATION = r"""
module: robot
short_description: Manage a robot account of a Moorage project
description:
  - Creates a project robot (C(robot$<project>+<name>)) with repository permissions,
    disables or enables it, changes its expiry, or deletes it.
  - The robot's secret is returned once, by the task that creates the robot; use
    C(no_log) on that task or register and store it right away.
  - Moorage does not change the permissions of an existing robot; to change them, delete
    the robot and create it again (it gets a new secret).
version_added: "0.1.0"
author: Moorage maintainers (@moorage)
extends_documentation_fragment: moorage.registry.moorage
options:
  project:
    description: The project's name.
    type: str
    required: true
  name:
    description: The robot's short name (without the C(robot$<project>+) prefix).
    type: str
    required: true
  permissions:
    description:
      - Repository patterns inside the project and the actions allowed on them
        (C(pull), C(push), C(delete)); required when creating the robot.
    type: list
    elements: dict
  expires_at:
    description: ISO 8601 time after which the robot's secret stops working.
    type: str
  disabled:
    description: Whether the robot is disabled.
    type: bool
  state:
    description: Whether the robot should exist.
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
- name: A CI robot that pushes to team/app
  moorage.registry.robot:
    url: https://registry.example.test
    username: admin
    password: "{{ admin_password }}"
    project: team
    name: ci
    permissions:
      - repository: app
        actions: [pull, push]
  register: ci_robot
  no_log: true
"""

RETURN = r"""
robot:
  description: The robot after the task (without its secret).
  returned: when the robot exists after the task
  type: dict
secret:
  description: The new robot's secret.
  returned: when the task created the robot
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.moorage.registry.plugins.module_utils.moorage_api import (
    CONNECTION_ARGS,
    MoorageClient,
    MoorageError,
    segment,
)


def _view(robot):
    if robot is None:
        return {}
    return {
        "name": robot["name"],
        "disabled": robot.get("disabled", False),
        "expires_at": robot.get("expires_at"),
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_ARGS,
            project=dict(type="str", required=True),
            name=dict(type="str", required=True),
            permissions=dict(type="list", elements="dict"),
            expires_at=dict(type="str"),
            disabled=dict(type="bool"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    client = MoorageClient(module)
    project = params["project"]
    base = "/api/v1/projects/%s/robots" % segment(project)
    full_name = "robot$%s+%s" % (project, params["name"])
    secret = None
    try:
        current = None
        # In check mode the project may be one an earlier task would have created.
        for robot in client.pages(base, missing_ok=module.check_mode) or []:
            if robot["name"] == full_name:
                current = robot
        after = current
        if params["state"] == "absent":
            after = None
            if current is not None and not module.check_mode:
                client.call("DELETE", "%s/%s" % (base, current["id"]))
        elif current is None:
            if not params["permissions"]:
                module.fail_json(msg="permissions are required to create robot %s" % full_name)
            body = {"name": params["name"], "permissions": params["permissions"]}
            if params["expires_at"]:
                body["expires_at"] = params["expires_at"]
            after = {"name": full_name, "disabled": False, "expires_at": params["expires_at"]}
            if not module.check_mode:
                after = client.call("POST", base, body)
                secret = after.pop("secret", None)
                if params["disabled"]:
                    after = client.call(
                        "PATCH", "%s/%s" % (base, after["id"]), {"disabled": True}
                    )
        else:
            patch = {}
            if params["disabled"] is not None and current["disabled"] != params["disabled"]:
                patch["disabled"] = params["disabled"]
            if params["expires_at"] is not None and current["expires_at"] != params["expires_at"]:
                patch["expires_at"] = params["expires_at"]
            if patch:
                after = dict(current, **patch)
                if not module.check_mode:
                    after = client.call("PATCH", "%s/%s" % (base, current["id"]), patch)
    except MoorageError as error:
        module.fail_json(msg=str(error), status=error.status, problem=error.problem)
    if after is not None:
        after.pop("secret", None)
    result = dict(changed=_view(current) != _view(after))
    if after is not None:
        result["robot"] = after
    if secret is not None:
        result["secret"] = secret
    if module._diff:
        result["diff"] = dict(before=_view(current), after=_view(after))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
