"""The counting kernels' SIMD builds (AVX-512, AVX2, portable) give the same results, bit for
bit: each build forced through ``HYBRIDRS_SIMD`` in a subprocess, on real XQuAD-R layouts with
random scores (ties included) and on TF-IDF-like sparse scores."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from hybridrs import _core

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


def _run(level: str, path) -> dict:
    env = {**os.environ, "HYBRIDRS_SIMD": level}
    subprocess.run([sys.executable, "-c", SCRIPT, str(XQUAD), str(path)], env=env, check=True,
                   timeout=600)  # fmt: skip
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_every_simd_build_gives_the_same_metrics(tmp_path):
    results = {lvl: _run(lvl, tmp_path / f"{lvl}.npz") for lvl in ("portable", "avx2", "avx512")}
    assert str(results["portable"]["level"]) == "portable"
    best = _core.simd_level()
    assert str(results["avx512"]["level"]) == best  # the cap never raises the level
    if best != "portable":
        assert str(results["avx2"]["level"]) == "avx2"
    ref = results["portable"]
    for lvl, res in results.items():
        for k in ref:
            if k != "level":
                np.testing.assert_array_equal(res[k], ref[k], err_msg=f"{lvl} {k}")
