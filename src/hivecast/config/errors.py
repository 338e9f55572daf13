class ConfigError(Exception):
    """Bad configuration: the message is one line a user can act on."""
