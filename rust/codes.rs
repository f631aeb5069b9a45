//! Dense codes for string ids: every distinct string gets a number `0..D`, rows are hashed in
//! parallel and no per-row allocation is made.
//!
//! Strings are byte keys read from one of two layouts, the ones the Python side hands over
//! without copying: fixed-width cells (numpy `<U` arrays, 4-byte code units, and `S` arrays,
//! 1-byte units, both padded with zero units at the end) or a data buffer with offsets
//! (pyarrow string arrays, and Python lists copied once into that layout).
//!
//! Algorithm: rows are read in order, one chunk per thread, each chunk numbering its distinct
//! strings in a hash table keyed by a 64-bit hash (strings compared exactly on a hit, so a hash
//! collision cannot merge two ids); the chunks' numberings are merged in row order (first-seen
//! ids), optionally renumbered by sorting the distinct strings, and a parallel pass writes each
//! row's code.

use crate::error::{CoreError, CoreResult};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// How distinct strings are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdOrder {
    /// In the order of their first row.
    FirstSeen,
    /// In code-point order of the strings (as `numpy.unique` sorts them).
    Sorted,
}

/// Byte keys of `n` rows.
#[derive(Debug, Clone, Copy)]
pub enum Keys<'a> {
    /// `n` cells of `width` bytes; trailing zero units of `unit` bytes (1 or 4) are padding.
    Fixed {
        /// The cells, row after row.
        data: &'a [u8],
        /// Bytes per cell.
        width: usize,
        /// Bytes per code unit: 1 (bytes / UTF-8) or 4 (UCS-4, little-endian).
        unit: usize,
    },
    /// Row `i` is `data[offsets[i]..offsets[i + 1]]` (UTF-8).
    Offsets {
        /// The concatenated strings.
        data: &'a [u8],
        /// `n + 1` non-decreasing offsets into `data`.
        offsets: &'a [i64],
    },
}

impl<'a> Keys<'a> {
    /// Checks the layout: returns the number of rows.
    pub fn validate(&self, field: &'static str) -> CoreResult<usize> {
        match *self {
            Keys::Fixed { data, width, unit } => {
                if unit != 1 && unit != 4 {
                    return Err(CoreError::value(
                        field,
                        format!("unit must be 1 or 4, got {unit}"),
                    ));
                }
                if width == 0 || width % unit != 0 || data.len() % width != 0 {
                    return Err(CoreError::shape(
                        field,
                        format!("{} bytes do not split into cells of {width}", data.len()),
                    ));
                }
                Ok(data.len() / width)
            }
            Keys::Offsets { data, offsets } => {
                if offsets.is_empty() {
                    return Err(CoreError::shape(field, "offsets: needs n + 1 entries"));
                }
                let mut prev = 0i64;
                for (i, &o) in offsets.iter().enumerate() {
                    if o < prev || o as u64 > data.len() as u64 || (i == 0 && o < 0) {
                        return Err(CoreError::value(
                            field,
                            format!("offsets: entry {i} ({o}) is out of order or beyond the data"),
                        ));
                    }
                    prev = o;
                }
                Ok(offsets.len() - 1)
            }
        }
    }

    /// The key of row `i` (without padding). The layout has been validated.
    #[inline]
    fn key(&self, i: usize) -> &'a [u8] {
        match *self {
            Keys::Fixed { data, width, unit } => {
                let cell = &data[i * width..(i + 1) * width];
                let mut end = width;
                while end >= unit && cell[end - unit..end].iter().all(|&b| b == 0) {
                    end -= unit;
                }
                &cell[..end]
            }
            Keys::Offsets { data, offsets } => &data[offsets[i] as usize..offsets[i + 1] as usize],
        }
    }

    /// A `u64` whose order is the code-point order of the key's start (ties: compare fully).
    fn prefix(&self, key: &[u8]) -> u64 {
        if let Keys::Fixed { unit: 4, .. } = *self {
            // the first two code points (21 bits each) in the high bits
            let cp = |i: usize| -> u64 {
                key.get(4 * i..4 * i + 4).map_or(0, |c| {
                    u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                })
            };
            return (cp(0) << 32) | cp(1);
        }
        let mut b = [0u8; 8];
        let m = key.len().min(8);
        b[..m].copy_from_slice(&key[..m]);
        u64::from_be_bytes(b)
    }

    /// Code-point order of two keys of this layout.
    fn cmp_keys(&self, a: &[u8], b: &[u8]) -> Ordering {
        if let Keys::Fixed { unit: 4, .. } = *self {
            fn le(c: &[u8]) -> u32 {
                u32::from_le_bytes([c[0], c[1], c[2], c[3]])
            }
            return a.chunks_exact(4).map(le).cmp(b.chunks_exact(4).map(le));
        }
        a.cmp(b) // UTF-8 byte order is code-point order
    }
}

/// The codes of every row and, per code, the first row holding that string.
#[derive(Debug, Clone, PartialEq)]
pub struct StringCodes {
    /// Code of each row, `0..first_rows.len()`.
    pub codes: Vec<u32>,
    /// For each code, the first row with its string.
    pub first_rows: Vec<u32>,
}

