//! Evaluation straight from embeddings, without ever writing the score matrix out.
//!
//! Scores `q · c` are computed tile by tile by an FMA microkernel over packed panels (AVX-512:
//! 14 questions x 32 candidates; AVX2: 6 x 16), into a strip of at most `rows x CH` scores
//! that stays in the core's L2 cache, and counted right there with the same compaction and
//! threshold counting as [`crate::eval`]. Counts add up over the candidate chunks, so each
//! question's metrics follow once the last chunk is counted.
//!
//! Exactness: every score is one sequential chain of fused multiply-adds over the dimensions
//! `0..d`, starting from zero (a chunk of the dimensions is stored as f32 and picked up again
//! unchanged). The relevant candidates' scores (the thresholds, needed before the first chunk)
//! are computed by the same chain in scalar code, so they are bit-identical to the scores seen
//! in the tiles and every count, tie included, is exact for those scores.

// Off x86-64 the kernels are not built and the path reports itself unavailable; what they
// would use is then unused.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]

use rayon::prelude::*;

use super::shard::{check_indptr, check_thresholds, TopK};
use super::{
    count_slice, finish_row, in_tasks, lowest, non_finite, relevant_columns, simd_level, Layout,
    QueryMetrics, Relevance, Score, Scratch, Spec, COMPACT_PAD, SIMD_AVX2, SIMD_AVX512,
};
use crate::error::{try_vec, CoreError, CoreResult};

/// A microkernel: its tile shape and its tile and strip-counting routines, built for one SIMD
/// level.
trait Micro {
    /// Questions per tile (broadcast side).
    const MR: usize;
    /// Candidates per tile (two vectors).
    const NR: usize;
    /// Dimensions per pass over a tile (keeps a candidate panel's slice in L1).
    const KC: usize;
    /// Micro-panels of questions per parallel task.
    const PANELS: usize;
    /// Candidate columns per strip (a multiple of `NR`; the strip, `MR * PANELS * CH` scores,
    /// stays in L2).
    const CH: usize;
    /// The SIMD level of the counting code.
    const LEVEL: u8;
    /// The `MR x NR` tile (see [`tile_avx512`]); unsafe to call: as [`tile_avx512`], for
    /// this kernel's SIMD level and shape.
    const TILE: TileFn;
    /// The strip's counts (see [`count_strip`]); unsafe to call: this kernel's SIMD level
    /// must be available.
    const COUNT_STRIP: CountStripFn;
}

/// A microkernel's tile routine: `(q, c, kl, out, ldo, first, pf, n_pf)`.
type TileFn = unsafe fn(*const f32, *const f32, usize, *mut f32, usize, bool, *const f32, usize);

/// A microkernel's strip counting: `(strip, first_row, layout, states, buf)`.
type CountStripFn =
    unsafe fn(&Strip<'_>, usize, &Layout, &mut [RowState], &mut Vec<f32>) -> CoreResult<()>;

/// The AVX-512 kernel: 14 x 32 tiles (28 accumulators of 16 lanes).
#[cfg(target_arch = "x86_64")]
struct Avx512;

/// The AVX2 kernel: 6 x 16 tiles (12 accumulators of 8 lanes, of the 16 registers).
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Micro for Avx512 {
    const MR: usize = 14;
    const NR: usize = 32;
    const KC: usize = 192;
    const PANELS: usize = 9;
    const CH: usize = 1024;
    const LEVEL: u8 = SIMD_AVX512;
    const TILE: TileFn = tile_avx512;
    const COUNT_STRIP: CountStripFn = count_strip_avx512;
}

#[cfg(target_arch = "x86_64")]
impl Micro for Avx2 {
    const MR: usize = 6;
    const NR: usize = 16;
    const KC: usize = 384;
    // 96 questions a task: their micro-panels (147 KiB at d = 384), the 96 x 512 strip
    // (196 KiB) and two candidate panels (48 KiB) fit a 512 KiB L2 (AMD Zen 2/3); on the Intel
    // machine 126 x 1024, 126 x 512, 96 x 512 and 72 x 512 measured the same.
    const PANELS: usize = 16;
    const CH: usize = 512;
    const LEVEL: u8 = SIMD_AVX2;
    const TILE: TileFn = tile_avx2;
    const COUNT_STRIP: CountStripFn = count_strip_avx2;
}

/// The fused kernel this CPU runs: AVX-512 (F, BW, VL, with FMA and POPCNT) or AVX2 (with FMA
/// and POPCNT), capped like the counting code by `HYBRIDRS_SIMD`; `None` (portable level, or
/// no FMA) when there is none.
pub fn kernel_level() -> Option<u8> {
    kernel_for(simd_level())
}

/// The fused kernel of SIMD level `level` (as [`simd_level`] or [`super::cpu_level`] report it:
/// AVX-512 only with F, BW, VL and POPCNT, AVX2 only with AVX2 and POPCNT), given FMA.
fn kernel_for(level: u8) -> Option<u8> {
    #[cfg(target_arch = "x86_64")]
    {
        let fma = std::arch::is_x86_feature_detected!("fma");
        match level {
            SIMD_AVX512 | SIMD_AVX2 if fma => Some(level),
            _ => None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = level;
        None
    }
}

/// Whether this CPU can run the fused path (AVX-512 or AVX2, each with FMA and POPCNT; see
/// [`kernel_level`]).
pub fn available() -> bool {
    kernel_level().is_some()
}

/// The AVX-512 kernel's `MR x NR` tile of scores: `out[r][j] (+)= sum_k q[k][r] * c[k][j]`
/// for `k` in `0..kl`, as one FMA chain per score. `q` is a k-major micro-panel (`MR` values
/// per dimension), `c` a k-major panel (`NR` values per dimension); `first` starts the chains
/// at zero, otherwise they continue from the values in `out` (row stride `ldo`).
///
/// Meanwhile the `n_pf` cache lines from `pf` (the next candidate panel's share) are asked
/// for, one every [`PF_EVERY`] dimensions (a burst of prefetches would wait on each other:
/// each holds a line-fill buffer until its line arrives); lines left over after the last
/// dimension are asked for at the end.
///
/// # Safety
/// AVX-512F and FMA must be available; `q` must hold `kl * MR` values, `c` `kl * NR`, and `out`
/// `MR` rows of `NR` values at stride `ldo`. (`pf` is only prefetched, never read.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx512(
    q: *const f32,
    c: *const f32,
    kl: usize,
    out: *mut f32,
    ldo: usize,
    first: bool,
    pf: *const f32,
    n_pf: usize,
) {
    use std::arch::x86_64::*;
    const MR: usize = Avx512::MR;
    const NR: usize = Avx512::NR;
    // SAFETY: all pointer offsets stay inside the extents promised by the caller.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        if !first {
            for (r, a) in acc.iter_mut().enumerate() {
                a[0] = _mm512_loadu_ps(out.add(r * ldo));
                a[1] = _mm512_loadu_ps(out.add(r * ldo + 16));
            }
        }
        // (Not unrolled by `PF_EVERY` as the AVX2 kernel is: with 28 FMAs a dimension the
        // loop's own instructions are hidden, and the unrolled loop measured 1-10% slower.)
        for k in 0..kl {
            if k % PF_EVERY == 0 && k / PF_EVERY < n_pf {
                _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(16 * (k / PF_EVERY)).cast());
            }
            let c0 = _mm512_loadu_ps(c.add(k * NR));
            let c1 = _mm512_loadu_ps(c.add(k * NR + 16));
            for (r, a) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(*q.add(k * MR + r));
                a[0] = _mm512_fmadd_ps(b, c0, a[0]);
                a[1] = _mm512_fmadd_ps(b, c1, a[1]);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(r * ldo), a[0]);
            _mm512_storeu_ps(out.add(r * ldo + 16), a[1]);
        }
        for b in kl.div_ceil(PF_EVERY)..n_pf {
            _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(16 * b).cast());
        }
    }
}

