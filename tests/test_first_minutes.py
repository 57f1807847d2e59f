"""What a newcomer sees: a first line at once, a bar on a terminal and plain lines in a log, no known
third-party noise, pictures in MLflow, every metric at the step that produced it."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import warnings
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
from helpers import LITPLUG, tiny_args

from litplug import quiet
from litplug.cli import main
from litplug.progress import use_bar
from litplug.testing import run_training

ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}


def _train_on(tmp_path: Path, terminal: bool, *extra: str) -> str:
    """``litplug train`` with stdout on a pseudo-terminal (as a person at a shell) or a pipe (CI, a log)."""
    args = [*LITPLUG, "train", *tiny_args(tmp_path / "runs", cache=tmp_path / "cache"), *extra]
    if not terminal:
        done = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # a terminal has a size
    proc = subprocess.Popen(args, stdout=follower, stderr=subprocess.DEVNULL, env=ENV)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=300) == 0
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_progress_is_a_bar_on_a_terminal_and_lines_in_a_log(tmp_path: Path) -> None:
    on_terminal = _train_on(tmp_path, True)
    assert "Training" in on_terminal and "4/4" in on_terminal and "loss=" in on_terminal  # tqdm: steps of max
    assert "step 2/4" not in on_terminal
    in_log = _train_on(tmp_path / "b", False)
    assert "step 1/4" in in_log and "step 4/4" in in_log and "\r" not in in_log and "Training" not in in_log
    assert "step 4/4" in _train_on(tmp_path / "c", True, "trainer.progress=lines", "run.name=forced")


def test_the_progress_switch(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    with open(follower, "w") as terminal, open(tmp_path / "log", "w") as log:
        assert use_bar("auto", terminal) and not use_bar("auto", log)
        assert use_bar("bar", log) and not use_bar("lines", terminal)
    os.close(leader)


def test_first_line_comes_before_torch_and_lightning_are_imported(tmp_path: Path) -> None:
    """The command says what it is doing before the seconds of importing torch and Lightning."""
    code = ("import builtins, sys\n"
            "def first(*a, **k):\n"
            "    sys.__stdout__.write(f'FIRST {a[0]!r} torch={\"torch\" in sys.modules} '\n"
            "                         f'lightning={\"lightning\" in sys.modules}\\n'); sys.__stdout__.flush()\n"
            "    raise SystemExit(0)\n"
            "builtins.print = first\n"
            "from litplug.cli import main\n"
            f"main(['train', *{tiny_args(tmp_path)!r}])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "FIRST \"litplug: training 'run'" in done.stdout and "torch=False lightning=False" in done.stdout


def test_known_benign_warnings_are_filtered_and_others_still_show() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # show everything (and every time), except what quiet filters
        quiet.install()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use something else", stacklevel=1)
        warnings.warn("Your `IterableDataset` has `__len__` defined. In combination with ...", stacklevel=1)
        warnings.warn("litplug: warning: something real", stacklevel=1)
        warnings.warn("deprecated in torch", DeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["litplug: warning: something real", "deprecated in torch"]


def test_a_training_log_has_no_known_noise(tmp_path: Path) -> None:
    done = subprocess.run([*LITPLUG, "train", *tiny_args(tmp_path)], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    for noise in ("LeafSpec", "IterableDataset", "litlogger", "Writing model shards"):
        assert noise not in log, noise
    assert done.stdout.startswith("litplug: training 'run'")


def _history(client: mlflow.MlflowClient, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def test_metrics_sit_at_the_step_that_produced_them_and_pictures_are_logged(tmp_path: Path,
                                                                            litplug_data_cache: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = run_training(tmp_path / "runs", cache_dir=litplug_data_cache, overrides=[
        "tracking.enabled=true", f"tracking.uri={uri}", "trainer.max_steps=4", "trainer.log_every_n_steps=2",
        "trainer.val_check_interval=2"])
    client, run_id = mlflow.MlflowClient(tracking_uri=uri), run.results["mlflow_run_id"]
    assert _history(client, run_id, "train/loss") == [2, 4]
    assert _history(client, run_id, "val/arithmetic/loss") == [2, 4]
    assert _history(client, run_id, "eval/arithmetic/exact_match") == [4]
    assert "step" not in run.results["metrics"] and "step" not in client.get_run(run_id).data.metrics
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"loss_curve.png", "eval_summary.md", "results.json"} <= artifacts
    assert (run.run_dir / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (run.run_dir / "eval_summary.md").read_text()
    assert "| arithmetic | 4 | exact_match |" in summary and "| prompt | reference | model |" in summary
    # `litplug eval RUN` logs at the run's final step too, beside the end-of-training evaluation
    assert main(["eval", str(run.run_dir)]) == 0
    assert _history(client, run_id, "eval/arithmetic/exact_match") == [4, 4]


def test_a_resumed_run_draws_its_whole_loss_history(tmp_path: Path, litplug_data_cache: Path) -> None:
    common = ["trainer.log_every_n_steps=2", "trainer.val_check_interval=2", "trainer.checkpoint_every_n_steps=2"]
    run_training(tmp_path / "runs", cache_dir=litplug_data_cache, overrides=[*common, "trainer.max_steps=4"])
    run = run_training(tmp_path / "runs", cache_dir=litplug_data_cache, overrides=[*common, "trainer.max_steps=6"])
    state = json.loads(run.dir.loss_history.read_text())
    assert [p[0] for p in state["train/loss"]] == [2, 4, 6]
    assert [p[0] for p in state["val/arithmetic/loss"]] == [2, 4, 6]  # 4: validated after the checkpoint


def test_summary_hint_fits_the_tracking_uri() -> None:
    from litplug.tracking import ui_hint

    served = ui_hint("http://127.0.0.1:5005", "abc", "7")
    assert served == "Open it in the MLflow UI: http://127.0.0.1:5005/#/experiments/7/runs/abc"
    assert "mlflow ui --backend-store-uri sqlite:////x/mlflow.db" in ui_hint("sqlite:////x/mlflow.db", "abc", "7")


def test_eval_of_a_run_whose_training_plugin_is_gone_says_how_to_go_on(tmp_path: Path, litplug_data_cache: Path,
                                                                       install_fake_plugin: Callable,
                                                                       capsys: pytest.CaptureFixture) -> None:
    site = install_fake_plugin("aux_only", "import litplug\nclass Plugin:\n    @litplug.hookimpl\n"
                                           "    def after_optimizer_step(self, step): pass\n")
    run = run_training(tmp_path / "runs", cache_dir=litplug_data_cache, overrides=["plugins.aux_only={}"])
    for info in site.glob("litplug_aux_only-*.dist-info"):  # uninstall it
        for f in info.iterdir():
            f.unlink()
        info.rmdir()
    assert main(["eval", str(run.run_dir)]) == 2
    err = capsys.readouterr().err
    assert "'aux_only'" in err and "not installed" in err and "plugins.aux_only.enabled=false" in err
    assert main(["eval", str(run.run_dir), "plugins.aux_only.enabled=false"]) == 0
    assert json.loads((run.run_dir / "eval.json").read_text())["arithmetic"]["num_examples"] == 4
