"""String ids hashed to dense codes in Rust (issue 13): every accepted input (Python lists,
numpy unicode / bytes / object arrays, pyarrow string, large_string, sliced and chunked arrays)
builds the same pool as the integer codes ``numpy.unique`` gives, and bad rows are named."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrs import PairPool, _core


def _reference(ids, langs) -> PairPool:
    _, g = np.unique(np.asarray(ids, dtype=str), return_inverse=True)
    return PairPool.from_arrays(g.astype(np.int64), np.unique(langs, return_inverse=True)[1])


def _same(a: PairPool, b: PairPool) -> None:
    assert a.n_groups == b.n_groups and a.n_rows == b.n_rows
    for k in range(a.n_groups):
        ga, gb = a.group(k), b.group(k)
        assert list(ga.values()) == list(gb.values())


def _inputs(ids: list[str], langs: list[str]):
    pa = pytest.importorskip("pyarrow")
    yield ids, langs
    yield np.array(ids), np.array(langs)
    yield np.array(ids, dtype=object), np.array(langs, dtype=object)
    yield np.array([s.encode() for s in ids]), np.array([s.encode() for s in langs])
    yield pa.array(ids), pa.array(langs)
    yield pa.array(ids, type=pa.large_string()), pa.array(langs, type=pa.large_string())
    yield pa.chunked_array([ids[:3], ids[3:]]), pa.array(langs)
    yield pa.array(["pad", *ids])[1:], pa.array(["xx", *langs])[1:]  # a sliced array


def test_every_input_kind_builds_the_integer_pool():
    rng = np.random.default_rng(0)
    ids, langs = [], []
    for g in rng.permutation(300):
        for lang in ("de", "en", "zh", "ä"):
            if rng.random() < 0.8:
                ids.append(f"q{g}é" if g % 7 else f"日本{g}")
                langs.append(lang)
    want = _reference(ids, langs)
    for g, lg in _inputs(ids, langs):
        pool = PairPool.from_arrays(g, lg)
        assert pool.languages == ("de", "en", "zh", "ä")
        _same(pool, want)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=6), st.sampled_from("ab")), min_size=1,
                max_size=60, unique=True))  # fmt: skip
def test_codes_equal_numpy_unique(rows):
    ids = [r[0] for r in rows if "\x00" not in r[0]]
    if not ids:
        return
    for order in ("sorted", "first_seen"):
        codes, first = _core.string_codes("group_ids", ("list", ids), order)
        uniq = [ids[r] for r in first]
        assert [uniq[c] for c in codes] == ids
        assert len(set(uniq)) == len(uniq)
        if order == "sorted":
            assert uniq == sorted(set(ids))
        else:
            assert list(first) == sorted(first)
        arr = np.array(ids)
        c2, f2 = _core.string_codes(
            "group_ids", ("fixed", arr.view(np.uint8).reshape(-1), arr.dtype.itemsize, 4), order
        )
        assert c2.tolist() == codes.tolist() and f2.tolist() == first.tolist()


def test_short_ids_take_the_fused_path_and_build_the_same_pool():
    """Ids of at most 10 bytes and short language codes: one partition pass in Rust
    (``PairPool.from_strings``) gives the pool the codes give; longer ids and non-ASCII cells of
    a ``<U`` array are numbered first inside the same call (the same pool), a duplicated
    (group, language) is the codes' error."""
    rng = np.random.default_rng(1)
    ids, langs = [], []
    for g in rng.permutation(5000):
        for lang in ("de", "en", "zh"):
            if rng.random() < 0.8:
                ids.append(f"q{g}" if g % 3 else f"é{g}")
                langs.append(lang)
    want = _reference(ids, langs)
    for g, lg in _inputs(ids, langs):
        _same(PairPool.from_arrays(g, lg), want)
    spec = ("list", ids), ("list", langs)
    got = _core.PairPool.from_strings(*spec)
    assert got is not None and list(got[1]) == [langs.index(x) for x in ("de", "en", "zh")]

    def wrapped(got, lg):
        return PairPool(got[0], [lg[int(r)] for r in got[1]], len(lg))

    long_ids, long_langs = [*ids, "a" * 11], [*langs, "de"]
    got = _core.PairPool.from_strings(("list", long_ids), ("list", long_langs))
    _same(wrapped(got, long_langs), _reference(long_ids, long_langs))
    twice = ("list", [*ids, ids[0]]), ("list", [*langs, langs[0]])
    with pytest.raises(ValueError, match=f"rows 0 and {len(ids)} have the same group id"):
        _core.PairPool.from_strings(*twice)
    u = np.array(ids)
    fixed = ("fixed", u.view(np.uint8).reshape(-1), u.dtype.itemsize, 4)
    _same(wrapped(_core.PairPool.from_strings(fixed, ("list", langs)), langs), want)  # "é"
    _same(PairPool.from_arrays(u, langs), want)