/// Dimensions of a tile per prefetched line of the next panel.
const PF_EVERY: usize = 4;

/// The AVX2 kernel's `MR x NR` tile: the same as [`tile_avx512`] with 8-lane vectors (6 x 2
/// accumulators, 2 candidate vectors and a broadcast: 15 of the 16 registers). Each lane is
/// one FMA chain over the dimensions, as there.
///
/// # Safety
/// AVX2 and FMA must be available; the extents as for [`tile_avx512`] with this shape.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx2(
    q: *const f32,
    c: *const f32,
    kl: usize,
    out: *mut f32,
    ldo: usize,
    first: bool,
    pf: *const f32,
    n_pf: usize,
) {
    use std::arch::x86_64::*;
    const MR: usize = Avx2::MR;
    const NR: usize = Avx2::NR;
    // SAFETY: all pointer offsets stay inside the extents promised by the caller.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        if !first {
            for (r, a) in acc.iter_mut().enumerate() {
                a[0] = _mm256_loadu_ps(out.add(r * ldo));
                a[1] = _mm256_loadu_ps(out.add(r * ldo + 8));
            }
        }
        let step = |k: usize, acc: &mut [[__m256; 2]; MR]| {
            let c0 = _mm256_loadu_ps(c.add(k * NR));
            let c1 = _mm256_loadu_ps(c.add(k * NR + 8));
            for (r, a) in acc.iter_mut().enumerate() {
                let b = _mm256_broadcast_ss(&*q.add(k * MR + r));
                a[0] = _mm256_fmadd_ps(b, c0, a[0]);
                a[1] = _mm256_fmadd_ps(b, c1, a[1]);
            }
        };
        // `PF_EVERY` dimensions per round (unrolled), one prefetch check per round: with 12
        // FMAs a dimension, the loop's own instructions would otherwise compete with them.
        for k0 in (0..kl).step_by(PF_EVERY) {
            if k0 / PF_EVERY < n_pf {
                _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(16 * (k0 / PF_EVERY)).cast());
            }
            if k0 + PF_EVERY <= kl {
                for k in k0..k0 + PF_EVERY {
                    step(k, &mut acc);
                }
            } else {
                for k in k0..kl {
                    step(k, &mut acc);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(r * ldo), a[0]);
            _mm256_storeu_ps(out.add(r * ldo + 8), a[1]);
        }
        for b in kl.div_ceil(PF_EVERY)..n_pf {
            _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(16 * b).cast());
        }
    }
}

/// Scores of `q` against the candidate rows `cols` as the microkernel computes them: one FMA
/// chain from zero per score. Eight chains run side by side (independent, so the FMA latency
/// is hidden); each is still sequential over the dimensions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn dot_chains(q: &[f32], candidates: &[f32], dim: usize, cols: &[usize], out: &mut Vec<f32>) {
    out.clear();
    for group in cols.chunks(8) {
        let rows: [&[f32]; 8] = std::array::from_fn(|j| {
            let c = group[j.min(group.len() - 1)];
            &candidates[c * dim..(c + 1) * dim]
        });
        let mut acc = [0.0f32; 8];
        for (k, &x) in q.iter().enumerate() {
            for j in 0..8 {
                acc[j] = x.mul_add(rows[j][k], acc[j]);
            }
        }
        out.extend_from_slice(&acc[..group.len()]);
    }
}

/// Per-question state of one task.
struct RowState {
    sc: Scratch<f32>,
    /// Whether compaction still pays on this question (see [`count_slice`]).
    compact: bool,
    /// The question's thresholds in a collision-free hash table, for [`count_dense`].
    ties: Option<TieTable>,
    /// The largest scores seen, when they are asked for ([`PackedShard::counts`]).
    top: Option<TopK>,
}

impl RowState {
    /// The state of a question with thresholds `sc.thr` (and zeroed counts).
    fn new<K: Micro>(sc: Scratch<f32>, top: Option<TopK>) -> RowState {
        // (the tie tables serve the AVX-512 dense counting only)
        let ties = if K::LEVEL == SIMD_AVX512 {
            TieTable::new(&sc.thr)
        } else {
            None
        };
        RowState {
            sc,
            compact: true,
            ties,
            top,
        }
    }
}

/// A question's distinct thresholds in 32 slots, each at `hash(x) = (bits(x + 0.0) * mul) >>
/// 27` (`+ 0.0` turns -0.0 into +0.0: the two compare equal, so they share a slot); empty
/// slots hold NaN, equal to nothing. A score equals some threshold exactly when it
/// equals the one in its slot.
struct TieTable {
    slots: [f32; 32],
    mul: u32,
}

impl TieTable {
    /// The table of `thr`, with the first of a fixed list of odd multipliers under which
    /// distinct thresholds take distinct slots; `None` for more than 16 distinct thresholds,
    /// a NaN, or when every multiplier collides.
    fn new(thr: &[f32]) -> Option<TieTable> {
        let mut distinct: Vec<f32> = Vec::with_capacity(thr.len());
        for &t in thr {
            if t.is_nan() {
                return None;
            }
            if !distinct.contains(&t) {
                distinct.push(t);
            }
        }
        if distinct.len() > 16 {
            return None;
        }
        let mut mul = 0x9e37_79b1u32;
        for _ in 0..64 {
            let mut slots = [f32::NAN; 32];
            let mut ok = true;
            for &t in &distinct {
                let h = Self::hash(t, mul);
                if slots[h].is_nan() {
                    slots[h] = t;
                } else {
                    ok = false;
                    break;
                }
            }
            if ok {
                return Some(TieTable { slots, mul });
            }
            mul = mul.wrapping_mul(0x2c1b_3c6d).wrapping_add(0x297a_2d39) | 1;
        }
        None
    }

    #[inline(always)]
    fn hash(x: f32, mul: u32) -> usize {
        ((x + 0.0).to_bits().wrapping_mul(mul) >> 27) as usize
    }
}

