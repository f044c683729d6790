"""Preference pairs from Monte Carlo Tree Search over partial responses: chosen and rejected share a prefix.

Kim et al. (2024) found that pairs whose two sides share a prefix give small but consistent DPO gains and more
stability. Their MCTS is not public; this is the reconstruction documented in docs/methods/pairs.md (UNVERIFIED,
after MCTS-DPO, Xie et al. 2024):

- a node is a prefix of the assistant's response; a child extends it by one *segment* (a sentence, or a fixed
  chunk of tokens) sampled from the policy;
- selection descends by PUCT, `Q(c) + c_puct * P(c) * sqrt(N(parent)) / (1 + N(c))`, with uniform priors;
- expansion samples `branching` segments from the selected leaf;
- evaluation completes each new child with `rollouts` sampled continuations and scores the full responses with
  the judges (fraction of constraints met, or any scorer); a child that ended with EOS is scored as it is;
- backup adds the child's value to every ancestor.
After `simulations` rounds, every node below the root with two or more children yields a candidate pair: the best
rollout under its highest-Q child vs the worst rollout under its lowest-Q child, when the Q gap reaches
`min_value_gap`. The root's children share no prefix, so a pair forked there is a plain rejection-sampling pair:
the root forks pairs only with `root_pairs`. Among equal value gaps the deeper fork (longer shared prefix) wins.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from posttrain.errors import InputError
from posttrain.records import Pair, Prompt, RecordWriter

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
SEGMENTS = ("sentence", "tokens")


class GenerationBackend(Protocol):
    """What MCTS needs of a backend: `generate`, continuing a final assistant message when one is given."""

    def generate(self, prompts: list[Any], n: int, params: Any) -> list[list[Any]]: ...


@dataclass
class MCTSConfig:
    simulations: int = 8  # select-expand-evaluate-backup rounds per prompt
    branching: int = 3  # segments sampled at each expansion
    max_depth: int = 4  # a node this many segments deep is not expanded further
    segment: str = "sentence"  # "sentence": cut each sampled chunk at its first sentence end; "tokens": keep it
    segment_tokens: int = 32  # token budget of one segment
    rollouts: int = 1  # completions sampled per new child to estimate its value
    rollout_max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 1.0
    c_puct: float = 1.0
    min_value_gap: float = 0.2
    max_pairs_per_prompt: int = 2
    seed: int = 0
    root_pairs: bool = False  # also pair the root's children, whose responses share no prefix

    def validate(self) -> None:
        if self.segment not in SEGMENTS:
            raise InputError(f"unknown MCTS segment '{self.segment}'; choose one of {', '.join(SEGMENTS)}")
        for name in ("simulations", "branching", "max_depth", "segment_tokens", "rollouts", "rollout_max_tokens"):
            if getattr(self, name) < 1:
                raise InputError(f"MCTS {name} must be at least 1, got {getattr(self, name)}")
        if self.branching < 2:
            raise InputError("MCTS branching must be at least 2: pairs are made of sibling nodes")


@dataclass
class Node:
    prefix: str
    depth: int = 0
    terminal: bool = False
    prior: float = 1.0
    visits: int = 0
    value_sum: float = 0.0
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None
    rollouts: list[tuple[str, float]] = field(default_factory=list)  # (full response, value)

    @property
    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    def subtree_rollouts(self) -> list[tuple[str, float]]:
        found = list(self.rollouts)
        for child in self.children:
            found.extend(child.subtree_rollouts())
        return found


@dataclass
class MCTSStats:
    prompts: int = 0
    pairs: int = 0
    generated_tokens: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    shared_prefix_chars: list[int] = field(default_factory=list)
    value_gaps: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "prompts": self.prompts,
            "pairs": self.pairs,
            "generated_tokens": self.generated_tokens,
            "pairs_per_1k_tokens": round(1000 * self.pairs / max(self.generated_tokens, 1), 3),
            "skipped": self.skipped,
            "shared_prefix_chars": self.shared_prefix_chars,
            "value_gaps": self.value_gaps,
        }


def cut_segment(text: str, mode: str) -> tuple[str, bool]:
    """The segment to keep from a sampled chunk, and whether the chunk was cut (text remained after it)."""
    if mode == "tokens":
        return text, False
    for match in SENTENCE_END.finditer(text):
        if match.start() > 0 and text[: match.start()].strip():
            return text[: match.end()], match.end() < len(text)
    return text, False


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "big")


def _puct(child: Node, parent_visits: int, c_puct: float) -> float:
    return child.q + c_puct * child.prior * math.sqrt(max(parent_visits, 1)) / (1 + child.visits)


def _conversation(prompt: Prompt, prefix: str) -> list[dict[str, str]]:
    messages = (
        [{"role": "user", "content": prompt.prompt}]
        if isinstance(prompt.prompt, str)
        else [m.model_dump() for m in prompt.prompt]
    )
    if prefix:
        messages.append({"role": "assistant", "content": prefix})  # the backend continues this message
    return messages


class TreeSearch:
    """MCTS for one prompt. `scorer(full_responses) -> values in [0, 1]` (e.g. fraction of constraints met)."""

    def __init__(
        self,
        backend: GenerationBackend,
        params_factory: Callable[..., Any],
        config: MCTSConfig,
        prompt: Prompt,
        scorer: Callable[[list[str]], list[float]],
    ):
        self.backend, self.make_params, self.config = backend, params_factory, config
        self.prompt, self.scorer = prompt, scorer
        self.root = Node(prefix="")
        self.generated_tokens = 0

    def _generate(self, prefixes: list[str], n: int, max_new_tokens: int, tag: Any) -> list[list[Any]]:
        params = self.make_params(
            max_new_tokens=max_new_tokens,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            seed=_seed(self.config.seed, self.prompt.id, tag),
        )
        out = self.backend.generate([_conversation(self.prompt, p) for p in prefixes], n, params)
        self.generated_tokens += sum(c.completion_tokens for row in out for c in row)
        return out

    def _select(self) -> Node:
        node = self.root
        while node.children and not node.terminal:
            parent_visits = node.visits
            node = max(node.children, key=lambda c: _puct(c, parent_visits, self.config.c_puct))
        return node

    def _expand(self, leaf: Node, round_no: int) -> list[Node]:
        chunks = self._generate([leaf.prefix], self.config.branching, self.config.segment_tokens, ("expand", round_no))
        children: list[Node] = []
        seen: set[str] = set()
        for chunk in chunks[0]:
            segment, was_cut = cut_segment(chunk.text, self.config.segment)
            if not segment.strip() or segment in seen:
                continue  # an empty or duplicate sibling adds no contrast
            seen.add(segment)
            ended = chunk.finish_reason == "stop" and not was_cut
            children.append(Node(prefix=leaf.prefix + segment, depth=leaf.depth + 1, terminal=ended, parent=leaf))
        for child in children:
            child.prior = 1.0 / len(children)
        leaf.children.extend(children)
        if not children:
            leaf.terminal = True  # the policy only ever ends here: treat the leaf as a finished response
        return children

    def _evaluate(self, children: list[Node], round_no: int) -> None:
        open_children = [c for c in children if not c.terminal]
        completions = (
            self._generate(
                [c.prefix for c in open_children],
                self.config.rollouts,
                self.config.rollout_max_tokens,
                ("rollout", round_no),
            )
            if open_children
            else []
        )
        texts: list[tuple[Node, str]] = [(c, c.prefix) for c in children if c.terminal]
        for child, row in zip(open_children, completions, strict=True):
            texts.extend((child, child.prefix + completion.text) for completion in row)
        values = self.scorer([t for _, t in texts])
        per_child: dict[int, list[float]] = {}
        for (child, text), value in zip(texts, values, strict=True):
            child.rollouts.append((text, value))
            per_child.setdefault(id(child), []).append(value)
        for child in children:
            self._backup(child, sum(per_child[id(child)]) / len(per_child[id(child)]))

    @staticmethod
    def _backup(node: Node | None, value: float) -> None:
        while node is not None:
            node.visits += 1
            node.value_sum += value
            node = node.parent

    def run(self) -> None:
        for round_no in range(self.config.simulations):
            leaf = self._select()
            if leaf.terminal or leaf.depth >= self.config.max_depth:
                if leaf is self.root:
                    break  # the policy ends the response at once: nothing to search
                # Nothing new to sample below this leaf: back its own estimate up again, so PUCT's exploration
                # term moves the next selection elsewhere.
                self._backup(leaf, sum(v for _, v in leaf.rollouts) / len(leaf.rollouts))
                continue
            children = self._expand(leaf, round_no)
            if children:
                self._evaluate(children, round_no)

    def pairs(self) -> list[tuple[Node, tuple[str, float], tuple[str, float]]]:
        """(shared-prefix node, chosen rollout, rejected rollout): largest value gap first, and among equal gaps the
        deepest fork first, since a longer shared prefix is what sets these pairs apart from rejection sampling."""
        candidates = []
        for node in self._fork_nodes():
            contrast = self._sibling_contrast(node)
            if contrast is not None:
                candidates.append((node, *contrast))
        candidates.sort(key=lambda c: (c[1][1] - c[2][1], c[0].depth), reverse=True)
        return candidates[: self.config.max_pairs_per_prompt]

    def _fork_nodes(self) -> list[Node]:
        """The nodes whose children may be paired: every node, less the root unless `root_pairs`."""
        nodes, stack = [], [self.root]
        while stack:
            node = stack.pop()
            stack.extend(node.children)
            if node is not self.root or self.config.root_pairs:
                nodes.append(node)
        return nodes

    def _sibling_contrast(self, node: Node) -> tuple[tuple[str, float], tuple[str, float]] | None:
        """The best rollout under the highest-Q child and the worst under the lowest-Q child, when they differ enough."""
        scored = [c for c in node.children if c.visits]
        if len(scored) < 2:
            return None
        best, worst = max(scored, key=lambda c: c.q), min(scored, key=lambda c: c.q)
        if best.q - worst.q < self.config.min_value_gap:
            return None
        chosen = max(best.subtree_rollouts(), key=lambda r: r[1])
        rejected = min(worst.subtree_rollouts(), key=lambda r: r[1])
        if chosen[1] > rejected[1] and chosen[0].strip() != rejected[0].strip():
            return chosen, rejected
        return None


def constraint_scorer(mode: str = "fixed") -> Callable[[Prompt], Callable[[list[str]], list[float]]]:
    """The default value of a response: the fraction of its prompt's constraints it meets (partial credit)."""
    from posttrain.constraints import check_all, partial_credit

    def scorer_for(prompt: Prompt) -> Callable[[list[str]], list[float]]:
        if not prompt.instruction_id_list:
            raise InputError(f"prompt {prompt.id}: no constraints to score MCTS rollouts with")

        def score(texts: list[str]) -> list[float]:
            return [partial_credit(check_all(t, prompt.instruction_id_list, prompt.kwargs, mode=mode)) for t in texts]

        return score

    return scorer_for


