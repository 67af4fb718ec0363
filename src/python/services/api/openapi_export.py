"""`forge-openapi`: write the api's OpenAPI spec to a file, byte-for-byte reproducibly, or check
that the committed copy is current (`--check`). `make openapi` runs it."""

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from services.api.app import app

PROGRAM = "forge-openapi"
DEFAULT_OUT = Path("docs/openapi/openapi.v1.json")
REGENERATE_HINT = "run `make openapi` and commit the result"


def render(spec: dict[str, Any]) -> str:
    """Sorted keys, fixed indentation, UTF-8 as is, one trailing newline: the same bytes on
    every run and machine."""
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def check(out: Path, expected: str) -> int:
    try:
        committed = out.read_text(encoding="utf-8")
    except OSError as error:
        sys.stderr.write(f"{PROGRAM}: cannot read {out}: {error.strerror}; {REGENERATE_HINT}\n")
        return 1
    if committed == expected:
        sys.stdout.write(f"{PROGRAM}: {out} is up to date\n")
        return 0
    diff = difflib.unified_diff(
        committed.splitlines(keepends=True),
        expected.splitlines(keepends=True),
        fromfile=f"{out} (committed)",
        tofile=f"{out} (generated)",
    )
    sys.stdout.writelines(diff)
    sys.stderr.write(f"{PROGRAM}: {out} is out of date; {REGENERATE_HINT}\n")
    return 1


def write(out: Path, text: str) -> int:
    """Replace `out` atomically: a reader never sees a half-written spec."""
    if not out.parent.is_dir():
        sys.stderr.write(f"{PROGRAM}: cannot write {out}: {out.parent} is not a directory\n")
        return 1
    staged = out.with_name(f".{out.name}.tmp")
    try:
        staged.write_text(text, encoding="utf-8")
        staged.replace(out)
    except OSError as error:
        staged.unlink(missing_ok=True)
        sys.stderr.write(f"{PROGRAM}: cannot write {out}: {error.strerror}\n")
        return 1
    sys.stdout.write(f"{PROGRAM}: wrote {out}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    parser.add_argument(
        "--check", action="store_true", help="compare with --out instead of writing it"
    )
    args = parser.parse_args(argv)
    text = render(app.openapi())
    return check(args.out, text) if args.check else write(args.out, text)


if __name__ == "__main__":
    raise SystemExit(main())
