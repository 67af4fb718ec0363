"""Forge's configuration, shared by every process."""

from modules.settings.loading import ConfigurationError, load_settings, settings_or_exit
from modules.settings.settings import Settings

__all__ = ["ConfigurationError", "Settings", "load_settings", "settings_or_exit"]
