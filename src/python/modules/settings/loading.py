"""Loading settings at process start: invalid configuration ends the process with one line per
offending variable instead of a traceback."""

import os
import sys

from pydantic import ValidationError

from modules.settings.settings import ENV_PREFIX, Settings
from modules.settings.strict import production_problems, unknown_variables

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
    """The settings from this process's environment, refusing unknown FORGE_* variables and, in
    production, development secrets (see strict.py)."""
    problems = unknown_variables(os.environ)
    try:
        settings = Settings()
    except ValidationError as error:
        problems += describe_errors(error)
    else:
        problems += production_problems(settings, settings.model_fields_set)
    if problems:
        raise ConfigurationError("\n".join(problems))
    return settings


def settings_or_exit(program: str) -> Settings:
    """Settings for an entry point; on bad configuration, print and exit with EX_CONFIG."""
    try:
        return load_settings()
    except ConfigurationError as error:
        for line in str(error).splitlines():
            sys.stderr.write(f"{program}: invalid configuration: {line}\n")
        raise SystemExit(EXIT_CONFIG) from None
