//! Counting: per language slice, how many candidates score `>=` and `>` each threshold
//! (compaction to the scores that can count first; AVX-512 / AVX2 builds chosen at run time).

use super::*;
use crate::error::CoreError;

/// Counts of `x >= t` and `x > t` over a slice. A tight loop that LLVM vectorises.
#[inline(always)]
pub(crate) fn count_ge_gt<T: Score>(s: &[T], t: T) -> (u32, u32) {
    let mut ge = 0u32;
    let mut gt = 0u32;
    for &x in s {
        ge += u32::from(x >= t);
        gt += u32::from(x > t);
    }
    (ge, gt)
}

/// Thresholds handled together by [`count_few`] (one vector register of f32).
const LANES: usize = 16;

/// Adds the `ge`/`gt` counts of language `l` over a short run of scores (the survivors of compaction):
/// the thresholds sit in the lanes of a vector and each score is compared with all of them at
/// once, so a short run costs no per-threshold loop overhead.
#[inline(always)]
pub(crate) fn count_few<T: Score>(
    kept: &[T],
    thr: &[T],
    l: usize,
    n_langs: usize,
    ge: &mut [u32],
    gt: &mut [u32],
) {
    for (c, chunk) in thr.chunks(LANES).enumerate() {
        // Padding lanes hold the first threshold; their counts are not written back.
        let mut t = [chunk[0]; LANES];
        t[..chunk.len()].copy_from_slice(chunk);
        let mut n_ge = [0u32; LANES];
        let mut n_gt = [0u32; LANES];
        for &x in kept {
            for i in 0..LANES {
                n_ge[i] += u32::from(x >= t[i]);
                n_gt[i] += u32::from(x > t[i]);
            }
        }
        for i in 0..chunk.len() {
            let j = c * LANES + i;
            ge[j * n_langs + l] += n_ge[i];
            gt[j * n_langs + l] += n_gt[i];
        }
    }
}

/// Adds to `ge`/`gt` (`k x L`, row-major, zeroed by the caller) the counts of one score row; false if a value is not finite.
///
/// Only candidates scoring at least the lowest relevant score `t_min` can count for any
/// threshold, so each language slice is first compacted to those (one comparison per score,
/// AVX-512 compress where the CPU has it) and the `2 k` comparisons run over the survivors
/// only. For a useful retriever the relevant candidates rank high and few scores survive; when
/// most do (near-random scores), the row switches to counting the slices directly.
#[inline(always)]
fn count_row<T: Score, const LEVEL: u8>(
    row: &[T],
    offsets: &[usize],
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
    buf: &mut Vec<T>,
) -> bool {
    let n_langs = offsets.len() - 1;
    let t_min = lowest(thr);
    let mut compact = true;
    let mut finite = true;
    // Equal thresholds (tied relevant scores: with sparse scores, often several at 0) are
    // counted once, into scratch counts copied to each of them afterwards.
    let mut uniq: Vec<T> = thr.to_vec();
    uniq.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    uniq.dedup_by(|a, b| a == b);
    let tied = uniq.len() < thr.len();
    let mut ge_u = vec![0u32; if tied { uniq.len() * n_langs } else { 0 }];
    let mut gt_u = vec![0u32; ge_u.len()];
    let (t, cge, cgt) = if tied {
        (&uniq[..], &mut ge_u[..], &mut gt_u[..])
    } else {
        (thr, &mut *ge, &mut *gt)
    };
    for l in 0..n_langs {
        let slice = &row[offsets[l]..offsets[l + 1]];
        finite &= count_slice::<T, LEVEL>(slice, l, n_langs, t, t_min, &mut compact, buf, cge, cgt);
    }
    if tied {
        for (j, t) in thr.iter().enumerate() {
            // the first equal threshold (NaN matches none: its row fails the finiteness check)
            if let Some(u) = uniq.iter().position(|x| x == t) {
                for l in 0..n_langs {
                    ge[j * n_langs + l] += ge_u[u * n_langs + l];
                    gt[j * n_langs + l] += gt_u[u * n_langs + l];
                }
            }
        }
    }
    finite
}

