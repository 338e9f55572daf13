"""Settings: TOML file, then HIVECAST_* environment variables, then command-line flags (each overrides the one before)."""

from hivecast.config.errors import ConfigError
from hivecast.config.loader import ENV_PREFIX, load_settings
from hivecast.config.settings import LimitsSettings, Role, Settings

__all__ = ["ENV_PREFIX", "ConfigError", "LimitsSettings", "Role", "Settings", "load_settings"]
