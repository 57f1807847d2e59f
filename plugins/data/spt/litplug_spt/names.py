"""Metric names the plugin logs (and the fitter reads back), in one place."""

TOKENS_METRIC = "spt/tokens"  # T, training tokens so far (steps x rows per step x seq_len)
EPOCHS_METRIC = "spt/domain_epochs"  # E = T * delta / |D|
REALISED_EPOCHS_METRIC = "spt/domain_epochs_realised"  # domain rows actually drawn / |D|
BEST_STEP_METRIC = "spt/best_step"  # early stopping: step of the exported (best) weights
BEST_LOSS_METRIC = "spt/best_val_loss"


def val_loss_key(domain: str) -> str:
    """The core's held-out (validation split) loss of a source: L_test, and the early-stopping monitor."""
    return f"val/{domain}/loss"


def train_split_loss_key(domain: str) -> str:
    """Loss on the domain's training split: the scaling law's L_train."""
    return f"val/{domain}/train_split_loss"


def test_loss_key(source: str) -> str:
    """Loss on a source's test split, logged once at the end of training."""
    return f"test/{source}/loss"
