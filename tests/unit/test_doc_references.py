"""Every document the repository cites is in the repository, and every ``§`` it names exists.

Code comments, docstrings and READMEs point readers at ``docs/``. This test reads the tracked text
files (``git ls-files``) and checks three kinds of reference:

- a markdown path (``docs/protocols/twilio.md``): the file must exist relative to the repository
  root, to ``docs/``, or (markdown files only, as links resolve there) to the citing file's folder;
- sections right after a path (``docs/aws.md §1.4``, ``§2, §6``, ``§1–2``): the target must have a
  heading that starts with that number (``## 1.``, ``### 1.4``, ``## §1``);
- a bare ``§N`` with no path right before it: in a markdown file it is that file's own section or
  one of the last document named before it on the same line (an index table); in other files it
  belongs to the last document named before it on the line, else to any document the file cites.

``DESIGN §N`` (the old name of the architecture notes) counts as a reference to ``DESIGN.md``.
Section numbers of other standards (``RFC 6455 §7.4.1``, ``XML 1.0 §2.2``) are not ours and are
skipped, as are URLs.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".toml", ".sh")
SCANNED_NAMES = ("Makefile", "Dockerfile")
#: This file names made-up references in its own tests.
SKIPPED = ("tests/unit/test_doc_references.py",)

_URL = re.compile(r"\w+://\S+")
_DOC = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-][\w.-]*\.md)(?![\w-])")
_DESIGN = re.compile(r"\bDESIGN(?=\s*§)")
#: Standards whose sections are theirs, not ours: "RFC 9112 §6", "XML 1.0 §2.2", "HTML Living Standard §9".
_FOREIGN = re.compile(
    r"\b(?:RFC\s*\d+|XML\s*[\d.]+|Living Standard|ISO[\s/-]*[\d-]+|IEEE\s*[\d.]+|ITU-T\s*\S+)"
)
_SECTION = re.compile(r"§\s*(\d+(?:\.\d+)*)(?:\s*[–-]\s*(\d+(?:\.\d+)*))?")
#: What may stand between a reference and a section that belongs to it: "§2, §6", "§2.2 and §3.2".
_RUN = re.compile(r"(?:[\s,;/`]|and|or|§\s*\d+(?:\.\d+)*(?:\s*[–-]\s*\d+(?:\.\d+)*)?)*")
_HEADING = re.compile(r"^#{1,6}\s+§?\s*(\d+(?:\.\d+)*)(?:[.\s)]|$)")


@dataclass(frozen=True)
class Anchor:
    start: int
    end: int
    target: str | None  # a cited document; None for a foreign standard


@dataclass(frozen=True)
class Reference:
    line: int
    target: str | None  # None: a bare section, resolved against the line's or the file's context
    sections: tuple[str, ...]
    line_target: str | None = None  # for a bare section: the last document named before it on the line


def scan_line(text: str, number: int) -> list[Reference]:
    """The references of one line: documents with the sections that follow them, and bare sections."""
    text = _URL.sub(lambda m: " " * len(m.group()), text)
    anchors = sorted(
        [Anchor(m.start(), m.end(), m.group(1)) for m in _DOC.finditer(text)]
        + [Anchor(m.start(), m.end(), "DESIGN.md") for m in _DESIGN.finditer(text)]
        + [Anchor(m.start(), m.end(), None) for m in _FOREIGN.finditer(text)],
        key=lambda a: a.start,
    )
    owned: dict[int, list[str]] = {i: [] for i, a in enumerate(anchors) if a.target}
    bare: dict[str | None, list[str]] = {}
    for match in _SECTION.finditer(text):
        numbers = [n for n in match.groups() if n]
        owner = None
        for i in range(len(anchors) - 1, -1, -1):
            if anchors[i].end <= match.start():
                if _RUN.fullmatch(text[anchors[i].end : match.start()]):
                    owner = i
                break
        if owner is None:
            before = [a.target for a in anchors if a.target and a.end <= match.start()]
            bare.setdefault(before[-1] if before else None, []).extend(numbers)
        elif anchors[owner].target:
            owned[owner].extend(numbers)
    refs = [Reference(number, anchors[i].target, tuple(s)) for i, s in owned.items()]
    refs += [Reference(number, None, tuple(s), line_target) for line_target, s in bare.items()]
    return refs


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [
        path
        for path in out.splitlines()
        if (path.endswith(SCANNED_SUFFIXES) or Path(path).name in SCANNED_NAMES)
        and path not in SKIPPED
        and (ROOT / path).is_file()
    ]


def resolve(target: str, citing: str) -> Path | None:
    bases = [ROOT, ROOT / "docs"]
    if citing.endswith(".md"):
        bases.insert(0, (ROOT / citing).parent)
    for base in bases:
        candidate = (base / target).resolve()
        if candidate.is_file() and candidate.is_relative_to(ROOT):
            return candidate
    return None


@cache
def sections_of(path: Path) -> frozenset[str]:
    found = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := _HEADING.match(line)):
            found.add(m.group(1))
    return frozenset(found)


def problems_in(path: str, text: str) -> list[str]:
    refs = [ref for number, line in enumerate(text.splitlines(), 1) for ref in scan_line(line, number)]
    problems: list[str] = []
    cited: list[Path] = [ROOT / path] if path.endswith(".md") else []
    for ref in refs:
        if ref.target is None:
            continue
        target = resolve(ref.target, path)
        if target is None:
            problems.append(f"{path}:{ref.line}: {ref.target} is not in the repository")
            continue
        cited.append(target)
        missing = [s for s in ref.sections if s not in sections_of(target)]
        if missing:
            names = ", ".join(f"§{s}" for s in missing)
            problems.append(f"{path}:{ref.line}: {ref.target} has no {names}")
    for ref in refs:
        if ref.target is not None:
            continue
        near = [doc] if ref.line_target and (doc := resolve(ref.line_target, path)) else []
        own = [ROOT / path, *near] if path.endswith(".md") else near or cited
        for section in ref.sections:
            if not own:
                problems.append(f"{path}:{ref.line}: §{section} names no document (cite the file)")
            elif not any(section in sections_of(doc) for doc in own):
                where = ", ".join(sorted({str(doc.relative_to(ROOT)) for doc in own}))
                problems.append(f"{path}:{ref.line}: §{section} is in none of the documents cited ({where})")
    return problems


def test_every_cited_document_and_section_exists() -> None:
    problems = [
        problem
        for path in tracked_files()
        for problem in problems_in(path, (ROOT / path).read_text(encoding="utf-8", errors="replace"))
    ]
    assert not problems, "references a reader cannot follow:\n" + "\n".join(problems)


# --- the scanner itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("see docs/aws.md §1.4", [("docs/aws.md", ("1.4",))]),
        ("(DESIGN §2, §6)", [("DESIGN.md", ("2", "6"))]),
        ("x.md §1–2 and §3.2", [("x.md", ("1", "2", "3.2"))]),
        ("a.md §5, b.md §4", [("a.md", ("5",)), ("b.md", ("4",))]),
        ("the example in §2.2", [(None, ("2.2",))]),
        ("a.md §4: the request (§4.1)", [("a.md", ("4",)), (None, ("4.1",))]),
        ("see `a.md §2.4`, `§2.5`", [("a.md", ("2.4", "2.5"))]),
        ("RFC 9112 §6, §7.1 and XML 1.0 §2.2", []),
        ("https://example.com/x.md §3", [(None, ("3",))]),
        ('readme = "README.md"', [("README.md", ())]),
    ],
)
def test_scan_line(line: str, expected: list[tuple[str | None, tuple[str, ...]]]) -> None:
    assert [(r.target, r.sections) for r in scan_line(line, 1)] == expected


def test_problems_are_reported() -> None:
    problems = problems_in("pkg/mod.py", "# twilio.md §4\n# DESIGN §2\n# §9\n")
    assert problems == [
        "pkg/mod.py:1: twilio.md is not in the repository",
        "pkg/mod.py:2: DESIGN.md is not in the repository",
        "pkg/mod.py:3: §9 names no document (cite the file)",
    ]


def test_a_bare_section_belongs_to_the_document_named_before_it_on_the_line() -> None:
    assert [r.line_target for r in scan_line("a.md §4: the request (§4.1)", 1)] == [None, "a.md"]
    assert [r.line_target for r in scan_line("the request (§4.1)", 1)] == [None]
