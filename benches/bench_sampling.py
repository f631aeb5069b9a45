"""Sampler benchmark, side by side in one run: building a pool of 10 million rows (1 million
groups x 10 languages, about 10% of translations missing) and planning one epoch at batch
size 128, the Rust core against the plain-Python reference; then the rate at which the sampler
feeds pairs to a training loop, and the pool's bytes per row.

With string ids and string language codes (what JSON data gives: ``"q123"``, ``"de"``), the
pool is built from a Python list, a numpy unicode array, a numpy object array and a pyarrow
string array, against a lean Python dict loop (``by.setdefault(g, {})[lang] = i``), taking
turns, best of each.

Run: ``python benches/bench_sampling.py [--groups N] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np

from _machine import cpu_info
from hybridrs import HybridBatchSampler, PairPool
from hybridrs.reference import ReferencePairPool, reference_plan_epoch


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def best(fn, repeats: int):
    out, times = None, []
    for _ in range(repeats):
        out, t = timed(fn)
        times.append(t)
    return out, min(times)


def make_rows(groups: int, languages: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Integer group ids and language numbers: ``groups`` x ``languages`` rows, about 10% of
    them missing, in random order."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(rng.permutation(groups).astype(np.int64) * 7 + 3, languages)
    langs = np.tile(np.arange(languages, dtype=np.int64), groups)
    keep = rng.random(ids.size) > 0.1
    ids, langs = ids[keep], langs[keep]
    order = rng.permutation(ids.size)  # rows arrive in no particular order
    return ids[order], langs[order]


def string_inputs(ids: np.ndarray, langs: np.ndarray) -> dict[str, tuple]:
    """The rows as string ids (``"q123"``) and string language codes, in each input kind:
    Python lists, numpy unicode and object arrays and pyarrow string arrays."""
    import pyarrow as pa

    names = np.array(["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh", "ja"])
    ids_s = [f"q{x}" for x in ids.tolist()]
    langs_s = names[langs % len(names)].tolist()
    return {
        "lists": (ids_s, langs_s),
        "numpy": (np.array(ids_s), np.array(langs_s)),
        "objects": (np.array(ids_s, dtype=object), np.array(langs_s, dtype=object)),
        "pyarrow": (pa.array(ids_s), pa.array(langs_s)),
    }


def string_ids(ids: np.ndarray, langs: np.ndarray, repeats: int) -> None:
    """Pool construction from string ids and string languages, Rust against a dict loop.

    The contenders take turns (the dict loop, then Rust from each input kind in a rotating
    order, ``repeats`` rounds) and each keeps its best round, so that a slow spell of a shared
    machine falls on all of them alike rather than on whichever ran in it."""
    inputs = string_inputs(ids, langs)
    ids_s, langs_s = inputs["lists"]

    def dict_loop():
        by: dict = {}
        for i, (g, lang) in enumerate(zip(ids_s, langs_s, strict=False)):
            by.setdefault(g, {})[lang] = i
        return by

    kinds = (
        ("Python lists of str", inputs["lists"]),
        ("numpy unicode arrays", inputs["numpy"]),
        ("numpy object arrays of str", inputs["objects"]),
        ("pyarrow string arrays", inputs["pyarrow"]),
    )
    t_py, t_rust, pools = float("inf"), [float("inf")] * len(kinds), [None] * len(kinds)
    rounds = []
    for r in range(repeats):
        _, t = timed(dict_loop)
        t_py = min(t_py, t)
        row = [t] + [0.0] * len(kinds)
        # the input kinds in a rotating order: none is always the first call after the dict
        # loop (on this project's VMs, the first parallel call after a long single-threaded
        # stretch is often slow, whatever it is)
        for j in range(len(kinds)):
            k = (j + r) % len(kinds)
            g, lg = kinds[k][1]
            pools[k], t = timed(lambda g=g, lg=lg: PairPool.from_arrays(g, lg))
            t_rust[k] = min(t_rust[k], t)
            row[1 + k] = t
        rounds.append(row)
    print()
    print(
        f"string ids ({len(ids_s):,} rows, {repeats} rounds taking turns, best of each): "
        f"Python dict loop {t_py:.2f} s"
    )
    print(
        "rounds (dict loop, lists, numpy, objects, pyarrow s): "
        + "; ".join(", ".join(f"{t:.3f}" for t in row) for row in rounds)
    )
    print(f"{'Rust from':36s} {'s':>9s} {'speed-up':>9s}  {'bytes/row':>9s}")
    for (what, _), t, pool in zip(kinds, t_rust, pools, strict=True):
        print(
            f"{what:36s} {t:9.3f} {t_py / t:8.1f}x  {pool.nbytes / pool.n_rows:9.1f}"
            "  (targets >= 50x, <= 16 bytes/row)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=1_000_000)
    ap.add_argument("--languages", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only_strings", action="store_true", help="the string-id part only")
    args = ap.parse_args()
    n_l = args.languages
    ids, langs = make_rows(args.groups, n_l)
    print(f"machine: {cpu_info()}, python {platform.python_version()}")
    print(f"pool: {ids.size:,} rows, {args.groups:,} groups x {n_l} languages, batch {args.batch}")
    if args.only_strings:
        string_ids(ids, langs, args.repeats)
        return

    pool, t_pool = timed(lambda: PairPool.from_arrays(ids, langs))
    sampler = HybridBatchSampler(pool, args.batch, alpha=0.5, seed=0)
    plan, t_plan = timed(lambda: sampler.plan(0))
    n_pairs = 0

    def feed():
        nonlocal n_pairs
        for batch in sampler:
            n_pairs += len(batch)

    _, t_feed = timed(feed)
    ids_l, langs_l = ids.tolist(), langs.tolist()
    ref, t_ref_pool = timed(lambda: ReferencePairPool(ids_l, langs_l))
    _, t_ref_plan = timed(lambda: reference_plan_epoch(ref, args.batch, 0.5, 0, 0))
    st = sampler.epoch_stats
    print(
        f"epoch: {st['steps']:,} steps ({st['mono_steps']:,} mono / {st['cross_steps']:,} "
        f"cross), {st['groups_used']:,} groups used, {st['groups_unused']:,} unused, "
        f"{st['reused_slots']:,} reused slots"
    )
    print()
    print(f"{'what':36s} {'Rust s':>9s} {'Python s':>9s} {'speed-up':>9s}")
    print(
        f"{'build the pool':36s} {t_pool:9.3f} {t_ref_pool:9.2f} {t_ref_pool / t_pool:8.0f}x"
        "  (target >= 50x)"
    )
    print(
        f"{'plan one epoch':36s} {t_plan:9.3f} {t_ref_plan:9.2f} {t_ref_plan / t_plan:8.0f}x"
        "  (target >= 50x)"
    )
    print(
        f"feeding a training loop: {n_pairs:,} pairs in {t_feed:.2f} s = "
        f"{n_pairs / t_feed / 1e6:.2f} M pairs/s as lists of (q, p) tuples (target > 1 M/s)"
    )
    print(
        f"pool memory: {pool.nbytes / pool.n_rows:.1f} bytes per row (target <= 16); peak "
        f"RSS of the whole run {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f}"
        " GiB"
    )
    del plan
    string_ids(ids, langs, args.repeats)


if __name__ == "__main__":
    main()
