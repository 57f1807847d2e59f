"""The batch transforms: pause-pretraining insertion and pause-finetuning, on the core's batch layout."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from litplug_pause import PauseConfig, PausePlugin
from litplug_pause.pretrain import insert_pauses, pause_slots

from litplug.api import to_model_batch
from litplug.testing import step_context

PAUSE, PAD = 99, 0


def packed_batch(rows: int = 6, width: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    """Plain-text rows (n_prompt 0, full length) of distinct ids, as the core builds them."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, 90, (rows, width + 1), generator=g)
    return to_model_batch({"tokens": tokens, "n_prompt": torch.zeros(rows, dtype=torch.long),
                           "length": torch.full((rows,), width + 1)})


def row_tokens(batch: dict[str, torch.Tensor], i: int) -> list[int]:
    """The unshifted row: inputs plus the last target when it is real."""
    ids = batch["input_ids"][i].tolist()
    last = int(batch["labels"][i, -1])
    return ids + ([last] if last != -100 else [])


def test_insertion_keeps_length_order_and_count() -> None:
    batch = packed_batch()
    before = copy.deepcopy(batch)
    slots = pause_slots(6, 40, 0.1, "fixed", torch.Generator().manual_seed(1))
    insert_pauses(batch, PAUSE, PAD, slots)
    for key in ("input_ids", "labels", "attention_mask", "answer_mask"):
        assert batch[key].shape == before[key].shape
    for i in range(6):
        new = batch["input_ids"][i].tolist()
        assert new[0] == before["input_ids"][i, 0]  # the row's first token is never displaced
        assert new.count(PAUSE) == 4  # round(0.1 * 40) pause slots, all among real tokens here
        without = [t for t in new if t != PAUSE]
        assert without == before["input_ids"][i, : len(without)].tolist()  # a prefix, order kept


def test_bernoulli_sampling_rate() -> None:
    slots = pause_slots(200, 100, 0.1, "bernoulli", torch.Generator().manual_seed(0))
    assert not slots[:, 0].any()
    assert abs(slots[:, 1:].float().mean().item() - 0.1) < 0.01


def test_no_loss_targets_a_pause_and_pause_inputs_predict_real_tokens() -> None:
    # row bos a b c d eos (6 tokens, width 5); pauses in slots 2 and 3 -> bos a P P b c
    batch = to_model_batch({"tokens": torch.tensor([[1, 10, 11, 12, 13, 2]]), "n_prompt": torch.tensor([0]),
                            "length": torch.tensor([6])})
    slots = torch.tensor([[False, False, True, True, False, False]])
    insert_pauses(batch, PAUSE, PAD, slots)
    assert batch["input_ids"].tolist() == [[1, 10, PAUSE, PAUSE, 11]]
    assert batch["labels"].tolist() == [[10, -100, -100, 11, 12]]  # the 2nd pause input predicts b


def test_loss_term_count_is_targets_minus_pause_targets() -> None:
    batch = packed_batch(rows=8, width=32)
    slots = pause_slots(8, 32, 0.25, "bernoulli", torch.Generator().manual_seed(3))
    insert_pauses(batch, PAUSE, PAD, slots)
    labels, ids = batch["labels"], batch["input_ids"]
    assert not (labels == PAUSE).any()
    pause_targets = (ids[:, 1:] == PAUSE).sum() + (labels[:, -1] == -100).sum()  # last target may be a pause
    assert (labels != -100).sum() == ids.numel() - pause_targets


def test_padded_rows_keep_prompt_masks_and_get_no_pause_in_padding(tiny_batch: dict[str, torch.Tensor]) -> None:
    before = copy.deepcopy(tiny_batch)
    rows, width = tiny_batch["input_ids"].shape
    slots = pause_slots(rows, width, 0.3, "bernoulli", torch.Generator().manual_seed(0))
    insert_pauses(tiny_batch, PAUSE, PAD, slots)
    for i in range(rows):
        real = int(before["attention_mask"][i].sum())
        new = tiny_batch["input_ids"][i]
        n_real = int(tiny_batch["attention_mask"][i].sum())
        assert (new[n_real:] == PAD).all() and (new[:n_real] != PAD).all()
        assert n_real >= real  # the pauses lengthen the row (until the width truncates it)
        if n_real < width:  # not truncated: every token kept, pauses only between them (none after the end)
            assert new[new != PAUSE][:real].tolist() == before["input_ids"][i, :real].tolist()
            assert int(new[n_real - 1]) == int(before["input_ids"][i, real - 1])


