"""The shared conformance suite, for a pretraining (mixture) config and a finetuning (early stopping) one."""

from litplug.testing import PluginConformance

from .conftest import PAIR


class TestConformance(PluginConformance):
    plugin = "spt"
    config = {"delta": 0.25}
    overrides = PAIR


class TestConformanceFinetune(PluginConformance):
    plugin = "spt"
    config = {"delta": 1.0, "early_stopping": True, "patience": 2}
    overrides = (*PAIR, "trainer.val_check_interval=1")
