"""Sentence count and capital-word count on 100 KB texts: NLTK's tokenizers (what IFEval's reference runs) vs posttrain.

    python bench/tokenizer_speed.py
    python bench/tokenizer_speed.py --size 50000 --repeats 5

For each text, in one process: NLTK's `PunktSentenceTokenizer(english).tokenize` and, for capital words, NLTK's
Treebank tokenizer on every sentence (= `nltk.word_tokenize`), against posttrain's `count_sentences` and
`count_uppercase_words` with every cache cleared before each run. The answers are asserted equal; the best of
`--repeats` runs and the ratio are printed, and each of posttrain's times against IFEval's budget of 50 ms per check
of a 100 KB response. Texts: dense varied prose (acronyms, abbreviations, "I'm", quotes, bullets), the same in
capitals, 14,286 short sentences, 33,334 one-letter sentences, and one 100 KB whitespace-free "word".
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nltk.tokenize.destructive import NLTKWordTokenizer  # noqa: E402
from nltk.tokenize.punkt import PunktSentenceTokenizer  # noqa: E402

from posttrain.constraints import text as measures  # noqa: E402
from tests.constraints.corpus import varied_prose  # noqa: E402


def texts(size: int) -> dict[str, str]:
    return {
        "varied prose": varied_prose(size, seed=0),
        "varied prose, capitals": varied_prose(size, seed=1).upper(),
        "short sentences": ("Hello. " * size)[:size],
        "one-letter sentences": ("A. " * size)[:size],
        "one long word": "A" + "," * (size - 2) + "x",
    }


def best_of(repeats: int, run: Callable[[], int], before: Callable[[], None] = lambda: None) -> tuple[float, int]:
    best, answer = float("inf"), 0
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        answer = run()
        best = min(best, time.perf_counter() - start)
    return best, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    punkt = PunktSentenceTokenizer(measures.nltk_punkt_parameters())
    treebank = NLTKWordTokenizer()
    measures.count_uppercase_words("Warm up, NASA. I'm here.")

    def nltk_capitals(text: str) -> int:
        return sum(1 for sentence in punkt.tokenize(text) for token in treebank.tokenize(sentence) if token.isupper())

    print(f"{'text':<24}{'measure':<16}{'NLTK s':>9}{'posttrain s':>13}{'ratio':>8}  under 50 ms")
    for name, text in texts(args.size).items():
        for measure, reference, ours in (
            ("sentences", lambda t=text: len(punkt.tokenize(t)), lambda t=text: measures.count_sentences(t)),
            ("capital words", lambda t=text: nltk_capitals(t), lambda t=text: measures.count_uppercase_words(t)),
        ):
            reference_time, expected = best_of(args.repeats, reference)
            our_time, answer = best_of(args.repeats, ours, measures.clear_caches)
            assert answer == expected, f"{name}, {measure}: NLTK {expected}, posttrain {answer}"
            verdict = "yes" if our_time < 0.05 else "no"
            print(f"{name:<24}{measure:<16}{reference_time:>9.3f}{our_time:>13.4f}{reference_time / our_time:>7.1f}x"
                  f"  {verdict}")


if __name__ == "__main__":
    main()
