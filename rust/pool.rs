//! Parallel pair pools: one row per (group, language), grouped compactly.
//!
//! A *group* is one question id; its rows are that question (and its passage) in the languages
//! it exists in. Groups are numbered in the order of their ids. After construction the pool keeps, per row, its index into the caller's
//! arrays (u32) and its language (u8), sorted by (group, language), plus one offset per group:
//! about 9 bytes per row.

use crate::error::{CoreError, CoreResult};
use crate::partition::{Lines, Partitioner};
use rayon::prelude::*;
use std::collections::HashMap;

/// Most languages a pool can hold (language codes are u8).
pub const MAX_LANGS: usize = 255;

/// A pool of parallel rows grouped by question id.
#[derive(Debug, Clone, PartialEq)]
pub struct PairPool {
    n_langs: usize,
    /// Caller row index of each pool row, sorted by (group, language).
    rows: Vec<u32>,
    /// Language of each pool row.
    langs: Vec<u8>,
    /// `group_start[g]..group_start[g + 1]` are the pool rows of group `g`.
    group_start: Vec<u32>,
}

/// Counts describing a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStats {
    /// Number of groups.
    pub groups: u64,
    /// Number of rows.
    pub rows: u64,
    /// Rows per language (= monolingual pairs per language).
    pub rows_per_lang: Vec<u64>,
    /// Groups with exactly `n` languages, `n = 0..=L`.
    pub groups_by_size: Vec<u64>,
    /// Sum over groups of |L_g| (monolingual pairs).
    pub mono_pairs: u64,
    /// Sum over groups of |L_g| (|L_g| - 1) (ordered cross-lingual pairs).
    pub cross_pairs: u64,
    /// Ordered cross-lingual pairs per (question language, passage language), `L x L`.
    pub pair_counts: Vec<u64>,
}

impl PairPool {
    /// Builds a pool from one entry per caller row: its group id (any i64) and language code
    /// (`0..n_langs`). Group ids need not be dense or sorted.
    ///
    /// Errors name the row: a language out of range, or one group twice in one language.
    pub fn from_arrays(group_ids: &[i64], langs: &[i64], n_langs: usize) -> CoreResult<Self> {
        let n = check_sizes(group_ids.len(), langs.len(), n_langs)?;
        for (i, &l) in langs.iter().enumerate() {
            if l < 0 || l as usize >= n_langs {
                return Err(CoreError::value(
                    "langs",
                    format!("row {i} has language code {l}, outside 0..{n_langs}"),
                ));
            }
        }
        // Sort keys (group offset << 8 | language) with the row index, by a stable LSD radix
        // sort: sequential passes instead of random access, and a duplicate (group, language)
        // shows up as two equal neighbours.
        let (mut keys, span) = group_keys(group_ids);
        let bits = 64 - (span.max(1) << 8).leading_zeros();
        if bits <= 32 {
            // Key and row packed in one u64 (one array to move); the histogram of the top digit
            // is counted while packing.
            let top_shift = bits.saturating_sub(RADIX_BITS);
            let mut hist = vec![0usize; 1 << RADIX_BITS];
            for (i, (k, &l)) in keys.iter_mut().zip(langs).enumerate() {
                let key = (*k << 8) | l as u64;
                hist[(key >> top_shift) as usize] += 1;
                *k = (key << 32) | i as u64;
            }
            radix_sort_packed(&mut keys, 32, top_shift, &hist);
            Self::from_sorted(n_langs, n, group_ids, |i| (keys[i] >> 32, keys[i] as u32))
        } else {
            for (k, &l) in keys.iter_mut().zip(langs) {
                *k = (*k << 8) | l as u64;
            }
            let mut rows: Vec<u32> = (0..n as u32).collect();
            radix_sort(&mut keys, &mut rows, bits);
            Self::from_sorted(n_langs, n, group_ids, |i| (keys[i], rows[i]))
        }
    }

