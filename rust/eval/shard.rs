//! Exact evaluation over candidate shards: counts add up across shards.
//!
//! Every metric of a question follows from, for each of its relevant candidates `j` (score
//! `t_j`) and each candidate language `l`, the number of candidates of `l` scoring `>= t_j` and
//! `> t_j` (see the module docs of [`super`]). A shard holding some of the candidates can count
//! those over its own columns once it knows the thresholds `t_j` (each one scored by the shard
//! that holds that candidate); summed over shards (one all-reduce) the counts are exactly those
//! of the whole row, and [`metrics_from_counts`] turns them into the same per-question metrics as
//! [`super::query_metrics`], bit for bit, without any process holding the whole score matrix.
//!
//! [`threshold_counts`] is also how the top-k language make-up is sharded: with the k-th largest
//! score of the whole row as the threshold, the `>=` count of each language is the number of its
//! candidates ranked `<= k`.

use rayon::prelude::*;

use super::*;
use crate::error::{try_vec, CoreError, CoreResult};

/// Rows handled by one parallel task.
const ROWS_PER_TASK: usize = 32;

/// Checks a CSR index array (`n_rows + 1` non-decreasing entries from 0 to `n_values`).
pub(crate) fn check_indptr(
    field: &'static str,
    indptr: &[i64],
    n_rows: usize,
    n_values: usize,
) -> CoreResult<()> {
    if indptr.len() != n_rows + 1 {
        return Err(CoreError::shape(
            field,
            format!(
                "has {} entries, expected {} (rows + 1)",
                indptr.len(),
                n_rows + 1
            ),
        ));
    }
    if indptr[0] != 0 {
        return Err(CoreError::value(field, "must start at 0"));
    }
    if indptr.windows(2).any(|w| w[1] < w[0]) {
        return Err(CoreError::value(field, "must be non-decreasing"));
    }
    if indptr[n_rows] as u64 != n_values as u64 {
        return Err(CoreError::shape(
            field,
            format!(
                "ends at {} but there are {n_values} thresholds",
                indptr[n_rows]
            ),
        ));
    }
    Ok(())
}

/// The bias counts of [`bias_counts`] from counts summed over the shards of the candidates:
/// each relevant candidate's pooled rank is 1 + the candidates of any language scored above it
/// (`gt`: `m x L` for the `m` relevant candidates of rows `first_row..first_row + n_rows`, in
/// CSR order), and `ge_top` (`n_rows x len(top_ks) x L`) counts each language's candidates
/// scoring `>=` a row's k-th best score (so ranked `<= k`).
pub fn bias_from_counts(
    first_row: usize,
    n_rows: usize,
    rel: &Relevance<'_>,
    layout: &Layout,
    top_ks: &[usize],
    gt: &[u32],
    ge_top: &[u32],
) -> CoreResult<BiasCounts> {
    rel.validate(layout.n_candidates())?;
    rel.check_rows("gt", first_row, n_rows)?;
    let nl = layout.n_langs();
    let nk = top_ks.len();
    let base = rel.indptr[first_row] as usize;
    let m = rel.indptr[first_row + n_rows] as usize - base;
    if gt.len() != m.saturating_mul(nl) {
        return Err(CoreError::shape(
            "gt",
            format!("has {} counts, expected {m} x {nl}", gt.len()),
        ));
    }
    if ge_top.len() != n_rows.saturating_mul(nk).saturating_mul(nl) {
        return Err(CoreError::shape(
            "ge_top",
            format!(
                "has {} counts, expected {n_rows} x {nk} x {nl}",
                ge_top.len()
            ),
        ));
    }
    let mut out = BiasCounts {
        n_langs: nl,
        top_ks: top_ks.to_vec(),
        max_rank: try_vec("gt", &[n_rows], 0)?,
        lang_min_rank: try_vec("gt", &[n_rows, nl], 0)?,
        top_counts: try_vec("ge_top", &[n_rows, nl, nk], 0)?,
    };
    for i in 0..n_rows {
        let q = first_row + i;
        for j in rel.indptr[q] as usize..rel.indptr[q + 1] as usize {
            let above: u64 = gt[(j - base) * nl..(j - base + 1) * nl]
                .iter()
                .map(|&x| u64::from(x))
                .sum();
            let rank = 1 + above;
            out.max_rank[i] = out.max_rank[i].max(rank);
            let slot = &mut out.lang_min_rank[i * nl + layout.lang_of(rel.indices[j] as usize)];
            if *slot == 0 || rank < *slot {
                *slot = rank;
            }
        }
        for k in 0..nk {
            for l in 0..nl {
                out.top_counts[(i * nl + l) * nk + k] = u64::from(ge_top[(i * nk + k) * nl + l]);
            }
        }
    }
    Ok(out)
}

