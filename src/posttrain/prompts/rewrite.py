"""Optional LLM rewrite: a model turns "task + rules" into one natural user request, as CGPO did (App. A: an
LLM wrote each prompt from the chosen topic and instructions with a few-shot template).

A rewrite can drop or bend a rule ("fewer than 100 words" -> "about 100 words"), and then the prompt's
`instruction_id_list` would no longer match its text. So each rewrite is re-checked: for every constraint, the
rewritten text must still carry its cue words (e.g. "comma", "lowercase", "JSON") and every literal value from its
kwargs (counts as digits or words, keywords, phrases, the letter, the P.S. marker, the section splitter), and a
count's relation must keep its direction ("at least" / "fewer than"). If any constraint fails this check, the
template text is kept (`fallback`). So is an output that reads as an answer rather than a request (no question
mark and no sentence opening with an imperative; much longer than the template; or missing most of the base
task's words): small models often answer the task instead of rewriting it. Prompts with
`combination:repeat_prompt` are never rewritten: the request the answer must repeat is the template text itself.

The backend is anything with `generate(prompts, n, params) -> list[list[completion]]` (posttrain's `Backend`);
a completion's `.text` is used (or the object itself if it is a string).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from posttrain.constraint_ids import (
    AT_LEAST,
    CAPITAL_WORD_FREQUENCY,
    CONSTRAINED_RESPONSE,
    END_CHECKER,
    ENGLISH_CAPITAL,
    ENGLISH_LOWERCASE,
    FORBIDDEN_WORDS,
    JSON_FORMAT,
    KEYWORD_EXISTENCE,
    KEYWORD_FREQUENCY,
    LESS_THAN,
    LETTER_FREQUENCY,
    NO_COMMA,
    NTH_PARAGRAPH_FIRST_WORD,
    NUMBER_BULLET_LISTS,
    NUMBER_HIGHLIGHTED_SECTIONS,
    NUMBER_PARAGRAPHS,
    NUMBER_PLACEHOLDERS,
    NUMBER_SENTENCES,
    NUMBER_WORDS,
    POSTSCRIPT,
    QUOTATION,
    REPEAT_PROMPT,
    RESPONSE_LANGUAGE,
    TITLE,
    TWO_RESPONSES,
)

FEW_SHOT = """You turn a task and a list of rules into one request that a person would send to an AI assistant.
Keep every rule: every number, every quoted word or phrase, and every symbol exactly as given. Write only the request.

Task: Write a poem about coral reefs.
Rules:
- Your entire response should be in English, and in all lowercase letters.
- Do not use any commas in your response.
Request: Could you write me a poem about coral reefs? Please keep the whole thing in lowercase letters and don't use any commas at all.

Task: Write an email to a colleague about running better meetings.
Rules:
- Your response should contain at least 4 sentences.
- Include the keywords "agenda" and "schedule" in the response.
- At the end of your response, please explicitly add a postscript starting with P.S.
Request: I need to email a colleague about how we could run better meetings. Make it at least 4 sentences long, work in the words "agenda" and "schedule", and end with a postscript that starts with P.S.

