"""Fuzz harness for every public entry point of the Rust extension (``hybridrs._core``) and the
Python wrappers over it.

Hypothesis draws inputs, mostly valid problems with zero to two corruptions (wrong dtypes and
shapes, NaN, out-of-range indices and offsets, sizes near 2**64, huge cutoff lists, NaN and
1e308 weights, ...). Each case must end in a *documented* outcome:

* ``ok``: a result, checked against the plain-Python reference (metrics) or the documented
  invariants (pool statistics, sampler batches);
* ``error``: a ``ValueError``, ``TypeError``, ``MemoryError`` or ``OverflowError``.

Anything else is a failure: ``panic`` (a Rust panic crossing FFI), ``unexpected`` (another
exception), ``mismatch`` (a result that differs from the reference), ``abort`` (the process
died: a Rust abort, a failed allocation) and ``hang`` (no progress for ``--hang-seconds``).
Cases run in worker subprocesses so that an abort is caught and counted; the driver restarts a
worker after one.

    python fuzz/fuzz_core.py --examples 100000      # make fuzz
    python fuzz/fuzz_core.py --examples 3000        # the CI run (tests/test_fuzz.py)

Prints the counts by target and outcome (and JSON with ``--json``); exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

DOCUMENTED = (ValueError, TypeError, MemoryError, OverflowError)
FAILURES = ("panic", "unexpected", "mismatch", "abort", "hang")
HUGE = [2**31, 2**32, 2**62 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70, -1, -(2**63)]


# -- strategies -----------------------------------------------------------------------------------
def _strategies() -> dict[str, Any]:
    from hypothesis import strategies as st

    from hybridrs.data import Candidate, Question, RetrievalSet

    weird_int = st.one_of(st.integers(-3, 40), st.sampled_from(HUGE))

    @st.composite
    def problem(draw: Any) -> tuple[RetrievalSet, np.ndarray]:
        n_langs = draw(st.integers(1, 4))
        langs = [f"l{i}" for i in range(n_langs)]
        per = [draw(st.integers(1 if i == 0 else 0, 5)) for i in range(n_langs)]
        cands = [
            Candidate(lg, "c", "", 0) for lg, n in zip(langs, per, strict=False) for _ in range(n)
        ]
        nc = len(cands)
        nq = draw(st.integers(1, 6))
        qs, rel = [], []
        for i in range(nq):
            r = sorted(draw(st.sets(st.integers(0, nc - 1), max_size=nc)))
            qs.append(Question(draw(st.sampled_from(langs)), str(i), "q", r[0] if r else 0, 0))
            rel.append(r)
        levels = draw(st.integers(1, 4))
        flat = draw(st.lists(st.integers(0, levels), min_size=nq * nc, max_size=nq * nc))
        return RetrievalSet(langs, qs, cands, rel), np.array(flat, dtype=np.float64).reshape(nq, nc)

    def corrupt_array(draw: Any, a: Any) -> Any:
        if not isinstance(a, np.ndarray):
            return a
        try:
            return _corrupt(draw, a)
        except (ValueError, TypeError, OverflowError):  # a corruption numpy itself refuses
            return a

    def _corrupt(draw: Any, a: np.ndarray) -> Any:
        kind = draw(st.integers(0, 9))
        if kind == 0:
            return a.astype(draw(st.sampled_from([np.float16, np.int32, np.bool_, object])))
        if kind == 1:
            return a.reshape(-1) if a.ndim > 1 else a.reshape(1, -1)
        if kind == 2 and a.size:
            b = a.astype(np.float64).copy()
            b.flat[draw(st.integers(0, a.size - 1))] = draw(
                st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308])
            )
            with np.errstate(over="ignore"):
                return b.astype(a.dtype) if a.dtype.kind == "f" else b
        if kind == 3:
            return np.asfortranarray(a) if a.ndim == 2 else a.copy()
        if kind == 4 and a.size:
            b = a.copy()
            b.flat[draw(st.integers(0, a.size - 1))] = draw(
                st.sampled_from([-1, 2**31, 2**40, 2**62, -(2**62)])
            )
            return b
        if kind == 5:
            return a[: draw(st.integers(0, max(a.shape[0] - 1, 0)))] if a.ndim else a
        if kind == 6:
            return np.concatenate([a, a]) if a.ndim else a
        if kind == 7:
            return a.tolist()
        if kind == 8:
            return a[::2] if a.ndim else a
        return None

    @st.composite
    def metrics_case(draw: Any) -> dict[str, Any]:
        ds, scores = draw(problem())
        args: dict[str, Any] = {
            "ds": ds,
            "scores": scores.astype(draw(st.sampled_from([np.float32, np.float64]))),
            "first_row": 0,
            "indptr": ds.relevance_indptr.copy(),
            "indices": ds.relevance_indices.copy(),
            "offsets": ds.lang_offsets.copy(),
            "recall_at": draw(st.lists(st.integers(1, 12), max_size=3)),
            "map_at": draw(st.integers(1, 12)),
            "map_norm": draw(st.sampled_from(["R", "min(k,R)"])),
            "valid": True,
        }
        for _ in range(draw(st.integers(0, 2))):
            args["valid"] = False
            what = draw(
                st.sampled_from(
                    [
                        *("scores", "first_row", "indptr", "indices", "offsets", "recall_at"),
                        *("map_at", "map_norm", "big_recall"),
                    ]
                )
            )
            if what in ("scores", "indptr", "indices", "offsets"):
                args[what] = corrupt_array(draw, args[what])
            elif what in ("first_row", "map_at"):
                args[what] = draw(weird_int)
            elif what == "recall_at":
                args[what] = draw(st.lists(weird_int, max_size=4))
            elif what == "big_recall":
                args["recall_at"] = list(range(1, draw(st.integers(1, 200_000))))
            else:
                args[what] = draw(st.text(max_size=6))
        return args

    @st.composite
    def aggregate_case(draw: Any) -> dict[str, Any]:
        n = draw(st.integers(0, 6))
        nl = draw(st.integers(1, 4))
        nk = draw(st.integers(0, 3))
        sizes = {"ap": n, "ap_at_k": n, "recall": n * nk, "rank_distance": n, "lang_ap": n * nl}
        sizes.update({"lang_ap_at_k": n * nl, "lang_recall": n * nl * nk})
        vals = st.one_of(st.floats(0, 1), st.just(float("nan")))
        per = {
            k: np.array(draw(st.lists(vals, min_size=m, max_size=m)), dtype=np.float64)
            for k, m in sizes.items()
        }
        ql = np.array(
            draw(st.lists(st.integers(0, nl - 1), min_size=n, max_size=n)), dtype=np.int64
        )
        case = {"per": per, "ql": ql, "nl": nl, "nk": nk}
        what = draw(st.sampled_from(["none", "none", "key", "size", "dtype", "ql", "nl", "nk"]))
        key = draw(st.sampled_from(sorted(sizes)))
        if what == "key":
            del per[key]
        elif what == "size":
            per[key] = np.concatenate([per[key], [0.5]])
        elif what == "dtype":
            per[key] = per[key].astype(draw(st.sampled_from([np.float32, np.int64, object])))
        elif what == "ql" and n:
            ql[draw(st.integers(0, n - 1))] = draw(st.sampled_from([-1, nl, 2**40]))
        elif what in ("nl", "nk"):
            case[what] = draw(st.sampled_from(HUGE))
        return case

    @st.composite
    def pool_case(draw: Any) -> dict[str, Any]:
        n = draw(st.integers(0, 40))
        nl = draw(
            st.one_of(st.integers(1, 6), st.integers(1, 6), st.sampled_from([0, 255, 256, *HUGE]))
        )
        top = min(nl, 6) - 1 if draw(st.integers(0, 4)) else 7  # mostly valid codes
        langs = draw(
            st.lists(st.integers(-1 if top == 7 else 0, max(top, 0)), min_size=n, max_size=n)
        )
        # distinct (group, language) rows mostly; a duplicate now and then
        g = [
            i // max(top + 1, 1) if draw(st.integers(0, 9)) else draw(st.integers(-3, 12))
            for i in range(n)
        ]
        langs = [i % max(top + 1, 1) if x >= 0 and top != 7 else x for i, x in enumerate(langs)]
        keep = draw(st.one_of(st.none(), st.lists(st.booleans(), max_size=8)))
        return {
            "g": np.array(g, dtype=np.int64),
            "l": np.array(langs, dtype=np.int64),
            "nl": nl,
            "keep": keep,
            "min_langs": draw(weird_int),
            "group": draw(weird_int),
        }

    @st.composite
    def sampler_case(draw: Any) -> dict[str, Any]:
        n_groups = draw(st.integers(1, 30))
        ids, langs = [], []
        for gi in range(n_groups):
            for lg in draw(st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True)):
                ids.append(gi)
                langs.append(lg)
        case = {
            "ids": np.array(ids, dtype=np.int64),
            "langs": np.array(langs, dtype=np.int64),
            "batch_size": draw(st.integers(1, 4)),
            "world_size": draw(st.integers(1, 2)),
            "alpha": draw(st.floats(0, 1)),
            "seed": draw(st.integers(0, 2**20)),
            "weights": [],
            "drop_last": draw(st.booleans()),
            "epoch": draw(st.integers(0, 5)),
        }
        what = draw(
            st.sampled_from(
                [
                    "none",
                    "none",
                    "none",
                    "batch_size",
                    "world_size",
                    "alpha",
                    "seed",
                    "weights",
                    "epoch",
                    "sizes",
                ]
            )
        )
        if what == "sizes":  # both large: their product wraps in unchecked arithmetic
            case["batch_size"] = draw(st.sampled_from([2**32, 2**62 + 1, 2**63 - 1]))
            case["world_size"] = draw(st.sampled_from([2, 4, 2**32]))
        elif what in ("batch_size", "world_size", "seed"):
            case[what] = draw(st.sampled_from([0, *HUGE]))
        elif what == "alpha":
            case[what] = draw(st.sampled_from([np.nan, -0.1, 1.5, np.inf]))
        elif what == "weights":
            case[what] = draw(
                st.lists(
                    st.one_of(st.floats(0, 10), st.sampled_from([0.0, 1e308, np.nan, np.inf, -1])),
                    min_size=0,
                    max_size=5,
                )
            )
        elif what == "epoch":
            case[what] = draw(st.sampled_from([2**63, 2**64 - 1, 2**64, -1]))
        return case

    @st.composite
    def embeddings_case(draw: Any) -> dict[str, Any]:
        ds, _ = draw(problem())
        dim = draw(st.integers(1, 5))
        q = np.array(
            draw(
                st.lists(
                    st.integers(-3, 3), min_size=ds.n_questions * dim, max_size=ds.n_questions * dim
                )
            ),
            dtype=np.float32,
        ).reshape(ds.n_questions, dim)
        c = np.array(
            draw(
                st.lists(
                    st.integers(-3, 3),
                    min_size=ds.n_candidates * dim,
                    max_size=ds.n_candidates * dim,
                )
            ),
            dtype=np.float32,
        ).reshape(ds.n_candidates, dim)
        valid = True
        if draw(st.booleans()):
            valid = False
            which = draw(st.sampled_from(["q", "c"]))
            bad = corrupt_array(draw, q if which == "q" else c)
            q, c = (bad, c) if which == "q" else (q, bad)
        return {
            "ds": ds,
            "q": q,
            "c": c,
            "valid": valid,
            "block_rows": draw(st.one_of(st.none(), st.integers(1, 4))),
            "first_row": draw(st.one_of(st.just(0), weird_int)),
        }

    @st.composite
    def wrapper_case(draw: Any) -> dict[str, Any]:
        n = draw(st.integers(1, 24))
        ids = [f"q{i // 3}" for i in range(n)]
        langs = [["en", "de", "zh"][i % 3] for i in range(n)]
        case: dict[str, Any] = {
            "g": ids,
            "l": langs,
            "batch_size": draw(st.integers(1, 3)),
            "alpha": draw(st.one_of(st.none(), st.floats(0, 1))),
            "strategy": draw(st.one_of(st.none(), st.just("hybrid"))),
        }
        bad = st.one_of(
            st.text(max_size=2),
            st.integers(-5, 5),
            st.none(),
            st.just(float("nan")),
            st.binary(max_size=2),
            st.sampled_from(HUGE),
        )
        what = draw(st.sampled_from(["none", "none", "g", "l", "batch_size", "alpha", "strategy"]))
        if what in ("g", "l"):
            case[what][draw(st.integers(0, n - 1))] = draw(bad)
        elif what == "batch_size":
            case[what] = draw(st.one_of(st.sampled_from(HUGE), st.floats(-2, 5), st.none()))
        elif what == "alpha":
            case[what] = draw(st.one_of(st.floats(allow_nan=True), st.booleans(), st.text()))
        elif what == "strategy":
            case[what] = draw(st.one_of(st.sampled_from(["mono", "cross", "x"]), st.integers()))
        return case

    @st.composite
    def strings_case(draw: Any) -> dict[str, Any]:
        alphabet = st.sampled_from([*"aqz09-_\x00é日本", "ü", "\U0001f600"])
        word = st.text(alphabet, min_size=1, max_size=draw(st.sampled_from([3, 12, 40])))
        pool = draw(st.lists(word, min_size=1, max_size=draw(st.sampled_from([4, 60, 3000]))))
        n = draw(st.integers(1, 5000))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        values = [pool[i] for i in rng.integers(0, len(pool), n)]
        case: dict[str, Any] = {
            "values": values,
            "layout": draw(
                st.sampled_from(
                    ["list", "tuple", "objects", "U", "S", "arrow", "large_arrow", "raw"]
                )
            ),
            "order": draw(st.sampled_from(["sorted", "first_seen", "random"])),
        }
        case["valid"] = case["order"] != "random"
        what = draw(st.sampled_from(["none", "none", "none", "empty", "offsets"]))
        if what == "empty":
            values[draw(st.integers(0, n - 1))] = ""
            case["valid"] = False
        elif what == "offsets":
            case["layout"] = "raw"
            case["corrupt"] = draw(st.sampled_from(["order", "beyond", "negative", "dtype"]))
            case["valid"] = False
        return case

    @st.composite
    def string_pool_case(draw: Any) -> dict[str, Any]:
        alphabet = st.sampled_from([*"aqz09-_é日", "\U0001f600"])
        word = st.text(alphabet, min_size=draw(st.sampled_from([0, 1, 1])), max_size=12)
        words = draw(st.lists(word, min_size=1, max_size=draw(st.sampled_from([3, 50, 2000]))))
        langs = draw(st.lists(st.sampled_from(["de", "en", "zh", "ä", "x"]), min_size=1,
                              max_size=5, unique=True))  # fmt: skip
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        rows = [(w, lang) for w in words for lang in langs if rng.random() < 0.7]
        if not rows:
            rows = [(words[0], langs[0])]
        if not draw(st.booleans()):  # most cases: each (id, language) once
            rows = list(dict.fromkeys(rows))
        rows = [rows[i] for i in rng.permutation(len(rows))]
        case = {
            "ids": [r[0] for r in rows],
            "langs": [r[1] for r in rows],
            "layout": draw(
                st.sampled_from(["list", "tuple", "objects", "U", "S", "arrow", "large_arrow"])
            ),
            "bad": draw(st.sampled_from(["none"] * 6 + ["kind", "item", "short"])),
        }
        case["valid"] = case["bad"] == "none"
        return case

    @st.composite
    def dense_case(draw: Any) -> dict[str, Any]:
        n_groups = draw(st.integers(1, 40))
        n_langs = draw(st.integers(1, 5))
        g, lg = [], []
        for gi in range(n_groups):
            k = draw(st.integers(1, n_langs))
            for lang in draw(st.permutations(range(n_langs)))[:k]:
                g.append(gi)
                lg.append(lang)
        perm = draw(st.permutations(range(len(g))))
        case: dict[str, Any] = {
            "g": np.array(g, dtype=np.uint32)[perm],
            "l": np.array(lg, dtype=np.uint32)[perm],
            "ng": n_groups,
            "nl": n_langs,
        }
        what = draw(st.sampled_from(["none", "none", "g", "l", "ng", "nl", "dup", "len"]))
        case["valid"] = what == "none" or (what == "dup" and len(g) < 2)
        if what in ("g", "l"):
            top = n_groups if what == "g" else n_langs  # codes must be below it
            case[what][draw(st.integers(0, len(g) - 1))] = draw(
                st.sampled_from([top, top + 3, 2**32 - 1])
            )
        elif what in ("ng", "nl"):
            case[what] = draw(st.sampled_from([0, 2**24 + 1, 2**40, 300]))
        elif what == "dup" and len(g) > 1:
            case["g"][1], case["l"][1] = case["g"][0], case["l"][0]
        elif what == "len":
            case["l"] = case["l"][:-1]
        return case

    @st.composite
    def bias_case(draw: Any) -> dict[str, Any]:
        ds, scores = draw(problem())
        what = draw(st.sampled_from(["none", "none", "none", "gt", "ge_top", "top_k", "rows"]))
        return {
            "ds": ds,
            "scores": scores,
            "top_k": draw(st.lists(st.integers(1, 8), min_size=1, max_size=3)),
            "what": what,
            "valid": what == "none",
        }

    @st.composite
    def shard_case(draw: Any) -> dict[str, Any]:
        case = draw(embeddings_case())
        n_c = case["ds"].n_candidates
        case["cut"] = draw(st.integers(0, n_c))
        # k: small, or refused (0, negative, past usize); never huge and valid (a k x n output)
        case["k"] = draw(st.one_of(st.integers(1, 12), st.sampled_from([0, -1, 2**64, 2**70])))
        if not 1 <= case["k"] <= 12 or not 0 <= case["first_row"] < 2**64:
            case["valid"] = False
        return case

    return {
        "fused_shard": shard_case(),
        "bias_from_counts": bias_case(),
        "strings": strings_case(),
        "dense_pool": dense_case(),
        "string_pool": string_pool_case(),
        "query_metrics": metrics_case(),
        "aggregate": aggregate_case(),
        "pool": pool_case(),
        "sampler": sampler_case(),
        "embeddings": embeddings_case(),
        "wrappers": wrapper_case(),
    }


# -- checks: each returns "ok" or "mismatch" (exceptions are classified by the caller) -----------
def _same_report(rust: Any, ref: dict[str, Any]) -> bool:
    fields = ["pair_map", "pair_map_at_k", "pair_recall", "multi_map", "multi_map_at_k"]
    fields += ["multi_recall"]
    for f in fields:
        if not np.allclose(getattr(rust, f), ref[f], atol=1e-12, equal_nan=True):
            return False
    return bool(
        np.array_equal(rust.pair_n, ref["pair_n"])
        and np.array_equal(rust.multi_n, ref["multi_n"])
        and np.allclose(rust.rank_distance_by_lang, ref["rank_distance"], equal_nan=True)
    )


def check_query_metrics(a: dict[str, Any]) -> str:
    import hybridrs
    from hybridrs import _core, reference

    per = _core.query_metrics(
        a["scores"],
        a["first_row"],
        a["indptr"],
        a["indices"],
        a["offsets"],
        a["recall_at"],
        a["map_at"],
        a["map_norm"],
    )
    if not a["valid"]:
        return "ok" if isinstance(per, dict) else "mismatch"
    ds = a["ds"]
    opts = {"recall_at": a["recall_at"], "map_at": a["map_at"], "map_norm": a["map_norm"]}
    rust = hybridrs.evaluate(ds, a["scores"], **opts)
    ref = reference.evaluate_scores(ds, a["scores"].astype(np.float64), **opts)
    return "ok" if _same_report(rust, ref) else "mismatch"


def check_aggregate(a: dict[str, Any]) -> str:
    from hybridrs import _core

    out = _core.aggregate(a["per"], a["ql"], a["nl"], a["nk"])
    return "ok" if isinstance(out, dict) and "pair_map" in out else "mismatch"


def check_pool(a: dict[str, Any]) -> str:
    from hybridrs import _core
    from hybridrs.reference import ReferencePairPool

    pool = _core.PairPool.from_codes(a["g"], a["l"], a["nl"])
    ref = ReferencePairPool(a["g"].tolist(), a["l"].tolist()).stats()
    s = pool.stats()
    if (int(s["groups"]), int(s["rows"]), int(s["cross_pairs"])) != (
        ref["groups"],
        ref["rows"],
        ref["cross_pairs"],
    ):
        return "mismatch"
    try:
        rows, langs = pool.group(a["group"])
        if any(
            a["g"][r] != a["g"][rows[0]] or a["l"][r] != lg
            for r, lg in zip(rows, langs, strict=False)
        ):
            return "mismatch"
    except DOCUMENTED:
        pass
    try:  # a documented error here is fine: the pool itself was checked above
        pool.filter(a["keep"], a["min_langs"]).stats()
    except DOCUMENTED:
        pass
    return "ok"


def check_sampler(a: dict[str, Any]) -> str:
    from hybridrs import _core

    nl = int(a["langs"].max()) + 1
    pool = _core.PairPool.from_codes(a["ids"], a["langs"], nl)
    weights = a["weights"] if len(a["weights"]) else [1.0] * nl
    s = _core.HybridSampler(
        pool, a["batch_size"], a["world_size"], a["alpha"], a["seed"], weights, a["drop_last"]
    )
    plan = s.plan(a["epoch"])
    gb = plan["global_batch"]
    q = np.asarray(plan["q_rows"]).reshape(-1, gb)
    p = np.asarray(plan["p_rows"]).reshape(-1, gb)
    modes = np.asarray(plan["modes"])
    if q.shape[0] != s.steps or gb != a["batch_size"] * a["world_size"]:
        return "mismatch"
    ids, langs = a["ids"], a["langs"]
    for step in range(q.shape[0]):
        if len(set(ids[q[step]].tolist())) != gb or not np.array_equal(ids[q[step]], ids[p[step]]):
            return "mismatch"
        if modes[step] < 0 and np.any(langs[q[step]] == langs[p[step]]):
            return "mismatch"
        if modes[step] >= 0 and (
            np.any(langs[q[step]] != modes[step]) or not np.array_equal(q[step], p[step])
        ):
            return "mismatch"
    return "ok"


def check_embeddings(a: dict[str, Any]) -> str:
    import hybridrs
    from hybridrs import _core, reference

    ds = a["ds"]
    if _core.fused_available():
        _core.query_metrics_embeddings(
            a["q"],
            a["c"],
            a["first_row"],
            ds.relevance_indptr,
            ds.relevance_indices,
            ds.lang_offsets,
            [1],
            2,
            "R",
        )
    rust = hybridrs.evaluate(ds, a["q"], a["c"], block_rows=a["block_rows"], backend="blocked")
    if not a["valid"]:
        return "ok"
    ref = reference.evaluate_scores(ds, a["q"].astype(np.float64) @ a["c"].T.astype(np.float64))
    if not _same_report(rust, ref):
        return "mismatch"
    if _core.fused_available():  # small integers: exact dot products in any order
        fused = hybridrs.evaluate(ds, a["q"], a["c"], block_rows=a["block_rows"], backend="fused")
        if not _same_report(fused, ref):
            return "mismatch"
    return "ok"


def check_fused_shard(a: dict[str, Any]) -> str:
    from hybridrs import _core

    if _core.fused_kernel() is None:  # no fused kernel here: refused with a documented error
        try:
            _core.FusedShard(np.zeros((1, 1), dtype=np.float32), np.array([0, 1]))
        except ValueError as e:
            if "backend" in str(e):
                return "ok" if a["valid"] else "error"
        return "mismatch"
    # (an invalid case may still be a valid input, a corruption being no more than a changed
    # value: only a documented error or a result counts, as for "embeddings")
    return _check_fused_shard(a)


def _check_fused_shard(a: dict[str, Any]) -> str:
    """The candidates cut in two shards (one may be empty): thresholds by
    ``fused_scores_at`` on the shard holding each candidate, ``FusedShard.counts`` of both
    shards summed, must equal ``threshold_counts`` of the whole (exact: small integers) score
    matrix, and the merged top lists the rows' largest scores with exact ``>=`` counts."""
    from hybridrs import _core

    ds, q, c, cut, k = a["ds"], a["q"], a["c"], a["cut"], a["k"]
    off = np.asarray(ds.lang_offsets, dtype=np.int64)
    indptr = np.asarray(ds.relevance_indptr, dtype=np.int64)
    indices = np.asarray(ds.relevance_indices, dtype=np.int64)
    n_q, n_c = ds.n_questions, ds.n_candidates
    rows = np.repeat(np.arange(n_q, dtype=np.int64), np.diff(indptr))
    shards = [(0, cut), (cut, n_c)]
    thr = np.zeros(len(indices), dtype=np.float32)
    for s0, s1 in shards:
        own = (indices >= s0) & (indices < s1)
        if own.any():
            cs = c[s0:s1] if isinstance(c, np.ndarray) else c
            thr[own] = _core.fused_scores_at(q, cs, rows[own], indices[own] - s0)
    outs = []
    for s0, s1 in shards:
        cs = c[s0:s1] if isinstance(c, np.ndarray) else c
        shard = _core.FusedShard(cs, np.clip(off, s0, s1) - s0)
        outs.append(shard.counts(q, a["first_row"], indptr, thr, k))
    if not a["valid"]:
        return "ok"
    scores = (q.astype(np.float64) @ c.T.astype(np.float64)).astype(np.float32)
    want_ge, want_gt = _core.threshold_counts(scores, 0, off, indptr, thr)
    if not (
        np.array_equal(outs[0][0] + outs[1][0], want_ge)
        and np.array_equal(outs[0][1] + outs[1][1], want_gt)
    ):
        return "mismatch"
    n_l = len(off) - 1
    for i in range(n_q):
        row = scores[i]
        head = -np.sort(-row)
        lists = [(o[2].reshape(n_q, k)[i], o[3].reshape(n_q, k)[i], o[4].reshape(n_q, n_l)[i])
                 for o in outs]  # fmt: skip
        merged = -np.sort(-np.concatenate([v for v, _, _ in lists]))
        if not np.array_equal(merged[: min(k, n_c)], head[:k]):
            return "mismatch"
        for j in range(min(k, n_c)):
            cut_v = head[j]
            for lang in range(n_l):
                want = int((row[off[lang] : off[lang + 1]] >= cut_v).sum())
                got = sum(
                    int(((v >= cut_v) & (lg == lang)).sum())
                    + (int(t[lang]) if v[-1] == cut_v else 0)
                    for v, lg, t in lists
                )
                if got != want:
                    return "mismatch"
    return "ok"


