//! Dense codes for string ids: every distinct string gets a number `0..D`, rows are hashed in
//! parallel and no per-row allocation is made.
//!
//! Strings are byte keys read from one of two layouts, the ones the Python side hands over
//! without copying: fixed-width cells (numpy `<U` arrays, 4-byte code units, and `S` arrays,
//! 1-byte units, both padded with zero units at the end) or a data buffer with offsets
//! (pyarrow string arrays, and Python lists copied once into that layout).
//!
//! Algorithm (see [`string_codes`]): few distinct strings (language codes) are numbered in
//! place, chunk by chunk, with small tables that stay in L1; many (question ids) are hash-
//! partitioned into up to 256 buckets (short keys packed with their row in 16 bytes, gathered
//! through write-combining buffers), each bucket numbered in cache, strings compared exactly (a
//! hash collision cannot merge two ids); then one numbering by first row or by sorting the
//! distinct strings, and each thread writes the codes of its chunk of rows.

use crate::error::{CoreError, CoreResult};
use crate::partition::{Lines, Partitioner};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

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
        offsets: Offsets<'a>,
    },
}

/// Offsets into the data of [`Keys::Offsets`]: 32-bit (pyarrow `string`) or 64-bit (pyarrow
/// `large_string`, and lists of `str`), read as they are.
#[derive(Debug, Clone, Copy)]
pub enum Offsets<'a> {
    /// `int32` offsets.
    I32(&'a [i32]),
    /// `int64` offsets.
    I64(&'a [i64]),
}

impl Offsets<'_> {
    fn len(&self) -> usize {
        match *self {
            Offsets::I32(o) => o.len(),
            Offsets::I64(o) => o.len(),
        }
    }

    /// Entry `i`, widened.
    #[inline(always)]
    fn at(&self, i: usize) -> i64 {
        match *self {
            Offsets::I32(o) => i64::from(o[i]),
            Offsets::I64(o) => o[i],
        }
    }

    /// Row `i`'s byte range (the offsets validated).
    #[inline(always)]
    fn span(&self, i: usize) -> (usize, usize) {
        (self.at(i) as usize, self.at(i + 1) as usize)
    }
}

/// Whether `o` never decreases: chunks of 64Ki entries (each with the next chunk's first) in
/// parallel, each a branch-free fold.
fn non_decreasing<T: PartialOrd + Copy + Sync>(o: &[T]) -> bool {
    const CHUNK: usize = 1 << 16;
    let n = o.len();
    (0..n.saturating_sub(1).div_ceil(CHUNK))
        .into_par_iter()
        .all(|c| {
            let part = &o[c * CHUNK..((c + 1) * CHUNK + 1).min(n)];
            part.windows(2).fold(true, |ok, w| ok & (w[0] <= w[1]))
        })
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
                if offsets.len() == 0 {
                    return Err(CoreError::shape(field, "offsets: needs n + 1 entries"));
                }
                let last = offsets.at(offsets.len() - 1);
                let ordered = match offsets {
                    Offsets::I32(o) => non_decreasing(o),
                    Offsets::I64(o) => non_decreasing(o),
                };
                if ordered && offsets.at(0) >= 0 && last as u64 <= data.len() as u64 {
                    return Ok(offsets.len() - 1);
                }
                // the first bad entry, for the message
                let mut prev = 0i64;
                for (i, o) in (0..offsets.len()).map(|i| (i, offsets.at(i))) {
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
            Keys::Offsets { data, offsets } => {
                let (s, e) = offsets.span(i);
                &data[s..e]
            }
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
    fmix64(h)
}

/// murmur3's final avalanche, so that the top bits pick buckets evenly.
#[inline]
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Hash of an inline key.
#[inline]
fn hash_inline(k: u128) -> u64 {
    let (hi, lo) = ((k >> 64) as u64, k as u64);
    fmix64((hi.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ lo).wrapping_mul(0x517c_c1b7_2722_0a95))
}

/// Hasher of the numbering tables: byte keys through [`hash_bytes`], `u64` keys (already
/// hashes) passed through. The top bits, which chose the bucket and are equal for every key in
/// it, are rotated away from the bits the table uses for its tags (top) and slots (bottom).
#[derive(Default)]
struct KeyHasher(u64);
impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_bytes(bytes).rotate_left(32);
    }
    fn write_usize(&mut self, _: usize) {} // the length prefix of a slice key: in hash_bytes
    fn write_u64(&mut self, x: u64) {
        self.0 = x.rotate_left(32);
    }
}
type Table<K> = HashMap<K, u32, BuildHasherDefault<KeyHasher>>;

