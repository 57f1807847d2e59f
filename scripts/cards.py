"""Paste finished sweep summaries into the method cards.

A card marks where a sweep's table goes with a line ``<!-- sweep-summary: runs/sweeps/NAME/summary.md -->``
(path relative to the repository root). This script replaces everything between that line and the next
``<!-- /sweep-summary -->`` (inserted the first time) with the summary, its headings moved under the
card's, so a card's table is always the finished summary itself, never a hand-copied number. A summary
that does not exist yet leaves the card as it is and is listed as missing (exit 1).

    python scripts/cards.py            # every plugins/*/*/README.md
    python scripts/cards.py --check    # exit 1 if a card differs from its summary (nothing written)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"^<!-- sweep-summary: (?P<path>\S+) -->\n(?:(?P<body>.*?)^<!-- /sweep-summary -->\n)?",
                  re.MULTILINE | re.DOTALL)
END = "<!-- /sweep-summary -->\n"


def demote(summary: str, levels: int = 2) -> str:
    """The summary's ``##`` sections become ``####`` (below a card's ``###``); its title becomes bold."""
    lines = []
    for line in summary.splitlines():
        if line.startswith("# "):
            line = f"**{line[2:].strip()}**"
        elif line.startswith("#"):
            line = "#" * levels + line
        lines.append(line)
    return "\n".join(lines).strip() + "\n"


def render(card: str, root: Path, missing: list[str]) -> str:
    def replace(m: re.Match[str]) -> str:
        path = root / m["path"]
        if not path.is_file():
            missing.append(m["path"])
            return m[0]
        return f"<!-- sweep-summary: {m['path']} -->\n{demote(path.read_text())}{END}"

    return MARK.sub(replace, card)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a card is stale")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    missing: list[str] = []
    stale = []
    for card in sorted(args.root.glob("plugins/*/*/README.md")):
        text = card.read_text()
        new = render(text, args.root, missing)
        if new != text:
            stale.append(card.relative_to(args.root))
            if not args.check:
                card.write_text(new)
    for path in missing:
        print(f"missing summary: {path} (run its sweep)", file=sys.stderr)
    for card in stale:
        print(f"{'stale' if args.check else 'updated'}: {card}")
    return 1 if missing or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
