"""Plugin discovery through real entry points, trust, failure isolation, order and conflicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from litplug.cli import main
from litplug.config import load_config
from litplug.errors import ConfigError, PluginError
from litplug.plugins import list_plugins
from litplug.run import load_plugins

GOOD = """
from dataclasses import dataclass
import litplug

@dataclass
class Cfg:
    weight: float = 1.0

class Plugin:
    config_class = Cfg
    litplug_requires = ">=0.1"
    calls = litplug.__dict__.setdefault("_test_calls", [])  # shared by every fake plugin

    def __init__(self, cfg):
        self.cfg = cfg

    @litplug.hookimpl
    def after_optimizer_step(self, step):
        Plugin.calls.append(("{name}", step))
"""

LM_LOSS = """
import litplug

class Plugin:
    @litplug.hookimpl
    def lm_loss(self, hidden, head, labels):
        return None
"""


def good(name: str) -> str:
    return GOOD.replace("{name}", name)


def test_listing_reports_broken_plugins_and_keeps_the_rest(install_fake_plugin: Callable, capsys) -> None:
    install_fake_plugin("alpha", good("alpha"))
    install_fake_plugin("broken_import", "import no_such_module_xyz\nclass Plugin: pass\n")
    install_fake_plugin("bad_hook", "import litplug\nclass Plugin:\n    @litplug.hookimpl\n"
                                    "    def no_such_hook(self): pass\n")
    install_fake_plugin("bad_args", "import litplug\nclass Plugin:\n    @litplug.hookimpl\n"
                                    "    def after_optimizer_step(self, stepp): pass\n")
    install_fake_plugin("too_new", good("too_new").replace('">=0.1"', '">=9.0"'))
    records = {r.name: r for r in list_plugins()}
    assert records["alpha"].status == "ok" and records["alpha"].hooks == ["after_optimizer_step"]
    assert records["alpha"].distribution == "litplug-alpha" and records["alpha"].version == "1.0"
    assert "no_such_module_xyz" in records["broken_import"].reason
    assert "unknown hook 'no_such_hook'" in records["bad_hook"].reason
    assert "stepp" in records["bad_args"].reason
    assert ">=9.0" in records["too_new"].reason
    assert main(["plugins", "--check", "--json"]) == 2  # --check fails when any plugin is broken
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["alpha"]["status"] == "ok" and listed["broken_import"]["status"] == "broken"
    assert main(["plugins", "--check"]) == 2
    out, err = capsys.readouterr()
    assert "reason: import of" in out and "broken plugin(s)" in err and "broken_import" in err


def test_plain_listing_reads_metadata_without_importing_torch_or_plugins(install_fake_plugin: Callable) -> None:
    """`litplug plugins` answers from entry-point metadata: no plugin, torch or Lightning is imported."""
    install_fake_plugin("alpha", good("alpha"))
    site = install_fake_plugin("beta", "raise SystemExit('beta must never be imported')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys; from litplug.cli import main; rc = main(['plugins', '--json']); "
            "heavy = [m for m in ('torch', 'lightning', 'transformers', 'mlflow') if m in sys.modules]; "
            "print('HEAVY', heavy, rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    listed = {r["name"]: r for r in json.loads(done.stdout[: done.stdout.rindex("HEAVY")])}
    assert listed["beta"]["status"] == "unchecked" and listed["alpha"]["distribution"] == "litplug-alpha"
    assert done.stdout.rstrip().endswith("HEAVY [] 0")


def test_allow_list_limits_what_is_imported(install_fake_plugin: Callable, monkeypatch) -> None:
    install_fake_plugin("alpha", good("alpha"))
    install_fake_plugin("beta", "raise SystemExit('beta must never be imported')\n")
    monkeypatch.setenv("LITPLUG_PLUGINS", "alpha")
    assert [r.name for r in list_plugins()] == ["alpha"]


def test_a_run_imports_only_the_plugins_its_config_names(install_fake_plugin: Callable) -> None:
    install_fake_plugin("alpha", good("alpha"))
    install_fake_plugin("beta", "raise SystemExit('beta must never be imported')\n")
    pm, instances, _ = load_plugins(load_config(None, ["plugins.alpha={weight: 2}"]))
    assert list(instances) == ["alpha"] and instances["alpha"].cfg.weight == 2.0


@pytest.mark.parametrize("plugin, source, message", [
    ("missing", None, "not installed.*pip install litplug-missing"),
    ("broken_import", "import no_such_module_xyz\n", "broken_import.*litplug-broken.import.*no_such_module_xyz"),
    ("too_new", good("too_new").replace('">=0.1"', '">=9.0"'), "supports litplug >=9.0"),
])
def test_run_with_missing_broken_or_incompatible_plugin_stops(install_fake_plugin, plugin, source, message) -> None:
    if source:
        install_fake_plugin(plugin, source)
    with pytest.raises(PluginError, match=message):
        load_plugins(load_config(None, [f"plugins.{plugin}={{}}"]))


def test_plugin_config_is_validated_against_its_schema(install_fake_plugin: Callable) -> None:
    install_fake_plugin("alpha", good("alpha"))
    with pytest.raises(ConfigError, match=r"plugins\.alpha\.wieght.*weight"):
        load_plugins(load_config(None, ["plugins.alpha={wieght: 2}"]))
    with pytest.raises(ConfigError, match=r"plugins\.alpha\.weight"):
        load_plugins(load_config(None, ["plugins.alpha={weight: heavy}"]))


def test_two_plugins_on_an_exclusive_hook_is_an_error_naming_both(install_fake_plugin: Callable) -> None:
    install_fake_plugin("fused_a", LM_LOSS)
    install_fake_plugin("fused_b", LM_LOSS)
    with pytest.raises(PluginError, match="'fused_a' and 'fused_b'.*lm_loss"):
        load_plugins(load_config(None, ["plugins.fused_a={}", "plugins.fused_b={}"]))


def test_a_plugin_written_for_the_old_lm_head_contract_is_refused(install_fake_plugin: Callable) -> None:
    """``lm_loss(hidden, lm_head, labels)`` would compute the bare projection's loss: refused, named."""
    install_fake_plugin("old_fused", LM_LOSS.replace("head, labels", "lm_head, labels"))
    with pytest.raises(PluginError, match=r"'old_fused'.*lm_loss.*\['lm_head'\]"):
        load_plugins(load_config(None, ["plugins.old_fused={}"]))


