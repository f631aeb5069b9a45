//! A pair pool straight from string group ids and string languages, for the common case of
//! short ids (at most [`SHORT`] bytes, or ASCII code points of a numpy `<U` array) and short
//! language codes: the same pool as numbering both ([`crate::codes::string_codes`], sorted
//! order) and building it from the codes ([`PairPool::from_dense`]), in two passes instead of
//! six.
//!
//! 1. One partition pass, each thread its chunk of rows in order: each row's id, packed with
//!    its row and its language's number in the chunk ([`LangTable`], in L1) into 16 bytes
//!    ([`Keys::inline`]), goes to the bucket of its *range* of ids (255 splitters drawn from a
//!    sample, found mostly by a table lookup ([`BucketTable`]), else a branchless binary
//!    search), so that every bucket holds a contiguous range of the sorted ids; entries leave
//!    a cache line at a time ([`Partitioner`]). Then the languages are sorted (a handful).
//! 2. Per bucket, in cache ([`place_bucket`]): its ids numbered with a hash table while each
//!    one's languages gather in a mask, the few thousand distinct ids sorted, and every row
//!    placed at once into the bucket's own slice of the pool: after the earlier groups' rows,
//!    at the rank of its language among its group's. The sorted numbering of every id falls
//!    out: a bucket's ids follow the previous buckets' ones.
//!
//! Anything else (a long or empty id or language, more than 255 languages, one group twice in
//! one language, mismatched lengths) returns `None`: the general path handles it and names the
//! problem.

use crate::codes::{string_codes, IdOrder, InlineTable, Keys};
use crate::error::{CoreError, CoreResult};
use crate::partition::{Lines, Partitioner};
use crate::pool::{join_starts, split_sizes, PairPool, MAX_LANGS};
use rayon::prelude::*;

/// Longest id of this path (bytes): the 12th byte of the packed key carries its length, the
/// 11th (always zero for such ids) the row's language.
pub const SHORT: usize = 10;

/// Where the language sits in a packed entry (the 11th key byte).
const LANG_SHIFT: u32 = 40;

/// The id of a packed entry without its language: the key [`Keys::inline`] gives
/// (`entry >> 32`), whose order is the ids' code-point order.
#[inline(always)]
fn id_of(e: u128) -> u128 {
    (e >> 32) & !(0xff << (LANG_SHIFT - 32))
}

/// Rows of string keys as this path reads them: each row's key packed with its row, as
/// [`Keys::inline`] packs it. [`Keys`] layouts are such rows; so are keys that live elsewhere
/// (the PyO3 layer reads a list's `str` objects in place, [`crate::codes::pack_short`]).
pub trait PackedRows: Sync {
    /// Number of rows; `None` when the layout is not valid.
    fn rows(&self) -> Option<usize>;
    /// Row `row`'s key packed with its row; `None` when it is longer than 11 bytes or cannot be
    /// read this way.
    fn packed(&self, row: usize) -> Option<u128>;
    /// A hint that row `row` (which may be past the end) is read soon: for keys behind
    /// pointers, whose reads are cache misses of their own. Does nothing by default.
    #[inline(always)]
    fn prefetch(&self, _row: usize) {}
}

impl PackedRows for Keys<'_> {
    fn rows(&self) -> Option<usize> {
        self.validate("keys").ok()
    }

    #[inline(always)]
    fn packed(&self, row: usize) -> Option<u128> {
        self.inline(row)
    }
}

/// Rows read ahead of the partition pass ([`PackedRows::prefetch`]).
const AHEAD: usize = 48;

/// The packed key of row `row` when its id is short and non-empty.
#[inline(always)]
fn short<K: PackedRows>(keys: &K, row: usize) -> Option<u128> {
    let e = keys.packed(row)?;
    let len = (e >> 32) as u8 as usize;
    (len != 0 && len <= SHORT).then_some(e)
}

/// Most buckets.
const MAX_BUCKETS: usize = 256;

