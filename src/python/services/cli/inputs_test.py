import io
from pathlib import Path

import pytest

from services.cli.inputs import InvalidInput, job_input


def test_values_are_json_when_they_parse_and_text_otherwise() -> None:
    pairs = ["prompt=a red fox", "seed=7", "ratio=0.5", "tags=[1, 2]", 'quoted="7"', "empty="]
    assert job_input(pairs, None) == {
        "prompt": "a red fox",
        "seed": 7,
        "ratio": 0.5,
        "tags": [1, 2],
        "quoted": "7",
        "empty": "",
    }


def test_pairs_override_the_input_file(tmp_path: Path) -> None:
    input_file = tmp_path / "input.json"
    input_file.write_text('{"prompt": "from the file", "seed": 1}')
    assert job_input(["seed=2"], str(input_file)) == {"prompt": "from the file", "seed": 2}


def test_the_input_file_may_be_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"prompt": "piped"}'))
    assert job_input([], "-") == {"prompt": "piped"}


@pytest.mark.parametrize(
    ("pairs", "content", "message"),
    [
        (["seed"], None, "-i 'seed': expected KEY=VALUE"),
        (["=7"], None, "-i '=7': expected KEY=VALUE"),
        ([], "[1, 2]", "expected a JSON object"),
        ([], "{not json", "Expecting property name"),
    ],
)
def test_bad_input_says_which_argument_and_why(
    tmp_path: Path, pairs: list[str], content: str | None, message: str
) -> None:
    input_file = None
    if content is not None:
        (tmp_path / "input.json").write_text(content)
        input_file = str(tmp_path / "input.json")
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[")):
        job_input(pairs, input_file)


def test_a_missing_input_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="--input-file .*missing.json"):
        job_input([], str(tmp_path / "missing.json"))
