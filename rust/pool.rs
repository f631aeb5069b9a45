//! Parallel pair pools: one row per (group, language), grouped compactly.
//!
//! A *group* is one question id; its rows are that question (and its passage) in the languages
//! it exists in. After construction the pool keeps, per row, its index into the caller's
//! arrays (u32) and its language (u8), sorted by (group, language), plus one offset per group:
//! about 9 bytes per row.

use crate::error::{CoreError, CoreResult};
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
        if group_ids.len() != langs.len() {
            return Err(CoreError::shape(
                "langs",
                format!(
                    "has {} entries but group_ids has {}",
                    langs.len(),
                    group_ids.len()
                ),
            ));
        }
        if n_langs == 0 || n_langs > MAX_LANGS {
            return Err(CoreError::value(
                "n_langs",
                format!("must be in 1..={MAX_LANGS}, got {n_langs}"),
            ));
        }
        let n = group_ids.len();
        if n == 0 {
            return Err(CoreError::value("group_ids", "the pool is empty"));
        }
        if n > u32::MAX as usize {
            return Err(CoreError::value(
                "group_ids",
                "more than 4294967295 rows are not supported",
            ));
        }
        for (i, &l) in langs.iter().enumerate() {
            if l < 0 || l as usize >= n_langs {
                return Err(CoreError::value(
                    "langs",
                    format!("row {i} has language code {l}, outside 0..{n_langs}"),
                ));
            }
        }
        let dense = dense_ids(group_ids);
        let n_groups = dense.iter().copied().max().map_or(0, |m| m as usize + 1);
        // Counting sort by group.
        let mut start = vec![0u32; n_groups + 1];
        for &g in &dense {
            start[g as usize + 1] += 1;
        }
        for g in 0..n_groups {
            start[g + 1] += start[g];
        }
        let mut fill = start.clone();
        let mut rows = vec![0u32; n];
        for (i, &g) in dense.iter().enumerate() {
            let slot = &mut fill[g as usize];
            rows[*slot as usize] = i as u32;
            *slot += 1;
        }
        drop(fill);
        drop(dense);
        // Within each group: order by language, refuse duplicates.
        let mut out_langs = vec![0u8; n];
        for g in 0..n_groups {
            let (a, b) = (start[g] as usize, start[g + 1] as usize);
            let seg = &mut rows[a..b];
            seg.sort_unstable_by_key(|&r| (langs[r as usize], r));
            for k in 0..seg.len() {
                let l = langs[seg[k] as usize];
                if k > 0 && langs[seg[k - 1] as usize] == l {
                    return Err(CoreError::value(
                        "group_ids",
                        format!(
                            "rows {} and {} have the same group id ({}) and language code {l}",
                            seg[k - 1],
                            seg[k],
                            group_ids[seg[k] as usize]
                        ),
                    ));
                }
                out_langs[a + k] = l as u8;
            }
        }
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

/// Dense group ids `0..G` in order of first appearance. Ids already in a compact non-negative
/// range are mapped through a table; others through a hash map.
fn dense_ids(ids: &[i64]) -> Vec<u32> {
    let (mn, mx) = ids
        .iter()
        .fold((i64::MAX, i64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let n = ids.len() as i128;
    let span = mx as i128 - mn as i128 + 1;
    let mut out = Vec::with_capacity(ids.len());
    let mut next = 0u32;
    if span <= 2 * n + 1024 {
        let mut table = vec![u32::MAX; span as usize];
        for &x in ids {
            let slot = &mut table[(x - mn) as usize];
            if *slot == u32::MAX {
                *slot = next;
                next += 1;
            }
            out.push(*slot);
        }
    } else {
        let mut map: HashMap<i64, u32> = HashMap::with_capacity(ids.len() / 2);
        for &x in ids {
            let id = *map.entry(x).or_insert_with(|| {
                next += 1;
                next - 1
            });
            out.push(id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_counts() {
        // groups: 7 -> langs {0, 1, 2}, 3 -> {1}, -5 -> {0, 2}
        let g = [7, 3, 7, -5, 7, -5];
        let l = [2, 1, 0, 0, 1, 2];
        let p = PairPool::from_arrays(&g, &l, 3).unwrap();
        assert_eq!(p.n_groups(), 3);
        assert_eq!(p.n_rows(), 6);
        assert_eq!(p.group(0), (&[2u32, 4, 0][..], &[0u8, 1, 2][..]));
        assert_eq!(p.group(1), (&[1u32][..], &[1u8][..]));
        let s = p.stats();
        assert_eq!(s.rows_per_lang, vec![2, 2, 2]);
        assert_eq!(s.mono_pairs, 6);
        assert_eq!(s.cross_pairs, 6 + 2);
        assert_eq!(s.groups_by_size, vec![0, 1, 1, 1]);
        assert_eq!(s.pair_counts[2], 2); // 0 -> 2 in groups 7 and -5
        let f = p.filter(Some(&[true, false, true]), 2).unwrap();
        assert_eq!(f.n_groups(), 2);
        assert_eq!(f.group(0).0, &[2u32, 0][..]);
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
    fn sparse_ids_use_the_hash_path() {
        let g = [i64::MAX, i64::MIN, i64::MAX];
        let l = [0, 0, 1];
        let p = PairPool::from_arrays(&g, &l, 2).unwrap();
        assert_eq!(p.n_groups(), 2);
        assert_eq!(p.group(0).0, &[0u32, 2][..]);
    }
}
