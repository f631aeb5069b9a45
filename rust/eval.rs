//! Exact retrieval metrics over all language pairs in one pass over each score row.
//!
//! Layout: candidates are grouped by language, `lang_offsets[l]..lang_offsets[l + 1]` being
//! the columns of language `l`. Relevance is CSR over questions (`indptr`, `indices`).
//!
//! For one question with relevant candidates `r_1..r_k` (scores `t_1..t_k`) the kernel counts,
//! for every relevant `j` and every candidate language `l`, how many candidates of `l` score
//! `>= t_j` and `> t_j`. Every metric follows from those `2 k L` counts:
//!
//! * average precision, exactly as `sklearn.metrics.average_precision_score` (tied scores form
//!   one threshold step): `AP = 1/k * sum_j #{i : t_i >= t_j} / #{c : s_c >= t_j}`;
//! * rank of a relevant candidate: `1 + #{c : s_c > t_j}` (ties share the best rank);
//! * recall@K: share of relevant candidates whose rank is `<= K`;
//! * AP@K: the terms of AP whose tie-inclusive position `#{c : s_c >= t_j}` is `<= K`, divided by
//!   `k` (`MapNorm::R`, as trec_eval) or `min(K, k)` (`MapNorm::MinKR`); without ties this is
//!   the usual truncated AP.
//!
//! The monolingual / cross-lingual setting `(lq, lc)` restricts both the relevant set and the
//! counts to language `lc`; the pooled (multilingual) setting sums over languages. No row is
//! sorted, each row slice is read once from memory (the per-language slices stay in cache for the
//! `k` threshold passes), and rows run in parallel with rayon.

use rayon::prelude::*;

use crate::error::{CoreError, CoreResult};

/// A score element type (f32 or f64).
pub trait Score: Copy + PartialOrd + Send + Sync + 'static {
    /// Positive infinity.
    const INFINITY: Self;
    /// Whether the value is neither NaN nor infinite.
    fn finite(self) -> bool;
    /// The value as f64 (for error messages).
    fn as_f64(self) -> f64;
    /// Whether every value of a slice is finite: the largest magnitude bit pattern is below the
    /// exponent-all-ones pattern of infinities and NaNs (an integer max that vectorises, no
    /// early exit).
    fn all_finite(s: &[Self]) -> bool;
    /// Copies the values of `s` that are not below `t` (NaN included) to the front of `buf`
    /// (which holds at least `s.len() + COMPACT_PAD` values) and returns how many. Whether the
    /// values of `s` are all finite is returned too (checked in the same pass).
    // `!(x < t)` on purpose: NaN is kept, so that the finiteness check sees it.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn compact(s: &[Self], t: Self, buf: &mut [Self]) -> (usize, bool) {
        let mut n = 0;
        for &x in s {
            buf[n] = x;
            n += usize::from(!(x < t));
        }
        (n, Self::all_finite(s))
    }
    /// [`Score::compact`] with AVX-512 compress instructions.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and POPCNT, and `buf` must hold at least `s.len() + COMPACT_PAD`
    /// values.
    #[cfg(target_arch = "x86_64")]
    unsafe fn compact_avx512(s: &[Self], t: Self, buf: &mut [Self]) -> (usize, bool);
}

/// Extra room at the end of a compaction buffer (whole-vector stores may run past the values
/// kept).
pub(crate) const COMPACT_PAD: usize = 16;

impl Score for f32 {
    const INFINITY: Self = f32::INFINITY;
    #[inline(always)]
    fn finite(self) -> bool {
        self.is_finite()
    }
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn all_finite(s: &[Self]) -> bool {
        s.iter()
            .fold(0u32, |m, &x| m.max(x.to_bits() & 0x7fff_ffff))
            < 0x7f80_0000
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,popcnt")]
    unsafe fn compact_avx512(s: &[Self], t: Self, buf: &mut [Self]) -> (usize, bool) {
        use std::arch::x86_64::*;
        debug_assert!(buf.len() >= s.len() + COMPACT_PAD);
        let tv = _mm512_set1_ps(t);
        let abs = _mm512_set1_epi32(0x7fff_ffff);
        let mut mx = _mm512_setzero_si512();
        let mut n = 0usize;
        let out = buf.as_mut_ptr();
        let chunks = s.len() / 16;
        for c in 0..chunks {
            // SAFETY: `c * 16 + 16 <= s.len()`; the store writes 16 values at `n <= c * 16`,
            // inside `buf` (at least `s.len() + 16` long).
            unsafe {
                let x = _mm512_loadu_ps(s.as_ptr().add(c * 16));
                let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, tv);
                _mm512_storeu_ps(out.add(n), _mm512_maskz_compress_ps(keep, x));
                n += keep.count_ones() as usize;
                mx = _mm512_max_epu32(mx, _mm512_and_si512(_mm512_castps_si512(x), abs));
            }
        }
        let rest = s.len() - chunks * 16;
        if rest > 0 {
            let lanes: __mmask16 = (1u32 << rest).wrapping_sub(1) as __mmask16;
            // SAFETY: the masked load reads only the `rest` values left in `s`; the store is in
            // `buf` as above.
            unsafe {
                let x = _mm512_maskz_loadu_ps(lanes, s.as_ptr().add(chunks * 16));
                let keep = _mm512_mask_cmp_ps_mask::<_CMP_NLT_UQ>(lanes, x, tv);
                _mm512_storeu_ps(out.add(n), _mm512_maskz_compress_ps(keep, x));
                n += keep.count_ones() as usize;
                mx = _mm512_max_epu32(mx, _mm512_and_si512(_mm512_castps_si512(x), abs));
            }
        }
        (n, _mm512_reduce_max_epu32(mx) < 0x7f80_0000)
    }
}

