"""Bad input stops before training with a message naming the key at fault, exit code 2."""

from __future__ import annotations

import pytest
import yaml

from litplug.testing import cli as main

BASE = {
    "run": {"output_dir": None},
    "data": {"seq_len": 16, "sources": [
        {"task": "general", "params": {"length": 15}, "num_train": 32, "num_validation": 8, "num_test": 8},
        {"task": "domain", "params": {"length": 15, "num_documents": 4}, "num_train": 8, "num_validation": 8,
         "num_test": 8}]},
    "trainer": {"max_steps": 2},
    "tracking": {"enabled": False},
}


@pytest.mark.parametrize("overrides, message", [
    (["plugins.spt.delta=-0.1"], "plugins.spt.delta must be a fraction in [0, 1]"),
    (["plugins.spt.delta=1.5"], "plugins.spt.delta must be a fraction in [0, 1]"),
    (["plugins.spt.delta=.nan"], "plugins.spt.delta must be a fraction in [0, 1]"),
    (["plugins.spt.delta=0.1", "data.sources.1.num_train=0"], "domain source 'domain' (data.sources, "
                                                               "plugins.spt.domain) is empty"),
    (["plugins.spt.domain=code"], "plugins.spt.domain is 'code', but data.sources has no source of that name"),
    (["plugins.spt.delta=0.5", "data.sources.0.weight=0"], "no other source has a positive weight"),
    (["plugins.spt.early_stopping=true"], "set trainer.val_check_interval"),
])
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, overrides: list[str], message: str) -> None:
    config = dict(BASE, run={"output_dir": str(tmp_path / "runs")})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "plugins.spt={}", *overrides]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs" / "run").exists()  # nothing was trained
