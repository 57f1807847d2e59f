"""The specialised-pretraining text distributions, ``general`` and ``domain``, as synthetic tasks.

Registered through the ``synthetic_tasks`` hook and declared under the entry-point group
``litplug.tasks``, so any run may name them (litplug imports this plugin for them alone). The ``domain``
train split cycles through a finite pool of documents, so repetition effects can be studied.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from litplug.api import Example, Task, stable_int

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
        rng = random.Random(stable_int(self.name, "pool", self.length, self.pool_seed))
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


