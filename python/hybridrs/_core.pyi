"""Type stubs of the Rust extension ``hybridrs._core`` (hand-written; checked by stubtest)."""

from collections.abc import Sequence
from typing import Any, TypeAlias, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "FusedShard",
    "HybridSampler",
    "PairPool",
    "__version__",
    "aggregate",
    "bias_counts",
    "bias_from_counts",
    "fused_available",
    "fused_kernel",
    "fused_scores_at",
    "graded_metrics",
    "metrics_from_counts",
    "query_metrics",
    "query_metrics_embeddings",
    "row_top_values",
    "simd_level",
    "string_codes",
    "threshold_counts",
]

__version__: str

#: How strings are handed to Rust: ``("fixed", data, width, unit)`` (numpy ``<U``: unit 4,
#: ``S``: unit 1, viewed as bytes), ``("offsets", data, offsets)`` (UTF-8 data and ``n + 1``
#: int32 / int64 offsets: pyarrow's layout, read as it is), ``("list", items)`` or
#: ``("objects", array)`` (a 1-d numpy object array of ``str``).
_KeySpec: TypeAlias = (
    tuple[str, npt.NDArray[np.uint8], int, int]
    | tuple[str, npt.NDArray[np.uint8], npt.NDArray[np.int32] | npt.NDArray[np.int64]]
    | tuple[str, Sequence[str]]
    | tuple[str, npt.NDArray[np.object_]]
)

def query_metrics(
    scores: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    first_row: int,
    relevance_indptr: npt.NDArray[np.int64],
    relevance_indices: npt.NDArray[np.int64],
    lang_offsets: npt.NDArray[np.int64],
    recall_at: list[int],
    map_at: int,
    map_norm: str,
    *,
    single_thread: bool = False,
) -> dict[str, npt.NDArray[Any]]:
    """Per-question metrics of the score rows ``first_row .. first_row + len(scores)``.

    ``single_thread``: run on the calling thread alone (for callers that keep one such call
    per core busy themselves) instead of the extension's thread pool.

    ``scores`` is C-contiguous, ``(rows, n_candidates)``; candidates are grouped by language
    (``lang_offsets``, L + 1 entries); relevance is CSR over all questions. Returns flat arrays
    ``n_relevant``, ``ap``, ``ap_at_k``, ``recall`` (rows x K), ``rank_distance``, ``lang_ap``
    (rows x L), ``lang_ap_at_k`` (rows x L), ``lang_recall`` (rows x L x K); NaN marks a
    setting without a relevant candidate. Raises TypeError for a wrong dtype and ValueError
    for a wrong shape or a non-finite score. Releases the GIL.
    """

def query_metrics_embeddings(
    query_embeddings: npt.NDArray[np.float32],
    candidate_embeddings: npt.NDArray[np.float32],
    first_row: int,
    relevance_indptr: npt.NDArray[np.int64],
    relevance_indices: npt.NDArray[np.int64],
    lang_offsets: npt.NDArray[np.int64],
    recall_at: list[int],
    map_at: int,
    map_norm: str,
) -> dict[str, npt.NDArray[Any]]:
    """Per-question metrics of ``query_embeddings @ candidate_embeddings.T`` without the matrix.

    The rows of ``query_embeddings`` are the questions ``first_row .. first_row + rows``.
    Both arrays are C-contiguous float32 with the same number of columns. Scores are computed
    tile by tile (an AVX-512 or AVX2 FMA microkernel, see :func:`fused_kernel`; one FMA chain
    per score, so both give the same scores) and counted while in cache; the result has the
    same fields as :func:`query_metrics`. Raises ValueError where :func:`fused_available` is
    false. Releases the GIL.
    """