def check_wrappers(a: dict[str, Any]) -> str:
    from hybridrs import HybridBatchSampler, PairPool

    pool = PairPool.from_arrays(a["g"], a["l"])
    HybridBatchSampler(pool, a["batch_size"], alpha=a["alpha"], strategy=a["strategy"]).plan()
    return "ok"


def _string_reference(values: list[str], order: str) -> tuple[list[int], list[int]]:
    """Codes and first rows of ``values`` by plain Python: first-seen, or sorted by code point."""
    first: dict[str, int] = {}
    for i, v in enumerate(values):
        first.setdefault(v, i)
    keys = sorted(first) if order == "sorted" else list(first)
    code = {k: c for c, k in enumerate(keys)}
    return [code[v] for v in values], [first[k] for k in keys]


def _valid_or_refused(check: Any, a: dict[str, Any]) -> str:
    """A valid case must give the reference's result; an invalid one a documented error."""
    try:
        out = check(a)
    except DOCUMENTED:
        return "mismatch" if a["valid"] else "error"
    return out if a["valid"] else "mismatch"


def check_bias_from_counts(a: dict[str, Any]) -> str:
    return _valid_or_refused(_check_bias_from_counts, a)


def _check_bias_from_counts(a: dict[str, Any]) -> str:
    """Counts summed as the sharded path sums them (one shard: the whole row) give the bias
    counts of the score rows themselves."""
    from hybridrs import _core

    ds, s = a["ds"], np.ascontiguousarray(a["scores"], dtype=np.float64)
    indptr, indices, off = ds.relevance_indptr, ds.relevance_indices, ds.lang_offsets
    n, nc = s.shape
    top_k = list(a["top_k"])
    thr = s[np.repeat(np.arange(n), np.diff(indptr)), indices]
    _, gt = _core.threshold_counts(s, 0, off, indptr, np.ascontiguousarray(thr))
    kth = -np.sort(-s, axis=1)[:, [min(k, nc) - 1 for k in top_k]]
    tptr = np.arange(0, n * len(top_k) + 1, len(top_k), dtype=np.int64)
    ge_top, _ = _core.threshold_counts(s, 0, off, tptr, np.ascontiguousarray(kth.reshape(-1)))
    n_rows, what = n, a["what"]
    if what == "gt":
        gt = np.concatenate([gt, np.zeros(1, dtype=gt.dtype)])
    elif what == "ge_top":
        ge_top = ge_top[:-1]
    elif what == "top_k":
        top_k = [*top_k, 1]  # one cutoff more than ge_top holds
    elif what == "rows":
        n_rows = n + 1
    got = _core.bias_from_counts(gt, ge_top, 0, n_rows, indptr, indices, off, top_k)
    want = _core.bias_counts(s, 0, indptr, indices, off, top_k)
    same = got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)
    return "ok" if same else "mismatch"