/// Checks that every threshold is a finite score.
pub(crate) fn check_thresholds<T: Score>(thr: &[T]) -> CoreResult<()> {
    match thr.iter().position(|t| !t.finite()) {
        Some(i) => Err(CoreError::value(
            "thresholds",
            format!("entry {i} is {}, not a finite score", thr[i].as_f64()),
        )),
        None => Ok(()),
    }
}

/// For each row of a block of scores (`n_rows x layout.n_candidates()`, row-major: a shard's
/// columns, grouped by language as `layout` says) and each of that row's thresholds
/// (`thr[thr_indptr[i]..thr_indptr[i + 1]]`), the number of the row's candidates of each
/// language scoring `>=` and `>` the threshold. Returns `(ge, gt)`, each `thr.len() x L`
/// (row-major). `first_row` only numbers the rows in error messages.
pub fn threshold_counts<T: Score>(
    scores: &[T],
    n_rows: usize,
    first_row: usize,
    layout: &Layout,
    thr_indptr: &[i64],
    thr: &[T],
) -> CoreResult<(Vec<u32>, Vec<u32>)> {
    let n_cols = layout.n_candidates();
    if scores.len() != n_rows.saturating_mul(n_cols) {
        return Err(CoreError::shape(
            "scores",
            format!(
                "has {} values, expected {n_rows} x {n_cols} (rows x shard candidates)",
                scores.len()
            ),
        ));
    }
    check_indptr("thr_indptr", thr_indptr, n_rows, thr.len())?;
    check_thresholds(thr)?;
    let nl = layout.n_langs();
    let n_tasks = n_rows.div_ceil(ROWS_PER_TASK);
    let parts: Vec<(Vec<u32>, Vec<u32>)> = (0..n_tasks)
        .into_par_iter()
        .map_init(Vec::new, |buf, task| {
            let rows = task * ROWS_PER_TASK..((task + 1) * ROWS_PER_TASK).min(n_rows);
            let (a0, b0) = (
                thr_indptr[rows.start] as usize,
                thr_indptr[rows.end] as usize,
            );
            let mut ge = try_vec("thresholds", &[b0 - a0, nl], 0u32)?;
            let mut gt = try_vec("thresholds", &[b0 - a0, nl], 0u32)?;
            for i in rows {
                let (a, b) = (thr_indptr[i] as usize, thr_indptr[i + 1] as usize);
                let row = &scores[i * n_cols..(i + 1) * n_cols];
                let (ra, rb) = ((a - a0) * nl, (b - a0) * nl);
                if !count_row_dispatch(
                    row,
                    &layout.offsets,
                    &thr[a..b],
                    &mut ge[ra..rb],
                    &mut gt[ra..rb],
                    buf,
                ) {
                    return Err(non_finite(row, first_row + i, 0));
                }
            }
            Ok((ge, gt))
        })
        .collect::<CoreResult<_>>()?;
    let mut ge = try_vec("thresholds", &[thr.len(), nl], 0u32)?;
    let mut gt = try_vec("thresholds", &[thr.len(), nl], 0u32)?;
    let mut at = 0;
    for (g, t) in parts {
        ge[at..at + g.len()].copy_from_slice(&g);
        gt[at..at + t.len()].copy_from_slice(&t);
        at += g.len();
    }
    Ok((ge, gt))
}

