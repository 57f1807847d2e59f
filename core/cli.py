"""``litplug`` verbs. Exit codes: 0 success, 2 usage/config/plugin/data error, 1 run failure."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from litplug.errors import ConfigError, LitplugError, RunFailure  # noqa: E402
from litplug.signals import Interrupted, handlers_restored  # noqa: E402

BUILTIN_VERBS = ("train", "config", "plugins", "eval", "generate", "merge", "new-plugin", "sweep")


def _cmd_train(args: argparse.Namespace) -> int:
    from litplug import config as config_mod

    # A bad config fails here, before the seconds that importing torch and Lightning takes; a good one gets a
    # first line at once, so nobody wonders whether the command started.
    cfg = config_mod.load_config(args.config, args.overrides, check_trainer=False)
    if _is_rank_zero():
        plugins = ", ".join(config_mod.active_plugin_names(cfg)) or "none"
        print(f"litplug: training '{cfg.run.name}' in {Path(cfg.run.output_dir) / cfg.run.name} (plugins: {plugins}); "
              "loading torch and Lightning...", flush=True)
    from litplug import run as run_mod

    run_mod.train_command(args.config, args.overrides)
    return 0


def _is_rank_zero() -> bool:
    """Before Lightning is imported: the launchers' rank variables (a DDP child re-runs this command)."""
    return all(os.environ.get(k, "0") == "0" for k in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"))


def _cmd_config(args: argparse.Namespace) -> int:
    from litplug import config as config_mod
    from litplug.plugins import load_plugins

    cfg = config_mod.load_config(args.config, args.overrides)
    load_plugins(cfg)  # validates plugins.<name> against each plugin's schema and fills defaults
    print(config_mod.to_yaml(cfg), end="")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    """Metadata only (fast, imports nothing) unless ``--check``, which imports and validates every plugin
    and exits 2 when any is broken."""
    from litplug.plugins import list_plugins

    records = list_plugins(check=args.check)
    broken = [r.name for r in records if r.status == "broken"]
    if args.json:
        print(json.dumps([r.as_dict() for r in records], indent=2))
        return 2 if broken and args.check else 0
    if not records:
        print("No litplug plugins installed.")
    for r in records:
        print(f"{r.name:<14} {r.status:<9} {r.distribution or '?'} {r.version or '?'}")
        if r.status == "ok":
            print(f"{'':<14} hooks: {', '.join(r.hooks) or '(none)'}")
        if r.verbs:
            print(f"{'':<14} verbs: {', '.join(r.verbs)}")
        elif r.status == "ok" and "cli_commands" in r.hooks:
            print(f"{'':<14} note: implements cli_commands but declares no verb under the entry-point group "
                  f"litplug.verbs, so litplug cannot find its verbs; add them to its pyproject.toml")
        if r.status == "broken":
            print(f"{'':<14} reason: {r.reason}")
    if not args.check and records:
        print("(read from package metadata; `litplug plugins --check` imports each plugin and validates its hooks)")
    elif broken:
        print(f"litplug: error: {len(broken)} broken plugin(s): {', '.join(broken)}", file=sys.stderr)
        return 2
    return 0


def _run_or_config(target: str, overrides: Sequence[str]) -> tuple[str, list[str]]:
    """A run directory means its saved config plus its exported model."""
    from litplug.rundir import RunDir

    path = Path(target)
    if path.is_dir():
        run_dir = RunDir(path)
        if not run_dir.is_finished():
            raise ConfigError(f"'{path}' is not a finished litplug run (it needs config.yaml and export/).")
        exported = run_dir.export.resolve()
        return str(run_dir.config_file), [f"model.path={exported}", f"data.tokenizer={exported}", *overrides]
    return target, list(overrides)


def _cmd_eval(args: argparse.Namespace) -> int:
    from litplug import run as run_mod
    from litplug.evaluate import evaluate_all, flat_metrics

    config_path, overrides = _run_or_config(args.target, args.overrides)
    run = _setup_for_inference(run_mod, config_path, overrides)
    module = run_mod.build_module(run)
    results = evaluate_all(module.model, run.tokenizer, run.pm, run.sources, run.cfg)
    if not results:
        raise ConfigError("None of the config's data sources has a prompt/answer form, so there is nothing to "
                          "evaluate by exact match / pass@k.")
    from litplug.rundir import RunDir

    out = Path(args.out) if args.out else (RunDir(Path(args.target)).eval_file if Path(args.target).is_dir() else None)
    if out is not None:
        out.write_text(json.dumps(results, indent=2))
    _log_eval(run, flat_metrics(results), out)
    for source, metrics in results.items():
        shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        print(f"{source}: {shown}")
    if out is not None:
        print(f"Results written to {out}")
    return 0


def _setup_for_inference(run_mod: object, config_path: str | None, overrides: list[str]) -> object:
    """``run.setup`` for eval/generate. A plugin the run trained with but that is not installed here gets a
    hint: one that shapes only training (an auxiliary loss, a kernel) can be switched off for inference."""
    from litplug.errors import PluginNotInstalled

    try:
        with handlers_restored():  # litdata's optimize leaves a SIGINT handler that exits 0
            return run_mod.setup(config_path, overrides)  # type: ignore[attr-defined]
    except PluginNotInstalled as exc:
        raise PluginNotInstalled(
            exc.name, f"{exc} If '{exc.name}' only shapes training (an auxiliary loss or head, a fused kernel, a "
            f"data mixture), add plugins.{exc.name}.enabled=false to evaluate without it; a plugin that changes "
            f"the model or its generation (e.g. pause tokens) must be installed.") from None


def _log_eval(run: object, metrics: dict[str, float], out: Path | None) -> None:
    """Eval results go to the run's MLflow run when it has one, at the run's final step (where the end of
    training logged its own evaluation), so the two line up."""
    from litplug.rundir import RunDir

    run_dir = RunDir.of(run.cfg)  # type: ignore[attr-defined]
    info = run_dir.mlflow_run()
    if not run.cfg.tracking.enabled or info is None:  # type: ignore[attr-defined]
        return
    import mlflow

    step = int(run_dir.results().get("global_step") or 0)
    client = mlflow.MlflowClient(tracking_uri=info["tracking_uri"])
    for key, value in metrics.items():
        client.log_metric(info["run_id"], key, value, step=step)
    if out is not None:
        client.log_artifact(info["run_id"], str(out))


def _cmd_generate(args: argparse.Namespace) -> int:
    from litplug import run as run_mod
    from litplug.generate import generate

    config_path, overrides = _run_or_config(args.target, args.overrides)
    run = _setup_for_inference(run_mod, config_path, overrides)
    module = run_mod.build_module(run)
    outputs = generate(module.model, run.tokenizer, args.prompt, run.pm, args.max_new_tokens,
                       num_samples=args.num_samples, temperature=args.temperature, seed=run.cfg.run.seed)
    for prompt, completions in zip(args.prompt, outputs):
        for completion in completions:
            print(json.dumps({"prompt": prompt, "completion": completion}))
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from litplug.plugins import all_installed_manager

    methods: dict[str, Callable[[list[str]], int]] = {}
    for found in all_installed_manager().hook.merge_methods():
        methods.update(found or {})
    if not args.method:
        print("Merge methods: " + (", ".join(sorted(methods)) or "none (install a merging plugin)"))
        return 0
    if args.method not in methods:
        raise ConfigError(f"Unknown merge method '{args.method}'. Available: {', '.join(sorted(methods)) or 'none'}.")
    return int(methods[args.method](list(args.rest)) or 0)


def _cmd_new_plugin(args: argparse.Namespace) -> int:
    from litplug.scaffold import scaffold

    target = scaffold(args.name, args.kind, Path(args.dir) if args.dir else None)
    print(f"Created plugin '{args.name}' in {target}.\nInstall it with: pip install -e {target}\n"
          f"Test it with:    pytest {target}")
    return 0


def build_parser(plugin_verb: str | None = None) -> argparse.ArgumentParser:
    """The verbs: the built-in ones, and ``plugin_verb``'s real parser from its plugin, or else every
    installed plugin verb by name only."""
    parser = argparse.ArgumentParser(
        prog="litplug", description="Train, evaluate and merge language models; research methods are plugins.",
        epilog="Verbs marked (plugin ...) come from installed plugins (`litplug plugins` lists them). Exit codes: "
               "0 success, 2 usage/config/plugin/data error, 1 run failure, 128+N stopped by signal N.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    def with_config(name: str, help_: str, fn: Callable[[argparse.Namespace], int], what: str = "CONFIG") -> None:
        p = sub.add_parser(name, help=help_)
        if what == "CONFIG":  # optional: without it, the embedded defaults
            p.add_argument("config", metavar=what, nargs="?")
        else:
            p.add_argument("target", metavar=what)
        p.add_argument("overrides", nargs="*", metavar="key=value")
        p.set_defaults(func=fn)
        if name == "eval":
            p.add_argument("--out", help="write the results JSON here (default: RUN/eval.json)")
        if name == "generate":
            p.add_argument("--prompt", action="append", required=True, help="repeat for several prompts")
            p.add_argument("--max-new-tokens", type=int, default=32)
            p.add_argument("--num-samples", type=int, default=1)
            p.add_argument("--temperature", type=float, default=1.0)

    with_config("train", "train a model from a YAML config", _cmd_train)
    with_config("config", "print the resolved, validated config", _cmd_config)
    with_config("eval", "exact match / pass@k of a finished RUN dir (or a CONFIG)", _cmd_eval, "RUN")
    with_config("generate", "sample completions from a finished RUN dir (or a CONFIG)", _cmd_generate, "RUN")
    p = sub.add_parser("plugins", help="list installed plugins from their metadata (--check: import and validate)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--check", action="store_true",
                   help="import every plugin and validate it against the hook contract; exit 2 if any is broken")
    p.set_defaults(func=_cmd_plugins)
    p = sub.add_parser("merge", help="merge models with a method a plugin provides (no METHOD: list them)")
    p.add_argument("method", nargs="?")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_merge)
    from litplug.sweep.command import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    p = sub.add_parser("new-plugin", help="scaffold a plugin package that passes the conformance suite")
    p.add_argument("name")
    p.add_argument("--kind", required=True, choices=["objectives", "data", "kernels", "merging"])
    p.add_argument("--dir", help="parent folder (default: plugins/<kind> in a litplug checkout, else .)")
    p.set_defaults(func=_cmd_new_plugin)
    if plugin_verb is not None:  # import the one plugin that provides it, and let it add its parser
        from litplug.plugins import verb_manager

        verb_manager(plugin_verb).hook.cli_commands(subparsers=sub)
    else:  # listed by name from the plugins' metadata, so `--help` and usage errors show them
        for verb, providers in sorted(plugin_verbs().items()):
            sub.add_parser(verb, help=f"(plugin {', '.join(providers)}; `litplug {verb} --help` for more)")
    return parser


def plugin_verbs() -> dict[str, list[str]]:
    """Installed plugins' verbs and their providers, read from entry-point metadata (no plugin imported)."""
    from litplug.plugins import verb_providers

    return {v: p for v, p in verb_providers().items() if v not in BUILTIN_VERBS}


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a command line; ``key=value`` overrides may come before or after the --options.

    A plugin verb imports only the plugin providing it; an unknown verb imports none.
    """
    argv = list(argv)
    verb = argv[0] if argv and not argv[0].startswith("-") else None
    declared = plugin_verbs()
    parser = build_parser(plugin_verb=verb if verb in declared else None)
    if verb is not None and verb not in BUILTIN_VERBS and verb not in declared:
        known = [*BUILTIN_VERBS, *sorted(declared)]
        close = difflib.get_close_matches(verb, known, n=1)
        parser.error(f"argument VERB: invalid choice: {verb!r} (choose from {', '.join(known)})"
                     + (f"; did you mean '{close[0]}'?" if close else ". A plugin's verb needs the plugin installed "
                        "(`litplug plugins` lists them with their verbs)."))
    args, extra = parser.parse_known_args(argv)
    # argparse ends a verb's positional list at its first --option: collect the overrides that follow
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from litplug import quiet

    quiet.install()  # known-benign third-party warnings; litplug's own and real problems still show
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            return 2
        if getattr(args, "config", None) and "=" in args.config and not Path(args.config).exists():
            args.overrides, args.config = [args.config, *args.overrides], None  # only overrides given
        return int(args.func(args) or 0)
    except LitplugError as exc:
        print(f"litplug: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except RunFailure as exc:
        print(f"litplug: run failed: {exc}", file=sys.stderr)
        return exc.exit_code
    except Interrupted as exc:  # SIGTERM / Ctrl-C: 128 + the signal; never 0, which schedulers take for success
        return exc.exit_code
    except SystemExit as exc:  # argparse usage errors exit 2 already
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - an unexpected failure: show it, exit 1
        traceback.print_exc()
        return 1


def console() -> None:
    """The ``litplug`` command: :func:`main`, then a quick exit.

    Tearing down the interpreter after torch, Lightning and transformers were imported takes ~2 s of
    freeing objects that the operating system frees at once. So, once the work is done: let non-daemon
    threads finish, run the ``atexit`` handlers (logging's flush, multiprocessing's joins, MLflow's), flush
    stdout and stderr, and leave with ``os._exit``. Nothing that Python's own exit would save is skipped
    except the freeing.
    """
    import atexit
    import threading

    code = main()
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`litplug ... | head`)
            pass
    os._exit(code)


if __name__ == "__main__":
    console()
