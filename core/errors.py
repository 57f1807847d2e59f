"""Errors a user can cause. Each carries the exit code the CLI returns and a message that names
the file, key or plugin at fault and what to do about it."""


class LitplugError(Exception):
    """A problem with the user's input (config, plugin set, data, paths): exit code 2."""

    exit_code = 2


class ConfigError(LitplugError):
    """The config file or an override is invalid."""


class PluginError(LitplugError):
    """A plugin is missing, broken, incompatible or conflicts with another."""


class PluginNotInstalled(PluginError):
    """The config names a plugin that no installed distribution provides."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class DataError(LitplugError):
    """A data source is missing, malformed or would be empty."""


class RunFailure(Exception):
    """Training started and then failed (e.g. a non-finite loss): exit code 1."""

    exit_code = 1
