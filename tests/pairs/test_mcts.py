"""MCTS tree logic on a scripted policy whose outputs are known; the embedded-model run is in the slow tier."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from posttrain.errors import InputError
from posttrain.pairs.mcts import MCTSConfig, Node, TreeSearch, cut_segment, mcts_pairs
from posttrain.records import Pair, Prompt

SENTENCES = ["The sea is calm. ", "Waves, wind, and salt. ", "Birds fly home. ", "Night falls slowly. "]


@dataclass
class Params:
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int


@dataclass
class Completion:
    text: str
    completion_tokens: int
    finish_reason: str


class ScriptedPolicy:
    """Samples whole sentences (some with commas) and stops after four; honours prefix continuation."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, prompts, n, params):
        self.calls += 1
        rng = random.Random(params.seed)
        rows = []
        for conversation in prompts:
            prefix = conversation[-1]["content"] if conversation[-1]["role"] == "assistant" else ""
            done = prefix.count(". ")
            row = []
            for _ in range(n):
                budget = max(1, params.max_new_tokens // 4)
                k = min(budget, 4 - done)
                text = "".join(rng.choice(SENTENCES) for _ in range(k))
                row.append(Completion(text, len(text.split()), "stop" if done + k >= 4 else "length"))
            rows.append(row)
        return rows


def no_comma_scorer(prompt: Prompt):
    return lambda texts: [0.0 if "," in t else 1.0 for t in texts]


def test_cut_segment_keeps_the_first_sentence():
    assert cut_segment("One. Two. Three.", "sentence") == ("One. ", True)
    assert cut_segment("No end here", "sentence") == ("No end here", False)
    assert cut_segment("Line one\nLine two", "sentence") == ("Line one\n", True)
    assert cut_segment("One. Two.", "tokens") == ("One. Two.", False)


SEA = Prompt(prompt="Write about the sea without commas.", instruction_id_list=["punctuation:no_comma"])


def search_seeds(root_pairs: bool, seeds: range = range(20)):
    """The pairs of the comma scenario over 20 search seeds: one seed's tree may hold few forks, so proves little."""
    found = []
    for seed in seeds:
        config = MCTSConfig(simulations=8, branching=3, segment_tokens=8, rollout_max_tokens=32, min_value_gap=0.1,
                            seed=seed, root_pairs=root_pairs)  # fmt: skip
        pairs, stats = mcts_pairs([SEA], ScriptedPolicy(), Params, no_comma_scorer, config)
        assert stats.generated_tokens > 0 and stats.pairs == len(pairs) <= config.max_pairs_per_prompt
        found.extend(pairs)
    return found


def test_pairs_share_a_nonempty_prefix_and_differ_on_the_constraint():
    pairs = search_seeds(root_pairs=False)
    assert len(pairs) >= 20  # most seeds find a contrast below the root
    for pair in pairs:
        assert "," not in pair.chosen and "," in pair.rejected
        shared = pair.shared_prefix_chars
        # The shared prefix is the point of the method: at least one whole segment (a sentence here), on both sides.
        assert shared > 0 and pair.chosen[:shared].strip()
        assert pair.chosen[:shared] == pair.rejected[:shared]
        assert pair.method == "mcts" and pair.chosen_score == 1.0 and pair.rejected_score == 0.0


def test_root_pairs_option_also_pairs_the_roots_children():
    shared = [pair.shared_prefix_chars for pair in search_seeds(root_pairs=True)]
    assert 0 in shared and any(s > 0 for s in shared)  # forks at the root (no prefix) and below it


def grow(parent: Node, segment: str, value: float) -> Node:
    """A visited child with one rollout of the given value: a tree whose pairs are known without searching."""
    child = Node(prefix=parent.prefix + segment, depth=parent.depth + 1, parent=parent, visits=1, value_sum=value)
    child.rollouts.append((child.prefix + "The end.", value))
    parent.children.append(child)
    return child


def test_equal_value_gaps_prefer_the_deeper_fork():
    prompt = Prompt(prompt="Write about the sea.")
    config = MCTSConfig(max_pairs_per_prompt=1, root_pairs=True)
    search = TreeSearch(ScriptedPolicy(), Params, config, prompt, no_comma_scorer(prompt))
    calm = grow(search.root, "The sea is calm. ", 0.5)
    grow(search.root, "Waves, wind. ", 0.0)
    birds = grow(calm, "Birds fly home. ", 1.0)
    grow(calm, "Wind, salt. ", 0.0)
    grow(birds, "Night falls. ", 1.0)
    grow(birds, "Salt, spray. ", 0.0)
    # The root, `calm` and `birds` all fork a pair with a value gap of 1: the deepest shares the longest prefix.
    [(fork, chosen, rejected)] = search.pairs()
    assert fork is birds and chosen[0].startswith(birds.prefix) and rejected[0].startswith(birds.prefix)


def test_search_is_deterministic_for_a_seed_and_visits_add_up():
    prompt = Prompt(prompt="Write about the sea.")
    config = MCTSConfig(simulations=5, branching=2, segment_tokens=8, rollout_max_tokens=32, seed=3)
    trees = []
    for _ in range(2):
        search = TreeSearch(ScriptedPolicy(), Params, config, prompt, no_comma_scorer(prompt))
        search.run()
        trees.append(search)
    assert [(c.prefix, c.visits) for c in trees[0].root.children] == [
        (c.prefix, c.visits) for c in trees[1].root.children
    ]
    root = trees[0].root
    assert root.visits == sum(c.visits for c in root.children)  # every backup passes through the root


def test_bad_config_is_an_input_error():
    with pytest.raises(InputError, match="branching must be at least 2"):
        mcts_pairs([Prompt(prompt="x")], ScriptedPolicy(), Params, no_comma_scorer, MCTSConfig(branching=1))
    with pytest.raises(InputError, match="unknown MCTS segment"):
        mcts_pairs([Prompt(prompt="x")], ScriptedPolicy(), Params, no_comma_scorer, MCTSConfig(segment="words"))


def test_the_file_stage_resumes_per_prompt(tmp_path):
    """`mcts_pairs_to_file` (the stage of `posttrain pairs --method mcts` and `posttrain run`) writes per prompt:
    a rerun searches only the prompts without pairs, and the file equals an uninterrupted run's."""
    from posttrain.pairs.mcts import mcts_pairs_to_file
    from posttrain.records import read_records

    prompts = [SEA, Prompt(prompt="Describe a harbour without commas.", instruction_id_list=["punctuation:no_comma"])]
    config = MCTSConfig(simulations=8, branching=3, segment_tokens=8, rollout_max_tokens=32, min_value_gap=0.1)
    whole = tmp_path / "whole.jsonl"
    assert mcts_pairs_to_file(prompts, whole, ScriptedPolicy(), Params, no_comma_scorer, config)[0] == 0
    # A run that finished the first prompt only (as a crash would leave it), then a rerun.
    part = tmp_path / "part.jsonl"
    mcts_pairs_to_file(prompts[:1], part, ScriptedPolicy(), Params, no_comma_scorer, config)
    part.rename(tmp_path / "part.jsonl.partial")
    told: list[int] = []
    skipped, stats = mcts_pairs_to_file(prompts, part, ScriptedPolicy(), Params, no_comma_scorer, config, told.append)
    assert skipped == 1 and stats.prompts == 1 and told[0] == 1 and sum(told) == 2
    assert read_records(part, Pair) == read_records(whole, Pair)