impl Score for f64 {
    const INFINITY: Self = f64::INFINITY;
    #[inline(always)]
    fn finite(self) -> bool {
        self.is_finite()
    }
    fn as_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn all_finite(s: &[Self]) -> bool {
        s.iter()
            .fold(0u64, |m, &x| m.max(x.to_bits() & 0x7fff_ffff_ffff_ffff))
            < 0x7ff0_0000_0000_0000
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,popcnt")]
    unsafe fn compact_avx512(s: &[Self], t: Self, buf: &mut [Self]) -> (usize, bool) {
        use std::arch::x86_64::*;
        debug_assert!(buf.len() >= s.len() + COMPACT_PAD);
        let tv = _mm512_set1_pd(t);
        let abs = _mm512_set1_epi64(0x7fff_ffff_ffff_ffff);
        let mut mx = _mm512_setzero_si512();
        let mut n = 0usize;
        let out = buf.as_mut_ptr();
        let chunks = s.len() / 8;
        for c in 0..chunks {
            // SAFETY: `c * 8 + 8 <= s.len()`; the store writes 8 values at `n <= c * 8`, inside
            // `buf` (at least `s.len() + 16` long).
            unsafe {
                let x = _mm512_loadu_pd(s.as_ptr().add(c * 8));
                let keep = _mm512_cmp_pd_mask::<_CMP_NLT_UQ>(x, tv);
                _mm512_storeu_pd(out.add(n), _mm512_maskz_compress_pd(keep, x));
                n += keep.count_ones() as usize;
                mx = _mm512_max_epu64(mx, _mm512_and_si512(_mm512_castpd_si512(x), abs));
            }
        }
        let rest = s.len() - chunks * 8;
        if rest > 0 {
            let lanes: __mmask8 = ((1u32 << rest) - 1) as __mmask8;
            // SAFETY: the masked load reads only the `rest` values left in `s`; the store is in
            // `buf` as above.
            unsafe {
                let x = _mm512_maskz_loadu_pd(lanes, s.as_ptr().add(chunks * 8));
                let keep = _mm512_mask_cmp_pd_mask::<_CMP_NLT_UQ>(lanes, x, tv);
                _mm512_storeu_pd(out.add(n), _mm512_maskz_compress_pd(keep, x));
                n += keep.count_ones() as usize;
                mx = _mm512_max_epu64(mx, _mm512_and_si512(_mm512_castpd_si512(x), abs));
            }
        }
        (n, _mm512_reduce_max_epu64(mx) < 0x7ff0_0000_0000_0000)
    }
}

/// Normalisation of AP@K.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapNorm {
    /// Divide by the number of relevant candidates R (trec_eval's `map_cut`).
    R,
    /// Divide by `min(K, R)`.
    MinKR,
}

impl MapNorm {
    /// Parses `"R"` or `"min(k,R)"` (case and spaces ignored).
    pub fn parse(s: &str) -> CoreResult<Self> {
        let norm: String = s
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        match norm.as_str() {
            "r" => Ok(MapNorm::R),
            "min(k,r)" => Ok(MapNorm::MinKR),
            _ => Err(CoreError::value(
                "map_norm",
                format!("unknown normalisation {s:?}; use \"R\" or \"min(k,R)\""),
            )),
        }
    }
}

/// What to compute besides full-list AP and rank distance.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Cutoffs K of recall@K.
    pub recall_ks: Vec<usize>,
    /// Cutoff of AP@K.
    pub map_k: usize,
    /// Normalisation of AP@K.
    pub map_norm: MapNorm,
}

impl Spec {
    /// Checks the cutoffs.
    pub fn validate(&self) -> CoreResult<()> {
        if self.recall_ks.contains(&0) {
            return Err(CoreError::value("recall_at", "cutoffs must be >= 1"));
        }
        if self.map_k == 0 {
            return Err(CoreError::value("map_at", "cutoff must be >= 1"));
        }
        Ok(())
    }
}

/// Candidate columns grouped by language.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub(crate) offsets: Vec<usize>,
}

impl Layout {
    /// Builds a layout from `n_langs + 1` non-decreasing offsets starting at 0.
    pub fn new(offsets: &[i64]) -> CoreResult<Self> {
        if offsets.len() < 2 {
            return Err(CoreError::shape(
                "lang_offsets",
                "needs at least 2 entries (one language)",
            ));
        }
        if offsets[0] != 0 {
            return Err(CoreError::value("lang_offsets", "must start at 0"));
        }
        let mut out = Vec::with_capacity(offsets.len());
        let mut prev = 0i64;
        for (i, &o) in offsets.iter().enumerate() {
            if o < prev {
                return Err(CoreError::value(
                    "lang_offsets",
                    format!("must be non-decreasing (entry {i} is {o} after {prev})"),
                ));
            }
            if o > u32::MAX as i64 {
                return Err(CoreError::value(
                    "lang_offsets",
                    "more than 4294967295 candidates are not supported",
                ));
            }
            prev = o;
            out.push(o as usize);
        }
        Ok(Layout { offsets: out })
    }

    /// Number of languages.
    pub fn n_langs(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Number of candidates (columns).
    pub fn n_candidates(&self) -> usize {
        self.offsets[self.offsets.len() - 1]
    }

    /// Language of a candidate column (which must be `< n_candidates`).
    pub(crate) fn lang_of(&self, col: usize) -> usize {
        self.offsets.partition_point(|&o| o <= col) - 1
    }
}

/// Relevance in CSR form: question `q` is relevant to `indices[indptr[q]..indptr[q + 1]]`.
#[derive(Debug, Clone, Copy)]
pub struct Relevance<'a> {
    /// Row pointer, `n_questions + 1` entries.
    pub indptr: &'a [i64],
    /// Candidate columns.
    pub indices: &'a [i64],
}

impl Relevance<'_> {
    /// Number of questions.
    pub fn n_questions(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// Checks that the questions `first_row..first_row + n_rows` (the rows of `field`) exist.
    pub fn check_rows(
        &self,
        field: &'static str,
        first_row: usize,
        n_rows: usize,
    ) -> CoreResult<()> {
        if first_row.saturating_add(n_rows) > self.n_questions() {
            return Err(CoreError::shape(
                field,
                format!(
                    "rows {first_row}..{} exceed the {} questions of the relevance",
                    first_row.saturating_add(n_rows),
                    self.n_questions()
                ),
            ));
        }
        Ok(())
    }

    /// Checks the CSR structure against the number of candidates.
    pub fn validate(&self, n_candidates: usize) -> CoreResult<()> {
        if self.indptr.is_empty() {
            return Err(CoreError::shape(
                "relevance_indptr",
                "needs n_questions + 1 entries",
            ));
        }
        if self.indptr[0] != 0 {
            return Err(CoreError::value("relevance_indptr", "must start at 0"));
        }
        for w in self.indptr.windows(2) {
            if w[1] < w[0] {
                return Err(CoreError::value(
                    "relevance_indptr",
                    "must be non-decreasing",
                ));
            }
        }
        let last = self.indptr[self.indptr.len() - 1];
        if last as u64 != self.indices.len() as u64 {
            return Err(CoreError::shape(
                "relevance_indices",
                format!(
                    "has {} entries but relevance_indptr ends at {last}",
                    self.indices.len()
                ),
            ));
        }
        for (i, &c) in self.indices.iter().enumerate() {
            if c < 0 || c as u64 >= n_candidates as u64 {
                return Err(CoreError::value(
                    "relevance_indices",
                    format!("entry {i} is {c}, outside 0..{n_candidates}"),
                ));
            }
        }
        Ok(())
    }
}