/// Splitters padded with `u64::MAX` to the most buckets (the last slot is never read; an id of
/// that very top, counted past the real splitters, is clamped by the caller).
type Splitters = [u64; MAX_BUCKETS];

/// Number of splitters `<= k`: a branchless binary search, unrolled over the fixed splitter
/// count, the index masked (no bounds checks). Interleaving several keys' searches measured
/// slower (about 55 ns a key against 8.5 ns).
#[inline(always)]
fn bucket_of(split: &Splitters, k: u64) -> usize {
    let mut i = 0usize;
    for step in [128usize, 64, 32, 16, 8, 4, 2, 1] {
        i += if split[(i + step - 1) & (MAX_BUCKETS - 1)] <= k {
            step
        } else {
            0
        };
    }
    i
}

/// Bits of a key (after the splitters' common prefix) indexing [`BucketTable`].
const TABLE_BITS: u32 = 12;

/// A key's bucket (the number of splitters at or below it) mostly without a search: the
/// splitters share a common prefix of `shift` bits; for a key with that prefix, the next
/// [`TABLE_BITS`] bits index a table of (splitters before this index, splitters at it), and
/// only the few at the key's own index are compared (ids of one shape such as `"q123"` share
/// their first byte and more). A key without the prefix lies below or above every splitter;
/// an index holding more than 4 splitters falls back to the binary search.
struct BucketTable {
    split: Splitters,
    /// Real splitters (`nb - 1`).
    n: usize,
    shift: u32,
    /// `split[0] >> (64 - shift)`: the common prefix (0 when `shift` is 0).
    prefix: u64,
    /// Per index: splitters before it (low byte) and at it (high byte).
    table: Vec<u16>,
}

impl BucketTable {
    /// The table of the first `n` splitters of `split` (sorted, `n <= 255`).
    fn new(split: Splitters, n: usize) -> Self {
        let n = n.min(MAX_BUCKETS - 1);
        let (first, last) = match (split[..n].first(), split[..n].last()) {
            (Some(&a), Some(&b)) => (a, b),
            _ => (0, 0),
        };
        let shift = (first ^ last).leading_zeros().min(64 - TABLE_BITS);
        let prefix = if shift == 0 { 0 } else { first >> (64 - shift) };
        let mut at = vec![0u16; 1 << TABLE_BITS];
        for &sp in &split[..n] {
            at[Self::index(shift, sp)] += 1;
        }
        let mut before = 0u16;
        let table = at
            .iter()
            .map(|&m| {
                let e = before | (m << 8);
                before += m;
                e
            })
            .collect();
        BucketTable {
            split,
            n,
            shift,
            prefix,
            table,
        }
    }

    /// The table index of a key with the common prefix.
    #[inline(always)]
    fn index(shift: u32, k: u64) -> usize {
        ((k << shift) >> (64 - TABLE_BITS)) as usize
    }

    /// Number of splitters `<= k`, as [`bucket_of`] counts the real ones.
    #[inline(always)]
    fn of(&self, k: u64) -> usize {
        if self.shift != 0 && k >> (64 - self.shift) != self.prefix {
            return if k < self.split[0] { 0 } else { self.n };
        }
        let e = self.table[Self::index(self.shift, k) & ((1 << TABLE_BITS) - 1)];
        let (lo, m) = (usize::from(e as u8), usize::from(e >> 8));
        if m > 4 {
            return bucket_of(&self.split, k).min(self.n);
        }
        let mut c = lo;
        for j in 0..4 {
            c += usize::from((j < m) & (self.split[(lo + j) & (MAX_BUCKETS - 1)] <= k));
        }
        c
    }
}

/// The top 64 bits of an id (its first 8 bytes): what chooses its bucket. Equal tops share a
/// bucket, and the order of tops is the order of ids, so every bucket is still a range.
#[inline(always)]
fn top(k: u128) -> u64 {
    (k >> 32) as u64
}