def test_finetune_layout_prompt_pauses_answer(tiny_batch: dict[str, torch.Tensor]) -> None:
    before = copy.deepcopy(tiny_batch)
    m = 3
    from litplug_pause.finetune import append_pauses

    append_pauses(tiny_batch, PAUSE, PAD, m)
    assert tiny_batch["input_ids"].shape[1] == before["input_ids"].shape[1] + m
    for i in range(before["input_ids"].shape[0]):
        answer_pos = before["answer_mask"][i].nonzero().flatten()
        p, last = int(answer_pos[0]), int(answer_pos[-1])  # p: the last prompt token, predicts the answer
        old_ids, new_ids = before["input_ids"][i], tiny_batch["input_ids"][i]
        assert new_ids[: p + 1].tolist() == old_ids[: p + 1].tolist()
        assert new_ids[p + 1 : p + 1 + m].tolist() == [PAUSE] * m
        assert new_ids[p + 1 + m : p + 1 + m + (last - p)].tolist() == old_ids[p + 1 : last + 1].tolist()
        labels = tiny_batch["labels"][i]
        answer = before["labels"][i, p : last + 1]
        assert labels[p + m : last + 1 + m].tolist() == answer.tolist()  # the last pause predicts answer[0]
        assert (labels[: p + m] == -100).all() and (labels[last + 1 + m :] == -100).all()
        assert tiny_batch["answer_mask"][i].sum() == before["answer_mask"][i].sum()
        assert tiny_batch["attention_mask"][i].sum() == before["attention_mask"][i].sum() + m


def test_finetune_loss_ignores_prompt_and_pause_labels(pause_tokenizer: Any, pause_model: Any,
                                                       tiny_batch: dict[str, torch.Tensor],
                                                       fake_ctx: Any) -> None:
    plugin = PausePlugin(PauseConfig(num_pauses=4))
    tampered = copy.deepcopy(tiny_batch)
    prompt_targets = ~tampered["answer_mask"] & (tampered["labels"] != -100)
    tampered["labels"][prompt_targets] = 5  # change every prompt target
    losses = []
    for batch in (tiny_batch, tampered):
        plugin.transform_batch(batch=batch, stage="train", ctx=fake_ctx(pause_tokenizer))
        logits = pause_model(batch["input_ids"]).logits
        losses.append(F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100))
    assert torch.equal(tiny_batch["labels"], tampered["labels"])
    assert losses[0].item() == losses[1].item()
    answer_targets = tiny_batch["labels"] != -100
    assert torch.equal(answer_targets, tiny_batch["answer_mask"])


def test_m0_finetune_is_identity_on_answer_only_batches(tiny_tokenizer: Any, fake_ctx: Any) -> None:
    from litplug.api import build_rows, get_task

    examples = get_task("arithmetic", {"digits": 2}).examples("train", 8, 0)
    rows = torch.from_numpy(build_rows(tiny_tokenizer, examples, 16, "arithmetic"))
    raw = {"tokens": rows[:, :-2], "n_prompt": rows[:, -2], "length": rows[:, -1]}
    standard = to_model_batch(raw, loss_on="answer")
    batch = to_model_batch(raw, loss_on="answer")
    PausePlugin(PauseConfig(token="<pause>", num_pauses=0)).configure_tokenizer(tokenizer=tiny_tokenizer)
    PausePlugin(PauseConfig(num_pauses=0)).transform_batch(batch=batch, stage="train",
                                                          ctx=fake_ctx(tiny_tokenizer))
    assert batch.keys() == standard.keys()
    assert all(torch.equal(batch[k], standard[k]) for k in standard)


@pytest.mark.parametrize("mode", ["pretrain", "finetune"])
def test_pause_embedding_gets_a_gradient(mode: str, pause_tokenizer: Any, pause_model: Any,
                                         tiny_batch: dict[str, torch.Tensor]) -> None:
    plugin = PausePlugin(PauseConfig(mode=mode, num_pauses=2, pretrain_fraction=0.2))
    ctx = step_context(pause_model, pause_tokenizer, "train", tiny_batch, plugins={"pause": plugin})  # a real one
    plugin.transform_batch(batch=tiny_batch, stage="train", ctx=ctx)
    pause_id = pause_tokenizer.convert_tokens_to_ids("<pause>")
    assert (tiny_batch["input_ids"] == pause_id).any()
    logits = pause_model(tiny_batch["input_ids"]).logits
    F.cross_entropy(logits.flatten(0, 1), tiny_batch["labels"].flatten(), ignore_index=-100).backward()
    grad = pause_model.get_input_embeddings().weight.grad[pause_id]
    assert grad.abs().sum() > 0


def test_pretrain_draws_depend_on_step_and_microbatch_only(pause_tokenizer: Any, fake_ctx: Any) -> None:
    def draw(plugin: PausePlugin, step: int, stage: str = "train") -> torch.Tensor:
        batch = packed_batch()
        plugin.transform_batch(batch=batch, stage=stage, ctx=fake_ctx(pause_tokenizer, step=step))
        return batch["input_ids"]

    cfg = PauseConfig(mode="pretrain")
    a, b = PausePlugin(cfg), PausePlugin(cfg)
    first = [draw(a, 5), draw(a, 5), draw(a, 6)]  # two micro-batches of step 5, then step 6
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    assert torch.equal(draw(b, 6), first[2])  # a fresh (resumed) plugin at step 6 draws the same
    assert torch.equal(draw(a, 7, "validate"), draw(b, 9, "validate"))  # one validation pattern
