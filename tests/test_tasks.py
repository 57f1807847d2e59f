"""The synthetic tasks: determinism, disjoint splits, vocab coverage, answer correctness, errors."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import pytest

from litplug.data.tasks import (
    SPLITS,
    TASKS,
    Example,
    Task,
    TaskError,
    get_task,
    register_task,
    split_of,
)

BUILTIN_TASKS = {"path_star", "sibling_discovery", "arithmetic", "qa"}
PLUGIN_TASKS = {"domain", "general"}  # the spt plugin's grammars, declared under the entry-point group litplug.tasks
for _name in sorted(PLUGIN_TASKS):
    get_task(_name)  # imports the spt plugin alone and registers its tasks
ALL_TASKS = sorted(TASKS)
EXPECTED_TASKS = BUILTIN_TASKS | PLUGIN_TASKS


def _tokens(ex: Example) -> list[str]:
    return ex.prompt.split() + ex.answer.split()


def test_registry_has_the_expected_tasks():
    assert EXPECTED_TASKS <= set(TASKS)


def test_plugin_tasks_come_from_their_plugin_through_the_entry_point_group():
    from litplug.plugins import task_providers

    assert task_providers()["general"] == ["spt"] and task_providers()["domain"] == ["spt"]
    assert TASKS["general"].__module__ == "litplug_spt.grammars"
    assert not {t.__module__ for n, t in TASKS.items() if n in BUILTIN_TASKS} - {"litplug.data.builtin_tasks"}


@pytest.mark.parametrize("name", ALL_TASKS)
def test_deterministic_under_seed_and_different_across_seeds(name):
    task = get_task(name)
    for split in SPLITS:
        a = task.examples(split, 20, seed=0)
        assert a == get_task(name).examples(split, 20, seed=0)
        assert a != task.examples(split, 20, seed=1)
        assert len(a) == 20 and all(isinstance(ex, Example) for ex in a)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_smaller_request_is_a_prefix(name):
    task = get_task(name)
    assert task.examples("validation", 7, seed=3) == task.examples("validation", 15, seed=3)[:7]
    assert task.examples("train", 7, seed=3) == task.examples("train", 15, seed=3)[:7]


@pytest.mark.parametrize("name", ALL_TASKS)
def test_splits_are_disjoint_distinct_and_hash_consistent(name):
    task = get_task(name)
    sets = {}
    for split in SPLITS:
        exs = task.examples(split, 300, seed=0)
        assert len(exs) == 300
        assert all(split_of(ex) == split for ex in exs)
        sets[split] = set(exs)
        if not (name == "domain" and split == "train"):  # domain's train split cycles a pool of 200
            assert len(sets[split]) == len(exs), "examples repeat within a split"
    # disjoint across splits even when drawn with different seeds
    other_seed_test = set(task.examples("test", 300, seed=7))
    assert not sets["train"] & sets["validation"]
    assert not sets["train"] & sets["test"]
    assert not sets["validation"] & sets["test"]
    assert not sets["train"] & other_seed_test
    assert not sets["validation"] & other_seed_test


@pytest.mark.parametrize("name", ALL_TASKS)
def test_vocab_is_deterministic_unique_and_covers_every_token(name):
    task = get_task(name)
    vocab = task.vocab()
    assert vocab == get_task(name).vocab()
    assert len(vocab) == len(set(vocab))
    assert all(tok and not any(ch.isspace() for ch in tok) for tok in vocab)
    seen = Counter(tok for split in SPLITS for ex in task.examples(split, 150, seed=1) for tok in _tokens(ex))
    assert set(seen) <= set(vocab), set(seen) - set(vocab)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_prompt_form_matches_has_answers(name):
    task = get_task(name)
    for ex in task.examples("validation", 50, seed=0):
        assert ex.answer.strip()
        assert bool(ex.prompt) == task.has_answers


@pytest.mark.parametrize(
    "name, params",
    [
        ("path_star", {"degree": 5, "path_length": 7, "num_nodes": 100}),
        ("sibling_discovery", {"num_children": 4, "num_parents": 5, "vocab_size": 40}),
        ("arithmetic", {"op": "mul", "digits": 4, "reverse_answer": True}),
        ("qa", {"context_len": 8, "num_keys": 10, "num_values": 5}),
        ("general", {"length": 17}),
        ("domain", {"length": 20, "num_documents": 30, "pool_seed": 3}),
    ],
)
def test_non_default_params_keep_vocab_coverage(name, params):
    task = get_task(name, params)
    assert task.params() == {**get_task(name).params(), **params}
    vocab = set(task.vocab())
    for split in SPLITS:
        for ex in task.examples(split, 50, seed=0):
            assert set(_tokens(ex)) <= vocab


def _parse_edges(prompt: str) -> tuple[list[tuple[str, str]], list[str]]:
    edge_part, query = prompt.split(" / ")
    edges = []
    for chunk in edge_part.split("|"):
        if chunk.strip():
            src, dst = chunk.split()
            edges.append((src, dst))
    assert query.split()[-1] == "="
    return edges, query.split()[:-1]


@pytest.mark.parametrize(
    "params", [{}, {"degree": 3, "path_length": 7, "num_nodes": 30}, {"degree": 1, "path_length": 2}]
)
def test_path_star_answers_are_valid_paths(params):
    task = get_task("path_star", params)
    d, length = task.degree, task.path_length
    for ex in task.examples("train", 300, seed=0) + task.examples("test", 50, seed=0):
        edges, (start, goal) = _parse_edges(ex.prompt)
        assert len(edges) == d * (length - 1)
        nodes = {v for e in edges for v in e}
        assert len(nodes) == d * (length - 1) + 1  # labels distinct
        assert sum(src == start for src, _ in edges) == d  # the start is the centre of the star
        path = ex.answer.split()
        assert path[0] == start and path[-1] == goal and len(path) == length
        assert len(set(path)) == len(path)
        edge_set = set(edges)
        assert all((a, b) in edge_set for a, b in zip(path, path[1:]))
        assert not any(src == goal for src, _ in edges)  # the goal is a leaf


def test_path_star_goal_arm_is_random():
    exs = get_task("path_star", {"degree": 3}).examples("train", 200, seed=0)
    first_steps = Counter()
    for ex in exs:
        edges, (start, _) = _parse_edges(ex.prompt)
        arms = [dst for src, dst in edges if src == start]  # in prompt order, which is shuffled
        first_steps[arms.index(ex.answer.split()[1])] += 1
    assert len(first_steps) == 3 and min(first_steps.values()) > 30


@pytest.mark.parametrize("params", [{}, {"num_children": 4, "num_parents": 5, "vocab_size": 30}])
def test_sibling_discovery_answers_siblings_then_parent(params):
    task = get_task("sibling_discovery", params)
    for ex in task.examples("train", 300, seed=0):
        edges, (query,) = _parse_edges(ex.prompt)
        assert len(edges) == task.num_parents * task.num_children
        *siblings, parent = ex.answer.split()
        assert (parent, query) in edges
        expected = [c for p, c in edges if p == parent and c != query]  # prompt order
        assert siblings == expected and len(siblings) == task.num_children - 1


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("digits", [1, 3, 5])
@pytest.mark.parametrize("reverse", [False, True])
def test_arithmetic_answers_are_correct(op, digits, reverse):
    task = get_task("arithmetic", {"op": op, "digits": digits, "reverse_answer": reverse})
    n = 20 if digits == 1 else 200
    for split in SPLITS:
        for ex in task.examples(split, n if split == "train" else 5, seed=0):
            left, right = ex.prompt.split(" + " if op == "add" else " * ")
            assert right.endswith(" =")
            a, b = int(left.replace(" ", "")), int(right[:-2].replace(" ", ""))
            assert len(left.split()) == digits == len(right[:-2].split())
            got = ex.answer.replace(" ", "")
            assert int(got[::-1] if reverse else got) == (a + b if op == "add" else a * b)


def test_arithmetic_exact_prompt_format():
    ex = get_task("arithmetic").examples("train", 1, seed=0)[0]
    toks = ex.prompt.split()
    assert len(toks) == 8 and toks[3] == "+" and toks[-1] == "="


def test_qa_answer_follows_its_key_in_context():
    task = get_task("qa")
    for ex in task.examples("train", 300, seed=0):
        context, query = ex.prompt.split(" ? ")
        key, eq = query.split()
        assert eq == "="
        toks = context.split()
        assert len(toks) == 2 * task.context_len
        keys = toks[0::2]
        assert keys.count(key) == 1
        assert toks[toks.index(key) + 1] == ex.answer


def test_text_tasks_have_exact_length_and_share_some_vocab():
    general, domain = get_task("general"), get_task("domain")
    for task in (general, domain, get_task("general", {"length": 5})):
        for ex in task.examples("validation", 30, seed=0):
            assert ex.prompt == "" and len(ex.answer.split()) == task.length
    shared = set(general.vocab()) & set(domain.vocab())
    assert shared and shared != set(domain.vocab()) and shared != set(general.vocab())
    # different statistics: the most frequent tokens differ
    g = Counter(t for ex in general.examples("train", 100, seed=0) for t in ex.answer.split())
    d = Counter(t for ex in domain.examples("train", 100, seed=0) for t in ex.answer.split())
    assert {t for t, _ in g.most_common(5)}.isdisjoint(t for t, _ in d.most_common(5))


def test_domain_train_cycles_a_finite_pool():
    task = get_task("domain", {"num_documents": 50})
    exs = task.examples("train", 175, seed=0)
    assert len(set(exs[:50])) == 50  # each pass is a permutation of the pool
    assert set(exs[50:100]) == set(exs[:50]) and exs[50:100] != exs[:50]  # reshuffled each pass
    assert len(set(exs)) == 50
    assert set(task.examples("train", 50, seed=1)) == set(exs[:50])  # pool independent of seed
    # nested pools: fewer documents is a subset of more documents
    assert set(exs) <= set(get_task("domain", {"num_documents": 80}).examples("train", 80, seed=0))
    # held-out splits are fresh documents, not limited by the pool size
    assert len(set(task.examples("validation", 120, seed=0))) == 120


def test_unknown_task_suggests_nearest():
    with pytest.raises(TaskError, match="path_starr") as info:
        get_task("path_starr")
    assert "did you mean 'path_star'" in str(info.value)
    with pytest.raises(TaskError, match="valid tasks"):
        get_task("no_such_task_anywhere")
    assert issubclass(TaskError, ValueError)


def test_unknown_param_names_task_param_and_valid_ones():
    with pytest.raises(TaskError) as info:
        get_task("qa", {"context_length": 8})
    msg = str(info.value)
    assert "'qa'" in msg and "context_length" in msg and "did you mean 'context_len'" in msg
    assert all(p in msg for p in ("context_len", "num_keys", "num_values"))


@pytest.mark.parametrize(
    "name, params, bad",
    [
        ("qa", {"context_len": 0}, "context_len"),
        ("qa", {"context_len": 65}, "context_len"),
        ("arithmetic", {"op": "div"}, "op"),
        ("arithmetic", {"digits": True}, "digits"),
        ("arithmetic", {"digits": "3"}, "digits"),
        ("arithmetic", {"reverse_answer": 1}, "reverse_answer"),
        ("path_star", {"num_nodes": 8}, "num_nodes"),
        ("path_star", {"path_length": 1}, "path_length"),
        ("sibling_discovery", {"num_children": 1}, "num_children"),
        ("sibling_discovery", {"vocab_size": 7}, "vocab_size"),
        ("general", {"length": 0}, "length"),
        ("domain", {"num_documents": -1}, "num_documents"),
    ],
)
def test_bad_param_value_names_task_and_param(name, params, bad):
    with pytest.raises(TaskError) as info:
        get_task(name, params)
    msg = str(info.value)
    assert repr(name) in msg and repr(bad) in msg and "valid:" in msg


def test_bad_split_and_bad_n():
    task = get_task("qa")
    with pytest.raises(TaskError, match="'qa'.*'dev'.*train, validation, test"):
        task.examples("dev", 3, seed=0)
    with pytest.raises(TaskError, match="'qa'"):
        task.examples("train", -1, seed=0)
    assert task.examples("train", 0, seed=0) == []


def test_too_small_example_space_raises_naming_task_and_split():
    task = get_task("arithmetic", {"digits": 1})  # only 100 distinct examples in all
    with pytest.raises(TaskError, match="'arithmetic'.*'test'"):
        task.examples("test", 60, seed=0)
    with pytest.raises(TaskError, match="'domain'.*'train'"):
        get_task("domain", {"length": 1, "num_documents": 500}).examples("train", 10, seed=0)


def test_register_task_validates_and_rejects_duplicates():
    with pytest.raises(TypeError):
        register_task(int)  # type: ignore[arg-type]

    @dataclass(frozen=True)
    class Clash(Task):
        name: ClassVar[str] = "qa"
        has_answers: ClassVar[bool] = True

    with pytest.raises(TypeError, match="already registered"):
        register_task(Clash)
    assert TASKS["qa"] is not Clash
