"""The conformance harness, and the property that matters: the run's optimizer is SGD with momentum."""

import torch

from litplug.testing import PluginConformance


class TestConformance(PluginConformance):
    plugin = "sgd"


def test_the_checkpointed_optimizer_is_sgd_with_momentum(litplug_run) -> None:
    run = litplug_run({"sgd": {"momentum": 0.5}})
    state = torch.load(run.dir.last_checkpoint, weights_only=True)["optimizer_states"][0]
    assert state["param_groups"][0]["momentum"] == 0.5 and "betas" not in state["param_groups"][0]
    assert all("momentum_buffer" in s for s in state["state"].values())
