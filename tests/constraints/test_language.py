"""posttrain's langdetect replay against langdetect itself: n-grams, the random stream, the detected language."""

from __future__ import annotations

import itertools
import random

import langdetect
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posttrain.constraints import language
from tests.constraints.corpus import EDGE_CASES, responses

# Characters that exercise the n-gram state machine: spaces and what normalises to one, runs of capitals (langdetect
# skips "capital words"), Latin-1 exclusions, Romanian commas, CJK, Arabic, Vietnamese combining marks.
LETTERS = st.sampled_from(
    list("aAbBzZ  \n\t.,'-0123456789") + list("éÉßøçÇșțĂâ¿¡«»") + list("日本語中文한국어") + list("ابت")
    + ["\u0300", "\u0301", "\u0303", "\u2019", "\u00a0", "http://x.io", "a@b.co"]
)
TEXT = st.one_of(st.lists(LETTERS, max_size=80).map("".join), st.text(max_size=120))


@pytest.fixture(autouse=True)
def _seeded_langdetect() -> None:
    langdetect.DetectorFactory.seed = 0


# A process runs its first detections with the numpy trial, later ones with the compiled one: test both.
TRIALS = {"numpy": 10**9, "compiled": 0}


@pytest.fixture(params=sorted(TRIALS))
def trial(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(language, "NUMPY_DETECTIONS", TRIALS[request.param])
    language.detect_language.cache_clear()
    return str(request.param)


def _reference_ngrams(text: str) -> tuple[str, list[str]]:
    detector = language._factory().create()
    detector.append(text)
    detector.cleaning_text()
    return detector.text, detector._extract_ngrams()


def _reference_detect(text: str) -> str | None:
    try:
        return str(langdetect.detect(text))
    except langdetect.LangDetectException:
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT)
def test_ngrams_equal_langdetects(text: str) -> None:
    cleaned, expected = _reference_ngrams(text)
    assert language.extract_ngrams(cleaned) == expected


def test_ngrams_equal_langdetects_on_the_corpus() -> None:
    for text in EDGE_CASES + responses(100, seed=3):
        cleaned, expected = _reference_ngrams(text)
        assert language.extract_ngrams(cleaned) == expected, text


def test_the_stream_is_pythons_random_from_seed_0() -> None:
    rng = random.Random(0)
    assert language._random_stream(5000).tolist() == [rng.getrandbits(32) for _ in range(5000)]


@pytest.mark.parametrize("name", sorted(TRIALS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT)
def test_detection_equals_langdetect_on_arbitrary_text(name: str, text: str) -> None:
    saved, language.NUMPY_DETECTIONS = language.NUMPY_DETECTIONS, TRIALS[name]
    try:
        language.detect_language.cache_clear()
        assert language.detect_language(text) == _reference_detect(text)
    finally:
        language.NUMPY_DETECTIONS = saved


def test_detection_equals_langdetect_on_the_corpus(trial: str) -> None:
    # Short texts (few n-grams: many rejected draws, trials that never converge), mixed languages, a long text.
    texts = EDGE_CASES + responses(150, seed=21) + ["Ceci est une phrase. " * 700, "12 34", "", "a", "Ab Cd"]
    texts += ["Hello world. Bonjour le monde. Hola mundo. Hallo Welt. Ciao mondo."] * 2
    language.detect_language.cache_clear()
    for text in texts:
        assert language.detect_language(text) == _reference_detect(text), text


def test_a_short_stream_is_extended_without_changing_the_answer(trial: str, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["The weather is nice today and we will go outside.", "Das Wetter ist heute schön.", "a b"]
    monkeypatch.setattr(language, "_STREAM_WORDS", 16)  # exhausted in the first trial: replayed with 64, 256, ...
    language.detect_language.cache_clear()
    try:
        assert [language.detect_language(t) for t in texts] == [_reference_detect(t) for t in texts]
    finally:
        language.detect_language.cache_clear()


def test_the_numpy_and_compiled_trials_give_bit_identical_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = EDGE_CASES + responses(60, seed=5) + ["Hello world. Bonjour le monde. Hola mundo.", "Ab Cd", "日本語"]
    probabilities = {}
    for name, limit in TRIALS.items():
        monkeypatch.setattr(language, "NUMPY_DETECTIONS", limit)
        out = []
        for text in texts:
            detector = language._detector_factory().create()
            detector.append(text)
            detector.cleaning_text()
            ngrams = language.extract_ngrams(detector.text)
            out.append(language._detect_block(ngrams, detector) if ngrams else None)
        probabilities[name] = out
    assert probabilities["numpy"] == probabilities["compiled"]  # float equality, not closeness


def test_a_process_switches_to_the_compiled_trial_after_its_numpy_detections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(language, "_detections", itertools.count())
    monkeypatch.setattr(language, "NUMPY_DETECTIONS", 2)
    numpy_trial, compiled_trial, used = language._numpy_trial, language._compiled_trial(), []
    monkeypatch.setattr(language, "_numpy_trial", lambda *args: used.append("numpy") or numpy_trial(*args))
    monkeypatch.setattr(language, "_compiled_trial", lambda: lambda *a: used.append("compiled") or compiled_trial(*a))
    language.detect_language.cache_clear()
    for text in ["The weather is nice today.", "Das Wetter ist heute schön.", "Il fait beau aujourd'hui."]:
        language.detect_language(text)
    assert used == ["numpy"] * 14 + ["compiled"] * 7  # 7 trials per detection
