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
    /// Whether the value is neither NaN nor infinite.
    fn finite(self) -> bool;
    /// The value as f64 (for error messages).
    fn as_f64(self) -> f64;
}

impl Score for f32 {
    #[inline(always)]
    fn finite(self) -> bool {
        self.is_finite()
    }
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Score for f64 {
    #[inline(always)]
    fn finite(self) -> bool {
        self.is_finite()
    }
    fn as_f64(self) -> f64 {
        self
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
    offsets: Vec<usize>,
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
    fn lang_of(&self, col: usize) -> usize {
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
fn count_ge_gt<T: Score>(s: &[T], t: T) -> (u32, u32) {
    let mut ge = 0u32;
    let mut gt = 0u32;
    for &x in s {
        ge += u32::from(x >= t);
        gt += u32::from(x > t);
    }
    (ge, gt)
}

/// Whether every value of a slice is finite (no early exit, so it vectorises).
#[inline(always)]
fn all_finite<T: Score>(s: &[T]) -> bool {
    s.iter().fold(true, |acc, &x| acc & x.finite())
}

/// Fills `ge`/`gt` (`k x L`, row-major) for one score row; false if a value is not finite.
#[inline(always)]
fn count_row<T: Score>(
    row: &[T],
    offsets: &[usize],
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
) -> bool {
    let n_langs = offsets.len() - 1;
    let mut finite = true;
    for l in 0..n_langs {
        let slice = &row[offsets[l]..offsets[l + 1]];
        finite &= all_finite(slice);
        for (j, &t) in thr.iter().enumerate() {
            let (a, b) = count_ge_gt(slice, t);
            ge[j * n_langs + l] = a;
            gt[j * n_langs + l] = b;
        }
    }
    finite
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn count_row_avx2<T: Score>(
    row: &[T],
    offsets: &[usize],
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
) -> bool {
    count_row(row, offsets, thr, ge, gt)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn count_row_avx512<T: Score>(
    row: &[T],
    offsets: &[usize],
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
) -> bool {
    count_row(row, offsets, thr, ge, gt)
}

/// Dispatches to an AVX-512 or AVX2 build of the same loop when the CPU has it.
fn count_row_dispatch<T: Score>(
    row: &[T],
    offsets: &[usize],
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU supports these AVX-512 subsets (checked just above).
            return unsafe { count_row_avx512(row, offsets, thr, ge, gt) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { count_row_avx2(row, offsets, thr, ge, gt) };
        }
    }
    count_row(row, offsets, thr, ge, gt)
}

/// Reusable per-task buffers (no allocation per row once warmed up).
struct Scratch<T> {
    cols: Vec<usize>,
    thr: Vec<T>,
    ge: Vec<u32>,
    gt: Vec<u32>,
    n_ge: Vec<u32>,
    rank: Vec<u32>,
    nrel: Vec<u32>,
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
        }
    }
}

/// The outputs of one row.
struct RowSink<'a> {
    n_rel: &'a mut u32,
    ap: &'a mut f64,
    ap_at_k: &'a mut f64,
    rank_distance: &'a mut f64,
    recall: &'a mut [f64],
    lang_ap: &'a mut [f64],
    lang_ap_at_k: &'a mut [f64],
    lang_recall: &'a mut [f64],
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
    let n_langs = layout.n_langs();
    let n_ks = spec.recall_ks.len();
    // Relevant columns, sorted: columns are grouped by language, so each language's
    // relevant members form one contiguous run.
    let (a, b) = (rel.indptr[q] as usize, rel.indptr[q + 1] as usize);
    sc.cols.clear();
    sc.cols
        .extend(rel.indices[a..b].iter().map(|&c| c as usize));
    sc.cols.sort_unstable();
    sc.cols.dedup();
    let k = sc.cols.len();
    sc.thr.clear();
    sc.thr.extend(sc.cols.iter().map(|&c| row[c]));
    sc.ge.clear();
    sc.ge.resize(k * n_langs, 0);
    sc.gt.clear();
    sc.gt.resize(k * n_langs, 0);
    if !count_row_dispatch(row, &layout.offsets, &sc.thr, &mut sc.ge, &mut sc.gt) {
        // Slow path only on error: find the first offending value for the message.
        let (col, v) = row
            .iter()
            .enumerate()
            .find(|(_, x)| !x.finite())
            .map_or((0, f64::NAN), |(i, x)| (i, x.as_f64()));
        return Err(CoreError::NonFinite {
            row: row_in_block,
            col,
            value: v,
        });
    }
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
        return Ok(());
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
    Ok(())
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
    if first_row + n_rows > rel.n_questions() {
        return Err(CoreError::shape(
            "scores",
            format!(
                "rows {first_row}..{} exceed the {} questions of the relevance",
                first_row + n_rows,
                rel.n_questions()
            ),
        ));
    }
    if n_cols == 0 {
        return Err(CoreError::shape("scores", "has no candidate columns"));
    }
    let n_langs = layout.n_langs();
    let n_ks = spec.recall_ks.len();
    let mut m = QueryMetrics {
        n_langs,
        n_ks,
        n_relevant: vec![0; n_rows],
        ap: vec![0.0; n_rows],
        ap_at_k: vec![0.0; n_rows],
        recall: vec![0.0; n_rows * n_ks],
        rank_distance: vec![0.0; n_rows],
        lang_ap: vec![0.0; n_rows * n_langs],
        lang_ap_at_k: vec![0.0; n_rows * n_langs],
        lang_recall: vec![0.0; n_rows * n_langs * n_ks],
    };
    let r = ROWS_PER_TASK;
    (
        scores.par_chunks(n_cols * r),
        m.n_relevant.par_chunks_mut(r),
        m.ap.par_chunks_mut(r),
        m.ap_at_k.par_chunks_mut(r),
        m.recall.par_chunks_mut(r * n_ks.max(1)),
        m.rank_distance.par_chunks_mut(r),
        m.lang_ap.par_chunks_mut(r * n_langs),
        m.lang_ap_at_k.par_chunks_mut(r * n_langs),
        m.lang_recall.par_chunks_mut(r * n_langs * n_ks.max(1)),
    )
        .into_par_iter()
        .enumerate()
        .try_for_each_init(Scratch::<T>::default, |sc, (task, chunk)| {
            let (s, n_rel, ap, ap_k, recall, rd, lang_ap, lang_ap_k, lang_recall) = chunk;
            for (i, row) in s.chunks(n_cols).enumerate() {
                let local = task * r + i;
                let sink = RowSink {
                    n_rel: &mut n_rel[i],
                    ap: &mut ap[i],
                    ap_at_k: &mut ap_k[i],
                    rank_distance: &mut rd[i],
                    recall: slice_mut(recall, i, n_ks),
                    lang_ap: &mut lang_ap[i * n_langs..(i + 1) * n_langs],
                    lang_ap_at_k: &mut lang_ap_k[i * n_langs..(i + 1) * n_langs],
                    lang_recall: slice_mut(lang_recall, i, n_langs * n_ks),
                };
                row_metrics(row, first_row + local, local, rel, layout, spec, sc, sink)?;
            }
            Ok(())
        })?;
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
mod tests {
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