/// Open-addressing table of inline keys (`entry >> 32` of [`Keys::inline`], never 0): each
/// slot holds `key << 32 | id` (0 = empty), one 16-byte slot read per lookup.
pub(crate) struct InlineTable {
    slots: Vec<u128>,
    len: usize,
}

impl InlineTable {
    pub(crate) fn new(expected: usize) -> Self {
        InlineTable {
            slots: vec![0; (2 * expected).next_power_of_two().max(16)],
            len: 0,
        }
    }

    /// Multiplicative hash: the top bits of one product (independent of the bucket's bits).
    #[inline(always)]
    fn slot(key: u128, shift: u32) -> usize {
        let h = ((key as u64) ^ ((key >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_mul(0xd6e8_feb8_6659_fd93);
        (h >> shift) as usize
    }

    /// The id of `key`, or `next` after inserting it (then `true`).
    #[inline(always)]
    pub(crate) fn id(&mut self, key: u128, next: u32) -> (u32, bool) {
        let mask = self.slots.len() - 1;
        let mut i = Self::slot(key, 64 - self.slots.len().trailing_zeros());
        loop {
            let s = self.slots[i];
            if s == 0 {
                self.slots[i] = (key << 32) | u128::from(next);
                self.len += 1;
                if 2 * self.len > self.slots.len() {
                    self.grow();
                }
                return (next, true);
            }
            if s >> 32 == key {
                return (s as u32, false);
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let bigger = vec![0; 2 * self.slots.len()];
        let old = std::mem::replace(&mut self.slots, bigger);
        let mask = self.slots.len() - 1;
        let shift = 64 - self.slots.len().trailing_zeros();
        for s in old.into_iter().filter(|&s| s != 0) {
            let mut i = Self::slot(s >> 32, shift);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }
}

/// A distinct string found by a numbering pass: its first row and what orders it.
#[derive(Debug, Clone, Copy)]
struct Rep {
    /// The whole key packed by [`Keys::inline`] (`entry >> 32`: code-point order = integer
    /// order), or 0.
    inline: u128,
    /// [`Keys::prefix`] of the key.
    prefix: u64,
    /// First row holding the string.
    row: u32,
}

impl<'a> Keys<'a> {
    /// The key of row `i` packed with its row into 16 bytes when it is short (at most
    /// [`INLINE`] bytes, or UCS-4 code points that are all ASCII, one byte each): the key's bytes
    /// from the top, its length in byte 11, the row in the low 32 bits. Equal packed keys
    /// (`entry >> 32`) are equal strings, and their integer order is code-point order.
    #[inline(always)]
    pub(crate) fn inline(&self, i: usize) -> Option<u128> {
        match self.inline_fixed(i) {
            Some(packed) => packed,
            None => self.inline_general(i),
        }
    }

    /// [`Keys::inline`] for any layout and row, from the key's bytes.
    #[inline(always)]
    fn inline_general(&self, i: usize) -> Option<u128> {
        let mut b = [0u8; 16];
        match *self {
            Keys::Offsets { data, offsets } => {
                let (s, e) = offsets.span(i);
                let len = e - s;
                if len > INLINE {
                    return None;
                }
                if let Some(w) = data.get(s..s + 16) {
                    // one unaligned 16-byte load, the bytes past the key masked off
                    let mut word = [0u8; 16];
                    word.copy_from_slice(w);
                    let v = u128::from_be_bytes(word);
                    let keep = if len == 0 {
                        0
                    } else {
                        !0u128 << (8 * (16 - len))
                    };
                    return Some((v & keep) | ((len as u128) << 32 | i as u128));
                }
                b[..len].copy_from_slice(&data[s..e]);
                b[11] = len as u8;
            }
            Keys::Fixed { unit: 4, .. } => {
                let key = self.key(i);
                if key.len() > 4 * INLINE {
                    return None;
                }
                for (j, c) in key.chunks_exact(4).enumerate() {
                    if c[0] >= 0x80 || c[1] | c[2] | c[3] != 0 {
                        return None;
                    }
                    b[j] = c[0];
                }
                b[11] = (key.len() / 4) as u8;
            }
            Keys::Fixed { .. } => {
                let key = self.key(i);
                if key.len() > INLINE {
                    return None;
                }
                b[..key.len()].copy_from_slice(key);
                b[11] = key.len() as u8;
            }
        }
        Some(u128::from_be_bytes(b) | i as u128)
    }

    /// [`Keys::inline`] of a fixed-width cell, built in registers from whole 16-byte loads
    /// (bytes written one by one and read back as a word stall on store forwarding): `None`
    /// when this layout or this row (a cell too wide, or too near the end of the data for the
    /// loads) needs the general code, else its answer.
    #[inline(always)]
    fn inline_fixed(&self, i: usize) -> Option<Option<u128>> {
        /// 4 little-endian UCS-4 code points below 256 -> their 4 bytes, in order.
        #[inline(always)]
        fn narrow(v: u128) -> u128 {
            let (x, y) = (v as u64, (v >> 64) as u64);
            let lo = (x & 0xff) | ((x >> 24) & 0xff00);
            let hi = (y & 0xff) | ((y >> 24) & 0xff00);
            u128::from(lo | (hi << 16))
        }
        /// The cell's bytes `16 k ..` with those at or past `width` zeroed.
        #[inline(always)]
        fn word(cell: &[u8], k: usize, width: usize) -> u128 {
            let mut w = [0u8; 16];
            w.copy_from_slice(&cell[16 * k..16 * k + 16]);
            let valid = width.saturating_sub(16 * k).min(16);
            let keep = match valid {
                16 => !0u128,
                v => (1u128 << (8 * v)) - 1,
            };
            u128::from_le_bytes(w) & keep
        }
        let Keys::Fixed { data, width, unit } = *self else {
            return None;
        };
        let start = i * width;
        // little-endian: character j in byte j
        let le = match unit {
            4 if width <= 48 => {
                let cell = data.get(start..start + 48)?;
                let (a, b, c) = (
                    word(cell, 0, width),
                    word(cell, 1, width),
                    word(cell, 2, width),
                );
                if (a | b | c) & 0xffff_ff80_ffff_ff80_ffff_ff80_ffff_ff80 != 0 {
                    return Some(None); // not ASCII
                }
                narrow(a) | (narrow(b) << 32) | (narrow(c) << 64)
            }
            1 if width <= 16 => word(data.get(start..start + 16)?, 0, width),
            _ => return None,
        };
        let len = 16 - le.leading_zeros() as usize / 8; // trailing zero units are padding
        if len > INLINE {
            return Some(None);
        }
        Some(Some(le.swap_bytes() | ((len as u128) << 32) | i as u128))
    }

    /// [`Keys::prefix`] of a key packed by [`Keys::inline`] (`entry >> 32`).
    fn prefix_inline(&self, k: u128) -> u64 {
        let b = (k << 32).to_be_bytes();
        if let Keys::Fixed { unit: 4, .. } = *self {
            return (u64::from(b[0]) << 32) | u64::from(b[1]);
        }
        (k >> 32) as u64
    }

    fn rep(&self, row: usize, inline: Option<u128>) -> Rep {
        Rep {
            inline: inline.unwrap_or(0),
            prefix: match inline {
                Some(k) => self.prefix_inline(k),
                None => self.prefix(self.key(row)),
            },
            row: row as u32,
        }
    }
}

/// Numbering of the distinct strings, each with its first row, in the requested order:
/// returns the code of each numbered string (index = the pass's id) and the first rows by code.
fn order_reps(keys: &Keys<'_>, reps: &[Rep], order: IdOrder, seen: bool) -> (Vec<u32>, Vec<u32>) {
    let d = reps.len();
    let mut code = vec![0u32; d];
    // integer sorts of (key, index) packed in one word where the keys allow
    let packed: Option<Vec<u128>> = match order {
        IdOrder::FirstSeen if seen => None,
        IdOrder::FirstSeen => Some(
            reps.iter()
                .enumerate()
                .map(|(j, r)| (u128::from(r.row) << 32) | j as u128)
                .collect(),
        ),
        IdOrder::Sorted if reps.iter().all(|r| r.inline != 0) => Some(
            reps.iter()
                .enumerate()
                .map(|(j, r)| (r.inline << 32) | j as u128)
                .collect(),
        ),
        IdOrder::Sorted => None,
    };
    if let Some(mut packed) = packed {
        packed.par_sort_unstable();
        for (c, &p) in packed.iter().enumerate() {
            code[p as u32 as usize] = c as u32;
        }
        let firsts = packed
            .iter()
            .map(|&p| reps[p as u32 as usize].row)
            .collect();
        return (code, firsts);
    }
    let mut idx: Vec<(Rep, u32)> = reps
        .iter()
        .enumerate()
        .map(|(j, &r)| (r, j as u32))
        .collect();
    match order {
        IdOrder::FirstSeen if seen => {} // numbered in row order already
        IdOrder::FirstSeen => idx.par_sort_unstable_by_key(|(r, _)| r.row),
        IdOrder::Sorted => idx.par_sort_unstable_by(|(a, _), (b, _)| {
            if a.inline != 0 && b.inline != 0 {
                return a.inline.cmp(&b.inline); // whole keys: exact
            }
            a.prefix
                .cmp(&b.prefix)
                .then_with(|| keys.cmp_keys(keys.key(a.row as usize), keys.key(b.row as usize)))
        }),
    }
    for (c, &(_, j)) in idx.iter().enumerate() {
        code[j as usize] = c as u32;
    }
    (code, idx.iter().map(|(r, _)| r.row).collect())
}

/// At most this many distinct strings in a chunk of rows: numbered in place (no partition).
const FEW: usize = 2048;
/// Rows per chunk of the in-place pass.
const FEW_CHUNK: usize = 1 << 16;

/// The in-place pass, for few distinct strings (language codes): each chunk of rows numbers its
/// strings with a small table that stays in L1, the chunks' numberings are merged in row order.
/// `Ok(None)` as soon as a chunk has more than [`FEW`] distinct strings.
fn few_distinct(
    keys: &Keys<'_>,
    n: usize,
    order: IdOrder,
    field: &'static str,
) -> CoreResult<Option<StringCodes>> {
    let many = AtomicBool::new(false);
    let mut codes = vec![0u32; n];
    // per chunk: the first row of each local id, or the first empty row
    let chunks: Vec<Result<Option<Vec<u32>>, u32>> = codes
        .par_chunks_mut(FEW_CHUNK)
        .enumerate()
        .map(|(c, out)| {
            let start = c * FEW_CHUNK;
            let mut map: Table<&[u8]> = HashMap::default();
            let mut small = InlineTable::new(64);
            let mut firsts: Vec<u32> = Vec::new();
            for (i, slot) in out.iter_mut().enumerate() {
                let row = start + i;
                let next = firsts.len() as u32;
                if let Some(e) = keys.inline(row) {
                    if e >> 32 == 0 {
                        return Err(row as u32); // the empty string
                    }
                    let (id, new) = small.id(e >> 32, next);
                    if new {
                        firsts.push(row as u32);
                    }
                    *slot = id;
                } else {
                    *slot = *map.entry(keys.key(row)).or_insert_with(|| {
                        firsts.push(row as u32);
                        next
                    });
                }
                if firsts.len() > FEW || (i % 4096 == 0 && many.load(AtomicOrdering::Relaxed)) {
                    many.store(true, AtomicOrdering::Relaxed);
                    return Ok(None);
                }
            }
            Ok(Some(firsts))
        })
        .collect();
    let mut locals = Vec::with_capacity(chunks.len());
    for c in chunks {
        match c {
            Err(row) => return Err(empty_row(field, row)),
            Ok(None) => return Ok(None),
            Ok(Some(f)) => locals.push(f),
        }
    }
    // merge in row order: global ids in first-seen order
    let mut global: Table<&[u8]> = HashMap::default();
    let mut reps: Vec<Rep> = Vec::new();
    let maps: Vec<Vec<u32>> = locals
        .iter()
        .map(|firsts| {
            firsts
                .iter()
                .map(|&r| {
                    let next = reps.len() as u32;
                    *global.entry(keys.key(r as usize)).or_insert_with(|| {
                        reps.push(keys.rep(r as usize, keys.inline(r as usize).map(|e| e >> 32)));
                        next
                    })
                })
                .collect()
        })
        .collect();
    let (code, first_rows) = order_reps(keys, &reps, order, true);
    codes
        .par_chunks_mut(FEW_CHUNK)
        .zip(maps.par_iter())
        .for_each(|(out, m)| {
            let table: Vec<u32> = m.iter().map(|&g| code[g as usize]).collect();
            for x in out.iter_mut() {
                *x = table[*x as usize];
            }
        });
    Ok(Some(StringCodes { codes, first_rows }))
}

fn empty_row(field: &'static str, row: u32) -> CoreError {
    CoreError::value(
        field,
        format!("row {row} is an empty string; ids and language codes must be non-empty"),
    )
}

/// Longest key (bytes) packed inline with its row.
const INLINE: usize = 11;

/// A string's bytes packed with its row as [`Keys::inline`] packs them (bytes from the top,
/// the length in byte 11, the row in the low 32 bits), built in registers from two
/// overlapping loads; `None` when it is longer than [`INLINE`] bytes. For keys that live
/// elsewhere than in a [`Keys`] layout (each string its own object).
#[inline(always)]
pub fn pack_short(s: &[u8], row: u32) -> Option<u128> {
    let len = s.len();
    let be8 = |b: &[u8]| -> u128 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[..8]);
        u128::from(u64::from_be_bytes(w))
    };
    let be4 = |b: &[u8]| -> u128 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&b[..4]);
        u128::from(u32::from_be_bytes(w))
    };
    // byte j of the key goes to bits 8 (15 - j) ..; the second load ends at the key's end
    let v = match len {
        0 => 0,
        1..=3 => {
            (u128::from(s[0]) << 120)
                | (u128::from(s[len / 2]) << (8 * (15 - len / 2)))
                | (u128::from(s[len - 1]) << (8 * (16 - len)))
        }
        4..=7 => (be4(s) << 96) | (be4(&s[len - 4..]) << (8 * (16 - len))),
        8..=INLINE => (be8(s) << 64) | (be8(&s[len - 8..]) << (8 * (16 - len))),
        _ => return None,
    };
    Some(v | ((len as u128) << 32) | u128::from(row))
}

/// One thread-chunk's rows of one bucket, in row order: short keys packed inline with their
/// rows; longer keys as `(hash, row, end of its bytes)` with the bytes one after the other.
#[derive(Default)]
struct Part {
    inline: Lines<u128, 4>,
    long: Vec<(u64, u32, usize)>,
    bytes: Vec<u8>,
}

/// Dense codes of the strings of `keys`. Empty strings are refused (naming the row), as are
/// more than `u32::MAX` rows.
///
/// Few distinct strings (language codes): numbered in place, chunk by chunk, with tables that
/// stay in L1 ([`few_distinct`]). Many (question ids): cache-friendly passes: (1) each thread
/// reads its chunk of rows in order and appends each row's key (packed in 16 bytes when short,
/// else its hash and bytes) and index to one of up to 256 buckets (by the hash's top bits);
/// (2) each bucket, a few thousand distinct strings, is numbered by one thread with a hash
/// table that stays in cache, long strings compared exactly on a hash hit; (3) one numbering of
/// all distinct strings, by first row or by sorting them; (4) each thread writes the codes of
/// its chunk of rows.
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
    if let Some(c) = few_distinct(keys, n, order, field)? {
        return Ok(c);
    }
    // about 32k rows a bucket, 16 to 256 buckets
    let bits = (n / (1 << 15)).max(1).ilog2().clamp(4, 8);
    let nb = 1usize << bits;
    let chunk = n.div_ceil(rayon::current_num_threads().max(1)).max(1 << 15);
    // 1. partition
    let parts: Vec<Result<Vec<Part>, u32>> = (0..n.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let rows = c * chunk..((c + 1) * chunk).min(n);
            let cap = rows.len() / nb + rows.len() / (4 * nb) + 16;
            let mut out: Vec<Part> = (0..nb).map(|_| Part::default()).collect();
            // write-combined (one store stream per bucket would miss the TLB on nearly every row)
            let mut inline = Partitioner::<u128, 4>::new(nb, cap);
            for row in rows {
                if let Some(e) = keys.inline(row) {
                    let k = e >> 32;
                    if k == 0 {
                        return Err(row as u32); // the empty string
                    }
                    inline.push((hash_inline(k) >> (64 - bits)) as usize, e);
                } else {
                    let key = keys.key(row);
                    let h = hash_bytes(key);
                    let p = &mut out[(h >> (64 - bits)) as usize];
                    p.bytes.extend_from_slice(key);
                    p.long.push((h, row as u32, p.bytes.len()));
                }
            }
            for (p, entries) in out.iter_mut().zip(inline.finish()) {
                p.inline = entries;
            }
            Ok(out)
        })
        .collect();
    let parts: Vec<Vec<Part>> = parts
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|row| empty_row(field, row))?;
    // 2. per bucket: the local id of each entry (parts in order, inline then long) and the
    // distinct strings, rows read in order so that each one's first row is found
    let buckets: Vec<(Vec<u32>, Vec<Rep>)> = (0..nb)
        .into_par_iter()
        .map(|b| {
            let mut reps: Vec<Rep> = Vec::new();
            let mut ids = Vec::new();
            let mut inl =
                InlineTable::new(parts.iter().map(|ps| ps[b].inline.len()).sum::<usize>() / 8);
            // long strings: hash -> index into `long_reps` (the string, in this bucket's
            // bytes, and its id)
            let mut long: Table<u64> = HashMap::default();
            let mut long_reps: Vec<(&[u8], u32)> = Vec::new();
            let mut collided: HashMap<&[u8], u32> = HashMap::new();
            for part in parts.iter().map(|ps| &ps[b]) {
                for &e in &part.inline {
                    let (id, new) = inl.id(e >> 32, reps.len() as u32);
                    if new {
                        reps.push(keys.rep(e as u32 as usize, Some(e >> 32)));
                    }
                    ids.push(id);
                }
                let mut start = 0usize;
                for &(h, row, end) in &part.long {
                    let key = &part.bytes[start..end];
                    start = end;
                    let next = reps.len() as u32;
                    let id = match long.entry(h) {
                        Entry::Vacant(v) => {
                            v.insert(long_reps.len() as u32);
                            long_reps.push((key, next));
                            reps.push(keys.rep(row as usize, None));
                            next
                        }
                        Entry::Occupied(o) if long_reps[*o.get() as usize].0 == key => {
                            long_reps[*o.get() as usize].1
                        }
                        // a true 64-bit collision: exact lookup among the collided strings
                        Entry::Occupied(_) => *collided.entry(key).or_insert_with(|| {
                            reps.push(keys.rep(row as usize, None));
                            next
                        }),
                    };
                    ids.push(id);
                }
            }
            (ids, reps)
        })
        .collect();
    // 3. one numbering of every distinct string
    let base: Vec<usize> = buckets
        .iter()
        .scan(0usize, |s, (_, r)| {
            let b = *s;
            *s += r.len();
            Some(b)
        })
        .collect();
    let all: Vec<Rep> = buckets
        .iter()
        .flat_map(|(_, r)| r.iter().copied())
        .collect();
    let (code, first_rows) = order_reps(keys, &all, order, false);
    // 4. the codes, each thread its chunk of rows; (bucket, chunk) entries start where the
    // earlier chunks' entries of that bucket end
    let mut codes = vec![0u32; n];
    codes
        .par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(c, out)| {
            let start = c * chunk;
            for (b, (ids, _)) in buckets.iter().enumerate() {
                let table = &code[base[b]..];
                let at: usize = parts[..c]
                    .iter()
                    .map(|ps| ps[b].inline.len() + ps[b].long.len())
                    .sum();
                let p = &parts[c][b];
                let rows = (p.inline.iter().map(|&e| e as u32)).chain(p.long.iter().map(|m| m.1));
                for (row, &id) in rows.zip(&ids[at..]) {
                    out[row as usize - start] = table[id as usize];
                }
            }
        });
    Ok(StringCodes { codes, first_rows })
}

