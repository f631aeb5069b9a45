"""The counting kernels' SIMD builds (AVX-512, AVX2, portable) give the same results, bit for
bit: each build forced through ``HYBRIDRS_SIMD`` in a subprocess, on real XQuAD-R layouts with
random scores (ties included) and on TF-IDF-like sparse scores."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from .conftest import XQUAD

SCRIPT = r"""
import sys
import numpy as np
import hybridrs
from hybridrs import _core
ds = hybridrs.load_lareqa(sys.argv[1])
ds = ds.subset(questions=range(0, ds.n_questions, 10))
rng = np.random.default_rng(0)
out = {"level": np.array(_core.simd_level())}
for name, scores in (
    ("ties", np.round(rng.random((ds.n_questions, ds.n_candidates)), 2).astype(np.float32)),
    ("sparse", (rng.random((ds.n_questions, ds.n_candidates)) ** 8).astype(np.float32)),
    ("f64", rng.standard_normal((ds.n_questions, ds.n_candidates))),
):
    per = _core.query_metrics(scores, 0, ds.relevance_indptr, ds.relevance_indices,
                              ds.lang_offsets, [1, 10], 10, "R")
    for k, v in per.items():
        out[f"{name}-{k}"] = np.asarray(v)
np.savez(sys.argv[2], **out)
"""


def _run(level: str, path, script: str = SCRIPT) -> dict:
    """The arrays ``script`` saves, run at SIMD level ``level`` on XQuAD-R in a subprocess."""
    env = {**os.environ, "HYBRIDRS_SIMD": level}
    subprocess.run([sys.executable, "-c", script, str(XQUAD), str(path)], env=env, check=True,
                   timeout=600)  # fmt: skip
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _uncapped(what: str) -> str:
    """``_core.<what>()`` in a process without ``HYBRIDRS_SIMD`` (this one may run capped)."""
    env = {k: v for k, v in os.environ.items() if k != "HYBRIDRS_SIMD"}
    code = f"from hybridrs import _core; print(_core.{what}())"
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=600,
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip()


def test_every_simd_build_gives_the_same_metrics(tmp_path):
    results = {lvl: _run(lvl, tmp_path / f"{lvl}.npz") for lvl in ("portable", "avx2", "avx512")}
    assert str(results["portable"]["level"]) == "portable"
    best = _uncapped("simd_level")
    assert str(results["avx512"]["level"]) == best  # the cap never raises the level
    if best != "portable":
        assert str(results["avx2"]["level"]) == "avx2"
    ref = results["portable"]
    for lvl, res in results.items():
        for k in ref:
            if k != "level":
                np.testing.assert_array_equal(res[k], ref[k], err_msg=f"{lvl} {k}")


FUSED_SCRIPT = r"""
import sys
import numpy as np
import hybridrs
from hybridrs import _core
ds = hybridrs.load_lareqa(sys.argv[1])
ds = ds.subset(questions=range(0, ds.n_questions, 7))
rng = np.random.default_rng(1)
q = rng.standard_normal((ds.n_questions, 40), dtype=np.float32)
c = rng.standard_normal((ds.n_candidates, 40), dtype=np.float32)
for i in range(0, ds.n_questions, 2):  # relevant candidates high, as after training
    c[ds.relevant(i)] += q[i]
out = {"kernel": np.array(str(_core.fused_kernel()))}
try:
    rep = hybridrs.evaluate(ds, q, c, backend="fused", block_rows=500)
    for k, v in rep.per_query.items():
        out[f"fused-{k}"] = np.asarray(v)
except ValueError as e:
    out["error"] = np.array(str(e))
auto = hybridrs.evaluate(ds, q, c)
out["auto-ap"] = auto.per_query["ap"]
np.savez(sys.argv[2], **out)
"""


def test_fused_kernels_give_the_same_metrics_and_portable_has_none(tmp_path):
    """The AVX-512 and AVX2 microkernels compute each score as the same FMA chain, so their
    metrics agree bit for bit; at the portable level the fused path is refused with a clear
    message and ``"auto"`` falls back to the blocked backend."""
    levels = ("portable", "avx2", "avx512")
    res = {lvl: _run(lvl, tmp_path / f"f-{lvl}.npz", FUSED_SCRIPT) for lvl in levels}
    assert str(res["portable"]["kernel"]) == "None"
    assert "needs an x86-64 CPU with AVX2" in str(res["portable"]["error"])
    ran = [lvl for lvl in ("avx2", "avx512") if "error" not in res[lvl]]
    best = _uncapped("fused_kernel")
    if best != "None":
        assert str(res["avx512"]["kernel"]) == best
        assert str(res["avx2"]["kernel"]) == "avx2"
        assert "avx2" in ran
    for lvl in ran:
        for k in res[ran[0]]:
            if k.startswith("fused-"):
                np.testing.assert_array_equal(res[lvl][k], res[ran[0]][k], err_msg=f"{lvl} {k}")
        np.testing.assert_array_equal(res[lvl]["auto-ap"], res[lvl]["fused-ap"])
    # the blocked fallback (BLAS sums) agrees up to near-ties
    if ran:
        np.testing.assert_allclose(res["portable"]["auto-ap"], res[ran[0]]["fused-ap"], atol=1e-3)