/// Per-question metrics of the questions `first_row..first_row + n_rows` from the counts of
/// their relevant candidates over all candidates (summed [`threshold_counts`] of every shard).
///
/// `rel` must list each question's relevant candidates sorted and without repeats; `thr[rel_row_range]` are their scores in that order and `ge` /
/// `gt` (`thr.len() x L`) their counts. `thr` covers the block only: its entry 0 is the first
/// relevant candidate of question `first_row`. The result equals [`super::query_metrics`] of the
/// full score rows bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn metrics_from_counts<T: Score>(
    first_row: usize,
    n_rows: usize,
    rel: &Relevance<'_>,
    layout: &Layout,
    thr: &[T],
    ge: &[u32],
    gt: &[u32],
    spec: &Spec,
) -> CoreResult<QueryMetrics> {
    spec.validate()?;
    rel.validate(layout.n_candidates())?;
    rel.check_rows("thresholds", first_row, n_rows)?;
    let nl = layout.n_langs();
    let base = rel.indptr[first_row] as usize;
    let end = rel.indptr[first_row + n_rows] as usize;
    for q in first_row..first_row + n_rows {
        let (a, b) = (rel.indptr[q] as usize, rel.indptr[q + 1] as usize);
        if rel.indices[a..b].windows(2).any(|w| w[1] <= w[0]) {
            return Err(CoreError::value(
                "relevance_indices",
                format!("question {q}: relevant candidates must be sorted without repeats"),
            ));
        }
    }
    if thr.len() != end - base {
        return Err(CoreError::shape(
            "thresholds",
            format!(
                "has {} values, expected {} (the relevant candidates of questions {first_row}..{})",
                thr.len(),
                end - base,
                first_row + n_rows
            ),
        ));
    }
    for (field, v) in [("ge", ge), ("gt", gt)] {
        if v.len() != thr.len().saturating_mul(nl) {
            return Err(CoreError::shape(
                field,
                format!("has {} counts, expected {} x {nl}", v.len(), thr.len()),
            ));
        }
    }
    let n_ks = spec.recall_ks.len();
    in_tasks(
        n_rows,
        nl,
        n_ks,
        ROWS_PER_TASK,
        Scratch::<T>::default,
        |sc, task, out| {
            let first = task * ROWS_PER_TASK;
            for i in 0..out.rows() {
                let q = first_row + first + i;
                relevant_columns(sc, rel, q, nl);
                let (a, b) = (
                    rel.indptr[q] as usize - base,
                    rel.indptr[q + 1] as usize - base,
                );
                sc.thr.clear();
                sc.thr.extend_from_slice(&thr[a..b]);
                sc.ge.copy_from_slice(&ge[a * nl..b * nl]);
                sc.gt.copy_from_slice(&gt[a * nl..b * nl]);
                finish_row(sc, layout, spec, out.sink(i));
            }
            Ok(())
        },
    )
}

/// The largest value of a short run, lane by lane (so that it vectorises) and then across.
#[inline(always)]
pub(crate) fn chunk_max<T: Score>(chunk: &[T]) -> T {
    let mut lanes = [chunk[0]; 8];
    let mut parts = chunk.chunks_exact(8);
    for c in &mut parts {
        for i in 0..8 {
            lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
        }
    }
    let mut m = lanes[0];
    for &x in lanes[1..].iter().chain(parts.remainder()) {
        m = if x > m { x } else { m };
    }
    m
}