    /// Builds a pool from dense codes, as string ids give them: row `i` is in group `groups[i]`
    /// (`0..n_groups`, each code used at least once) and language `langs[i]` (`0..n_langs`).
    /// The same pool as [`PairPool::from_arrays`] with these codes as ids, built without a
    /// comparison sort: the rows partitioned by the top bits of their code (sequential passes),
    /// then each partition counting-sorted in cache. At most 2^24 groups.
    ///
    /// Errors name the row: a code out of range, or one group twice in one language; an unused
    /// group code is an error too.
    pub fn from_dense(
        groups: &[u32],
        n_groups: usize,
        langs: &[u32],
        n_langs: usize,
    ) -> CoreResult<Self> {
        let n = check_sizes(groups.len(), langs.len(), n_langs)?;
        // 1. partition the rows by the top bits of their group code (each thread its chunk of
        // rows, in order; entries `code << 40 | language << 32 | row`, gathered WC at a time)
        let g_bits = usize::BITS - (n_groups.max(2) - 1).leading_zeros();
        if g_bits > 24 {
            return Err(CoreError::value(
                "n_groups",
                format!("more than 16777216 groups are not supported, got {n_groups}"),
            ));
        }
        let p_bits = g_bits.min(8);
        let shift = g_bits - p_bits;
        let np = 1usize << p_bits;
        let chunk = n.div_ceil(rayon::current_num_threads().max(1)).max(1 << 16);
        let parts: Vec<Result<Vec<Lines<u64, 8>>, usize>> = groups
            .par_chunks(chunk)
            .zip(langs.par_chunks(chunk))
            .enumerate()
            .map(|(c, (gs, ls))| {
                let cap = gs.len() / np + gs.len() / (4 * np) + 16;
                let mut out = Partitioner::<u64, 8>::new(np, cap);
                for (j, (&g, &l)) in gs.iter().zip(ls).enumerate() {
                    if g as usize >= n_groups || l as usize >= n_langs {
                        return Err(c * chunk + j);
                    }
                    let e = u64::from(g) << 40 | u64::from(l) << 32 | (c * chunk + j) as u64;
                    out.push((g >> shift) as usize, e);
                }
                Ok(out.finish())
            })
            .collect();
        let parts = parts
            .into_iter()
            .collect::<Result<Vec<_>, usize>>()
            .map_err(|i| {
                if groups[i] as usize >= n_groups {
                    let msg = format!(
                        "row {i} has group code {}, outside 0..{n_groups}",
                        groups[i]
                    );
                    CoreError::value("group_ids", msg)
                } else {
                    let msg = format!(
                        "row {i} has language code {}, outside 0..{n_langs}",
                        langs[i]
                    );
                    CoreError::value("langs", msg)
                }
            })?;
        // 2. each partition (a range of group codes) counting-sorted into its own slice of the
        // output, in cache: rows of a group in row order, then sorted by language (stable)
        let sizes: Vec<usize> = (0..np)
            .map(|p| parts.iter().map(|ps| ps[p].len()).sum())
            .collect();
        let mut rows = vec![0u32; n];
        let mut out_langs = vec![0u8; n];
        let slices = split_sizes(&mut rows, &mut out_langs, &sizes);
        type Problem = (usize, u32, u32, u32); // (group code, row, row, language); rows 0: empty
        let done: Vec<(Vec<u32>, Option<Problem>)> = slices
            .into_par_iter()
            .enumerate()
            .map(|(p, (r, l))| {
                let g0 = p << shift;
                let g1 = ((p + 1) << shift).min(n_groups);
                let mut start = vec![0u32; g1.saturating_sub(g0) + 1];
                for e in parts.iter().flat_map(|ps| ps[p].iter()) {
                    start[((e >> 40) as usize) - g0 + 1] += 1;
                }
                for k in 1..start.len() {
                    start[k] += start[k - 1];
                }
                if let Some(k) = (1..start.len()).find(|&k| start[k] == start[k - 1]) {
                    return (start, Some((g0 + k - 1, 0, 0, 0)));
                }
                // LSD: stable by language into `tmp`, then stable by group into the output, so
                // that each group's rows come sorted by (language, row)
                let mut by_lang = vec![0u32; n_langs + 1];
                for e in parts.iter().flat_map(|ps| ps[p].iter()) {
                    by_lang[((e >> 32) as u8) as usize + 1] += 1;
                }
                for k in 1..by_lang.len() {
                    by_lang[k] += by_lang[k - 1];
                }
                let mut tmp = vec![0u64; r.len()];
                for &e in parts.iter().flat_map(|ps| ps[p].iter()) {
                    let k = ((e >> 32) as u8) as usize;
                    tmp[by_lang[k] as usize] = e;
                    by_lang[k] += 1;
                }
                let mut at = start.clone();
                for &e in &tmp {
                    let k = (e >> 40) as usize - g0;
                    r[at[k] as usize] = e as u32;
                    l[at[k] as usize] = (e >> 32) as u8;
                    at[k] += 1;
                }
                for k in 0..start.len() - 1 {
                    let (s, t) = (start[k] as usize, start[k + 1] as usize);
                    if let Some(i) = (s + 1..t).find(|&i| l[i - 1] == l[i]) {
                        return (start, Some((g0 + k, r[i - 1], r[i], u32::from(l[i]))));
                    }
                }
                (start, None)
            })
            .collect();
        if let Some((g, a, b, l)) = done.iter().filter_map(|d| d.1).min() {
            return Err(if a == b {
                CoreError::value(
                    "group_ids",
                    format!("group code {g} has no rows; codes must be dense 0..{n_groups}"),
                )
            } else {
                CoreError::value(
                    "group_ids",
                    format!("rows {a} and {b} have the same group id ({g}) and language code {l}"),
                )
            });
        }
        let group_start = join_starts(done.iter().map(|d| &d.0[..]), &sizes, n_groups);
        Ok(PairPool {
            n_langs,
            rows,
            langs: out_langs,
            group_start,
        })
    }

