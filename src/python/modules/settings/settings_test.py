from pathlib import Path

import pytest

from modules.settings import ConfigurationError, Settings, load_settings, settings_or_exit
from modules.settings.loading import EXIT_CONFIG


def test_defaults_are_a_valid_local_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"FORGE_{name.upper()}", raising=False)
    settings = load_settings()
    assert settings.database_url.scheme == "postgresql+psycopg"
    assert settings.s3_bucket == "forge-artifacts"
    assert settings.api_port == 8000
    assert settings.s3_public_endpoint_url is None  # presigned URLs use the endpoint URL
    assert (settings.artifact_url_expiry_s, settings.job_lease_s, settings.job_max_attempts) == (
        3600,
        30,
        3,
    )
    assert (settings.reconcile_interval_s, settings.reconciler_metrics_port) == (5, 9102)


def test_an_empty_public_endpoint_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGE_S3_PUBLIC_ENDPOINT_URL", "")
    assert load_settings().s3_public_endpoint_url is None
    monkeypatch.setenv("FORGE_S3_PUBLIC_ENDPOINT_URL", "https://files.example.com")
    assert str(load_settings().s3_public_endpoint_url) == "https://files.example.com/"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGE_API_PORT", "8123")
    monkeypatch.setenv("FORGE_LOG_LEVEL", "debug")
    monkeypatch.setenv("FORGE_READINESS_STORAGE", "permissive")
    settings = load_settings()
    assert (settings.api_port, settings.log_level, settings.readiness_storage) == (
        8123,
        "DEBUG",
        "permissive",
    )


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("FORGE_API_PORT", "http", "FORGE_API_PORT: Input should be a valid integer"),
        ("FORGE_API_PORT", "70000", "FORGE_API_PORT: Input should be less than or equal to 65535"),
        ("FORGE_DATABASE_URL", "mysql://db/forge", "FORGE_DATABASE_URL: URL scheme should be"),
        ("FORGE_S3_BUCKET", "Forge_Artifacts", "FORGE_S3_BUCKET: must be 3-63 characters"),
        ("FORGE_READINESS_STORAGE", "maybe", "FORGE_READINESS_STORAGE: Input should be"),
        ("FORGE_READINESS_DATABASE_TIMEOUT_S", "0", "FORGE_READINESS_DATABASE_TIMEOUT_S: Input"),
        ("FORGE_S3_PUBLIC_ENDPOINT_URL", "minio:9000", "FORGE_S3_PUBLIC_ENDPOINT_URL: URL scheme"),
        (
            "FORGE_ARTIFACT_URL_EXPIRY_S",
            "59",
            "FORGE_ARTIFACT_URL_EXPIRY_S: Input should be greater than or equal to 60",
        ),
        (
            "FORGE_ARTIFACT_URL_EXPIRY_S",
            "604801",
            "FORGE_ARTIFACT_URL_EXPIRY_S: Input should be less than or equal to 604800",
        ),
        ("FORGE_JOB_LEASE_S", "0.5", "FORGE_JOB_LEASE_S: Input should be greater than or equal"),
        ("FORGE_JOB_LEASE_S", "601", "FORGE_JOB_LEASE_S: Input should be less than or equal to"),
        ("FORGE_JOB_MAX_ATTEMPTS", "0", "FORGE_JOB_MAX_ATTEMPTS: Input should be greater than"),
        ("FORGE_JOB_MAX_ATTEMPTS", "21", "FORGE_JOB_MAX_ATTEMPTS: Input should be less than"),
        ("FORGE_RECONCILE_INTERVAL_S", "0", "FORGE_RECONCILE_INTERVAL_S: Input should be greater"),
        ("FORGE_RECONCILE_INTERVAL_S", "301", "FORGE_RECONCILE_INTERVAL_S: Input should be less"),
        ("FORGE_RECONCILER_METRICS_PORT", "65536", "FORGE_RECONCILER_METRICS_PORT: Input should"),
        (
            "FORGE_WORKER_TASK_SOFT_TIME_LIMIT_S",
            "3600",
            "FORGE_WORKER_TASK_SOFT_TIME_LIMIT_S must be",
        ),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    (line,) = str(raised.value).splitlines()
    assert line.startswith(problem)


