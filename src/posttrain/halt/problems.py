"""Multi-step arithmetic and algebra word problems with their step-by-step ground truth, for HALT's math
domain.

Every problem is a `Prompt` (task `halt_math`) whose `gold` is the final answer and whose `solution_steps`
are the ground-truth claims, one equation per step (`"3 * 4 = 12"`), in order; `solution` is the worked
answer written as the prompt asks for it (the standard-SFT target). Problems are drawn from a seeded
`random.Random`, so the same (n, difficulty, seed) gives the same file.

Difficulty d is the number of operations after the first quantity, plus one: 1 -> two steps, 2 -> three, 3
-> four. From difficulty 2 on, a third of the problems are "think of a number" linear equations, solved by
undoing the operations in reverse order (one step per undone operation).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from posttrain.records import Prompt

TASK = "halt_math"
INSTRUCTION = (
    "Solve the problem step by step. Write one step per line, with its calculation as an equation "
    '(for example 3 * 4 = 12), and end with "The final answer is N."'
)
DIFFICULTIES = (1, 2, 3)

_PEOPLE = (("Maya", "she"), ("Liam", "he"), ("Ava", "she"), ("Noah", "he"), ("Zoe", "she"), ("Omar", "he"),
           ("Lena", "she"), ("Ravi", "he"))  # fmt: skip
_THINGS = (("marbles", "bags"), ("apples", "baskets"), ("stickers", "packs"), ("pencils", "boxes"),
           ("cookies", "trays"), ("cards", "decks"))  # fmt: skip


@dataclass
class _Story:
    """A problem being written: its sentences and its ground-truth steps as (claim, explanation) pairs."""

    name: str
    pronoun: str
    things: str
    container: str  # plural
    value: int
    sentences: list[str]
    steps: list[tuple[str, str]]

    def step(self, left: str, result: int, explanation: str) -> None:
        self.steps.append((f"{left} = {result}", explanation))
        self.value = result


def _buy_groups(s: _Story, rng: random.Random) -> None:
    k, m = rng.randint(2, 6), rng.randint(2, 9)
    s.sentences.append(f"{s.pronoun.capitalize()} buys {k} {s.container} with {m} {s.things} in each.")
    before = s.value
    s.step(f"{k} * {m}", k * m, f"The {s.container} hold")
    s.step(f"{before} + {k * m}", before + k * m, f"Now {s.name} has")


def _find_more(s: _Story, rng: random.Random) -> None:
    k = rng.randint(2, 15)
    s.sentences.append(f"{s.pronoun.capitalize()} finds {k} more {s.things}.")
    s.step(f"{s.value} + {k}", s.value + k, f"After finding more, {s.name} has")


def _give_away(s: _Story, rng: random.Random) -> None:
    k = rng.randint(1, max(1, s.value - 1))
    s.sentences.append(f"{s.pronoun.capitalize()} gives {k} {s.things} to a friend.")
    s.step(f"{s.value} - {k}", s.value - k, f"After giving some away, {s.name} has")


def _multiply(s: _Story, rng: random.Random) -> None:
    factor, word = rng.choice(((2, "doubles"), (3, "triples")))
    s.sentences.append(f"Then the number of {s.things} {s.name} has {word}.")
    s.step(f"{s.value} * {factor}", s.value * factor, f"After it {word}, {s.name} has")


_OPERATIONS: tuple[Callable[[_Story, random.Random], None], ...] = (
    _buy_groups,
    _find_more,
    _give_away,
    _multiply,
)


def _collection_problem(rng: random.Random, difficulty: int) -> tuple[str, list[tuple[str, str]], int]:
    (name, pronoun), (things, container) = rng.choice(_PEOPLE), rng.choice(_THINGS)
    start = rng.randint(3, 20)
    story = _Story(name, pronoun, things, container, start, [f"{name} has {start} {things}."], [])
    while len(story.steps) < difficulty + 1:
        rng.choice(_OPERATIONS)(story, rng)
    divisors = [k for k in range(2, 7) if story.value % k == 0]
    if divisors and rng.random() < 0.5:  # end with an exact share, the problem's one division
        k = rng.choice(divisors)
        story.sentences.append(f"{pronoun.capitalize()} shares all the {things} equally among {k} friends.")
        story.step(f"{story.value} / {k}", story.value // k, "Each friend gets")
        question = f"How many {things} does each friend get?"
    else:
        question = f"How many {things} does {name} have now?"
    return " ".join([*story.sentences, question]), story.steps, story.value


def _number_puzzle(rng: random.Random, difficulty: int) -> tuple[str, list[tuple[str, str]], int]:
    """x -> x * a -> + b (-> * 2 at difficulty 3) = c; solved by undoing each operation, last first."""
    name, _ = rng.choice(_PEOPLE)
    x, a, b = rng.randint(2, 15), rng.randint(2, 9), rng.randint(1, 30)
    value = x * a + b
    told = f"{name} thinks of a number, multiplies it by {a} and adds {b}"
    steps: list[tuple[str, str]] = []
    if difficulty >= 3:
        told += ", then doubles the result"
        steps.append((f"{value * 2} / 2 = {value}", "Before doubling, the result was"))
        final = value * 2
    else:
        final = value
    steps.append((f"{value} - {b} = {x * a}", f"Before adding {b}, the number was"))
    steps.append((f"{x * a} / {a} = {x}", f"Before multiplying by {a}, the number was"))
    return f"{told}, and gets {final}. What number did {name} think of?", steps, x


def solution_text(steps: list[tuple[str, str]], answer: int) -> str:
    """The worked answer in the format the instruction asks for: one step per line, then the final answer."""
    lines = [f"Step {i}: {explanation} {claim}." for i, (claim, explanation) in enumerate(steps, start=1)]
    return "\n".join([*lines, f"The final answer is {answer}."])


def make_problem(rng: random.Random, difficulty: int) -> Prompt:
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty}")
    if difficulty >= 2 and rng.random() < 1 / 3:
        problem, steps, answer = _number_puzzle(rng, difficulty)
    else:
        problem, steps, answer = _collection_problem(rng, difficulty)
    return Prompt.model_validate({
        "prompt": f"{problem}\n\n{INSTRUCTION}", "task": TASK, "difficulty": float(difficulty), "gold": str(answer),
        "source": "posttrain.halt.problems", "problem": problem, "solution_steps": [claim for claim, _ in steps],
        "solution": solution_text(steps, answer),
    })  # fmt: skip


def generate_problems(
    n: int, difficulties: tuple[int, ...] | list[int] = (1, 2), seed: int = 0
) -> list[Prompt]:
    """n distinct problems, difficulties taken in turn; the same arguments give the same problems."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    levels = list(difficulties)
    if not levels or any(d not in DIFFICULTIES for d in levels):
        raise ValueError(f"difficulties must be a non-empty list of {DIFFICULTIES}, got {levels}")
    rng = random.Random(seed)
    problems: dict[str, Prompt] = {}
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 50 * n + 100:
            raise ValueError(f"could not draw {n} distinct problems at difficulties {levels}")
        problem = make_problem(rng, levels[len(problems) % len(levels)])
        problems.setdefault(problem.id, problem)
    return list(problems.values())
