"""The core's built-in synthetic tasks: path-star graphs, sibling discovery, arithmetic and key-value QA.

Each is a dataclass :class:`~litplug.data.tasks.Task` registered by name; plugins add their own through
the ``synthetic_tasks`` hook (the specialised-pretraining grammars live in the spt plugin).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from litplug.data.tasks import Example, Task, register_task


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