def test_declared_order_is_checked(install_fake_plugin: Callable) -> None:
    install_fake_plugin("alpha", good("alpha"))
    install_fake_plugin("beta", good("beta").replace("litplug_requires", "run_after = ['alpha']\n    litplug_requires"))
    load_plugins(load_config(None, ["plugins.alpha={}", "plugins.beta={}"]))
    with pytest.raises(PluginError, match="'beta' must run after 'alpha'"):
        load_plugins(load_config(None, ["plugins.beta={}", "plugins.alpha={}"]))


def test_hooks_run_in_config_order_and_core_last(install_fake_plugin: Callable, monkeypatch, capsys) -> None:
    install_fake_plugin("alpha", good("alpha"))
    install_fake_plugin("beta", good("beta"))
    monkeypatch.setenv("LITPLUG_TRACE", "1")
    for order in (["beta", "alpha"], ["alpha", "beta"]):
        pm, instances, _ = load_plugins(load_config(None, [f"plugins.{n}={{}}" for n in order]))
        cls = type(instances[order[0]])
        cls.calls.clear()
        pm.hook.after_optimizer_step(module=None, step=3)
        assert [name for name, _ in cls.calls] == order
        assert f"after_optimizer_step: {' -> '.join(order)}" in capsys.readouterr().err
        impls = [i.plugin_name for i in pm.hook.lm_loss.get_hookimpls()]
        assert impls == ["core"]


def test_cli_config_prints_resolved_plugin_defaults(install_fake_plugin: Callable, capsys) -> None:
    install_fake_plugin("alpha", good("alpha"))
    assert main(["config", "plugins.alpha={}"]) == 0
    assert "weight: 1.0" in capsys.readouterr().out
    assert main(["config", "/nonexistent.yaml"]) == 2
    assert "nonexistent.yaml" in capsys.readouterr().err