def check_strings(a: dict[str, Any]) -> str:
    return _valid_or_refused(_check_strings, a)


def check_dense_pool(a: dict[str, Any]) -> str:
    return _valid_or_refused(_check_dense_pool, a)


def _check_strings(a: dict[str, Any]) -> str:
    import pyarrow as pa

    from hybridrs import _core

    values, layout, order = a["values"], a["layout"], a["order"]
    if layout in ("U", "S") and any(v.endswith("\x00") for v in values):
        layout = "list"  # numpy drops trailing NULs itself: not the strings given
    if layout in ("list", "tuple", "objects", "U", "S"):
        got = _core.string_codes("ids", _spec(values, layout), order)
    else:
        typ = pa.large_string() if layout == "large_arrow" else pa.string()
        arr = pa.array(values, type=typ)
        width = np.int64 if layout == "large_arrow" else np.int32
        offsets = np.frombuffer(arr.buffers()[1], dtype=width)[: len(values) + 1].copy()
        data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
        bad = a.get("corrupt")
        if bad == "order" and len(offsets) > 2:
            offsets[1], offsets[2] = offsets[2] + 1, offsets[1]
        elif bad in ("beyond", "order"):  # (one string: nothing to put out of order)
            offsets[-1] = len(data) + 5
        elif bad == "negative":
            offsets[0] = -1
        elif bad == "dtype":
            offsets = offsets.astype(np.float64)
        got = _core.string_codes("ids", ("offsets", data, offsets), order)
    codes, first = _string_reference(values, order)
    return "ok" if got[0].tolist() == codes and got[1].tolist() == first else "mismatch"


