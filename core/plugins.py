"""Plugin discovery, trust and ordering.

Plugins are entry points in the group ``litplug.plugins``. A training run imports only the plugins
its config names, so installing a package never runs its code in somebody else's run. Verbs that
work on installed plugins (``litplug plugins``, ``merge``) import every installed plugin, or only
those in the ``LITPLUG_PLUGINS`` allow-list (comma-separated) when it is set.

A plugin verb (``litplug sift ...``) imports only the plugin that provides it: plugins declare their
verbs in the entry-point group ``litplug.verbs``, ``VERB = "<the object of its litplug.plugins
entry>"``, so the CLI finds the provider (and lists every verb, or says that a verb is unknown)
from installed metadata alone, and then calls that one plugin's ``cli_commands`` hook.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

import litplug
from litplug import PROJECT, hookspecs
from litplug.errors import PluginError, PluginNotInstalled

ENTRY_POINT_GROUP = "litplug.plugins"
VERB_GROUP = "litplug.verbs"
TASK_GROUP = "litplug.tasks"
ALLOW_LIST_ENV = "LITPLUG_PLUGINS"
TRACE_ENV = "LITPLUG_TRACE"
CORE_PLUGIN_NAME = "core"
EXCLUSIVE_HOOKS = ("lm_loss", "configure_optimizer")


@dataclass
class PluginRecord:
    """What ``litplug plugins`` reports about one installed plugin."""

    name: str
    distribution: str | None
    version: str | None
    status: str = "ok"  # ok | broken, once imported (--check); "unchecked" when read from metadata only
    reason: str | None = None
    entry: str | None = None  # the entry point's object, e.g. ``litplug_fsp.plugin:FSPPlugin``
    hooks: list[str] = field(default_factory=list)
    requires: str | None = None
    verbs: list[str] = field(default_factory=list)  # declared under litplug.verbs
    obj: Any = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "obj"}


def spec_arguments() -> dict[str, tuple[str, ...]]:
    """Each hook's argument names, read from the contract."""
    return {
        name: tuple(inspect.signature(fn).parameters)
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, f"{PROJECT}_spec")
    }


def implemented_hooks(obj: Any) -> list[str]:
    """Names of the attributes of ``obj`` marked with ``litplug.hookimpl``."""
    return sorted(n for n in dir(obj) if hasattr(getattr(obj, n, None), f"{PROJECT}_impl"))


def check_against_spec(obj: Any) -> str | None:
    """Why ``obj``'s hook implementations don't fit the contract, or None if they do."""
    specs = spec_arguments()
    for hook in implemented_hooks(obj):
        if hook not in specs:
            return f"implements unknown hook '{hook}' (hooks: {', '.join(sorted(specs))})"
        params = [p for p in inspect.signature(getattr(obj, hook)).parameters if p != "self"]
        extra = [p for p in params if p not in specs[hook]]
        if extra:
            return f"hook '{hook}' takes argument(s) {extra} that the spec does not have {list(specs[hook])}"
    return None


def _version_problem(name: str, obj: Any) -> str | None:
    requires = getattr(obj, "litplug_requires", None)
    if not requires:
        return None
    try:
        spec = SpecifierSet(requires)
    except InvalidSpecifier:
        return f"declares an invalid litplug_requires '{requires}'"
    if Version(litplug.__version__) not in spec:
        return (f"supports litplug {requires} but litplug {litplug.__version__} is installed; "
                f"install a version of the plugin made for this litplug")
    return None


def installed_entry_points() -> dict[str, list[EntryPoint]]:
    """Entry points by plugin name (a list, since two distributions may claim one name)."""
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, []).append(ep)
    return found


