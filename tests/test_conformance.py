"""The conformance harness over every installed plugin, parametrised from the entry points (as Composer's
harness runs over every algorithm): a plugin cannot skip it, and one that implements no hook fails here.

Each plugin declares the settings it is trained with (``conformance`` on its class); the checks read the
run's own numbers (steps, checkpoint interval) rather than hard-coded ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from litplug import testing

CASES = testing.conformance_cases()
IDS = [f"{name}-{index}" for name, index, _ in CASES]


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         litplug_data_cache: Path) -> dict[str, Any]:
    name, index, settings = request.param
    testing.check_discovered(name)
    out = tmp_path_factory.mktemp(f"conformance-{name}-{index}")
    run, monitored = testing.conformance_run(name, settings, out, litplug_data_cache)
    return {"name": name, "settings": settings, "run": run, "monitored": monitored, "out": out,
            "cache": litplug_data_cache}


def test_every_installed_plugin_has_a_case() -> None:
    from litplug.plugins import installed_entry_points

    assert {name for name, _, _ in CASES} == set(installed_entry_points())
    assert len(CASES) >= 8  # the eight plugins of this repository


@pytest.mark.parametrize("entry", CASES, ids=IDS)
def test_discovered_and_config_validates(entry: tuple[str, int, dict[str, Any]]) -> None:
    name, _, settings = entry
    testing.check_discovered(name)
    testing.check_config(name, settings)


def test_trains_exports_and_reloads(case: dict[str, Any]) -> None:
    testing.check_trained(case["run"])


def test_mid_run_export_equals_final_export(case: dict[str, Any], tmp_path: Path) -> None:
    testing.check_export(case["run"], tmp_path / "export")


def test_generation_hooks(case: dict[str, Any]) -> None:
    testing.check_generation(case["run"])


def test_every_implemented_hook_is_exercised(case: dict[str, Any]) -> None:
    testing.check_verbs(case["name"], case["monitored"])
    testing.check_hooks_exercised(case["name"], case["monitored"])


def test_resume_is_bit_exact(case: dict[str, Any]) -> None:
    testing.check_resume(case["run"], case["settings"], case["name"], case["out"], case["cache"])
