"""FSP-BCE targets and losses against hand-built and dense references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from litplug_fsp.chunked import BagBCE, CrossEntropy, chunked_linear_loss
from litplug_fsp.idf import row_document_frequency
from litplug_fsp.objectives import fsp_bce_loss, mtp_loss, sample_positions
from litplug_fsp.windows import future_bags

from litplug.api import OutputHead

IGNORE = -100


def bag_sets(bags: torch.Tensor, valid: torch.Tensor) -> list[set[int] | None]:
    """One row's bags as Python sets, None where the position is masked."""
    return [set(b[b >= 0].tolist()) if v else None for b, v in zip(bags, valid)]


def labels_of(sequence: list[int], width: int | None = None) -> torch.Tensor:
    """The shifted labels of one sequence (labels[t] = x[t+1]), right-padded with -100."""
    labels = sequence[1:]
    return torch.tensor([labels + [IGNORE] * ((width or len(labels)) - len(labels))])


def test_window_targets_by_hand() -> None:
    labels = labels_of([5, 6, 7, 8, 9])  # x = 5 6 7 8 9, tau = 3: window of t is x[t+2], x[t+3]
    bags, valid = future_bags(labels, tau=3, edge="truncate")
    assert bag_sets(bags[0], valid[0]) == [{7, 8}, {8, 9}, {9}, None]
    bags, valid = future_bags(labels, tau=3, edge="mask")
    assert bag_sets(bags[0], valid[0]) == [{7, 8}, {8, 9}, None, None]


def test_repeated_tokens_count_once_and_padding_is_never_in_a_bag() -> None:
    labels = labels_of([1, 2, 3, 3, 2, 3], width=8)
    bags, valid = future_bags(labels, tau=4)
    assert bag_sets(bags[0], valid[0]) == [{3, 2}, {3, 2}, {2, 3}, {3}, None, None, None, None]
    row = bags[0, 0]
    assert sorted(row[row >= 0].tolist()) == [2, 3]  # 3 appears twice in the window, once in the bag


def test_windows_that_cross_a_document_boundary_are_masked_by_default() -> None:
    eos = 99
    labels = labels_of([1, 2, eos, 4, 5, 6])  # x = 1 2 EOS 4 5 6
    bags, valid = future_bags(labels, tau=4, eos_id=eos)  # boundary="mask"
    assert bag_sets(bags[0], valid[0]) == [None, None, {5, 6}, {6}, None]
    bags, valid = future_bags(labels, tau=4, eos_id=eos, boundary="truncate")
    assert bag_sets(bags[0], valid[0]) == [{eos}, None, {5, 6}, {6}, None]
    bags, valid = future_bags(labels, tau=4, eos_id=eos, boundary="truncate", edge="mask")
    assert bag_sets(bags[0], valid[0]) == [None, None, None, None, None]
    bags, valid = future_bags(labels, tau=4, eos_id=None)  # document_boundary: cross
    assert bag_sets(bags[0], valid[0])[:2] == [{eos, 4, 5}, {4, 5, 6}]


@pytest.mark.parametrize("boundary", ["mask", "truncate"])
def test_a_position_whose_target_is_eos_gets_no_bag_from_the_next_document(boundary: str) -> None:
    # the issue's case: packed "... 6 EOS | BOS 7 8 9"; position 2's target is the EOS, its window
    # [BOS, 7] belongs to the next document (it used to get the bag {BOS, 7})
    bags, valid = future_bags(torch.tensor([[5, 6, 2, 1, 7, 8, 9]]), 3, eos_id=2, boundary=boundary)
    sets = bag_sets(bags[0], valid[0])
    assert sets[2] is None
    assert sets[1] == ({2} if boundary == "truncate" else None)  # the window [EOS, BOS] crosses after the EOS
    assert sets[3] == {7, 8}  # inside the next document: unaffected