def test_bad_rows_are_named():
    pa = pytest.importorskip("pyarrow")
    with pytest.raises(TypeError, match="row 1"):
        PairPool.from_arrays(["a", "", "b"], ["en", "en", "en"])
    with pytest.raises(TypeError, match="row 2 is 3; expected"):
        PairPool.from_arrays(["a", "b", 3], ["en", "en", "en"])
    with pytest.raises(TypeError, match="row 1 is 3; expected"):
        PairPool.from_arrays(("a", 3), ("en", "de"))  # a tuple: the checked way past the reader
    with pytest.raises(TypeError, match="row 1 is null"):
        PairPool.from_arrays(pa.array(["a", None]), ["en", "en"])
    with pytest.raises(TypeError, match="row 1"):
        PairPool.from_arrays(np.array(["a", None], dtype=object), ["en", "en"])
    with pytest.raises(ValueError, match="both group 'a' in language 'en'"):
        PairPool.from_arrays(pa.array(["b", "a", "a"]), ["en", "en", "en"])
    with pytest.raises(TypeError, match="pyarrow string"):
        PairPool.from_arrays(pa.array([1, 2]), ["en", "en"])
    with pytest.raises(ValueError, match="order"):
        _core.string_codes("ids", ("list", ["a"]), "random")
    for spec in (("nope", ["a"]), ("list",), ("fixed", np.zeros(4, np.uint8), 4)):
        with pytest.raises(ValueError, match="ids: a string layout is"):
            _core.string_codes("ids", spec, "sorted")
        with pytest.raises(ValueError, match="group_ids: a string layout is"):
            _core.PairPool.from_strings(spec, ("list", ["en"]))
    with pytest.raises(ValueError, match="group_ids: row 1 is not valid text"):
        PairPool.from_arrays(["a", "b\ud800"], ["en", "en"])  # a lone surrogate: no UTF-8

    # a subclass of str and non-ASCII text read like plain ids (the fast read takes exact `str`
    # only; the rest goes the checked way)

    class Tagged(str):
        pass

    pool = PairPool.from_arrays(["a", Tagged("b"), "é", Tagged("é")], ["en", "en", "de", "en"])
    assert pool.n_groups == 3 and pool.n_rows == 4


def _python_codes(strs: list[str], order: str) -> tuple[list[int], list[int]]:
    """Dense codes the plain-Python way: first rows by a dict, numbered in code-point order or
    in first-seen order."""
    first: dict[str, int] = {}
    for i, s in enumerate(strs):
        first.setdefault(s, i)
    uniq = sorted(first) if order == "sorted" else list(first)
    code = {s: k for k, s in enumerate(uniq)}
    return [code[s] for s in strs], [first[s] for s in uniq]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.text(st.characters(max_codepoint=127), min_size=1, max_size=24), min_size=1,
             max_size=400),
    st.sampled_from(["sorted", "first_seen"]),
)  # fmt: skip
def test_list_of_ascii_str_read_in_parallel_equals_python(strs, order):
    """Lists (and tuples, numpy object arrays) of plain ASCII ``str`` are read straight from the
    objects by all cores (cells of up to 16 bytes, else one buffer with offsets): the codes
    equal a dict's, NUL bytes included (a trailing NUL is not padding here), whatever the
    lengths."""
    want = _python_codes(strs, order)
    codes, first = _core.string_codes("ids", ("list", strs), order)
    assert (codes.tolist(), first.tolist()) == want
    arr = np.empty(len(strs), dtype=object)  # np.array would make a 2-d array of equal tuples
    arr[:] = strs
    codes, first = _core.string_codes("ids", ("objects", arr), order)
    assert (codes.tolist(), first.tolist()) == want
    codes, first = _core.string_codes("ids", ("list", tuple(strs)), order)
    assert (codes.tolist(), first.tolist()) == want


