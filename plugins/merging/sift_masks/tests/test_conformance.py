"""The shared litplug conformance suite (discovered, config validated, trains, exports, resumes)."""

from litplug.testing import PluginConformance


class TestConformance(PluginConformance):
    plugin = "sift_masks"
    config = {"sign_seed": 3, "reset_momentum": True}
