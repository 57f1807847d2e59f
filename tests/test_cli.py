"""The `litplug` command end to end, and every bad input the core must refuse cleanly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from helpers import LITPLUG, litplug, tiny_args

from litplug.cli import main, parse
from litplug.testing import TINY_OVERRIDES


def test_train_end_to_end_with_mlflow_sqlite(tmp_path: Path) -> None:
    args = [a for a in tiny_args(tmp_path) if a != "tracking.enabled=false"]
    done = litplug("train", *args, "trainer.max_steps=6", "eval.num_examples=8")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Exported model" in done.stdout and "mlflow ui --backend-store-uri sqlite:///" in done.stdout
    run_dir = tmp_path / "run"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["global_step"] == 6 and "eval/arithmetic/exact_match" in results["metrics"]

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(results["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.max_steps"] == "6" and run.data.params["data.seq_len"] == "16"
    assert {"train/loss", "train/lm", "val/arithmetic/loss", "eval/arithmetic/exact_match"} <= set(run.data.metrics)
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 6  # every step logged
    assert run.data.tags["litplug.version"] and run.data.tags["litplug.plugins"] == "none"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "results.json", "model"} <= artifacts
    # artifacts live beside the sqlite store, not in ./mlruns of wherever the command ran
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())

    # The export is a plain HF model: it loads with litplug made unimportable.
    code = ("import sys; sys.modules['litplug'] = None\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f"m = AutoModelForCausalLM.from_pretrained(r'{run_dir / 'export'}', local_files_only=True)\n"
            f"t = AutoTokenizer.from_pretrained(r'{run_dir / 'export'}', local_files_only=True)\n"
            "print(m(t('1 2 + 3 4 =', return_tensors='pt').input_ids).logits.shape)")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-2000:]


def test_plugins_json_lists_installed_plugins() -> None:
    done = litplug("plugins", "--json")
    assert done.returncode == 0, done.stderr
    for record in json.loads(done.stdout):
        assert {"name", "distribution", "version", "status", "hooks"} <= set(record)


def _bad(tmp_path: Path, *extra: str, config: str | None = None) -> tuple[int, str]:
    """Run `litplug train` in-process with a bad input; returns (exit code, stderr)."""
    import io
    from contextlib import redirect_stderr

    err = io.StringIO()
    argv = ["train", *([config] if config else []), *TINY_OVERRIDES, f"run.output_dir={tmp_path / 'runs'}", *extra]
    with redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "hello world"}\n{"text": "fine"}\n{"text": broken}\n')
    return path


BAD_INPUTS = {
    "unknown key": (["trainer.max_stepz=3"], "trainer.max_stepz.*max_steps"),
    "wrong type": (["trainer.max_steps=lots"], "trainer.max_steps"),
    "plugin not installed": (["plugins.nonexistent_method={}"], "nonexistent_method.*not installed"),
    "unknown task": (["data.sources=[{task: pathstar}]"], "pathstar.*path_star"),
    "missing data file": (["data.sources=[{path: /no/such/file.jsonl}]"], "/no/such/file.jsonl.*does not exist"),
    "k > n": (["eval.n=2", "eval.k=[4]"], "eval.k"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_and_writes_no_run(tmp_path: Path, case: str) -> None:
    extra, pattern = BAD_INPUTS[case]
    code, err = _bad(tmp_path, *extra)
    assert code == 2, err
    assert re.search(pattern, err), err
    assert not (tmp_path / "runs" / "run").exists()


def test_missing_config_file(tmp_path: Path) -> None:
    code, err = _bad(tmp_path, config=str(tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml" in err and "not found" in err


def test_malformed_jsonl_names_file_and_line(tmp_path: Path, jsonl: Path) -> None:
    code, err = _bad(tmp_path, f"data.sources=[{{path: {jsonl}, validation_fraction: 0.5}}]", "data.tokenizer=byte")
    assert code == 2 and str(jsonl) in err and "line 3" in err
    assert not (tmp_path / "runs" / "run").exists()


def test_unwritable_output_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, err = _bad(tmp_path, f"run.output_dir={blocker / 'runs'}")
    assert code == 2 and "run.output_dir" in err and "not writable" in err


def test_bad_input_leaves_an_earlier_run_untouched(litplug_run, tmp_path: Path) -> None:
    earlier = litplug_run()
    before = {p: p.stat().st_mtime_ns for p in earlier.run_dir.rglob("*") if p.is_file()}
    code, _ = _bad(tmp_path, f"run.output_dir={earlier.run_dir.parent}", "trainer.max_stepz=1")
    assert code == 2
    assert {p: p.stat().st_mtime_ns for p in earlier.run_dir.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("source, pattern", [
    ("import no_such_module_xyz\n", "broken.*no_such_module_xyz"),
    ("import litplug\nclass Plugin:\n    litplug_requires = '>=5'\n", "broken.*supports litplug >=5"),
])
def test_broken_or_incompatible_plugin_exits_2(tmp_path: Path, install_fake_plugin, source: str, pattern: str) -> None:
    install_fake_plugin("broken", source)
    code, err = _bad(tmp_path, "plugins.broken={}")
    assert code == 2 and re.search(pattern, err), err
    assert not (tmp_path / "runs" / "run").exists()


def test_exclusive_hook_conflict_exits_2(tmp_path: Path, install_fake_plugin) -> None:
    source = ("import litplug\nclass Plugin:\n    @litplug.hookimpl\n"
              "    def lm_loss(self, hidden):\n        return None\n")
    install_fake_plugin("fused_a", source)
    install_fake_plugin("fused_b", source)
    code, err = _bad(tmp_path, "plugins.fused_a={}", "plugins.fused_b={}")
    assert code == 2 and "'fused_a' and 'fused_b'" in err and "lm_loss" in err


@pytest.mark.parametrize("argv", [
    ["eval", "RUN", "eval.num_samples=4", "--out", "x.json", "eval.temperature=0.5"],
    ["eval", "RUN", "--out", "x.json", "eval.num_samples=4", "eval.temperature=0.5"],
    ["eval", "--out", "x.json", "RUN", "eval.num_samples=4", "eval.temperature=0.5"],
])
def test_overrides_may_come_before_or_after_options(argv: list[str]) -> None:
    args = parse(argv)
    assert (args.target, args.out, args.overrides) == ("RUN", "x.json", ["eval.num_samples=4", "eval.temperature=0.5"])


def test_stray_argument_after_options_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "RUN", "--out", "x.json", "oops"]) == 2
    assert "unrecognized arguments: oops" in capsys.readouterr().err


def test_runs_started_together_share_a_new_mlflow_store(tmp_path: Path, litplug_data_cache: Path) -> None:
    """Two runs at once against a store that does not exist yet: one creates the schema and the
    experiment, the other waits for it (without the lock, MLflow's migration fails in one of them)."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    procs = []
    for i in range(2):
        args = [a for a in tiny_args(tmp_path, f"r{i}", litplug_data_cache) if a != "tracking.enabled=false"]
        procs.append(subprocess.Popen([*LITPLUG, "train", *args, "trainer.max_steps=2", "eval.num_examples=2",
                                       "tracking.experiment=together"], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("together")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs if r.info.status == "FINISHED") == ["r0", "r1"]
