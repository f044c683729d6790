"""langdetect's `detect(text)` (seed 0), as the IFEval reference calls it: same answer, about 30x faster.

langdetect normalises the text, extracts its known 1-3-grams, then runs 7 trials: each starts from a uniform
distribution over its 55 languages, multiplies in the profile of one randomly chosen n-gram at a time and stops
when, at a check every 5 updates, one language holds more than 0.99999 of the mass (or after 1000 updates). The
answer is the language with the highest mean over the trials. Where the time goes, and what we do instead:

- n-gram extraction runs a per-character state machine whose state resets at every space, so a word's n-grams
  depend on the word alone: they are computed once per word and cached (`_word_ngrams`), and characters are
  normalised by one `str.translate` with a cached table instead of a Unicode-block lookup per character.
- the trials replay langdetect's own random stream (Python's Mersenne Twister from seed 0, drawn in bulk through
  numpy's identical MT19937) in a compiled loop that performs the same floating-point operations in the same order
  (sequential sums, no fused or reordered arithmetic), so every probability is bit-identical.
- langdetect parses its 55 JSON profiles into an 87k-entry dict of lists on first use, in every process; the
  trials need them as one matrix. The matrix, the n-grams and the language order are kept in the user cache dir
  (`POSTTRAIN_CACHE` overrides it), keyed by the profile files as langdetect lists them, so a later process reads
  one small file instead; any mismatch or unreadable file rebuilds it from langdetect.
- the compiled trial is cached on disk by numba (`cache=True`: beside this file, or numba's user-wide cache dir when
  the package directory is read-only), so a process loads machine code instead of compiling it. Loading numba and
  that code still costs ~0.5 s of CPU, what ~750 detections cost in the same loop written with numpy (0.65 ms more
  each, the same operations in the same order): a process runs its first `NUMPY_DETECTIONS` detections in numpy
  and switches to the compiled loop after, so scoring a few hundred answers never pays the load and a long job
  pays at most twice the cheaper of the two.

URL/e-mail removal, Vietnamese normalisation, the 10,000-character cut and the Latin filter stay langdetect's own.
Parity tests compare with langdetect itself (tests/constraints/test_language.py).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
import random
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported on first detection: most checks never detect a language
    import numpy as np

_STREAM_WORDS = 1 << 16  # grows on demand: 7 trials of <= 1001 picks rarely need more than ~16k draws
_TABLES_FORMAT = 1  # part of the cache key: bump when the file's layout changes
NUMPY_DETECTIONS = 750  # detections per process before the compiled trial (module docstring)
_detections = itertools.count()


@functools.lru_cache(maxsize=4096)
def detect_language(text: str) -> str | None:
    """langdetect's `detect(text)` with seed 0, or None where it raises (no letters, empty, ...)."""
    detector = _detector_factory().create()
    detector.append(text)
    detector.cleaning_text()
    ngrams = extract_ngrams(detector.text)
    if not ngrams:
        return None
    probabilities = _detect_block(ngrams, detector)
    above = [(p, index) for index, p in enumerate(probabilities) if p > detector.PROB_THRESHOLD]
    if not above:
        return str(detector.UNKNOWN_LANG)
    best = max(p for p, _ in above)
    # langdetect sorts Language objects by probability (stable, reversed): ties keep profile order.
    return str(detector.langlist[next(index for p, index in above if p == best)])


def extract_ngrams(text: str) -> list[str]:
    """`Detector._extract_ngrams` on langdetect's cleaned text: its known n-grams, in text order."""
    out: list[str] = []
    words = text.translate(_NormaliseTable()).split(" ")
    for word in words[:-1]:  # each followed by a space
        out += _word_ngrams(word, True)
    out += _word_ngrams(words[-1], False)
    return out


class _NormaliseTable(dict):  # type: ignore[type-arg]
    """`NGram.normalize` for `str.translate`, filled on first use of each character (shared by every instance)."""

    _known: dict[int, str] = {}

    def __missing__(self, code: int) -> str:
        known = _NormaliseTable._known
        if code not in known:
            from langdetect.utils.ngram import NGram

            known[code] = NGram.normalize(chr(code))
        return known[code]


@functools.lru_cache(maxsize=1 << 17)
def _word_ngrams(word: str, space_after: bool) -> tuple[str, ...]:
    """The known n-grams `NGram.add_char` yields while reading `word` (no spaces in it) from a word boundary, then
    the space after it when there is one. The buffer holds the last 3 characters of " " + word (+ " "); a character
    read while the word has two uppercase characters in a row (and no lowercase since) yields nothing."""
    if not word:
        return ()
    known = _tables().row_of
    out = []
    buffer, capital, last = " ", False, " "
    for ch in word:
        buffer = (buffer + ch)[-3:]
        capital = (capital or last.isupper()) if ch.isupper() else False
        last = ch
        if not capital:
            out += [gram for n in range(1, len(buffer) + 1) if (gram := buffer[-n:]) in known]
    if space_after:  # " " alone is never an n-gram
        buffer = (buffer + " ")[-3:]
        out += [gram for n in range(2, len(buffer) + 1) if (gram := buffer[-n:]) in known]
    return tuple(out)


