"""The mixture: realised domain fraction, delta = 0 equals no plugin, held-out data never trained on."""

from __future__ import annotations

import math
from itertools import islice

import pytest
import torch

from litplug.api import get_task, source_name
from litplug.testing import state_equal

from .conftest import DOC_LENGTH, NUM_DOCUMENTS, sources, spt

DRAWS = 10_000


def draw_sources(run, batches: int) -> torch.Tensor:
    loader = run.datamodule.train_dataloader()
    return torch.cat([batch["source"] for batch in islice(loader, batches)])


@pytest.mark.parametrize("delta", [0.05, 0.3])
def test_realised_fraction_is_within_3_sigma_of_delta(setup_run, delta: float) -> None:
    batch, steps = 100, DRAWS // 100
    run = setup_run(sources(general_train=10_000), f"data.batch_size={batch}", f"trainer.max_steps={steps}",
                    spt(delta=delta), name=f"fraction{delta}")
    domain = run.datamodule.train_names.index("domain")
    drawn = draw_sources(run, steps)
    assert len(drawn) == DRAWS
    fraction = (drawn == domain).float().mean().item()
    sigma = math.sqrt(delta * (1 - delta) / DRAWS)
    assert abs(fraction - delta) <= 3 * sigma, (fraction, delta, sigma)


def test_weights_are_delta_and_one_minus_delta_and_keep_general_proportions(setup_run) -> None:
    small = "num_train: 32, num_validation: 8, num_test: 8"
    general2 = (f'data.sources=[{{task: general, params: {{length: 15}}, weight: 3.0, {small}}}, '
                f'{{task: general, name: general_b, params: {{length: 15}}, weight: 1.0, {small}}}, '
                f'{{task: domain, params: {{length: 15, num_documents: 12}}, weight: 7.0, {small}}}]')
    run = setup_run(general2, spt(delta=0.2), name="weights")
    weights = {source_name(s): s.weight for s in run.sources}
    assert weights == pytest.approx({"general": 0.6, "general_b": 0.2, "domain": 0.2})
    assert [s.weight for s in run.cfg.data.sources] == pytest.approx([0.6, 0.2, 0.2])  # recorded in config.yaml


def test_delta_zero_gives_the_stream_of_no_plugin(setup_run) -> None:
    # The NPT baseline without the plugin: the same sources, the domain validated only (weight 0).
    baseline = setup_run(sources(domain_weight=0.0), name="baseline")
    plugin = setup_run(spt(delta=0.0), name="delta0")  # the domain's configured weight (1.0) is overridden
    assert [s.weight for s in plugin.sources] == [1.0, 0.0]
    a, b = baseline.datamodule.train_dataloader(), plugin.datamodule.train_dataloader()
    for batch_a, batch_b in islice(zip(a, b), 80):  # more than one pass over the 400 general rows
        assert batch_a.keys() == batch_b.keys()
        for key in batch_a:
            assert torch.equal(batch_a[key], batch_b[key]), key
    # control: any domain share changes the stream, so the comparison above can fail
    some_domain = setup_run(spt(delta=0.1), name="delta01")
    mixed = torch.cat([b["input_ids"] for b in islice(some_domain.datamodule.train_dataloader(), 10)])
    plain = torch.cat([b["input_ids"] for b in islice(baseline.datamodule.train_dataloader(), 10)])
    assert not torch.equal(mixed, plain)


def test_delta_zero_trains_the_same_weights_as_no_plugin(setup_run, litplug_run, tmp_path) -> None:
    from .conftest import PAIR

    # Attention dropout draws from torch's RNG while training, so an RNG disturbed mid-run shows up.
    # (model.extra cannot be set by a command-line override, hence a config file.)
    config = tmp_path / "dropout.yaml"
    config.write_text("model:\n  extra: {attention_dropout: 0.2}\n")
    common = [*PAIR, "trainer.val_check_interval=2"]
    # litdata.optimize reseeds the global RNGs (to 42) when it writes a split, so the core's model init
    # depends on whether the data cache was warm; warm it for both runs (the plugin guards its own writes).
    setup_run(sources(domain_weight=0.0), name="warm")
    baseline = litplug_run(overrides=[*common, sources(domain_weight=0.0)], name="baseline", config_path=str(config))
    plugin = litplug_run(plugins={"spt": {"delta": 0.0}}, overrides=common, name="delta0", config_path=str(config))
    assert baseline.module.model.config.attention_dropout == 0.2
    assert not state_equal(baseline.module.state_dict(), plugin.module.state_dict())
    assert "val/domain/train_split_loss" in plugin.results["metrics"]  # the plugin's extra validation ran


def rows_as_documents(run, batches: int) -> dict[str, list[str]]:
    """Every emitted training row decoded to its document text, per source name."""
    tokenizer, names = run.tokenizer, run.datamodule.train_names
    out: dict[str, list[str]] = {n: [] for n in names}
    for batch in islice(run.datamodule.train_dataloader(), batches):
        for ids, labels, src in zip(batch["input_ids"], batch["labels"], batch["source"]):
            tokens = [*ids.tolist(), int(labels[-1])]  # the row's last token is only a target
            assert tokens[0] == tokenizer.bos_token_id and tokens[-1] == tokenizer.eos_token_id
            out[names[int(src)]].append(tokenizer.decode(tokens[1:-1]))
    return out


@pytest.mark.parametrize("delta", [0.5, 1.0])
def test_no_held_out_document_is_ever_trained_on(setup_run, delta: float) -> None:
    run = setup_run(spt(delta=delta), "trainer.max_steps=60", name=f"heldout{delta}")
    emitted = rows_as_documents(run, 60)
    domain = get_task("domain", {"length": DOC_LENGTH, "num_documents": NUM_DOCUMENTS})
    general = get_task("general", {"length": DOC_LENGTH})
    seed = run.cfg.data.seed
    for name, task in (("domain", domain), ("general", general)):
        if name not in emitted:
            continue
        held_out = {ex.answer for split in ("validation", "test") for ex in task.examples(split, 16, seed)}
        assert emitted[name], name
        assert not held_out & set(emitted[name]), f"{name}: a held-out document was trained on"
    pool = {ex.answer for ex in domain.train_pool()}
    assert set(emitted["domain"]) <= pool
    assert len(emitted["domain"]) > 2 * NUM_DOCUMENTS  # the pool is repeated


def test_the_conformance_settings_use_the_test_pair() -> None:
    from litplug_spt.plugin import SPTPlugin

    from .conftest import PAIR

    assert [setting["overrides"][:2] for setting in SPTPlugin.conformance] == [PAIR, PAIR]