/// The `k` largest values of each row of a block (`n_rows x n_cols`, row-major), in decreasing
/// order with repeats (a row with fewer than `k` values is padded with negative infinity).
/// Merged over shards (the top `k` of the union of the shards' top `k`), the `j`-th value is the
/// `j`-th largest score of the whole row: the cutoff of the top-`j` language make-up. One pass
/// over each row, rows in parallel; a non-finite score is an error.
pub fn row_top_values<T: Score>(
    scores: &[T],
    n_rows: usize,
    first_row: usize,
    n_cols: usize,
    k: usize,
) -> CoreResult<Vec<T>> {
    if scores.len() != n_rows.saturating_mul(n_cols) {
        return Err(CoreError::shape(
            "scores",
            format!("has {} values, expected {n_rows} x {n_cols}", scores.len()),
        ));
    }
    if k == 0 {
        return Err(CoreError::value("k", "must be >= 1"));
    }
    let neg = T::NEG_INFINITY;
    let mut out = try_vec("k", &[n_rows, k], neg)?;
    if n_cols == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(k)
        .zip(scores.par_chunks(n_cols))
        .enumerate()
        .try_for_each(|(i, (top, row))| {
            if !T::all_finite(row) {
                return Err(non_finite(row, first_row + i, 0));
            }
            // `top` stays sorted in decreasing order; once it is full, a chunk whose largest
            // value does not beat the k-th is skipped after one vectorised max
            let mut filled = 0usize;
            for chunk in row.chunks(32) {
                if filled == k && chunk_max(chunk) <= top[k - 1] {
                    continue;
                }
                for &x in chunk {
                    if filled == k && x <= top[k - 1] {
                        continue;
                    }
                    let mut j = if filled < k { filled } else { k - 1 };
                    while j > 0 && top[j - 1] < x {
                        top[j] = top[j - 1];
                        j -= 1;
                    }
                    top[j] = x;
                    filled = (filled + 1).min(k);
                }
            }
            Ok(())
        })?;
    Ok(out)
}

