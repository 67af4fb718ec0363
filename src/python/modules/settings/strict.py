"""What the environment may hold beyond valid values: no unknown FORGE_* variable (a misspelt
setting would silently leave its default in place), and in production no secret left unset or
at a development value."""

import difflib
from collections.abc import Iterable

from modules.settings.settings import ENV_PREFIX, Settings

# FORGE_* variables that are not settings. They belong to the build, the test suites and the
# ./pants launcher, which share a developer's shell (or an image's environment) with Forge's
# processes, so a process must accept them.
NOT_SETTINGS = frozenset(
    {
        "FORGE_GIT_REVISION",  # the image's revision, read by modules.buildinfo
        "FORGE_VERSION",  # the release, a Docker build argument (Makefile)
        # The forge CLI's and the client library's (modules/client), in the same shells.
        "FORGE_API_URL",
        "FORGE_API_KEY",
        # ./pants: its options, and the tool paths it exports for pants.toml.
        "FORGE_BOOTSTRAP_CACHE",
        "FORGE_PANTS_PYTHON",
        "FORGE_LAUNCHER_PRINT_VENV",
        "FORGE_PEX_CLI",
        "FORGE_HADOLINT",
        "FORGE_SHELLCHECK",
    }
)
# The test suites' (src/python/conftest.py, pants.toml) and the benchmarks'.
NOT_SETTINGS_PREFIXES = ("FORGE_TEST_", "FORGE_BENCH_")

SETTINGS = sorted(f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields)


def unknown_variables(names: Iterable[str]) -> list[str]:
    """One line per FORGE_* name that is no setting, with the closest setting if one is close."""
    known = NOT_SETTINGS.union(SETTINGS)
    problems = []
    for name in sorted(names):
        upper = name.upper()  # settings are matched without regard to case
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        if upper.startswith(NOT_SETTINGS_PREFIXES):
            continue
        close = difflib.get_close_matches(upper, SETTINGS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        problems.append(f"{name}: unknown setting{hint}")
    return problems


# The secrets of development setups: the defaults in settings.py and the values in .env.example
# (the Compose stack's database roles and MinIO); settings_test.py checks that both are here.
DEVELOPMENT_SECRETS = frozenset(
    {"forge", "forge-dev-secret", "forge-app-dev-password", "forge-owner-dev-password"}
)


def production_problems(settings: Settings, set_names: Iterable[str]) -> list[str]:
    """In production, one line per secret that is unset (so a development default would apply)
    or set to a development value. `set_names` are the fields the environment set."""
    if settings.environment != "production":
        return []
    given = set(set_names)
    secrets = {
        "database_url": settings.database_url.hosts()[0].get("password"),
        "s3_secret_access_key": settings.s3_secret_access_key.get_secret_value(),
    }
    problems = []
    for field, secret in secrets.items():
        variable = f"{ENV_PREFIX}{field.upper()}"
        if field not in given:
            problems.append(
                f"{variable}: must be set in production (its default is for development)"
            )
        elif secret in DEVELOPMENT_SECRETS:
            problems.append(
                f"{variable}: holds a development secret; production needs one of its own"
            )
    return problems
