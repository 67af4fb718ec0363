"""Checks the Markdown docs: every relative link resolves (file and #heading), and every shell
block marked runnable succeeds when run from the repository root.

Mark a block runnable with an HTML comment on the line before its fence:

    <!-- runnable -->
    ```sh
    make help
    ```

Stdlib only, run with any Python 3.11+ as `python3 src/python/devtools/check_docs.py`: the
commands it runs may themselves start Pants, so it must not run inside Pants.
"""

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

RUNNABLE_MARKER = "<!-- runnable -->"
# [text](target), ![alt](target) and <img src="target">
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<img [^>]*src=\"([^\"]+)\"")
_FENCE = re.compile(r"^(```|~~~)")
_EXTERNAL = ("http://", "https://", "mailto:")


@dataclass(frozen=True)
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the document's headings (outside code blocks)."""
    anchors: set[str] = set()
    for _, line in _prose_lines(markdown):
        if match := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line):
            text = re.sub(r"[`*_]|<[^>]+>", "", match.group(1)).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def _prose_lines(markdown: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(markdown.splitlines(), start=1):
        if _FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def check_links(root: Path, document: Path) -> list[Problem]:
    problems = []
    for number, line in _prose_lines(document.read_text(encoding="utf-8")):
        for match in _LINK.finditer(line):
            target = match.group(1) or match.group(2)
            if target.startswith(_EXTERNAL):
                continue
            path_part, _, anchor = target.partition("#")
            resolved = (document.parent / path_part).resolve() if path_part else document
            where = f"{document.relative_to(root)}:{number}"
            if not resolved.exists():
                problems.append(Problem(where, f"link to missing {target}"))
            elif (
                anchor
                and resolved.suffix == ".md"
                and anchor not in heading_anchors(resolved.read_text(encoding="utf-8"))
            ):
                problems.append(Problem(where, f"link to missing heading {target}"))
    return problems


def runnable_blocks(markdown: str) -> list[tuple[int, list[str]]]:
    """(line number, commands) of each block marked runnable; comments and blanks dropped."""
    blocks, lines = [], markdown.splitlines()
    for index, line in enumerate(lines):
        if line.strip() == RUNNABLE_MARKER and index + 1 < len(lines):
            start = index + 2
            end = next(i for i in range(start, len(lines)) if _FENCE.match(lines[i].strip()))
            commands = [c for c in lines[start:end] if c.strip() and not c.lstrip().startswith("#")]
            blocks.append((start + 1, commands))
    return blocks


def run_blocks(root: Path, document: Path, timeout_s: int) -> list[Problem]:
    problems = []
    for line_number, commands in runnable_blocks(document.read_text(encoding="utf-8")):
        for command in commands:
            where = f"{document.relative_to(root)}:{line_number}"
            sys.stdout.write(f"check-docs: {where}: $ {command}\n")
            sys.stdout.flush()
            try:
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", command],
                    cwd=root,
                    timeout=timeout_s,
                    capture_output=True,
                    text=True,
                )
            except subprocess.TimeoutExpired:
                problems.append(Problem(where, f"`{command}` ran longer than {timeout_s}s"))
                continue
            if result.returncode != 0:
                tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
                problems.append(Problem(where, f"`{command}` exited {result.returncode}:\n{tail}"))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--links-only", action="store_true", help="do not run commands")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per command")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    documents = [root / name for name in tracked]
    problems = [problem for document in documents for problem in check_links(root, document)]
    if not args.links_only:
        for name in ("README.md", "DEV.md"):
            problems += run_blocks(root, root / name, args.timeout)
    for problem in problems:
        sys.stderr.write(f"check-docs: {problem}\n")
    sys.stdout.write(f"check-docs: {len(documents)} documents, {len(problems)} problem(s)\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
