import pytest

from services.cli.main import parser


@pytest.mark.parametrize(
    "argv",
    [
        ["--api-url", "http://forge.test", "--json", "jobs", "get", "J"],
        ["jobs", "get", "J", "--api-url", "http://forge.test", "--json"],
        ["--json", "jobs", "get", "J", "--api-url", "http://forge.test"],
    ],
)
def test_common_options_go_before_or_after_the_command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert (args.api_url, args.json, args.job) == ("http://forge.test", True, "J")


def test_the_api_url_comes_from_the_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGE_API_URL", "http://from.env:8000")
    args = parser().parse_args(["models", "list"])
    assert (args.api_url, args.json, args.timeout) == ("http://from.env:8000", False, 10.0)


def test_a_bad_command_line_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["jobs", "submit"])
    assert exited.value.code == 2
    assert "the following arguments are required: model" in capsys.readouterr().err
