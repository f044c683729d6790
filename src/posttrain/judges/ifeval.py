"""The instruction-following judge: the constraint library checks every constraint a prompt carries.

value 1 when every constraint holds (CGPO gates on all of them), score = fraction met (open-instruct's partial
credit), detail = the violated ids. Mode "ifeval" reproduces the reference checkers' verdicts, "fixed" repairs
their known bugs (see docs/methods/constraints.md); `loose` applies IFEval's 8 loose variants. Reasoning between
`<think>` tags is removed before checking (lm-eval #3161).
"""

from __future__ import annotations

from posttrain.constraints import MODES, check_all, get_constraint, partial_credit
from posttrain.errors import InputError
from posttrain.judges.base import Item, Judge, Judgment
from posttrain.records import Prompt


class IFEvalJudge(Judge):
    name = "ifeval"
    cpu_bound = True

    def __init__(self, mode: str = "fixed", loose: bool = False, strip_thinking: bool = True) -> None:
        if mode not in MODES:
            raise InputError(f"ifeval judge: unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        self.mode, self.loose, self.strip_thinking = mode, loose, strip_thinking

    def judge_one(self, item: Item) -> Judgment:
        p = item.prompt
        ok = check_all(
            item.completion, p.instruction_id_list, p.kwargs, loose=self.loose, mode=self.mode,
            strip_thinking=self.strip_thinking,
        )  # fmt: skip
        failed = [cid for cid, good in zip(p.instruction_id_list, ok, strict=True) if not good]
        detail = "all constraints met" if not failed else "violated: " + ", ".join(failed)
        return Judgment(1 if all(ok) else 0, partial_credit(ok), detail)

    def validate(self, prompt: Prompt) -> None:
        """Raise InputError for an unknown id or bad kwargs, so bad input is reported before any judging."""
        for cid, kwargs in zip(prompt.instruction_id_list, prompt.kwargs, strict=True):
            get_constraint(cid).validate(kwargs, self.mode)