def _spec(values: list[str], layout: str) -> tuple[Any, ...]:
    """``values`` in one of the layouts Rust reads."""
    import pyarrow as pa

    if layout == "list":
        return ("list", values)
    if layout == "tuple":
        return ("list", tuple(values))
    if layout == "objects":
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return ("objects", arr)
    if layout in ("U", "S"):
        unit = 1 if layout == "S" else 4
        arr = np.array([v.encode() for v in values] if unit == 1 else values, dtype=layout)
        return ("fixed", arr.view(np.uint8).reshape(-1), arr.dtype.itemsize, unit)
    arr = pa.array(values, type=pa.large_string() if layout == "large_arrow" else pa.string())
    width = np.int64 if layout == "large_arrow" else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=width)[: len(values) + 1]
    return ("offsets", np.frombuffer(arr.buffers()[2], dtype=np.uint8), offsets)


def check_string_pool(a: dict[str, Any]) -> str:
    return _valid_or_refused(_check_string_pool, a)


def _check_string_pool(a: dict[str, Any]) -> str:
    """The pool of string ids equals the pool of their codes (the partition pass for short
    ids, the codes inside the same call for the rest), and it refuses, with the same kind of
    error, what the codes refuse (duplicates, empty strings, ...). Malformed specs (an unknown
    layout, a list item that is no string, a spec too short) are refused."""
    from hybridrs import _core

    ids, langs, layout = a["ids"], a["langs"], a["layout"]
    spec = _spec(ids, layout)
    if a["bad"] == "kind":
        spec = ("nope", *spec[1:])
    elif a["bad"] == "item":
        spec = ("list", [*ids[:-1], 7])
    elif a["bad"] == "short":
        spec = spec[:1]
    if a["bad"] != "none":  # must raise a documented error (counted as such)
        _core.PairPool.from_strings(spec, _spec(langs, layout))
        return "mismatch"
    try:
        got = _core.PairPool.from_strings(spec, _spec(langs, layout))
    except DOCUMENTED as e:
        got = e
    try:
        gc, gf = _core.string_codes("group_ids", _spec(ids, layout), "sorted")
        lc, lf = _core.string_codes("langs", _spec(langs, layout), "sorted")
        want = _core.PairPool.from_dense(gc, len(gf), lc, len(lf))
    except DOCUMENTED as e:  # the same refusal, the same kind of error
        return "ok" if type(got) is type(e) else "mismatch"
    if isinstance(got, Exception):
        return "mismatch"
    pool, first = got
    same = pool.n_groups == want.n_groups and first.tolist() == lf.tolist()
    same = same and all(
        all(np.array_equal(x, y) for x, y in zip(pool.group(k), want.group(k), strict=True))
        for k in range(pool.n_groups)
    )
    return "ok" if same else "mismatch"


