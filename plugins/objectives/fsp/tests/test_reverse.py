"""Reversed batches (training the teacher) and the FSP-RevLM targets read from them."""

from __future__ import annotations

import torch
from litplug_fsp.heads import head_for
from litplug_fsp.objectives import fsp_revlm_loss
from litplug_fsp.reverse import future_summary_targets, reverse_batch, sequence_lengths

IGNORE = -100
PAD = 0


def batch_of(rows: list[list[int]], width: int, first_target: list[int] | None = None) -> dict[str, torch.Tensor]:
    """The core's layout for whole sequences s (labels[t] = s[t+1]); targets before first_target[i] are -100."""
    input_ids = torch.full((len(rows), width), PAD)
    labels = torch.full((len(rows), width), IGNORE)
    attention = torch.zeros(len(rows), width, dtype=torch.long)
    for i, s in enumerate(rows):
        n_in = min(len(s), width)
        input_ids[i, :n_in] = torch.tensor(s[:n_in])
        labels[i, : len(s) - 1] = torch.tensor(s[1:])
        attention[i, :n_in] = 1
        if first_target:
            labels[i, : first_target[i]] = IGNORE
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention, "answer_mask": labels != IGNORE}


def test_reverse_batch_by_hand() -> None:
    batch = batch_of([[1, 5, 6, 7, 2], [1, 8, 9, 3, 4, 2]], width=5)  # the second row fills the row to the brim
    out = reverse_batch(batch)
    assert out["input_ids"].tolist() == [[2, 7, 6, 5, 1], [2, 4, 3, 9, 8]]
    assert out["labels"].tolist() == [[7, 6, 5, 1, IGNORE], [4, 3, 9, 8, 1]]
    assert out["attention_mask"].tolist() == batch["attention_mask"].tolist()
    assert sequence_lengths(batch).tolist() == [5, 6]


def test_reversing_twice_is_the_identity() -> None:
    torch.manual_seed(0)
    rows = [torch.randint(3, 20, (n,)).tolist() for n in (3, 7, 9, 10)]
    batch = batch_of(rows, width=9)
    twice = reverse_batch(reverse_batch(batch))
    for key in ("input_ids", "labels", "answer_mask"):
        assert torch.equal(twice[key], batch[key]), key


def test_reversed_loss_mask_mirrors_the_forward_pairs() -> None:
    batch = batch_of([[1, 10, 11, 12, 13, 2]], width=8, first_target=[3])  # only 12->13 and 13->EOS are trained
    out = reverse_batch(batch)
    assert out["input_ids"][0, :5].tolist() == [2, 13, 12, 11, 10]
    assert out["labels"][0].tolist() == [13, 12, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE]


def test_revlm_target_covers_exactly_the_future_after_next() -> None:
    torch.manual_seed(0)
    teacher_layer = torch.nn.Embedding(30, 8)

    def teacher_summaries(batch):  # a causal "teacher": cumulative sum of embeddings, right to left
        hidden = teacher_layer(reverse_batch(batch)["input_ids"]).cumsum(dim=1)
        return future_summary_targets(hidden, sequence_lengths(batch), batch["labels"])

    s = [1, 11, 12, 13, 14, 15, 2]
    base, valid = teacher_summaries(batch_of([s], width=8))
    assert valid[0].tolist() == [True] * 5 + [False] * 3  # t <= L-3 = 4
    t = 2
    for i in range(len(s)):
        changed = list(s)
        changed[i] = 20
        targets, _ = teacher_summaries(batch_of([changed], width=8))
        same = torch.equal(targets[0, t], base[0, t])
        assert same == (i < t + 2), f"perturbing x[{i}] {'did not change' if same else 'changed'} target {t}"


def test_reverse_lm_teacher_gets_no_gradient(tiny_model, tiny_batch) -> None:
    teacher = tiny_model
    teacher.requires_grad_(False)
    hidden = torch.randn(*tiny_batch["input_ids"].shape, teacher.config.hidden_size, requires_grad=True)
    head = head_for(teacher, "block", out_size=teacher.config.hidden_size)
    loss = fsp_revlm_loss(head, teacher, tiny_batch, hidden)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0
    assert all(p.grad is not None for p in head.parameters())
