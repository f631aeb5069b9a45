//! Types of the evaluator: score elements, the metric spec, the candidate layout, the
//! relevance (CSR) and the per-question metrics.

use crate::error::{CoreError, CoreResult};

/// A score element type (f32 or f64).
pub trait Score: Copy + PartialOrd + Send + Sync + 'static {
    /// Positive infinity.
    const INFINITY: Self;
    /// Negative infinity.
    const NEG_INFINITY: Self;
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
    /// [`Score::compact`] with AVX2 (a permutation from a lookup table per 8 lanes); the
    /// portable loop where there is no AVX2 version (f64).
    ///
    /// # Safety
    /// The CPU must support AVX2 and POPCNT, and `buf` must hold at least
    /// `s.len() + COMPACT_PAD` values.
    #[cfg(target_arch = "x86_64")]
    unsafe fn compact_avx2(s: &[Self], t: Self, buf: &mut [Self]) -> (usize, bool) {
        Self::compact(s, t, buf)
    }
}

/// For each 8-bit keep mask, the lane indices of the kept lanes first (AVX2 compaction).
#[cfg(target_arch = "x86_64")]
static COMPRESS_LUT: [[u32; 8]; 256] = {
    let mut lut = [[0u32; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let mut k = 0;
        let mut lane = 0;
        while lane < 8 {
            if m & (1 << lane) != 0 {
                lut[m][k] = lane as u32;
                k += 1;
            }
            lane += 1;
        }
        m += 1;
    }
    lut
};

/// Extra room at the end of a compaction buffer (whole-vector stores may run past the values
/// kept).
pub(crate) const COMPACT_PAD: usize = 16;

impl Score for f32 {
    const INFINITY: Self = f32::INFINITY;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
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
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt")]
    unsafe fn compact_avx2(s: &[Self], t: Self, buf: &mut [Self]) -> (usize, bool) {
        use std::arch::x86_64::*;
        debug_assert!(buf.len() >= s.len() + COMPACT_PAD);
        let tv = _mm256_set1_ps(t);
        let abs = _mm256_set1_epi32(0x7fff_ffff);
        let mut mx = _mm256_setzero_si256();
        let mut n = 0usize;
        let out = buf.as_mut_ptr();
        let chunks = s.len() / 8;
        for c in 0..chunks {
            // SAFETY: `c * 8 + 8 <= s.len()`; the store writes 8 values at `n <= c * 8`, inside
            // `buf` (at least `s.len() + 16` long); the table row is 8 u32.
            unsafe {
                let x = _mm256_loadu_ps(s.as_ptr().add(c * 8));
                let keep = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NLT_UQ>(x, tv)) as usize;
                let perm = _mm256_loadu_si256(COMPRESS_LUT[keep].as_ptr().cast());
                _mm256_storeu_ps(out.add(n), _mm256_permutevar8x32_ps(x, perm));
                n += keep.count_ones() as usize;
                mx = _mm256_max_epu32(mx, _mm256_and_si256(_mm256_castps_si256(x), abs));
            }
        }
        let mut lanes = [0u32; 8];
        // SAFETY: 8 u32 written to an 8-u32 array.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), mx) };
        let head_ok = lanes.iter().all(|&v| v < 0x7f80_0000);
        let done = chunks * 8;
        let (m, tail_ok) = Self::compact(&s[done..], t, &mut buf[n..]);
        (n + m, head_ok && tail_ok)
    }
}

impl Score for f64 {
    const INFINITY: Self = f64::INFINITY;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
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

/// The most languages a layout (and an aggregate) may have: far above any retrieval set's,
/// and low enough that the `L x L` setting matrices always fit in memory.
pub const MAX_LANGS: usize = 4096;

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
        if offsets.len() - 1 > MAX_LANGS {
            return Err(CoreError::shape(
                "lang_offsets",
                format!("at most {MAX_LANGS} languages, got {}", offsets.len() - 1),
            ));
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
