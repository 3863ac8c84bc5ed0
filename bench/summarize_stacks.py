"""Print the functions that take the most samples in py-spy's collapsed stacks.

Usage: python bench/summarize_stacks.py STACKS [TOP]

Each line of STACKS is "frame;frame;...;frame COUNT" (py-spy --format raw). Inclusive
counts a function once per sample in which it appears anywhere; self counts only the
innermost frame.
"""

from __future__ import annotations

import sys
from collections import Counter


def summarize(path: str, top: int) -> None:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_short(frame) for frame in stack.split(";")]
            total += count
            own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    print(f"{total} samples")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"\n{title}:")
        for frame, count in counter.most_common(top):
            print(f"{100 * count / total:6.1f}%  {frame}")


def _short(frame: str) -> str:
    """Drop the directory part of "function (path/file.py:line)" and the line number."""
    name, _, location = frame.partition(" (")
    filename = location.rstrip(")").rpartition("/")[2].partition(":")[0]
    return f"{name} ({filename})" if filename else name


if __name__ == "__main__":
    summarize(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40)