/// Strings read in chunks of consecutive rows (each chunk: its bytes one after the other and
/// the end of each row's within them) joined into the [`Keys::Offsets`] layout: one data
/// buffer and `n + 1` offsets, the chunks copied in parallel.
///
/// # Errors
/// [`CoreError::Memory`] when the buffers cannot be allocated.
pub fn join_chunks(parts: &[(Vec<u8>, Vec<u64>)]) -> CoreResult<(Vec<u8>, Vec<i64>)> {
    let rows: usize = parts.iter().map(|p| p.1.len()).sum();
    let bytes: usize = parts.iter().map(|p| p.0.len()).sum();
    let mut data = crate::error::try_vec("strings", &[bytes], 0u8)?;
    // rows of existing vectors: `rows + 1` cannot overflow
    let mut offsets = crate::error::try_vec("strings", &[rows + 1], 0i64)?;
    // each chunk's destination: its range of the data, its rows' end offsets
    let mut jobs = Vec::with_capacity(parts.len());
    let (mut d, mut o) = (&mut data[..], &mut offsets[1..]);
    debug_assert_eq!(o.len(), rows);
    let mut base = 0u64;
    for p in parts {
        let (dh, dt) = std::mem::take(&mut d).split_at_mut(p.0.len());
        let (oh, ot) = std::mem::take(&mut o).split_at_mut(p.1.len());
        jobs.push((p, dh, oh, base));
        base += p.0.len() as u64;
        (d, o) = (dt, ot);
    }
    jobs.into_par_iter().for_each(|(p, dh, oh, base)| {
        dh.copy_from_slice(&p.0);
        for (dst, &end) in oh.iter_mut().zip(&p.1) {
            *dst = (base + end) as i64;
        }
    });
    Ok((data, offsets))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The strings' UTF-8 bytes one after the other, with `n + 1` offsets.
    pub(crate) fn offsets_of<S: AsRef<str>>(strs: &[S]) -> (Vec<u8>, Vec<i64>) {
        let mut data = Vec::new();
        let mut off = vec![0i64];
        for s in strs {
            data.extend_from_slice(s.as_ref().as_bytes());
            off.push(data.len() as i64);
        }
        (data, off)
    }

    #[test]
    fn pack_short_packs_as_inline_does() {
        // every length up to past INLINE, bytes including zero and 0xff, keys at the end of
        // the data (the byte-wise packing) and followed by others (the 16-byte load)
        let mut state = 7u64;
        for trial in 0..2000usize {
            let n = 1 + trial % 9;
            let keys: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let len = (state >> 59) as usize % 14;
                    (0..len)
                        .map(|j| match (state >> (j * 4)) % 5 {
                            0 => 0,
                            1 => 0xff,
                            k => (k as u8) * 37,
                        })
                        .collect()
                })
                .collect();
            let mut data = Vec::new();
            let mut off = vec![0i64];
            for k in &keys {
                data.extend_from_slice(k);
                off.push(data.len() as i64);
            }
            let layout = Keys::Offsets {
                data: &data,
                offsets: Offsets::I64(&off),
            };
            for (row, k) in keys.iter().enumerate() {
                assert_eq!(
                    pack_short(k, row as u32),
                    layout.inline(row),
                    "{k:?} at row {row}"
                );
            }
        }
    }

    #[test]
    fn join_chunks_equals_one_buffer() {
        let strs = ["q1", "", "de", "long string", "x", "é", "q22"];
        for cut in [vec![], vec![0], vec![3], vec![1, 1, 5], vec![7]] {
            let mut parts = Vec::new();
            let mut at = 0;
            for end in cut.iter().copied().chain([strs.len()]) {
                let (d, o) = offsets_of(&strs[at..end]);
                parts.push((d, o[1..].iter().map(|&x| x as u64).collect()));
                at = end;
            }
            assert_eq!(
                join_chunks(&parts).unwrap(),
                offsets_of(&strs),
                "cut at {cut:?}"
            );
        }
        assert_eq!(join_chunks(&[]).unwrap(), (vec![], vec![0]));
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
    fn validate_finds_the_first_bad_offset() {
        let data = vec![b'a'; 300_000];
        let good: Vec<i64> = (0..=200_000).map(|i| i + i / 3).collect();
        let check = |o: &[i64]| {
            Keys::Offsets {
                data: &data,
                offsets: Offsets::I64(o),
            }
            .validate("ids")
            .map_err(|e| e.to_string())
        };
        assert_eq!(check(&good), Ok(200_000));
        let o32: Vec<i32> = good.iter().map(|&x| x as i32).collect();
        let k32 = Keys::Offsets {
            data: &data,
            offsets: Offsets::I32(&o32),
        };
        assert_eq!(k32.validate("ids").ok(), Some(200_000));
        // a step back at a chunk's first entry, inside a chunk, a negative start, past the data
        for (at, v, want) in [
            (65_536usize, 0i64, "entry 65536 (0)"),
            (70_001, 5, "entry 70001 (5)"),
            (0, -1, "entry 0 (-1)"),
            (200_000, 300_001, "entry 200000 (300001)"),
        ] {
            let mut bad = good.clone();
            bad[at] = v;
            let err = check(&bad).unwrap_err();
            assert!(err.contains(want) && err.contains("ids"), "{err}");
        }
        assert!(check(&[]).is_err());
        assert_eq!(check(&[0]), Ok(0));
    }

    #[test]
    fn fixed_cells_pack_in_registers_as_from_their_bytes() {
        // every width a short key fits in (and wider), ASCII or not, embedded and trailing
        // zeros, rows near the end of the data (the general code) and far from it
        let mut rng = crate::sampler::Rng::new(11);
        let alphabet = [
            0u32,
            b'a' as u32,
            b'z' as u32,
            0x7f,
            0x80,
            0xe9,
            0x4e2d,
            0x1f600,
        ];
        let mut checked = 0;
        for unit in [1usize, 4] {
            for cps in 1..=20usize {
                let width = cps * unit;
                let mut data = Vec::new();
                for _ in 0..40 {
                    let len = rng.below(cps + 1);
                    for j in 0..cps {
                        let c = if j < len {
                            alphabet[rng.below(alphabet.len())]
                        } else {
                            0
                        };
                        match unit {
                            4 => data.extend_from_slice(&c.to_le_bytes()),
                            _ => data.push(c as u8),
                        }
                    }
                }
                let keys = Keys::Fixed {
                    data: &data,
                    width,
                    unit,
                };
                for i in 0..40 {
                    assert_eq!(
                        keys.inline(i),
                        keys.inline_general(i),
                        "unit {unit} width {width} row {i}"
                    );
                    checked += usize::from(keys.inline_fixed(i).is_some());
                }
            }
        }
        assert!(checked > 500, "the register path ran {checked} times");
    }

    #[test]
    fn both_layouts_and_orders_match_a_plain_reference() {
        let mut rng = crate::sampler::Rng::new(5);
        // many distinct strings (the partitioned path), short and long, ASCII or not
        let mut words: Vec<String> = (0..3000)
            .map(|i| format!("q{}-é{}", rng.below(700), i % 3))
            .collect();
        words.extend((0..70_000).map(|i| match i % 4 {
            0 => format!("q{}", rng.below(30_000)),
            1 => format!("question-{:012}", rng.below(20_000)),
            2 => format!("q{}\0x", rng.below(1000)),
            _ => format!("ün{}", rng.below(5000)),
        }));
        words.extend(["z".into(), "ä".into(), "a".into(), "日本".into()]);
        check_layouts(&words);
        // few distinct strings (numbered in place), over several chunks
        let langs = [
            "en",
            "de",
            "zh",
            "日本",
            "a\0b",
            "a",
            "ab",
            "abcdefghijklmnopq",
        ];
        let words: Vec<String> = (0..200_000)
            .map(|_| langs[rng.below(langs.len())].to_string())
            .collect();
        check_layouts(&words);
        // few per chunk, many in all (sorted ids: the in-place pass, its merge)
        let words: Vec<String> = (0..300_000).map(|i| format!("id{}", i / 40)).collect();
        check_layouts(&words);
    }

    fn check_layouts(words: &[String]) {
        let strs: Vec<&str> = words.iter().map(|s| s.as_str()).collect();
        for order in [IdOrder::FirstSeen, IdOrder::Sorted] {
            let want = reference(&strs, order);
            let (data, off) = offsets_of(&strs);
            let keys = Keys::Offsets {
                data: &data,
                offsets: Offsets::I64(&off),
            };
            assert_eq!(string_codes(&keys, order, "ids").unwrap(), want);
            let off32: Vec<i32> = off.iter().map(|&o| o as i32).collect();
            let keys = Keys::Offsets {
                data: &data,
                offsets: Offsets::I32(&off32),
            };
            assert_eq!(string_codes(&keys, order, "ids").unwrap(), want);
            // UTF-8 fixed width, as numpy 'S' arrays hold them
            let width = strs.iter().map(|s| s.len()).max().unwrap();
            let mut cells = vec![0u8; width * strs.len()];
            for (i, s) in strs.iter().enumerate() {
                cells[i * width..i * width + s.len()].copy_from_slice(s.as_bytes());
            }
            let keys = Keys::Fixed {
                data: &cells,
                width,
                unit: 1,
            };
            if !strs.iter().any(|s| s.ends_with('\0')) {
                assert_eq!(string_codes(&keys, order, "ids").unwrap(), want);
            }
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
            offsets: Offsets::I64(&off),
        };
        let e = string_codes(&keys, IdOrder::Sorted, "ids").unwrap_err();
        assert!(e.to_string().contains("row 1"), "{e}");
        // the same among many distinct strings (the partitioned path)
        let mut words: Vec<String> = (0..9000).map(|i| format!("q{i}")).collect();
        words[7001].clear();
        let strs: Vec<&str> = words.iter().map(|s| s.as_str()).collect();
        let (many, many_off) = offsets_of(&strs);
        let keys = Keys::Offsets {
            data: &many,
            offsets: Offsets::I64(&many_off),
        };
        let e = string_codes(&keys, IdOrder::FirstSeen, "ids").unwrap_err();
        assert!(e.to_string().contains("row 7001"), "{e}");
        let bad = Keys::Offsets {
            data: &data,
            offsets: Offsets::I32(&[0, 5]),
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
