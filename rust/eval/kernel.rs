//! The row kernel: one question's counts turned into its metrics, over a block of score rows.

use super::*;
use crate::error::{CoreError, CoreResult};

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
        return Err(non_finite(row, q, 0)); // q: the question, not the row of the block
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

/// Checks a block of score rows (`n_rows x n_cols` values, the questions `first_row..`) against
/// the relevance: the shared input check of every row kernel.
pub(crate) fn check_score_block(
    n_values: usize,
    n_rows: usize,
    first_row: usize,
    n_cols: usize,
    rel: &Relevance<'_>,
) -> CoreResult<()> {
    rel.validate(n_cols)?;
    if n_values != n_rows.saturating_mul(n_cols) {
        return Err(CoreError::shape(
            "scores",
            format!("has {n_values} values, expected {n_rows} x {n_cols} (questions x candidates)"),
        ));
    }
    rel.check_rows("scores", first_row, n_rows)?;
    if n_cols == 0 {
        return Err(CoreError::shape("scores", "has no candidate columns"));
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
    check_score_block(scores.len(), n_rows, first_row, n_cols, rel)?;
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
                row_metrics(row, first_row + local, rel, layout, spec, sc, out.sink(i))?;
            }
            Ok(())
        },
    )
}
