"""English sentences from a source that ships with Python: calibration text for the demo, tests and benchmarks.

The source is the Python language reference as CPython ships it for ``help()``:
``pydoc_data.topics.topics`` (a dict of topic name -> plain text; about 0.46 MB in
CPython 3.11).  Nothing is downloaded.

Extraction, all deterministic:

* topics in sorted name order; each topic split into paragraphs at blank lines;
* paragraphs that are code, grammar or tables are dropped: ragged indentation
  (prose, indented or with a hanging indent, keeps one indent after its first line),
  headings (a line underlined with ``*``, ``=`` or ``-``), lines with ``::=``,
  ``>>>``, ``+--`` or ``|``;
* a paragraph's lines are joined and split into sentences after ``.``, ``!`` or
  ``?`` followed by white space and an upper-case letter, a quote or a bracket
  (the abbreviations ``e.g.``, ``i.e.``, ``etc.``, ``vs.`` do not end a sentence);
* a sentence is kept if it has 8-60 words, ends with ``.``/``!``/``?``/``:``,
  starts with an upper-case letter or a quote, and at least 70 % of its
  characters are letters or spaces (prose, not code);
* exact duplicates (after collapsing white space) are dropped, first one kept.

:func:`splits` shuffles the list with a fixed seed and cuts disjoint
calibration / corpus / query sets from it.
"""

from __future__ import annotations

import random
import re

SOURCE = "pydoc_data.topics (the Python language reference shipped with CPython)"

_HEADING = re.compile(r"^\s*([*=\-~^])\1{2,}\s*$")
_CODEY = ("::=", ">>>", "+--", "|", "...")
_ABBREV = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "Dr.", "Mr.")
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def _paragraphs(text: str) -> list[str]:
    paras, cur = [], []
    for line in text.splitlines():
        if line.strip():
            cur.append(line)
        elif cur:
            paras.append(cur)
            cur = []
    if cur:
        paras.append(cur)
    out = []
    for lines in paras:
        indents = [len(ln) - len(ln.lstrip()) for ln in lines]
        if len(set(indents[1:])) > 1:  # ragged indentation: code, grammar, tables
            continue
        if any(_HEADING.match(ln) for ln in lines):
            continue
        if any(tok in ln for ln in lines for tok in _CODEY):
            continue
        out.append(" ".join(ln.strip() for ln in lines))
    return out


def _sentences(paragraph: str) -> list[str]:
    parts = _SPLIT.split(paragraph)
    merged: list[str] = []
    for p in parts:  # re-join splits that happened after an abbreviation
        if merged and merged[-1].endswith(_ABBREV):
            merged[-1] = f"{merged[-1]} {p}"
        else:
            merged.append(p)
    return merged


def _keep(s: str) -> bool:
    words = s.split()
    if not 8 <= len(words) <= 60:
        return False
    if not s.endswith((".", "!", "?", ":")) or not (s[0].isupper() or s[0] in "\"'"):
        return False
    prose = sum(c.isalpha() or c == " " for c in s)
    return prose >= 0.7 * len(s)


def sentences() -> list[str]:
    """Every kept sentence of the language reference, in document order, deduplicated."""
    from pydoc_data.topics import topics

    seen: set[str] = set()
    out: list[str] = []
    for name in sorted(topics):
        for para in _paragraphs(topics[name]):
            for s in _sentences(para):
                s = " ".join(s.split())
                if _keep(s) and s not in seen:
                    seen.add(s)
                    out.append(s)
    return out


def splits(n_calib: int, n_corpus: int, n_queries: int, seed: int = 0) -> dict[str, list[str]]:
    """Disjoint ``calib`` / ``corpus`` / ``queries`` lists, drawn after a seeded shuffle."""
    pool = sentences()
    need = n_calib + n_corpus + n_queries
    if need > len(pool):
        raise ValueError(f"calib + corpus + queries must be at most {len(pool)} sentences, not {need}")
    random.Random(seed).shuffle(pool)
    return {
        "calib": pool[:n_calib],
        "corpus": pool[n_calib:n_calib + n_corpus],
        "queries": pool[n_calib + n_corpus:need],
    }
