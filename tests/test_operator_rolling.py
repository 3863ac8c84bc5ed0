"""Rolling counts: windows, series and bucket reuse, driven by explicit times."""

from edgecache.rolling import RollingCounts

FIELDS = ("hit", "miss")
T0 = 1_700_000_000.0  # a multiple of 10, so bucket edges fall on whole tens


def test_window_counts_recent_events() -> None:
    rolling = RollingCounts(FIELDS, since=T0)
    rolling.add(0, T0 + 1)
    rolling.add(0, T0 + 15)
    rolling.add(1, T0 + 25)
    counts, covered = rolling.window(60, T0 + 30)
    assert counts == {"hit": 2, "miss": 1}
    assert covered == 30.0


def test_window_drops_old_buckets() -> None:
    rolling = RollingCounts(FIELDS, since=T0)
    rolling.add(0, T0 + 1)
    rolling.add(1, T0 + 100)
    counts, covered = rolling.window(60, T0 + 105)
    assert counts == {"hit": 0, "miss": 1}
    assert covered == 55.0


def test_window_includes_partial_bucket() -> None:
    rolling = RollingCounts(FIELDS, since=T0 - 1000)
    rolling.add(1, T0 + 2)
    counts, covered = rolling.window(60, T0 + 4)
    assert counts == {"hit": 0, "miss": 1}
    assert covered == 54.0


def test_bucket_reused_after_ring_wraps() -> None:
    rolling = RollingCounts(FIELDS, since=T0, buckets=3)
    rolling.add(0, T0 + 1)
    rolling.add(1, T0 + 31)
    counts, _ = rolling.window(30, T0 + 31)
    assert counts == {"hit": 0, "miss": 1}


def test_series_oldest_first() -> None:
    rolling = RollingCounts(FIELDS, since=T0, buckets=4)
    rolling.add(0, T0 + 1)
    rolling.add(0, T0 + 2)
    rolling.add(1, T0 + 21)
    series = rolling.series(T0 + 25)
    assert series["start"] == T0 - 10
    assert series["bucket_seconds"] == 10
    assert series["counts"] == {"hit": [0, 2, 0, 0], "miss": [0, 0, 0, 1]}
    assert series["covered_seconds"] == [0.0, 10.0, 10.0, 5.0]


def test_empty_window_covers_no_time() -> None:
    rolling = RollingCounts(FIELDS, since=T0)
    counts, covered = rolling.window(60, T0)
    assert counts == {"hit": 0, "miss": 0}
    assert covered == 0.0
