"""The configuration file: read only by ``load_settings``, below the environment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from adapters.config_file import CONFIG_VARIABLE, load_settings
from core.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "moorage.yaml"
    path.write_text("s3:\n  bucket: from-file\n  region: eu-file-1\npublic_url: https://file\n")
    monkeypatch.setenv(CONFIG_VARIABLE, str(path))
    return path


def test_file_values_apply_below_environment_and_arguments(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOORAGE_S3__REGION", "eu-env-1")
    settings = load_settings(public_url="https://argument")
    assert settings.s3.bucket == "from-file"
    assert settings.s3.region == "eu-env-1"
    assert settings.public_url == "https://argument"


def test_core_settings_read_no_file(config: Path) -> None:
    assert Settings().s3.bucket == "moorage"


def test_no_file_named_means_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_VARIABLE, raising=False)
    assert load_settings().s3.bucket == "moorage"


def test_a_file_that_is_not_a_mapping_is_refused(config: Path) -> None:
    config.write_text("- just\n- a list\n")
    with pytest.raises(TypeError, match="must hold a mapping"):
        load_settings()
