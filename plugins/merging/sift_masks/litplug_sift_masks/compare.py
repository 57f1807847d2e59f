"""``litplug sift compare``: merge T owners' SIFT finetunes every way the method card compares, score each
owner on its own (held-in) examples, optionally unlearn one owner exactly, and write ``results.json``
(``{"metrics": {...}}``, what ``litplug sweep`` reports).

Methods, each scored per owner and averaged over the T owners:

- ``base``: theta_0; ``individual``: the owner's own finetune (the ceiling);
- ``naive``: theta_0 + tau_sum/|T| (task arithmetic, no mask);
- ``ties``: TIES on the same task vectors (density ``--ties-density``, lambda 1);
- ``sift``: served weights theta_0 + (tau_sum * m_o)/|T| (the paper's formula, lambda 1);
- ``sift_inv_density``: the same with lambda = 1/d_o, d_o the owner's mask density over the tensors it trained;
- ``sift_mask_count``: [U] each entry divided by the number of masks covering it instead of |T|.

Scores: ``em`` is exact match of greedy answers; ``prob`` the answer probability, exp of the mean
log-probability of the answer tokens and the closing EOS (the tokens the finetune's loss covers) under
teacher forcing, averaged over examples (length-normalised, as TOFU's). ``recovered_*`` is the share of
the individual gain a merge keeps, (mean merge - mean base) / (mean individual - mean base), over the
T owners; ``diff_*/M_vs_naive`` the per-cell difference of a method and the naive merge. ``norm_ratio/M`` is
||delta_M|| / ||tau_o|| (delta_M: the served weights minus theta_0) and ``own_share/M`` = <delta_M, tau_o> /
||tau_o||^2, the coefficient of the owner's own vector in what it is served; both averaged over owners.
"""

from __future__ import annotations

import glob
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from litplug_sift_masks.errors import StoreError

MERGES = ("naive", "ties", "sift", "sift_inv_density", "sift_mask_count")
METHODS = ("base", "individual", *MERGES)


def owner_name(config: dict[str, Any], run_dir: Path) -> str:
    """An owner run trains exactly one data source; the owner is that source's name."""
    from litplug.api import source_name

    sources = (config.get("data") or {}).get("sources") or []
    if len(sources) != 1:
        raise StoreError(f"Run '{run_dir}' trains {len(sources)} data sources; an owner run trains exactly one "
                         "(`litplug sift train-task CONFIG --source NAME`).")
    source = sources[0]
    return source_name(SimpleNamespace(name=source.get("name"), task=source.get("task"), path=source.get("path")))


def find_owner_runs(patterns: list[str], owners: list[str]) -> dict[str, Path]:
    """The finished run of every owner in ``owners``, found among the runs that ``patterns`` (paths or
    globs) name; each owner exactly once."""
    from litplug_sift_masks.runs import read_run

    found: dict[str, list[Path]] = {}
    for pattern in patterns:
        paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        for path in map(Path, paths):
            run = path if (path / "config.yaml").is_file() else path / "run"
            if not (run / "config.yaml").is_file():
                continue
            found.setdefault(owner_name(read_run(run), run), []).append(run)
    missing = [o for o in owners if o not in found]
    if missing:
        raise StoreError(f"No finished run for owner(s) {missing} under {patterns} (found: {sorted(found)}).")
    twice = {o: [str(r) for r in found[o]] for o in owners if len(found[o]) > 1}
    if twice:
        raise StoreError(f"Several runs for one owner: {twice}. Narrow --runs.")
    return {o: found[o][0] for o in owners}


