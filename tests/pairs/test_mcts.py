"""MCTS tree logic on a scripted policy whose outputs are known; the embedded-model run is in the slow tier."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from posttrain.errors import InputError
from posttrain.pairs.mcts import MCTSConfig, TreeSearch, cut_segment, mcts_pairs
from posttrain.records import Prompt

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


def test_pairs_share_a_prefix_and_differ_on_the_constraint():
    prompts = [Prompt(prompt="Write about the sea without commas.", instruction_id_list=["punctuation:no_comma"])]
    config = MCTSConfig(simulations=8, branching=3, segment_tokens=8, rollout_max_tokens=32, min_value_gap=0.1)
    pairs, stats = mcts_pairs(prompts, ScriptedPolicy(), Params, no_comma_scorer, config)
    assert pairs, stats.as_dict()
    for pair in pairs:
        assert "," not in pair.chosen and "," in pair.rejected
        shared = pair.shared_prefix_chars
        assert pair.chosen[:shared] == pair.rejected[:shared]
        assert pair.method == "mcts" and pair.chosen_score == 1.0 and pair.rejected_score == 0.0
    assert stats.generated_tokens > 0 and stats.pairs == len(pairs) <= config.max_pairs_per_prompt


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