/// Adds the `ge`/`gt` counts of language `l` over `s` for `N = thr.len()` thresholds in one
/// pass: each 16 scores are loaded once and compared once with every threshold (`>=`, `N`
/// counters in registers). `x > t` is `x >= t` except where `x == t`, and those ties are found
/// by one look-up per 16 scores in the question's [`TieTable`] (a multiply, a shift, a
/// two-table permutation and an equality test); the rare lanes that hit are matched against
/// the thresholds one by one. The same pass checks finiteness: returns whether `s` is all
/// finite. (`ge` and `gt` are indexed from this call's first threshold.)
///
/// # Safety
/// AVX-512F, AVX-512BW, AVX-512VL and POPCNT must be available; `thr.len() == N`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,popcnt")]
#[allow(clippy::too_many_arguments)]
unsafe fn count_dense_n<const N: usize>(
    s: &[f32],
    ties: &TieTable,
    l: usize,
    n_langs: usize,
    thr: &[f32],
    ge: &mut [u32],
    gt: &mut [u32],
) -> bool {
    use std::arch::x86_64::*;
    let mut tied = [0u32; N];
    // SAFETY: AVX-512F/BW/VL are available (the caller's promise); loads read `s` in bounds
    // (the last step masked to the scores left); `thr` holds `N` values.
    unsafe {
        let t: [__m512; N] = std::array::from_fn(|j| _mm512_set1_ps(thr[j]));
        let mut acc = [_mm512_setzero_si512(); N];
        let one = _mm512_set1_epi32(1);
        let lo = _mm512_loadu_ps(ties.slots.as_ptr());
        let hi = _mm512_loadu_ps(ties.slots.as_ptr().add(16));
        let mul = _mm512_set1_epi32(ties.mul as i32);
        let zero = _mm512_setzero_ps();
        let abs = _mm512_set1_epi32(0x7fff_ffff);
        let mut mx = _mm512_setzero_si512();
        for at in (0..s.len()).step_by(16) {
            let rest = s.len() - at;
            let lanes = if rest >= 16 {
                0xffff
            } else {
                ((1u32 << rest) - 1) as __mmask16
            };
            let x = _mm512_maskz_loadu_ps(lanes, s.as_ptr().add(at));
            for j in 0..N {
                let m = _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(lanes, x, t[j]);
                acc[j] = _mm512_mask_add_epi32(acc[j], m, acc[j], one);
            }
            let bits = _mm512_castps_si512(x);
            mx = _mm512_max_epu32(mx, _mm512_and_si512(bits, abs));
            let h = _mm512_srli_epi32::<27>(_mm512_mullo_epi32(
                _mm512_castps_si512(_mm512_add_ps(x, zero)),
                mul,
            ));
            let slot = _mm512_permutex2var_ps(lo, h, hi);
            let mut hit = _mm512_mask_cmp_ps_mask::<_CMP_EQ_OQ>(lanes, x, slot);
            while hit != 0 {
                let v = s[at + hit.trailing_zeros() as usize];
                for j in 0..N {
                    tied[j] += u32::from(v == thr[j]);
                }
                hit &= hit - 1;
            }
        }
        for j in 0..N {
            let a = _mm512_reduce_add_epi32(acc[j]) as u32;
            ge[j * n_langs + l] += a;
            gt[j * n_langs + l] += a - tied[j];
        }
        (_mm512_reduce_max_epu32(mx) as u32) < 0x7f80_0000
    }
}

/// Dense-row counting of one language slice: [`count_dense_n`] on the thresholds 16 at a time
/// (`ties` holds all of them).
///
/// # Safety
/// AVX-512F, AVX-512BW, AVX-512VL and POPCNT must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,popcnt")]
unsafe fn count_dense(
    s: &[f32],
    ties: &TieTable,
    l: usize,
    n_langs: usize,
    thr: &[f32],
    ge: &mut [u32],
    gt: &mut [u32],
) -> bool {
    if thr.is_empty() {
        return f32::all_finite(s);
    }
    let mut finite = true;
    for (k, part) in thr.chunks(16).enumerate() {
        let (ge, gt) = (&mut ge[16 * k * n_langs..], &mut gt[16 * k * n_langs..]);
        macro_rules! by_count {
            ($($n:literal)*) => {
                match part.len() {
                    // SAFETY: the caller's promise; `part.len() == N`.
                    $($n => unsafe { count_dense_n::<$n>(s, ties, l, n_langs, part, ge, gt) },)*
                    // SAFETY: the caller's promise; a chunk has 16 thresholds here.
                    _ => unsafe { count_dense_n::<16>(s, ties, l, n_langs, part, ge, gt) },
                }
            };
        }
        finite &= by_count!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    }
    finite
}

/// A strip of scores: the candidate columns `c0..end` of a task's questions, row `i` at
/// `scores[i * stride..]`.
#[derive(Clone, Copy)]
struct Strip<'a> {
    scores: &'a [f32],
    stride: usize,
    c0: usize,
    end: usize,
}

/// Adds the counts of the strip's columns `c0..end` (row `i` of the strip is question
/// `first_row + i`), language by language, with the row kernel's [`count_slice`] at SIMD level
/// `LEVEL` (and, on AVX-512, [`count_dense`] for dense rows).
///
/// # Safety
/// The SIMD level `LEVEL` must be available (the caller is built for it).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn count_strip<const LEVEL: u8>(
    strip: &Strip<'_>,
    first_row: usize,
    layout: &Layout,
    states: &mut [RowState],
    buf: &mut Vec<f32>,
) -> CoreResult<()> {
    let (offsets, n_langs) = (&layout.offsets, layout.n_langs());
    let Strip {
        scores,
        stride,
        c0,
        end,
    } = *strip;
    for (i, st) in states.iter_mut().enumerate() {
        let srow = &scores[i * stride..i * stride + (end - c0)];
        let t_min = lowest(&st.sc.thr);
        let mut finite = true;
        for l in layout.lang_of(c0)..n_langs {
            if offsets[l] >= end {
                break;
            }
            let (a, b) = (offsets[l].max(c0), offsets[l + 1].min(end));
            if a >= b {
                continue;
            }
            let slice = &srow[a - c0..b - c0];
            finite &= match &st.ties {
                // Dense rows (compaction switched off): one comparison per score and threshold.
                // SAFETY: the tables are only built for the AVX-512 kernel (`LEVEL`).
                Some(ties) if LEVEL == SIMD_AVX512 && !st.compact => unsafe {
                    count_dense(
                        slice,
                        ties,
                        l,
                        n_langs,
                        &st.sc.thr,
                        &mut st.sc.ge,
                        &mut st.sc.gt,
                    )
                },
                _ => count_slice::<f32, LEVEL>(
                    slice,
                    l,
                    n_langs,
                    &st.sc.thr,
                    t_min,
                    &mut st.compact,
                    buf,
                    &mut st.sc.ge,
                    &mut st.sc.gt,
                ),
            };
        }
        if !finite {
            return Err(non_finite(srow, first_row.saturating_add(i), c0));
        }
    }
    Ok(())
}