def test_positions_without_an_ntp_target_get_no_aux_loss() -> None:
    labels = torch.tensor([[IGNORE, IGNORE, 7, 8, 9, IGNORE]])  # loss only on the answer
    _, valid = future_bags(labels, tau=3)
    assert valid[0].tolist() == [False, False, True, True, False, False]


def dense_multi_hot_bce(hidden, weight, bias, labels, tau, token_weights=None):
    """The definition: BCE of every logit against a materialised [N, V] multi-hot of the raw window."""
    bags, valid = future_bags(labels, tau)
    vocab = weight.shape[0]
    targets = torch.zeros(*labels.shape, vocab, dtype=hidden.dtype)
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            for token in labels[b, t + 1 : t + tau].tolist():  # raw window, repeats included
                if token != IGNORE:
                    targets[b, t, token] = 1.0
    logits = F.linear(hidden, weight, bias)[valid]
    return F.binary_cross_entropy_with_logits(logits, targets[valid], weight=token_weights, reduction="sum")


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-6)])
@pytest.mark.parametrize("idf", [False, True])
def test_chunked_loss_equals_dense_multi_hot_bce_with_equal_gradients(dtype, tol, idf) -> None:
    torch.manual_seed(0)
    vocab, width = 11, 9
    labels = torch.randint(0, 4, (3, width))  # few distinct ids: windows repeat tokens
    labels[0, 6:] = IGNORE
    labels[2, :2] = IGNORE
    hidden = torch.randn(3, width, 5, dtype=dtype, requires_grad=True)
    weight = torch.randn(vocab, 5, dtype=dtype, requires_grad=True)
    bias = torch.randn(vocab, dtype=dtype, requires_grad=True)
    token_weights = torch.rand(vocab, dtype=dtype) + 0.5 if idf else None

    dense = dense_multi_hot_bce(hidden, weight, bias, labels, 4, token_weights)
    dense_grads = torch.autograd.grad(dense, [hidden, weight, bias])

    bags, valid = future_bags(labels, 4)
    chunked = chunked_linear_loss(hidden[valid], weight, bias, BagBCE(bags[valid], token_weights),
                                  chunk_elements=2 * vocab)  # 2 positions per chunk: many chunks
    chunked_grads = torch.autograd.grad(chunked, [hidden, weight, bias])

    assert chunked.dtype == dtype
    torch.testing.assert_close(chunked, dense, rtol=tol, atol=tol)
    for ours, theirs in zip(chunked_grads, dense_grads):
        torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)


def test_fsp_bce_loss_is_the_normalised_dense_loss() -> None:
    torch.manual_seed(1)
    labels = torch.randint(0, 6, (2, 7))
    hidden = torch.randn(2, 7, 4, requires_grad=True)
    lm_head = torch.nn.Linear(4, 6, bias=False)
    head = torch.nn.Identity()
    _, valid = future_bags(labels, 3)
    dense = dense_multi_hot_bce(hidden, lm_head.weight, None, labels, 3) / (valid.sum() * 6)
    ours = fsp_bce_loss(head, OutputHead(lm_head), hidden, labels, tau=3, normalize="mean", chunk_elements=7)
    torch.testing.assert_close(ours, dense)
    ours_sum = fsp_bce_loss(head, OutputHead(lm_head), hidden, labels, tau=3, normalize="sum")
    torch.testing.assert_close(ours_sum, dense * 6)