/// Per-question metrics of a block of score rows. NaN marks a setting in which the question has
/// no relevant candidate (left out of that setting's mean).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryMetrics {
    /// Number of languages L.
    pub n_langs: usize,
    /// Number of recall cutoffs.
    pub n_ks: usize,
    /// Number of relevant candidates of each question (pooled).
    pub n_relevant: Vec<u32>,
    /// Pooled AP, one per question.
    pub ap: Vec<f64>,
    /// Pooled AP@K.
    pub ap_at_k: Vec<f64>,
    /// Pooled recall at each cutoff, `n_questions x n_ks`.
    pub recall: Vec<f64>,
    /// Max rank - min rank of the relevant candidates in the pooled ranking.
    pub rank_distance: Vec<f64>,
    /// AP against the candidates of each language, `n_questions x L`.
    pub lang_ap: Vec<f64>,
    /// AP@K against each language, `n_questions x L`.
    pub lang_ap_at_k: Vec<f64>,
    /// Recall against each language, `n_questions x L x n_ks`.
    pub lang_recall: Vec<f64>,
}

/// Per-question metrics as borrowed slices (the same fields as [`QueryMetrics`]).
#[derive(Debug, Clone, Copy)]
pub struct QueryMetricsView<'a> {
    /// Number of languages L.
    pub n_langs: usize,
    /// Number of recall cutoffs.
    pub n_ks: usize,
    /// Pooled AP.
    pub ap: &'a [f64],
    /// Pooled AP@K.
    pub ap_at_k: &'a [f64],
    /// Pooled recall, `n x n_ks`.
    pub recall: &'a [f64],
    /// Rank distance.
    pub rank_distance: &'a [f64],
    /// Per-language AP, `n x L`.
    pub lang_ap: &'a [f64],
    /// Per-language AP@K, `n x L`.
    pub lang_ap_at_k: &'a [f64],
    /// Per-language recall, `n x L x n_ks`.
    pub lang_recall: &'a [f64],
}

impl QueryMetrics {
    /// Borrows the metrics as a view.
    pub fn view(&self) -> QueryMetricsView<'_> {
        QueryMetricsView {
            n_langs: self.n_langs,
            n_ks: self.n_ks,
            ap: &self.ap,
            ap_at_k: &self.ap_at_k,
            recall: &self.recall,
            rank_distance: &self.rank_distance,
            lang_ap: &self.lang_ap,
            lang_ap_at_k: &self.lang_ap_at_k,
            lang_recall: &self.lang_recall,
        }
    }
}

/// Counts of `x >= t` and `x > t` over a slice. A tight loop that LLVM vectorises.
#[inline(always)]
pub(crate) fn count_ge_gt<T: Score>(s: &[T], t: T) -> (u32, u32) {
    let mut ge = 0u32;
    let mut gt = 0u32;
    for &x in s {
        ge += u32::from(x >= t);
        gt += u32::from(x > t);
    }
    (ge, gt)
}

/// Thresholds handled together by [`count_few`] (one vector register of f32).
const LANES: usize = 16;

/// Adds the `ge`/`gt` counts of language `l` over a short run of scores (the survivors of compaction):
/// the thresholds sit in the lanes of a vector and each score is compared with all of them at
/// once, so a short run costs no per-threshold loop overhead.
#[inline(always)]
pub(crate) fn count_few<T: Score>(
    kept: &[T],
    thr: &[T],
    l: usize,
    n_langs: usize,
    ge: &mut [u32],
    gt: &mut [u32],
) {
    for (c, chunk) in thr.chunks(LANES).enumerate() {
        // Padding lanes hold the first threshold; their counts are not written back.
        let mut t = [chunk[0]; LANES];
        t[..chunk.len()].copy_from_slice(chunk);
        let mut n_ge = [0u32; LANES];
        let mut n_gt = [0u32; LANES];
        for &x in kept {
            for i in 0..LANES {
                n_ge[i] += u32::from(x >= t[i]);
                n_gt[i] += u32::from(x > t[i]);
            }
        }
        for i in 0..chunk.len() {
            let j = c * LANES + i;
            ge[j * n_langs + l] += n_ge[i];
            gt[j * n_langs + l] += n_gt[i];
        }
    }
}

/// Adds to `ge`/`gt` (`k x L`, row-major, zeroed by the caller) the counts of one score row; false if a value is not finite.
///
/// Only candidates scoring at least the lowest relevant score `t_min` can count for any
/// threshold, so each language slice is first compacted to those (one comparison per score,
/// AVX-512 compress where the CPU has it) and the `2 k` comparisons run over the survivors
/// only. For a useful retriever the relevant candidates rank high and few scores survive; when
/// most do (near-random scores), the row switches to counting the slices directly.
#[inline(always)]
fn count_row<T: Score, const AVX512: bool>(
    row: &[T],
    offsets: &[usize],
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
    buf: &mut Vec<T>,
) -> bool {
    let n_langs = offsets.len() - 1;
    let t_min = lowest(thr);
    let mut compact = true;
    let mut finite = true;
    for l in 0..n_langs {
        let slice = &row[offsets[l]..offsets[l + 1]];
        finite &=
            count_slice::<T, AVX512>(slice, l, n_langs, thr, t_min, &mut compact, buf, ge, gt);
    }
    finite
}

