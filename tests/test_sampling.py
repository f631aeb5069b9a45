"""PairPool and HybridBatchSampler: invariants over random pools (hypothesis), statistics,
determinism, resuming, DDP sharding, errors, and the real MLQA-R training pool."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hybridrs import HybridBatchSampler, PairPool, load_parallel_qa
from hybridrs.reference import ReferencePairPool, reference_plan_epoch

from .conftest import MLQA

LANGS = ["ar", "de", "en", "es", "hi"]


@st.composite
def pools(draw, min_groups=1, max_groups=60):
    n_groups = draw(st.integers(min_groups, max_groups))
    ids, langs = [], []
    for g in range(n_groups):
        present = draw(st.lists(st.sampled_from(LANGS), min_size=1, max_size=5, unique=True))
        for lang in present:
            ids.append(f"q{g * 7919 % 1000003}")
            langs.append(lang)
    order = draw(st.permutations(range(len(ids))))
    return [ids[i] for i in order], [langs[i] for i in order]


def row_info(ids, langs):
    return [(g, lang) for g, lang in zip(ids, langs, strict=False)]


def check_plan(sampler, ids, langs):
    info = row_info(ids, langs)
    groups: dict[str, set[str]] = {}
    for g, lang in info:
        groups.setdefault(g, set()).add(lang)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for step, batch in enumerate(batches):
        assert len(batch) == sampler.batch_size
        mode = sampler.step_mode(step)
        seen = set()
        for q, p in batch:
            (gq, lq), (gp, lp) = info[q], info[p]
            assert gq == gp
            assert gq not in seen, "a group twice in one batch"
            seen.add(gq)
            if mode == "cross":
                assert lq != lp and {lq, lp} <= groups[gq]
            else:
                assert lq == lp == mode and q == p
    return batches


@settings(max_examples=120, deadline=None)
@given(
    pools(),
    st.integers(1, 6),
    st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    st.booleans(),
    st.integers(0, 2**32),
)
def test_invariants(pool_arrays, batch, alpha, drop_last, seed):
    ids, langs = pool_arrays
    pool = PairPool.from_arrays(ids, langs)
    try:
        s = HybridBatchSampler(pool, batch, alpha=alpha, seed=seed, drop_last=drop_last)
    except ValueError as e:
        msg = str(e)
        assert "batch_size" in msg or "alpha" in msg
        assume(False)
    stats = s.epoch_stats
    multi = sum(1 for g in range(pool.n_groups) if len(pool.group(g)) >= 2)
    eligible = multi if alpha == 0 else pool.n_groups
    assert stats["eligible_groups"] == eligible
    want = eligible // batch if drop_last else math.ceil(eligible / batch)
    assert len(s) == want == stats["steps"]
    assert stats["mono_steps"] + stats["cross_steps"] == len(s)
    assert stats["groups_used"] + stats["groups_unused"] == eligible
    # no group is left unused while fresh groups could have been placed
    if (alpha in (0.0, 1.0) and len(s.pool.languages) == 1) or alpha == 0.0:
        assert stats["reused_slots"] == max(0, len(s) * batch - eligible)
    batches = check_plan(s, ids, langs)
    # deterministic in (seed, epoch)
    again = HybridBatchSampler(pool, batch, alpha=alpha, seed=seed, drop_last=drop_last)
    assert list(again) == batches


@settings(max_examples=60, deadline=None)
@given(pools(min_groups=8), st.integers(1, 3), st.integers(2, 3), st.integers(0, 1000))
def test_ranks_partition_the_global_batch(pool_arrays, batch, world, seed):
    ids, langs = pool_arrays
    pool = PairPool.from_arrays(ids, langs)
    try:
        single = HybridBatchSampler(pool, batch * world, seed=seed)
    except ValueError:
        assume(False)
    ranks = [
        HybridBatchSampler(pool, batch, seed=seed, rank=r, world_size=world) for r in range(world)
    ]
    per_rank = [list(s) for s in ranks]
    assert {len(b) for b in per_rank} == {len(single)}
    for step, whole in enumerate(single):
        shards = [per_rank[r][step] for r in range(world)]
        assert [pair for sh in shards for pair in sh] == whole
        assert {ranks[r].step_mode(step) for r in range(world)} == {single.step_mode(step)}
        groups = [[ids[q] for q, _ in sh] for sh in shards]
        assert len({g for grp in groups for g in grp}) == batch * world  # disjoint


@settings(max_examples=60, deadline=None)
@given(pools(min_groups=10), st.integers(0, 1000))
def test_pool_counts_equal_reference(pool_arrays, seed):
    ids, langs = pool_arrays
    ref = ReferencePairPool(ids, langs).stats()
    got = PairPool.from_arrays(ids, langs).stats()
    for k in (
        "groups",
        "rows",
        "mono_pairs",
        "cross_pairs",
        "rows_per_language",
        "cross_pairs_per_language_pair",
    ):
        assert got[k] == ref[k], k
    # the reference sampler keeps the same invariants (it is the benchmark baseline)
    try:
        plan = reference_plan_epoch(ReferencePairPool(ids, langs), 2, 0.5, seed, 0)
    except ValueError:
        return
    for mode, pairs in plan:
        assert len({ids[q] for q, _ in pairs}) == len(pairs) == 2
        for q, p in pairs:
            assert ids[q] == ids[p]
            assert (langs[q] != langs[p]) if mode == "cross" else (langs[q] == langs[p] == mode)


def big_pool(n_groups=20000, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_groups), 3)
    langs = np.tile(np.array(["de", "en", "zh"]), n_groups)
    keep = rng.random(ids.size) > 0.1
    keep[1::3] = True  # en always present
    return ids[keep], langs[keep]


def test_mono_share_and_language_distribution():
    ids, langs = big_pool()
    pool = PairPool.from_arrays(ids, langs)
    for alpha in (0.3, 0.5, 0.8):
        s = HybridBatchSampler(pool, 2, alpha=alpha, seed=3)
        modes = [s.step_mode(i) for i in range(len(s))]
        n = len(modes)
        assert n == 10000
        share = sum(m != "cross" for m in modes) / n
        assert abs(share - alpha) <= 4 * math.sqrt(alpha * (1 - alpha) / n)
        counts = [modes.count(lang) for lang in ("de", "en", "zh")]
        n_mono = sum(counts)
        for c in counts:  # uniform over languages, 4 sigma
            assert abs(c / n_mono - 1 / 3) <= 4 * math.sqrt(2 / 9 / n_mono)
    # user weights
    s = HybridBatchSampler(
        pool, 2, strategy="mono", seed=3, language_weights={"en": 3.0, "de": 1.0}
    )
    modes = [s.step_mode(i) for i in range(len(s))]
    assert modes.count("zh") == 0
    assert abs(modes.count("en") / len(modes) - 0.75) < 4 * math.sqrt(0.75 * 0.25 / len(modes))


def test_cross_pairs_uniform_over_ordered_pairs():
    ids = np.repeat(np.arange(6000), 3)
    langs = np.tile(np.array(["de", "en", "zh"]), 6000)
    s = HybridBatchSampler(PairPool.from_arrays(ids, langs), 4, strategy="cross", seed=1)
    counts: dict[tuple[str, str], int] = {}
    for batch in s:
        for q, p in batch:
            counts[(langs[q], langs[p])] = counts.get((langs[q], langs[p]), 0) + 1
    assert len(counts) == 6
    n = sum(counts.values())
    for c in counts.values():
        assert abs(c / n - 1 / 6) <= 4 * math.sqrt((1 / 6) * (5 / 6) / n)


def test_epochs_resume_and_state():
    ids, langs = big_pool(3000)
    pool = PairPool.from_arrays(ids, langs)
    s = HybridBatchSampler(pool, 16, seed=5)
    e0 = list(s)
    assert list(s) == e0
    s.set_epoch(1)
    e1 = list(s)
    assert e1 != e0 and len(e1) == len(e0)
    # resume: consume 7 batches (the loader prefetched more), save, restore elsewhere
    s.set_epoch(1)
    it = iter(s)
    consumed = [next(it) for _ in range(9)][:7]
    state = s.state_dict(steps_consumed=7)
    assert state == {"seed": 5, "epoch": 1, "steps_consumed": 7}
    t = HybridBatchSampler(pool, 16, seed=5)
    t.load_state_dict(state)
    assert consumed + list(t) == e1
    assert list(t) == e1  # a fresh iteration after the resumed one starts its epoch again
    with pytest.raises(ValueError, match="seed"):
        HybridBatchSampler(pool, 16, seed=6).load_state_dict(state)
    with pytest.raises(ValueError, match="steps_consumed"):
        t.load_state_dict({"seed": 5, "epoch": 0, "steps_consumed": 10**6})


def test_errors():
    ids, langs = big_pool(100)
    pool = PairPool.from_arrays(ids, langs)
    cases = [
        ({"alpha": 1.5}, "alpha: must lie in"),
        ({"alpha": -0.1}, "alpha"),
        ({"batch_size": 0}, "batch_size: must lie in 1.."),
        ({"rank": 2, "world_size": 2}, "rank: must lie"),
        ({"languages": ["xx"]}, r"languages: unknown \['xx'\]"),
        ({"strategy": "mono", "alpha": 0.5}, "contradicts"),
        ({"strategy": "both"}, "strategy"),
        ({"batch_size": 95, "drop_last": False, "strategy": "mono"}, "larger than the"),
        ({"batch_size": 500}, "batch_size"),
        ({"language_weights": {"fr": 1.0}}, "language_weights"),
    ]
    for kwargs, match in cases:
        kw = {"batch_size": 4, **kwargs}
        with pytest.raises(ValueError, match=match):
            HybridBatchSampler(pool, **kw)
    # with drop_last, the thin language is skipped and reported instead
    s = HybridBatchSampler(pool, 95, strategy="mono")
    assert s.skipped_languages == ["de", "zh"]
    with pytest.raises(TypeError, match="PairPool"):
        HybridBatchSampler([1, 2], 4)
    with pytest.raises(ValueError, match="empty"):
        PairPool.from_arrays([], [])
    with pytest.raises(ValueError, match="rows 0 and 1"):
        PairPool.from_arrays(["a", "a"], ["en", "en"])
    with pytest.raises(ValueError, match="langs: has 1 entries"):
        PairPool.from_arrays(["a", "b"], ["en"])
    with pytest.raises(TypeError, match="strings or integers"):
        PairPool.from_arrays([1.5, 2.5], ["en", "de"])
    with pytest.raises(ValueError, match="step: must lie"):
        s.step_mode(len(s))
    with pytest.raises(ValueError, match="g: group -1 out of range"):
        pool.group(-1)
    with pytest.raises(ValueError, match="no group is left"):
        PairPool.from_arrays(["a"], ["en"]).filter(min_languages=2)


def test_pool_rows_refer_to_input_arrays():
    ids = np.array([10, 11, 10, 12, 11, 10])
    langs = np.array([0, 0, 1, 1, 2, 2])
    pool = PairPool.from_arrays(ids, langs)
    assert pool.languages == ("0", "1", "2")
    assert pool.group(0) == {"0": 0, "1": 2, "2": 5}
    f = pool.filter(languages=["1", "2"], min_languages=2)
    assert f.n_groups == 1 and f.group(0) == {"1": 2, "2": 5}
    st_ = pool.stats()
    assert st_["cross_pairs"] == 6 + 2 and st_["groups_by_size"] == {1: 1, 2: 1, 3: 1}
    assert pool.nbytes <= 16 * pool.n_rows + 16


def test_real_mlqa_training_pool():
    qa = load_parallel_qa(MLQA)
    assert len(qa) == 4199 and qa.languages == ("ar", "de", "en", "es", "hi", "vi", "zh")
    pool = PairPool.from_parallel(qa)
    ref = ReferencePairPool(qa.ids, qa.langs).stats()
    st_ = pool.stats()
    assert st_["groups"] == ref["groups"] == len(set(qa.ids))
    assert st_["cross_pairs"] == ref["cross_pairs"]
    assert st_["cross_pairs_per_language_pair"] == ref["cross_pairs_per_language_pair"]
    s = HybridBatchSampler(pool, 32, seed=0)
    check_plan(s, qa.ids, qa.langs)
    assert s.epoch_stats["groups_used"] >= len(s) * 32 * 0.9
    # torch DataLoader drives it as a batch_sampler
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, Dataset

    class Pairs(Dataset):
        def __len__(self):
            return len(qa)

        def __getitem__(self, pair):
            q, p = pair
            return torch.tensor([q, p])

    loader = DataLoader(Pairs(), batch_sampler=s, num_workers=0)
    first = next(iter(loader))
    assert first.shape == (32, 2)
