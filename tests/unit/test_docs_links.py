"""Every relative link and anchor in README.md and docs/*.md resolves.

Also a script: `.venv/bin/python tests/unit/test_docs_links.py` prints each broken link and exits 1.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# [text](target) or ![alt](target), with an optional "title"; the text may hold `code`.
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"`+[^`]*`+")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def documents(root: Path = ROOT) -> list[Path]:
    """README.md and every page under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("**/*.md"))]


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    lines, fence = [], ""
    for number, line in enumerate(text.splitlines(), start=1):
        marker = re.match(r"^\s*(```+|~~~+)", line)
        if marker:
            if not fence:
                fence = marker.group(1)
            elif marker.group(1).startswith(fence):
                fence = ""
            continue
        if not fence:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: markup dropped, lower case, punctuation removed, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    text = text.replace("`", "")
    text = re.sub(r"[*_]{1,3}([^*_]+)[*_]{1,3}", r"\1", text)  # emphasis markers
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in _prose_lines(path.read_text()):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(files: list[Path], root: Path = ROOT) -> list[str]:
    """One message per relative link whose file, or whose #anchor in that file, does not exist."""
    problems = []
    cache: dict[Path, set[str]] = {}
    for path in files:
        for number, line in _prose_lines(path.read_text()):
            for target in LINK.findall(CODE_SPAN.sub("", line)):
                if SCHEME.match(target):
                    continue  # http(s), mailto: not checked here
                where = f"{path.relative_to(root)}:{number}: {target}"
                file_part, _, anchor = target.partition("#")
                linked = (path.parent / file_part).resolve() if file_part else path
                if not linked.exists():
                    problems.append(f"{where}: no such file")
                    continue
                if not anchor:
                    continue
                if linked.suffix != ".md":
                    problems.append(f"{where}: an anchor into a file that is not markdown")
                    continue
                if linked not in cache:
                    cache[linked] = anchors(linked)
                if anchor not in cache[linked]:
                    problems.append(f"{where}: no heading with anchor #{anchor}")
    return problems


def test_every_relative_link_and_anchor_resolves() -> None:
    files = documents()
    assert len(files) > 10  # README.md and the docs pages
    assert broken_links(files) == []


def test_every_docs_page_is_linked_from_the_readme() -> None:
    text = (ROOT / "README.md").read_text()
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(text) if not SCHEME.match(t)}
    missing = [p.relative_to(ROOT).as_posix() for p in documents()[1:] if p.resolve() not in linked]
    assert missing == []


def test_the_readme_curl_example_is_one_of_the_tested_serving_lines() -> None:
    """README's one example is among docs/serving.md's curl lines, which tests/integration/test_serving.py runs."""

    def curl_lines(path: Path) -> set[str]:
        text = path.read_text().replace("\\\n", " ")
        return {line.strip() for line in text.splitlines() if line.strip().startswith("curl ")}

    in_readme = curl_lines(ROOT / "README.md")
    assert in_readme
    assert in_readme <= curl_lines(ROOT / "docs" / "serving.md")


def test_the_check_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text(
        "# A page\n\n## The `churn` command\n\n## Twice\n\n## Twice\n\n```bash\n# not a heading\n```\n"
    )
    (tmp_path / "README.md").write_text(
        "# Top\n\n"
        "[ok](docs/page.md) [ok](docs/page.md#the-churn-command) [ok](docs/page.md#twice-1) [ok](#top)\n"
        "[ok](https://example.com/x#y) `[not a link](nowhere.md)`\n"
        "[gone](docs/missing.md)\n"
        "[bad anchor](docs/page.md#not-a-heading)\n"
        "[code comment](docs/page.md#not-a-heading-1) [twice-2](docs/page.md#twice-2)\n"
        "[self](#nothing-here)\n"
        "```\n[in a fence](nowhere.md)\n```\n"
    )
    problems = broken_links(documents(tmp_path), root=tmp_path)
    assert problems == [
        "README.md:5: docs/missing.md: no such file",
        "README.md:6: docs/page.md#not-a-heading: no heading with anchor #not-a-heading",
        "README.md:7: docs/page.md#not-a-heading-1: no heading with anchor #not-a-heading-1",
        "README.md:7: docs/page.md#twice-2: no heading with anchor #twice-2",
        "README.md:8: #nothing-here: no heading with anchor #nothing-here",
    ]


if __name__ == "__main__":
    found = broken_links(documents())
    print("\n".join(found) or f"all links resolve in {len(documents())} files")
    sys.exit(1 if found else 0)
