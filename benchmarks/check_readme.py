"""Check README.md's measured table against the committed results it cites.

Fails (exit 1, one line per problem) when:

- the table between the README's ``<!-- measured-table -->`` markers differs from what
  ``benchmarks/readme_table.py`` renders from the committed JSON (a number was edited by hand,
  or a result file changed and the table was not regenerated: run ``readme_table.py --write``);
- a row shows a standalone number that none of its values produced and that is not one of the
  row's ``settings`` (a literal found in the named field of a committed file);
- a key path no longer resolves, or a row's file is missing.

Numbers glued to letters or hyphens (``b64``, ``W8A8``, ``ResNet-56``, ``MNIST-1D``) are names,
not measurements, and are not checked.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import readme_table as rt  # noqa: E402

NUMBER = re.compile(r"(?<![\w.\-])[-+]?\d+(?:\.\d+)?(?=x\b|[^\w.]|\.(?!\d)|$)")


def numbers(text: str) -> list[str]:
    """Standalone numbers in ``text`` (a trailing ``x`` or ``%`` allowed)."""
    return NUMBER.findall(text)


def table_of(readme: str) -> str:
    if rt.START not in readme or rt.END not in readme:
        raise ValueError(f"README.md lacks the markers {rt.START} ... {rt.END}")
    return readme.split(rt.START, 1)[1].split(rt.END, 1)[0].strip()


def check(readme: str, rows: list[dict[str, Any]] | None = None) -> list[str]:
    """Problems found; empty when every number in the table has a committed source."""
    rows = rt.ROWS if rows is None else rows
    problems: list[str] = []
    cache: dict[str, Any] = {}
    try:
        shown = table_of(readme).splitlines()
    except ValueError as exc:
        return [str(exc)]
    rendered: list[str] = ["| what | result |", "|---|---|"]
    for row in rows:
        missing = sorted({s["file"] for s in row["values"].values() if not (rt.ROOT / s["file"]).is_file()})
        if missing:
            problems.append(f"row '{row['what']}': missing {', '.join(missing)}")
            continue
        try:
            line, produced = rt.render_row(row, cache)
        except (rt.SourceError, ZeroDivisionError) as exc:
            problems.append(f"row '{row['what']}': {exc}")
            continue
        rendered.append(line)
        settings = row.get("settings", {})
        for num in numbers(line):
            if num in produced:
                continue
            if num in settings:
                file, path = settings[num]
                try:
                    field = str(rt.resolve(rt.json.loads((rt.ROOT / file).read_text()), path, file))
                except rt.SourceError as exc:
                    problems.append(f"row '{row['what']}': setting {num}: {exc}")
                    continue
                if num.lstrip("+-") in field:
                    continue
                problems.append(f"row '{row['what']}': setting {num} is not in {file} {path} ({field!r})")
                continue
            problems.append(f"row '{row['what']}': {num} has no source (not produced by a value, not a setting)")
    for i, (a, b) in enumerate(zip(shown, rendered, strict=False)):
        if a.strip() != b:
            bad = [n for n in numbers(a) if n not in numbers(b)]
            problems.append(f"README table line {i + 1} differs from the committed results"
                            + (f" (numbers without a source: {', '.join(bad)})" if bad else "")
                            + f":\n  README: {a.strip()}\n  source: {b}")
    if len(shown) != len(rendered):
        problems.append(f"README table has {len(shown)} lines, the committed results give {len(rendered)}: "
                        "run python benchmarks/readme_table.py --write")
    return problems


def main() -> int:
    problems = check(rt.README.read_text())
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s); regenerate with: python benchmarks/readme_table.py --write")
        return 1
    print(f"README measured table: every number has a committed source ({len(rt.ROWS)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