    /// A pool from its arrays, built elsewhere in the crate with the invariants of the fields.
    pub(crate) fn from_parts(
        n_langs: usize,
        rows: Vec<u32>,
        langs: Vec<u8>,
        group_start: Vec<u32>,
    ) -> Self {
        PairPool {
            n_langs,
            rows,
            langs,
            group_start,
        }
    }

    /// Builds the pool from rows sorted by key (group offset << 8 | language); `at(i)` gives
    /// the i-th (key, caller row).
    fn from_sorted(
        n_langs: usize,
        n: usize,
        group_ids: &[i64],
        at: impl Fn(usize) -> (u64, u32),
    ) -> CoreResult<Self> {
        let mut rows = Vec::with_capacity(n);
        let mut out_langs = Vec::with_capacity(n);
        let mut start = Vec::with_capacity(n / 2 + 2);
        start.push(0u32);
        let mut prev = (u64::MAX, 0u32);
        for i in 0..n {
            let (key, row) = at(i);
            if i > 0 {
                if key == prev.0 {
                    return Err(CoreError::value(
                        "group_ids",
                        format!(
                            "rows {} and {row} have the same group id ({}) and language code {}",
                            prev.1,
                            group_ids[row as usize],
                            key & 0xff
                        ),
                    ));
                }
                if key >> 8 != prev.0 >> 8 {
                    start.push(i as u32);
                }
            }
            rows.push(row);
            out_langs.push((key & 0xff) as u8);
            prev = (key, row);
        }
        start.push(n as u32);
        start.shrink_to_fit();
        Ok(PairPool {
            n_langs,
            rows,
            langs: out_langs,
            group_start: start,
        })
    }

    /// Number of language codes.
    pub fn n_langs(&self) -> usize {
        self.n_langs
    }

    /// Number of groups.
    pub fn n_groups(&self) -> usize {
        self.group_start.len() - 1
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.rows.len()
    }

