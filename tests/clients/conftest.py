"""Fixtures shared by the real-client tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.clients.commands import ClientHome, make_client_home
from tests.clients.images import OciImage, build_image

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def client_home(tmp_path: Path) -> ClientHome:
    """A private HOME and client configuration for one test."""
    return make_client_home(tmp_path / "home")


@pytest.fixture
def oci_image(tmp_path: Path) -> OciImage:
    """A fresh random image in an OCI layout directory, tagged ``v1``."""
    return build_image(tmp_path / "image-layout", tag="v1")
