#!/usr/bin/python
# Copyright: Moorage maintainers
# Apache License 2.0 (see LICENSE in the Moorage source)
"""Ansible module: a Moorage project's immutability rules."""

from __future__ import annotations

DOCUMENTATION = r"""
module: immutability
short_description: Set a Moorage project's immutability rules
description:
  - Replaces the tag immutability rules of a project. A tag a rule protects can be neither moved nor deleted (project admins and maintainers).
version_added: "0.1.0"
author: Moorage maintainers (@moorage)
extends_documentation_fragment:
  - moorage.registry.moorage
  - moorage.registry.rules
"""

EXAMPLES = r"""
- name: The project's immutability rules
  moorage.registry.immutability:
    url: https://registry.example.test
    username: admin
    password: "{{ admin_password }}"
    project: team
    rules:
      - tag: {pattern: "v*"}
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
    run_rules_module("immutability")


if __name__ == "__main__":
    main()