    /// Bytes held by the pool's arrays.
    pub fn nbytes(&self) -> usize {
        self.rows.len() * 4 + self.langs.len() + self.group_start.len() * 4
    }

    /// (caller rows, languages) of group `g`, sorted by language.
    pub fn group(&self, g: usize) -> (&[u32], &[u8]) {
        let (a, b) = (
            self.group_start[g] as usize,
            self.group_start[g + 1] as usize,
        );
        (&self.rows[a..b], &self.langs[a..b])
    }

    /// A new pool with only the languages in `keep` (by code) and the groups that still have at
    /// least `min_langs` languages. Row indices keep referring to the original arrays.
    pub fn filter(&self, keep: Option<&[bool]>, min_langs: usize) -> CoreResult<Self> {
        if let Some(k) = keep {
            if k.len() != self.n_langs {
                return Err(CoreError::shape(
                    "languages",
                    format!("mask has {} entries, expected {}", k.len(), self.n_langs),
                ));
            }
        }
        let mut rows = Vec::new();
        let mut langs = Vec::new();
        let mut start = vec![0u32];
        for g in 0..self.n_groups() {
            let (r, l) = self.group(g);
            let kept = |&(_, &lang): &(&u32, &u8)| keep.is_none_or(|k| k[lang as usize]);
            let count = r.iter().zip(l).filter(kept).count();
            if count == 0 || count < min_langs {
                continue;
            }
            for (&row, &lang) in r.iter().zip(l).filter(kept) {
                rows.push(row);
                langs.push(lang);
            }
            start.push(rows.len() as u32);
        }
        if rows.is_empty() {
            return Err(CoreError::value(
                "languages",
                "no group is left after filtering (the pool would be empty)",
            ));
        }
        Ok(PairPool {
            n_langs: self.n_langs,
            rows,
            langs,
            group_start: start,
        })
    }

    /// Counts of groups, rows and mono / cross pairs, per language and language pair.
    pub fn stats(&self) -> PoolStats {
        let nl = self.n_langs;
        let mut s = PoolStats {
            groups: self.n_groups() as u64,
            rows: self.n_rows() as u64,
            rows_per_lang: vec![0; nl],
            groups_by_size: vec![0; nl + 1],
            mono_pairs: self.n_rows() as u64,
            cross_pairs: 0,
            pair_counts: vec![0; nl * nl],
        };
        for &l in &self.langs {
            s.rows_per_lang[l as usize] += 1;
        }
        for g in 0..self.n_groups() {
            let (_, l) = self.group(g);
            let k = l.len() as u64;
            s.groups_by_size[l.len().min(nl)] += 1;
            s.cross_pairs += k * k.saturating_sub(1);
            for &a in l {
                for &b in l {
                    if a != b {
                        s.pair_counts[a as usize * nl + b as usize] += 1;
                    }
                }
            }
        }
        s
    }
}

/// The pool's `rows` and `langs` cut into consecutive slices of `sizes` rows, one per
/// partition, for the partitions to fill in parallel.
pub(crate) fn split_sizes<'a>(
    rows: &'a mut [u32],
    langs: &'a mut [u8],
    sizes: &[usize],
) -> Vec<(&'a mut [u32], &'a mut [u8])> {
    let mut slices = Vec::with_capacity(sizes.len());
    let (mut r_rest, mut l_rest) = (rows, langs);
    for &size in sizes {
        let (r, rr) = r_rest.split_at_mut(size);
        let (l, lr) = l_rest.split_at_mut(size);
        slices.push((r, l));
        (r_rest, l_rest) = (rr, lr);
    }
    slices
}

/// The pool's group offsets from each partition's own (`starts`: its groups' first rows within
/// the partition, then its row count; `sizes`: its rows), partitions in order.
pub(crate) fn join_starts<'a>(
    starts: impl Iterator<Item = &'a [u32]>,
    sizes: &[usize],
    n_groups: usize,
) -> Vec<u32> {
    let mut group_start = Vec::with_capacity(n_groups + 1);
    let mut base = 0u32;
    for (start, &size) in starts.zip(sizes) {
        group_start.extend(start[..start.len() - 1].iter().map(|&s| base + s));
        base += size as u32;
    }
    group_start.push(base);
    group_start
}