Task: {task}
Rules:
{rules}
Request:"""


class GeneratesText(Protocol):
    def generate(self, prompts: list[Any], n: int, params: Any) -> list[list[Any]]: ...


_NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                 "sixteen seventeen eighteen nineteen twenty").split()  # fmt: skip
_AT_LEAST_WORDING = r"at least|or more|a minimum of|minimum of|no fewer than|no less than|more than"
_LESS_THAN_WORDING = r"less than|fewer than|under|below"

# Cue words per constraint id: the rewrite must match at least one of them (case-insensitive regex).
CUES: dict[str, str] = {
    NUMBER_PARAGRAPHS: r"paragraph",
    NUMBER_SENTENCES: r"sentence",
    NUMBER_WORDS: r"word",
    NTH_PARAGRAPH_FIRST_WORD: r"paragraph",
    NUMBER_PLACEHOLDERS: r"placeholder|\[",
    POSTSCRIPT: r"p\.\s?p?\.?\s?s|postscript",
    NUMBER_BULLET_LISTS: r"bullet|\* ",
    CONSTRAINED_RESPONSE: r"my answer is",
    NUMBER_HIGHLIGHTED_SECTIONS: r"highlight|\*",
    JSON_FORMAT: r"json",
    TITLE: r"title|<<",
    TWO_RESPONSES: r"\*{6}",
    KEYWORD_EXISTENCE: r".",
    KEYWORD_FREQUENCY: r"time|occur|appear|repeat|use",
    FORBIDDEN_WORDS: r"not|avoid|without|never|forbid|exclude|don't|no ",
    LETTER_FREQUENCY: r"letter",
    ENGLISH_LOWERCASE: r"lower\s?case|small letters",
    ENGLISH_CAPITAL: r"capital|upper\s?case|all[- ]caps",
    CAPITAL_WORD_FREQUENCY: r"capital|upper\s?case|all[- ]caps",
    NO_COMMA: r"comma",
    END_CHECKER: r".",
    QUOTATION: r"quot|\"",
    RESPONSE_LANGUAGE: r"language",
}
# kwargs whose values must appear literally; counts may also appear as number words.
_LITERAL_KEYS = ("keywords", "keyword", "forbidden_words", "end_phrase", "first_word", "postscript_marker",
                 "section_spliter")  # fmt: skip
_COUNT_KEYS = ("num_paragraphs", "num_sentences", "num_words", "nth_paragraph", "num_placeholders", "num_bullets",
               "num_highlights", "num_sections", "frequency", "let_frequency", "capital_frequency")  # fmt: skip
_RELATION_KEYS = ("relation", "let_relation", "capital_relation")


def _has_count(text: str, value: int) -> bool:
    forms = [str(value)] + ([_NUMBER_WORDS[value]] if 0 <= value < len(_NUMBER_WORDS) else [])
    ordinal = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh"}.get(value)
    forms += [f"{value}st", f"{value}nd", f"{value}rd", f"{value}th"] + ([ordinal] if ordinal else [])
    return any(re.search(rf"(?<![\w.]){re.escape(f)}(?![\w])", text, re.IGNORECASE) for f in forms)


def mentions(cid: str, kwargs: dict[str, Any], text: str) -> bool:
    """Whether `text` still states constraint `cid` with these kwargs (cue, literal values, relation direction)."""
    cue = CUES.get(cid)
    if cue is not None and not re.search(cue, text, re.IGNORECASE):
        return False
    lowered = text.lower()
    for key in _LITERAL_KEYS:
        value = kwargs.get(key)
        values = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        if any(str(v).lower() not in lowered for v in values):
            return False
    for key in _COUNT_KEYS:
        value = kwargs.get(key)
        if isinstance(value, int) and not _has_count(text, value):
            return False
    if cid == LETTER_FREQUENCY and not re.search(
        rf"(?<![a-z]){re.escape(str(kwargs.get('letter', '')))}(?![a-z])", text, re.IGNORECASE
    ):
        return False
    if cid == RESPONSE_LANGUAGE and str(kwargs.get("language", "")).lower() not in lowered:
        return False  # requires the code itself; a language name alone is not recognised (see docs)
    for key in _RELATION_KEYS:
        relation = kwargs.get(key)
        if relation == AT_LEAST and not re.search(_AT_LEAST_WORDING, text, re.IGNORECASE):
            return False
        if relation == LESS_THAN and not re.search(_LESS_THAN_WORDING, text, re.IGNORECASE):
            return False
    return True


def missing_constraints(ids: Sequence[str], kwargs: Sequence[dict[str, Any]], text: str) -> list[str]:
    return [cid for cid, kw in zip(ids, kwargs, strict=True) if not mentions(cid, kw or {}, text)]


# A request asks: a question mark, or a sentence that opens with an imperative or a "could you" / "I need".
_REQUEST_CUE = re.compile(
    r"\?|(?:^|[.!:\n]\s*)(?:hi|hello|hey)?[,!.\s]*(?:please\s+)?(?:write|explain|give|compose|draft|list|tell|"
    r"make|create|describe|share|answer|respond|keep|use|include|put|format|end|start|finish|avoid|do not|don't|"
    r"can you|could you|would you|will you|i need|i want|i'd like|i would like|help)\b",
    re.IGNORECASE,
)


def looks_like_request(text: str, template: str, base_task: str) -> bool:
    """A request, not an answer: asks for something, stays about the task, and is not much longer than the template.

    Small models often answer the task instead of rewriting it; an answer can still echo every rule's words.
    """
    if len(text.split()) > 2.5 * len(template.split()) + 20 or not _REQUEST_CUE.search(text):
        return False
    content = [w for w in re.findall(r"[a-z]{4,}", base_task.lower()) if w not in ("write", "about", "explain")]
    lowered = text.lower()
    return not content or sum(w in lowered for w in content) >= len(content) / 2


def clean(raw: str) -> str:
    """The request itself: the first block of the model's output, without echoed labels or wrapping quotes."""
    text = raw.strip()
    text = re.sub(r"^(request|rewritten request|prompt)\s*:\s*", "", text, flags=re.IGNORECASE)
    text = re.split(r"\n\s*(?:task|rules|request)\s*:", text, flags=re.IGNORECASE)[0].strip()
    if len(text) > 1 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


@dataclass
class RewriteResult:
    text: str
    rewritten: bool  # False: the template text was kept
    missing: list[str]  # constraints the rejected rewrite dropped, or "not a request" (empty when rewritten)


def rewrite_prompts(
    backend: GeneratesText,
    items: Sequence[tuple[str, str, list[str], list[str], list[dict[str, Any]]]],
    params: Any,
    batch_size: int = 32,
) -> list[RewriteResult]:
    """Rewrite (template_text, base_task, descriptions, ids, kwargs) items; keep the template when a rule is lost."""
    results: list[RewriteResult | None] = [None] * len(items)
    todo: list[int] = []
    for i, (template, _, _, ids, _) in enumerate(items):
        if REPEAT_PROMPT in ids:
            results[i] = RewriteResult(template, False, [])
        else:
            todo.append(i)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        prompts = [
            FEW_SHOT.format(task=items[i][1], rules="\n".join(f"- {d}" for d in items[i][2])) for i in chunk
        ]
        outputs = backend.generate(prompts, 1, params)
        for i, completions in zip(chunk, outputs, strict=True):
            template, _, _, ids, kwargs = items[i]
            raw = completions[0] if completions else ""
            text = clean(raw if isinstance(raw, str) else getattr(raw, "text", ""))
            lost = missing_constraints(ids, kwargs, text) if text else list(ids)
            if text and not lost and not looks_like_request(text, template, items[i][1]):
                lost = ["not a request"]
            results[i] = RewriteResult(text, True, []) if text and not lost else RewriteResult(template, False, lost)
    return [r for r in results if r is not None]