class Scorer:
    """Exact match and answer probability of any model of the base's shape on an owner's eval examples
    (the owner run's own ``eval`` settings: split, number of examples)."""

    def __init__(self, base_dir: Path) -> None:
        from transformers import AutoModelForCausalLM

        from litplug.api import load_tokenizer

        self.tokenizer = load_tokenizer(str(base_dir))
        self.model = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True, dtype=torch.float32).eval()
        self._owners: dict[Path, tuple[Any, Any, Any, dict[str, torch.Tensor]]] = {}

    def load(self, weights: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.model.load_state_dict(weights, strict=False)
        tied = {k for k in missing if k == "lm_head.weight" and self.model.config.tie_word_embeddings}
        if unexpected or set(missing) - tied:
            raise StoreError(f"Weights do not fit the base model (missing {missing[:3]}, unexpected {unexpected[:3]}).")

    def _owner(self, run_dir: Path) -> tuple[Any, Any, Any, dict[str, torch.Tensor]]:
        from litplug.api import (
            build_rows,
            load_config,
            plugin_manager,
            read_examples,
            source_name,
            source_specs,
            to_model_batch,
        )

        if run_dir not in self._owners:
            cfg = load_config(str(run_dir / "config.yaml"), [])
            spec = source_specs(cfg)[0]
            examples = read_examples(spec, cfg.eval.split, cfg.data.seed)[: cfg.eval.num_examples]
            rows = torch.from_numpy(build_rows(self.tokenizer, examples, cfg.data.seq_len, source_name(spec)))
            batch = to_model_batch({"tokens": rows[:, :-2], "n_prompt": rows[:, -2], "length": rows[:, -1]},
                                   "answer")
            self._owners[run_dir] = (cfg, spec, plugin_manager(cfg), batch)
        return self._owners[run_dir]

    @torch.no_grad()
    def __call__(self, run_dir: Path) -> tuple[float, float]:
        """(exact match, answer probability) of the loaded weights on owner ``run_dir``'s examples."""
        from litplug.api import evaluate_source

        cfg, spec, pm, batch = self._owner(run_dir)
        em = float(evaluate_source(self.model, self.tokenizer, pm, spec, cfg)["exact_match"])
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"]
        keep = labels != -100
        logp = torch.log_softmax(logits.double(), -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        per_example = (logp * keep).sum(1) / keep.sum(1).clamp(min=1)
        return em, float(per_example.exp().mean())


def trained_density(base_dir: Path, run_export: Path) -> tuple[float, float]:
    """(density over all float tensors, density over the tensors the task changed at all): frozen tensors
    (embeddings, LM head) have tau = 0 everywhere and are left out of the second."""
    from litplug_sift_masks.hfdir import FLOAT_DTYPES, TensorSource

    nnz = total = trained = 0
    with TensorSource(base_dir) as base, TensorSource(run_export) as task:
        for name in base.names:
            if base.dtype(name) not in FLOAT_DTYPES:
                continue
            moved = int((task.get(name) != base.get(name)).sum())
            numel = base.get(name).numel()
            nnz += moved
            total += numel
            trained += numel if moved else 0
    return nnz / total, nnz / max(trained, 1)


def pretrain_overlap(owner_cfg: Any, pretrain_run: Path) -> float:
    """Share of the owner's eval examples (its private training set, when eval.split is train) that also
    occur, prompt and answer, in the base model's pretraining data of the same task."""
    from litplug.api import load_config, read_examples, source_specs

    spec = source_specs(owner_cfg)[0]
    mine = read_examples(spec, owner_cfg.eval.split, owner_cfg.data.seed)[: owner_cfg.eval.num_examples]
    pre_cfg = load_config(str(pretrain_run / "config.yaml"), [])
    seen: set[tuple[str, str]] = set()
    for other in source_specs(pre_cfg):
        if other.task == spec.task and dict(other.params) == dict(spec.params):
            seen |= {(e.prompt, e.answer) for e in read_examples(other, "train", pre_cfg.data.seed)}
    return sum((e.prompt, e.answer) in seen for e in mine) / max(1, len(mine))


def compare(runs: dict[str, Path], work: Path, ties_density: float = 0.2, unlearn: str | None = None,
            pretrain: Path | None = None, log: Any = print) -> dict[str, Any]:
    """Every method on every owner of ``runs`` (owner -> run dir), plus the unlearning check."""
    from litplug.api import load_config
    from litplug_sift_masks.baselines import task_arithmetic, ties
    from litplug_sift_masks.runs import add_run, unlearn_task
    from litplug_sift_masks.store import SiftStore

    owners = list(runs)
    shutil.rmtree(work, ignore_errors=True)
    store_root = work / "store"
    for owner in owners:
        add_run(store_root, runs[owner], owner)
    store = SiftStore(store_root)
    base_dir = store.base_dir
    exports = [runs[o] / "export" for o in owners]
    scorer = Scorer(base_dir)
    naive = store.served_weights(None)
    reference = task_arithmetic(base_dir, exports)
    if not all(torch.equal(naive[k], reference[k]) for k in reference):
        raise StoreError("The store's plain merge differs from task arithmetic on the same runs.")
    shared = {"naive": naive, "ties": ties(base_dir, exports, ties_density)}
    from litplug_sift_masks.hfdir import TensorSource

    with TensorSource(base_dir) as base:
        theta0 = {n: base.get(n) for n in base.names}

    per_owner: dict[str, dict[str, float]] = {}
    for owner in owners:
        density, density_trained = trained_density(base_dir, runs[owner] / "export")
        with TensorSource(runs[owner] / "export") as own:
            individual = {n: own.get(n) for n in own.names}
        weights = {
            "base": theta0, "individual": individual, **shared,
            "sift": store.served_weights(owner),
            "sift_inv_density": store.served_weights(owner, scale=1.0 / density_trained),
            "sift_mask_count": store.served_weights(owner, normalize="mask_count"),
        }
        row: dict[str, float] = {"density": density, "density_trained": density_trained}
        own = {n: individual[n].double() - theta0[n].double() for n in theta0 if theta0[n].is_floating_point()}
        own_sq = sum(float((t * t).sum()) for t in own.values())
        for method in MERGES:  # how much of the owner's own task vector its served delta carries
            delta = {n: weights[method][n].double() - theta0[n].double() for n in own}
            row[f"norm_ratio/{method}"] = (sum(float((d * d).sum()) for d in delta.values()) / own_sq) ** 0.5
            row[f"own_share/{method}"] = sum(float((delta[n] * own[n]).sum()) for n in own) / own_sq
        for method in METHODS:
            scorer.load(weights[method])
            row[f"em/{method}"], row[f"prob/{method}"] = scorer(runs[owner])
        per_owner[owner] = row
        log(f"{owner}: " + " ".join(f"{k}={v:.3f}" for k, v in row.items()), flush=True)

    mean = {k: float(np.mean([r[k] for r in per_owner.values()])) for k in next(iter(per_owner.values()))}
    metrics: dict[str, float] = {"num_tasks": float(len(owners)), "density/mean": mean["density"],
                                 "density/trained_mean": mean["density_trained"]}
    for method in MERGES:
        metrics[f"norm_ratio/{method}"] = mean[f"norm_ratio/{method}"]
        metrics[f"own_share/{method}"] = mean[f"own_share/{method}"]
    for score in ("em", "prob"):
        for method in METHODS:
            metrics[f"{score}/{method}"] = mean[f"{score}/{method}"]
        gain = mean[f"{score}/individual"] - mean[f"{score}/base"]
        for method in MERGES:
            metrics[f"recovered_{score}/{method}"] = ((mean[f"{score}/{method}"] - mean[f"{score}/base"]) / gain
                                                      if gain > 0 else float("nan"))
            if method != "naive":
                metrics[f"diff_{score}/{method}_vs_naive"] = mean[f"{score}/{method}"] - mean[f"{score}/naive"]

    unlearning: dict[str, Any] = {}
    if unlearn is not None:
        if unlearn not in runs:
            raise StoreError(f"--unlearn {unlearn}: not one of the merged owners {owners}.")
        rest = [o for o in owners if o != unlearn]
        subtract, retrain, rebuilt = work / "unlearn_subtract", work / "unlearn_retrain", work / "rebuilt"
        shutil.copytree(store_root, subtract)
        shutil.copytree(store_root, retrain)
        started = time.perf_counter()
        SiftStore(subtract).unlearn(unlearn, runs[unlearn] / "export")
        seconds_subtract = time.perf_counter() - started
        started = time.perf_counter()
        unlearn_task(retrain, unlearn, None, True)  # re-derives the task; refuses unless the weights match
        seconds_retrain = time.perf_counter() - started
        if rest:
            for owner in rest:
                add_run(rebuilt, runs[owner], owner)
            expected = SiftStore(rebuilt).read_sum()
        else:
            expected = np.zeros_like(store.read_sum())
        a, b = SiftStore(subtract), SiftStore(retrain)
        exact = bool(np.array_equal(a.read_sum(), expected) and np.array_equal(b.read_sum(), expected))
        masks_kept = all(a.read_mask(o).tobytes() == store.read_mask(o).tobytes() == b.read_mask(o).tobytes()
                         for o in rest)
        scorer.load(a.served_weights(None))  # the paper's rule: an unlearned task is served by the maskless merge
        em_after, prob_after = scorer(runs[unlearn])
        row = per_owner[unlearn]
        overlap = (pretrain_overlap(load_config(str(runs[unlearn] / "config.yaml"), []), pretrain)
                   if pretrain is not None else float("nan"))
        unlearning = {"task": unlearn, "sum_equal_to_store_without_task": exact, "other_masks_unchanged": masks_kept}
        metrics.update({
            "unlearn/exact": float(exact and masks_kept),
            "unlearn/em_individual": row["em/individual"], "unlearn/em_sift_before": row["em/sift"],
            "unlearn/em_sift_inv_density_before": row["em/sift_inv_density"],
            "unlearn/em_naive_before": row["em/naive"], "unlearn/em_merged_after": em_after,
            "unlearn/em_base": row["em/base"],
            "unlearn/prob_individual": row["prob/individual"], "unlearn/prob_sift_before": row["prob/sift"],
            "unlearn/prob_sift_inv_density_before": row["prob/sift_inv_density"],
            "unlearn/prob_naive_before": row["prob/naive"], "unlearn/prob_merged_after": prob_after,
            "unlearn/prob_base": row["prob/base"],
            "unlearn/pretrain_overlap": overlap,
            "unlearn/seconds_subtract": seconds_subtract, "unlearn/seconds_rederive": seconds_retrain,
        })
    shutil.rmtree(work, ignore_errors=True)
    return {"metrics": metrics, "owners": owners, "per_owner": per_owner, "unlearning": unlearning,
            "ties_density": ties_density, "runs": {o: str(r) for o, r in runs.items()}}
