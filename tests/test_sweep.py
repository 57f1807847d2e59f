"""`litplug sweep`: the grid syntax, the sweep file, the report's statistics (against scipy), and real
sweeps through the CLI: three seeds on two workers tracked as one MLflow parent with three children,
killed mid-way and finished by the same command; two stages with a failing cell; submitit's local mode."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
from helpers import LITPLUG, REPO_ROOT, litplug

from litplug.errors import ConfigError
from litplug.sweep.grid import cell_name, expand, parse_overrides
from litplug.sweep.report import summarise
from litplug.sweep.spec import Cell, Report, load_sweep_file
from litplug.testing import TINY_OVERRIDES

ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
FAST = ["eval.num_examples=8", "trainer.val_check_interval=10", "trainer.checkpoint_every_n_steps=5",
        "trainer.log_every_n_steps=5", "tracking.log_model=false"]


def test_grid_syntax_follows_hydra_multirun() -> None:
    axes, fixed = parse_overrides(["run.seed=0,1,2", "plugins.fsp.tau=range(4,12,4)", "trainer.max_steps=20",
                                   "data.sources=[{task: arithmetic},{task: qa}]", "plugins.fsp={tau: 4, edge: 1}"])
    assert axes == {"run.seed": ["0", "1", "2"], "plugins.fsp.tau": ["4", "8"]}
    assert fixed == ["trainer.max_steps=20", "data.sources=[{task: arithmetic},{task: qa}]",
                     "plugins.fsp={tau: 4, edge: 1}"]
    cells = expand(axes)
    assert len(cells) == 6 and cells[1] == {"run.seed": "0", "plugins.fsp.tau": "8"}
    assert cell_name(cells[1]) == "seed=0_tau=8"
    assert cell_name({"a.x": "1", "b.x": "2"}) == "a.x=1_b.x=2"  # the last parts collide: full keys
    with pytest.raises(ConfigError, match="empty range"):
        parse_overrides(["run.seed=range(3,3)"])


def test_paired_differences_match_scipy(tmp_path: Path) -> None:
    from scipy import stats

    base = {0: 0.50, 1: 0.55, 2: 0.40}
    new = {0: 0.70, 1: 0.60, 2: 0.65}
    cells = []
    for tau, values in (("4", base), ("8", new)):
        for seed, value in values.items():
            directory = tmp_path / f"tau={tau}_seed={seed}"
            directory.mkdir()
            (directory / "results.json").write_text(json.dumps({"metrics": {"eval/x/exact_match": value}}))
            cells.append(Cell("train", directory.name, {"plugins.fsp.tau": tau, "run.seed": str(seed)}, "train", [],
                              directory))
    summary = summarise(cells, Report("train", ["eval/*"], {"plugins.fsp.tau": "4"}), 6)
    row = summary["groups"]["plugins.fsp.tau=8"]["eval/x/exact_match"]
    assert row["n"] == 3 and row["mean"] == pytest.approx(sum(new.values()) / 3)
    assert row["sd"] == pytest.approx(stats.tstd(list(new.values())))
    diff = summary["differences"]["plugins.fsp.tau=8"]["eval/x/exact_match"]
    d = [new[s] - base[s] for s in base]
    low, high = stats.t.interval(0.95, len(d) - 1, loc=sum(d) / 3, scale=stats.sem(d))
    assert (diff["low"], diff["high"]) == (pytest.approx(low), pytest.approx(high))


def test_bad_sweep_files_exit_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - name: a\n    gridd: {run.seed: [0]}\n")
    with pytest.raises(ConfigError, match=r"stages.0: unknown key\(s\) \['gridd'\]"):
        load_sweep_file(str(bad), [])
    bad.write_text("stages:\n  - name: a\n    grid: {run.seed: [0, 1]}\nreport: {baseline: {run.seed: 7}}\n")
    with pytest.raises(ConfigError, match="baseline: run.seed=7 is not a cell"):
        load_sweep_file(str(bad), [])
    done = litplug("sweep", str(bad))
    assert done.returncode == 2 and "baseline" in done.stderr
    assert litplug("sweep", "examples/quickstart.yaml", "trainer.max_steps=20").returncode == 2  # nothing swept


def _children(uri: str, parent: str) -> list:
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("litplug")
    return client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")


def test_quickstart_seeds_on_two_workers_killed_and_finished_by_the_same_command(tmp_path: Path) -> None:
    args = ["sweep", str(REPO_ROOT / "examples" / "quickstart.yaml"), "run.seed=0,1,2", "trainer.max_steps=20",
            f"run.output_dir={tmp_path}", *FAST, "--workers", "2", "--name", "seeds"]
    sweep_dir = tmp_path / "sweeps" / "seeds"
    victim = subprocess.Popen([*LITPLUG, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=ENV, start_new_session=True)
    lines = []
    for line in victim.stdout:  # stop the sweep once one cell is done and the others are not
        lines.append(line)
        if re.search(r"train/seed=\d done", line):
            victim.send_signal(signal.SIGTERM)
            break
    rest, _ = victim.communicate(timeout=300)
    assert victim.returncode == 128 + signal.SIGTERM, "".join(lines) + rest
    finished_before = {json.loads(p.read_text())["cell"].split("/")[1]: p for p in sweep_dir.glob("status/*.json")
                       if json.loads(p.read_text())["state"] == "done"}
    finished_before = {name: (sweep_dir / "train" / name / "results.json").stat().st_mtime for name in finished_before}
    assert 1 <= len(finished_before) < 3, "".join(lines) + rest

    done = subprocess.run([*LITPLUG, *args], capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for name in finished_before:
        assert f"train/{name} finished earlier" in done.stdout
        assert (sweep_dir / "train" / name / "results.json").stat().st_mtime == finished_before[name]
    assert "3/3 done" in done.stdout
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert summary["cells_finished"] == 3
    assert all(row["n"] == 3 for row in summary["groups"]["all"].values()) and summary["groups"]["all"]
    assert (sweep_dir / "summary.md").is_file() and (sweep_dir / "summary.png").stat().st_size > 0
    state = json.loads((sweep_dir / "sweep.json").read_text())
    children = _children(state["tracking_uri"], state["parent_run_id"])
    assert sorted(r.data.tags["mlflow.runName"] for r in children) == ["seed=0", "seed=1", "seed=2"]
    assert all(r.info.status == "FINISHED" for r in children)
    parent = mlflow.MlflowClient(tracking_uri=state["tracking_uri"]).get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert {a.path for a in mlflow.MlflowClient(tracking_uri=state["tracking_uri"]).list_artifacts(
        state["parent_run_id"])} >= {"summary.md", "summary.json", "summary.png"}


def test_two_stages_with_a_failing_cell(tmp_path: Path) -> None:
    tiny = [o for o in TINY_OVERRIDES if not o.startswith("tracking.")]
    sweep = tmp_path / "two.yaml"
    sweep.write_text(json.dumps({
        "name": "two",
        "stages": [
            {"name": "pretrain", "grid": {"run.seed": [0]},
             "overrides": [*tiny, f"run.output_dir={tmp_path}", "tracking.enabled=false"]},
            {"name": "finetune", "grid": {"run.seed": [0], "trainer.max_steps": [2, -1]},
             "overrides": [*[o for o in tiny if not o.startswith("trainer.max_steps")], "tracking.enabled=false",
                           "model.path={pretrain}/export", "data.tokenizer={pretrain}/export",
                           "trainer.checkpoint_every_n_steps=1"]},
        ],
        "report": {"stage": "finetune", "metrics": ["train/loss"]},
    }))
    dry = litplug("sweep", str(sweep), "--dry-run")
    pretrained = tmp_path / "sweeps" / "two" / "pretrain" / "seed=0"
    assert dry.returncode == 0 and f"model.path={pretrained}/export" in dry.stdout
    done = litplug("sweep", str(sweep), timeout=600)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    assert "finetune/seed=0_max_steps=-1 failed" in done.stdout and "1 of 3 cells did not finish" in done.stderr
    finetuned = tmp_path / "sweeps" / "two" / "finetune" / "seed=0_max_steps=2"
    config = (finetuned / "config.yaml").read_text()
    assert str(tmp_path / "sweeps" / "two" / "pretrain" / "seed=0" / "export") in config
    assert json.loads((finetuned / "results.json").read_text())["global_step"] == 2
    summary = json.loads((tmp_path / "sweeps" / "two" / "summary.json").read_text())
    assert summary["cells_finished"] == 1 and summary["cells_expected"] == 2


def test_submitit_local_executor_runs_the_cells(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    started = time.time()
    done = litplug("sweep", *TINY_OVERRIDES, "trainer.max_steps=2", "run.seed=0,1", f"run.output_dir={tmp_path}",
                   "--launcher", "submitit", "--cluster", "local", "--workers", "2", "--name", "sub", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    results = sorted((tmp_path / "sweeps" / "sub" / "train").glob("*/results.json"))
    assert [p.parent.name for p in results] == ["seed=0", "seed=1"]
    assert all(p.stat().st_mtime >= started for p in results)
    assert any((tmp_path / "sweeps" / "sub" / "submitit").iterdir())  # submitit's own job folder
    assert math.isfinite(json.loads(results[0].read_text())["metrics"]["train/loss"])