/// A chunk's entries by bucket (each bucket's in row order) and its languages, numbered in
/// first-seen order, each with its first row.
type Chunk = (Vec<Lines<u128, 4>>, Vec<(u128, u32)>);

/// Pass 1 over the rows `rows`: each row's packed id, with the chunk's number of its language,
/// appended to its bucket of `nb`; `None` where this path does not apply.
#[inline(never)]
fn partition_chunk<G: PackedRows, L: PackedRows>(
    groups: &G,
    langs: &L,
    rows: std::ops::Range<usize>,
    buckets: &BucketTable,
    nb: usize,
) -> Option<Chunk> {
    // room for 1.5 times a bucket's expected rows: the splitters come from a sample of 64 ids
    // a bucket, and a rarely fuller bucket spills (then all are copied together once)
    let cap = rows.len() / nb + rows.len() / (2 * nb) + 64;
    let mut out = Partitioner::<u128, 4>::new(nb, cap);
    let mut ltable = LangTable::new();
    for row in rows {
        groups.prefetch(row + AHEAD);
        langs.prefetch(row + AHEAD);
        let e = short(groups, row)?;
        let lid = ltable.id(langs.packed(row)? >> 32, row)?;
        let b = buckets.of(top(id_of(e))).min(nb - 1);
        out.push(b, e | (u128::from(lid) << LANG_SHIFT));
    }
    Some((out.finish(), ltable.keys))
}

/// A chunk's languages numbered in first-seen order, each with its first row: codes of one or
/// two bytes (`"en"`, `"zh"`: most language codes) through a direct table indexed by their
/// bytes (the few entries in use stay in L1), others through a hash table.
struct LangTable {
    /// Per two-byte index: `length << 8 | number` of the code seen there, 0 if none.
    direct: Vec<u16>,
    table: InlineTable,
    /// (packed code, first row), by number.
    keys: Vec<(u128, u32)>,
}

impl LangTable {
    fn new() -> Self {
        LangTable {
            direct: vec![0; 1 << 16],
            table: InlineTable::new(64),
            keys: Vec::new(),
        }
    }

    /// The number of the packed code `lk` (`Keys::inline(row) >> 32`) first seen at or before
    /// `row`; `None` for the empty code or one language too many.
    #[inline(always)]
    fn id(&mut self, lk: u128, row: usize) -> Option<u8> {
        let len = (lk as u8) as u16;
        // a code of at most 2 bytes is its top two bytes (the rest is zero) and its length
        let at = ((lk >> 80) as u16) as usize;
        if len <= 2 {
            let e = self.direct[at];
            if e >> 8 == len && len != 0 {
                return Some(e as u8);
            }
        }
        if lk == 0 {
            return None;
        }
        let (lid, new) = self.table.id(lk, self.keys.len() as u32);
        if new {
            if self.keys.len() == MAX_LANGS {
                return None;
            }
            self.keys.push((lk, row as u32));
        }
        if len <= 2 && self.direct[at] == 0 {
            self.direct[at] = len << 8 | lid as u16;
        }
        Some(lid as u8)
    }
}