/// The lowest threshold: no score below it counts for any threshold. NaN thresholds are
/// skipped unless the first is NaN; either way the NaN score is in the row itself, where the
/// finiteness check reports it (a NaN `t_min` keeps every score). `+inf` when `thr` is empty.
#[inline(always)]
pub(crate) fn lowest<T: Score>(thr: &[T]) -> T {
    match thr.first() {
        Some(&first) => thr.iter().fold(first, |m, &t| if t < m { t } else { m }),
        None => T::INFINITY,
    }
}

/// Adds to `ge`/`gt` the counts of language `l` over `slice` (a language's columns of a row,
/// or part of them) and returns whether its scores are all finite. While `compact` holds, the
/// slice is first compacted to the scores not below `t_min` (see [`count_row`]); a slice of
/// at least 256 scores of which most survive turns `compact` off for the rest of the row.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn count_slice<T: Score, const AVX512: bool>(
    slice: &[T],
    l: usize,
    n_langs: usize,
    thr: &[T],
    t_min: T,
    compact: &mut bool,
    buf: &mut Vec<T>,
    ge: &mut [u32],
    gt: &mut [u32],
) -> bool {
    if thr.is_empty() {
        return T::all_finite(slice);
    }
    if !*compact {
        for (j, &t) in thr.iter().enumerate() {
            let (a, b) = count_ge_gt(slice, t);
            ge[j * n_langs + l] += a;
            gt[j * n_langs + l] += b;
        }
        return T::all_finite(slice);
    }
    if buf.len() < slice.len() + COMPACT_PAD {
        buf.resize(slice.len() + COMPACT_PAD, t_min);
    }
    let (n, ok) = if AVX512 {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `AVX512` is only true in AVX-512 builds chosen after run-time detection,
            // and `buf` was sized just above.
            unsafe { T::compact_avx512(slice, t_min, buf) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            T::compact(slice, t_min, buf)
        }
    } else {
        T::compact(slice, t_min, buf)
    };
    // Most scores survive: compaction does not pay on this row.
    if 4 * n > 3 * slice.len() && slice.len() >= 256 {
        *compact = false;
    }
    count_few(&buf[..n], thr, l, n_langs, ge, gt);
    ok
}

/// The error for a row whose scores are not all finite: the first offending value, its
/// column being `first_col` plus its index in `values`.
pub(crate) fn non_finite<T: Score>(values: &[T], row: usize, first_col: usize) -> CoreError {
    let (col, value) = values
        .iter()
        .enumerate()
        .find(|(_, x)| !x.finite())
        .map_or((first_col, f64::NAN), |(i, x)| (first_col + i, x.as_f64()));
    CoreError::NonFinite { row, col, value }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn count_row_avx2<T: Score>(
    row: &[T],
    offsets: &[usize],
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
    buf: &mut Vec<T>,
) -> bool {
    count_row::<T, false>(row, offsets, thr, ge, gt, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,popcnt")]
fn count_row_avx512<T: Score>(
    row: &[T],
    offsets: &[usize],
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
    buf: &mut Vec<T>,
) -> bool {
    count_row::<T, true>(row, offsets, thr, ge, gt, buf)
}

/// Dispatches to an AVX-512 or AVX2 build of the same loop when the CPU has it.
fn count_row_dispatch<T: Score>(
    row: &[T],
    offsets: &[usize],
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
    buf: &mut Vec<T>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            // SAFETY: the CPU supports these AVX-512 subsets (checked just above).
            return unsafe { count_row_avx512(row, offsets, thr, ge, gt, buf) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { count_row_avx2(row, offsets, thr, ge, gt, buf) };
        }
    }
    count_row::<T, false>(row, offsets, thr, ge, gt, buf)
}

/// Reusable per-task buffers (no allocation per row once warmed up).
pub(crate) struct Scratch<T> {
    pub(crate) cols: Vec<usize>,
    pub(crate) thr: Vec<T>,
    pub(crate) ge: Vec<u32>,
    pub(crate) gt: Vec<u32>,
    pub(crate) n_ge: Vec<u32>,
    pub(crate) rank: Vec<u32>,
    pub(crate) nrel: Vec<u32>,
    pub(crate) buf: Vec<T>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            cols: Vec::new(),
            thr: Vec::new(),
            ge: Vec::new(),
            gt: Vec::new(),
            n_ge: Vec::new(),
            rank: Vec::new(),
            nrel: Vec::new(),
            buf: Vec::new(),
        }
    }
}

/// The outputs of one row.
pub(crate) struct RowSink<'a> {
    pub(crate) n_rel: &'a mut u32,
    pub(crate) ap: &'a mut f64,
    pub(crate) ap_at_k: &'a mut f64,
    pub(crate) rank_distance: &'a mut f64,
    pub(crate) recall: &'a mut [f64],
    pub(crate) lang_ap: &'a mut [f64],
    pub(crate) lang_ap_at_k: &'a mut [f64],
    pub(crate) lang_recall: &'a mut [f64],
}

/// AP, AP@K and recall@K of a relevant set whose members have, per member `j`, the number of
/// relevant members scoring at least as high (`nrel_ge[j]`), the number of candidates scoring at
/// least as high (`n_ge[j]`) and the rank (`rank[j]`).
fn set_metrics(
    nrel_ge: &[u32],
    n_ge: &[u32],
    rank: &[u32],
    spec: &Spec,
    recall_out: &mut [f64],
) -> (f64, f64) {
    let k = nrel_ge.len() as f64;
    let mut ap = 0.0;
    let mut ap_k = 0.0;
    for j in 0..nrel_ge.len() {
        let p = f64::from(nrel_ge[j]) / f64::from(n_ge[j]);
        ap += p;
        if n_ge[j] as usize <= spec.map_k {
            ap_k += p;
        }
    }
    let norm = match spec.map_norm {
        MapNorm::R => k,
        MapNorm::MinKR => k.min(spec.map_k as f64),
    };
    for (out, &kk) in recall_out.iter_mut().zip(&spec.recall_ks) {
        let hits = rank.iter().filter(|&&r| r as usize <= kk).count();
        *out = hits as f64 / k;
    }
    (ap / k, ap_k / norm)
}