def threshold_counts(
    scores: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    first_row: int,
    lang_offsets: npt.NDArray[np.int64],
    thr_indptr: npt.NDArray[np.int64],
    thresholds: npt.NDArray[np.float32] | npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    """For each row of a block of scores over a shard of the candidates (C-contiguous, columns
    grouped by language as ``lang_offsets`` says) and each of that row's thresholds
    (``thresholds[thr_indptr[i]:thr_indptr[i + 1]]``, the scores' dtype), the number of the
    row's candidates of each language scoring ``>=`` and ``>`` the threshold: ``(ge, gt)``, each
    ``len(thresholds) x L`` flattened. Counts of disjoint shards add up to the counts of the whole
    row. ``first_row`` numbers the rows in error messages. Releases the GIL.
    """

@final
class FusedShard:
    """One shard of the candidates (``candidate_embeddings``, float32, C-contiguous, grouped by
    language as ``lang_offsets`` says; it may be empty) packed once into the fused kernel's
    panels, for sharded exact evaluation. Needs the fused kernel (:func:`fused_kernel`; a
    ValueError naming ``backend`` otherwise). Releases the GIL."""

    def __new__(
        cls,
        candidate_embeddings: npt.NDArray[np.float32],
        lang_offsets: npt.NDArray[np.int64],
    ) -> FusedShard: ...
    def counts(
        self,
        query_embeddings: npt.NDArray[np.float32],
        first_row: int,
        thr_indptr: npt.NDArray[np.int64],
        thresholds: npt.NDArray[np.float32],
        k: int,
    ) -> tuple[
        npt.NDArray[np.uint32],
        npt.NDArray[np.uint32],
        npt.NDArray[np.float32],
        npt.NDArray[np.uint32],
        npt.NDArray[np.uint32],
    ]:
        """The scores of every question against the shard, as the fused kernel computes them
        (see :func:`fused_scores_at`), never written out: counted as :func:`threshold_counts`
        counts a block of them (question ``i``'s thresholds are
        ``thresholds[thr_indptr[i]:thr_indptr[i + 1]]``), and each question's ``k`` largest kept.
        Returns ``(ge, gt, top, top_lang, top_ties)``: ``ge``/``gt`` as :func:`threshold_counts`;
        ``top`` (``n x k`` flattened, decreasing, ``-inf`` padded) the largest scores and
        ``top_lang`` their languages; ``top_ties`` (``n x L``) how many more candidates of each
        language score exactly the ``k``-th, so that every candidate at or above the ``k``-th is
        known. ``first_row`` numbers questions in error messages. Releases the GIL.
        """

def fused_scores_at(
    query_embeddings: npt.NDArray[np.float32],
    candidate_embeddings: npt.NDArray[np.float32],
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
) -> npt.NDArray[np.float32]:
    """The scores of the pairs ``(rows[j], cols[j])`` bit for bit as the fused kernel computes
    them (one FMA chain over the dimensions from zero): the thresholds
    :meth:`FusedShard.counts` needs. Needs the fused kernel; releases the GIL."""

def metrics_from_counts(
    thresholds: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    ge: npt.NDArray[np.uint32],
    gt: npt.NDArray[np.uint32],
    first_row: int,
    n_rows: int,
    relevance_indptr: npt.NDArray[np.int64],
    relevance_indices: npt.NDArray[np.int64],
    lang_offsets: npt.NDArray[np.int64],
    recall_at: list[int],
    map_at: int,
    map_norm: str,
) -> dict[str, npt.NDArray[Any]]:
    """Per-question metrics of the questions ``first_row .. first_row + n_rows`` from their
    relevant candidates' scores (``thresholds``, in relevance order) and those candidates'
    ``ge`` / ``gt`` counts over all candidates (:func:`threshold_counts` summed over shards).
    Each question's relevant candidates must be sorted without repeats. The same fields as
    :func:`query_metrics`, equal to it bit for bit. Releases the GIL.
    """

def bias_from_counts(
    gt: npt.NDArray[np.uint32],
    ge_top: npt.NDArray[np.uint32],
    first_row: int,
    n_rows: int,
    relevance_indptr: npt.NDArray[np.int64],
    relevance_indices: npt.NDArray[np.int64],
    lang_offsets: npt.NDArray[np.int64],
    top_k: list[int],
) -> dict[str, npt.NDArray[np.uint64]]:
    """The fields of :func:`bias_counts` for the questions ``first_row .. first_row + n_rows``
    from counts summed over shards: ``gt`` (relevant candidates x L: candidates of each
    language scored above each relevant one) and ``ge_top`` (rows x len(top_k) x L: candidates
    of each language scoring at least the row's k-th best score). Releases the GIL."""

def graded_metrics(
    scores: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    first_row: int,
    relevance_indptr: npt.NDArray[np.int64],
    relevance_indices: npt.NDArray[np.int64],
    gains: npt.NDArray[np.float64],
    ndcg_at: int,
    recall_at: int,
) -> dict[str, npt.NDArray[np.float64]]:
    """nDCG@``ndcg_at`` (linear gains, as trec_eval's ``ndcg_cut``) and recall@``recall_at`` of
    the score rows ``first_row ..`` over all their columns, ``gains`` aligned with
    ``relevance_indices`` (each > 0). Ties are resolved by expectation over the orders of each
    tie group; without ties, the usual definitions. ``ndcg`` and ``recall``: one per row, NaN
    for a question without relevant candidates. Releases the GIL.
    """

def row_top_values(
    scores: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    first_row: int,
    k: int,
) -> npt.NDArray[Any]:
    """The ``k`` largest values of each row (C-contiguous), in decreasing order with repeats,
    flattened ``rows x k`` in the scores' dtype; rows with fewer than ``k`` values are padded
    with ``-inf``. ``first_row`` numbers rows in error messages (a non-finite score is a
    ValueError). Releases the GIL.
    """

def fused_available() -> bool:
    """Whether this CPU can run :func:`query_metrics_embeddings` (AVX-512F/BW/VL or AVX2, each
    with FMA and POPCNT; capped by ``HYBRIDRS_SIMD``)."""

def fused_kernel() -> str | None:
    """The microkernel :func:`query_metrics_embeddings` runs here: ``"avx512"`` (14 x 32
    tiles), ``"avx2"`` (6 x 16 tiles) or None (no fused path: portable level or no FMA)."""

def bias_counts(
    scores: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    first_row: int,
    relevance_indptr: npt.NDArray[np.int64],
    relevance_indices: npt.NDArray[np.int64],
    lang_offsets: npt.NDArray[np.int64],
    top_k: list[int],
) -> dict[str, npt.NDArray[np.uint64]]:
    """Language-bias counts of the score rows ``first_row..``: ``max_rank`` (n; worst pooled
    rank of a relevant candidate), ``lang_min_rank`` (n x L; best pooled rank of a relevant
    candidate of each language, 0 where none) and ``top_counts`` (n x L x len(top_k);
    candidates of each language ranked <= k, ties at the cutoff inside)."""

def aggregate(
    per_query: dict[str, npt.NDArray[np.float64]],
    query_lang: npt.NDArray[np.int64],
    n_langs: int,
    n_ks: int,
) -> dict[str, Any]:
    """Per-setting means (``pair_map`` L x L, ``multi_map`` L, ...) of the per-question
    metrics that :func:`query_metrics` returns (the dict as it is: ``ap``, ``ap_at_k``,
    ``recall``, ``rank_distance``, ``lang_ap``, ``lang_ap_at_k``, ``lang_recall``)."""

@final
class PairPool:
    """Rows of parallel pairs grouped by question id (about 9 bytes a row)."""

    @staticmethod
    def from_codes(
        group_ids: npt.NDArray[np.int64], langs: npt.NDArray[np.int64], n_langs: int
    ) -> PairPool:
        """A pool from int64 group ids (any values) and language codes ``0..n_langs``."""

    @staticmethod
    def from_dense(
        group_codes: npt.NDArray[np.uint32],
        n_groups: int,
        lang_codes: npt.NDArray[np.uint32],
        n_langs: int,
    ) -> PairPool:
        """A pool from dense codes: groups ``0..n_groups`` (each used), languages
        ``0..n_langs``; the same pool as ``from_codes``, by a counting sort."""
    @staticmethod
    def from_strings(groups: _KeySpec, langs: _KeySpec) -> tuple[PairPool, npt.NDArray[np.uint32]]:
        """The pool of string ids and string languages (sorted numbering of both) and each
        language's first row, each input read once: one partition pass for ids of at most 10
        bytes, else both numbered and the pool built from the codes. ``ValueError`` /
        ``TypeError`` name the field (and rows) at fault."""

    def filter(self, keep: list[bool] | None, min_langs: int) -> PairPool:
        """Keeps the language codes where ``keep`` is true and groups with >= min_langs."""

    def stats(self) -> dict[str, Any]:
        """groups, rows, mono_pairs, cross_pairs, rows_per_lang, groups_by_size, pair_counts."""

    def group(self, g: int) -> tuple[list[int], list[int]]:
        """(rows, language codes) of group ``g``."""

    @property
    def n_groups(self) -> int: ...
    @property
    def n_rows(self) -> int: ...
    @property
    def n_langs(self) -> int: ...
    @property
    def nbytes(self) -> int: ...

@final
class HybridSampler:
    """Plans hybrid epochs over a pool, deterministically from (seed, epoch)."""

    def __new__(
        cls,
        pool: PairPool,
        batch_size: int,
        world_size: int,
        alpha: float,
        seed: int,
        lang_weights: list[float],
        drop_last: bool,
        schedule: str = "constant",
        alpha_end: float | None = None,
        total_steps: int = 0,
    ) -> HybridSampler: ...
    def alpha_at(self, t: int) -> float:
        """The probability of a monolingual step at global step ``t``."""
    @property
    def steps(self) -> int: ...
    @property
    def skipped_langs(self) -> list[int]: ...
    def plan(self, epoch: int) -> dict[str, Any]:
        """``global_batch``, ``modes`` (int32, -1 = cross), ``q_rows``, ``p_rows`` (uint32,
        steps x global batch) and ``stats``."""

def string_codes(
    field: str, spec: _KeySpec, order: str
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    """Dense codes of the strings of ``spec`` and the first row of each code; ``order`` is
    ``"sorted"`` or ``"first_seen"``."""

def simd_level() -> str:
    """The SIMD build the counting kernels run: ``"avx512"``, ``"avx2"`` or ``"portable"``
    (capped by the environment variable ``HYBRIDRS_SIMD``, read once)."""