def mcts_pairs(
    prompts: list[Prompt],
    backend: GenerationBackend,
    params_factory: Callable[..., Any],
    scorer_for: Callable[[Prompt], Callable[[list[str]], list[float]]],
    config: MCTSConfig,
    on_prompt_done: Callable[[Prompt, list[Pair]], None] = lambda prompt, pairs: None,
) -> tuple[list[Pair], MCTSStats]:
    """Search each prompt's tree and return its shared-prefix pairs."""
    config.validate()
    stats = MCTSStats(prompts=len(prompts))
    pairs: list[Pair] = []
    for prompt in prompts:
        search = TreeSearch(backend, params_factory, config, prompt, scorer_for(prompt))
        search.run()
        stats.generated_tokens += search.generated_tokens
        found = search.pairs()
        if not found:
            stats.skipped["no_sibling_contrast"] = stats.skipped.get("no_sibling_contrast", 0) + 1
        made = []
        for node, (chosen, chosen_value), (rejected, rejected_value) in found:
            made.append(
                Pair(
                    prompt=prompt.prompt,
                    chosen=chosen,
                    rejected=rejected,
                    prompt_id=prompt.id,
                    method="mcts",
                    chosen_score=chosen_value,
                    rejected_score=rejected_value,
                    shared_prefix_chars=len(node.prefix),
                    difficulty=prompt.difficulty,
                )
            )
            stats.shared_prefix_chars.append(len(node.prefix))
            stats.value_gaps.append(round(chosen_value - rejected_value, 6))
        stats.pairs += len(made)
        pairs.extend(made)
        on_prompt_done(prompt, made)
    return pairs, stats


