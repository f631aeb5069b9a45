"""Parallel pair pools and the hybrid (monolingual / cross-lingual) batch sampler, in Rust.

A *group* is one question id; each row of a :class:`PairPool` is that question with its
passage in one language. :class:`HybridBatchSampler` draws each global step's mode: with
probability ``alpha`` monolingual (one language for the whole global batch, question and
passage in it: the paper's X-X-mono), otherwise cross-lingual (question language != passage
language, each group's ordered pair drawn uniformly among those it offers). A group never
appears twice in one global batch: its other-language versions are positives, not negatives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._checks import as_int
from .data import ParallelQA

__all__ = [
    "ALPHA_SCHEDULES",
    "STRATEGY_ALPHA",
    "HybridBatchSampler",
    "PairPool",
    "resolve_alpha",
    "temperature_weights",
]

#: How alpha may move over training (evaluated per global step by the Rust sampler).
ALPHA_SCHEDULES = ("constant", "linear", "triangle")

#: alpha (probability of a monolingual step) of each named strategy.
STRATEGY_ALPHA = {"mono": 1.0, "cross": 0.0, "hybrid": 0.5}


def resolve_alpha(strategy: str | None = None, alpha: float | None = None) -> float:
    """The probability of a monolingual step, from a strategy name and/or an explicit alpha:
    the one place where strategy -> alpha is worked out and alpha's range is checked.

    ``strategy`` ``"mono"`` is alpha 1, ``"cross"`` 0, ``"hybrid"`` 0.5 unless ``alpha`` says
    otherwise; an ``alpha`` that contradicts ``"mono"`` or ``"cross"`` is an error. Neither
    given: 0.5.

    Raises:
        ValueError: an unknown strategy, an alpha outside [0, 1], or a contradiction.
    """
    if strategy is not None and strategy not in STRATEGY_ALPHA:
        raise ValueError(f"strategy: must be one of {sorted(STRATEGY_ALPHA)}, got {strategy!r}")
    if alpha is not None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
            raise TypeError(f"alpha: expected a number, got {type(alpha).__name__}")
        if not 0.0 <= float(alpha) <= 1.0:  # NaN fails too
            raise ValueError(f"alpha: must lie in [0, 1], got {alpha}")
        if strategy in ("mono", "cross") and float(alpha) != STRATEGY_ALPHA[strategy]:
            raise ValueError(
                f"alpha: {alpha} contradicts strategy={strategy!r} (alpha "
                f"{STRATEGY_ALPHA[strategy]}); give one of them"
            )
        return float(alpha)
    return STRATEGY_ALPHA[strategy] if strategy is not None else 0.5


def _is_arrow(values: Any) -> bool:
    return type(values).__module__.startswith("pyarrow") and hasattr(values, "buffers")


def _is_str_seq(values: Any) -> bool:
    """A Python list or tuple starting with a ``str`` (read by Rust as it is)."""
    return isinstance(values, (list, tuple)) and bool(values) and isinstance(values[0], str)


def _arrow_spec(values: Any, field: str) -> tuple[Any, ...]:
    """The buffers of a pyarrow (large_)string array or chunked array, as Rust reads them."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise TypeError(f"{field}: expected a pyarrow string array, got {values.type}")
    if values.null_count:
        bad = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise TypeError(f"{field}: row {bad} is null; expected a non-empty string")
    _, off_buf, data_buf = values.buffers()[:3]
    n = len(values)
    span = slice(values.offset, values.offset + n + 1)
    offsets: npt.NDArray[np.int32] | npt.NDArray[np.int64] = (
        np.frombuffer(off_buf, dtype=np.int64)[span]
        if pa.types.is_large_string(values.type)
        else np.frombuffer(off_buf, dtype=np.int32)[span]
    )  # read by Rust as they are (no widening copy)
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    return ("offsets", data, offsets)