def test_secret_values_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGE_DATABASE_URL", "mysql://user:hunter2@db/forge")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert "hunter2" not in str(raised.value)


def test_entry_points_exit_with_ex_config_and_one_line_per_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORGE_API_PORT", "-1")
    monkeypatch.setenv("FORGE_S3_BUCKET", "x")
    with pytest.raises(SystemExit) as exited:
        settings_or_exit("forge-api")
    assert exited.value.code == EXIT_CONFIG
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "forge-api: invalid configuration: FORGE_S3_BUCKET: must be 3-63 characters of lowercase"
        " letters, digits, '.' and '-', starting and ending with a letter or digit",
        "forge-api: invalid configuration: FORGE_API_PORT: Input should be greater than or equal"
        " to 0",
    ]


ENV_EXAMPLE = Path(".env.example")


def env_example() -> dict[str, str]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    # Compose passes the whole file to Forge's containers: anything else would be refused.
    assert set(env_example()) == {f"FORGE_{name.upper()}" for name in Settings.model_fields}


def test_env_example_is_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env_example().items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.database_url.hosts()[0]["host"] == "postgres"  # Compose service names


@pytest.mark.parametrize(
    ("variable", "problem"),
    [
        (
            "FORGE_DATABSE_URL",
            "FORGE_DATABSE_URL: unknown setting; did you mean FORGE_DATABASE_URL?",
        ),
        ("forge_api_prot", "forge_api_prot: unknown setting; did you mean FORGE_API_PORT?"),
        (
            "FORGE_READYNESS_CACHE",
            "FORGE_READYNESS_CACHE: unknown setting; did you mean FORGE_READINESS_CACHE_S?",
        ),
        ("FORGE_QUANTUM_FLUX", "FORGE_QUANTUM_FLUX: unknown setting"),
    ],
)
def test_an_unknown_forge_variable_is_refused_with_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, problem: str
) -> None:
    monkeypatch.setenv(variable, "1")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert str(raised.value).splitlines() == [problem]


@pytest.mark.parametrize(
    "variable",
    [
        "FORGE_TEST_DATABASE_URL",
        "FORGE_GIT_REVISION",
        "FORGE_PEX_CLI",
        "FORGE_VERSION",
        "FORGE_API_URL",
        "FORGE_API_KEY",
    ],
)
def test_variables_of_the_build_and_test_tools_are_accepted(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "anything")
    load_settings()


PRODUCTION_SECRETS = {
    "FORGE_DATABASE_URL": "postgresql+psycopg://forge_app:s3cr3t-of-its-own@db:5432/forge",
    "FORGE_S3_SECRET_ACCESS_KEY": "another-s3cr3t-of-its-own",
}


def test_production_with_its_own_secrets_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGE_ENVIRONMENT", "production")
    for name, value in PRODUCTION_SECRETS.items():
        monkeypatch.setenv(name, value)
    assert load_settings().environment == "production"


def test_production_refuses_missing_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PRODUCTION_SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FORGE_ENVIRONMENT", "production")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert str(raised.value).splitlines() == [
        "FORGE_DATABASE_URL: must be set in production (its default is for development)",
        "FORGE_S3_SECRET_ACCESS_KEY: must be set in production (its default is for development)",
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FORGE_DATABASE_URL", str(Settings.model_fields["database_url"].default)),
        ("FORGE_S3_SECRET_ACCESS_KEY", "forge-dev-secret"),
    ],
)
def test_production_refuses_the_default_secrets_set_explicitly(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv("FORGE_ENVIRONMENT", "production")
    for name, secret in PRODUCTION_SECRETS.items():
        monkeypatch.setenv(name, secret)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert str(raised.value).splitlines() == [
        f"{variable}: holds a development secret; production needs one of its own"
    ]


def test_production_refuses_the_env_example_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env_example().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FORGE_ENVIRONMENT", "production")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert [line.split(":")[0] for line in str(raised.value).splitlines()] == [
        "FORGE_DATABASE_URL",
        "FORGE_S3_SECRET_ACCESS_KEY",
    ]
