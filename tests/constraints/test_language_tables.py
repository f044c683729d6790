"""langdetect's profiles cached as one file: read back bit for bit, used instead of langdetect's loader when it matches
the installed profiles, and rebuilt when it is missing, torn or written for other profiles."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from langdetect import detector_factory

from posttrain.constraints import language


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty cache dir; the memoised tables are forgotten before and after, so no test sees another's."""
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))
    _forget()
    yield tmp_path
    _forget()


def _forget() -> None:
    for cached in (language._tables, language._detector_factory, language.detect_language, language._word_ngrams):
        cached.cache_clear()


def _assert_same(a: language.ProfileTables, b: language.ProfileTables) -> None:
    assert a.langlist == b.langlist
    assert list(a.row_of.items()) == list(b.row_of.items())  # same n-grams on the same rows
    assert a.matrix.dtype == b.matrix.dtype == np.float64 and a.matrix.tobytes() == b.matrix.tobytes()


def test_tables_read_back_bit_for_bit(cache: Path) -> None:
    built = language.tables_from_langdetect()
    path = cache / "profiles.npz"
    language.write_tables(built, path)
    _assert_same(language.read_tables(path), built)
    assert built.matrix.shape == (len(built.row_of), 55)


def test_a_later_process_reads_the_cache_instead_of_langdetects_profiles(cache, monkeypatch) -> None:
    first = language._tables()  # built from langdetect and written
    assert list(cache.glob("langdetect/profiles-*.npz")) == [language._tables_path()]
    _forget()
    monkeypatch.setattr(language, "tables_from_langdetect", _must_not_run)
    _assert_same(language._tables(), first)
    assert language.detect_language("Das Wetter ist heute schön und wir gehen spazieren.") == "de"


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 torn", b"\x93NUMPY not really"])
def test_a_torn_cache_file_is_rebuilt(cache: Path, content: bytes) -> None:
    path = language._tables_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    _assert_same(language._tables(), language.tables_from_langdetect())
    _assert_same(language.read_tables(path), language.tables_from_langdetect())  # and written again


def test_the_cache_file_is_named_after_the_profiles(cache, tmp_path, monkeypatch) -> None:
    profiles = tmp_path / "profiles"
    shutil.copytree(detector_factory.PROFILES_DIRECTORY, profiles)
    monkeypatch.setattr(detector_factory, "PROFILES_DIRECTORY", str(profiles))
    before = language._tables_path()
    assert language._tables_path() == before
    with (profiles / "de").open("a", encoding="utf-8") as handle:
        handle.write(" ")  # another langdetect release: other profiles, another file
    assert language._tables_path() != before


def test_an_unwritable_cache_only_costs_a_rebuild(cache, monkeypatch) -> None:
    def refuse(tables, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(language, "write_tables", refuse)
    _assert_same(language._tables(), language.tables_from_langdetect())


def _must_not_run() -> language.ProfileTables:
    raise AssertionError("the profiles were loaded from langdetect although the cache matched")
