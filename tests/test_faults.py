"""Faults that used to lose or corrupt work (issue 15, items 2-6): cross-device checkpoint saves, NaN
weights in a checkpoint, concurrent runs on one directory, a changed config on resume, a moved run."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import torch

from litplug.checkpoints import AtomicCheckpointIO
from litplug.cli import main
from litplug.errors import ConfigError
from litplug.run import run_lock, setup
from litplug.testing import TINY_OVERRIDES, run_training, state_equal

SHM = Path("/dev/shm")


def _other_device_tmpdir(path: Path) -> Path:
    if not SHM.is_dir() or SHM.stat().st_dev == path.stat().st_dev:
        pytest.skip("needs a temp directory on another filesystem than the checkpoint (/dev/shm)")
    return Path(tempfile.mkdtemp(dir=SHM))


@pytest.mark.parametrize("io_class", [AtomicCheckpointIO], ids=["litplug"])
def test_a_crash_during_a_save_with_tmpdir_on_another_filesystem_keeps_the_old_checkpoint(
        io_class: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With $TMPDIR on a tmpfs, Lightning's save was a temp file + shutil.move, i.e. a copy that truncates
    last.ckpt first: a crash mid-copy left it empty. The crash is injected into that copy."""
    tmpdir = _other_device_tmpdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    path = tmp_path / "last.ckpt"
    checkpoint_io = io_class()
    checkpoint_io.save_checkpoint({"step": 1, "w": torch.ones(1000)}, path)

    def crash_mid_copy(src: str, dst: str, *args: object, **kwargs: object) -> None:
        with open(src, "rb") as s, open(dst, "wb") as d:  # what a cross-device move does: truncate, copy
            d.write(s.read()[:100])
        raise OSError("killed mid-copy")

    import fsspec.implementations.local as local

    monkeypatch.setattr(shutil, "copy2", crash_mid_copy)
    monkeypatch.setattr(local.shutil, "move", crash_mid_copy)  # the path Lightning's own save takes
    real_replace = __import__("os").replace

    def crash_instead_of_rename(src: str, dst: str) -> None:
        raise OSError("killed before the rename")

    monkeypatch.setattr("os.replace", crash_instead_of_rename)
    with pytest.raises(OSError, match="killed"):
        checkpoint_io.save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.setattr("os.replace", real_replace)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no partial file left behind
    shutil.rmtree(tmpdir, ignore_errors=True)


def test_lightnings_own_save_truncates_across_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure AtomicCheckpointIO exists for, shown on Lightning's own CheckpointIO (so the test
    above is a real regression test, not one that cannot fail)."""
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    tmpdir = _other_device_tmpdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    path = tmp_path / "last.ckpt"
    TorchCheckpointIO().save_checkpoint({"step": 1, "w": torch.ones(1000)}, path)

    def crash_mid_copy(src: str, dst: str, *args: object, **kwargs: object) -> None:
        with open(src, "rb") as s, open(dst, "wb") as d:
            d.write(s.read()[:100])
        raise OSError("killed mid-copy")

    import fsspec.implementations.local as local

    def cross_device_move(src: str, dst: str) -> None:  # os.rename fails with EXDEV: shutil copies instead
        crash_mid_copy(src, dst)

    monkeypatch.setattr(local.shutil, "move", cross_device_move)
    with pytest.raises(OSError):
        TorchCheckpointIO().save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    assert path.stat().st_size == 100  # the previous checkpoint is gone
    shutil.rmtree(tmpdir, ignore_errors=True)


NAN_WEIGHTS = """
import torch, litplug

class Plugin:
    @litplug.hookimpl
    def after_optimizer_step(self, ctx, step):
        if step == 3:  # the update of step 3 makes the weights non-finite; its loss was finite
            with torch.no_grad():
                next(ctx.model.parameters()).fill_(float("nan"))
"""


def test_non_finite_weights_are_never_checkpointed(tmp_path: Path, install_fake_plugin) -> None:
    install_fake_plugin("nan_weights", NAN_WEIGHTS)
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["train", *TINY_OVERRIDES, f"run.output_dir={tmp_path}", "trainer.checkpoint_every_n_steps=1",
                     "plugins.nan_weights={}"])
    assert code == 1
    assert "Non-finite weights after step 3" in err.getvalue()
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


NAN_AT_ONCE = """
import litplug

class Plugin:
    @litplug.hookimpl
    def extra_losses(self, ctx, hidden):
        return {"exploding": hidden.sum() * float("nan")}