/// One bucket's entries (by chunk, each chunk's rows in order; `remap`: each chunk's language
/// numbers to the pool's) placed into its own slice of the pool (`r`: rows, `l`: languages),
/// giving its groups' first rows within the slice and then its size; `None` when a group has
/// one language twice.
///
/// Ids are numbered in first-seen order with a hash table (each entry's number kept aside)
/// while each number's languages gather in a mask of `64 W` bits (`W` = 1 for at most 64
/// languages, else 4), which finds a repeated language at once. The few thousand distinct ids
/// are sorted; a group's rows then start after the earlier groups' (its row count is its mask's
/// population count), and a row's place within its group is the number of its group's
/// languages below its own: one pass places every row in language order, with no per-group
/// sort.
#[inline(always)]
fn place_bucket<const W: usize>(
    ps: Vec<Lines<u128, 4>>,
    remap: &[Vec<u8>],
    r: &mut [u32],
    l: &mut [u8],
) -> Option<Vec<u32>> {
    /// The mask word and bit of language `x`.
    #[inline(always)]
    fn word_bit<const W: usize>(x: u8) -> (usize, u64) {
        (usize::from(x >> 6) & (W - 1), 1u64 << (x & 63))
    }
    let mut table = InlineTable::new(r.len() / 8);
    let mut distinct: Vec<u128> = Vec::new();
    let mut masks: Vec<[u64; W]> = Vec::new();
    let mut ids: Vec<u32> = Vec::with_capacity(r.len());
    for (p, m) in ps.iter().zip(remap) {
        for &e in p {
            let k = id_of(e);
            let (id, new) = table.id(k, distinct.len() as u32);
            if new {
                distinct.push((k << 32) | u128::from(id));
                masks.push([0; W]);
            }
            let lang = *m.get(usize::from((e >> LANG_SHIFT) as u8))?;
            let (w, bit) = word_bit::<W>(lang);
            let mask = &mut masks[id as usize];
            if mask[w] & bit != 0 {
                return None; // one group twice in one language
            }
            mask[w] |= bit;
            ids.push(id);
        }
    }
    distinct.sort_unstable();
    // each number's first slot, groups in rank order
    let mut first = vec![0u32; distinct.len()];
    let mut start = Vec::with_capacity(distinct.len() + 1);
    let mut at = 0u32;
    start.push(at);
    for &p in &distinct {
        let id = p as u32 as usize;
        first[id] = at;
        at += masks[id].iter().map(|x| x.count_ones()).sum::<u32>();
        start.push(at);
    }
    let mut ids = ids.iter();
    for (p, m) in ps.iter().zip(remap) {
        for (&e, &id) in p.iter().zip(ids.by_ref()) {
            let id = id as usize;
            let lang = *m.get(usize::from((e >> LANG_SHIFT) as u8))?;
            let (w, bit) = word_bit::<W>(lang);
            let mask = &masks[id];
            let mut below = (mask[w] & (bit - 1)).count_ones();
            for (j, x) in mask.iter().enumerate() {
                below += if j < w { x.count_ones() } else { 0 };
            }
            let at = (first[id] + below) as usize;
            r[at] = e as u32;
            l[at] = lang;
        }
    }
    Some(start)
}

/// [`place_bucket`] built with the `popcnt` instruction where the CPU has it (the x86-64
/// baseline counts bits with a dozen shifts and masks), else the portable build.
#[inline(never)]
fn place_bucket_fast<const W: usize>(
    ps: Vec<Lines<u128, 4>>,
    remap: &[Vec<u8>],
    r: &mut [u32],
    l: &mut [u8],
) -> Option<Vec<u32>> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        /// The same code with `popcnt`.
        #[target_feature(enable = "popcnt")]
        fn with_popcnt<const W: usize>(
            ps: Vec<Lines<u128, 4>>,
            remap: &[Vec<u8>],
            r: &mut [u32],
            l: &mut [u8],
        ) -> Option<Vec<u32>> {
            place_bucket::<W>(ps, remap, r, l)
        }
        // SAFETY: the CPU has `popcnt` (checked just above).
        return unsafe { with_popcnt::<W>(ps, remap, r, l) };
    }
    place_bucket::<W>(ps, remap, r, l)
}

