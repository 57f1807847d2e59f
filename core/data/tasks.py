"""A registry of seeded synthetic tasks, so experiments need no downloads and are exactly reproducible.

Every task turns a seed into whitespace-tokenised :class:`Example` objects. Splits are assigned by a
stable content hash (:func:`split_of`), so train, validation and test never share an example -
whatever the seeds used to draw them - and a split's examples are distinct within the split (the
spt plugin's ``domain`` task is the one deliberate exception: it cycles through a finite pool so that
repetition effects can be studied).

Use :func:`get_task` to build a task from a name and a parameter mapping (e.g. from the run config);
add a task with the :func:`register_task` decorator on a dataclass subclass of :class:`Task`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import operator
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn, TypeVar

SPLITS: tuple[str, ...] = ("train", "validation", "test")
# Share of the example space that the content hash sends to each split (train, validation, test).
SPLIT_FRACTIONS: Mapping[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}


@dataclass(frozen=True)
class Example:
    """One example. Both fields are whitespace-separated tokens; plain-text tasks use prompt ""."""

    prompt: str
    answer: str


class TaskError(ValueError):
    """A task name, parameter, split or request is invalid; the message says which and what is valid."""


def stable_int(*parts: Any) -> int:
    """A 64-bit integer from JSON-able parts via sha256: stable across processes (unlike hash())."""
    key = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def split_of(example: Example) -> str:
    """The split an example belongs to, from a sha256 of its content: the same text always lands in
    the same split, so splits stay disjoint across seeds, sizes and processes."""
    digest = hashlib.sha256(f"{example.prompt}\x1f{example.answer}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    edge = 0.0
    for split in SPLITS:
        edge += SPLIT_FRACTIONS[split]
        if u < edge:
            return split
    return SPLITS[-1]


class Task:
    """Base class. Subclasses are dataclasses whose fields are the task's parameters (with defaults),
    validated in ``__post_init__``; they implement :meth:`vocab` and :meth:`sample`."""

    name: ClassVar[str]
    has_answers: ClassVar[bool]
    # Draw budget for examples(): min_draws + draws_per_example * n in all, and at most max_stall draws
    # in a row without a new example. Generous for large example spaces (a 10% split needs ~10 draws
    # per example); it runs out only when the split's share of the example space is (nearly) exhausted.
    min_draws: ClassVar[int] = 2_000
    draws_per_example: ClassVar[int] = 200
    max_stall: ClassVar[int] = 5_000

    # ---- to implement -------------------------------------------------------------------------
    def vocab(self) -> list[str]:
        """Every token the task can ever emit, in a deterministic order, without duplicates."""
        raise NotImplementedError

    def sample(self, rng: random.Random) -> Example:
        """One random example from the task's whole example space (before split assignment)."""
        raise NotImplementedError

    # ---- shared machinery ---------------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        """The task's parameter names (its dataclass init fields), in declaration order."""
        return [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]

    def params(self) -> dict[str, Any]:
        """The parameter values, e.g. for logging or for seeding."""
        return {k: getattr(self, k) for k in self.param_names()}

    def examples(self, split: str, n: int, seed: int) -> list[Example]:
        """``n`` distinct examples of ``split``; deterministic in (params, split, n, seed), and the
        first ``m`` examples for ``n`` are the examples for ``m``."""
        n, seed = self._check_request(split, n, seed)
        return self._draw(split, n, self._rng(split, seed))

    def _rng(self, *parts: Any) -> random.Random:
        return random.Random(stable_int(self.name, self.params(), *parts))

    def _check_request(self, split: str, n: int, seed: int) -> tuple[int, int]:
        if split not in SPLITS:
            raise TaskError(f"task {self.name!r}: unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        try:
            n, seed = operator.index(n), operator.index(seed)
        except TypeError:
            raise TaskError(
                f"task {self.name!r}: n and seed must be integers, got n={n!r}, seed={seed!r}"
            ) from None
        if n < 0:
            raise TaskError(f"task {self.name!r}: n must be >= 0, got {n}")
        return n, seed

    def _draw(self, split: str, n: int, rng: random.Random) -> list[Example]:
        """Sample until ``n`` distinct examples of ``split`` are found, within a bounded budget."""
        budget = self.min_draws + self.draws_per_example * n
        seen: set[Example] = set()
        out: list[Example] = []
        draws = stall = 0
        while len(out) < n:
            if draws >= budget or stall >= self.max_stall:
                raise TaskError(
                    f"task {self.name!r} ({self._params_text()}): split {split!r} found only {len(out)} "
                    f"distinct examples of the {n} requested in {draws} draws; the task's example space "
                    f"is too small - ask for fewer examples or enlarge the task's parameters"
                )
            draws += 1
            stall += 1
            ex = self.sample(rng)
            if ex not in seen and split_of(ex) == split:
                seen.add(ex)
                out.append(ex)
                stall = 0
        return out

    def _params_text(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.params().items())

    def _fail(self, param: str, valid: str) -> NoReturn:
        raise TaskError(
            f"task {self.name!r}: invalid value {getattr(self, param)!r} for parameter {param!r}; "
            f"valid: {valid} (parameters: {', '.join(self.param_names())})"
        )

    def _check_int(self, param: str, lo: int, hi: int | None = None) -> None:
        value = getattr(self, param)
        valid = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
        if isinstance(value, bool) or not isinstance(value, int):
            self._fail(param, valid)
        if value < lo or (hi is not None and value > hi):
            self._fail(param, valid)

    def _check_bool(self, param: str) -> None:
        if not isinstance(getattr(self, param), bool):
            self._fail(param, "true or false")

    def _check_choice(self, param: str, choices: Sequence[str]) -> None:
        if getattr(self, param) not in choices:
            self._fail(param, "one of " + ", ".join(repr(c) for c in choices))


TASKS: dict[str, type[Task]] = {}

T = TypeVar("T", bound=type[Task])


def register_task(cls: T) -> T:
    """Class decorator adding a dataclass :class:`Task` subclass to :data:`TASKS` under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Task) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"register_task needs a dataclass subclass of Task, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__} must set a non-empty class attribute `name`")
    if not isinstance(getattr(cls, "has_answers", None), bool):
        raise TypeError(f"{cls.__qualname__} must set the class attribute `has_answers` to a bool")
    if name in TASKS and TASKS[name] is not cls:
        raise TypeError(f"task name {name!r} is already registered by {TASKS[name].__qualname__}")
    TASKS[name] = cls
    return cls


def get_task(name: str, params: Mapping[str, Any] | None = None) -> Task:
    """Build a registered task; unknown names and parameters are reported with the nearest valid one.

    A name not registered yet is looked up among the installed plugins' declared tasks (entry-point
    group ``litplug.tasks``), importing only the plugin that provides it."""
    if isinstance(name, str) and name not in TASKS:
        from litplug.plugins import load_declared_task

        load_declared_task(name)
    if not isinstance(name, str) or name not in TASKS:
        close = difflib.get_close_matches(str(name), list(TASKS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TaskError(f"unknown task {name!r}{hint} (valid tasks: {', '.join(sorted(TASKS))})")
    cls = TASKS[name]
    params = dict(params or {})
    valid = cls.param_names()
    unknown = [k for k in params if k not in valid]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TaskError(
            f"task {name!r}: unknown parameter(s) {', '.join(repr(k) for k in unknown)}{hint} "
            f"(valid parameters: {', '.join(valid) or 'none'})"
        )
    return cls(**params)


__all__ = [
    "SPLITS",
    "SPLIT_FRACTIONS",
    "TASKS",
    "Example",
    "Task",
    "TaskError",
    "get_task",
    "register_task",
    "stable_int",
    "split_of",
]


from litplug.data import builtin_tasks  # noqa: E402,F401 - registers the built-in tasks
