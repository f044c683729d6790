"""A CrossEval-style rubric judge: a judge model writes an evaluation that ends in "Score: X/5" (1–5 Likert).

Protocol of Zhong et al., "Law of the Weakest Link" (ICLR 2025; reference/methods.md §8,
facebookresearch/llm-cross-capabilities `evaluation/`):

- system prompt: the 1–5 rubric (5 amazing, 4 pretty good, 3 okay, 2 pretty bad: major helpfulness, truthfulness
  or safety problems, 1 horrible);
- user prompt: the `[Attached]` text (long-context tasks), the `[User Prompt]`, reference responses to the same
  prompt each with its human ratings and explanations "to calibrate" the judge, the response to evaluate, and the
  required output: User Prompt Analysis → Reference Examples Insights → Model Response Evaluation (pros; cons with
  point deductions) → Holistic Assessment → Evaluation Score `Score: [X]/5`. Without references the insights section
  is left out, as CrossEval's no-reference prompt does;
- a near-empty response (fewer than two words) gets CrossEval's extra note that a score of 1 is fine when it fails
  the request entirely;
- the score is read by a regular expression; when there is none in 1–5 the judge is asked again.

The prompt text is written in posttrain's own words following that structure: CrossEval's exact wording is not
copied (its section names and the `Score: [X]/5` line are kept, as they are the output format).

Decisions (docs/methods/judges.md, "Rubric judge"):

- **Parsing.** Every `score … X/5` (or `X out of 5`) is found — markdown, brackets and `=`/`:`/`is` around it are
  allowed (`Score: 4/5`, `**Score:** 4 / 5`, `Score: [4]/5`, `score 4.5/5`, `The score is **3** out of 5`) — and
  the LAST one decides (a judge may mention a reference's score before giving its own). X must be a whole or half
  point in [1, 5]; anything else (0, 7, 3.7, -1) makes the output invalid. CrossEval's regex reads any decimal and
  the first match after an "Evaluation Score" heading; half points are what judges actually write between two
  Likert levels, other decimals are treated as a malformed answer and asked again.
- **Retries.** CrossEval retries up to 5 times, but its judge is GPT-4o at temperature 0: what changes between its
  attempts is the prompt, to which it appends a reminder. We do the same: each retry appends a reminder naming what
  was wrong, so even greedy decoding sees a different input. Default 1 retry (`retries`), greedy
  (`retry_temperature=0`; > 0 samples the retries with a per-attempt seed). No valid score after all attempts:
  value −1, never an exception.
- **Reward.** kind "reward": `score = (s − 1) / 4` in [0, 1] (a mixture's r(s, a)); the raw 1–5 score and the
  rationale are in `detail`. Value 1 unless `threshold` (on the 1–5 scale) is set, then 1 when s ≥ threshold.
  CrossEval's reported 1–100 scale is `to_100(s) = (s − 1) · 24.75 + 1`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from posttrain.errors import InputError
from posttrain.judges.base import Item, Judge, Judgment, Value

SYSTEM_PROMPT = """\
You are an expert evaluator of AI assistant responses. Rate the response on a 1-5 Likert scale with this rubric:

- **5/5 - Amazing**: flawless; it is hard to see how the response could be better.
- **4/5 - Pretty Good**: a good response with room for minor improvements only.
- **3/5 - Okay**: a middling response that could be better in several ways.
- **2/5 - Pretty Bad**: major problems with helpfulness, truthfulness or safety.
- **1/5 - Horrible**: useless or harmful; no one should rely on a model that answers like this."""

_FORMAT_HEAD = """\
Write your evaluation in exactly this format:

#### User Prompt Analysis
- The key requirements and goals of the user prompt.
"""

_FORMAT_REFERENCES = """
#### Reference Examples Insights
- How the annotators scored the reference responses and what they took points off for.
- How many points each kind of issue costs.
"""

_FORMAT_TAIL = """
#### Model Response Evaluation
- Pros: what the response does well.
- Cons: each weakness, **with the points it costs**.

#### Holistic Assessment
- Weigh the strengths against the weaknesses; a major strength can outweigh minor issues.
- Merge overlapping deductions so that no problem is penalised twice.
- Explain the score you give.

#### Evaluation Score
Score: [X]/5