def _dist(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    return (dist.name, dist.version) if dist is not None else (None, None)


def inspect_entry_point(name: str, eps: list[EntryPoint]) -> PluginRecord:
    """Import one plugin and check it; never raises (a broken plugin is reported, not fatal)."""
    dist, version = _dist(eps[0])
    record = PluginRecord(name=name, distribution=dist, version=version)
    if len(eps) > 1:
        dists = ", ".join(str(_dist(ep)[0]) for ep in eps)
        record.status, record.reason = "broken", f"claimed by several distributions: {dists}"
        return record
    try:
        obj = eps[0].load()
    except Exception as exc:  # noqa: BLE001 - any import failure makes the plugin broken, not the tool
        record.status = "broken"
        record.reason = f"import of '{eps[0].value}' failed: {type(exc).__name__}: {exc}"
        return record
    record.obj = obj
    record.hooks = implemented_hooks(obj)
    record.requires = getattr(obj, "litplug_requires", None)
    problem = check_against_spec(obj) or _version_problem(name, obj)
    if not problem and not record.hooks:
        problem = (f"'{eps[0].value}' implements no hook (no method marked with @hookimpl from litplug.api), "
                   "so enabling it would silently do nothing")
    if problem:
        record.status, record.reason = "broken", problem
    return record


def _allowed(name: str) -> bool:
    allow = os.environ.get(ALLOW_LIST_ENV)
    return allow is None or name in {n.strip() for n in allow.split(",") if n.strip()}


def list_plugins(check: bool = True) -> list[PluginRecord]:
    """Every installed plugin (allow-list permitting); for ``litplug plugins``.

    ``check=False`` reads entry-point metadata only, imports nothing (no torch, no Lightning: a listing in
    a fraction of a second), and so can only see what metadata shows: name, distribution, version, verbs,
    and a name claimed twice. ``check=True`` imports each plugin and validates it against the hook
    contract and its ``litplug_requires``."""
    records = []
    for name, eps in sorted(installed_entry_points().items()):
        if not _allowed(name):
            continue
        if check:
            record = inspect_entry_point(name, eps)
        else:
            record = PluginRecord(name, *_dist(eps[0]), status="unchecked")
            if len(eps) > 1:
                record.status = "broken"
                record.reason = f"claimed by several distributions: {', '.join(str(_dist(ep)[0]) for ep in eps)}"
        record.entry = eps[0].value
        records.append(record)
    verbs = verb_providers()
    for record in records:
        record.verbs = sorted(v for v, names in verbs.items() if record.name in names)
    return records


def verb_providers() -> dict[str, list[str]]:
    """Each declared plugin verb and the plugins providing it, from metadata alone (nothing imported).

    A ``litplug.verbs`` entry names the same object as its distribution's ``litplug.plugins`` entry;
    one that matches none is listed with the provider ``?<distribution>``, refused when invoked.
    """
    plugin_of: dict[tuple[str | None, str], str] = {}
    for name, eps in installed_entry_points().items():
        for ep in eps:
            plugin_of[(_dist(ep)[0], ep.value)] = name
    found: dict[str, list[str]] = {}
    for ep in entry_points(group=VERB_GROUP):
        dist = _dist(ep)[0]
        name = plugin_of.get((dist, ep.value), f"?{dist}")
        if name.startswith("?") or _allowed(name):
            found.setdefault(ep.name, [])
            if name not in found[ep.name]:
                found[ep.name].append(name)
    return found


def verb_manager(verb: str) -> pluggy.PluginManager:
    """A manager holding only the plugin that provides ``verb``, to call its ``cli_commands`` hook."""
    providers = verb_providers().get(verb, [])
    if not providers:
        raise PluginError(f"No installed plugin declares the verb '{verb}' (entry-point group {VERB_GROUP}).")
    if len(providers) > 1:
        raise PluginError(f"The verb '{verb}' is provided by several plugins ({', '.join(providers)}); uninstall "
                          f"all but one, or choose one with {ALLOW_LIST_ENV}=NAME.")
    name = providers[0]
    if name.startswith("?"):
        raise PluginError(f"The verb '{verb}' is declared by the distribution {name[1:]} under {VERB_GROUP}, but "
                          f"not as the object of one of its {ENTRY_POINT_GROUP} entry points; fix the plugin's "
                          f"pyproject.toml and reinstall it.")
    record = inspect_entry_point(name, installed_entry_points()[name])
    if record.status != "ok":
        raise PluginError(f"The verb '{verb}' comes from plugin '{name}' (distribution {record.distribution} "
                          f"{record.version}), which cannot be used: {record.reason}. Reinstall or fix the plugin.")
    pm = new_manager()
    register_all(pm, {name: _default_instance(record.obj)})
    return pm


def _install_hint(name: str) -> str:
    return f"pip install litplug-{name.replace('_', '-')}"


def load_plugin_classes(names: list[str]) -> dict[str, PluginRecord]:
    """Import the named plugins, or raise one PluginError saying what to install or fix."""
    available = installed_entry_points()
    records: dict[str, PluginRecord] = {}
    for name in names:
        if name not in available:
            have = ", ".join(sorted(available)) or "none"
            raise PluginNotInstalled(name,
                f"Plugin '{name}' is named in the config (plugins.{name}) but is not installed. "
                f"Install it (e.g. `{_install_hint(name)}`, or `pip install -e plugins/<kind>/{name}` from a "
                f"litplug checkout), or remove plugins.{name}. Installed plugins: {have}."
            )
        record = inspect_entry_point(name, available[name])
        if record.status != "ok":
            raise PluginError(
                f"Plugin '{name}' (distribution {record.distribution} {record.version}) cannot be used: "
                f"{record.reason}. Reinstall or fix the plugin, or remove plugins.{name} from the config."
            )
        records[name] = record
    return records


def check_order(records: dict[str, PluginRecord]) -> None:
    """Declared before/after constraints hold in the config's order; exclusive hooks have one owner."""
    order = list(records)
    for name, record in records.items():
        for other in getattr(record.obj, "run_after", ()) or ():
            if other in records and order.index(other) > order.index(name):
                raise PluginError(f"Plugin '{name}' must run after '{other}', but the config lists it before. "
                                  f"Reorder the plugins: section so '{other}' comes first.")
        for other in getattr(record.obj, "run_before", ()) or ():
            if other in records and order.index(other) < order.index(name):
                raise PluginError(f"Plugin '{name}' must run before '{other}', but the config lists it after. "
                                  f"Reorder the plugins: section so '{name}' comes first.")
    for hook in EXCLUSIVE_HOOKS:
        owners = [n for n, r in records.items() if hook in r.hooks]
        if len(owners) > 1:
            raise PluginError(f"Plugins '{owners[0]}' and '{owners[1]}' both implement the exclusive hook "
                              f"'{hook}'; enable only one of them.")


def instantiate(record: PluginRecord, plugin_config: Any) -> Any:
    """A plugin class gets its validated config; a module plugin is used as it is."""
    obj = record.obj
    if not inspect.isclass(obj):
        return obj
    return obj(plugin_config) if getattr(obj, "config_class", None) is not None else obj()


# Called with every new plugin manager: the conformance harness records which hooks a run calls.
MANAGER_OBSERVERS: list[Callable[[pluggy.PluginManager], None]] = []


def new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    if os.environ.get(TRACE_ENV):
        _enable_trace(pm)
    for observe in MANAGER_OBSERVERS:
        observe(pm)
    return pm


def register_all(pm: pluggy.PluginManager, plugins: dict[str, Any]) -> None:
    """Register the core defaults, then the plugins so that hooks run in the config's order.

    pluggy calls implementations last-registered-first, so the core goes in first (it runs last)
    and the plugins go in reversed.
    """
    from litplug.defaults import CorePlugin

    pm.register(CorePlugin(), name=CORE_PLUGIN_NAME)
    for name, plugin in reversed(list(plugins.items())):
        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"Plugin '{name}' does not match the hook contract: {exc}") from None