"""


def test_a_failure_before_any_checkpoint_does_not_promise_one(tmp_path: Path, install_fake_plugin) -> None:
    install_fake_plugin("nan_now", NAN_AT_ONCE)
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["train", *TINY_OVERRIDES, f"run.output_dir={tmp_path}", "plugins.nan_now={}"])
    assert code == 1
    assert "No checkpoint had been written yet" in err.getvalue() and "checkpoint is kept" not in err.getvalue()


def test_a_second_run_on_the_same_directory_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    run = setup(None, [*TINY_OVERRIDES, f"run.output_dir={tmp_path}"])
    first = run_lock(run)
    try:
        err = io.StringIO()
        with redirect_stderr(err):
            code = main(["train", *TINY_OVERRIDES, f"run.output_dir={tmp_path}"])
        assert code == 2
        assert "in use by another `litplug train`" in err.getvalue()
        assert not (tmp_path / "run").exists()
    finally:
        first.release()
    assert main(["train", *TINY_OVERRIDES, f"run.output_dir={tmp_path}"]) == 0  # free again


def test_a_run_killed_during_its_first_checkpoint_write_starts_over(tmp_path: Path,
                                                                    litplug_data_cache: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / ".last.ckpt.x.partial").write_bytes(b"half")  # what a SIGKILL leaves
    (run_dir / "config.yaml").write_text("{}")
    run = run_training(tmp_path, cache_dir=litplug_data_cache)
    assert run.results["global_step"] == 4


def test_a_changed_config_on_resume_is_refused_listing_the_keys(tmp_path: Path, litplug_data_cache: Path) -> None:
    run_training(tmp_path, cache_dir=litplug_data_cache, overrides=["trainer.max_steps=2"])
    before = (tmp_path / "run" / "config.yaml").read_text()
    for change, key in [(["optim.lr=0.1"], "optim.lr: 0.003 -> 0.1"),
                        (["model.hidden_size=48"], "model.hidden_size: 32 -> 48")]:
        with pytest.raises(ConfigError, match="different config") as info:
            run_training(tmp_path, cache_dir=litplug_data_cache, overrides=["trainer.max_steps=2", *change])
        assert key in str(info.value) and "another run.name" in str(info.value)
    assert (tmp_path / "run" / "config.yaml").read_text() == before


def test_extending_a_run_resumes_and_records_the_new_length(tmp_path: Path, litplug_data_cache: Path) -> None:
    full = run_training(tmp_path, cache_dir=litplug_data_cache, name="full",
                        overrides=["trainer.max_steps=6", "optim.schedule=constant"])
    short = run_training(tmp_path, cache_dir=litplug_data_cache, name="ext",
                         overrides=["trainer.max_steps=4", "optim.schedule=constant"])
    assert short.results["global_step"] == 4
    extended = run_training(tmp_path, cache_dir=litplug_data_cache, name="ext",
                            overrides=["trainer.max_steps=6", "optim.schedule=constant"])
    assert extended.results["global_step"] == 6
    assert "max_steps: 6" in (tmp_path / "ext" / "config.yaml").read_text()
    assert not state_equal(full.module.state_dict(), extended.module.state_dict())


def test_a_moved_output_directory_still_resumes_bit_exactly(tmp_path: Path) -> None:
    keep = ["trainer.keep_checkpoints=true", "trainer.max_steps=4"]
    full = run_training(tmp_path / "a", overrides=keep, name="full")
    # an interrupted run in output dir a/ (default data cache a/.cache), then the whole folder moved to b/
    (tmp_path / "a" / "part" / "checkpoints").mkdir(parents=True)
    shutil.copy(full.run_dir / "checkpoints" / "step=2.ckpt", tmp_path / "a" / "part" / "checkpoints" / "last.ckpt")
    shutil.copy(full.run_dir / "config.yaml", tmp_path / "a" / "part" / "config.yaml")
    (tmp_path / "a" / "part" / "config.yaml").write_text(
        (tmp_path / "a" / "part" / "config.yaml").read_text().replace("name: full", "name: part"))
    shutil.move(tmp_path / "a", tmp_path / "b")
    resumed = run_training(tmp_path / "b", overrides=keep, name="part")
    assert not state_equal(full.module.state_dict(), resumed.module.state_dict())
    assert json.loads((tmp_path / "b" / "part" / "results.json").read_text())["global_step"] == 4


def test_a_truncated_last_checkpoint_is_refused_by_name(tmp_path: Path, litplug_data_cache: Path) -> None:
    run_training(tmp_path, cache_dir=litplug_data_cache, overrides=["trainer.max_steps=2"])
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["train", *TINY_OVERRIDES, f"run.output_dir={tmp_path}", f"data.cache_dir={litplug_data_cache}",
                     "trainer.max_steps=2"])
    assert code == 2, err.getvalue()
    assert str(last) in err.getvalue() and "unreadable" in err.getvalue() and "Traceback" not in err.getvalue()
