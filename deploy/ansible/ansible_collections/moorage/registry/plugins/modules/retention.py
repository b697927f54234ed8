#!/usr/bin/python
# Copyright: Moorage maintainers
# Apache License 2.0 (see LICENSE in the Moorage source)
"""Ansible module: a Moorage project's retention rules."""

from __future__ import annotations

DOCUMENTATION = r"""
module: retention
short_description: Set a Moorage project's retention rules
description:
  - Replaces the tag retention rules of a project, following Harbor's model (latestPushedK, latestPulledN, nDaysSinceLastPush, nDaysSinceLastPull, always).
version_added: "0.1.0"
author: Moorage maintainers (@moorage)
extends_documentation_fragment:
  - moorage.registry.moorage
  - moorage.registry.rules
"""

EXAMPLES = r"""
- name: The project's retention rules
  moorage.registry.retention:
    url: https://registry.example.test
    username: admin
    password: "{{ admin_password }}"
    project: team
    rules:
      - template: latestPushedK
        n: 10
        tag: {pattern: "**"}
"""

RETURN = r"""
document:
  description: The rules after the task.
  returned: always
  type: dict
"""

from ansible_collections.moorage.registry.plugins.module_utils.moorage_api import (
    run_rules_module,
)


def main():
    run_rules_module("retention")


if __name__ == "__main__":
    main()