/// Fills `sc.n_ge`, `sc.rank`, `sc.nrel` for the relevant members `members` (indices into
/// `sc.thr`), counting over the languages `langs` (one language, or all).
fn member_counts<T: Score>(
    sc: &mut Scratch<T>,
    members: std::ops::Range<usize>,
    lang: Option<usize>,
    n_langs: usize,
) {
    sc.n_ge.clear();
    sc.rank.clear();
    sc.nrel.clear();
    for j in members.clone() {
        let (ge, gt) = match lang {
            Some(l) => (sc.ge[j * n_langs + l], sc.gt[j * n_langs + l]),
            None => (
                sc.ge[j * n_langs..(j + 1) * n_langs].iter().sum(),
                sc.gt[j * n_langs..(j + 1) * n_langs].iter().sum(),
            ),
        };
        sc.n_ge.push(ge);
        sc.rank.push(1 + gt);
        let t = sc.thr[j];
        sc.nrel
            .push(sc.thr[members.clone()].iter().filter(|&&x| x >= t).count() as u32);
    }
}

/// Sets `sc.cols` to the relevant columns of question `q`, sorted and without repeats (columns
/// are grouped by language, so each language's relevant members form one contiguous run), and
/// zeroes the `k x L` counts.
pub(crate) fn relevant_columns<T>(
    sc: &mut Scratch<T>,
    rel: &Relevance<'_>,
    q: usize,
    n_langs: usize,
) {
    let (a, b) = (rel.indptr[q] as usize, rel.indptr[q + 1] as usize);
    sc.cols.clear();
    sc.cols
        .extend(rel.indices[a..b].iter().map(|&c| c as usize));
    sc.cols.sort_unstable();
    sc.cols.dedup();
    let k = sc.cols.len();
    sc.ge.clear();
    sc.ge.resize(k * n_langs, 0);
    sc.gt.clear();
    sc.gt.resize(k * n_langs, 0);
}

#[allow(clippy::too_many_arguments)]
fn row_metrics<T: Score>(
    row: &[T],
    q: usize,
    row_in_block: usize,
    rel: &Relevance<'_>,
    layout: &Layout,
    spec: &Spec,
    sc: &mut Scratch<T>,
    out: RowSink<'_>,
) -> CoreResult<()> {
    relevant_columns(sc, rel, q, layout.n_langs());
    sc.thr.clear();
    sc.thr.extend(sc.cols.iter().map(|&c| row[c]));
    if !count_row_dispatch(
        row,
        &layout.offsets,
        &sc.thr,
        &mut sc.ge,
        &mut sc.gt,
        &mut sc.buf,
    ) {
        // Slow path only on error: find the first offending value for the message.
        return Err(non_finite(row, row_in_block, 0));
    }
    finish_row(sc, layout, spec, out);
    Ok(())
}

/// Metrics of one row from its relevant columns (`sc.cols`, sorted), their scores (`sc.thr`)
/// and the `ge`/`gt` counts (`k x L`).
pub(crate) fn finish_row<T: Score>(
    sc: &mut Scratch<T>,
    layout: &Layout,
    spec: &Spec,
    out: RowSink<'_>,
) {
    let n_langs = layout.n_langs();
    let n_ks = spec.recall_ks.len();
    let k = sc.cols.len();
    let nan = f64::NAN;
    *out.n_rel = k as u32;
    *out.ap = nan;
    *out.ap_at_k = nan;
    *out.rank_distance = nan;
    out.recall.fill(nan);
    out.lang_ap.fill(nan);
    out.lang_ap_at_k.fill(nan);
    out.lang_recall.fill(nan);
    if k == 0 {
        return;
    }

    // Pooled setting.
    member_counts(sc, 0..k, None, n_langs);
    let (ap, ap_k) = set_metrics(&sc.nrel, &sc.n_ge, &sc.rank, spec, out.recall);
    *out.ap = ap;
    *out.ap_at_k = ap_k;
    let (mn, mx) = sc
        .rank
        .iter()
        .fold((u32::MAX, 0u32), |(a, b), &r| (a.min(r), b.max(r)));
    *out.rank_distance = f64::from(mx - mn);

    // One setting per candidate language that holds a relevant candidate.
    let mut start = 0;
    while start < k {
        let l = layout.lang_of(sc.cols[start]);
        let end = start + sc.cols[start..].partition_point(|&c| c < layout.offsets[l + 1]);
        member_counts(sc, start..end, Some(l), n_langs);
        let (ap, ap_k) = set_metrics(
            &sc.nrel,
            &sc.n_ge,
            &sc.rank,
            spec,
            &mut out.lang_recall[l * n_ks..(l + 1) * n_ks],
        );
        out.lang_ap[l] = ap;
        out.lang_ap_at_k[l] = ap_k;
        start = end;
    }
}

/// Rows handled by one parallel task.
const ROWS_PER_TASK: usize = 32;

/// Per-question metrics of the score rows `first_row..first_row + n_rows` (row-major `scores`,
/// `n_rows x layout.n_candidates()`), against relevance `rel` (which covers all questions).
pub fn query_metrics<T: Score>(
    scores: &[T],
    n_rows: usize,
    first_row: usize,
    rel: &Relevance<'_>,
    layout: &Layout,
    spec: &Spec,
) -> CoreResult<QueryMetrics> {
    spec.validate()?;
    let n_cols = layout.n_candidates();
    rel.validate(n_cols)?;
    if scores.len() != n_rows.saturating_mul(n_cols) {
        return Err(CoreError::shape(
            "scores",
            format!(
                "has {} values, expected {n_rows} x {n_cols} (questions x candidates)",
                scores.len()
            ),
        ));
    }
    rel.check_rows("scores", first_row, n_rows)?;
    if n_cols == 0 {
        return Err(CoreError::shape("scores", "has no candidate columns"));
    }
    let n_langs = layout.n_langs();
    let n_ks = spec.recall_ks.len();
    in_tasks(
        n_rows,
        n_langs,
        n_ks,
        ROWS_PER_TASK,
        Scratch::<T>::default,
        |sc, task, out| {
            let first = task * ROWS_PER_TASK;
            for i in 0..out.rows() {
                let local = first + i;
                let row = &scores[local * n_cols..(local + 1) * n_cols];
                row_metrics(
                    row,
                    first_row + local,
                    local,
                    rel,
                    layout,
                    spec,
                    sc,
                    out.sink(i),
                )?;
            }
            Ok(())
        },
    )
}

