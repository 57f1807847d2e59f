"""A registry of seeded synthetic tasks, so experiments need no downloads and are exactly reproducible.

Every task turns a seed into whitespace-tokenised :class:`Example` objects. Splits are assigned by a
stable content hash (:func:`split_of`), so train, validation and test never share an example -
whatever the seeds used to draw them - and a split's examples are distinct within the split (the
``domain`` task's train split is the one deliberate exception: it cycles through a finite pool so that
repetition effects can be studied).

Use :func:`get_task` to build a task from a name and a parameter mapping (e.g. from the run config);
add a task with the :func:`register_task` decorator on a dataclass subclass of :class:`Task`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
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


def _stable_int(*parts: Any) -> int:
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
        return random.Random(_stable_int(self.name, self.params(), *parts))

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
    """Build a registered task; unknown names and parameters are reported with the nearest valid one."""
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


def _nodes(ids: Sequence[int], prefix: str = "n") -> str:
    return " ".join(f"{prefix}{i}" for i in ids)


# ---------------------------------------------------------------------------------------------------
# Planning tasks
# ---------------------------------------------------------------------------------------------------


@register_task
@dataclass(frozen=True)
class PathStar(Task):
    """Path-finding on a path-star graph (Bachmann & Nagarajan 2024, "The pitfalls of next-token
    prediction"), the task where teacher-forced next-token training learns a shortcut (the "Clever Hans
    cheat") and fails to plan.

    The graph has a start node and ``degree`` arms; following the paper's G(d, l) convention,
    ``path_length`` counts the nodes on the start-to-leaf path *including the start*, so each arm holds
    ``path_length - 1`` nodes and the graph ``degree * (path_length - 1) + 1`` nodes, labelled with
    distinct random ints from ``range(num_nodes)`` (tokens ``n0`` .. ``n{num_nodes-1}``). Edges point
    away from the start.

    prompt: the shuffled edges as ``src dst |`` triples, then ``/ start goal =``, e.g.
    ``n3 n7 | n7 n9 | n3 n12 | n12 n40 | / n3 n40 =``
    answer: the path from start to goal, ``n3 n12 n40`` (``path_length`` tokens). The goal is the leaf of
    a uniformly chosen arm.
    """

    name: ClassVar[str] = "path_star"
    has_answers: ClassVar[bool] = True

    degree: int = 2
    path_length: int = 5
    num_nodes: int = 50

    def __post_init__(self) -> None:
        self._check_int("degree", 1)
        self._check_int("path_length", 2)
        self._check_int("num_nodes", 2)
        need = self.degree * (self.path_length - 1) + 1
        if self.num_nodes < need:
            self._fail("num_nodes", f"an integer >= degree * (path_length - 1) + 1 = {need}")

    def vocab(self) -> list[str]:
        return [f"n{i}" for i in range(self.num_nodes)] + ["|", "/", "="]

    def sample(self, rng: random.Random) -> Example:
        arm_len = self.path_length - 1
        labels = rng.sample(range(self.num_nodes), self.degree * arm_len + 1)
        start = labels[0]
        arms = [labels[1 + a * arm_len : 1 + (a + 1) * arm_len] for a in range(self.degree)]
        edges = [(src, dst) for arm in arms for src, dst in zip([start, *arm[:-1]], arm)]
        rng.shuffle(edges)
        arm = arms[rng.randrange(self.degree)]
        prompt = " ".join(f"n{s} n{d} |" for s, d in edges) + f" / n{start} n{arm[-1]} ="
        return Example(prompt=prompt, answer=_nodes([start, *arm]))


@register_task
@dataclass(frozen=True)
class SiblingDiscovery(Task):
    """An in-context, exact-match version of the sibling-discovery planning task (Nagarajan et al.
    2025, "Roll the dice & look before you leap"; used for future-summary prediction in Mahajan et al.
    2025, "Beyond Multi-Token Prediction"). Emitting children *before* their parent forces the model to
    settle on the parent (a latent plan) before it writes it.

    Exact definition: draw ``num_parents * (num_children + 1)`` distinct ints from
    ``range(vocab_size)`` (tokens ``n0`` .. ``n{vocab_size-1}``); the first ``num_parents`` are parents,
    each owning ``num_children`` of the rest. A query child ``q`` is chosen uniformly among all children.

    prompt: all ``parent child |`` edges in random order, then ``/ q =``, e.g.
    ``n5 n9 | n2 n11 | n5 n30 | n2 n7 | n5 n41 | n2 n18 | / n30 =``
    answer: ``q``'s siblings (the other children of its parent) in the order their edges appear in the
    prompt, then the parent: ``n9 n41 n5`` (``num_children`` tokens).
    """

    name: ClassVar[str] = "sibling_discovery"
    has_answers: ClassVar[bool] = True

    num_children: int = 3
    num_parents: int = 2
    vocab_size: int = 50

    def __post_init__(self) -> None:
        self._check_int("num_children", 2)
        self._check_int("num_parents", 1)
        self._check_int("vocab_size", 3)
        need = self.num_parents * (self.num_children + 1)
        if self.vocab_size < need:
            self._fail("vocab_size", f"an integer >= num_parents * (num_children + 1) = {need}")

    def vocab(self) -> list[str]:
        return [f"n{i}" for i in range(self.vocab_size)] + ["|", "/", "="]

    def sample(self, rng: random.Random) -> Example:
        k = self.num_children
        labels = rng.sample(range(self.vocab_size), self.num_parents * (k + 1))
        parents, rest = labels[: self.num_parents], labels[self.num_parents :]
        edges = [(p, c) for i, p in enumerate(parents) for c in rest[i * k : (i + 1) * k]]
        rng.shuffle(edges)
        parent, query = edges[rng.randrange(len(edges))]
        siblings = [c for p, c in edges if p == parent and c != query]
        prompt = " ".join(f"n{p} n{c} |" for p, c in edges) + f" / n{query} ="
        return Example(prompt=prompt, answer=_nodes([*siblings, parent]))


# ---------------------------------------------------------------------------------------------------
# Question answering
# ---------------------------------------------------------------------------------------------------


@register_task
@dataclass(frozen=True)
class Arithmetic(Task):
    """Multi-digit addition or multiplication, one token per digit.

    Operands have exactly ``digits`` digits (no leading zero; 0-9 when ``digits`` is 1).
    prompt: ``1 2 3 + 4 5 6 =`` (``*`` for ``op="mul"``); answer: the result's digits, most significant
    first (``5 7 9``), or least significant first when ``reverse_answer`` is true (easier to learn
    left to right, since carries propagate that way).
    """

    name: ClassVar[str] = "arithmetic"
    has_answers: ClassVar[bool] = True
    OPS: ClassVar[dict[str, str]] = {"add": "+", "mul": "*"}

    op: str = "add"
    digits: int = 3
    reverse_answer: bool = False

    def __post_init__(self) -> None:
        self._check_choice("op", list(self.OPS))
        self._check_int("digits", 1, 30)
        self._check_bool("reverse_answer")

    def vocab(self) -> list[str]:
        return [str(d) for d in range(10)] + [self.OPS[self.op], "="]

    def sample(self, rng: random.Random) -> Example:
        lo = 0 if self.digits == 1 else 10 ** (self.digits - 1)
        hi = 10**self.digits - 1
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        result = str(a + b if self.op == "add" else a * b)
        if self.reverse_answer:
            result = result[::-1]
        prompt = f"{' '.join(str(a))} {self.OPS[self.op]} {' '.join(str(b))} ="
        return Example(prompt=prompt, answer=" ".join(result))


@register_task
@dataclass(frozen=True)
class QA(Task):
    """Key-value reading: find a key in the context and copy the value after it (an associative-recall /
    extractive-QA probe; the answer is always a span of the context).

    The context holds ``context_len`` pairs ``k<i> v<j>`` with distinct keys from ``range(num_keys)`` and
    values drawn (with repetition) from ``range(num_values)``. prompt: ``k3 v17 k9 v2 ... ? k9 =``;
    answer: ``v2``, the value right after the queried key.
    """

    name: ClassVar[str] = "qa"
    has_answers: ClassVar[bool] = True

    context_len: int = 16  # number of key-value pairs (2 * context_len context tokens)
    num_keys: int = 64
    num_values: int = 64

    def __post_init__(self) -> None:
        self._check_int("num_keys", 1)
        self._check_int("num_values", 1)
        self._check_int("context_len", 1, self.num_keys)

    def vocab(self) -> list[str]:
        keys = [f"k{i}" for i in range(self.num_keys)]
        return keys + [f"v{i}" for i in range(self.num_values)] + ["?", "="]

    def sample(self, rng: random.Random) -> Example:
        keys = rng.sample(range(self.num_keys), self.context_len)
        values = [rng.randrange(self.num_values) for _ in keys]
        i = rng.randrange(self.context_len)
        context = " ".join(f"k{k} v{v}" for k, v in zip(keys, values))
        return Example(prompt=f"{context} ? k{keys[i]} =", answer=f"v{values[i]}")


# ---------------------------------------------------------------------------------------------------
# Text distributions for specialised pretraining: "general" and "domain"
# ---------------------------------------------------------------------------------------------------

_DIGITS = [str(d) for d in range(10)]
_DETS = ["the", "a", "every", "some", "this", "that", "no", "each"]
_ADJS = ["old", "new", "big", "small", "red", "green", "quiet", "loud", "bright", "dark", "warm", "cold",
         "quick", "slow", "round", "sharp", "soft", "hard", "early", "late"]
_NOUNS = ["cat", "dog", "bird", "tree", "river", "stone", "house", "road", "city", "child", "king",
          "ship", "star", "book", "door", "field", "hill", "lamp", "boat", "cloud", "horse", "wind",
          "garden", "letter", "market", "window", "bridge", "forest", "island", "teacher", "farmer",
          "value"]
_VERBS = ["sees", "finds", "likes", "builds", "moves", "holds", "takes", "makes", "follows", "counts",
          "opens", "crosses", "watches", "carries", "reads", "paints", "keeps", "calls", "meets", "loses"]
_PREPS = ["in", "on", "near", "under", "over", "with", "from", "behind"]
_CONJS = ["and", "but", "so", "while"]
_GENERAL_PUNCT = [".", ",", "(", ")"]

_DOMAIN_KEYWORDS = ["let", "print", "#"]
_DOMAIN_VARS = [f"x{i}" for i in range(8)]
_DOMAIN_OPS = ["+", "-", "*"]
_DOMAIN_PUNCT = ["=", ";", "(", ")"]
# Words that domain comments borrow from the general vocabulary (with very different frequencies).
_DOMAIN_COMMENT_WORDS = ["value", "new", "old", "big", "small", "the", "count", "sum"]


_ZIPF_CUM_WEIGHTS: dict[tuple[int, float], list[float]] = {}


def _zipf_choice(rng: random.Random, words: Sequence[str], s: float = 1.1) -> str:
    """A Zipf-distributed pick (rank r has weight 1/r^s), giving natural-language-like skew."""
    key = (len(words), s)
    cum = _ZIPF_CUM_WEIGHTS.get(key)
    if cum is None:
        cum = list(itertools.accumulate(1.0 / (r + 1) ** s for r in range(len(words))))
        _ZIPF_CUM_WEIGHTS[key] = cum
    return rng.choices(words, cum_weights=cum)[0]


def _unique(tokens: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(tokens))


@register_task
@dataclass(frozen=True)
class General(Task):
    """Generic "web text": sentences from a small probabilistic grammar with Zipfian word choice.

    sentence := NP VP [PP] [CONJ NP VP] "." ; NP := DET [ADJ] NOUN ["(" ADJ NOUN ")"] | NUMBER NOUN ;
    VP := VERB NP ; PP := PREP NP ; NUMBER is 1-2 digit tokens; a "," sometimes precedes CONJ.
    Each example is a plain-text document (``prompt == ""``) of exactly ``length`` tokens: sentences are
    generated until the length is reached and the last one is cut.
    """

    name: ClassVar[str] = "general"
    has_answers: ClassVar[bool] = False

    length: int = 48

    def __post_init__(self) -> None:
        self._check_int("length", 1)

    def vocab(self) -> list[str]:
        return _unique(_DETS + _ADJS + _NOUNS + _VERBS + _PREPS + _CONJS + _DIGITS + _GENERAL_PUNCT)

    def _np(self, rng: random.Random) -> list[str]:
        if rng.random() < 0.12:
            number = [rng.choice(_DIGITS[1:])] + ([rng.choice(_DIGITS)] if rng.random() < 0.4 else [])
            return [*number, _zipf_choice(rng, _NOUNS)]
        out = [_zipf_choice(rng, _DETS)]
        if rng.random() < 0.4:
            out.append(_zipf_choice(rng, _ADJS))
        out.append(_zipf_choice(rng, _NOUNS))
        if rng.random() < 0.05:
            out += ["(", _zipf_choice(rng, _ADJS), _zipf_choice(rng, _NOUNS), ")"]
        return out

    def _sentence(self, rng: random.Random) -> list[str]:
        out = self._np(rng) + [_zipf_choice(rng, _VERBS)] + self._np(rng)
        if rng.random() < 0.35:
            out += [_zipf_choice(rng, _PREPS)] + self._np(rng)
        if rng.random() < 0.25:
            out += ([","] if rng.random() < 0.5 else []) + [_zipf_choice(rng, _CONJS)]
            out += self._np(rng) + [_zipf_choice(rng, _VERBS)] + self._np(rng)
        return [*out, "."]

    def sample(self, rng: random.Random) -> Example:
        tokens: list[str] = []
        while len(tokens) < self.length:
            tokens += self._sentence(rng)
        return Example(prompt="", answer=" ".join(tokens[: self.length]))


@register_task
@dataclass(frozen=True)
class Domain(Task):
    """A "specialised domain": programs in a tiny assignment language, from a *finite* pool of
    documents so that training on it repeats data (for data-repetition / specialised-pretraining
    experiments next to ``general``).

    statement := "let" VAR "=" EXPR ";" | "print" VAR ";" | "#" WORD+ ";"
    EXPR := TERM [OP TERM] | "(" EXPR ")" OP TERM (nesting depth <= 2); TERM := VAR | NUMBER.
    Variables are scoped: an expression or print only uses variables already assigned in the same
    document (so there are long-range dependencies). It shares digits, parentheses and a few comment
    words with ``general``, with very different statistics. Documents are plain text (``prompt == ""``)
    of exactly ``length`` tokens (the last statement is cut).

    Splits: the train pool is the first ``num_documents`` distinct train-hashed documents from a stream
    seeded by ``pool_seed`` only (so pools for different ``num_documents`` are nested, and the pool does
    not depend on the ``seed`` given to :meth:`examples`). ``examples("train", n, seed)`` cycles through
    that pool, reshuffled (by ``seed``) each pass, so ``n > num_documents`` repeats documents.
    Validation and test are fresh, distinct documents from the same distribution, disjoint from train.
    """

    name: ClassVar[str] = "domain"
    has_answers: ClassVar[bool] = False

    length: int = 48
    num_documents: int = 200
    pool_seed: int = 0

    def __post_init__(self) -> None:
        self._check_int("length", 1)
        self._check_int("num_documents", 1)
        self._check_int("pool_seed", 0)

    def vocab(self) -> list[str]:
        return _unique(
            _DOMAIN_KEYWORDS + _DOMAIN_VARS + _DIGITS + _DOMAIN_OPS + _DOMAIN_PUNCT + _DOMAIN_COMMENT_WORDS
        )

    def _term(self, rng: random.Random, defined: list[str]) -> list[str]:
        if defined and rng.random() < 0.6:
            return [rng.choice(defined)]
        return [rng.choice(_DIGITS[1:])] + ([rng.choice(_DIGITS)] if rng.random() < 0.5 else [])

    def _expr(self, rng: random.Random, defined: list[str], depth: int = 0) -> list[str]:
        r = rng.random()
        if depth < 2 and r < 0.25:
            inner = self._expr(rng, defined, depth + 1)
            return ["(", *inner, ")", rng.choice(_DOMAIN_OPS), *self._term(rng, defined)]
        out = self._term(rng, defined)
        if r < 0.75:
            out += [rng.choice(_DOMAIN_OPS), *self._term(rng, defined)]
        return out

    def _statement(self, rng: random.Random, defined: list[str]) -> list[str]:
        r = rng.random()
        if defined and r < 0.2:
            return ["print", rng.choice(defined), ";"]
        if r < 0.28:
            words = [_zipf_choice(rng, _DOMAIN_COMMENT_WORDS) for _ in range(rng.randint(1, 3))]
            return ["#", *words, ";"]
        var = rng.choice(_DOMAIN_VARS)
        out = ["let", var, "=", *self._expr(rng, defined), ";"]
        if var not in defined:
            defined.append(var)
        return out

    def sample(self, rng: random.Random) -> Example:
        tokens: list[str] = []
        defined: list[str] = []
        while len(tokens) < self.length:
            tokens += self._statement(rng, defined)
        return Example(prompt="", answer=" ".join(tokens[: self.length]))

    def train_pool(self) -> list[Example]:
        """The ``num_documents`` distinct training documents, in generation order."""
        rng = random.Random(_stable_int(self.name, "pool", self.length, self.pool_seed))
        return self._draw("train", self.num_documents, rng)

    def examples(self, split: str, n: int, seed: int) -> list[Example]:
        n, seed = self._check_request(split, n, seed)
        if split != "train":
            return self._draw(split, n, self._rng(split, seed))
        pool = self.train_pool()
        rng = self._rng(split, seed)
        out: list[Example] = []
        while len(out) < n:
            epoch = list(pool)
            rng.shuffle(epoch)
            out += epoch[: n - len(out)]
        return out


__all__ = [
    "SPLITS",
    "SPLIT_FRACTIONS",
    "TASKS",
    "Example",
    "Task",
    "TaskError",
    "get_task",
    "register_task",
    "split_of",
]
