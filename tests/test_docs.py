"""The hook contract and its documentation move together."""

from __future__ import annotations

import re

from helpers import REPO_ROOT

from litplug.plugins import spec_arguments


def test_every_hook_has_a_documented_section_with_its_arguments() -> None:
    doc = (REPO_ROOT / "docs" / "hooks.md").read_text()
    sections = dict(re.findall(r"^## (\w+)\n\n`\w+\(([^)]*)\)", doc, flags=re.MULTILINE))
    specs = spec_arguments()
    assert sorted(sections) == sorted(specs), "docs/hooks.md sections differ from core/hookspecs.py"
    for hook, args in specs.items():
        documented = [a.strip() for a in sections[hook].split(",") if a.strip()]
        assert documented == list(args), f"docs/hooks.md documents {hook}({documented}), the spec has {args}"


def test_hook_sections_follow_the_contract_order() -> None:
    doc = (REPO_ROOT / "docs" / "hooks.md").read_text()
    source = (REPO_ROOT / "core" / "hookspecs.py").read_text()
    in_doc = re.findall(r"^## (\w+)$", doc, flags=re.MULTILINE)
    in_spec = [h for h in re.findall(r"^def (\w+)\(", source, flags=re.MULTILINE) if h in spec_arguments()]
    assert in_doc == in_spec
