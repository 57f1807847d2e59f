"""``litplug sift ...`` (the store's verbs) and ``litplug merge task-arithmetic|ties``.

Every failure a user can cause raises :class:`StoreError` (exit code 2) before the store changes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from litplug_sift_masks.errors import StoreError
from litplug_sift_masks.hfdir import resolve_model_dir, write_hf_dir
from litplug_sift_masks.store import NORMALIZE, SiftStore


def add_sift_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("sift", help="SIFT-Masks store: train tasks, add, unlearn, export, list")
    verbs = parser.add_subparsers(dest="sift_verb", metavar="SIFT_VERB", required=True)

    p = verbs.add_parser("train-task", help="train one task with sign-fixed finetuning (litplug train + sift_masks)")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--store", help="add the finished run to this store (created from its base model if missing)")
    p.add_argument("--name", help="task name in the store (default: run.name)")
    p.add_argument("--source", metavar="NAME", help="train only the data source named NAME of the config's "
                                                    "data.sources (one data owner out of a list of owners)")
    p.set_defaults(func=_train_task)

    p = verbs.add_parser("add", help="add finished SIFT runs to a store (created from the first run's base model)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--store", required=True)
    p.add_argument("--name", help="task name (one RUN_DIR only; default: the run's run.name)")
    p.set_defaults(func=_add)

    p = verbs.add_parser("unlearn", help="remove a task exactly: subtract its vector, drop its mask")
    p.add_argument("task", metavar="TASK")
    p.add_argument("--store", required=True)
    p.add_argument("--from", dest="from_dir", metavar="RUN_DIR", help="take the task's weights from this run/model")
    p.add_argument("--retrain", action="store_true", help="re-derive the task by re-running its recorded config, "
                                                          "even if its run's export still exists")
    p.set_defaults(func=_unlearn)

    p = verbs.add_parser("export", help="write served weights for a task (or the plain merge) as an HF directory")
    p.add_argument("out", metavar="OUT_DIR")
    p.add_argument("--store", required=True)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", help="theta_0 + scale * (tau_sum * m_task) / |T|")
    which.add_argument("--merged", action="store_true", help="theta_0 + scale * tau_sum / |T| (no mask)")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--normalize", choices=NORMALIZE, default="tasks",
                   help="divide by the task count (paper) or per entry by the number of masks covering it")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_export)

    p = verbs.add_parser("list", help="the store's tasks, mask densities and sizes")
    p.add_argument("--store", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list)

    p = verbs.add_parser("compare", help="merge the first T owners' runs (naive, TIES, SIFT, variants), score each "
                                         "owner, optionally unlearn one; writes results.json for `litplug sweep`")
    p.add_argument("--runs", nargs="+", required=True, metavar="RUN_OR_GLOB",
                   help="owner runs (run directories, or folders holding one as run/; globs are expanded here)")
    p.add_argument("--owners", required=True, help="comma-separated owner (data source) names, in merge order")
    p.add_argument("--first", type=int, default=None, metavar="T", help="merge only the first T owners")
    p.add_argument("--out", required=True, help="results file (JSON with a 'metrics' dict)")
    p.add_argument("--ties-density", type=float, default=0.2)
    p.add_argument("--unlearn", metavar="OWNER", help="also unlearn this owner exactly (subtraction and re-derivation)")
    p.add_argument("--pretrain", metavar="RUN_DIR", help="the base's pretraining run: measure how many of the "
                                                         "unlearned owner's examples it saw")
    p.set_defaults(func=_compare)

    p = verbs.add_parser("verify", help="check every store file against the manifest's checksums")
    p.add_argument("--store", required=True)
    p.set_defaults(func=_verify)


def _train_task(args: argparse.Namespace) -> int:
    from litplug_sift_masks.runs import add_run, train_task

    run_dir = train_task(args.config, args.overrides, args.source)
    if args.store:
        entry = add_run(Path(args.store), run_dir, args.name)
        print(f"Added task '{entry['name']}' to {args.store} (mask density {entry['nnz'] / entry['numel']:.3f}).")
    return 0


def _add(args: argparse.Namespace) -> int:
    from litplug_sift_masks.runs import add_run

    if args.name and len(args.run_dirs) > 1:
        raise StoreError("--name names one task; give one RUN_DIR with it.")
    for run_dir in args.run_dirs:
        started = time.perf_counter()
        entry = add_run(Path(args.store), Path(run_dir), args.name)
        print(f"Added task '{entry['name']}' (mask density {entry['nnz'] / entry['numel']:.3f}) in "
              f"{time.perf_counter() - started:.2f}s.")
    return 0


def _unlearn(args: argparse.Namespace) -> int:
    from litplug_sift_masks.runs import unlearn_task

    started = time.perf_counter()
    source = unlearn_task(Path(args.store), args.task, Path(args.from_dir) if args.from_dir else None, args.retrain)
    print(f"Unlearned task '{args.task}' (task vector from {source}) in {time.perf_counter() - started:.2f}s; "
          f"{len(SiftStore(args.store).tasks)} task(s) remain.")
    return 0


def _export(args: argparse.Namespace) -> int:
    store = SiftStore(args.store)
    out = store.export(Path(args.out), None if args.merged else args.task, args.scale, args.normalize, args.overwrite)
    print(f"Wrote {'the merge' if args.merged else f'served weights of task {args.task!r}'} of "
          f"{len(store.tasks)} task(s) to {out}")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = SiftStore(args.store)
    m = store.manifest
    if args.json:
        print(json.dumps({"sign_seed": m["sign_seed"], "base": m["base"], "sum_dtype": m["sum_dtype"],
                          "tasks": [{k: v for k, v in t.items() if k != "config"} for t in m["tasks"]]}, indent=2))
        return 0
    mask_bytes = sum((store.root / t["mask"]["file"]).stat().st_size for t in m["tasks"])
    params = sum(e.numel for e in store.layout)
    print(f"store {store.root}: {len(m['tasks'])} task(s), sign seed {m['sign_seed']}, base {m['base']['digest'][:12]} "
          f"({m['base']['source']}), {params} parameters")
    print(f"sum: {m['sum_dtype']}; masks: {mask_bytes} bytes "
          f"({8 * mask_bytes / max(1, params * len(m['tasks'])):.3f} bits per parameter per task)")
    for t in m["tasks"]:
        print(f"  {t['name']:<24} density {t['nnz'] / t['numel']:.3f}  seed {t['seed']}  "
              f"data {str(t['data_fingerprint'])[:12]}  added {t['added']}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from litplug_sift_masks.compare import compare, find_owner_runs

    owners = [o.strip() for o in args.owners.split(",") if o.strip()]
    if args.first is not None:
        if not 1 <= args.first <= len(owners):
            raise StoreError(f"--first {args.first}: give 1 to {len(owners)} (the number of --owners).")
        owners = owners[: args.first]
    if len(set(owners)) != len(owners):
        raise StoreError(f"--owners names an owner twice: {owners}.")
    if args.unlearn is not None and args.unlearn not in owners:
        raise StoreError(f"--unlearn {args.unlearn}: not one of the merged owners {owners}.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = find_owner_runs(args.runs, owners)
    result = compare(runs, out.parent / f".{out.stem}-work", args.ties_density, args.unlearn,
                     Path(args.pretrain) if args.pretrain else None)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    width = max(len(k) for k in result["metrics"])
    for key, value in result["metrics"].items():
        print(f"{key:<{width}}  {value:.4f}")
    print(f"Wrote {out}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    store = SiftStore(args.store)
    store.verify()
    print(f"Store {store.root}: manifest and all {2 + len(store.tasks)} data files match their checksums.")
    return 0


# -- litplug merge METHOD ----------------------------------------------------------------------
def _merge_parser(method: str, extra: dict[str, tuple[type, float, str]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"litplug merge {method}")
    parser.add_argument("models", nargs="+", metavar="MODEL", help="finetuned run directories or HF directories")
    parser.add_argument("--base", required=True, help="the common base model (run or HF directory)")
    parser.add_argument("--out", required=True, help="output HF directory")
    parser.add_argument("--overwrite", action="store_true")
    for flag, (kind, default, help_) in extra.items():
        parser.add_argument(flag, type=kind, default=default, help=help_)
    return parser


def merge_task_arithmetic(argv: list[str]) -> int:
    """theta_0 + scale * mean of the task vectors."""
    from litplug_sift_masks.baselines import task_arithmetic

    args = _merge_parser("task-arithmetic", {"--scale": (float, 1.0, "multiplier of the mean task vector")}) \
        .parse_args(argv)
    base = resolve_model_dir(args.base)
    weights = task_arithmetic(base, [resolve_model_dir(m) for m in args.models], args.scale)
    write_hf_dir(base, weights, Path(args.out), {"merge": "task-arithmetic"}, overwrite=args.overwrite)
    print(f"Wrote the task-arithmetic merge of {len(args.models)} model(s) to {args.out}")
    return 0


def merge_ties(argv: list[str]) -> int:
    """TIES-merging: trim, elect sign, disjoint mean."""
    from litplug_sift_masks.baselines import ties

    args = _merge_parser("ties", {"--density": (float, 0.2, "share of each task vector kept (top magnitudes)"),
                                  "--scale": (float, 1.0, "lambda, multiplier of the merged vector")}).parse_args(argv)
    base = resolve_model_dir(args.base)
    weights = ties(base, [resolve_model_dir(m) for m in args.models], args.density, args.scale)
    write_hf_dir(base, weights, Path(args.out), {"merge": "ties"}, overwrite=args.overwrite)
    print(f"Wrote the TIES merge of {len(args.models)} model(s) to {args.out}")
    return 0
