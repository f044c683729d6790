from __future__ import annotations

from posttrain.prompts.dedup import Deduplicator, MinHashIndex, normalize, text_hash

BASE = (
    "Write a blog post for beginners on growing tomatoes on a balcony. Your response should contain at least "
    "12 sentences. Do not include the words soil or water in the response. End your response with the exact "
    "phrase Any other questions?"
)


def test_normalize_ignores_case_punctuation_and_spacing():
    assert normalize("  Write a POEM,\n about   cats! ") == "write a poem about cats"
    assert text_hash("Write a poem about cats.") == text_hash("write a  poem about CATS")
    assert text_hash("Write a poem about cats.") != text_hash("Write a poem about dogs.")


def test_exact_duplicates_are_rejected_and_counted():
    dedup = Deduplicator(near_threshold=None)
    assert dedup.add(BASE)
    assert not dedup.add(BASE.upper())
    assert dedup.exact_rejected == 1 and dedup.near_rejected == 0


def test_near_duplicates_differ_by_one_word():
    dedup = Deduplicator(near_threshold=0.75)  # true Jaccard of the 3-gram shingles: 0.857
    assert dedup.add(BASE)
    assert not dedup.add(BASE.replace("tomatoes", "peppers"))
    assert dedup.near_rejected == 1


def test_different_prompts_are_kept():
    index = MinHashIndex(threshold=0.9)
    other = "Explain how vaccines train the immune system to a curious twelve-year-old. Do not use any commas."
    assert index.add(BASE)
    assert index.add(other)
    assert index.add("Write a limerick about a lazy cat who loves lasagna, in all capital letters.")


def test_jaccard_estimate_tracks_true_similarity():
    index = MinHashIndex(threshold=0.5, bands=16, rows=8)
    words = [f"w{i}" for i in range(200)]
    a, b = " ".join(words), " ".join(words[:150] + [f"x{i}" for i in range(50)])
    sa, sb = index.signature(a), index.signature(b)
    estimate = float((sa == sb).mean())
    true = 148 / 248  # 3-gram shingles: 148 shared of 198 + 198 - 148
    assert abs(estimate - true) < 0.12
