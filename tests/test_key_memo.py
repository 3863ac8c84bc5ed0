"""Canonical paths are the same whether they come from the memo or are computed."""

from __future__ import annotations

from edgecache.key import MEMO_MAX_PATH_CHARS, canonical_path


def test_memo_returns_computed_form() -> None:
    for _ in range(2):
        assert canonical_path("//a/../%73hoe/p") == "/shoe/p"
        assert canonical_path("/Shoe/p/") == "/Shoe/p/"


def test_memo_keeps_fold_settings_apart() -> None:
    assert canonical_path("/Shoe/p/") == "/Shoe/p/"
    assert canonical_path("/Shoe/p/", fold_trailing_slash=True, fold_case=True) == "/shoe/p"
    assert canonical_path("/Shoe/p/") == "/Shoe/p/"


def test_long_path_bypasses_memo() -> None:
    long_path = "//a/../%73hoe/" + "x" * MEMO_MAX_PATH_CHARS + "/p"
    assert canonical_path(long_path) == "/shoe/" + "x" * MEMO_MAX_PATH_CHARS + "/p"
