#!/usr/bin/python
# Copyright: Moorage maintainers
# Apache License 2.0 (see LICENSE in the Moorage source)
"""Ansible module: a Moorage webhook policy."""

from __future__ import annotations

DOCUMENTATION = r"""
module: webhook
short_description: Manage a Moorage webhook policy
description:
  - Creates, updates or deletes a webhook policy of a project (project admins), or a
    system-wide one when I(project) is left out (system administrators).
  - The policy's signing secret is made by Moorage and returned once, by the task that
    creates the policy; use C(no_log) on that task or register and store it right away.
  - I(auth_header) is sent only when the policy is created or when I(update_auth_header)
    is true, since Moorage never returns it and cannot be compared with it.
version_added: "0.1.0"
author: Moorage maintainers (@moorage)
extends_documentation_fragment: moorage.registry.moorage
options:
  project:
    description: The project's name; left out for a system-wide policy.
    type: str
  name:
    description: The policy's name (unique in its project, or among system policies).
    type: str
    required: true
  target_url:
    description: Where deliveries are sent (https; checked by Moorage's outbound policy).
    type: str
  events:
    description: The event types delivered, for example C(artifact.pushed), C(tag.deleted).
    type: list
    elements: str
  payload_format:
    description: How each event is written.
    type: str
    choices: [cloudevents, cloudevents-binary, harbor, distribution, slack]
    default: cloudevents
  auth_header:
    description: A C(Name value) header (or a bare C(Authorization) value) sent with each delivery.
    type: str
  update_auth_header:
    description: Send I(auth_header) to an existing policy (an empty string removes it).
    type: bool
    default: false
  enabled:
    description: Whether the policy delivers.
    type: bool
    default: true
  state:
    description: Whether the policy should exist.
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
- name: Tell CI about every push to team
  moorage.registry.webhook:
    url: https://registry.example.test
    username: admin
    password: "{{ admin_password }}"
    project: team
    name: ci
    target_url: https://ci.example.test/hooks/registry
    events: [artifact.pushed, tag.pushed]
  register: ci_hook
  no_log: true
"""

RETURN = r"""
webhook:
  description: The policy after the task (without secrets).
  returned: when the policy exists after the task
  type: dict
secret:
  description: The new policy's signing secret (C(whsec_...)).
  returned: when the task created the policy
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.moorage.registry.plugins.module_utils.moorage_api import (
    CONNECTION_ARGS,
    MoorageClient,
    MoorageError,
    segment,
)

_COMPARED = ("name", "url", "events", "payload_format", "enabled")


def _view(policy):
    if policy is None:
        return {}
    view = dict((key, policy.get(key)) for key in _COMPARED)
    view["events"] = sorted(view["events"] or [])
    return view


def main():
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_ARGS,
            project=dict(type="str"),
            name=dict(type="str", required=True),
            target_url=dict(type="str"),
            events=dict(type="list", elements="str"),
            payload_format=dict(
                type="str",
                choices=["cloudevents", "cloudevents-binary", "harbor", "distribution", "slack"],
                default="cloudevents",
            ),
            auth_header=dict(type="str", no_log=True),
            update_auth_header=dict(type="bool", default=False),
            enabled=dict(type="bool", default=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ["target_url", "events"])],
        supports_check_mode=True,
    )
    params = module.params
    client = MoorageClient(module)
    if params["project"]:
        base = "/api/v1/projects/%s/webhooks" % segment(params["project"])
    else:
        base = "/api/v1/webhooks"
    wanted = {
        "name": params["name"],
        "url": params["target_url"],
        "events": params["events"],
        "payload_format": params["payload_format"],
        "enabled": params["enabled"],
    }
    secret = None
    try:
        current = None
        # In check mode the project may be one an earlier task would have created.
        for policy in client.pages(base, missing_ok=module.check_mode) or []:
            if policy["name"] == params["name"]:
                current = policy
        after = current
        if params["state"] == "absent":
            after = None
            if current is not None and not module.check_mode:
                client.call("DELETE", "%s/%s" % (base, current["id"]))
        elif current is None:
            body = dict(wanted)
            if params["auth_header"] is not None:
                body["auth_header"] = params["auth_header"]
            after = dict(wanted)
            if not module.check_mode:
                after = client.call("POST", base, body)
                secret = after.pop("secret", None)
        else:
            rewrite_auth = params["update_auth_header"] and params["auth_header"] is not None
            if _view(current) != _view(wanted) or rewrite_auth:
                body = dict(wanted)
                if rewrite_auth:
                    body["auth_header"] = params["auth_header"]
                after = dict(current, **wanted)
                if not module.check_mode:
                    after = client.call("PUT", "%s/%s" % (base, current["id"]), body)
    except MoorageError as error:
        module.fail_json(msg=str(error), status=error.status, problem=error.problem)
    if after is not None:
        after.pop("secret", None)
    changed = _view(current) != _view(after) or (
        current is not None
        and after is not None
        and params["update_auth_header"]
        and params["auth_header"] is not None
    )
    result = dict(changed=changed)
    if after is not None:
        result["webhook"] = after
    if secret is not None:
        result["secret"] = secret
    if module._diff:
        result["diff"] = dict(before=_view(current), after=_view(after))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