def _enable_trace(pm: pluggy.PluginManager) -> None:
    """``LITPLUG_TRACE=1``: print which plugin ran at which hook, in call order, to stderr."""

    def before(hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
        names = [impl.plugin_name for impl in reversed(impls)]
        print(f"[litplug trace] {hook_name}: {' -> '.join(names) or '(no plugin)'}", file=sys.stderr)

    def after(outcome: Any, hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
        pass

    pm.add_hookcall_monitoring(before, after)


def all_installed_manager() -> pluggy.PluginManager:
    """A manager with every usable installed plugin (for verbs like ``merge``); broken ones skipped,
    including one that cannot be built with its default config (e.g. a required config field)."""
    pm = new_manager()
    plugins = {}
    for record in list_plugins():
        if record.status == "ok":
            try:
                plugins[record.name] = _default_instance(record.obj)
            except Exception as exc:  # noqa: BLE001 - one plugin's bad defaults must not break the verb
                record.status, record.reason = "broken", (f"cannot be built with its default config: "
                                                          f"{type(exc).__name__}: {exc}")
        if record.status != "ok":
            print(f"warning: skipping broken plugin '{record.name}': {record.reason}", file=sys.stderr)
    register_all(pm, plugins)
    return pm


def _default_instance(obj: Any) -> Any:
    """A plugin class with its default config (verbs parse their own options); a module as it is."""
    if inspect.isclass(obj):
        cfg_cls = getattr(obj, "config_class", None)
        return obj(cfg_cls()) if cfg_cls is not None else obj()
    return obj


def load_plugins(cfg: Any) -> tuple[pluggy.PluginManager, dict[str, Any], dict[str, PluginRecord]]:
    """Import, validate and register exactly the plugins the config names.

    Lives here rather than in ``litplug.run`` so that ``litplug config`` does not import Lightning.
    """
    from litplug import config as config_mod

    records = load_plugin_classes(config_mod.active_plugin_names(cfg))
    check_order(records)
    instances = {}
    for name, record in records.items():
        plugin_cfg = config_mod.validate_plugin_config(cfg, name, getattr(record.obj, "config_class", None))
        instances[name] = instantiate(record, plugin_cfg)
    pm = new_manager()
    register_all(pm, instances)
    register_tasks(pm)
    pm.hook.check_config(config=cfg)  # a plugin's own start-up checks: ConfigError, exit 2
    return pm, instances, records


def register_tasks(pm: pluggy.PluginManager) -> None:
    """Add the synthetic tasks the registered plugins provide (``synthetic_tasks``) to the registry."""
    from litplug.data.tasks import register_task

    for tasks in pm.hook.synthetic_tasks():
        for task in tasks or []:
            register_task(task)


def task_providers() -> dict[str, list[str]]:
    """Each task declared under ``litplug.tasks`` and the plugins providing it, from metadata alone."""
    plugin_of = {(_dist(ep)[0], ep.value): name for name, eps in installed_entry_points().items() for ep in eps}
    found: dict[str, list[str]] = {}
    for ep in entry_points(group=TASK_GROUP):
        dist = _dist(ep)[0]
        found.setdefault(ep.name, []).append(plugin_of.get((dist, ep.value), f"?{dist}"))
    return found


def load_declared_task(name: str) -> bool:
    """Import the one plugin that declares task ``name`` (entry-point group ``litplug.tasks``) and register
    its tasks; False when no installed plugin declares it. A broken provider is a PluginError."""
    providers = task_providers().get(name, [])
    if not providers:
        return False
    if len(providers) > 1 or providers[0].startswith("?"):
        raise PluginError(f"The task '{name}' is declared under {TASK_GROUP} by {', '.join(providers)}; exactly one "
                          f"installed plugin's {ENTRY_POINT_GROUP} object must declare it. Fix or uninstall the "
                          "others.")
    plugin = providers[0]
    record = inspect_entry_point(plugin, installed_entry_points()[plugin])
    if record.status != "ok":
        raise PluginError(f"The task '{name}' comes from plugin '{plugin}' (distribution {record.distribution}), "
                          f"which cannot be used: {record.reason}. Reinstall or fix the plugin.")
    pm = new_manager()
    pm.register(_default_instance(record.obj), name=plugin)
    register_tasks(pm)
    return True


def manager_for(cfg: Any) -> pluggy.PluginManager:
    """The hooks of exactly the plugins ``cfg`` enables (validated as a run would), e.g. for a verb that
    scores a merged model with the generation hooks of the run that trained it."""
    return load_plugins(cfg)[0]
