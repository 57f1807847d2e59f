"""Reproduce SIFT-Masks at laptop scale (a script, not part of the plugin package).

1. Pretrain one tiny base on the 16-variant mixture of ``sift_pretrain.yaml`` (beside this script).
2. Treat every variant as one data owner with a private set of 64 examples: finetune it alone from
   that base with sign-fixed tuning (``sift_task.yaml``) and add the run to a SIFT store.
3. Per task, exact-match accuracy on the task's own (held-in) examples of: the base, the individual finetune, the naive
   merge (theta_0 + tau_sum/|T|, i.e. task arithmetic), TIES on the same task vectors, and SIFT-Masks
   served weights theta_0 + (tau_sum * m_T)/|T|.
4. Unlearn one task: check the store equals one built without it (exact, float64), and time the
   unlearning against rebuilding a TIES merge (and the whole store) without it.

    OMP_NUM_THREADS=1 python plugins/merging/sift_masks/reproduce/reproduce.py --out /tmp/sift_repro

Finished runs are reused when the script is started again with the same --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

HERE = Path(__file__).resolve().parent  # plugins/merging/sift_masks/reproduce: the two configs


def sources_of(config: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load(config.read_text())["data"]["sources"])


def train(config: Path, overrides: list[str], sift: bool) -> Path:
    """A finished run directory (reused if its export exists)."""
    from litplug_sift_masks.runs import train_task

    from litplug.api import load_config, setup_run, to_yaml, train_run

    cfg = load_config(str(config), overrides)
    run_dir = Path(cfg.run.output_dir) / cfg.run.name
    if (run_dir / "export" / "model.safetensors").is_file() and (run_dir / "config.yaml").is_file():
        return run_dir
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    if sift:
        train_task(str(config), overrides)
    else:
        run = setup_run(str(config), overrides)
        train_run(run)
        (run_dir / "config.yaml").write_text(to_yaml(run.cfg))
    (run_dir / "train_seconds.txt").write_text(f"{time.perf_counter() - started:.3f}\n")
    return run_dir


class Evaluator:
    """Exact match of greedy answers on a task's eval split (its config's), for any model of the base's shape."""

    def __init__(self, tokenizer_dir: Path, num_examples: int | None) -> None:
        from litplug.api import load_tokenizer

        self.tokenizer = load_tokenizer(str(tokenizer_dir))
        self.num_examples = num_examples
        self._hooks: dict[Path, Any] = {}  # per task config: the generation hooks of the plugins it enables

    def __call__(self, model_dir: Path, run_dir: Path) -> float:
        from transformers import AutoModelForCausalLM

        from litplug.api import evaluate_source, load_config, plugin_manager, source_specs

        extra = [f"eval.num_examples={self.num_examples}"] if self.num_examples else []
        cfg = load_config(str(run_dir / "config.yaml"), extra)
        if run_dir not in self._hooks:
            self._hooks[run_dir] = plugin_manager(cfg)
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
        spec = source_specs(cfg)[0]
        return float(evaluate_source(model, self.tokenizer, self._hooks[run_dir], spec, cfg)["exact_match"])


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> None:
    from litplug_sift_masks.baselines import task_arithmetic, ties
    from litplug_sift_masks.hfdir import write_hf_dir
    from litplug_sift_masks.runs import add_run, unlearn_task
    from litplug_sift_masks.store import SiftStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/sift_repro")
    parser.add_argument("--pretrain-config", default=str(HERE / "sift_pretrain.yaml"))
    parser.add_argument("--task-config", default=str(HERE / "sift_task.yaml"))
    parser.add_argument("--unlearn", default=None, help="task to unlearn (default: the first)")
    parser.add_argument("--owner-examples", type=int, default=64, help="private training examples per task")
    parser.add_argument("--eval-examples", type=int, default=None, help="default: the task config's eval.num_examples")
    parser.add_argument("--ties-density", type=float, default=0.2)
    parser.add_argument("--plain", action="store_true", help="also finetune every task without sift_masks")
    parser.add_argument("--same-task", default=None, metavar="NAME",
                        help="instead of 16 variants: --owners owners of this one variant, each with its own "
                             "private examples (data.seed 5000 + owner)")
    parser.add_argument("--owners", type=int, default=16)
    parser.add_argument("--scales", default="1,2,4,8,16", help="lambda values of the merge-scale sweep")
    parser.add_argument("overrides", nargs="*", help="extra key=value for every finetune")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = out / "runs"

    base_run = train(Path(args.pretrain_config), [f"run.output_dir={runs_dir}", "run.name=sift_base"], sift=False)
    base = base_run / "export"
    sources = sources_of(Path(args.pretrain_config))
    data_seeds: dict[str, int] = {}
    if args.same_task:
        (chosen,) = [s for s in sources if s["name"] == args.same_task]
        sources = [{**chosen, "name": f"{chosen['name']}_o{i}"} for i in range(args.owners)]
        data_seeds = {s["name"]: 5000 + i for i, s in enumerate(sources)}
    names = [s["name"] for s in sources]
    common = [f"model.path={base}", f"data.tokenizer={base}", f"run.output_dir={runs_dir}", *args.overrides]

    def task_overrides(i: int, source: dict[str, Any], prefix: str = "") -> list[str]:
        private = {k: source[k] for k in ("name", "task", "params")} | {"num_train": args.owner_examples}
        seed = [f"data.seed={data_seeds[source['name']]}"] if source["name"] in data_seeds else []
        return [*common, f"run.name={prefix}{source['name']}", f"run.seed={i + 1}",
                f"data.sources=[{json.dumps(private)}]", *seed]

    runs = {s["name"]: train(Path(args.task_config), task_overrides(i, s), sift=True) for i, s in enumerate(sources)}
    train_s = {n: float((run / "train_seconds.txt").read_text()) for n, run in runs.items()
               if (run / "train_seconds.txt").is_file()}
    plain = {}
    if args.plain:
        for i, source in enumerate(sources):
            plain[source["name"]] = train(Path(args.task_config),
                                          [*task_overrides(i, source, "plain_"), "plugins.sift_masks.enabled=false"],
                                          sift=False)

    store_root = out / "store"
    shutil.rmtree(store_root, ignore_errors=True)
    add_s = {}
    for name in names:
        _, add_s[name] = timed(add_run, store_root, runs[name])
    store = SiftStore(store_root)

    models = out / "models"
    shutil.rmtree(models, ignore_errors=True)
    exports = [runs[n] / "export" for n in names]
    store.export(models / "naive")
    write_hf_dir(base, ties(base, exports, args.ties_density), models / "ties", {"merge": "ties"})
    reference = task_arithmetic(base, exports)
    naive = SiftStore(store_root).served_weights(None)
    naive_equals_task_arithmetic = all(torch.equal(naive[k], reference[k]) for k in reference)
    if plain:
        plain_exports = [plain[n] / "export" for n in names]
        write_hf_dir(base, task_arithmetic(base, plain_exports), models / "plain_naive", {"merge": "task-arithmetic"})
        write_hf_dir(base, ties(base, plain_exports, args.ties_density), models / "plain_ties", {"merge": "ties"})
    for name in names:
        store.export(models / f"sift_{name}", task=name)
        store.export(models / f"sift_count_{name}", task=name, normalize="mask_count")

    evaluate = Evaluator(base, args.eval_examples)
    table: dict[str, dict[str, float]] = {}
    for name in names:
        run = runs[name]
        row = {
            "base": evaluate(base, run),
            "individual": evaluate(run / "export", run),
            "naive": evaluate(models / "naive", run),
            "ties": evaluate(models / "ties", run),
            "sift": evaluate(models / f"sift_{name}", run),
            "sift_mask_count": evaluate(models / f"sift_count_{name}", run),
        }
        if plain:
            row["plain_individual"] = evaluate(plain[name] / "export", run)
            row["plain_naive"] = evaluate(models / "plain_naive", run)
            row["plain_ties"] = evaluate(models / "plain_ties", run)
        table[name] = row
        print(name, json.dumps(row), flush=True)
    densities = {t["name"]: t["nnz"] / t["numel"] for t in store.tasks}

    # -- lambda sweep: theta_0 + lambda * (merged vector), for every merge --------------------
    sweep: dict[str, dict[str, float]] = {}
    for scale in [float(x) for x in args.scales.split(",")]:
        scaled = models / f"scale{scale:g}"
        store.export(scaled / "naive", scale=scale)
        write_hf_dir(base, ties(base, exports, args.ties_density, scale), scaled / "ties", {"merge": "ties"})
        if plain:
            write_hf_dir(base, task_arithmetic(base, plain_exports, scale), scaled / "plain_naive", {})
            write_hf_dir(base, ties(base, plain_exports, args.ties_density, scale), scaled / "plain_ties", {})
        accs: dict[str, list[float]] = {}
        for name in names:
            store.export(scaled / f"sift_{name}", task=name, scale=scale)
            store.export(scaled / f"sift_count_{name}", task=name, scale=scale, normalize="mask_count")
            for method in ["naive", "ties", "sift", "sift_count"] + (["plain_naive", "plain_ties"] if plain else []):
                model = scaled / (f"{method}_{name}" if method.startswith("sift") else method)
                accs.setdefault(method, []).append(evaluate(model, runs[name]))
        sweep[f"{scale:g}"] = {method: float(np.mean(values)) for method, values in accs.items()}
        shutil.rmtree(scaled)
        print("scale", scale, json.dumps(sweep[f"{scale:g}"]), flush=True)

    # -- unlearning ---------------------------------------------------------------------------
    forget = args.unlearn or names[0]
    rest = [n for n in names if n != forget]
    work = Path(tempfile.mkdtemp(prefix="sift-unlearn-", dir=out))
    shutil.copytree(store_root, work / "subtract")
    shutil.copytree(store_root, work / "retrain")
    _, unlearn_s = timed(SiftStore(work / "subtract").unlearn, forget, runs[forget] / "export")
    _, unlearn_retrain_s = timed(unlearn_task, work / "retrain", forget, None, True)
    rebuild_s = 0.0
    for name in rest:
        rebuild_s += timed(add_run, work / "rebuilt", runs[name])[1]
    _, ties_rebuild_s = timed(ties, base, [runs[n] / "export" for n in rest], args.ties_density)
    unlearned, rebuilt, retrained = (SiftStore(work / d) for d in ("subtract", "rebuilt", "retrain"))
    exact = bool(np.array_equal(unlearned.read_sum(), rebuilt.read_sum())
                 and np.array_equal(retrained.read_sum(), rebuilt.read_sum()))
    masks_identical = all(unlearned.read_mask(n).tobytes() == store.read_mask(n).tobytes()
                          == rebuilt.read_mask(n).tobytes() for n in rest)
    unlearned.export(work / "merged_after")
    forget_run = runs[forget]
    unlearning = {
        "task": forget, "sum_equal_to_rebuilt_store": exact, "other_masks_byte_identical": masks_identical,
        "forgotten_task_acc": {"individual": table[forget]["individual"], "sift_served_before": table[forget]["sift"],
                               "naive_merge_before": table[forget]["naive"],
                               "naive_merge_after": evaluate(work / "merged_after", forget_run),
                               "base": table[forget]["base"]},
        "seconds": {"sift_unlearn_subtract": unlearn_s, "sift_unlearn_by_retraining": unlearn_retrain_s,
                    "ties_rebuild_without_task": ties_rebuild_s, "sift_store_rebuild_without_task": rebuild_s,
                    "finetune_one_task_mean": float(np.mean(list(train_s.values()))) if train_s else None,
                    "sift_add_mean": float(np.mean(list(add_s.values())))},
    }
    shutil.rmtree(work, ignore_errors=True)

    means = {k: float(np.mean([row[k] for row in table.values()])) for k in next(iter(table.values()))}
    results = {"tasks": table, "mean": means, "scale_sweep": sweep, "mask_density": densities,
               "unlearning": unlearning,
               "naive_equals_task_arithmetic": naive_equals_task_arithmetic, "num_tasks": len(names),
               "parameters": sum(e.numel for e in store.layout), "eval_examples": args.eval_examples,
               "ties_density": args.ties_density, "overrides": args.overrides}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    columns = list(means)
    lines = ["| task | density | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for name, row in table.items():
        lines.append(f"| {name} | {densities[name]:.3f} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
    lines.append("| **mean** | | " + " | ".join(f"**{means[c]:.3f}**" for c in columns) + " |")
    methods = list(next(iter(sweep.values())))
    lines += ["", "| lambda | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    lines += [f"| {scale} | " + " | ".join(f"{row[m]:.3f}" for m in methods) + " |" for scale, row in sweep.items()]
    (out / "results.md").write_text("\n".join(lines) + "\n\n" + json.dumps(unlearning, indent=2) + "\n")
    print("\n".join(lines))
    print(json.dumps(unlearning, indent=2))


if __name__ == "__main__":
    main()
