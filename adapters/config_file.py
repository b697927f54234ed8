"""The operator's YAML configuration file (named by ``MOORAGE_CONFIG``) as a settings source.

``core.settings.Settings`` reads keyword arguments and ``MOORAGE_`` environment variables;
the processes load their settings with :func:`load_settings`, which adds the file as the
lowest-precedence source. The file holds a mapping with the same keys as the settings
(``s3: {bucket: ...}``); a missing ``MOORAGE_CONFIG`` means no file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from core.settings import Settings

CONFIG_VARIABLE: Final = "MOORAGE_CONFIG"


class YamlFileSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by ``MOORAGE_CONFIG``, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        del field  # NOTE: values come from __call__ as one mapping
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(CONFIG_VARIABLE)
        if not path:
            return {}
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise TypeError(f"{path}: the configuration file must hold a mapping")
        return loaded


class FileSettings(Settings):
    """:class:`Settings` that also read the configuration file (below the environment)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        del dotenv_settings, file_secret_settings  # NOTE: no .env files, no secret dirs
        return (init_settings, env_settings, YamlFileSource(settings_cls))


def load_settings(**overrides: Any) -> Settings:
    """A process's settings: ``overrides``, then the environment, then the file."""
    return FileSettings(**overrides)
