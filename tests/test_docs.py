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


def test_used_by_lines_match_what_the_built_in_plugins_implement() -> None:
    from litplug.plugins import implemented_hooks, installed_entry_points

    doc = (REPO_ROOT / "docs" / "hooks.md").read_text()
    documented = {hook: set(re.findall(r"\b[a-z][a-z0-9_]*\b", used.split("(")[0])) - {"none", "of", "the", "built",
                                                                                        "in", "plugins"}
                  for hook, used in re.findall(r"^## (\w+)\n.*?^Used by: (.*?)\.?$", doc, flags=re.MULTILINE | re.S)}
    built_in = {name: eps[0] for name, eps in installed_entry_points().items()
                if (REPO_ROOT / "plugins").exists() and eps[0].dist is not None
                and any(p.name == "pyproject.toml" for p in REPO_ROOT.glob(f"plugins/*/{name}/pyproject.toml"))}
    assert len(built_in) == 8
    actual = {hook: set() for hook in spec_arguments()}
    for name, ep in built_in.items():
        for hook in implemented_hooks(ep.load()):
            actual[hook].add(name)
    assert documented == actual, {h: (sorted(documented.get(h, ())), sorted(a)) for h, a in actual.items()
                                  if documented.get(h) != a}
