"""Loading settings at process start: invalid configuration ends the process with one line per
offending variable instead of a traceback."""

import sys

from pydantic import ValidationError

from modules.settings.settings import ENV_PREFIX, Settings

# sysexits.h EX_CONFIG: lets supervisors tell "misconfigured" from "crashed".
EXIT_CONFIG = 78


class ConfigurationError(Exception):
    """The environment does not describe a valid configuration; str() is one line per problem."""


def describe_errors(error: ValidationError) -> list[str]:
    """One human line per problem, naming the environment variable, never echoing its value
    (it may be a secret)."""
    lines = []
    for problem in error.errors(include_url=False, include_input=False):
        message = problem["msg"].removeprefix("Value error, ")
        if problem["loc"]:
            lines.append(f"{ENV_PREFIX}{str(problem['loc'][0]).upper()}: {message}")
        else:  # a rule spanning several variables names them in its message
            lines.append(message)
    return lines


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigurationError("\n".join(describe_errors(error))) from None


def settings_or_exit(program: str) -> Settings:
    """Settings for an entry point; on bad configuration, print and exit with EX_CONFIG."""
    try:
        return load_settings()
    except ConfigurationError as error:
        for line in str(error).splitlines():
            sys.stderr.write(f"{program}: invalid configuration: {line}\n")
        raise SystemExit(EXIT_CONFIG) from None