/// [`count_strip`] built for AVX-512.
///
/// # Safety
/// AVX-512F, AVX-512BW, AVX-512VL and POPCNT must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,popcnt")]
unsafe fn count_strip_avx512(
    strip: &Strip<'_>,
    first_row: usize,
    layout: &Layout,
    states: &mut [RowState],
    buf: &mut Vec<f32>,
) -> CoreResult<()> {
    // SAFETY: AVX-512 is available (the caller's promise).
    unsafe { count_strip::<SIMD_AVX512>(strip, first_row, layout, states, buf) }
}

/// [`count_strip`] built for AVX2.
///
/// # Safety
/// AVX2 and POPCNT must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
unsafe fn count_strip_avx2(
    strip: &Strip<'_>,
    first_row: usize,
    layout: &Layout,
    states: &mut [RowState],
    buf: &mut Vec<f32>,
) -> CoreResult<()> {
    // SAFETY: AVX2 is available (the caller's promise).
    unsafe { count_strip::<SIMD_AVX2>(strip, first_row, layout, states, buf) }
}

/// Per-question metrics of the questions `first_row..first_row + n` whose embeddings are the
/// rows of `queries` (`n x d`, row-major) against `candidates` (`n_c x d`): the same result as
/// [`crate::eval::query_metrics`] on the scores `queries · candidatesᵀ` computed as single FMA
/// chains, without the score matrix.
pub fn query_metrics_embeddings(
    queries: &[f32],
    candidates: &[f32],
    dim: usize,
    first_row: usize,
    rel: &Relevance<'_>,
    layout: &Layout,
    spec: &Spec,
) -> CoreResult<QueryMetrics> {
    spec.validate()?;
    let n_c = layout.n_candidates();
    rel.validate(n_c)?;
    let n_q = check_embeddings(queries, candidates, dim, n_c)?;
    rel.check_rows("query_embeddings", first_row, n_q)?;
    if n_c == 0 {
        return Err(CoreError::shape(
            "candidate_embeddings",
            "has no candidates",
        ));
    }
    let level = fused_level()?;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `kernel_level` reported the level's features.
        unsafe {
            run_level(
                level, queries, candidates, dim, first_row, rel, layout, spec,
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = level;
        unreachable!("kernel_level() is None off x86_64")
    }
}

/// What [`PackedShard::counts`] returns for `n` questions over a shard's `L` languages.
#[derive(Debug)]
pub struct ShardCounts {
    /// Per threshold and language (`n_thresholds x L`, row-major): candidates scoring `>=` it.
    pub ge: Vec<u32>,
    /// The same for `>`.
    pub gt: Vec<u32>,
    /// The `k` largest scores of each question over the shard (`n x k`, decreasing, padded with
    /// negative infinity).
    pub top: Vec<f32>,
    /// Their candidates' languages (`n x k`; 0 in the padding).
    pub top_lang: Vec<u32>,
    /// Per question and language (`n x L`): further candidates scoring exactly the `k`-th
    /// largest score, beyond those listed (so that every candidate at or above it is known).
    pub top_ties: Vec<u32>,
}

/// One shard of the candidates packed once for the fused kernel, for sharded exact evaluation:
/// [`PackedShard::counts`] scores questions against it as the fused kernel computes them (one
/// FMA chain each, as [`scores_at`]), counts those scores against given thresholds (as
/// [`crate::eval::threshold_counts`] counts a block of them) and keeps each question's `k`
/// largest (with ties counted, see [`ShardCounts`]); no score block is ever written out.
#[derive(Debug)]
pub struct PackedShard {
    level: u8,
    packed: Vec<f32>,
    dim: usize,
    layout: Layout,
}

impl PackedShard {
    /// Packs `candidates` (`n_c x dim`, row-major, grouped by language as `layout` says) into
    /// the panels of this CPU's fused kernel (`n_c` may be 0).
    pub fn new(candidates: &[f32], dim: usize, layout: Layout) -> CoreResult<PackedShard> {
        rows_of("candidate_embeddings", candidates, dim)?;
        check_candidates(candidates, dim, layout.n_candidates())?;
        let level = fused_level()?;
        PackedShard::at_level(level, candidates, dim, layout)
    }

    /// [`PackedShard::new`] for the kernel of SIMD level `level`.
    fn at_level(level: u8, candidates: &[f32], dim: usize, layout: Layout) -> CoreResult<Self> {
        let n_c = layout.n_candidates();
        #[cfg(target_arch = "x86_64")]
        let packed = if level == SIMD_AVX512 {
            pack::<Avx512>(candidates, n_c, dim)?
        } else {
            pack::<Avx2>(candidates, n_c, dim)?
        };
        #[cfg(not(target_arch = "x86_64"))]
        let packed = {
            let _ = (candidates, n_c);
            Vec::new()
        };
        Ok(PackedShard {
            level,
            packed,
            dim,
            layout,
        })
    }

    /// The candidates' dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The counts and largest scores of the questions `queries` (`n x dim`, row-major) over the
    /// shard: question `i`'s thresholds are `thr[thr_indptr[i]..thr_indptr[i + 1]]`; `k >= 1`
    /// largest scores are kept. `first_row` only numbers the questions in error messages.
    pub fn counts(
        &self,
        queries: &[f32],
        first_row: usize,
        thr_indptr: &[i64],
        thr: &[f32],
        k: usize,
    ) -> CoreResult<ShardCounts> {
        let n_langs = self.layout.n_langs();
        let n_q = rows_of("query_embeddings", queries, self.dim)?;
        check_indptr("thr_indptr", thr_indptr, n_q, thr.len())?;
        check_thresholds(thr)?;
        if k == 0 {
            return Err(CoreError::value("k", "must be >= 1"));
        }
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut out = ShardCounts {
            ge: try_vec("thresholds", &[thr.len(), n_langs], 0u32)?,
            gt: try_vec("thresholds", &[thr.len(), n_langs], 0u32)?,
            top: try_vec("k", &[n_q, k], f32::NEG_INFINITY)?,
            top_lang: try_vec("k", &[n_q, k], 0u32)?,
            top_ties: try_vec("k", &[n_q, n_langs], 0u32)?,
        };
        if self.layout.n_candidates() == 0 || n_q == 0 {
            return Ok(out);
        }
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `self.level` was reported by `fused_level` (or, in tests, is one this
            // CPU runs), and the panels were packed for its kernel.
            unsafe {
                if self.level == SIMD_AVX512 {
                    self.run::<Avx512>(queries, first_row, thr_indptr, thr, k, &mut out)?
                } else {
                    self.run::<Avx2>(queries, first_row, thr_indptr, thr, k, &mut out)?
                }
            }
            Ok(out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = first_row;
            unreachable!("a PackedShard is never built off x86_64")
        }
    }

    /// [`PackedShard::counts`] with kernel `K` (inputs checked, `out` sized).
    ///
    /// # Safety
    /// `K`'s SIMD level and FMA must be available and the panels packed for `K`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn run<K: Micro>(
        &self,
        queries: &[f32],
        first_row: usize,
        thr_indptr: &[i64],
        thr: &[f32],
        k: usize,
        out: &mut ShardCounts,
    ) -> CoreResult<()> {
        let (dim, layout) = (self.dim, &self.layout);
        let n_langs = layout.n_langs();
        let n_q = queries.len() / dim;
        let r = K::MR * K::PANELS;
        let parts: Vec<Vec<RowState>> = (0..n_q.div_ceil(r))
            .into_par_iter()
            .map(|task| {
                let rows = task * r..((task + 1) * r).min(n_q);
                let mut states: Vec<RowState> = rows
                    .clone()
                    .map(|i| {
                        let (a, b) = (thr_indptr[i] as usize, thr_indptr[i + 1] as usize);
                        let sc = Scratch::<f32> {
                            thr: thr[a..b].to_vec(),
                            ge: vec![0; (b - a) * n_langs],
                            gt: vec![0; (b - a) * n_langs],
                            ..Scratch::default()
                        };
                        RowState::new::<K>(sc, Some(TopK::new(k, n_langs)))
                    })
                    .collect();
                let qs = &queries[rows.start * dim..rows.end * dim];
                // SAFETY: the caller's promise.
                unsafe {
                    block_counts::<K>(
                        qs,
                        first_row.saturating_add(rows.start),
                        &self.packed,
                        dim,
                        layout,
                        &mut states,
                    )?
                };
                Ok(states)
            })
            .collect::<CoreResult<_>>()?;
        for (i, st) in parts.iter().flatten().enumerate() {
            let at = thr_indptr[i] as usize * n_langs;
            out.ge[at..at + st.sc.ge.len()].copy_from_slice(&st.sc.ge);
            out.gt[at..at + st.sc.gt.len()].copy_from_slice(&st.sc.gt);
            if let Some(top) = &st.top {
                top.write(
                    &mut out.top[i * k..(i + 1) * k],
                    &mut out.top_lang[i * k..(i + 1) * k],
                    &mut out.top_ties[i * n_langs..(i + 1) * n_langs],
                );
            }
        }
        Ok(())
    }
}

/// The scores of the pairs `(rows[j], cols[j])` of `queries` (`n x dim`) and `candidates`
/// (`n_c x dim`) exactly as the fused kernel computes them (one FMA chain over the dimensions
/// from zero): the thresholds that [`PackedShard::counts`] needs, taken by the shard that
/// holds each candidate.
pub fn scores_at(
    queries: &[f32],
    candidates: &[f32],
    dim: usize,
    rows: &[i64],
    cols: &[i64],
) -> CoreResult<Vec<f32>> {
    if dim == 0 {
        return Err(CoreError::shape(
            "query_embeddings",
            "has dimension 0 (no columns)",
        ));
    }
    let n_q = queries.len() / dim;
    let n_c = candidates.len() / dim;
    if rows.len() != cols.len() {
        return Err(CoreError::shape(
            "cols",
            format!("has {} entries but rows has {}", cols.len(), rows.len()),
        ));
    }
    if let Some(j) = rows.iter().position(|&r| r < 0 || r as u64 >= n_q as u64) {
        return Err(CoreError::value(
            "rows",
            format!("entry {j} is {}, outside 0..{n_q} (the questions)", rows[j]),
        ));
    }
    if let Some(j) = cols.iter().position(|&c| c < 0 || c as u64 >= n_c as u64) {
        return Err(CoreError::value(
            "cols",
            format!(
                "entry {j} is {}, outside 0..{n_c} (the candidates)",
                cols[j]
            ),
        ));
    }
    fused_level()?;
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut out = try_vec("rows", &[rows.len()], 0f32)?;
    #[cfg(target_arch = "x86_64")]
    {
        let (mut one, mut got) = (Vec::new(), Vec::new());
        let mut j = 0;
        while j < rows.len() {
            let r = rows[j] as usize;
            let end = j + rows[j..].iter().take_while(|&&x| x as usize == r).count();
            one.clear();
            one.extend(cols[j..end].iter().map(|&c| c as usize));
            // SAFETY: `fused_level` reported FMA.
            unsafe {
                dot_chains(
                    &queries[r * dim..(r + 1) * dim],
                    candidates,
                    dim,
                    &one,
                    &mut got,
                )
            };
            out[j..end].copy_from_slice(&got);
            j = end;
        }
    }
    Ok(out)
}

/// The fused kernel's SIMD level, or the error that names the way out.
fn fused_level() -> CoreResult<u8> {
    kernel_level().ok_or_else(|| {
        CoreError::value(
            "backend",
            "the fused path needs an x86-64 CPU with AVX2 (or AVX-512) and FMA; use the blocked \
             path",
        )
    })
}

/// Checks a pair of embedding matrices (`n x dim` and `n_c x dim`, row-major); returns `n`.
fn check_embeddings(
    queries: &[f32],
    candidates: &[f32],
    dim: usize,
    n_c: usize,
) -> CoreResult<usize> {
    let n_q = rows_of("query_embeddings", queries, dim)?;
    check_candidates(candidates, dim, n_c)?;
    Ok(n_q)
}

/// The rows of the row-major matrix `values` of `dim` columns (`field` names it in errors).
fn rows_of(field: &'static str, values: &[f32], dim: usize) -> CoreResult<usize> {
    if dim == 0 {
        return Err(CoreError::shape(field, "has dimension 0 (no columns)"));
    }
    if !values.len().is_multiple_of(dim) {
        return Err(CoreError::shape(
            field,
            format!(
                "has {} values, not a multiple of the dimension {dim}",
                values.len()
            ),
        ));
    }
    Ok(values.len() / dim)
}

/// Checks that `candidates` holds `n_c x dim` values.
fn check_candidates(candidates: &[f32], dim: usize, n_c: usize) -> CoreResult<()> {
    if candidates.len() != n_c.saturating_mul(dim) {
        return Err(CoreError::shape(
            "candidate_embeddings",
            format!(
                "has {} values, expected {n_c} x {dim} (candidates x dimension)",
                candidates.len()
            ),
        ));
    }
    Ok(())
}

/// [`run`] with the kernel of SIMD level `level`.
///
/// # Safety
/// The level's features must be available (see [`kernel_level`]).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn run_level(
    level: u8,
    queries: &[f32],
    candidates: &[f32],
    dim: usize,
    first_row: usize,
    rel: &Relevance<'_>,
    layout: &Layout,
    spec: &Spec,
) -> CoreResult<QueryMetrics> {
    // SAFETY: the caller's promise.
    unsafe {
        if level == SIMD_AVX512 {
            run::<Avx512>(queries, candidates, dim, first_row, rel, layout, spec)
        } else {
            run::<Avx2>(queries, candidates, dim, first_row, rel, layout, spec)
        }
    }
}