def test_list_reader_widens_or_falls_back_past_its_sample():
    """The cell width comes from a sample of 64 rows: a longer string, a trailing NUL or a
    non-ASCII string at a row the sample skips still gives exact codes (wider cells, offsets,
    or the checked path), and so does a pool built from such lists."""
    base = [f"q{i % 700}" for i in range(5000)]
    for odd in ("q123456789012", "x" * 17, "q1\x00", "q1\x00\x00", "qé", "日本"):
        strs = list(base)
        strs[1] = odd  # not sampled: rows 0, 78, 156, ...
        strs[4000] = odd
        objs = np.array(strs, dtype=object)
        for order in ("sorted", "first_seen"):
            want = _python_codes(strs, order)
            for spec in (("list", strs), ("objects", objs), ("list", tuple(strs))):
                codes, first = _core.string_codes("ids", spec, order)
                assert (codes.tolist(), first.tolist()) == want, (repr(odd), spec[0])
    # an object array read in place when C-contiguous, else through its tolist()
    strided = np.array([f"q{i}" for i in range(200)], dtype=object)[::2]
    codes, first = _core.string_codes("ids", ("objects", strided), "first_seen")
    assert (codes.tolist(), first.tolist()) == _python_codes(list(strided), "first_seen")
    ids = [f"g{i // 3}" for i in range(3000)]
    langs = ["en", "de", "zh"] * 1000
    ids[1], ids[2] = "g0" + "x" * 20, "g0\x00"  # numpy would strip the NUL: codes by dict
    want = PairPool.from_arrays(np.array(_python_codes(ids, "sorted")[0]), langs)
    _same(PairPool.from_arrays(ids, langs), want)


def _pool_by_dict(ids: list[str], langs: list[str]) -> PairPool:
    """The pool from integer codes numbered by a dict in code-point order (no string path)."""
    return PairPool.from_arrays(
        np.array(_python_codes(ids, "sorted")[0], dtype=np.int64),
        np.array(_python_codes(langs, "sorted")[0], dtype=np.int64),
    )


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.text(st.characters(max_codepoint=127), min_size=1, max_size=12), min_size=1,
             max_size=300, unique=True),
    st.lists(st.text(st.characters(max_codepoint=127), min_size=1, max_size=4), min_size=1,
             max_size=5, unique=True),
    st.randoms(use_true_random=False),
)  # fmt: skip
def test_pool_from_str_objects_read_in_place_equals_a_dict(groups, codes, rnd):
    """Lists, tuples and numpy object arrays of short ASCII ``str`` build the pool from the
    objects in place (each row's bytes packed straight from the ``str``, no copy): the same
    pool, groups and languages in code-point order, as integer codes numbered by a dict. NUL
    bytes anywhere (a trailing one is not padding), ids up to 12 bytes (past 10 the path
    declines and the strings are read the general way)."""
    rows = [(g, c) for g in groups for c in codes if rnd.random() < 0.7] or [(groups[0], codes[0])]
    rnd.shuffle(rows)
    ids, langs = [r[0] for r in rows], [r[1] for r in rows]
    want = _pool_by_dict(ids, langs)
    for g, lg in ((ids, langs), (tuple(ids), tuple(langs))):
        pool = PairPool.from_arrays(g, lg)
        assert pool.languages == tuple(sorted(set(langs)))
        _same(pool, want)
    objs = np.empty(len(ids), dtype=object), np.empty(len(ids), dtype=object)
    objs[0][:], objs[1][:] = ids, langs
    _same(PairPool.from_arrays(*objs), want)
    _same(PairPool.from_arrays(objs[0], langs), want)  # one of each