def _check_dense_pool(a: dict[str, Any]) -> str:
    from hybridrs import _core

    pool = _core.PairPool.from_dense(a["g"], a["ng"], a["l"], a["nl"])
    want = _core.PairPool.from_codes(a["g"].astype(np.int64), a["l"].astype(np.int64), a["nl"])
    if pool.n_groups != a["ng"] or pool.n_rows != want.n_rows:
        return "mismatch"
    same = all(
        all(np.array_equal(x, y) for x, y in zip(pool.group(k), want.group(k), strict=False))
        for k in range(pool.n_groups)
    )
    s, w = pool.stats(), want.stats()
    same = same and s.keys() == w.keys() and all(np.array_equal(s[k], w[k]) for k in s)
    return "ok" if same else "mismatch"


CHECKS = {
    "fused_shard": check_fused_shard,
    "bias_from_counts": check_bias_from_counts,
    "strings": check_strings,
    "dense_pool": check_dense_pool,
    "string_pool": check_string_pool,
    "query_metrics": check_query_metrics,
    "aggregate": check_aggregate,
    "pool": check_pool,
    "sampler": check_sampler,
    "embeddings": check_embeddings,
    "wrappers": check_wrappers,
}


def classify(fn: Any, case: Any) -> tuple[str, str]:
    """(outcome, detail) of one case."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(case), ""
    except DOCUMENTED:
        return "error", ""
    except BaseException as e:  # PanicException derives from BaseException
        if type(e).__name__ == "PanicException":
            return "panic", str(e)[:300]
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return "unexpected", f"{type(e).__name__}: {str(e)[:300]}"


# -- worker and driver ----------------------------------------------------------------------------
def worker(targets: list[str], examples: int, seed: int, log_path: str) -> None:
    """Runs ``examples`` cases of each target in this process, one log line per case start and
    end (the driver reads it to find the case an abort interrupted)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    strategies = _strategies()

    def runner(name: str, log: Any) -> Any:
        @hseed(seed)
        @settings(
            max_examples=examples,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategies[name])
        def run(case: Any) -> None:
            log.write(f"start {name}\n")
            outcome, detail = classify(CHECKS[name], case)
            log.write(f"end {name} {outcome} {json.dumps(detail)}\n")

        return run

    with open(log_path, "a", buffering=1) as log:
        for name in targets:
            runner(name, log)()


