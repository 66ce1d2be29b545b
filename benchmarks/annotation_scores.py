"""Which lines of a compiled module still call into the Python C-API (from `cython -a`).

    FASTGRAD_ANNOTATE=1 python setup.py build_ext --inplace   # writes fastgrad/*.html
    python benchmarks/annotation_scores.py fastgrad/_scalar/value.pyx [function ...]

For each top-level function or method (or just the named ones) prints the lines whose
annotation score is above zero: the number of Python C-API calls Cython generated for them.
Hot loops should show none (and the sweeps are `nogil`, so Cython guarantees it there).
"""

import re
import sys
from pathlib import Path

LINE = re.compile(r'class="cython line score-(\d+)"[^>]*>.{0,3}<span class="">(\d+)</span>')
DEF = re.compile(r"^\s*(?:cdef|cpdef|def)\s+(?:[\w\[\]\*]+\s+)*?(\w+)\s*\(")


def scores(html_path):
    return {int(n): int(s) for s, n in LINE.findall(html_path.read_text())}


def functions(source_lines):
    """(name, first line, last line) of each def/cdef, by indentation."""
    starts = [(i + 1, m.group(1)) for i, line in enumerate(source_lines) if (m := DEF.match(line))]
    for k, (start, name) in enumerate(starts):
        end = starts[k + 1][0] - 1 if k + 1 < len(starts) else len(source_lines)
        yield name, start, end


def main():
    pyx = Path(sys.argv[1])
    wanted = set(sys.argv[2:])
    html = pyx.with_suffix(".html")
    if not html.exists():
        raise SystemExit(f"{html} not found: build with FASTGRAD_ANNOTATE=1 first")
    score = scores(html)
    lines = pyx.read_text().splitlines()
    for name, start, end in functions(lines):
        if wanted and name not in wanted:
            continue
        hot = [(i, score[i]) for i in range(start, end + 1) if score.get(i, 0) > 0]
        print(f"{name} (lines {start}-{end}): {len(hot)} line(s) calling the C-API")
        for i, s in hot:
            print(f"    {i:5d} [{s:3d}] {lines[i - 1].strip()}")


if __name__ == "__main__":
    main()