/// FxHash-style multiply-rotate hasher over 8-byte words (fast; not DoS-resistant, which
/// does not matter for ids the caller owns).
fn hash_bytes(s: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = (s.len() as u64).wrapping_mul(K);
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    // final avalanche (murmur3 fmix64) so that the top bits pick buckets evenly
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Passes a precomputed `u64` through (the keys are already well-mixed hashes).
#[derive(Default)]
struct PassThrough(u64);
impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, x: u64) {
        // the top bits chose the bucket and are equal for every key in it: rotate them away
        // from the bits the table uses for its tags (top) and slots (bottom)
        self.0 = x.rotate_left(32);
    }
}

/// Bits of the hash that choose a bucket (4 to 8 measured alike).
const BUCKET_BITS: u32 = 6;

/// One thread-chunk's rows of one bucket, in row order: `(hash, row, end of its bytes)` and
/// the strings' bytes one after the other (a bucket may hold more than 4 GiB of them).
#[derive(Default)]
struct Part {
    meta: Vec<(u64, u32, usize)>,
    bytes: Vec<u8>,
}

/// Dense codes of the strings of `keys`. Empty strings are refused (naming the row), as are
/// more than `u32::MAX` rows.
///
/// Cache-friendly passes: (1) each thread reads its chunk of rows in order and appends each
/// row's hash, index and bytes to one of 64 buckets (by the hash's top bits); (2) each
/// bucket, a few thousand distinct strings, is numbered by one thread with a hash table that
/// stays in cache, strings compared exactly on a hash hit, reading its rows in order; (3) one
/// global numbering by first row or by sorting the distinct strings; (4) the codes written.
pub fn string_codes(
    keys: &Keys<'_>,
    order: IdOrder,
    field: &'static str,
) -> CoreResult<StringCodes> {
    let n = keys.validate(field)?;
    if n > u32::MAX as usize {
        return Err(CoreError::value(
            field,
            "more than 4294967295 rows are not supported",
        ));
    }
    let nb = 1usize << BUCKET_BITS;
    let chunk = n.div_ceil(rayon::current_num_threads().max(1)).max(1 << 15);
    // 1. partition
    let parts: Vec<Vec<Part>> = (0..n.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let mut out: Vec<Part> = (0..nb).map(|_| Part::default()).collect();
            for row in c * chunk..((c + 1) * chunk).min(n) {
                let key = keys.key(row);
                let h = hash_bytes(key);
                let p = &mut out[(h >> (64 - BUCKET_BITS)) as usize];
                p.bytes.extend_from_slice(key);
                p.meta.push((h, row as u32, p.bytes.len()));
            }
            out
        })
        .collect();
    if let Some(row) = parts
        .iter()
        .flat_map(|ps| ps.iter())
        .flat_map(|p| {
            let mut start = 0usize;
            p.meta.iter().filter_map(move |&(_, r, end)| {
                let empty = end == start;
                start = end;
                empty.then_some(r)
            })
        })
        .min()
    {
        return Err(CoreError::value(
            field,
            format!("row {row} is an empty string; ids and language codes must be non-empty"),
        ));
    }
    // 2. per bucket: local ids (rows in order) and first rows of its distinct strings
    let buckets: Vec<(Vec<u32>, Vec<u32>)> = (0..nb)
        .into_par_iter()
        .map(|b| {
            let mut map: HashMap<u64, u32, BuildHasherDefault<PassThrough>> = HashMap::default();
            let mut reps: Vec<(&[u8], u32)> = Vec::new(); // first string and row of each id
            let mut collided: HashMap<&[u8], u32> = HashMap::new();
            let mut ids = Vec::new();
            for part in parts.iter().map(|ps| &ps[b]) {
                let mut start = 0usize;
                for &(h, row, end) in &part.meta {
                    let key = &part.bytes[start..end];
                    start = end;
                    let next = reps.len() as u32;
                    let id = match map.entry(h) {
                        Entry::Vacant(v) => {
                            v.insert(next);
                            reps.push((key, row));
                            next
                        }
                        Entry::Occupied(o) if reps[*o.get() as usize].0 == key => *o.get(),
                        // a true 64-bit collision: exact lookup among the collided strings
                        Entry::Occupied(_) => *collided.entry(key).or_insert_with(|| {
                            reps.push((key, row));
                            next
                        }),
                    };
                    ids.push(id);
                }
            }
            (ids, reps.iter().map(|&(_, r)| r).collect())
        })
        .collect();
    // 3. one numbering: (first row, bucket, local id) of every distinct string
    let mut all: Vec<(u32, u32, u32)> = buckets
        .iter()
        .enumerate()
        .flat_map(|(b, (_, firsts))| {
            firsts
                .iter()
                .enumerate()
                .map(move |(j, &r)| (r, b as u32, j as u32))
        })
        .collect();
    match order {
        IdOrder::FirstSeen => all.par_sort_unstable_by_key(|&(r, _, _)| r),
        IdOrder::Sorted => {
            // an order-preserving 8-byte prefix of each string first (one read per distinct
            // string), the full comparison only on equal prefixes
            let mut pre: Vec<(u64, (u32, u32, u32))> = all
                .par_iter()
                .map(|&x| (keys.prefix(keys.key(x.0 as usize)), x))
                .collect();
            pre.par_sort_unstable_by(|a, b| {
                a.0.cmp(&b.0).then_with(|| {
                    keys.cmp_keys(keys.key(a.1 .0 as usize), keys.key(b.1 .0 as usize))
                })
            });
            all = pre.into_iter().map(|(_, x)| x).collect();
        }
    }
    let mut table: Vec<Vec<u32>> = buckets.iter().map(|(_, f)| vec![0u32; f.len()]).collect();
    for (code, &(_, b, j)) in all.iter().enumerate() {
        table[b as usize][j as usize] = code as u32;
    }
    let first_rows = all.iter().map(|&(r, _, _)| r).collect();
    // 4. the codes, bucket by bucket (rows of a bucket in the order pass 2 read them)
    let mut codes = vec![0u32; n];
    for (b, (ids, _)) in buckets.iter().enumerate() {
        let rows = parts.iter().flat_map(|ps| ps[b].meta.iter().map(|m| m.1));
        for (row, &id) in rows.zip(ids) {
            codes[row as usize] = table[b][id as usize];
        }
    }
    Ok(StringCodes { codes, first_rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets_of(strs: &[&str]) -> (Vec<u8>, Vec<i64>) {
        let mut data = Vec::new();
        let mut off = vec![0i64];
        for s in strs {
            data.extend_from_slice(s.as_bytes());
            off.push(data.len() as i64);
        }
        (data, off)
    }

    fn reference(strs: &[&str], order: IdOrder) -> StringCodes {
        let mut firsts: Vec<(String, u32)> = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (i, s) in strs.iter().enumerate() {
            seen.entry(s.to_string()).or_insert_with(|| {
                firsts.push((s.to_string(), i as u32));
            });
        }
        if order == IdOrder::Sorted {
            firsts.sort();
        }
        let code: std::collections::HashMap<String, u32> = firsts
            .iter()
            .enumerate()
            .map(|(c, (s, _))| (s.clone(), c as u32))
            .collect();
        StringCodes {
            codes: strs.iter().map(|s| code[*s]).collect(),
            first_rows: firsts.iter().map(|(_, r)| *r).collect(),
        }
    }

    #[test]
    fn both_layouts_and_orders_match_a_plain_reference() {
        let mut rng = crate::sampler::Rng::new(5);
        let words: Vec<String> = (0..3000)
            .map(|i| format!("q{}-é{}", rng.below(700), i % 3))
            .chain(["z".into(), "ä".into(), "a".into(), "日本".into()])
            .collect();
        let strs: Vec<&str> = words.iter().map(|s| s.as_str()).collect();
        for order in [IdOrder::FirstSeen, IdOrder::Sorted] {
            let want = reference(&strs, order);
            let (data, off) = offsets_of(&strs);
            let keys = Keys::Offsets {
                data: &data,
                offsets: &off,
            };
            assert_eq!(string_codes(&keys, order, "ids").unwrap(), want);
            // UCS-4 fixed width, as numpy '<U' arrays hold them
            let width = 4 * strs.iter().map(|s| s.chars().count()).max().unwrap();
            let mut cells = vec![0u8; width * strs.len()];
            for (i, s) in strs.iter().enumerate() {
                for (j, ch) in s.chars().enumerate() {
                    cells[i * width + 4 * j..i * width + 4 * j + 4]
                        .copy_from_slice(&(ch as u32).to_le_bytes());
                }
            }
            let keys = Keys::Fixed {
                data: &cells,
                width,
                unit: 4,
            };
            assert_eq!(string_codes(&keys, order, "ids").unwrap(), want);
        }
    }

    #[test]
    fn bad_input_is_an_error_naming_the_row() {
        let (data, off) = offsets_of(&["a", "", "b"]);
        let keys = Keys::Offsets {
            data: &data,
            offsets: &off,
        };
        let e = string_codes(&keys, IdOrder::Sorted, "ids").unwrap_err();
        assert!(e.to_string().contains("row 1"), "{e}");
        let bad = Keys::Offsets {
            data: &data,
            offsets: &[0, 5],
        };
        assert!(string_codes(&bad, IdOrder::Sorted, "ids").is_err());
        let bad = Keys::Fixed {
            data: &[1, 0, 0],
            width: 2,
            unit: 1,
        };
        assert!(string_codes(&bad, IdOrder::Sorted, "ids").is_err());
        let bad = Keys::Fixed {
            data: &[1, 0, 0, 0],
            width: 4,
            unit: 3,
        };
        assert!(string_codes(&bad, IdOrder::Sorted, "ids").is_err());
    }
}