/// The lowest threshold: no score below it counts for any threshold. NaN thresholds are
/// skipped unless the first is NaN; either way the NaN score is in the row itself, where the
/// finiteness check reports it (a NaN `t_min` keeps every score). `+inf` when `thr` is empty.
#[inline(always)]
pub(crate) fn lowest<T: Score>(thr: &[T]) -> T {
    match thr.first() {
        Some(&first) => thr.iter().fold(first, |m, &t| if t < m { t } else { m }),
        None => T::INFINITY,
    }
}

/// Adds to `ge`/`gt` the counts of language `l` over `slice` (a language's columns of a row,
/// or part of them) and returns whether its scores are all finite. While `compact` holds, the
/// slice is first compacted to the scores not below `t_min` (see [`count_row`]); a slice of
/// at least 256 scores of which most survive turns `compact` off for the rest of the row.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn count_slice<T: Score, const LEVEL: u8>(
    slice: &[T],
    l: usize,
    n_langs: usize,
    thr: &[T],
    t_min: T,
    compact: &mut bool,
    buf: &mut Vec<T>,
    ge: &mut [u32],
    gt: &mut [u32],
) -> bool {
    if thr.is_empty() {
        return T::all_finite(slice);
    }
    if *compact && slice.len() >= 256 && mostly_survive(slice, t_min) {
        *compact = false;
    }
    if !*compact {
        count_each(slice, l, n_langs, thr, ge, gt);
        return T::all_finite(slice);
    }
    if buf.len() < slice.len() + COMPACT_PAD {
        buf.resize(slice.len() + COMPACT_PAD, t_min);
    }
    #[cfg(target_arch = "x86_64")]
    let (n, ok) = match LEVEL {
        // SAFETY: `LEVEL` is only SIMD_AVX512 in AVX-512 builds chosen after run-time
        // detection, and `buf` was sized just above.
        SIMD_AVX512 => unsafe { T::compact_avx512(slice, t_min, buf) },
        // SAFETY: likewise for AVX2.
        SIMD_AVX2 => unsafe { T::compact_avx2(slice, t_min, buf) },
        _ => T::compact(slice, t_min, buf),
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (n, ok) = T::compact(slice, t_min, buf);
    // Most scores survive: compaction does not pay on this row.
    if 4 * n > 3 * slice.len() && slice.len() >= 256 {
        *compact = false;
    }
    if n >= FEW {
        count_each(&buf[..n], l, n_langs, thr, ge, gt);
    } else {
        count_few(&buf[..n], thr, l, n_langs, ge, gt);
    }
    ok
}

/// Survivors from which [`count_each`] (one vectorised pass per threshold) beats
/// [`count_few`] (all thresholds per score).
const FEW: usize = 48;

/// Adds the `ge`/`gt` counts of language `l` over `s` for each threshold in turn.
///
/// The first pass reads `s` from memory, the others from L1. Meanwhile the scores after `s`
/// (in a score matrix: the row's next language slice) are fetched, a share of their cache
/// lines before each threshold's pass, so the next slice's first pass finds them in cache
/// instead of waiting on memory while the core sits idle between the streams.
#[inline(always)]
fn count_each<T: Score>(
    s: &[T],
    l: usize,
    n_langs: usize,
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
) {
    let next = s.as_ptr_range().end.cast::<u8>();
    let lines = std::mem::size_of_val(s) / 64;
    let per = lines.div_ceil(thr.len().max(1));
    for (j, &t) in thr.iter().enumerate() {
        prefetch_lines(next, j * per, ((j + 1) * per).min(lines));
        let (a, b) = count_ge_gt(s, t);
        ge[j * n_langs + l] += a;
        gt[j * n_langs + l] += b;
    }
}

/// Asks for the cache lines `a..b` from `p` on: a hint that reads nothing into the program
/// and never faults, so an address past the data is harmless.
#[inline(always)]
fn prefetch_lines(p: *const u8, a: usize, b: usize) {
    #[cfg(target_arch = "x86_64")]
    for i in a..b {
        // SAFETY: a prefetch neither faults nor reads into the program; the address is only
        // formed (wrapping), never dereferenced.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                p.wrapping_add(i * 64).cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, a, b);
}

/// Whether at least 80% of 64 scores spread over `slice` (at least 64 long) are not below
/// `t_min`: then compaction would keep nearly everything, and the row is counted directly
/// from its first slice on.
#[inline(always)]
fn mostly_survive<T: Score>(slice: &[T], t_min: T) -> bool {
    let step = slice.len() / 64;
    let hits = (0..64).filter(|&i| slice[i * step] >= t_min).count();
    hits >= 52
}

/// The error for a row whose scores are not all finite: the first offending value, its
/// column being `first_col` plus its index in `values`.
pub(crate) fn non_finite<T: Score>(values: &[T], row: usize, first_col: usize) -> CoreError {
    let (col, value) = values
        .iter()
        .enumerate()
        .find(|(_, x)| !x.finite())
        .map_or((first_col, f64::NAN), |(i, x)| (first_col + i, x.as_f64()));
    CoreError::NonFinite { row, col, value }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn count_row_avx2<T: Score>(
    row: &[T],
    offsets: &[usize],
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
    buf: &mut Vec<T>,
) -> bool {
    count_row::<T, SIMD_AVX2>(row, offsets, thr, ge, gt, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,popcnt")]
fn count_row_avx512<T: Score>(
    row: &[T],
    offsets: &[usize],
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
    buf: &mut Vec<T>,
) -> bool {
    count_row::<T, SIMD_AVX512>(row, offsets, thr, ge, gt, buf)
}

/// Dispatches to an AVX-512 or AVX2 build of the same loop when the CPU has it.
pub(crate) fn count_row_dispatch<T: Score>(
    row: &[T],
    offsets: &[usize],
    thr: &[T],
    ge: &mut [u32],
    gt: &mut [u32],
    buf: &mut Vec<T>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match simd_level() {
            // SAFETY: `simd_level` reports AVX-512 only where the CPU has these subsets.
            SIMD_AVX512 => return unsafe { count_row_avx512(row, offsets, thr, ge, gt, buf) },
            // SAFETY: likewise for AVX2 and POPCNT.
            SIMD_AVX2 => return unsafe { count_row_avx2(row, offsets, thr, ge, gt, buf) },
            _ => {}
        }
    }
    count_row::<T, SIMD_PORTABLE>(row, offsets, thr, ge, gt, buf)
}

/// The portable build of the counting loops (any target).
pub const SIMD_PORTABLE: u8 = 0;
/// The AVX2 build (x86-64 with AVX2 and POPCNT).
pub const SIMD_AVX2: u8 = 1;
/// The AVX-512 build (AVX-512 F, BW, VL and POPCNT).
pub const SIMD_AVX512: u8 = 2;

/// The best SIMD level this CPU runs, capped by the environment variable `HYBRIDRS_SIMD`
/// (`portable`, `avx2` or `avx512`: for tests and benchmarks of the slower builds). Read once.
pub fn simd_level() -> u8 {
    static LEVEL: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("HYBRIDRS_SIMD").as_deref() {
            Ok("portable") => SIMD_PORTABLE,
            Ok("avx2") => SIMD_AVX2,
            _ => SIMD_AVX512,
        };
        cpu_level().min(cap)
    })
}

/// The best SIMD level of the CPU (whatever `HYBRIDRS_SIMD` says).
pub(crate) fn cpu_level() -> u8 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            return SIMD_AVX512;
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            return SIMD_AVX2;
        }
    }
    SIMD_PORTABLE
}

/// The name of a SIMD level.
pub fn simd_name(level: u8) -> &'static str {
    match level {
        SIMD_AVX512 => "avx512",
        SIMD_AVX2 => "avx2",
        _ => "portable",
    }
}