def mcts_pairs_to_file(
    prompts: list[Prompt],
    out: Path,
    backend: GenerationBackend,
    params_factory: Callable[..., Any],
    scorer_for: Callable[[Prompt], Callable[[list[str]], list[float]]],
    config: MCTSConfig,
    on_prompts_done: Callable[[int], None] = lambda n: None,
) -> tuple[int, MCTSStats]:
    """The MCTS stage, as `posttrain pairs --method mcts` and `posttrain run` both run it: pairs are written per
    prompt, so a rerun after a crash skips the prompts that gave pairs (the search is deterministic per prompt, so
    re-searching one that gave none gives none again). `on_prompts_done(n)` is told of the prompts a previous run
    finished first, then of each prompt searched. Returns (prompts skipped as done, stats of this search)."""
    from posttrain.sampling import written_rows

    with RecordWriter(out) as writer:
        done = {str(row["prompt_id"]) for _, row in written_rows(out)}
        todo = [p for p in prompts if p.id not in done]
        on_prompts_done(len(prompts) - len(todo))

        def finished(prompt: Prompt, made: list[Pair]) -> None:
            for pair in made:
                writer.write(pair)
            on_prompts_done(1)

        _, stats = mcts_pairs(todo, backend, params_factory, scorer_for, config, on_prompt_done=finished)
    return len(prompts) - len(todo), stats
