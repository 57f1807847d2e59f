"""scripts/cards.py: a card's sweep table is the finished summary, pasted idempotently."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("cards", ROOT / "scripts" / "cards.py")
cards = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cards)


def make(tmp_path: Path) -> Path:
    card = tmp_path / "plugins" / "objectives" / "x" / "README.md"
    card.parent.mkdir(parents=True)
    card.write_text("# x\n\n## Results\n\n<!-- sweep-summary: runs/sweeps/x/summary.md -->\n\nAfter.\n")
    return card


def test_paste_is_the_summary_and_idempotent(tmp_path: Path) -> None:
    card = make(tmp_path)
    summary = tmp_path / "runs" / "sweeps" / "x" / "summary.md"
    summary.parent.mkdir(parents=True)
    summary.write_text("# Sweep `x`\n\n## eval/t/exact_match\n\n| group | mean |\n|---|---|\n| a | 0.5 |\n")
    assert cards.main(["--root", str(tmp_path), "--check"]) == 1  # stale before the paste
    assert cards.main(["--root", str(tmp_path)]) == 0
    text = card.read_text()
    assert "| a | 0.5 |" in text and "\n#### eval/t/exact_match\n" in text and "**Sweep `x`**" in text
    assert text.endswith("<!-- /sweep-summary -->\n\nAfter.\n")
    assert cards.main(["--root", str(tmp_path), "--check"]) == 0
    summary.write_text(summary.read_text().replace("0.5", "0.75"))  # a re-run replaces, never appends
    assert cards.main(["--root", str(tmp_path)]) == 0
    assert "0.75" in card.read_text() and "| a | 0.5 |" not in card.read_text()


def test_a_missing_summary_leaves_the_card_and_fails(tmp_path: Path, capsys) -> None:
    card = make(tmp_path)
    before = card.read_text()
    assert cards.main(["--root", str(tmp_path)]) == 1
    assert card.read_text() == before
    assert "missing summary: runs/sweeps/x/summary.md" in capsys.readouterr().err