/// The fused evaluation with kernel `K` (inputs already checked).
///
/// # Safety
/// `K`'s SIMD level and FMA must be available.
#[cfg(target_arch = "x86_64")]
unsafe fn run<K: Micro>(
    queries: &[f32],
    candidates: &[f32],
    dim: usize,
    first_row: usize,
    rel: &Relevance<'_>,
    layout: &Layout,
    spec: &Spec,
) -> CoreResult<QueryMetrics> {
    let n_c = layout.n_candidates();
    let n_q = queries.len() / dim;
    let n_langs = layout.n_langs();
    let n_ks = spec.recall_ks.len();

    let packed = pack::<K>(candidates, n_c, dim)?;

    let r = K::MR * K::PANELS;
    in_tasks(
        n_q,
        n_langs,
        n_ks,
        r,
        || (),
        |_, task, out| {
            let rows = out.rows();
            let qs = &queries[task * r * dim..(task * r + rows) * dim];
            let row0 = first_row + task * r;
            // Thresholds: the relevant candidates' scores, by the microkernel's own FMA chain.
            let mut states: Vec<RowState> = (0..rows)
                .map(|i| {
                    let mut sc = Scratch::<f32>::default();
                    relevant_columns(&mut sc, rel, row0 + i, n_langs);
                    let q = &qs[i * dim..(i + 1) * dim];
                    // SAFETY: FMA is available (the caller's promise).
                    unsafe { dot_chains(q, candidates, dim, &sc.cols, &mut sc.thr) };
                    RowState::new::<K>(sc, None)
                })
                .collect();
            // SAFETY: the caller's promise.
            unsafe { block_counts::<K>(qs, row0, &packed, dim, layout, &mut states)? };
            for (i, st) in states.iter_mut().enumerate() {
                finish_row(&mut st.sc, layout, spec, out.sink(i));
            }
            Ok(())
        },
    )
}

