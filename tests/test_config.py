"""Config: defaults <- YAML <- overrides, and the messages bad input gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from litplug.config import active_plugin_names, load_config
from litplug.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_defaults_file_and_overrides_layer_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, "trainer: {max_steps: 7}\ndata: {seq_len: 20}\n")
    cfg = load_config(path, ["data.seq_len=24", "optim.betas=[0.8, 0.9]"])
    assert cfg.trainer.max_steps == 7  # file over default
    assert cfg.data.seq_len == 24  # override over file
    assert list(cfg.optim.betas) == [0.8, 0.9]
    assert cfg.model.hidden_size == 64  # default kept
    assert cfg.data.sources[0].task == "arithmetic"  # a default source when none given


def test_override_reaches_into_a_list_of_sources(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  sources:\n    - {task: arithmetic}\n    - {task: qa, weight: 2}\n")
    cfg = load_config(path, ["data.sources.1.weight=0.5"])
    assert cfg.data.sources[1].weight == 0.5 and cfg.data.sources[0].weight == 1.0


def test_unknown_key_in_file_names_key_file_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "trainer: {max_step: 7}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "trainer.max_step" in message and str(path) in message and "max_steps" in message


def test_unknown_key_in_a_source_is_found(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  sources:\n    - {task: arithmetic, wieght: 2}\n")
    with pytest.raises(ConfigError, match=r"data\.sources\.0\.wieght.*weight"):
        load_config(path)


def test_unknown_key_in_override_suggests_nearest() -> None:
    with pytest.raises(ConfigError, match=r"optim\.lrr.*Did you mean 'lr'"):
        load_config(None, ["optim.lrr=0.1"])


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, "trainer: {max_steps: many}\n")
    with pytest.raises(ConfigError, match=r"trainer\.max_steps.*many"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"data\.seq_len"):
        load_config(None, ["data.seq_len=long"])


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "trainer: [unclosed\n"))


@pytest.mark.parametrize("override, key", [
    ("data.sources=[{task: arithmetic, weight: -1}]", "weight"),
    ("data.sources=[{task: arithmetic, weight: 0}]", "all zero"),
    ("data.sources=[{task: arithmetic, path: x.txt}]", "exactly one"),
    ("trainer.max_steps=0", "trainer.max_steps"),
])
def test_value_checks(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(None, [override])


def test_plugin_order_and_enabled_switch() -> None:
    cfg = load_config(None, ["plugins.b={}", "plugins.a={x: 1}", "plugins.c={enabled: false}"])
    assert active_plugin_names(cfg) == ["b", "a"]
    cfg = load_config(None, ["plugins.a.x=2"])  # an override may create a plugin section
    assert cfg.plugins.a.x == 2


def test_free_form_sections_accept_new_keys_from_overrides() -> None:
    cfg = load_config(None, ["model.extra.rope_theta=1000", "model.extra.rope_scaling.factor=2.0",
                             "data.sources=[{task: arithmetic}]", "data.sources.0.params.digits=3"])
    assert cfg.model.extra == {"rope_theta": 1000, "rope_scaling": {"factor": 2.0}}
    assert cfg.data.sources[0].params == {"digits": 3}
    with pytest.raises(ConfigError, match="Unknown config key 'model.extr'.*Did you mean 'extra'"):
        load_config(None, ["model.extr.rope_theta=1"])
    with pytest.raises(ConfigError, match="Unknown config key 'data.sources.0.param'"):
        load_config(None, ["data.sources=[{task: arithmetic}]", "data.sources.0.param.digits=3"])


def test_empty_mapping_override_empties_a_free_form_section() -> None:
    quickstart = Path(__file__).parents[1] / "examples" / "quickstart.yaml"
    assert "fsp" in load_config(quickstart).plugins
    assert dict(load_config(quickstart, ["plugins={}"]).plugins) == {}
    assert dict(load_config(quickstart, ["plugins.fsp={tau: 3}"]).plugins.fsp) == {"objective": "bce", "tau": 3}
    assert load_config(None, ["model.extra.a=1", "model.extra={}"]).model.extra == {}
    assert load_config(None, ["model={}"]).model.hidden_size == load_config(None).model.hidden_size