/// The output slices of one parallel task: `rows()` consecutive questions.
pub(crate) struct TaskOut<'a> {
    n_langs: usize,
    n_ks: usize,
    n_rel: &'a mut [u32],
    ap: &'a mut [f64],
    ap_at_k: &'a mut [f64],
    recall: &'a mut [f64],
    rank_distance: &'a mut [f64],
    lang_ap: &'a mut [f64],
    lang_ap_at_k: &'a mut [f64],
    lang_recall: &'a mut [f64],
}

impl TaskOut<'_> {
    /// Number of questions of the task.
    pub(crate) fn rows(&self) -> usize {
        self.n_rel.len()
    }

    /// The outputs of the task's `i`-th question.
    pub(crate) fn sink(&mut self, i: usize) -> RowSink<'_> {
        let (nl, nk) = (self.n_langs, self.n_ks);
        RowSink {
            n_rel: &mut self.n_rel[i],
            ap: &mut self.ap[i],
            ap_at_k: &mut self.ap_at_k[i],
            rank_distance: &mut self.rank_distance[i],
            recall: slice_mut(self.recall, i, nk),
            lang_ap: slice_mut(self.lang_ap, i, nl),
            lang_ap_at_k: slice_mut(self.lang_ap_at_k, i, nl),
            lang_recall: slice_mut(self.lang_recall, i, nl * nk),
        }
    }
}

/// Allocates the metrics of `n_rows` questions and fills them in parallel tasks of
/// `rows_per_task` questions: `f(state, task, out)`, with one `init()` state per worker.
pub(crate) fn in_tasks<S, I, F>(
    n_rows: usize,
    n_langs: usize,
    n_ks: usize,
    rows_per_task: usize,
    init: I,
    f: F,
) -> CoreResult<QueryMetrics>
where
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize, &mut TaskOut<'_>) -> CoreResult<()> + Sync + Send,
{
    let mut m = QueryMetrics {
        n_langs,
        n_ks,
        n_relevant: vec![0; n_rows],
        ap: vec![0.0; n_rows],
        ap_at_k: vec![0.0; n_rows],
        // At least one slot a question, so that every output yields one chunk a task (an
        // empty vector would yield none and end the zip early); cut back below.
        recall: vec![0.0; n_rows * n_ks.max(1)],
        rank_distance: vec![0.0; n_rows],
        lang_ap: vec![0.0; n_rows * n_langs],
        lang_ap_at_k: vec![0.0; n_rows * n_langs],
        lang_recall: vec![0.0; n_rows * (n_langs * n_ks).max(1)],
    };
    let r = rows_per_task;
    (
        m.n_relevant.par_chunks_mut(r),
        m.ap.par_chunks_mut(r),
        m.ap_at_k.par_chunks_mut(r),
        m.recall.par_chunks_mut(r * n_ks.max(1)),
        m.rank_distance.par_chunks_mut(r),
        m.lang_ap.par_chunks_mut(r * n_langs.max(1)),
        m.lang_ap_at_k.par_chunks_mut(r * n_langs.max(1)),
        m.lang_recall.par_chunks_mut(r * (n_langs * n_ks).max(1)),
    )
        .into_par_iter()
        .enumerate()
        .try_for_each_init(init, |st, (task, chunk)| {
            let (n_rel, ap, ap_at_k, recall, rank_distance, lang_ap, lang_ap_at_k, lang_recall) =
                chunk;
            let mut out = TaskOut {
                n_langs,
                n_ks,
                n_rel,
                ap,
                ap_at_k,
                recall,
                rank_distance,
                lang_ap,
                lang_ap_at_k,
                lang_recall,
            };
            f(st, task, &mut out)
        })?;
    m.recall.truncate(n_rows * n_ks);
    m.lang_recall.truncate(n_rows * n_langs * n_ks);
    Ok(m)
}

/// The `i`-th run of `width` values (empty when `width` is 0).
fn slice_mut(v: &mut [f64], i: usize, width: usize) -> &mut [f64] {
    &mut v[i * width..(i + 1) * width]
}

/// Means per setting. NaN where a setting has no question (its count is 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// Number of languages L.
    pub n_langs: usize,
    /// Number of recall cutoffs.
    pub n_ks: usize,
    /// Questions per (query language, candidate language), `L x L`.
    pub pair_n: Vec<u64>,
    /// mAP per pair, `L x L`.
    pub pair_map: Vec<f64>,
    /// mAP@K per pair, `L x L`.
    pub pair_map_at_k: Vec<f64>,
    /// Mean recall per pair, `L x L x n_ks`.
    pub pair_recall: Vec<f64>,
    /// Questions per query language in the pooled setting.
    pub multi_n: Vec<u64>,
    /// Pooled mAP per query language.
    pub multi_map: Vec<f64>,
    /// Pooled mAP@K per query language.
    pub multi_map_at_k: Vec<f64>,
    /// Pooled recall per query language, `L x n_ks`.
    pub multi_recall: Vec<f64>,
    /// Mean rank distance per query language.
    pub rank_distance: Vec<f64>,
    /// Pooled mAP over all questions (micro average).
    pub multi_micro: f64,
}

fn mean_into(sum: &mut [f64], n: &[u64]) {
    for (s, &c) in sum.iter_mut().zip(n) {
        *s = if c == 0 { f64::NAN } else { *s / c as f64 };
    }
}

