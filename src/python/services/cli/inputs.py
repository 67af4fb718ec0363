"""A job's input from the command line: `--input-file F` (a JSON object; `-` reads stdin), then
each `-i KEY=VALUE` on top of it."""

import json
import sys
from pathlib import Path
from typing import Any


class InvalidInput(ValueError):
    """str() says which argument is wrong and how."""


def parse_pair(pair: str) -> tuple[str, Any]:
    """`KEY=VALUE`. VALUE is read as JSON when it is JSON (`seed=7` is the number 7,
    `tags=["a"]` a list), as text otherwise (`prompt=a red fox`); `prompt='"7"'` is the text
    7."""
    key, equals, text = pair.partition("=")
    if not equals or not key:
        raise InvalidInput(f"-i {pair!r}: expected KEY=VALUE")
    try:
        return key, json.loads(text)
    except json.JSONDecodeError:
        return key, text


def job_input(pairs: list[str], input_file: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if input_file is not None:
        where = "stdin" if input_file == "-" else input_file
        try:
            text = sys.stdin.read() if input_file == "-" else Path(input_file).read_text()
            values = json.loads(text)
        except (OSError, json.JSONDecodeError) as error:
            raise InvalidInput(f"--input-file {where}: {error}") from None
        if not isinstance(values, dict):
            raise InvalidInput(f"--input-file {where}: expected a JSON object")
    for pair in pairs:
        key, value = parse_pair(pair)
        values[key] = value
    return values