@functools.cache
def _factory() -> Any:
    """langdetect's own factory with its profiles loaded, as `langdetect.detect` builds it (slow: see `_tables`)."""
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)  # langdetect samples n-grams at random; a fixed seed makes verdicts reproducible
    return factory


@functools.cache
def _detector_factory() -> Any:
    """A factory for the Detectors `detect_language` uses to clean text and read constants from: it needs the
    language list only, since n-grams and probabilities come from `_tables()`. Its n-gram map stays empty, so a
    Detector made here cannot run langdetect's own detection by mistake (it finds no features)."""
    from langdetect.detector_factory import DetectorFactory

    factory = DetectorFactory()
    factory.langlist = list(_tables().langlist)
    factory.set_seed(0)
    return factory


@dataclass(frozen=True)
class ProfileTables:
    """langdetect's profiles as the trials use them: `matrix[row_of[ngram]]` is the n-gram's probability in each
    language of `langlist` (langdetect's order, which breaks ties between equally likely languages)."""

    langlist: tuple[str, ...]
    row_of: dict[str, int]
    matrix: np.ndarray


@functools.cache
def _tables() -> ProfileTables:
    """From the cache file when it was written for the installed profiles, else built from langdetect and cached."""
    path = _tables_path()
    try:
        return read_tables(path)
    except (OSError, EOFError, ValueError, KeyError, IndexError, zipfile.BadZipFile):  # missing, torn, unreadable
        pass
    tables = tables_from_langdetect()
    try:
        write_tables(tables, path)
    except OSError:  # a read-only or full cache dir costs the next process a rebuild, nothing more
        pass
    return tables


def tables_from_langdetect() -> ProfileTables:
    import numpy as np

    word_map = _factory().word_lang_prob_map
    matrix = np.ascontiguousarray([word_map[word] for word in word_map], dtype=np.float64)
    return ProfileTables(tuple(_factory().langlist), {word: row for row, word in enumerate(word_map)}, matrix)


