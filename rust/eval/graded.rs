//! Graded-relevance metrics (BEIR / MIRACL style): nDCG@k and recall@k over the pooled ranking.
//!
//! For one question with relevant candidates `j` (gain `g_j > 0`, score `t_j`), the kernel counts
//! the candidates scoring `> t_j` (`gt_j`) and `>= t_j` (`ge_j`): candidate `j` sits somewhere in
//! the tie group of positions `gt_j + 1 ..= ge_j`. Ties are resolved by expectation over the
//! orders of each tie group (McSherry and Najork, ECIR 2008), which needs no tie-breaking rule
//! and, without ties, is the usual definition (trec_eval / pytrec_eval `ndcg_cut`, linear gain):
//!
//! * `DCG@k = sum_j g_j * E[1{pos_j <= k} / log2(pos_j + 1)]`, `pos_j` uniform over its group;
//! * `IDCG@k = sum_{i < min(k, R)} g_(i) / log2(i + 2)` with the gains sorted in decreasing order;
//! * `nDCG@k = DCG@k / IDCG@k`;
//! * `recall@k = (1 / R) * sum_j P(pos_j <= k)`.
//!
//! A question without relevant candidates gets NaN (left out of means, as trec_eval does).

use rayon::prelude::*;

use super::*;
use crate::error::{try_vec, CoreError, CoreResult};

/// nDCG@k and recall@k of each question of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct GradedMetrics {
    /// nDCG at the cutoff, one per question.
    pub ndcg: Vec<f64>,
    /// Recall at the cutoff, one per question.
    pub recall: Vec<f64>,
}

/// `E[1{pos <= k} / log2(pos + 1)]` for `pos` uniform over `lo..=hi` (1-based positions).
fn expected_discount(lo: u64, hi: u64, k: u64) -> f64 {
    let top = hi.min(k);
    if top < lo {
        return 0.0;
    }
    let s: f64 = (lo..=top).map(|p| 1.0 / ((p + 1) as f64).log2()).sum();
    s / (hi - lo + 1) as f64
}

/// `P(pos <= k)` for `pos` uniform over `lo..=hi`.
fn share_within(lo: u64, hi: u64, k: u64) -> f64 {
    let top = hi.min(k);
    if top < lo {
        return 0.0;
    }
    (top - lo + 1) as f64 / (hi - lo + 1) as f64
}

