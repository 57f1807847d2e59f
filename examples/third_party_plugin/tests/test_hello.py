"""The conformance harness every litplug plugin passes, applied to this one."""

from litplug.testing import PluginConformance


class TestConformance(PluginConformance):
    plugin = "hello"
    config = {"weight": 1e-3}
