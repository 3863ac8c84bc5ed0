"""The README's two first commands: the ones a newcomer pastes before reading further."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def first_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    before_guide = text.split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", before_guide, re.S)]


def test_readme_starts_with_two_commands() -> None:
    assert first_commands() == ["bash .ci/setup && .venv/bin/edgecache demo", "bash .ci/run"]


def test_ci_run_uses_setup_and_pytest() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()

    assert "bash .ci/setup redis-server chromium nginx" in lines
    assert lines[-1] == 'exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"'


def test_setup_installs_venv_module() -> None:
    text = (ROOT / ".ci" / "setup").read_text()

    assert "python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)" in text
    assert ".venv/bin/pip install -q -e '.[test]'" in text
