# Copyright: Moorage maintainers
# Apache License 2.0 (see LICENSE in the Moorage source)
"""Options, attributes and return value shared by the project rules modules."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
description:
  - The rules are given as the API takes them; a field left out of a rule is not compared
    with the stored rule, so a run that changes nothing reports no change.
options:
  project:
    description: The project's name.
    type: str
    required: true
  rules:
    description: The complete list of rules, in order; an empty list removes them all.
    type: list
    elements: dict
    required: true
attributes:
  check_mode:
    description: Reports what would change and changes nothing.
    support: full
  diff_mode:
    description: Shows the state before and after the task.
    support: full
"""
