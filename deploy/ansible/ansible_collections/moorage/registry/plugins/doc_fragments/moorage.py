# Copyright: Moorage maintainers
# Apache License 2.0 (see LICENSE in the Moorage source)
"""Connection options shared by every moorage.registry module."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Base URL of the Moorage API, for example C(https://registry.example.test).
    type: str
    required: true
  username:
    description:
      - User name, or the full name of a robot account.
    type: str
    required: true
  password:
    description:
      - The user's password or personal access token, or the robot's secret.
    type: str
    required: true
  validate_certs:
    description:
      - Verify the server's TLS certificate.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for each API request.
    type: int
    default: 30
"""