/// The checks both constructors share: as many languages as group ids, a language count in
/// `1..=MAX_LANGS`, and `1..=u32::MAX` rows. Returns the number of rows.
fn check_sizes(n_ids: usize, n_lang_entries: usize, n_langs: usize) -> CoreResult<usize> {
    if n_lang_entries != n_ids {
        return Err(CoreError::shape(
            "langs",
            format!("has {n_lang_entries} entries but group_ids has {n_ids}"),
        ));
    }
    if n_langs == 0 || n_langs > MAX_LANGS {
        return Err(CoreError::value(
            "n_langs",
            format!("must be in 1..={MAX_LANGS}, got {n_langs}"),
        ));
    }
    if n_ids == 0 {
        return Err(CoreError::value("group_ids", "the pool is empty"));
    }
    if n_ids > u32::MAX as usize {
        return Err(CoreError::value(
            "group_ids",
            "more than 4294967295 rows are not supported",
        ));
    }
    Ok(n_ids)
}

/// Per row, a compact non-negative key of its group that orders as the ids do (`id - min` when
/// the ids span a compact range, else the rank among the distinct ids), and the key span.
fn group_keys(ids: &[i64]) -> (Vec<u64>, u64) {
    let (mn, mx) = ids
        .iter()
        .fold((i64::MAX, i64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let span = mx as i128 - mn as i128 + 1;
    if span <= 4 * ids.len() as i128 + 1024 {
        let keys = ids
            .iter()
            .map(|&x| (x as i128 - mn as i128) as u64)
            .collect();
        return (keys, span as u64);
    }
    // Sparse ids: number the distinct ids in sorted order, like the compact path.
    let mut uniq = ids.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    let map: HashMap<i64, u64> = uniq
        .iter()
        .enumerate()
        .map(|(i, &x)| (x, i as u64))
        .collect();
    let keys = ids
        .iter()
        .map(|x| map.get(x).copied().unwrap_or(0))
        .collect();
    (keys, uniq.len() as u64)
}

/// Digit width of the radix sort.
const RADIX_BITS: u32 = 11;

/// Sorts `keys` by their bits from `low` up (the bits below, a row index, keep equal keys in
/// input order). One stable scatter on the top digit (bits from `low + top_shift`, histogram
/// `counts`), then the buckets, small enough to stay in cache, sorted in parallel by an 8-bit
/// LSD sort.
fn radix_sort_packed(keys: &mut Vec<u64>, low: u32, top_shift: u32, counts: &[usize]) {
    let n = keys.len();
    let top_shift = low + top_shift;
    let mut k2 = vec![0u64; n];
    let mut offs = vec![0usize; counts.len()];
    let mut acc = 0;
    for (o, &c) in offs.iter_mut().zip(counts) {
        *o = acc;
        acc += c;
    }
    for &k in keys.iter() {
        let d = (k >> top_shift) as usize;
        k2[offs[d]] = k;
        offs[d] += 1;
    }
    let mut buckets: Vec<&mut [u64]> = Vec::with_capacity(counts.len());
    let mut rest: &mut [u64] = &mut k2;
    for &c in counts {
        let (head, tail) = rest.split_at_mut(c);
        if c > 1 {
            buckets.push(head);
        }
        rest = tail;
    }
    buckets
        .into_par_iter()
        .for_each_init(Vec::new, |tmp, b| lsd8(b, tmp, low, top_shift));
    *keys = k2;
}

/// Stable LSD sort of a small slice by its bits `from..to`, 8 bits a pass.
fn lsd8(b: &mut [u64], tmp: &mut Vec<u64>, from: u32, to: u32) {
    tmp.clear();
    tmp.resize(b.len(), 0);
    let mut in_b = true;
    let mut shift = from;
    while shift < to {
        let (src, dst): (&[u64], &mut [u64]) = if in_b { (b, tmp) } else { (tmp, b) };
        let mut offs = [0usize; 256];
        for &k in src {
            offs[((k >> shift) & 0xff) as usize] += 1;
        }
        let mut acc = 0;
        for o in offs.iter_mut() {
            let c = *o;
            *o = acc;
            acc += c;
        }
        for &k in src {
            let d = ((k >> shift) & 0xff) as usize;
            dst[offs[d]] = k;
            offs[d] += 1;
        }
        in_b = !in_b;
        shift += 8;
    }
    if !in_b {
        b.copy_from_slice(tmp);
    }
}

/// Stable LSD radix sort of `keys` (using their low `bits` bits), permuting `rows` alike.
fn radix_sort(keys: &mut Vec<u64>, rows: &mut Vec<u32>, bits: u32) {
    let n = keys.len();
    let mut k2 = vec![0u64; n];
    let mut r2 = vec![0u32; n];
    let mask = (1u64 << RADIX_BITS) - 1;
    let mut shift = 0;
    while shift < bits {
        let mut offs = vec![0usize; 1 << RADIX_BITS];
        for &k in keys.iter() {
            offs[((k >> shift) & mask) as usize] += 1;
        }
        if offs.contains(&n) {
            shift += RADIX_BITS;
            continue; // every key has the same digit: nothing to move
        }
        let mut acc = 0;
        for o in offs.iter_mut() {
            let c = *o;
            *o = acc;
            acc += c;
        }
        for (&k, &r) in keys.iter().zip(rows.iter()) {
            let d = ((k >> shift) & mask) as usize;
            k2[offs[d]] = k;
            r2[offs[d]] = r;
            offs[d] += 1;
        }
        std::mem::swap(keys, &mut k2);
        std::mem::swap(rows, &mut r2);
        shift += RADIX_BITS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_counts() {
        // groups (in id order): -5 -> {0, 2}, 3 -> {1}, 7 -> langs {0, 1, 2}
        let g = [7, 3, 7, -5, 7, -5];
        let l = [2, 1, 0, 0, 1, 2];
        let p = PairPool::from_arrays(&g, &l, 3).unwrap();
        assert_eq!(p.n_groups(), 3);
        assert_eq!(p.n_rows(), 6);
        assert_eq!(p.group(2), (&[2u32, 4, 0][..], &[0u8, 1, 2][..]));
        assert_eq!(p.group(1), (&[1u32][..], &[1u8][..]));
        let s = p.stats();
        assert_eq!(s.rows_per_lang, vec![2, 2, 2]);
        assert_eq!(s.mono_pairs, 6);
        assert_eq!(s.cross_pairs, 6 + 2);
        assert_eq!(s.groups_by_size, vec![0, 1, 1, 1]);
        assert_eq!(s.pair_counts[2], 2); // 0 -> 2 in groups 7 and -5
        let f = p.filter(Some(&[true, false, true]), 2).unwrap();
        assert_eq!(f.n_groups(), 2);
        assert_eq!(f.group(1).0, &[2u32, 0][..]);
        assert!(p.filter(Some(&[false, false, false]), 1).is_err());
    }

    #[test]
    fn errors_name_the_row() {
        let e = PairPool::from_arrays(&[1, 1], &[0, 0], 2).unwrap_err();
        assert!(e.to_string().contains("rows 0 and 1"));
        let e = PairPool::from_arrays(&[1, 2], &[0, 5], 2).unwrap_err();
        assert!(e.to_string().contains("row 1"));
        assert!(PairPool::from_arrays(&[], &[], 2).is_err());
        assert!(PairPool::from_arrays(&[1], &[0, 1], 2).is_err());
    }

    #[test]
    fn radix_paths_match_a_plain_sort() {
        let mut rng = crate::sampler::Rng::new(3);
        for (n_groups, spread) in [(5000i64, 1i64), (300, 1_000_003), (70_000, 3)] {
            let mut g = Vec::new();
            let mut l = Vec::new();
            for i in 0..n_groups {
                for lang in 0..6 {
                    if rng.below(4) > 0 {
                        g.push(i * spread - 77);
                        l.push(lang);
                    }
                }
            }
            // shuffle the rows
            for i in (1..g.len()).rev() {
                let j = rng.below(i + 1);
                g.swap(i, j);
                l.swap(i, j);
            }
            let p = PairPool::from_arrays(&g, &l, 6).unwrap();
            let mut want: Vec<(i64, i64, u32)> =
                (0..g.len()).map(|i| (g[i], l[i], i as u32)).collect();
            want.sort_unstable();
            let mut got = Vec::new();
            for k in 0..p.n_groups() {
                let (rows, langs) = p.group(k);
                for (&r, &lang) in rows.iter().zip(langs) {
                    assert_eq!(l[r as usize], i64::from(lang));
                    got.push((g[r as usize], i64::from(lang), r));
                }
            }
            assert_eq!(got, want);
        }
    }

    #[test]
    fn dense_codes_build_the_same_pool() {
        let mut rng = crate::sampler::Rng::new(11);
        for n_groups in [1usize, 7, 5000, 90_000] {
            let (mut g, mut l) = (Vec::new(), Vec::new());
            for i in 0..n_groups {
                let k = 1 + rng.below(5);
                for lang in 0..k {
                    g.push(i as u32);
                    l.push(((lang * 7 + i) % 9) as u32);
                }
            }
            for i in (1..g.len()).rev() {
                let j = rng.below(i + 1);
                g.swap(i, j);
                l.swap(i, j);
            }
            let wide = |v: &[u32]| v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>();
            let want = PairPool::from_arrays(&wide(&g), &wide(&l), 9).unwrap();
            assert_eq!(PairPool::from_dense(&g, n_groups, &l, 9).unwrap(), want);
            if n_groups > 1 {
                // a duplicate (group, language): the same rows as the sorting path names
                let (a, b) = (g.len() / 3, g.len() / 2);
                let (mut g2, mut l2) = (g.clone(), l.clone());
                (g2[b], l2[b]) = (g2[a], l2[a]);
                let e = PairPool::from_dense(&g2, n_groups, &l2, 9);
                let rows = |s: String| s.split(" have").next().map(str::to_string);
                let want = PairPool::from_arrays(&wide(&g2), &wide(&l2), 9);
                match (e, want) {
                    (Err(x), Err(y)) => assert_eq!(rows(x.to_string()), rows(y.to_string())),
                    // b held the only row of its group: the dense codes now skip that code
                    (Err(x), Ok(_)) => assert!(x.to_string().contains("has no rows"), "{x}"),
                    (x, y) => panic!("{x:?} {y:?}"),
                }
            }
        }
        assert!(PairPool::from_dense(&[0, 2], 3, &[0, 0], 1)
            .unwrap_err()
            .to_string()
            .contains("group code 1 has no rows"));
        assert!(PairPool::from_dense(&[0, 5], 3, &[0, 0], 1)
            .unwrap_err()
            .to_string()
            .contains("row 1 has group code 5"));
        assert!(PairPool::from_dense(&[0, 1], 2, &[0, 3], 2)
            .unwrap_err()
            .to_string()
            .contains("row 1 has language code 3"));
        assert!(PairPool::from_dense(&[], 0, &[], 1).is_err());
        assert!(PairPool::from_dense(&[0], 1, &[0, 0], 1).is_err());
    }

    #[test]
    fn sparse_ids_use_the_hash_path() {
        let g = [i64::MAX, i64::MIN, i64::MAX];
        let l = [0, 0, 1];
        let p = PairPool::from_arrays(&g, &l, 2).unwrap();
        assert_eq!(p.n_groups(), 2);
        assert_eq!(p.group(0).0, &[1u32][..]);
        assert_eq!(p.group(1).0, &[0u32, 2][..]);
    }
}