/// The candidates (`n_c x dim`, row-major) as kernel `K`'s panels: `NR` candidates a panel,
/// k-major, zero-padded past `n_c`.
fn pack<K: Micro>(candidates: &[f32], n_c: usize, dim: usize) -> CoreResult<Vec<f32>> {
    let nr = K::NR;
    let n_panels = n_c.div_ceil(nr);
    let mut packed = try_vec("candidate_embeddings", &[n_panels, nr, dim], 0f32)?;
    packed
        .par_chunks_mut(nr * dim)
        .enumerate()
        .for_each(|(p, panel)| {
            for j in 0..nr {
                let col = p * nr + j;
                if col < n_c {
                    let src = &candidates[col * dim..(col + 1) * dim];
                    for (k, &v) in src.iter().enumerate() {
                        panel[k * nr + j] = v;
                    }
                }
            }
        });
    Ok(packed)
}

/// Adds the counts of one task's questions (row `i` of `qs` is question `first_row + i`, its
/// thresholds and counts in `states[i]`) over all candidates (`packed` panels, see [`pack`]),
/// by kernel `K`; and feeds each question's scores to its [`TopK`] where it has one.
///
/// # Safety
/// `K`'s SIMD level and FMA must be available.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_counts<K: Micro>(
    qs: &[f32],
    first_row: usize,
    packed: &[f32],
    dim: usize,
    layout: &Layout,
    states: &mut [RowState],
) -> CoreResult<()> {
    let n_c = layout.n_candidates();
    let rows = states.len();
    let (mr, nr, kc, ch) = (K::MR, K::NR, K::KC, K::CH);
    let n_micro = rows.div_ceil(mr);

    // Question micro-panels, k-major, zero-padded past `rows`.
    let mut qp = try_vec("query_embeddings", &[n_micro, mr, dim], 0f32)?;
    for i in 0..rows {
        let (mp, r) = (i / mr, i % mr);
        let dst = &mut qp[mp * mr * dim..(mp + 1) * mr * dim];
        for (k, &v) in qs[i * dim..(i + 1) * dim].iter().enumerate() {
            dst[k * mr + r] = v;
        }
    }

    let width = n_c.div_ceil(nr) * nr;
    let mut strip = vec![0f32; n_micro * mr * ch];
    let mut buf = vec![0f32; ch + COMPACT_PAD];
    let mut c0 = 0;
    while c0 < width {
        let c1 = (c0 + ch).min(width);
        for p in c0 / nr..c1 / nr {
            let panel = &packed[p * nr * dim..(p + 1) * nr * dim];
            // The next panel is asked for (into L2) while this one is multiplied: a share of
            // its lines per tile, spread over the tile's dimensions.
            let lines = if (p + 2) * nr * dim <= packed.len() {
                nr * dim / 16
            } else {
                0
            };
            let share = lines.div_ceil(n_micro * dim.div_ceil(kc));
            let next = packed.as_ptr().wrapping_add((p + 1) * nr * dim);
            let mut line = 0;
            let mut k0 = 0;
            while k0 < dim {
                let kl = kc.min(dim - k0);
                for mp in 0..n_micro {
                    let n_pf = share.min(lines - line);
                    // SAFETY: `K`'s features are available (the caller's promise); the
                    // micro-panel holds `dim * MR` values from `k0 * MR`, the panel `dim * NR`
                    // from `k0 * NR`, and the strip `n_micro * MR` rows of `CH >= c1 - c0`
                    // values.
                    unsafe {
                        (K::TILE)(
                            qp.as_ptr().add(mp * mr * dim + k0 * mr),
                            panel.as_ptr().add(k0 * nr),
                            kl,
                            strip.as_mut_ptr().add(mp * mr * ch + (p * nr - c0)),
                            ch,
                            k0 == 0,
                            next.wrapping_add(16 * line),
                            n_pf,
                        );
                    }
                    line += n_pf;
                }
                k0 += kl;
            }
        }
        // SAFETY: `K`'s features are available (the caller's promise).
        unsafe {
            (K::COUNT_STRIP)(
                &Strip {
                    scores: &strip,
                    stride: ch,
                    c0,
                    end: c1.min(n_c),
                },
                first_row,
                layout,
                states,
                &mut buf,
            )?
        };
        let end = c1.min(n_c);
        for (i, st) in states.iter_mut().enumerate() {
            if let Some(top) = &mut st.top {
                let srow = &strip[i * ch..i * ch + (end - c0)];
                for l in layout.lang_of(c0)..layout.n_langs() {
                    let (a, b) = (layout.offsets[l].max(c0), layout.offsets[l + 1].min(end));
                    if layout.offsets[l] >= end {
                        break;
                    }
                    if a < b {
                        top.scan(&srow[a - c0..b - c0], l);
                    }
                }
            }
        }
        c0 = c1;
    }
    Ok(())
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::eval::{cpu_level, query_metrics, MapNorm};

    /// Pseudo-random values in [-1, 1).
    fn lcg(seed: u64, n: usize) -> Vec<f32> {
        crate::eval::tests::lcg(seed, n)
            .iter()
            .map(|&x| (x * 2.0 - 1.0) as f32)
            .collect()
    }

    /// Question and candidate embeddings (`n_q x dim`, `n_c x dim`) from `seed`: in [-1, 1), or
    /// small integers (many exact ties) with `integer`.
    fn embeddings(
        seed: u64,
        n_q: usize,
        n_c: usize,
        dim: usize,
        integer: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let round = |v: Vec<f32>| -> Vec<f32> {
            if integer {
                v.iter().map(|x| (x * 2.0).round()).collect()
            } else {
                v
            }
        };
        (round(lcg(seed, n_q * dim)), round(lcg(seed + 1, n_c * dim)))
    }

    /// Every score as the fused kernel computes it: one FMA chain over the dimensions from 0.
    fn chain_scores(q: &[f32], c: &[f32], dim: usize) -> Vec<f32> {
        q.chunks(dim)
            .flat_map(|qi| {
                c.chunks(dim).map(|cj| {
                    qi.iter()
                        .zip(cj)
                        .fold(0.0f32, |acc, (&x, &y)| x.mul_add(y, acc))
                })
            })
            .collect()
    }

    /// The fused kernels this CPU runs, whatever `HYBRIDRS_SIMD` says (each is tested).
    fn levels() -> Vec<u8> {
        let top = kernel_for(cpu_level());
        [SIMD_AVX512, SIMD_AVX2]
            .into_iter()
            .filter(|&l| top.is_some_and(|t| l <= t))
            .collect()
    }

    fn check(n_q: usize, offs: &[i64], dim: usize, integer: bool, seed: u64) {
        let layout = Layout::new(offs).unwrap();
        let n_c = layout.n_candidates();
        let (q, c) = embeddings(seed, n_q, n_c, dim, integer);
        let mut indptr = vec![0i64];
        let mut indices = Vec::new();
        for i in 0..n_q {
            let picks = lcg(seed + 2 + i as u64, i % 6);
            for p in picks {
                indices.push((((p + 1.0) / 2.0) * n_c as f32) as i64 % n_c as i64);
            }
            indptr.push(indices.len() as i64);
        }
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        let spec = Spec {
            recall_ks: vec![1, 10],
            map_k: 10,
            map_norm: MapNorm::R,
        };
        // The reference scores: the same FMA chains, then the row kernel.
        let scores = chain_scores(&q, &c, dim);
        let want = query_metrics(&scores, n_q, 0, &rel, &layout, &spec).unwrap();
        let got = query_metrics_embeddings(&q, &c, dim, 0, &rel, &layout, &spec).unwrap();
        for level in levels() {
            // SAFETY: the CPU runs `level` (`levels`).
            let got = unsafe { run_level(level, &q, &c, dim, 0, &rel, &layout, &spec) }.unwrap();
            check_same(&got, &want, level);
            let tail = n_q / 2;
            // SAFETY: likewise.
            let part =
                unsafe { run_level(level, &q[tail * dim..], &c, dim, tail, &rel, &layout, &spec) }
                    .unwrap();
            assert_eq!(part.ap.len(), n_q - tail);
            assert!(
                part.ap
                    .iter()
                    .zip(&want.ap[tail..])
                    .all(|(x, y)| x == y || (x.is_nan() && y.is_nan())),
                "ap from first_row, level {level}"
            );
        }
        check_same(&got, &want, simd_level());
    }

    fn check_same(got: &QueryMetrics, want: &QueryMetrics, level: u8) {
        let same = |a: &[f64], b: &[f64]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
        };
        assert!(same(&got.ap, &want.ap), "ap, level {level}");
        assert!(same(&got.lang_ap, &want.lang_ap), "lang_ap, level {level}");
        assert!(
            same(&got.rank_distance, &want.rank_distance),
            "rank distance, level {level}"
        );
        assert!(same(&got.recall, &want.recall), "recall, level {level}");
        assert!(
            same(&got.lang_recall, &want.lang_recall),
            "lang recall, level {level}"
        );
        assert!(same(&got.ap_at_k, &want.ap_at_k), "ap@k, level {level}");
        assert_eq!(got.n_relevant, want.n_relevant);
    }

    #[test]
    fn fused_equals_the_row_kernel_on_the_same_scores() {
        if !available() {
            return;
        }
        // Odd sizes: partial micro-panels, panels, strips and dimension passes; language
        // boundaries inside strips; integer embeddings for many exact ties.
        check(3, &[0, 5], 1, false, 1);
        check(29, &[0, 40, 41, 100], 7, false, 2);
        check(130, &[0, 700, 1500, 2100], 200, false, 3);
        check(127, &[0, 333, 1030, 1100, 2050], 400, true, 4);
        check(15, &[0, 0, 64, 64, 96], 33, true, 5);
        // several tasks and three dimension passes of either kernel
        check(260, &[0, 100, 1200], 800, false, 6);
    }

    #[test]
    fn shard_counts_add_up_to_the_full_matrix_counts() {
        if !available() {
            return;
        }
        use crate::eval::threshold_counts;
        for (case, (n_q, offs, dim, integer, cuts)) in [
            (
                9usize,
                vec![0i64, 30, 31, 90],
                5usize,
                true,
                vec![0usize, 40, 90],
            ),
            (
                130,
                vec![0, 700, 1500, 2100],
                70,
                false,
                vec![0, 512, 1024, 2100],
            ),
            (40, vec![0, 0, 300, 300, 610], 33, true, vec![0, 610]),
            (7, vec![0, 5, 9], 3, true, vec![0, 3, 3, 4, 9]),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 70 + case as u64 * 10;
            let layout = Layout::new(&offs).unwrap();
            let (n_c, n_langs) = (layout.n_candidates(), layout.n_langs());
            let (q, c) = embeddings(seed, n_q, n_c, dim, integer);
            let scores = chain_scores(&q, &c, dim);
            // thresholds: some of each row's scores (by the fused chain: `scores_at`), and a
            // value from outside
            let (mut ptr, mut rows, mut cols) = (vec![0i64], Vec::new(), Vec::new());
            for i in 0..n_q {
                for p in lcg(seed + 2 + i as u64, i % 5) {
                    rows.push(i as i64);
                    cols.push((((p + 1.0) / 2.0) * n_c as f32) as i64 % n_c as i64);
                }
                ptr.push(rows.len() as i64);
            }
            let mut thr = scores_at(&q, &c, dim, &rows, &cols).unwrap();
            for (j, (&r, &cc)) in rows.iter().zip(&cols).enumerate() {
                assert_eq!(thr[j], scores[r as usize * n_c + cc as usize]);
            }
            if let Some(t) = thr.first_mut() {
                *t += 0.5;
            }
            let (want_ge, want_gt) =
                threshold_counts(&scores, n_q, 0, &layout, &ptr, &thr).unwrap();
            for level in levels() {
                for k in [1usize, 4, 10] {
                    let mut ge = vec![0u32; want_ge.len()];
                    let mut gt = vec![0u32; want_gt.len()];
                    let mut parts = Vec::new();
                    for w in cuts.windows(2) {
                        let (a, b) = (w[0], w[1]);
                        let local: Vec<i64> = offs
                            .iter()
                            .map(|&o| (o as usize).clamp(a, b) as i64 - a as i64)
                            .collect();
                        let ll = Layout::new(&local).unwrap();
                        let cs = &c[a * dim..b * dim];
                        // (an empty shard, b == a, counts nothing and lists nothing)
                        let shard = PackedShard::at_level(level, cs, dim, ll).unwrap();
                        let out = shard.counts(&q, 0, &ptr, &thr, k).unwrap();
                        ge.iter_mut().zip(&out.ge).for_each(|(x, y)| *x += y);
                        gt.iter_mut().zip(&out.gt).for_each(|(x, y)| *x += y);
                        parts.push(out);
                    }
                    assert_eq!(ge, want_ge, "case {case} level {level}");
                    assert_eq!(gt, want_gt, "case {case} level {level}");
                    // the merged lists give the row's k largest and exact `>=` counts of them
                    for i in 0..n_q {
                        let row = &scores[i * n_c..(i + 1) * n_c];
                        let mut sorted = row.to_vec();
                        sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
                        let mut all: Vec<f32> = parts
                            .iter()
                            .flat_map(|p| p.top[i * k..(i + 1) * k].to_vec())
                            .collect();
                        all.sort_by(|a, b| b.partial_cmp(a).unwrap());
                        for j in 0..k.min(n_c) {
                            let cut = sorted[j];
                            assert_eq!(all[j], cut, "case {case} row {i} rank {j}");
                            for l in 0..n_langs {
                                let (lo, hi) = (offs[l] as usize, offs[l + 1] as usize);
                                let want = row[lo..hi].iter().filter(|&&x| x >= cut).count();
                                let got: usize = parts
                                    .iter()
                                    .map(|p| {
                                        let v = &p.top[i * k..(i + 1) * k];
                                        let lg = &p.top_lang[i * k..(i + 1) * k];
                                        let listed = v
                                            .iter()
                                            .zip(lg)
                                            .filter(|&(&x, &m)| x >= cut && m as usize == l)
                                            .count();
                                        let tied = if v[k - 1] == cut {
                                            p.top_ties[i * n_langs + l] as usize
                                        } else {
                                            0
                                        };
                                        listed + tied
                                    })
                                    .sum();
                                assert_eq!(got, want, "case {case} row {i} rank {j} lang {l}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn tie_table_counting_equals_the_definition() {
        if !available() {
            return;
        }
        // Scores from a small set (many exact ties), both zeros, slices across the 16-lane
        // steps; thresholds drawn from the scores (repeats included) and from outside, 1 to 24
        // of them (16 at a time: past 16, in two chunks), or none.
        let pool = [
            0.0f32, -0.0, 1.0, -1.0, 0.5, 0.25, 1e-30, -1e-30, 3.0, 0.125,
        ];
        let pick = |seed: u64, n: usize| -> Vec<f32> {
            lcg(seed, n)
                .iter()
                .map(|&x| pool[((x + 1.0) * 5.0) as usize % pool.len()])
                .collect()
        };
        for (case, n) in [0usize, 1, 15, 16, 17, 64, 100, 1000]
            .into_iter()
            .enumerate()
        {
            let s = pick(case as u64 + 50, n);
            for n_thr in [0usize, 1, 2, 3, 7, 9, 12, 16, 17, 24] {
                let mut thr = pick(case as u64 + 90 + n_thr as u64, n_thr.saturating_sub(3));
                thr.extend([0.75f32, -0.0, 1.0].iter().take(n_thr - thr.len()));
                assert_eq!(thr.len(), n_thr);
                let ties = TieTable::new(&thr).expect("at most 13 distinct thresholds");
                let (n_langs, l) = (3, 2);
                let mut ge = vec![0u32; thr.len() * n_langs];
                let mut gt = vec![0u32; thr.len() * n_langs];
                // SAFETY: AVX-512 is available (checked above).
                let ok = unsafe { count_dense(&s, &ties, l, n_langs, &thr, &mut ge, &mut gt) };
                assert!(ok);
                for (j, &t) in thr.iter().enumerate() {
                    let want_ge = s.iter().filter(|&&x| x >= t).count() as u32;
                    let want_gt = s.iter().filter(|&&x| x > t).count() as u32;
                    assert_eq!(
                        (ge[j * n_langs + l], gt[j * n_langs + l]),
                        (want_ge, want_gt),
                        "{n} scores, threshold {j} of {n_thr}"
                    );
                    assert_eq!((ge[j * n_langs], gt[j * n_langs]), (0, 0));
                }
                // a non-finite score anywhere (the masked last step included) is reported
                for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
                    for at in [0, n / 2, n.saturating_sub(1)] {
                        if n == 0 {
                            continue;
                        }
                        let mut s2 = s.clone();
                        s2[at] = bad;
                        // SAFETY: AVX-512 is available (checked above).
                        let ok =
                            unsafe { count_dense(&s2, &ties, l, n_langs, &thr, &mut ge, &mut gt) };
                        assert!(!ok, "{bad} at {at} of {n}");
                    }
                }
            }
        }
        // more than 16 distinct thresholds, or a NaN: no table (the plain counting runs)
        let many: Vec<f32> = (0..17).map(|i| i as f32).collect();
        assert!(TieTable::new(&many).is_none());
        assert!(TieTable::new(&[1.0, f32::NAN]).is_none());
    }

    #[test]
    fn fused_reports_non_finite_scores_and_bad_shapes() {
        if !available() {
            return;
        }
        let layout = Layout::new(&[0, 40]).unwrap();
        let indptr = [0i64, 1];
        let indices = [3i64];
        let rel = Relevance {
            indptr: &indptr,
            indices: &indices,
        };
        let spec = Spec {
            recall_ks: vec![1],
            map_k: 10,
            map_norm: MapNorm::R,
        };
        let q = vec![1.0f32, 1.0];
        let mut c = vec![0.5f32; 80];
        c[66] = f32::INFINITY;
        let err = query_metrics_embeddings(&q, &c, 2, 0, &rel, &layout, &spec).unwrap_err();
        assert!(matches!(
            err,
            CoreError::NonFinite {
                row: 0,
                col: 33,
                ..
            }
        ));
        for level in levels() {
            // SAFETY: the CPU runs `level` (`levels`).
            let err = unsafe { run_level(level, &q, &c, 2, 0, &rel, &layout, &spec) }.unwrap_err();
            assert!(
                matches!(
                    err,
                    CoreError::NonFinite {
                        row: 0,
                        col: 33,
                        ..
                    }
                ),
                "level {level}"
            );
        }
        let err = query_metrics_embeddings(&q, &c[..78], 2, 0, &rel, &layout, &spec).unwrap_err();
        assert!(matches!(err, CoreError::Shape { .. }));
        let err = query_metrics_embeddings(&q, &c, 2, 1, &rel, &layout, &spec).unwrap_err();
        assert!(matches!(err, CoreError::Shape { .. }));
        let err = query_metrics_embeddings(&q[..1], &c, 2, 0, &rel, &layout, &spec).unwrap_err();
        assert!(matches!(err, CoreError::Shape { .. }));
    }
}
