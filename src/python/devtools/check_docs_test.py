from pathlib import Path

from devtools.check_docs import check_links, heading_anchors, run_blocks, runnable_blocks

DOC = """# Forge docs

## Getting started: the `make` targets

See [the guide](guide.md), [its setup](guide.md#set-up), [here](#getting-started-the-make-targets),
![diagram](img/flow.png) and [the site](https://example.com/missing).

```sh
echo "[not a link](nowhere.md)"
```
"""


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_links_to_existing_files_and_headings_pass(tmp_path: Path) -> None:
    doc = write(tmp_path, "README.md", DOC)
    write(tmp_path, "guide.md", "# Guide\n\n## Set up\n")
    write(tmp_path, "img/flow.png", "")
    assert check_links(tmp_path, doc) == []


def test_missing_files_and_headings_are_reported_with_their_line(tmp_path: Path) -> None:
    doc = write(tmp_path, "README.md", DOC)
    write(tmp_path, "guide.md", "# Guide\n")
    problems = [str(problem) for problem in check_links(tmp_path, doc)]
    assert problems == [
        "README.md:5: link to missing heading guide.md#set-up",
        "README.md:6: link to missing img/flow.png",
    ]


def test_heading_anchors_follow_github() -> None:
    assert heading_anchors("# Forge docs\n## Make `up` & down!\n```\n# not a heading\n```\n") == {
        "forge-docs",
        "make-up--down",
    }


RUNNABLE = """Intro.

<!-- runnable -->
```sh
# a comment line is skipped
true
test -f marker
```

```sh
false  # not marked: never run
```
"""


def test_only_marked_blocks_are_collected() -> None:
    assert runnable_blocks(RUNNABLE) == [(5, ["true", "test -f marker"])]


def test_failing_command_is_reported_with_its_output(tmp_path: Path) -> None:
    doc = write(tmp_path, "DEV.md", RUNNABLE)
    (problem,) = run_blocks(tmp_path, doc, timeout_s=10)
    assert str(problem).startswith("DEV.md:5: `test -f marker` exited 1")
    write(tmp_path, "marker", "")
    assert run_blocks(tmp_path, doc, timeout_s=10) == []