/// The pool of rows `i` = (group `groups[i]`, language `langs[i]`), groups numbered in sorted
/// order of their ids and languages likewise, with the first row of each language; `None`
/// where this path does not apply (see the module's documentation).
pub fn pool_from_strings<G: PackedRows, L: PackedRows>(
    groups: &G,
    langs: &L,
) -> Option<(PairPool, Vec<u32>)> {
    let n = groups.rows()?;
    if langs.rows()? != n || n == 0 || n > u32::MAX as usize {
        return None;
    }
    let bits = (n / (1 << 15)).max(1).ilog2().clamp(4, MAX_BUCKETS.ilog2());
    let nb = 1usize << bits;
    // 1. splitters: every bucket a contiguous range of ids, about n / nb rows each
    let s = (64 * nb).min(n);
    let mut sample = (0..s)
        .map(|j| short(groups, j * (n / s)).map(id_of))
        .collect::<Option<Vec<u128>>>()?;
    sample.sort_unstable();
    let mut split: Splitters = [u64::MAX; MAX_BUCKETS];
    for (j, sp) in split[..nb - 1].iter_mut().enumerate() {
        *sp = top(sample[(j + 1) * s / nb]);
    }
    let buckets = BucketTable::new(split, nb - 1);
    // 2. partition, each thread its chunk of rows in order; the languages numbered on the way
    // (first seen in the chunk: a table in L1), each entry carrying its chunk's number
    let chunk = n.div_ceil(rayon::current_num_threads().max(1)).max(1 << 15);
    let chunks: Vec<Chunk> = (0..n.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            partition_chunk(
                groups,
                langs,
                c * chunk..((c + 1) * chunk).min(n),
                &buckets,
                nb,
            )
        })
        .collect::<Option<_>>()?;
    // 3. the languages in sorted order (each with its first row), and each chunk's numbers
    let mut lang_keys: Vec<(u128, u32)> = chunks.iter().flat_map(|c| c.1.iter().copied()).collect();
    lang_keys.sort_unstable();
    lang_keys.dedup_by_key(|k| k.0); // keeps the first row: chunks run in row order
    if lang_keys.len() > MAX_LANGS {
        return None;
    }
    let remap: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| {
            c.1.iter()
                .map(|&(k, _)| lang_keys.partition_point(|&(g, _)| g < k) as u8)
                .collect()
        })
        .collect();
    // the entries by bucket, then chunk (rows in order)
    let mut parts: Vec<Vec<Lines<u128, 4>>> = chunks.into_iter().map(|c| c.0).collect();
    let by_bucket: Vec<Vec<Lines<u128, 4>>> = (0..nb)
        .map(|b| {
            parts
                .iter_mut()
                .map(|ps| std::mem::take(&mut ps[b]))
                .collect()
        })
        .collect();
    // 4. per bucket, into its own slice of the pool
    let sizes: Vec<usize> = by_bucket
        .iter()
        .map(|ps| ps.iter().map(|p| p.len()).sum())
        .collect();
    let mut rows = vec![0u32; n];
    let mut out_langs = vec![0u8; n];
    let slices = split_sizes(&mut rows, &mut out_langs, &sizes);
    let starts: Vec<Vec<u32>> = by_bucket
        .into_par_iter()
        .zip(slices)
        .map(|(ps, (r, l))| {
            if lang_keys.len() <= 64 {
                place_bucket_fast::<1>(ps, &remap, r, l)
            } else {
                place_bucket_fast::<4>(ps, &remap, r, l)
            }
        })
        .collect::<Option<_>>()?;
    let n_groups = starts.iter().map(|s| s.len() - 1).sum();
    let group_start = join_starts(starts.iter().map(|s| &s[..]), &sizes, n_groups);
    Some((
        PairPool::from_parts(lang_keys.len(), rows, out_langs, group_start),
        lang_keys.iter().map(|k| k.1).collect(),
    ))
}

/// The pool of string group ids and string languages of any length, numbered in sorted order,
/// with the first row of each language: [`pool_from_strings`] where it applies, else both
/// numbered ([`string_codes`]) and the pool built from the codes ([`PairPool::from_dense`]),
/// from the same keys (a list of `str` is read once).
///
/// # Errors
/// What numbering or building gives: an empty string, a group twice in one language (naming
/// both rows), more than [`MAX_LANGS`] languages, mismatched lengths, an empty pool.
pub fn pool_from_string_keys(
    groups: &Keys<'_>,
    langs: &Keys<'_>,
) -> CoreResult<(PairPool, Vec<u32>)> {
    match pool_from_strings(groups, langs) {
        Some(got) => Ok(got),
        None => pool_by_codes(groups, langs),
    }
}