def test_chunked_cross_entropy_equals_dense_cross_entropy() -> None:
    torch.manual_seed(2)
    hidden = torch.randn(13, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(9, 6, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 9, (13,))
    dense = F.cross_entropy(hidden @ weight.T, targets, reduction="sum")
    ours = chunked_linear_loss(hidden, weight, None, CrossEntropy(targets), chunk_elements=27)
    torch.testing.assert_close(ours, dense)
    for a, b in zip(torch.autograd.grad(ours, [hidden, weight]), torch.autograd.grad(dense, [hidden, weight])):
        torch.testing.assert_close(a, b)


def test_mtp_heads_predict_the_tokens_after_next() -> None:
    torch.manual_seed(3)
    labels = torch.randint(0, 8, (2, 10))
    labels[1, 7:] = IGNORE
    hidden = torch.randn(2, 10, 4)
    lm_head = torch.nn.Linear(4, 8, bias=False)
    heads = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)])
    expected = 0.0
    for k, head in enumerate(heads, start=1):  # head k at t: x[t+k+1] = labels[t+k]
        logits = lm_head(head(hidden))[:, :-k]
        targets = labels[:, k:].masked_fill(labels[:, :-k] == IGNORE, IGNORE)
        expected = expected + F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
    torch.testing.assert_close(mtp_loss(heads, OutputHead(lm_head), hidden, labels, chunk_elements=16), expected)


@pytest.mark.parametrize("transform", [(0.25, None), (1.0, 2.0), (3.0, 1.5)], ids=["scaled", "softcapped", "both"])
def test_chunked_losses_apply_the_models_logit_scale_and_softcap(transform: tuple[float, float | None]) -> None:
    """Loss and gradients through a scaled / soft-capped head equal the dense computation (float64)."""
    torch.manual_seed(4)
    projection = torch.nn.Linear(6, 9, bias=True).double()
    out = OutputHead(projection, *transform)
    hidden = torch.randn(13, 6, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 9, (13,))
    bags = torch.rand(13, 9).argsort(dim=1)[:, :3]  # distinct ids per row, as future_bags makes them
    bags[::4, 2] = -1  # and some shorter bags
    params = [hidden, projection.weight, projection.bias]
    for kernel, dense_fn in [
        (CrossEntropy(targets), lambda z: F.cross_entropy(z, targets, reduction="sum")),
        (BagBCE(bags), lambda z: F.binary_cross_entropy_with_logits(
            z, torch.zeros_like(z).scatter_(1, bags.clamp(min=0), (bags >= 0).double()), reduction="sum")),
    ]:
        ours = chunked_linear_loss(hidden, projection.weight, projection.bias, kernel, chunk_elements=20,
                                   logit_scale=out.scale, softcap=out.softcap)
        dense = dense_fn(out.logits(hidden))
        torch.testing.assert_close(ours, dense)
        for a, b in zip(torch.autograd.grad(ours, params), torch.autograd.grad(dense, params)):
            torch.testing.assert_close(a, b)


def test_sampled_positions_are_a_subset_of_at_most_k_per_row() -> None:
    valid = torch.rand(4, 20) < 0.6
    keep = sample_positions(3, torch.Generator().manual_seed(0))(valid)
    assert not (keep & ~valid).any()
    assert (keep.sum(1) == valid.sum(1).clamp(max=3)).all()
    again = sample_positions(3, torch.Generator().manual_seed(0))(valid)
    assert torch.equal(keep, again)


def test_idf_counts_rows_not_occurrences() -> None:
    rows = torch.tensor([[1, 2, 2, 0, 0, 3], [2, 3, 4, 5, 0, 4]]).numpy()  # tokens | n_prompt | length
    assert row_document_frequency(rows, 6).tolist() == [0, 1, 2, 1, 1, 1]


def test_idf_weights_of_a_run_favour_rare_tokens(tiny_tokenizer) -> None:
    from litplug_fsp.idf import idf_weights

    from litplug.testing import tiny_config

    weights = idf_weights(tiny_config(), tiny_tokenizer, len(tiny_tokenizer))
    vocab = tiny_tokenizer.get_vocab()
    assert weights.mean().item() == pytest.approx(1.0)
    assert weights[vocab["="]] == weights.min()  # in every row
    assert weights[vocab["<unk>"]] == weights.max()  # in none
    assert weights[vocab["7"]] < weights[vocab["<unk>"]]