def _key_spec(values: Any, field: str) -> tuple[Any, ...] | None:
    """How Rust reads string inputs without a Python object per row: Python lists / tuples of
    ``str``, numpy unicode, bytes and object arrays, pyarrow string arrays. ``None`` for other
    inputs."""
    if _is_arrow(values):
        return _arrow_spec(values, field)
    if _is_str_seq(values):
        return ("list", values)
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.size:
        kind = values.dtype.kind
        if kind in "US":
            arr = np.ascontiguousarray(values)
            if arr.dtype.itemsize == 0:
                raise TypeError(f"{field}: row 0 is ''; expected a non-empty string")
            unit = 4 if kind == "U" else 1
            return ("fixed", arr.view(np.uint8).reshape(-1), arr.dtype.itemsize, unit)
        if kind == "O" and isinstance(values[0], str):
            return ("objects", np.ascontiguousarray(values))  # item pointers read in place
    return None


def _string_codes(values: Any, field: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Dense codes (sorted order, as ``numpy.unique`` numbers them) and each code's first row,
    hashed in Rust, for the string inputs of :func:`_key_spec`; ``None`` for other inputs."""
    spec = _key_spec(values, field)
    return None if spec is None else _core.string_codes(field, spec, "sorted")


def _as_input(values: Any) -> Any:
    """pyarrow arrays and lists of strings as they are (Rust reads them); the rest as numpy."""
    return values if _is_arrow(values) or _is_str_seq(values) else np.asarray(values)


def _at(values: Any, i: int) -> Any:
    """Row ``i`` of any accepted input, as a plain Python value (for messages)."""
    v = values[i]
    if hasattr(v, "as_py"):
        v = v.as_py()
    elif hasattr(v, "item"):
        v = v.item()
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _pool_error(e: ValueError, g: Any, lg: Any) -> Exception:
    """The error a user sees for a pool the Rust core refused: an empty string is a type error;
    a group twice in one language names its id and language."""
    msg = str(e)
    if "empty string" in msg:
        return TypeError(f"{msg}; expected a non-empty string")
    rows = re.search(r"rows (\d+) and (\d+) have the same group id", msg)
    if rows is None:
        return e
    a, b = int(rows.group(1)), int(rows.group(2))
    return ValueError(
        f"group_ids: rows {a} and {b} are both group {_at(g, b)!r} in language "
        f"{_at(lg, b)!r}; a group has at most one row per language"
    )


def _codes(
    values: Any, field: str, names: bool = True
) -> tuple[np.ndarray, list[Any] | np.ndarray | None]:
    """Codes and what they stand for. Strings (lists, numpy unicode / bytes / object arrays,
    pyarrow arrays) are hashed in Rust to dense uint32 codes (sorted order); the second item is
    then the sorted distinct values (``names``) or each code's first row (``names=False``).
    Integers pass through as int64, with ``[]`` / ``None``. Strings must be non-empty:
    ``None``, NaN and ``""`` are errors naming the first offending row."""
    try:
        got = _string_codes(values, field)
    except ValueError as e:
        raise _pool_error(e, values, values) from None
    if got is not None:
        codes, first = got
        return codes, [_at(values, int(r)) for r in first] if names else first
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{field}: expected a 1-d sequence, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{field}: the pool is empty")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False), [] if names else None
    if arr.dtype.kind not in "UO":
        raise TypeError(f"{field}: expected strings or integers, got dtype {arr.dtype}")
    got = _string_codes(arr if arr.dtype.kind == "U" else arr.tolist(), field)
    if got is None:  # an object array that does not start with a string
        bad = next((i for i, v in enumerate(arr) if not isinstance(v, str) or not v), 0)
        raise TypeError(f"{field}: row {bad} is {arr[bad]!r}; expected a non-empty string (str)")
    codes, first = got
    return codes, [_at(arr, int(r)) for r in first] if names else first


def temperature_weights(
    rows_per_language: Mapping[str, int], temperature: float
) -> dict[str, float]:
    """Temperature sampling over languages (as in multilingual pre-training): language ``l``
    is drawn with probability proportional to ``n_l ** (1 / temperature)``, ``n_l`` its rows.
    ``temperature`` 1 samples in proportion to the data, larger values flatten towards
    uniform (``inf`` is uniform), values below 1 favour the large languages.

    Raises:
        ValueError: a temperature that is not > 0, or no language with rows.
    """
    t = float(temperature)
    if not t > 0:  # NaN fails too
        raise ValueError(f"language_temperature: must be > 0, got {temperature}")
    counts = {k: int(v) for k, v in rows_per_language.items() if int(v) > 0}
    if not counts:
        raise ValueError("rows_per_language: no language has rows")
    total = sum(counts.values())
    w = {k: (v / total) ** (1.0 / t) for k, v in counts.items()}
    z = sum(w.values())
    return {k: v / z for k, v in w.items()}


class PairPool:
    """Rows of parallel question/passage pairs grouped by question id (Rust, ~9 bytes a row).

    Build with :meth:`from_arrays`. Row indices always refer to the arrays given to
    ``from_arrays``, filters or not.
    """

    def __init__(self, inner: _core.PairPool, languages: Sequence[str], n_input_rows: int) -> None:
        self._inner = inner
        self.languages: tuple[str, ...] = tuple(languages)
        self.n_input_rows = n_input_rows

    @classmethod
    def from_arrays(cls, group_ids: Any, langs: Any) -> PairPool:
        """A pool from one entry per row: its group id (strings or integers) and its language
        (codes such as ``"en"``, or integers). Dense ids are made without Python loops.

        Raises:
            ValueError: different lengths, an empty pool, or one group twice in one language
                (naming the rows).
        """
        g, lg = _as_input(group_ids), _as_input(langs)
        if len(g) != len(lg):
            raise ValueError(f"langs: has {len(lg)} entries but group_ids has {len(g)}")
        both = cls._from_strings(g, lg)
        if both is not None:
            return both
        gcodes, gfirst = _codes(g, "group_ids", names=False)
        if isinstance(lg, np.ndarray) and lg.dtype.kind in "iu":
            lg = lg.astype(np.int64, copy=False)
            if lg.size and lg.min() >= 0 and lg.max() < 1 << 16:
                present = np.flatnonzero(np.bincount(lg))  # small codes: no sort needed
                if present[-1] == present.size - 1:
                    lcodes, uniq = lg, present  # already dense 0..L-1
                else:
                    table = np.zeros(int(present[-1]) + 1, dtype=np.int64)
                    table[present] = np.arange(present.size)
                    lcodes, uniq = table[lg], present
            else:
                uniq, lcodes = np.unique(lg, return_inverse=True)
            names = [str(x) for x in uniq]
        else:
            lcodes, lnames = _codes(lg, "langs")
            names = list(lnames) if lnames is not None else []
        if len(names) > 255:
            raise ValueError(f"langs: at most 255 languages, got {len(names)}")
        try:
            if gfirst is not None:  # dense codes from strings: a counting sort, no sorting
                inner = _core.PairPool.from_dense(
                    gcodes, len(gfirst), lcodes.astype(np.uint32, copy=False), max(len(names), 1)
                )
            else:
                inner = _core.PairPool.from_codes(
                    gcodes.astype(np.int64, copy=False),
                    lcodes.astype(np.int64, copy=False),
                    max(len(names), 1),
                )
        except ValueError as e:
            raise _pool_error(e, g, lg) from None
        return cls(inner, names, len(g))

    @classmethod
    def _from_strings(cls, g: Any, lg: Any) -> PairPool | None:
        """String ids and string languages: the pool built in Rust from one read of each (a
        partition pass for ids of at most 10 bytes, else from their codes); ``None`` when
        either input is not strings."""
        gs, ls = _key_spec(g, "group_ids"), _key_spec(lg, "langs")
        if gs is None or ls is None:
            return None
        try:
            inner, first = _core.PairPool.from_strings(gs, ls)
        except ValueError as e:
            raise _pool_error(e, g, lg) from None
        return cls(inner, [_at(lg, int(r)) for r in first], len(g))

    @classmethod
    def from_parallel(
        cls, qa: ParallelQA, languages: Iterable[str] | None = None, min_languages: int = 1
    ) -> PairPool:
        """The pool of a :class:`~hybridrs.data.ParallelQA` (row i = record i), optionally
        filtered to ``languages`` and to groups with at least ``min_languages`` of them."""
        p = cls.from_arrays(qa.ids, qa.langs)
        if languages is not None or min_languages > 1:
            p = p.filter(languages=languages, min_languages=min_languages)
        return p

    # -- views -------------------------------------------------------------------------------
    @property
    def n_groups(self) -> int:
        """Number of groups (question ids)."""
        return self._inner.n_groups

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return self._inner.n_rows

    @property
    def nbytes(self) -> int:
        """Bytes held by the pool."""
        return self._inner.nbytes

    def group(self, g: int) -> dict[str, int]:
        """``{language: row}`` of group ``g`` (dense group index)."""
        if not 0 <= int(g) < self.n_groups:
            raise ValueError(f"g: group {g} out of range 0..{self.n_groups - 1}")
        rows, langs = self._inner.group(int(g))
        return {self.languages[lang]: row for row, lang in zip(rows, langs, strict=False)}

    def stats(self) -> dict[str, Any]:
        """Groups, rows, languages, rows per language, mono pairs (sum of |L_g|) and ordered
        cross pairs (sum of |L_g| (|L_g| - 1)), per language and per language pair."""
        s = self._inner.stats()
        n_l = len(self.languages)
        pc = np.asarray(s["pair_counts"]).reshape(n_l, n_l)
        rpl = np.asarray(s["rows_per_lang"])
        return {
            "groups": int(s["groups"]),
            "rows": int(s["rows"]),
            "languages": list(self.languages),
            "rows_per_language": {lang: int(rpl[i]) for i, lang in enumerate(self.languages)},
            "groups_by_size": {int(k): int(v) for k, v in enumerate(s["groups_by_size"]) if v},
            "mono_pairs": int(s["mono_pairs"]),
            "cross_pairs": int(s["cross_pairs"]),
            "mono_pairs_per_language": {lang: int(rpl[i]) for i, lang in enumerate(self.languages)},
            "cross_pairs_per_language_pair": {
                f"{a}-{b}": int(pc[i, j])
                for i, a in enumerate(self.languages)
                for j, b in enumerate(self.languages)
                if i != j and pc[i, j]
            },
        }

    def filter(self, languages: Iterable[str] | None = None, min_languages: int = 1) -> PairPool:
        """A pool with only these languages, and only groups with at least ``min_languages``
        of them. Row indices still refer to the original arrays."""
        if min_languages < 1:
            raise ValueError(f"min_languages: must be >= 1, got {min_languages}")
        keep = None
        if languages is not None:
            wanted = set(languages)
            unknown = sorted(wanted - set(self.languages))
            if unknown:
                raise ValueError(
                    f"languages: unknown {unknown}; the pool has {list(self.languages)}"
                )
            keep = [lang in wanted for lang in self.languages]
        inner = self._inner.filter(keep, min_languages)
        return PairPool(inner, self.languages, self.n_input_rows)

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        return (
            f"PairPool(groups={self.n_groups}, rows={self.n_rows}, "
            f"languages={list(self.languages)})"
        )


class HybridBatchSampler:
    """A ``batch_sampler`` for ``torch.utils.data.DataLoader`` yielding hybrid batches.

    Each batch is a list of ``(question_row, passage_row)`` pairs, rows of the pool (indices
    into the arrays given to :meth:`PairPool.from_arrays`); question and passage always come
    from the same group.

    Args:
        pool: The :class:`PairPool`.
        batch_size: Pairs per rank and step; the global batch is ``batch_size * world_size``.
        alpha: Probability of a monolingual step (default 0.5, or the strategy's).
        seed: Base seed; batches are a function of ``(seed, epoch)`` only, not of threads.
        languages: Restrict to these languages.
        drop_last: ``True``: ``floor(G / global batch)`` steps an epoch, and a language with
            fewer groups than a global batch is left out of monolingual steps (listed in
            ``skipped_languages``). ``False``: ``ceil(G / global batch)`` steps, the last one
            padded with reused groups, and such a language is an error.
        rank, world_size: For DDP: rank ``r`` yields the ``r``-th shard of every global batch,
            so all ranks yield the same number of batches and share each step's mode.
        strategy: ``"mono"`` (alpha 1), ``"cross"`` (alpha 0) or ``"hybrid"`` (alpha 0.5).
        language_weights: Weights of languages in monolingual draws (default uniform); see
            :func:`temperature_weights` for temperature sampling.
        alpha_schedule: ``"constant"`` (alpha every step), ``"linear"`` (from ``alpha`` at the
            first global step to ``alpha_end`` at the last of ``total_steps``) or
            ``"triangle"`` (to ``alpha_end`` at the middle step and back to ``alpha``). The
            global step is ``epoch * len(sampler) + step``; the Rust sampler evaluates it.
        alpha_end, total_steps: The schedule's other end and the length of training.

    An epoch has ``len(sampler)`` steps; call :meth:`set_epoch` before each epoch. Each step
    takes groups not yet used in the epoch (a per-epoch shuffle) while any fit its mode, then
    reuses groups; :attr:`epoch_stats` reports what was reused or left unused.

    Example:
        >>> pool = PairPool.from_arrays(ids, langs)  # doctest: +SKIP
        >>> sampler = HybridBatchSampler(pool, batch_size=32)  # doctest: +SKIP
        >>> loader = DataLoader(dataset, batch_sampler=sampler)  # doctest: +SKIP
    """

    def __init__(
        self,
        pool: PairPool,
        batch_size: int,
        alpha: float | None = None,
        seed: int = 0,
        languages: Iterable[str] | None = None,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        strategy: str | None = None,
        language_weights: Mapping[str, float] | None = None,
        alpha_schedule: str = "constant",
        alpha_end: float | None = None,
        total_steps: int | None = None,
    ) -> None:
        if not isinstance(pool, PairPool):
            raise TypeError(f"pool: expected a PairPool, got {type(pool).__name__}")
        if alpha_schedule not in ALPHA_SCHEDULES:
            raise ValueError(
                f"alpha_schedule: must be one of {list(ALPHA_SCHEDULES)}, got {alpha_schedule!r}"
            )
        if alpha_schedule != "constant":
            if strategy in ("mono", "cross"):
                raise ValueError(
                    f"alpha_schedule: {alpha_schedule!r} moves alpha, which strategy="
                    f"{strategy!r} fixes; use strategy='hybrid'"
                )
            if alpha_end is None:
                raise ValueError(f"alpha_end: alpha_schedule={alpha_schedule!r} needs alpha_end")
            resolve_alpha(None, alpha_end)
            total_steps = as_int(total_steps, "total_steps", 1)
        alpha = resolve_alpha(strategy, alpha)
        batch_size = as_int(batch_size, "batch_size", 1)
        world_size = as_int(world_size, "world_size", 1)
        if not 0 <= as_int(rank, "rank", 0) < world_size:
            raise ValueError(f"rank: must lie in 0..world_size-1 = 0..{world_size - 1}, got {rank}")
        seed = as_int(seed, "seed", 0, (1 << 64) - 1)
        if languages is not None:
            pool = pool.filter(languages=languages)
        weights = [1.0] * len(pool.languages)
        if language_weights is not None:
            unknown = sorted(set(language_weights) - set(pool.languages))
            if unknown:
                raise ValueError(f"language_weights: unknown languages {unknown}")
            weights = [float(language_weights.get(lang, 0.0)) for lang in pool.languages]
        self.pool = pool
        self.batch_size = int(batch_size)
        self.world_size = int(world_size)
        self.rank = int(rank)
        self.alpha = alpha
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.alpha_schedule = alpha_schedule
        self.alpha_end = alpha if alpha_end is None else float(alpha_end)
        self._core = _core.HybridSampler(
            pool._inner,
            self.batch_size,
            self.world_size,
            alpha,
            self.seed,
            weights,
            self.drop_last,
            alpha_schedule,
            self.alpha_end,
            int(total_steps or 0),
        )
        self.epoch = 0
        self._start = 0
        self._yielded = 0
        self._plan: dict[str, Any] | None = None
        self._plan_epoch = -1

    # -- protocol ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._core.steps)

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose batches the next iteration yields."""
        if int(epoch) < 0:
            raise ValueError(f"epoch: must be >= 0, got {epoch}")
        self.epoch = int(epoch)
        self._start = 0

    def alpha_at(self, global_step: int) -> float:
        """The probability of a monolingual step at ``global_step`` (epoch * len + step)."""
        return float(self._core.alpha_at(as_int(global_step, "global_step", 0)))

    @property
    def global_batch_size(self) -> int:
        """``batch_size * world_size``."""
        return self.batch_size * self.world_size

    @property
    def skipped_languages(self) -> list[str]:
        """Languages left out of monolingual steps (fewer groups than a global batch)."""
        return [self.pool.languages[i] for i in self._core.skipped_langs]

    def plan(self, epoch: int | None = None) -> dict[str, Any]:
        """The whole global plan of an epoch: ``modes`` (language code per step, -1 = cross),
        ``q_rows`` / ``p_rows`` (steps x global batch) and ``stats``."""
        e = self.epoch if epoch is None else int(epoch)
        if self._plan is None or self._plan_epoch != e:
            self._plan = self._core.plan(e)
            self._plan_epoch = e
        return self._plan

    @property
    def epoch_stats(self) -> dict[str, int]:
        """Counts of the current epoch: steps, mono / cross steps, eligible groups, groups used,
        groups unused (could not be placed) and reused slots."""
        return dict(self.plan()["stats"])

    def step_mode(self, step: int) -> str:
        """``"cross"`` or the language of a monolingual step of the current epoch."""
        if not 0 <= int(step) < len(self):
            raise ValueError(f"step: must lie in 0..{len(self) - 1}, got {step}")
        m = int(self.plan()["modes"][int(step)])
        return "cross" if m < 0 else self.pool.languages[m]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        plan = self.plan()
        gb, b, r = plan["global_batch"], self.batch_size, self.rank
        q = plan["q_rows"].reshape(-1, gb)[:, r * b : (r + 1) * b]
        p = plan["p_rows"].reshape(-1, gb)[:, r * b : (r + 1) * b]
        start, self._start = self._start, 0
        self._yielded = start
        for s in range(start, q.shape[0]):
            self._yielded = s + 1
            yield list(zip(q[s].tolist(), p[s].tolist(), strict=False))

    # -- resuming ------------------------------------------------------------------------------
    def state_dict(self, steps_consumed: int | None = None) -> dict[str, int]:
        """``{"seed", "epoch", "steps_consumed"}``. A DataLoader prefetches batches, so pass the
        number of batches the trainer actually consumed in this epoch; without it, the number
        this sampler yielded is used (which may run ahead of the trainer)."""
        n = self._yielded if steps_consumed is None else int(steps_consumed)
        if not 0 <= n <= len(self):
            raise ValueError(f"steps_consumed: must lie in 0..{len(self)}, got {n}")
        return {"seed": self.seed, "epoch": self.epoch, "steps_consumed": n}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continues from exactly the step after the ones consumed (next iteration only)."""
        for k in ("seed", "epoch", "steps_consumed"):
            if k not in state:
                raise ValueError(f"state: missing key {k!r}")
        if int(state["seed"]) != self.seed:
            raise ValueError(f"state: seed {state['seed']} differs from this sampler's {self.seed}")
        n = int(state["steps_consumed"])
        if not 0 <= n <= len(self):
            raise ValueError(f"state: steps_consumed must lie in 0..{len(self)}, got {n}")
        self.set_epoch(int(state["epoch"]))
        self._start = n

    def __repr__(self) -> str:
        return (
            f"HybridBatchSampler(batch_size={self.batch_size}, world_size={self.world_size}, "
            f"rank={self.rank}, alpha={self.alpha}, steps={len(self)}, "
            f"languages={list(self.pool.languages)})"
        )