/// [`pool_from_string_keys`] the long way: both numbered, then the pool from the codes.
fn pool_by_codes(groups: &Keys<'_>, langs: &Keys<'_>) -> CoreResult<(PairPool, Vec<u32>)> {
    let g = string_codes(groups, IdOrder::Sorted, "group_ids")?;
    let l = string_codes(langs, IdOrder::Sorted, "langs")?;
    let n_langs = l.first_rows.len();
    if n_langs > MAX_LANGS {
        return Err(CoreError::value(
            "langs",
            format!("at most {MAX_LANGS} languages, got {n_langs}"),
        ));
    }
    let pool = PairPool::from_dense(&g.codes, g.first_rows.len(), &l.codes, n_langs.max(1))?;
    Ok((pool, l.first_rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::tests::offsets_of;
    use crate::codes::Offsets;

    /// `f` of the strings as offsets layouts.
    fn with_keys<R>(ids: &[String], ls: &[String], f: impl FnOnce(&Keys, &Keys) -> R) -> R {
        let (gd, go) = offsets_of(ids);
        let (ld, lo) = offsets_of(ls);
        let g = Keys::Offsets {
            data: &gd,
            offsets: Offsets::I64(&go),
        };
        let l = Keys::Offsets {
            data: &ld,
            offsets: Offsets::I64(&lo),
        };
        f(&g, &l)
    }

    /// The general path: sorted codes, then the pool from them.
    fn general(g: &Keys<'_>, l: &Keys<'_>) -> (PairPool, Vec<u32>) {
        pool_by_codes(g, l).unwrap()
    }

    fn rows(n_groups: usize, seed: u64) -> (Vec<String>, Vec<String>) {
        let langs = ["de", "en", "zh", "ar", "x"];
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        let mut ids = Vec::new();
        let mut ls = Vec::new();
        for g in 0..n_groups {
            let id = match g % 4 {
                0 => format!("q{}", next() % 100_000),
                1 => format!("{g}"),
                2 => format!("a{}b", g * 7),
                _ => "é".repeat(1 + g % 5), // multi-byte UTF-8, up to 10 bytes
            };
            for lang in langs {
                if next() % 10 < 8 {
                    ids.push(id.clone());
                    ls.push(lang.to_string());
                }
            }
        }
        // rows in no particular order
        for i in (1..ids.len()).rev() {
            let j = next() % (i + 1);
            ids.swap(i, j);
            ls.swap(i, j);
        }
        (ids, ls)
    }

    #[test]
    fn languages_are_numbered_in_first_seen_order() {
        // one- and two-byte codes (the direct table), longer ones, and codes equal but for a
        // trailing NUL (same table index, other length)
        let codes: Vec<String> = [
            "en", "a", "a\0", "eng", "zh", "en", "a", "x-long-1", "a\0", "zh",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (data, offsets) = offsets_of(&codes);
        let keys = Keys::Offsets {
            data: &data,
            offsets: Offsets::I64(&offsets),
        };
        let mut t = LangTable::new();
        let got: Vec<Option<u8>> = (0..codes.len())
            .map(|r| t.id(keys.inline(r).unwrap() >> 32, r))
            .collect();
        let want = [0, 1, 2, 3, 4, 0, 1, 5, 2, 4].map(Some);
        assert_eq!(got, want);
        let firsts: Vec<u32> = t.keys.iter().map(|k| k.1).collect();
        assert_eq!(firsts, [0, 1, 2, 3, 4, 7]);
        assert_eq!(t.id(0, 10), None); // the empty code

        // at most MAX_LANGS languages
        let mut t = LangTable::new();
        for j in 0..MAX_LANGS as u128 {
            assert_eq!(t.id((j + 1) << 80 | 2, 0), Some(j as u8));
        }
        assert_eq!(t.id(0xffff << 80 | 2, 0), None);
    }

    #[test]
    fn a_sample_blind_to_most_ids_still_gives_the_pool() {
        // the splitters' sample reads every 39th row: those rows share one id prefix, the rest
        // another, so nearly every row lands in the last bucket (its region overflows and
        // spills)
        let n = 40_000usize;
        let mut ids = Vec::with_capacity(n);
        let mut ls = Vec::with_capacity(n);
        for row in 0..n {
            let prefix = if row % 39 == 0 { "a" } else { "z" };
            ids.push(format!("{prefix}{}", row / 4));
            ls.push(["de", "en", "zh", "ar"][row % 4].to_string());
        }
        with_keys(&ids, &ls, |g, l| {
            let got = pool_from_strings(g, l);
            assert!(got.is_some());
            assert_eq!(got, Some(general(g, l)));
        });
    }

    #[test]
    fn many_languages_equal_the_general_path() {
        // 200 language codes (all four words of the group's language mask), 300 groups
        let mut ids = Vec::new();
        let mut ls = Vec::new();
        for g in 0..300usize {
            for lang in (0..200usize).filter(|x| (x * 31 + g * 17) % 7 != 0) {
                ids.push(format!("g{}", (g * 7919) % 1000));
                ls.push(format!("l{}", (lang * 13) % 200));
            }
        }
        let n = ids.len();
        for i in (1..n).rev() {
            let j = (i * 2654435761) % (i + 1);
            ids.swap(i, j);
            ls.swap(i, j);
        }
        with_keys(&ids, &ls, |g, l| {
            let got = pool_from_strings(g, l);
            assert!(got.is_some());
            assert_eq!(got, Some(general(g, l)));
        });
    }

    #[test]
    fn equals_the_general_path() {
        for (n_groups, seed) in [(1, 1), (50, 2), (3000, 3), (40_000, 4)] {
            let (ids, ls) = rows(n_groups, seed);
            // duplicated (group, language) rows from the id collisions of `q{..}`: general path
            // refuses, so does this one; drop them for the comparison
            let mut seen = std::collections::HashSet::new();
            let keep: Vec<usize> = (0..ids.len())
                .filter(|&i| seen.insert((ids[i].clone(), ls[i].clone())))
                .collect();
            let ids: Vec<String> = keep.iter().map(|&i| ids[i].clone()).collect();
            let ls: Vec<String> = keep.iter().map(|&i| ls[i].clone()).collect();
            with_keys(&ids, &ls, |g, l| {
                assert_eq!(
                    pool_from_strings(g, l),
                    Some(general(g, l)),
                    "{n_groups} groups"
                );
            });
            // numpy `<U` cells (UCS-4): the ASCII ids
            let ascii: Vec<usize> = (0..ids.len()).filter(|&i| ids[i].is_ascii()).collect();
            let width = 10;
            let mut cells = vec![0u8; 4 * width * ascii.len()];
            let mut lcells = vec![0u8; 4 * 2 * ascii.len()];
            for (k, &i) in ascii.iter().enumerate() {
                for (j, ch) in ids[i].chars().enumerate() {
                    cells[4 * (k * width + j)..][..4].copy_from_slice(&(ch as u32).to_le_bytes());
                }
                for (j, ch) in ls[i].chars().enumerate() {
                    lcells[4 * (k * 2 + j)..][..4].copy_from_slice(&(ch as u32).to_le_bytes());
                }
            }
            let g = Keys::Fixed {
                data: &cells,
                width: 4 * width,
                unit: 4,
            };
            let l = Keys::Fixed {
                data: &lcells,
                width: 8,
                unit: 4,
            };
            if !ascii.is_empty() {
                assert_eq!(pool_from_strings(&g, &l), Some(general(&g, &l)));
            }
        }
    }

    #[test]
    fn what_it_does_not_take_goes_to_the_general_path() {
        let case = |ids: &[&str], ls: &[&str]| {
            let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            let ls: Vec<String> = ls.iter().map(|s| s.to_string()).collect();
            with_keys(&ids, &ls, |g, l| pool_from_strings(g, l).is_none())
        };
        assert!(!case(&["a", "b"], &["en", "en"]));
        assert!(case(&["a", "a"], &["en", "en"])); // one group twice in one language
        assert!(case(&["a", "eleven-byte"], &["en", "en"])); // a long id
        assert!(case(&["a", ""], &["en", "en"])); // an empty id
        assert!(case(&["a", "b"], &["en", ""])); // an empty language
        assert!(case(&["a", "b"], &["en"])); // lengths differ
        assert!(case(&[], &[])); // empty
    }

    #[test]
    fn any_string_keys_give_the_pool_or_the_error_of_the_codes() {
        let case = |ids: &[&str], ls: &[&str]| {
            let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            let ls: Vec<String> = ls.iter().map(|s| s.to_string()).collect();
            with_keys(&ids, &ls, |g, l| {
                pool_from_string_keys(g, l).map_err(|e| e.to_string())
            })
        };
        let long = case(
            &["a-long-group-id", "b", "a-long-group-id"],
            &["en", "en", "de"],
        );
        let (pool, first) = long.unwrap();
        assert_eq!((pool.n_groups(), first), (2, vec![2, 0])); // de, en: first rows
        let twice = case(&["a", "a"], &["en", "en"]).unwrap_err();
        assert!(twice.contains("rows 0 and 1"), "{twice}");
        let empty = case(&["a", ""], &["en", "en"]).unwrap_err();
        assert!(
            empty.contains("group_ids") && empty.contains("empty"),
            "{empty}"
        );
        let many: Vec<String> = (0..300).map(|i| format!("l{i}")).collect();
        let ids: Vec<String> = (0..300).map(|i| format!("g{i}")).collect();
        let err = with_keys(&ids, &many, |g, l| pool_from_string_keys(g, l).map(|_| ()));
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("at most 255 languages"));
    }

    #[test]
    fn bucket_table_counts_like_the_search() {
        let mut state = 11u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state
        };
        // splitter sets: spread, sharing a prefix, many equal, crowded at one index, few
        let shapes: [fn(u64, usize) -> u64; 5] = [
            |r, _| r,
            |r, _| (0x7131u64 << 48) | (r >> 16),
            |r, j| 0x5000_0000_0000_0000 + (r % 3) * (j as u64 % 2),
            |r, _| 0x7100_0000_0000_0000 | (r >> 40),
            |_, j| j as u64,
        ];
        for shape in shapes {
            for n in [0usize, 1, 2, 15, 255] {
                let mut split: Splitters = [u64::MAX; MAX_BUCKETS];
                for (j, sp) in split[..n].iter_mut().enumerate() {
                    *sp = shape(next(), j);
                }
                split[..n].sort_unstable();
                let t = BucketTable::new(split, n);
                let mut keys: Vec<u64> = (0..2000).map(|j| shape(next(), j)).collect();
                keys.extend(
                    split[..n]
                        .iter()
                        .flat_map(|&s| [s.wrapping_sub(1), s, s.wrapping_add(1)]),
                );
                keys.extend([0, 1, u64::MAX - 1, u64::MAX, next(), next()]);
                for k in keys {
                    let want = split[..n].iter().filter(|&&s| s <= k).count();
                    assert_eq!(t.of(k), want, "{k:#x}, {n} splitters");
                    if n == 255 {
                        assert_eq!(bucket_of(&split, k).min(n), want);
                    }
                }
            }
        }
    }

    #[test]
    fn bucket_counts_the_splitters_at_or_below() {
        let mut split: Splitters = [u64::MAX; MAX_BUCKETS];
        for (j, s) in split[..255].iter_mut().enumerate() {
            *s = 10 * (j as u64 / 2); // each value twice
        }
        for k in (0..2600u64).chain([u64::MAX - 1, u64::MAX]) {
            let want = split[..255].iter().filter(|&&s| s <= k).count();
            assert_eq!(bucket_of(&split, k), want, "{k}");
        }
    }
}
