"""The fuzz harness (fuzz/fuzz_core.py) in CI: a few thousand cases over every entry point of
the Rust extension, in worker subprocesses; no panic, abort, hang or mismatch. ``make fuzz``
runs 100,000."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT

pytest.importorskip("hypothesis")


def test_fuzz_harness_finds_nothing():
    out = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "fuzz_core.py"), "--examples", "3000", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    res = json.loads(out.stdout)
    assert res["cases"] >= 2900, res
    assert res["failures"] == 0, res["details"]
    assert out.returncode == 0
    # every target produced both results checked against the reference and documented errors
    for target, outcomes in res["by_target"].items():
        assert outcomes.get("ok", 0) > 0 and outcomes.get("error", 0) > 0, (target, outcomes)


def test_fuzz_harness_counts_a_panic_as_a_failure():
    """The harness is not blind: a case that panics in Rust is counted, not swallowed."""
    sys.path.insert(0, str(ROOT / "fuzz"))
    try:
        import fuzz_core
    finally:
        sys.path.pop(0)

    class PanicException(BaseException):
        pass

    def boom(case: object) -> str:
        raise PanicException("attempt to divide by zero")

    assert fuzz_core.classify(boom, None)[0] == "panic"
    assert fuzz_core.classify(lambda c: "mismatch", None)[0] == "mismatch"
    assert fuzz_core.classify(lambda c: 1 / 0, None)[0] == "unexpected"
