from __future__ import annotations

import pytest

from posttrain.halt.domains import get_domain, make_grader
from posttrain.halt.problems import TASK, generate_problems


def test_the_same_seed_gives_the_same_distinct_problems():
    first, again = generate_problems(30, [1, 2, 3], seed=5), generate_problems(30, [1, 2, 3], seed=5)
    assert [p.id for p in first] == [p.id for p in again]
    assert len({p.id for p in first}) == 30
    assert [p.id for p in generate_problems(30, [1, 2, 3], seed=6)] != [p.id for p in first]


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_every_ground_truth_step_holds_and_the_worked_solution_grades_fully_correct(difficulty):
    domain = get_domain("math")
    grader = make_grader(domain, None)
    for problem in generate_problems(25, [difficulty], seed=difficulty):
        assert problem.task == TASK and problem.difficulty == difficulty
        domain.check_ground_truth(problem)  # raises on a step that does not hold
        steps = problem.model_extra["solution_steps"]
        assert len(steps) >= difficulty + 1 or "thinks of a number" in problem.text
        solution = problem.model_extra["solution"]
        fragments = domain.split(solution, problem)
        assert len(fragments) == len(steps) + 1  # the steps, then the final answer
        assert [v for v, _ in grader.grade(problem, fragments)] == [1] * len(fragments)
        assert solution.endswith(f"The final answer is {problem.gold}.")


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="difficulties"):
        generate_problems(3, [4])
    with pytest.raises(ValueError, match="n must be"):
        generate_problems(-1)