def _tables_path() -> Path:
    """The cache file for the profiles langdetect would load now: its name hashes the file names in listing order
    (langdetect numbers languages in that order), their sizes and modification times."""
    from langdetect.detector_factory import PROFILES_DIRECTORY

    # posttrain's one cache dir (POSTTRAIN_CACHE, else the user's), where the embedded model is converted too
    from posttrain.models.embedded import cache_dir

    digest = hashlib.sha256(f"format {_TABLES_FORMAT}\n".encode())
    for name in os.listdir(PROFILES_DIRECTORY):
        stat = os.stat(os.path.join(PROFILES_DIRECTORY, name))
        digest.update(f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return cache_dir() / "langdetect" / f"profiles-{digest.hexdigest()[:16]}.npz"


def write_tables(tables: ProfileTables, path: Path) -> None:
    """Only the non-zero probabilities (4% of the matrix), written to a temporary file and renamed, so a reader
    never sees half a file."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    rows, columns = np.nonzero(tables.matrix)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz.partial", delete=False) as handle:
        partial = Path(handle.name)
        try:
            np.savez(
                handle, langlist=np.array(tables.langlist), ngrams=np.array(list(tables.row_of)),
                shape=np.array(tables.matrix.shape), rows=rows.astype(np.int32), columns=columns.astype(np.int32),
                values=tables.matrix[rows, columns],
            )  # fmt: skip
        except BaseException:
            partial.unlink()  # a full disk leaves no half-written file behind
            raise
    os.replace(partial, path)


def read_tables(path: Path) -> ProfileTables:
    import numpy as np

    with np.load(path, allow_pickle=False) as saved:
        matrix = np.zeros(tuple(saved["shape"]), dtype=np.float64)
        matrix[saved["rows"], saved["columns"]] = saved["values"]
        ngrams = saved["ngrams"].tolist()
        langlist = tuple(saved["langlist"].tolist())
    if matrix.shape != (len(ngrams), len(langlist)):
        raise ValueError(f"{path}: a {matrix.shape} matrix for {len(ngrams)} n-grams in {len(langlist)} languages")
    return ProfileTables(langlist, {gram: row for row, gram in enumerate(ngrams)}, matrix)


@functools.cache
def _random_stream(n_words: int) -> np.ndarray:
    """The first `n_words` 32-bit outputs of `random.Random(0)` (what getrandbits/random() consume)."""
    import numpy as np

    state = random.Random(0).getstate()[1]
    generator = np.random.MT19937()
    generator.state = {
        "bit_generator": "MT19937",
        "state": {"key": np.array(state[:624], dtype=np.uint32), "pos": state[624]},
    }
    return generator.random_raw(n_words).astype(np.uint32)


def _detect_block(ngrams: list[str], detector: Any) -> list[float]:
    """`Detector._detect_block` after n-gram extraction: the mean language distribution of the 7 trials."""
    import numpy as np

    tables = _tables()
    matrix, row_of = tables.matrix, tables.row_of
    rows = np.array([row_of[gram] for gram in ngrams], dtype=np.int64)
    trial = _numpy_trial if next(_detections) < NUMPY_DETECTIONS else _compiled_trial()
    count, languages = len(ngrams), len(detector.langlist)
    shift = 32 - count.bit_length()  # random.choice(seq) = seq[getrandbits(k) >> ...] with rejection above len
    n_words = _STREAM_WORDS
    while True:
        words = _random_stream(n_words)
        position, gauss_next = 0, None
        langprob = np.zeros(languages)
        prob = np.empty(languages)
        for _ in range(detector.n_trial):
            if gauss_next is None:  # random.gauss: two random() draws give this trial's and the next one's
                x2pi = _uniform(words, position) * (2 * math.pi)
                g2rad = math.sqrt(-2.0 * math.log(1.0 - _uniform(words, position + 2)))
                z, gauss_next, position = math.cos(x2pi) * g2rad, math.sin(x2pi) * g2rad, position + 4
            else:
                z, gauss_next = gauss_next, None
            weight = (detector.alpha + (0.0 + z * 1.0) * detector.ALPHA_WIDTH) / detector.BASE_FREQ
            position = trial(words, position, shift, count, rows, matrix, weight, prob, 1.0 / languages,
                             detector.ITERATION_LIMIT, detector.CONV_THRESHOLD)  # fmt: skip
            if position < 0:
                break
            langprob += prob / detector.n_trial
        else:
            return langprob.tolist()
        n_words *= 4  # the stream ran out (a long run of rejected draws): replay with a longer one


def _uniform(words: np.ndarray, position: int) -> float:
    """random.random() from two 32-bit draws (CPython's genrand_res53)."""
    a, b = int(words[position]) >> 5, int(words[position + 1]) >> 6
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0)


@functools.cache
def _compiled_trial() -> Any:
    import numba  # imported on first detection only: it costs half a second at start-up

    return numba.njit(cache=True)(_trial)


def _trial(words, position, shift, count, rows, matrix, weight, prob, start, limit, threshold):  # type: ignore[no-untyped-def]
    """One trial of langdetect's loop; fills `prob`, returns the next stream position (-1: stream exhausted).
    Same operations in the same order as the reference's Python loop (no fastmath: sums stay sequential)."""
    languages = prob.shape[0]
    for j in range(languages):
        prob[j] = start
    i = 0
    while True:
        while True:
            if position >= words.shape[0]:
                return -1
            pick = words[position] >> shift
            position += 1
            if pick < count:
                break
        profile = matrix[rows[pick]]
        for j in range(languages):
            prob[j] *= weight + profile[j]
        if i % 5 == 0:
            total = 0.0
            for j in range(languages):
                total += prob[j]
            largest = 0.0
            for j in range(languages):
                p = prob[j] / total
                if largest < p:
                    largest = p
                prob[j] = p
            if largest > threshold or i >= limit:
                return position
        i += 1


def _numpy_trial(words, position, shift, count, rows, matrix, weight, prob, start, limit, threshold):  # type: ignore[no-untyped-def]
    """`_trial` in numpy, five updates per step (the reference normalises every 5th): the kept draws are found for a
    stretch of the stream at once, and each step multiplies `prob` by its updates' factors in order (a reduction
    down the rows of [prob; factors...] multiplies sequentially, as the reference's loop does), then normalises with
    a sequential sum (`add.accumulate`, as the reference's `sum`). Same operations in the same order, so every
    probability is bit-identical."""
    import numpy as np

    span = 64  # stream words read so far; most trials converge within a few dozen draws
    picks = words[position : position + span] >> shift
    accepted = np.flatnonzero(picks < count)  # offsets of the draws the reference keeps
    rows_of_step = np.empty((6, prob.shape[0]))  # [prob; the step's factors]
    prob[:] = start
    done, step = 0, 1  # the reference normalises after update 0, then after every 5th
    while True:
        while done + step > accepted.shape[0]:  # read further into the stream (the prefix stays the same)
            if position + span >= words.shape[0]:
                return -1  # the stream runs out before the next check
            span *= 4
            picks = words[position : position + span] >> shift
            accepted = np.flatnonzero(picks < count)
        taken = accepted[done : done + step]
        rows_of_step[0] = prob
        np.add(weight, matrix[rows[picks[taken]]], out=rows_of_step[1 : step + 1])
        np.multiply.reduce(rows_of_step[: step + 1], axis=0, out=prob)
        prob /= np.add.accumulate(prob)[-1]
        done += step
        if np.maximum.reduce(prob) > threshold or done - 1 >= limit:
            return position + int(taken[-1]) + 1
        step = 5