/// Averages per-question metrics into per-setting means. `query_lang[i]` is the language index
/// (`0..L`) of question `i`.
pub fn aggregate(m: &QueryMetricsView<'_>, query_lang: &[i64]) -> CoreResult<Aggregate> {
    let (nl, nk) = (m.n_langs, m.n_ks);
    let n = query_lang.len();
    let checks: [(&'static str, usize, usize); 7] = [
        ("ap", m.ap.len(), n),
        ("ap_at_k", m.ap_at_k.len(), n),
        ("recall", m.recall.len(), n * nk),
        ("rank_distance", m.rank_distance.len(), n),
        ("lang_ap", m.lang_ap.len(), n * nl),
        ("lang_ap_at_k", m.lang_ap_at_k.len(), n * nl),
        ("lang_recall", m.lang_recall.len(), n * nl * nk),
    ];
    for (field, got, want) in checks {
        if got != want {
            return Err(CoreError::shape(
                field,
                format!("has {got} values, expected {want} for {n} questions"),
            ));
        }
    }
    let mut a = Aggregate {
        n_langs: nl,
        n_ks: nk,
        pair_n: vec![0; nl * nl],
        pair_map: vec![0.0; nl * nl],
        pair_map_at_k: vec![0.0; nl * nl],
        pair_recall: vec![0.0; nl * nl * nk],
        multi_n: vec![0; nl],
        multi_map: vec![0.0; nl],
        multi_map_at_k: vec![0.0; nl],
        multi_recall: vec![0.0; nl * nk],
        rank_distance: vec![0.0; nl],
        multi_micro: 0.0,
    };
    let mut micro_n = 0u64;
    for (i, &lq) in query_lang.iter().enumerate() {
        if lq < 0 || lq as usize >= nl {
            return Err(CoreError::value(
                "query_lang",
                format!("entry {i} is {lq}, outside 0..{nl}"),
            ));
        }
        let lq = lq as usize;
        if !m.ap[i].is_nan() {
            a.multi_n[lq] += 1;
            a.multi_map[lq] += m.ap[i];
            a.multi_map_at_k[lq] += m.ap_at_k[i];
            a.rank_distance[lq] += m.rank_distance[i];
            for k in 0..nk {
                a.multi_recall[lq * nk + k] += m.recall[i * nk + k];
            }
            a.multi_micro += m.ap[i];
            micro_n += 1;
        }
        for lc in 0..nl {
            let v = m.lang_ap[i * nl + lc];
            if v.is_nan() {
                continue;
            }
            let p = lq * nl + lc;
            a.pair_n[p] += 1;
            a.pair_map[p] += v;
            a.pair_map_at_k[p] += m.lang_ap_at_k[i * nl + lc];
            for k in 0..nk {
                a.pair_recall[p * nk + k] += m.lang_recall[(i * nl + lc) * nk + k];
            }
        }
    }
    mean_into(&mut a.pair_map, &a.pair_n);
    mean_into(&mut a.pair_map_at_k, &a.pair_n);
    let pair_n_k: Vec<u64> = a
        .pair_n
        .iter()
        .flat_map(|&c| std::iter::repeat_n(c, nk))
        .collect();
    mean_into(&mut a.pair_recall, &pair_n_k);
    mean_into(&mut a.multi_map, &a.multi_n);
    mean_into(&mut a.multi_map_at_k, &a.multi_n);
    mean_into(&mut a.rank_distance, &a.multi_n);
    let multi_n_k: Vec<u64> = a
        .multi_n
        .iter()
        .flat_map(|&c| std::iter::repeat_n(c, nk))
        .collect();
    mean_into(&mut a.multi_recall, &multi_n_k);
    a.multi_micro = if micro_n == 0 {
        f64::NAN
    } else {
        a.multi_micro / micro_n as f64
    };
    Ok(a)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            recall_ks: vec![1, 2],
            map_k: 2,
            map_norm: MapNorm::R,
        }
    }

    /// Plain full-sort AP with sklearn's tie rule.
    fn ap_ref(scores: &[f64], rel: &[bool]) -> f64 {
        let k = rel.iter().filter(|&&r| r).count() as f64;
        let mut total = 0.0;
        for (i, &s) in scores.iter().enumerate() {
            if !rel[i] {
                continue;
            }
            let n_ge = scores.iter().filter(|&&x| x >= s).count() as f64;
            let r_ge = scores
                .iter()
                .zip(rel)
                .filter(|(&x, &r)| r && x >= s)
                .count() as f64;
            total += r_ge / n_ge;
        }
        total / k
    }

    #[test]
    fn ap_with_ties_matches_definition() {
        // Two languages: columns 0..3 and 3..5.
        let layout = Layout::new(&[0, 3, 5]).unwrap();
        let scores = vec![0.9, 0.5, 0.5, 0.5, 0.1, 0.2, 0.2, 0.9, 0.3, 0.2];
        let indptr = [0i64, 2, 3];
        let indices = [1i64, 3, 4];
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        let m = query_metrics(&scores, 2, 0, &rel, &layout, &spec()).unwrap();
        let r0 = [false, true, false, true, false];
        assert!((m.ap[0] - ap_ref(&scores[0..5], &r0)).abs() < 1e-15);
        // Row 0, language 0: relevant column 1 (0.5) tied with column 2: AP = 1/3.
        assert!((m.lang_ap[0] - 1.0 / 3.0).abs() < 1e-15);
        // Row 0, language 1: relevant column 3 (0.5) first among {0.5, 0.1}: AP = 1.
        assert_eq!(m.lang_ap[1], 1.0);
        // Ranks 2 and 2 (ties share the best rank): distance 0.
        assert_eq!(m.rank_distance[0], 0.0);
        // Row 1: relevant only in language 1; language 0 is NaN.
        assert!(m.lang_ap[2].is_nan());
        let r1 = [false, false, false, false, true];
        assert!((m.ap[1] - ap_ref(&scores[5..10], &r1)).abs() < 1e-15);
        // recall@1 of row 1 pooled: rank of column 4 (0.2) is 1 + #{0.9, 0.3} = 3.
        assert_eq!(m.recall[2], 0.0);
        assert_eq!(m.rank_distance[1], 0.0);
    }

    /// Deterministic pseudo-random values in [0, 1) (a 64-bit LCG).
    pub(crate) fn lcg(seed: u64, n: usize) -> Vec<f64> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }

    fn check_compact<T: Score + std::fmt::Debug>(vals: &[T], t: T) {
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        let want: Vec<T> = vals.iter().copied().filter(|&x| !(x < t)).collect();
        let want_finite = vals.iter().all(|x| x.finite());
        let mut buf = vec![t; vals.len() + COMPACT_PAD];
        let (n, ok) = T::compact(vals, t, &mut buf);
        assert_eq!(ok, want_finite);
        assert_eq!(format!("{:?}", &buf[..n]), format!("{want:?}"));
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            let mut buf = vec![t; vals.len() + COMPACT_PAD];
            // SAFETY: AVX-512F checked; `buf` has the padding.
            let (n, ok) = unsafe { T::compact_avx512(vals, t, &mut buf) };
            assert_eq!(ok, want_finite);
            assert_eq!(format!("{:?}", &buf[..n]), format!("{want:?}"));
        }
    }

    #[test]
    fn compaction_keeps_exactly_the_scores_not_below_the_threshold() {
        let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0];
        for len in 0..70 {
            let mut v = lcg(len as u64, len);
            for x in v.iter_mut() {
                *x = *x * 2.0 - 1.0;
            }
            for t in [-2.0, -0.3, 0.0, 0.5, 2.0] {
                check_compact(&v, t);
                check_compact(&v.iter().map(|&x| x as f32).collect::<Vec<_>>(), t as f32);
            }
            // Each special value at each position (finiteness from the same pass, any lane).
            for pos in 0..len.min(20) {
                for sp in specials {
                    let mut w = v.clone();
                    w[pos] = sp;
                    check_compact(&w, 0.1);
                    check_compact(&w.iter().map(|&x| x as f32).collect::<Vec<_>>(), 0.1f32);
                }
            }
        }
    }

    #[test]
    fn compacted_and_direct_counting_agree_with_the_definition() {
        // 3 languages of 37, 50 and 64 candidates; 40 questions whose relevant candidates
        // score high (compaction stays on) or at random (it switches off), with ties.
        let layout = Layout::new(&[0, 37, 87, 151]).unwrap();
        let n = 151;
        let mut scores = Vec::new();
        let mut indptr = vec![0i64];
        let mut indices = Vec::new();
        for q in 0..40u64 {
            let mut row: Vec<f64> = lcg(100 + q, n)
                .iter()
                .map(|x| (x * 64.0).floor() / 64.0)
                .collect();
            let rel: Vec<usize> = lcg(200 + q, 1 + (q as usize % 5))
                .iter()
                .map(|x| (x * n as f64) as usize)
                .collect();
            for &c in &rel {
                if q % 2 == 0 {
                    row[c] = 0.9 + row[c] / 16.0;
                }
                indices.push(c as i64);
            }
            indptr.push(indices.len() as i64);
            scores.extend(row);
        }
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        let m = query_metrics(&scores, 40, 0, &rel, &layout, &spec()).unwrap();
        for q in 0..40 {
            let row = &scores[q * n..(q + 1) * n];
            let mut is_rel = vec![false; n];
            for &c in &indices[indptr[q] as usize..indptr[q + 1] as usize] {
                is_rel[c as usize] = true;
            }
            assert!((m.ap[q] - ap_ref(row, &is_rel)).abs() < 1e-12, "row {q}");
            for l in 0..3 {
                let (a, b) = (layout.offsets[l], layout.offsets[l + 1]);
                if is_rel[a..b].iter().any(|&r| r) {
                    let want = ap_ref(&row[a..b], &is_rel[a..b]);
                    assert!(
                        (m.lang_ap[q * 3 + l] - want).abs() < 1e-12,
                        "row {q} lang {l}"
                    );
                } else {
                    assert!(m.lang_ap[q * 3 + l].is_nan());
                }
            }
        }
    }

    #[test]
    fn non_finite_below_every_relevant_score_is_an_error() {
        // -inf and NaN far below the relevant score (dropped by compaction) are still found.
        let layout = Layout::new(&[0, 40]).unwrap();
        let indptr = [0i64, 1];
        let indices = [3i64];
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        for bad in [f32::NEG_INFINITY, f32::NAN, f32::INFINITY] {
            let mut row = vec![0.0f32; 40];
            row[3] = 1.0;
            row[33] = bad;
            let err = query_metrics(&row, 1, 0, &rel, &layout, &spec()).unwrap_err();
            assert!(matches!(
                err,
                CoreError::NonFinite {
                    row: 0,
                    col: 33,
                    ..
                }
            ));
        }
    }

    #[test]
    fn no_recall_cutoffs_still_gives_every_question() {
        let layout = Layout::new(&[0, 2, 4]).unwrap();
        let scores: Vec<f64> = lcg(9, 40 * 4);
        let indptr: Vec<i64> = (0..=40).collect();
        let indices: Vec<i64> = (0..40).map(|i| i % 4).collect();
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        let mut none = spec();
        none.recall_ks.clear();
        let a = query_metrics(&scores, 40, 0, &rel, &layout, &none).unwrap();
        let b = query_metrics(&scores, 40, 0, &rel, &layout, &spec()).unwrap();
        assert_eq!(a.ap, b.ap);
        assert_eq!(format!("{:?}", a.lang_ap), format!("{:?}", b.lang_ap));
        assert!(a.recall.is_empty() && a.lang_recall.is_empty());
    }

    #[test]
    fn non_finite_is_an_error() {
        let layout = Layout::new(&[0, 2]).unwrap();
        let indptr = [0i64, 1];
        let indices = [0i64];
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        let err = query_metrics(&[0.1f32, f32::NAN], 1, 0, &rel, &layout, &spec()).unwrap_err();
        assert!(matches!(err, CoreError::NonFinite { row: 0, col: 1, .. }));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let layout = Layout::new(&[0, 2]).unwrap();
        let indptr = [0i64, 1];
        let indices = [5i64];
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        let err = query_metrics(&[0.1f64, 0.2], 1, 0, &rel, &layout, &spec()).unwrap_err();
        assert!(err.to_string().starts_with("relevance_indices"));
        let indices = [0i64];
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        let err = query_metrics(&[0.1f64, 0.2, 0.3], 1, 0, &rel, &layout, &spec()).unwrap_err();
        assert!(err.to_string().starts_with("scores"));
        assert!(Layout::new(&[0, 3, 2]).is_err());
        assert!(MapNorm::parse("bogus").is_err());
        assert_eq!(MapNorm::parse("min(k, R)").unwrap(), MapNorm::MinKR);
    }

    #[test]
    fn aggregate_means_skip_empty_settings() {
        let layout = Layout::new(&[0, 1, 2]).unwrap();
        let scores = vec![0.9, 0.1, 0.2, 0.8];
        let indptr = [0i64, 1, 2];
        let indices = [0i64, 1];
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        let m = query_metrics(&scores, 2, 0, &rel, &layout, &spec()).unwrap();
        let a = aggregate(&m.view(), &[0, 1]).unwrap();
        assert_eq!(a.pair_n, vec![1, 0, 0, 1]);
        assert!(a.pair_map[1].is_nan());
        assert_eq!(a.pair_map[0], 1.0);
        assert_eq!(a.multi_micro, 1.0);
        assert!(aggregate(&m.view(), &[0, 2]).is_err());
    }
}
