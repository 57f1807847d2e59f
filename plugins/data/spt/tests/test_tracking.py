"""What a tracked run logs: E = T * delta / |D| exactly, the realised epochs near it, and a curve
that the law fitter reads back from MLflow."""

from __future__ import annotations

import json
import math

import mlflow
import pytest
from litplug_spt.curves import curve_from_run

from .conftest import DOC_LENGTH, NUM_DOCUMENTS, PAIR, SEQ_LEN

DELTA = 0.25
BATCH = 8  # the test kit's data.batch_size


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory, litplug_data_cache):
    from litplug.testing import run_training

    out = tmp_path_factory.mktemp("tracked")
    return run_training(out, {"spt": {"delta": DELTA}},
                        [*PAIR, "tracking.enabled=true", "trainer.max_steps=8", "trainer.val_check_interval=2"],
                        cache_dir=litplug_data_cache)


def history(run, key: str) -> dict[int, float]:
    info = json.loads((run.run_dir / "mlflow_run.json").read_text())
    return {m.step: m.value for m in mlflow.MlflowClient(info["tracking_uri"]).get_metric_history(info["run_id"], key)}


def test_logged_epochs_equal_tokens_times_delta_over_domain_size(tracked_run) -> None:
    tokens, epochs = history(tracked_run, "spt/tokens"), history(tracked_run, "spt/domain_epochs")
    assert len(epochs) == 8 and tokens.keys() == epochs.keys()
    # |D|: 12 distinct documents of 15 words + <bos> + <eos>, i.e. 12 rows of seq_len + 1 tokens.
    domain_tokens = NUM_DOCUMENTS * (DOC_LENGTH + 2) * SEQ_LEN / (SEQ_LEN + 1)  # in input tokens, as T
    for step, value in epochs.items():
        assert tokens[step] == step * BATCH * SEQ_LEN  # metrics sit at the optimizer step that produced them
        assert value == pytest.approx(tokens[step] * DELTA / domain_tokens, rel=1e-6)
    planned = epochs[max(epochs)]
    realised = history(tracked_run, "spt/domain_epochs_realised")[max(epochs)]
    draws = 8 * BATCH
    sigma = math.sqrt(draws * DELTA * (1 - DELTA)) / NUM_DOCUMENTS
    assert abs(realised - planned) <= 3 * sigma
    # the core's mixture accounting: the domain's share of the rows drawn, at the end of the run
    drawn = tracked_run.results["metrics"]["data/domain/fraction"] * draws
    assert drawn == pytest.approx(round(drawn))
    assert realised == pytest.approx(drawn / NUM_DOCUMENTS)


def test_curve_is_read_back_from_mlflow(tracked_run) -> None:
    curve, uri = curve_from_run(tracked_run.run_dir)
    test, train = history(tracked_run, "val/domain/loss"), history(tracked_run, "val/domain/train_split_loss")
    assert curve.delta == DELTA and uri.startswith("sqlite:")
    assert sorted(test) == [2, 4, 6, 8]  # validations after global steps 2, 4, 6, 8
    assert curve.tokens.tolist() == pytest.approx([s * BATCH * SEQ_LEN for s in sorted(test)])
    assert curve.test_loss.tolist() == [test[s] for s in sorted(test)]
    assert curve.train_loss.tolist() == [train[s] for s in sorted(test)]