def _read_log(path: Path) -> tuple[Counter[tuple[str, str]], str | None, list[str]]:
    counts: Counter[tuple[str, str]] = Counter()
    open_case = None
    details: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split(" ", 3)
        if parts[0] == "start":
            open_case = parts[1]
        elif parts[0] == "end" and len(parts) >= 3:
            counts[(parts[1], parts[2])] += 1
            open_case = None
            if parts[2] in FAILURES and len(parts) == 4:
                details.append(f"{parts[1]} {parts[2]}: {json.loads(parts[3])}")
    return counts, open_case, details


def _left(per_target: int, n_targets: int, done: int) -> int:
    """Cases per target for a replacement worker: what is left of ``per_target * n_targets``
    (half as many when the last worker did none, so a broken start cannot loop)."""
    left = per_target * n_targets - done
    per = -(-left // n_targets) if done else per_target // 2
    return per if left > 0 and per > 1 else 0


def drive(examples: int, seed: int, jobs: int, hang_seconds: float) -> dict[str, Any]:
    """Runs ``examples`` cases in all, spread over the targets and ``jobs`` worker processes;
    a worker that dies (abort) or stalls (hang) is counted and replaced."""
    targets = list(CHECKS)
    per_worker = max(1, -(-examples // (len(targets) * jobs)))  # at least `examples` in all
    total: Counter[tuple[str, str]] = Counter()
    details: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="hybridrs-fuzz-"))
    pending = [(j, seed + 1000 * j, per_worker) for j in range(jobs)]
    running: dict[int, tuple[subprocess.Popen[bytes], Path, float, int, int]] = {}
    attempt = 0
    while pending or running:
        while pending and len(running) < jobs:
            j, s, n = pending.pop()
            attempt += 1
            log = tmp / f"w{j}-{attempt}.log"
            log.touch()
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                "--examples",
                str(n),
                "--seed",
                str(s),
                "--log",
                str(log),
            ]
            env = {**os.environ, "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            running[attempt] = (proc, log, time.monotonic(), n, j)
        time.sleep(0.2)
        for key, (proc, log, last, n, j) in list(running.items()):
            size = log.stat().st_size
            if proc.poll() is None:
                if size != getattr(proc, "_last_size", -1):
                    proc._last_size = size  # type: ignore[attr-defined]
                    running[key] = (proc, log, time.monotonic(), n, j)
                elif time.monotonic() - last > hang_seconds:
                    proc.kill()
                    proc.wait()
                    counts, open_case, det = _read_log(log)
                    total.update(counts)
                    details += det
                    total[(open_case or "?", "hang")] += 1
                    del running[key]
                    pend = _left(n, len(targets), sum(counts.values()))
                    if pend:
                        pending.append((j, seed + 7919 * (attempt + 1), pend))
                continue
            counts, open_case, det = _read_log(log)
            total.update(counts)
            details += det
            del running[key]
            if proc.returncode != 0:
                err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                total[(open_case or "?", "abort")] += 1
                details.append(f"{open_case} abort (exit {proc.returncode}): {err[-500:]}")
                pend = _left(n, len(targets), sum(counts.values()))
                if pend:  # go on with what is left, other inputs
                    pending.append((j, seed + 7919 * (attempt + 1), pend))
    by_target: dict[str, dict[str, int]] = {}
    for (t, o), c in sorted(total.items()):
        by_target.setdefault(t, {})[o] = c
    outcomes = Counter()
    for (_, o), c in total.items():
        outcomes[o] += c
    return {
        "cases": sum(total.values()),
        "outcomes": dict(outcomes),
        "by_target": by_target,
        "failures": sum(outcomes[f] for f in FAILURES),
        "details": details[:20],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=100_000, help="cases in all (default 100000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--hang-seconds", type=float, default=60.0)
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--log", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(list(CHECKS), args.examples, args.seed, args.log)
        return 0
    t0 = time.perf_counter()
    res = drive(args.examples, args.seed, args.jobs, args.hang_seconds)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{res['cases']} cases in {res['seconds']} s; outcomes: {res['outcomes']}")
        for t, c in res["by_target"].items():
            print(f"  {t:14s} {c}")
        for d in res["details"]:
            print("  FAILURE", d)
        f = {o: res["outcomes"].get(o, 0) for o in FAILURES}
        print("failures: " + ", ".join(f"{v} {k}" for k, v in f.items()))
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
