#!/usr/bin/python
# Copyright: Moorage maintainers
# Apache License 2.0 (see LICENSE in the Moorage source)
"""Ansible module: a Moorage replication policy."""

from __future__ import annotations

DOCUMENTATION = r"""
module: replication_policy
short_description: Manage a Moorage replication policy
description:
  - Creates, updates or deletes a replication policy (system administrators), found by
    its name.
  - A C(push) policy copies this registry's repositories to the endpoint, a C(pull)
    policy copies the endpoint's repositories here; the endpoint must exist.
  - Options left out keep Moorage's defaults when the policy is created, and their
    stored values when it is updated.
version_added: "0.1.0"
author: Moorage maintainers (@moorage)
extends_documentation_fragment: moorage.registry.moorage
options:
  name:
    description: The policy's name (lower-case letters, digits, C(.), C(_), C(-)).
    type: str
    required: true
  direction:
    description: C(push) (this registry to the endpoint) or C(pull).
    type: str
    choices: [push, pull]
  endpoint:
    description: The name of the registry endpoint on the other side.
    type: str
  description:
    description: Free text.
    type: str
  enabled:
    description: Whether the policy runs.
    type: bool
  repositories:
    description: Doublestar glob of the source repositories (C(**) for all).
    type: str
  tags:
    description: Doublestar glob of the tags copied.
    type: str
  artifact_kind:
    description: Which artifacts are copied.
    type: str
    choices: [all, image, artifact]
  referrers:
    description: Copy signatures, SBOMs and attestations with their subject.
    type: bool
  flatten:
    description: Leading path components dropped from the source name.
    type: int
  prefix:
    description: Path put in front of the destination name.
    type: str
  trigger:
    description: When the policy runs.
    type: str
    choices: [manual, scheduled, event]
  cron:
    description: Five-field cron expression of a C(scheduled) policy.
    type: str
  deletions:
    description: Replicate deletions (C(event) policies).
    type: bool
  override:
    description: Replace destination tags that point elsewhere.
    type: bool
  bandwidth_kbps:
    description: Cap of each artifact's copy in KiB/s (0 for none).
    type: int
  concurrency:
    description: Artifacts one execution copies at a time.
    type: int
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
- name: Push team images to the DR site on every push
  moorage.registry.replication_policy:
    url: https://registry.example.test
    username: admin
    password: "{{ admin_password }}"
    name: team-to-dr
    direction: push
    endpoint: dr-site
    repositories: "team/**"
    trigger: event
    deletions: true
"""

RETURN = r"""
policy:
  description: The policy after the task (absent when deleted).
  returned: when the policy exists after the task
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.moorage.registry.plugins.module_utils.moorage_api import (
    CONNECTION_ARGS,
    MoorageClient,
    MoorageError,
)

_BASE = "/api/v1/replication/policies"
_FIELDS = (
    "direction",
    "endpoint",
    "description",
    "enabled",
    "repositories",
    "tags",
    "artifact_kind",
    "referrers",
    "flatten",
    "prefix",
    "trigger",
    "cron",
    "deletions",
    "override",
    "bandwidth_kbps",
    "concurrency",
)


def _view(policy):
    if policy is None:
        return {}
    return dict((key, policy.get(key)) for key in ("name",) + _FIELDS)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_ARGS,
            name=dict(type="str", required=True),
            direction=dict(type="str", choices=["push", "pull"]),
            endpoint=dict(type="str"),
            description=dict(type="str"),
            enabled=dict(type="bool"),
            repositories=dict(type="str"),
            tags=dict(type="str"),
            artifact_kind=dict(type="str", choices=["all", "image", "artifact"]),
            referrers=dict(type="bool"),
            flatten=dict(type="int"),
            prefix=dict(type="str"),
            trigger=dict(type="str", choices=["manual", "scheduled", "event"]),
            cron=dict(type="str"),
            deletions=dict(type="bool"),
            override=dict(type="bool"),
            bandwidth_kbps=dict(type="int"),
            concurrency=dict(type="int"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ["direction", "endpoint"])],
        supports_check_mode=True,
    )
    params = module.params
    client = MoorageClient(module)
    given = dict((key, params[key]) for key in _FIELDS if params[key] is not None)
    try:
        current = None
        for policy in client.pages(_BASE) or []:
            if policy["name"] == params["name"]:
                current = policy
        after = current
        if params["state"] == "absent":
            after = None
            if current is not None and not module.check_mode:
                client.call("DELETE", "%s/%s" % (_BASE, current["id"]))
        elif current is None:
            body = dict(given, name=params["name"])
            after = body
            if not module.check_mode:
                after = client.call("POST", _BASE, body)
        elif any(current.get(key) != value for key, value in given.items()):
            body = dict((key, current.get(key)) for key in _FIELDS)
            body.update(given)
            body["name"] = params["name"]
            after = dict(current, **body)
            if not module.check_mode:
                after = client.call("PUT", "%s/%s" % (_BASE, current["id"]), body)
    except MoorageError as error:
        module.fail_json(msg=str(error), status=error.status, problem=error.problem)
    changed = _view(current) != _view(after) if current is not None else after is not None
    result = dict(changed=changed)
    if after is not None:
        result["policy"] = after
    if module._diff:
        result["diff"] = dict(before=_view(current), after=_view(after))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