/// The `k` largest scores of a row seen so far (decreasing, with their languages), and, per
/// language, how many further scores tie the `k`-th: together every score `>=` the `k`-th, so
/// for any cutoff `c` at or above the `k`-th the per-language `>= c` counts are exact, ties
/// included. Merged over shards (the `j`-th largest of the union of the shards' lists is the
/// `j`-th largest score of the row, `j <= k`, and it is never below a shard's `k`-th), each
/// shard's `>= c` count of a language is the entries of its list `>= c`, plus its tie count
/// when `c` equals its `k`-th.
// (used by the fused kernels, which are x86-64 only)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct TopK {
    k: usize,
    vals: Vec<f32>,
    langs: Vec<u32>,
    extra: Vec<u32>,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl TopK {
    /// An empty tracker of the `k >= 1` largest scores over `n_langs` languages.
    pub(crate) fn new(k: usize, n_langs: usize) -> TopK {
        // (a huge `k` grows the lists as scores come, never allocated up front)
        let cap = k.min(256) + 1;
        TopK {
            k,
            vals: Vec::with_capacity(cap),
            langs: Vec::with_capacity(cap),
            extra: vec![0; n_langs],
        }
    }

    /// Takes score `x` of language `l` into account.
    #[inline]
    pub(crate) fn push(&mut self, x: f32, l: usize) {
        let n = self.vals.len();
        if n < self.k {
            self.insert(x, l);
            return;
        }
        let t = self.vals[n - 1];
        if x < t {
            return;
        }
        if x == t {
            self.extra[l] += 1;
            return;
        }
        // `x` enters; the old k-th leaves the list, and still counts if it ties the new k-th.
        let old = self.langs[n - 1] as usize;
        self.vals.pop();
        self.langs.pop();
        self.insert(x, l);
        if self.vals[n - 1] > t {
            self.extra.fill(0);
        } else {
            self.extra[old] += 1;
        }
    }

    fn insert(&mut self, x: f32, l: usize) {
        let at = self.vals.partition_point(|&v| v >= x);
        self.vals.insert(at, x);
        self.langs.insert(at, l as u32);
    }

    /// Takes the scores `s` of language `l` into account: 64 at a time, a run whose largest
    /// score is below the `k`-th skipped after one vectorised max.
    pub(crate) fn scan(&mut self, s: &[f32], l: usize) {
        for chunk in s.chunks(64) {
            if self.vals.len() == self.k && chunk_max(chunk) < self.vals[self.k - 1] {
                continue;
            }
            for &x in chunk {
                self.push(x, l);
            }
        }
    }

    /// Writes the list (`k` values, padded with negative infinity and language 0), and the
    /// tie counts (`n_langs`).
    pub(crate) fn write(&self, vals: &mut [f32], langs: &mut [u32], extra: &mut [u32]) {
        vals.fill(f32::NEG_INFINITY);
        langs.fill(0);
        vals[..self.vals.len()].copy_from_slice(&self.vals);
        langs[..self.langs.len()].copy_from_slice(&self.langs);
        extra.copy_from_slice(&self.extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::tests::lcg;

    #[test]
    fn shard_counts_add_up_to_the_full_metrics() {
        let offsets = [0i64, 7, 7, 19, 40];
        let layout = Layout::new(&offsets).unwrap();
        let (n_rows, n_cols, nl) = (23usize, 40usize, 4usize);
        // coarse scores: many ties, also between relevant candidates
        let scores: Vec<f32> = lcg(1, n_rows * n_cols)
            .iter()
            .map(|u| (u * 9.0).floor() as f32 * 0.25)
            .collect();
        let (counts, picks) = (lcg(2, n_rows), lcg(3, n_rows * 4));
        let mut indptr = vec![0i64];
        let mut indices = Vec::new();
        for q in 0..n_rows {
            let mut cols: Vec<i64> = (0..(counts[q] * 5.0) as usize)
                .map(|j| (picks[q * 4 + j] * n_cols as f64) as i64)
                .collect();
            cols.sort_unstable();
            cols.dedup();
            indices.extend_from_slice(&cols);
            indptr.push(indices.len() as i64);
        }
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        let spec = Spec {
            recall_ks: vec![1, 3],
            map_k: 5,
            map_norm: MapNorm::R,
        };
        let full = query_metrics(&scores, n_rows, 0, &rel, &layout, &spec).unwrap();
        let thr: Vec<f32> = (0..n_rows)
            .flat_map(|q| {
                let (a, b) = (indptr[q] as usize, indptr[q + 1] as usize);
                indices[a..b]
                    .iter()
                    .map(|&c| scores[q * n_cols + c as usize])
                    .collect::<Vec<_>>()
            })
            .collect();
        for cuts in [vec![0usize, 40], vec![0, 13, 40], vec![0, 5, 5, 30, 40]] {
            let mut ge = vec![0u32; thr.len() * nl];
            let mut gt = vec![0u32; thr.len() * nl];
            for w in cuts.windows(2) {
                let (s, e) = (w[0], w[1]);
                let local_off: Vec<i64> = offsets
                    .iter()
                    .map(|&o| (o as usize).clamp(s, e) as i64 - s as i64)
                    .collect();
                let local = Layout::new(&local_off).unwrap();
                let block: Vec<f32> = (0..n_rows)
                    .flat_map(|q| scores[q * n_cols + s..q * n_cols + e].to_vec())
                    .collect();
                let (g, t) = threshold_counts(&block, n_rows, 0, &local, &indptr, &thr).unwrap();
                ge.iter_mut().zip(&g).for_each(|(x, y)| *x += y);
                gt.iter_mut().zip(&t).for_each(|(x, y)| *x += y);
            }
            // in two blocks of questions
            for (first, n) in [(0usize, 10usize), (10, 13)] {
                let (a, b) = (indptr[first] as usize, indptr[first + n] as usize);
                let m = metrics_from_counts(
                    first,
                    n,
                    &rel,
                    &layout,
                    &thr[a..b],
                    &ge[a * nl..b * nl],
                    &gt[a * nl..b * nl],
                    &spec,
                )
                .unwrap();
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let r = first..first + n;
                assert_eq!(bits(&m.ap), bits(&full.ap[r.clone()]));
                assert_eq!(bits(&m.ap_at_k), bits(&full.ap_at_k[r.clone()]));
                assert_eq!(bits(&m.rank_distance), bits(&full.rank_distance[r.clone()]));
                assert_eq!(
                    bits(&m.recall),
                    bits(&full.recall[first * 2..(first + n) * 2])
                );
                assert_eq!(
                    bits(&m.lang_ap),
                    bits(&full.lang_ap[first * nl..(first + n) * nl])
                );
                assert_eq!(
                    bits(&m.lang_recall),
                    bits(&full.lang_recall[first * nl * 2..(first + n) * nl * 2])
                );
                assert_eq!(m.n_relevant, full.n_relevant[r]);
                // the bias counts from the same summed counts, and each language's candidates
                // scoring at least the row's k-th best score
                let ks = [1usize, 3];
                let mut ge_top = Vec::new();
                for q in first..first + n {
                    let row = &scores[q * n_cols..(q + 1) * n_cols];
                    let mut sorted = row.to_vec();
                    sorted.sort_by(|x, y| y.total_cmp(x));
                    for &k in &ks {
                        for l in 0..nl {
                            let (s, e) = (offsets[l] as usize, offsets[l + 1] as usize);
                            ge_top
                                .push(row[s..e].iter().filter(|&&x| x >= sorted[k - 1]).count()
                                    as u32);
                        }
                    }
                }
                let got =
                    bias_from_counts(first, n, &rel, &layout, &ks, &gt[a * nl..b * nl], &ge_top)
                        .unwrap();
                let block = &scores[first * n_cols..(first + n) * n_cols];
                let want = bias_counts(block, n, first, &rel, &layout, &ks).unwrap();
                assert_eq!(got, want);
            }
        }
        let bad = bias_from_counts(0, 2, &rel, &layout, &[1], &[0u32; 3], &[0u32; 8]);
        assert!(bad.unwrap_err().to_string().contains("gt"));
    }

    #[test]
    fn top_k_counts_every_score_at_or_above_the_kth() {
        // Scores with many ties, fed in order; the list plus the tie counts must give, for
        // every cutoff c at or above the k-th largest, the exact per-language `>= c` counts.
        let n_langs = 3;
        for seed in 0..40u64 {
            let n = 1 + (seed as usize * 7) % 300;
            let vals: Vec<f32> = lcg(seed + 100, n)
                .iter()
                .map(|u| ((u * 6.0).floor() as f32) - 2.0)
                .collect();
            let langs: Vec<usize> = lcg(seed + 200, n)
                .iter()
                .map(|u| (u * n_langs as f64) as usize % n_langs)
                .collect();
            for k in [1usize, 2, 5, 10, 400] {
                let mut t = TopK::new(k, n_langs);
                for (chunk, lc) in vals.chunks(13).zip(langs.chunks(13)) {
                    for (&x, &l) in chunk.iter().zip(lc) {
                        t.push(x, l);
                    }
                }
                let (mut v, mut lg, mut ex) = (vec![0f32; k], vec![0u32; k], vec![0u32; n_langs]);
                t.write(&mut v, &mut lg, &mut ex);
                let mut sorted = vals.clone();
                sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
                sorted.resize(k.max(n), f32::NEG_INFINITY);
                assert_eq!(&v[..], &sorted[..k]);
                for (j, &c) in sorted.iter().enumerate().take(k.min(n)) {
                    for (l, &tied) in ex.iter().enumerate() {
                        let want = vals
                            .iter()
                            .zip(&langs)
                            .filter(|&(&x, &m)| x >= c && m == l)
                            .count() as u32;
                        let mut got = v
                            .iter()
                            .zip(&lg)
                            .filter(|&(&x, &m)| x >= c && m as usize == l)
                            .count() as u32;
                        if c == v[k - 1] {
                            got += tied;
                        }
                        assert_eq!(got, want, "seed {seed} k {k} cutoff {j} lang {l}");
                    }
                }
            }
        }
    }

    #[test]
    fn row_top_values_are_the_sorted_head() {
        let (n_rows, n_cols) = (9usize, 50usize);
        let scores: Vec<f32> = lcg(4, n_rows * n_cols)
            .iter()
            .map(|u| (u * 13.0).floor() as f32 - 6.0)
            .collect();
        for k in [1usize, 3, 10, 50, 60] {
            let top = row_top_values(&scores, n_rows, 0, n_cols, k).unwrap();
            for i in 0..n_rows {
                let mut row = scores[i * n_cols..(i + 1) * n_cols].to_vec();
                row.sort_by(|a, b| b.partial_cmp(a).unwrap());
                row.resize(k, f32::NEG_INFINITY);
                assert_eq!(&top[i * k..(i + 1) * k], &row[..k]);
            }
        }
        let mut bad = scores.clone();
        bad[60] = f32::NAN;
        assert!(row_top_values(&bad, n_rows, 0, n_cols, 3).is_err());
        assert!(row_top_values(&scores, n_rows, 0, n_cols, 0).is_err());
        assert!(row_top_values(&scores[..10], n_rows, 0, n_cols, 1).is_err());
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let layout = Layout::new(&[0, 2, 3]).unwrap();
        let scores = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6];
        let thr = [0.2f32, 0.5];
        assert!(threshold_counts(&scores, 2, 0, &layout, &[0, 1, 2], &thr).is_ok());
        assert!(threshold_counts(&scores[..5], 2, 0, &layout, &[0, 1, 2], &thr).is_err());
        assert!(threshold_counts(&scores, 2, 0, &layout, &[0, 1], &thr).is_err());
        assert!(threshold_counts(&scores, 2, 0, &layout, &[0, 2, 1], &thr).is_err());
        assert!(threshold_counts(&scores, 2, 0, &layout, &[0, 1, 3], &thr).is_err());
        assert!(threshold_counts(&scores, 2, 0, &layout, &[0, 1, 2], &[0.2, f32::NAN]).is_err());
        let mut bad = scores;
        bad[4] = f32::INFINITY;
        assert!(matches!(
            threshold_counts(&bad, 2, 7, &layout, &[0, 1, 2], &thr),
            Err(CoreError::NonFinite { row: 8, .. })
        ));
        let indptr = [0i64, 2, 2];
        let unsorted = [1i64, 0];
        let rel = Relevance {
            indptr: &indptr,
            indices: &unsorted,
        };
        let spec = Spec {
            recall_ks: vec![1],
            map_k: 1,
            map_norm: MapNorm::R,
        };
        let (g, t) = ([0u32; 4], [0u32; 4]);
        assert!(metrics_from_counts(0, 2, &rel, &layout, &thr, &g, &t, &spec).is_err());
        let sorted = [0i64, 1];
        let rel = Relevance {
            indptr: &indptr,
            indices: &sorted,
        };
        assert!(metrics_from_counts(0, 2, &rel, &layout, &thr, &g, &t, &spec).is_ok());
        assert!(metrics_from_counts(0, 2, &rel, &layout, &thr[..1], &g, &t, &spec).is_err());
        assert!(metrics_from_counts(0, 2, &rel, &layout, &thr, &g[..3], &t, &spec).is_err());
        assert!(metrics_from_counts(1, 2, &rel, &layout, &thr, &g, &t, &spec).is_err());
    }
}
