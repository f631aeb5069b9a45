//! Language-bias figures per question, from one pass over each score row (pooled ranking):
//!
//! * the best (smallest) rank of the question's relevant candidates in each language, so that
//!   the "own-language first" rate and the spread of ranks follow;
//! * Max@R: the worst rank among the relevant candidates (the rank needed to recover all of a
//!   question's parallel answers);
//! * for each cutoff `k`, how many candidates of each language rank `<= k` (rank = 1 + the
//!   number scored strictly higher, so ties at the cutoff are all inside): the language make-up
//!   of the question's top k.

use rayon::prelude::*;

use super::*;
use crate::error::{try_vec, CoreError, CoreResult};

/// Per-question bias counts of a block of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct BiasCounts {
    /// Number of languages L.
    pub n_langs: usize,
    /// The top-k cutoffs.
    pub top_ks: Vec<usize>,
    /// Worst pooled rank of a relevant candidate, one per question (0: none relevant).
    pub max_rank: Vec<u64>,
    /// Best pooled rank of a relevant candidate in each language, `n x L` (0: none there).
    pub lang_min_rank: Vec<u64>,
    /// Candidates of each language ranked `<= k`, `n x L x len(top_ks)`.
    pub top_counts: Vec<u64>,
}

#[allow(clippy::too_many_arguments)]
fn row_bias<T: Score>(
    row: &[T],
    q: usize,
    rel: &Relevance<'_>,
    layout: &Layout,
    top_ks: &[usize],
    buf: &mut Vec<T>,
    max_rank: &mut u64,
    lang_min: &mut [u64],
    top: &mut [u64],
) -> CoreResult<()> {
    if !T::all_finite(row) {
        return Err(non_finite(row, q, 0));
    }
    let (a, b) = (rel.indptr[q] as usize, rel.indptr[q + 1] as usize);
    *max_rank = 0;
    for &c in &rel.indices[a..b] {
        let c = c as usize;
        let t = row[c];
        let higher = row.iter().filter(|&&x| x > t).count() as u64;
        let rank = higher + 1;
        *max_rank = (*max_rank).max(rank);
        let l = layout.lang_of(c);
        if lang_min[l] == 0 || rank < lang_min[l] {
            lang_min[l] = rank;
        }
    }
    let n = row.len();
    let n_langs = layout.n_langs();
    let kmax = top_ks.iter().copied().max().unwrap_or(0).min(n);
    if kmax == 0 {
        return Ok(());
    }
    // The k-th largest score (with multiplicity) for every cutoff: a candidate ranks <= k
    // exactly when its score is >= that value.
    buf.clear();
    buf.extend_from_slice(row);
    let desc = |x: &T, y: &T| y.partial_cmp(x).unwrap_or(std::cmp::Ordering::Equal);
    buf.select_nth_unstable_by(kmax - 1, desc);
    buf[..kmax].sort_unstable_by(desc);
    for (ki, &k) in top_ks.iter().enumerate() {
        let k = k.min(n);
        if k == 0 {
            continue;
        }
        let v = buf[k - 1];
        for l in 0..n_langs {
            let slice = &row[layout.offsets[l]..layout.offsets[l + 1]];
            top[l * top_ks.len() + ki] = slice.iter().filter(|&&x| x >= v).count() as u64;
        }
    }
    Ok(())
}

/// Bias counts of the score rows `first_row..first_row + n_rows` (row-major, `n_rows x
/// n_candidates`), rows in parallel.
pub fn bias_counts<T: Score>(
    scores: &[T],
    n_rows: usize,
    first_row: usize,
    rel: &Relevance<'_>,
    layout: &Layout,
    top_ks: &[usize],
) -> CoreResult<BiasCounts> {
    let n_cols = layout.n_candidates();
    check_score_block(scores.len(), n_rows, first_row, n_cols, rel)?;
    if top_ks.contains(&0) {
        return Err(CoreError::value("top_k", "cutoffs must be >= 1"));
    }
    let nl = layout.n_langs();
    let nk = top_ks.len();
    let mut out = BiasCounts {
        n_langs: nl,
        top_ks: top_ks.to_vec(),
        max_rank: try_vec("top_k", &[n_rows], 0)?,
        lang_min_rank: try_vec("top_k", &[n_rows, nl], 0)?,
        top_counts: try_vec("top_k", &[n_rows, nl, nk.max(1)], 0)?,
    };
    out.max_rank
        .par_iter_mut()
        .zip(out.lang_min_rank.par_chunks_mut(nl.max(1)))
        .zip(out.top_counts.par_chunks_mut((nl * nk).max(1)))
        .enumerate()
        .try_for_each_init(Vec::new, |buf, (i, ((mr, lm), top))| {
            let row = &scores[i * n_cols..(i + 1) * n_cols];
            row_bias(row, first_row + i, rel, layout, top_ks, buf, mr, lm, top)
        })?;
    out.top_counts.truncate(n_rows * nl * nk);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_definitions() {
        // two languages: columns 0..3 (l0) and 3..5 (l1); ties at the top-2 cutoff
        let scores = [0.9f64, 0.5, 0.5, 0.7, 0.1, 0.2, 0.3, 0.3, 0.4, 0.9];
        let indptr = [0i64, 2, 3];
        let indices = [1i64, 4, 3];
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        let layout = Layout::new(&[0, 3, 5]).unwrap();
        let b = bias_counts(&scores, 2, 0, &rel, &layout, &[1, 3]).unwrap();
        // row 0: 0.9 > 0.7 > 0.5 = 0.5 > 0.1: candidate 1 (0.5) rank 3, candidate 4 rank 5;
        // row 1: candidate 3 (0.4, language 1) has only 0.9 above it: rank 2
        assert_eq!(b.max_rank, vec![5, 2]);
        assert_eq!(b.lang_min_rank, vec![3, 5, 0, 2]);
        // top 1: {0.9 in l0}; top 3: 0.9, 0.7, 0.5, 0.5 (the tie is inside): l0 3, l1 1
        assert_eq!(&b.top_counts[..4], &[1, 3, 0, 1]);
        // row 1: top 1 is 0.9 in l1; top 3: 0.9, 0.4, 0.3, 0.3 (tie): l0 2, l1 2
        assert_eq!(&b.top_counts[4..], &[0, 2, 1, 2]);
        assert!(bias_counts(&scores, 2, 0, &rel, &layout, &[0]).is_err());
        let mut bad = scores;
        bad[7] = f64::NAN;
        assert!(matches!(
            bias_counts(&bad, 2, 0, &rel, &layout, &[1]),
            Err(CoreError::NonFinite { row: 1, .. })
        ));
    }
}