/// nDCG@`ndcg_k` and recall@`recall_k` of the score rows `first_row..first_row + n_rows`
/// (row-major, `n_rows x n_cols`); `gains[i]` is the gain of relevant entry `rel.indices[i]`
/// (all `> 0`, finite; a question's candidates without repeats). Rows in parallel.
#[allow(clippy::too_many_arguments)]
pub fn graded_metrics<T: Score>(
    scores: &[T],
    n_rows: usize,
    first_row: usize,
    n_cols: usize,
    rel: &Relevance<'_>,
    gains: &[f64],
    ndcg_k: usize,
    recall_k: usize,
) -> CoreResult<GradedMetrics> {
    check_score_block(scores.len(), n_rows, first_row, n_cols, rel)?;
    if gains.len() != rel.indices.len() {
        return Err(CoreError::shape(
            "gains",
            format!(
                "has {} values, expected one per relevance entry ({})",
                gains.len(),
                rel.indices.len()
            ),
        ));
    }
    if let Some(i) = gains.iter().position(|g| !(g.is_finite() && *g > 0.0)) {
        return Err(CoreError::value(
            "gains",
            format!("entry {i} is {}; gains must be finite and > 0", gains[i]),
        ));
    }
    if ndcg_k == 0 || recall_k == 0 {
        return Err(CoreError::value("k", "cutoffs must be >= 1"));
    }
    for q in first_row..first_row + n_rows {
        let (a, b) = (rel.indptr[q] as usize, rel.indptr[q + 1] as usize);
        let mut cols = rel.indices[a..b].to_vec();
        cols.sort_unstable();
        if cols.windows(2).any(|w| w[0] == w[1]) {
            return Err(CoreError::value(
                "relevance_indices",
                format!("question {q} lists a candidate twice (one gain per candidate)"),
            ));
        }
    }
    let offsets = [0usize, n_cols];
    let mut out = GradedMetrics {
        ndcg: try_vec("scores", &[n_rows], f64::NAN)?,
        recall: try_vec("scores", &[n_rows], f64::NAN)?,
    };
    out.ndcg
        .par_iter_mut()
        .zip(out.recall.par_iter_mut())
        .enumerate()
        .try_for_each_init(
            || {
                (
                    Vec::<T>::new(),
                    Vec::<T>::new(),
                    Vec::<u32>::new(),
                    Vec::<u32>::new(),
                )
            },
            |(buf, thr, ge, gt), (i, (ndcg, recall))| {
                let q = first_row + i;
                let row = &scores[i * n_cols..(i + 1) * n_cols];
                let (a, b) = (rel.indptr[q] as usize, rel.indptr[q + 1] as usize);
                thr.clear();
                thr.extend(rel.indices[a..b].iter().map(|&c| row[c as usize]));
                ge.clear();
                ge.resize(b - a, 0);
                gt.clear();
                gt.resize(b - a, 0);
                if !count_row_dispatch(row, &offsets, thr, ge, gt, buf) {
                    return Err(non_finite(row, q, 0));
                }
                if a == b {
                    return Ok(());
                }
                let (nk, rk) = (ndcg_k as u64, recall_k as u64);
                let mut dcg = 0.0;
                let mut hits = 0.0;
                for j in 0..b - a {
                    let (lo, hi) = (u64::from(gt[j]) + 1, u64::from(ge[j]));
                    dcg += gains[a + j] * expected_discount(lo, hi, nk);
                    hits += share_within(lo, hi, rk);
                }
                let mut g = gains[a..b].to_vec();
                g.sort_unstable_by(|x, y| y.total_cmp(x));
                let idcg: f64 = g
                    .iter()
                    .take(ndcg_k)
                    .enumerate()
                    .map(|(p, &x)| x / ((p + 2) as f64).log2())
                    .sum();
                *ndcg = dcg / idcg;
                *recall = hits / (b - a) as f64;
                Ok(())
            },
        )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_made_cases() {
        // one question, 5 candidates, no ties: ranking 0.9 (c2), 0.8 (c0), 0.5 (c4), 0.3, 0.1
        let scores = [0.8f64, 0.1, 0.9, 0.3, 0.5];
        let indptr = [0i64, 2];
        let indices = [0i64, 4];
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        let gains = [2.0, 1.0];
        let m = graded_metrics(&scores, 1, 0, 5, &rel, &gains, 10, 2).unwrap();
        // DCG = 2/log2(3) + 1/log2(4); IDCG = 2/log2(2) + 1/log2(3)
        let dcg = 2.0 / 3f64.log2() + 1.0 / 2.0;
        let idcg = 2.0 + 1.0 / 3f64.log2();
        assert!((m.ndcg[0] - dcg / idcg).abs() < 1e-15);
        assert_eq!(m.recall[0], 0.5); // c0 at 2, c4 at 3: one of two within 2
                                      // cutoff 2: c4 (position 3) no longer counts
        let m = graded_metrics(&scores, 1, 0, 5, &rel, &gains, 2, 3).unwrap();
        assert!((m.ndcg[0] - (2.0 / 3f64.log2()) / idcg).abs() < 1e-15);
        assert_eq!(m.recall[0], 1.0);
        // a tie of c0 with c2 at the top: c0 at position 1 or 2 with probability 1/2
        let tied = [0.9f64, 0.1, 0.9, 0.3, 0.5];
        let m = graded_metrics(&tied, 1, 0, 5, &rel, &gains, 1, 1).unwrap();
        assert!((m.ndcg[0] - 0.5).abs() < 1e-15); // E[2 * 1{pos = 1}] / 2
        assert_eq!(m.recall[0], 0.25);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let scores = [0.8f32, 0.1];
        let indptr = [0i64, 2];
        let indices = [0i64, 0];
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        assert!(graded_metrics(&scores, 1, 0, 2, &rel, &[1.0, 1.0], 10, 10).is_err());
        let indices = [0i64, 1];
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        assert!(graded_metrics(&scores, 1, 0, 2, &rel, &[1.0, 1.0], 10, 10).is_ok());
        assert!(graded_metrics(&scores, 1, 0, 2, &rel, &[1.0, 0.0], 10, 10).is_err());
        assert!(graded_metrics(&scores, 1, 0, 2, &rel, &[1.0], 10, 10).is_err());
        assert!(graded_metrics(&scores, 1, 0, 2, &rel, &[1.0, 1.0], 0, 10).is_err());
        assert!(graded_metrics(&scores, 1, 0, 3, &rel, &[1.0, 1.0], 1, 10).is_err());
        assert!(graded_metrics(&[f32::NAN, 0.0], 1, 0, 2, &rel, &[1.0, 1.0], 1, 1).is_err());
    }
}