Replace X with a whole number from 1 to 5. Be thorough and fair{calibrated}."""

SHORT_RESPONSE_NOTE = (
    "Note: the response above is nearly empty (fewer than two words). If it does not meet the request at all, "
    "a score of 1 is appropriate."
)

RETRY_NOTE = (
    "Your previous evaluation could not be scored ({problem}). Write the evaluation again and end it with the line "
    '"Score: X/5", where X is a whole number from 1 to 5.'
)

# "score", then markdown/punctuation/"is"/"of", an optional bracket, the number, "/5" or "out of 5".
_SCORE = re.compile(
    r"\bscore\b[\s*_#:=]*(?:(?:is|of)\s+)?[\[(]?\s*[*_]*\s*(?P<num>[-+]?\d+(?:\.\d+)?)\s*[*_]*\s*[\])]?\s*[*_]*\s*"
    r"(?:/|out\s+of)\s*[*_]*\s*5(?:\.0+)?(?!\.?\d)",
    re.IGNORECASE,
)
_TRAILING_HEADING = re.compile(r"(?:^|\n)[#*_\s]*(?:evaluation\s+)?score[#*_:\s]*$", re.IGNORECASE)
_HOLISTIC = re.compile(r"holistic\s+assessment[#*_:]*", re.IGNORECASE)


# --------------------------------------------------------------------------------------------- parsing


def read_score(text: str) -> tuple[float | None, str]:
    """(score, "") from a judge's output, or (None, what is wrong). The last `score … X/5` decides."""
    matches = list(_SCORE.finditer(text or ""))
    if not matches:
        return None, "no 'Score: X/5' line"
    raw = matches[-1].group("num")
    value = float(raw)
    if not 1 <= value <= 5:
        return None, f"the last score, {raw}/5, is outside 1-5"
    if value * 2 != int(value * 2):
        return None, f"the last score, {raw}/5, is neither a whole nor a half point"
    return value, ""


def parse_score(text: str) -> float | None:
    """The 1–5 score of a judge's output (a whole or half point), or None when it has no valid one."""
    return read_score(text)[0]


def rationale(text: str) -> str:
    """The judge's reasoning: its Holistic Assessment section when it wrote one, else everything before the score
    line (the score line and a trailing "Evaluation Score" heading removed)."""
    matches = list(_SCORE.finditer(text or ""))
    body = text[: matches[-1].start()] if matches else (text or "")
    headings = list(_HOLISTIC.finditer(body))
    if headings:
        body = body[headings[-1].end() :]
    body = _TRAILING_HEADING.sub("", body.rstrip())
    return body.strip().rstrip("#*_ \n").strip()


def to_100(score: float) -> float:
    """CrossEval's reported scale: 1 → 1, 5 → 100."""
    return (score - 1) * 24.75 + 1


def normalised(score: float) -> float:
    """The reward: 1 → 0, 5 → 1."""
    return (score - 1) / 4


def fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


# ------------------------------------------------------------------------------------------ references


@dataclass(frozen=True)
class Reference:
    """A reference response to the same prompt, with its human ratings (1–5) and their explanations."""

    response: str
    ratings: tuple[float, ...] = ()
    explanations: tuple[str, ...] = ()


def _rating(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{where}: a rating is a number from 1 to 5, got {value!r}")
    if not 1 <= value <= 5:
        raise InputError(f"{where}: rating {fmt(value)} is outside 1-5")
    return float(value)


def parse_references(value: Any, where: str = "references") -> list[Reference]:
    """References from JSON: a list of `{"response": str, "ratings": [1-5, ...], "explanations": [str, ...]}`
    (ratings may be one number; explanations are optional, one per rating). InputError naming the bad field."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(
            f"{where}: expected a list of {{response, ratings, explanations}} objects, got {type(value).__name__}"
        )
    out = []
    for i, ref in enumerate(value):
        at = f"{where}[{i}]"
        if isinstance(ref, Reference):
            out.append(ref)
            continue
        if not isinstance(ref, Mapping):
            raise InputError(
                f"{at}: expected an object with 'response' and 'ratings', got {type(ref).__name__}"
            )
        unknown = sorted(set(ref) - {"response", "ratings", "explanations"})
        if unknown:
            raise InputError(f"{at}: unknown field '{unknown[0]}' (fields: response, ratings, explanations)")
        response = ref.get("response")
        if not isinstance(response, str):
            raise InputError(f"{at}.response: " + ("missing" if response is None else "expected a string"))
        raw_ratings = ref.get("ratings", [])
        raw_ratings = raw_ratings if isinstance(raw_ratings, list) else [raw_ratings]
        ratings = tuple(_rating(r, f"{at}.ratings[{k}]") for k, r in enumerate(raw_ratings))
        explanations = ref.get("explanations", [])
        explanations = [explanations] if isinstance(explanations, str) else explanations
        if not isinstance(explanations, list) or not all(isinstance(e, str) for e in explanations):
            raise InputError(f"{at}.explanations: expected a list of strings")
        if len(explanations) > len(ratings):
            raise InputError(
                f"{at}: {len(explanations)} explanations but {len(ratings)} ratings; one per rating"
            )
        out.append(Reference(response, ratings, tuple(explanations)))
    return out


# ------------------------------------------------------------------------------------------- rendering


def render_user_prompt(
    prompt: str,
    response: str,
    references: Sequence[Reference] = (),
    attached: str | None = None,
    reminder: str | None = None,
) -> str:
    """The judge's user turn, in CrossEval's order (see the module docstring)."""
    parts = []
    if attached:
        parts.append(f"[Attached]:\n{attached.strip()}")
    parts.append(f"[User Prompt]:\n{prompt.strip()}")
    if references:
        blocks = [
            "Human annotators rated the reference responses below. Use them to calibrate your evaluation: "
            "score the response to evaluate on the same scale, as strictly as they did."
        ]
        for i, ref in enumerate(references, start=1):
            lines = [f"[Reference Example {i}]:", f"Response: {ref.response.strip()}"]
            for k, rating in enumerate(ref.ratings, start=1):
                why = ref.explanations[k - 1].strip() if k <= len(ref.explanations) else ""
                lines.append(f"Rating {k}: {fmt(rating)}/5" + (f" | Explanation {k}: {why}" if why else ""))
            blocks.append("\n".join(lines))
        parts.append("\n\n".join(blocks))
        parts.append("**Judge the response below against these examples.**")
    parts.append(f"[Model Response to be Evaluated]:\n{response.strip()}")
    calibrated = " and consistent with the reference examples" if references else ""
    parts.append(
        _FORMAT_HEAD + (_FORMAT_REFERENCES if references else "") + _FORMAT_TAIL.format(calibrated=calibrated)
    )
    if len(response.split()) < 2:
        parts.append(SHORT_RESPONSE_NOTE)
    if reminder:
        parts.append(reminder)
    return "\n\n".join(parts)


def prompt_text(prompt: Any) -> str:
    """A prompt record's text for the judge: the message itself, or a multi-turn conversation as `role: content`."""
    messages = prompt.prompt
    if isinstance(messages, str):
        return messages
    if len(messages) == 1:
        return str(messages[0].content)
    return "\n\n".join(f"{m.role}: {m.content}" for m in messages)


# ---------------------------------------------------------------------------------------------- judge


@dataclass(frozen=True)
class RubricResult:
    """Everything the judge knows about one response."""

    score: float | None  # 1–5 (whole or half point); None: no valid score
    output: str  # the judge's last answer
    attempts: int
    problem: str = ""  # why there is no score
    tokens: int = 0  # generated tokens over all attempts
    error: bool = (
        False  # the judge could not run (an exception), as opposed to an answer without a valid score
    )

    def judgment(self, threshold: float | None = None) -> Judgment:
        if self.error:
            return Judgment(-1, None, self.problem[:500])
        if self.score is None:
            tail = f"; output: {self.output[:200]!r}" if self.output else ""
            return Judgment(
                -1, None, f"no valid score after {self.attempts} attempt(s): {self.problem}{tail}"[:500]
            )
        value: Value = 1 if threshold is None or self.score >= threshold else 0
        why = " ".join(rationale(self.output).split())
        return Judgment(value, normalised(self.score), f"{fmt(self.score)}/5: {why}"[:500])


class RubricJudge(Judge):
    """`get_judge("rubric", model="embedded" | <dir> | "openai:<url>#<model>" | backend, ...)`.

    `references`: reference responses for prompts that carry none of their own (a prompt's `references` field wins);
    a prompt's `attached` field is the [Attached] text. `system_prompt=""` sends no system turn.
    """

    kind = "reward"

    def __init__(
        self,
        model: Any = "embedded",
        max_new_tokens: int = 1024,
        references: list[Any] | None = None,
        threshold: float | None = None,
        retries: int = 1,
        retry_temperature: float = 0.0,
        batch_size: int = 8,
        system_prompt: str | None = None,
        name: str | None = None,
    ) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise InputError("rubric judge: max_new_tokens and batch_size must be at least 1")
        if retries < 0 or retry_temperature < 0:
            raise InputError("rubric judge: retries and retry_temperature must be at least 0")
        if threshold is not None and not 1 <= threshold <= 5:
            raise InputError(f"rubric judge: threshold is on the 1-5 score scale, got {threshold}")
        self.references = parse_references(references, "rubric judge option references")
        self.max_new_tokens, self.threshold, self.retries = max_new_tokens, threshold, retries
        self.retry_temperature, self.batch_size = retry_temperature, batch_size
        self.system_prompt = SYSTEM_PROMPT if system_prompt is None else system_prompt
        self.name = name or "rubric"
        self.backend = _load(model)

    # -- prompts -------------------------------------------------------------------------------------------
    def item_references(self, item: Item) -> list[Reference]:
        extra = item.prompt.model_extra or {}
        if extra.get("references") is not None:
            return parse_references(extra["references"], f"prompt {item.prompt.id}: references")
        return self.references

    def messages(self, item: Item, reminder: str | None = None) -> list[dict[str, str]]:
        extra = item.prompt.model_extra or {}
        attached = extra.get("attached")
        if attached is not None and not isinstance(attached, str):
            raise InputError(f"prompt {item.prompt.id}: attached must be text, got {type(attached).__name__}")
        user = render_user_prompt(
            prompt_text(item.prompt), item.completion, self.item_references(item), attached, reminder
        )
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": user}]

    # -- judging -------------------------------------------------------------------------------------------
    def judge_items(self, items: Sequence[Item]) -> list[Judgment]:
        return [result.judgment(self.threshold) for result in self.assess(items)]

    def assess(self, items: Sequence[Item]) -> list[RubricResult]:
        """One result per item. Bad references or attached text are an InputError before anything is generated;
        a generation that fails (e.g. a prompt longer than the judge's context) is that item's −1."""
        for item in items:
            self.messages(item)
        out: list[RubricResult] = []
        for start in range(0, len(items), self.batch_size):
            batch = list(items[start : start + self.batch_size])
            try:
                out += self._assess_batch(batch)
            except Exception:  # only the items that fail on their own get -1
                for item in batch:
                    try:
                        out += self._assess_batch([item])
                    except Exception as err:
                        out.append(
                            RubricResult(
                                None, "", 0, f"judge failed: {type(err).__name__}: {err}"[:300], error=True
                            )
                        )
        return out

    def _assess_batch(self, items: list[Item]) -> list[RubricResult]:
        from posttrain.models.backend import SamplingParams

        outputs = [""] * len(items)
        problems = [""] * len(items)
        scores: list[float | None] = [None] * len(items)
        tokens = [0] * len(items)
        attempts = [0] * len(items)
        todo = list(range(len(items)))
        for attempt in range(self.retries + 1):
            if not todo:
                break
            temperature = 0.0 if attempt == 0 else self.retry_temperature
            params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=temperature, seed=attempt)
            reminders = [RETRY_NOTE.format(problem=problems[i]) if attempt else None for i in todo]
            prompts = [self.messages(items[i], r) for i, r in zip(todo, reminders, strict=True)]
            completions = self.backend.generate(prompts, 1, params)
            for i, row in zip(todo, completions, strict=True):
                outputs[i], attempts[i] = row[0].text, attempt + 1
                tokens[i] += row[0].completion_tokens
                scores[i], problems[i] = read_score(outputs[i])
            todo = [i for i in todo if scores[i] is None]
        return [
            RubricResult(scores[i], outputs[i], attempts[i], problems[i], tokens[i])
            for i in range(len(items))
        ]


def _load(model: Any) -> Any:
    """A backend from a spec (`posttrain.models.load_backend`), or the backend given (anything with `generate`)."""
    if hasattr(model, "generate"):
        return model
    if not isinstance(model, str) or not model:
        raise InputError(
            f"rubric judge: model must be a backend spec (embedded, a directory, openai:...), got {model!r}"
        )
    from posttrain.models import load_backend

    return load_backend(model)
