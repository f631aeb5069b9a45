//! Hybrid batch sampling: each global step is monolingual (probability alpha: one language for
//! the whole global batch, question and passage in it) or cross-lingual (each group's ordered
//! language pair drawn uniformly among those it offers).
//!
//! An epoch is planned up front, sequentially, from `(seed, epoch)` alone, so it does not
//! depend on threads. Each step takes groups not yet used in the epoch (in a per-epoch shuffled
//! order) while any fit the step's mode, then fills up with groups reused from earlier steps;
//! no group appears twice in one global batch. Every batch is a full global batch.

use crate::error::{CoreError, CoreResult};
use crate::pool::PairPool;

/// xoshiro256** seeded through SplitMix64: small, fast and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator from a 64-bit seed.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias (Lemire's method).
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            let lo = m as u64;
            if lo >= n || lo >= n.wrapping_neg() % n {
                return (m >> 64) as usize;
            }
        }
    }
}

/// How the probability of a monolingual step moves over training (a function of the global
/// step `t = epoch * steps_per_epoch + step`, evaluated by the sampler when it plans an epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AlphaSchedule {
    /// `alpha` at every step.
    Constant,
    /// From `alpha` at step 0 linearly to `alpha_end` at step `total_steps - 1` (and after).
    Linear {
        /// The alpha of the last step.
        alpha_end: f64,
        /// Global steps of the whole training.
        total_steps: u64,
    },
    /// From `alpha` to `alpha_end` at the middle step, then back to `alpha` at the last.
    Triangle {
        /// The alpha of the middle step.
        alpha_end: f64,
        /// Global steps of the whole training.
        total_steps: u64,
    },
}

/// Sampler settings. Language weights index language codes; a weight of 0 keeps a language out
/// of monolingual draws.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Pairs per rank and step.
    pub batch_size: usize,
    /// Number of ranks; the global batch is `batch_size * world_size`.
    pub world_size: usize,
    /// Probability of a monolingual step (the first step's, under a schedule).
    pub alpha: f64,
    /// How alpha moves over training.
    pub schedule: AlphaSchedule,
    /// Base seed.
    pub seed: u64,
    /// Weight of each language code in monolingual draws.
    pub lang_weights: Vec<f64>,
    /// Keep the last, incomplete global batch (padded with reused groups) instead of dropping
    /// it; refuse languages with fewer groups than a global batch instead of skipping them.
    pub drop_last: bool,
}

/// Counts of one planned epoch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanStats {
    /// Global steps.
    pub steps: u64,
    /// Monolingual steps.
    pub mono_steps: u64,
    /// Cross-lingual steps.
    pub cross_steps: u64,
    /// Eligible groups (G).
    pub eligible_groups: u64,
    /// Distinct groups used at least once.
    pub groups_used: u64,
    /// Eligible groups never used in the epoch (could not be placed).
    pub groups_unused: u64,
    /// Batch slots filled with a group already used earlier in the epoch.
    pub reused_slots: u64,
}

/// One epoch: `steps x global_batch` pairs of caller rows, and each step's mode.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochPlan {
    /// Pairs per global step.
    pub global_batch: usize,
    /// Per step: the monolingual language code, or -1 for a cross-lingual step.
    pub modes: Vec<i32>,
    /// Question rows, `steps x global_batch`.
    pub q_rows: Vec<u32>,
    /// Passage rows, `steps x global_batch`.
    pub p_rows: Vec<u32>,
    /// Counts.
    pub stats: PlanStats,
}

/// The hybrid batch sampler over one pool.
#[derive(Debug, Clone)]
pub struct HybridSampler {
    pool: PairPool,
    cfg: SamplerConfig,
    /// Languages allowed in monolingual steps, with cumulative weights.
    mono_langs: Vec<usize>,
    mono_cum: Vec<f64>,
    /// Languages left out of monolingual steps because they have too few groups.
    skipped_langs: Vec<usize>,
    eligible: usize,
    steps: usize,
    /// The global batch, `batch_size * world_size` (checked when built).
    gb: usize,
}

impl HybridSampler {
    /// Validates the settings against the pool.
    pub fn new(pool: PairPool, cfg: SamplerConfig) -> CoreResult<Self> {
        if cfg.batch_size == 0 {
            return Err(CoreError::value("batch_size", "must be >= 1"));
        }
        if cfg.world_size == 0 {
            return Err(CoreError::value("world_size", "must be >= 1"));
        }
        if !(0.0..=1.0).contains(&cfg.alpha) {
            return Err(CoreError::value(
                "alpha",
                format!("must lie in [0, 1], got {}", cfg.alpha),
            ));
        }
        if let AlphaSchedule::Linear {
            alpha_end,
            total_steps,
        }
        | AlphaSchedule::Triangle {
            alpha_end,
            total_steps,
        } = cfg.schedule
        {
            if !(0.0..=1.0).contains(&alpha_end) {
                return Err(CoreError::value(
                    "alpha_end",
                    format!("must lie in [0, 1], got {alpha_end}"),
                ));
            }
            if total_steps == 0 {
                return Err(CoreError::value("total_steps", "must be >= 1"));
            }
        }
        let (a_min, a_max) = alpha_range(&cfg);
        let nl = pool.n_langs();
        if cfg.lang_weights.len() != nl {
            return Err(CoreError::shape(
                "language_weights",
                format!("needs {nl} entries, got {}", cfg.lang_weights.len()),
            ));
        }
        if cfg.lang_weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(CoreError::value(
                "language_weights",
                "must be finite and >= 0",
            ));
        }
        let gb = cfg.batch_size.checked_mul(cfg.world_size).ok_or_else(|| {
            CoreError::value(
                "batch_size",
                format!(
                    "batch_size * world_size = {} * {} overflows",
                    cfg.batch_size, cfg.world_size
                ),
            )
        })?;
        if a_max > 0.0 && !cfg.lang_weights.iter().any(|&w| w > 0.0) {
            return Err(CoreError::value(
                "language_weights",
                "all weights are 0: give at least one language a positive weight, or use alpha = 0",
            ));
        }
        let stats = pool.stats();
        let multi_groups = stats.groups - stats.groups_by_size[0] - stats.groups_by_size[1];
        let eligible = if a_max == 0.0 {
            multi_groups
        } else {
            stats.groups
        } as usize;
        if a_min < 1.0 && (multi_groups as usize) < gb {
            return Err(CoreError::value(
                "batch_size",
                format!(
                    "a cross-lingual global batch needs {gb} groups with 2+ languages, the pool \
                     has {multi_groups}: lower batch_size (or world_size), or use alpha = 1"
                ),
            ));
        }
        let mut mono_langs = Vec::new();
        let mut skipped_langs = Vec::new();
        if a_max > 0.0 {
            for l in 0..nl {
                if cfg.lang_weights[l] <= 0.0 || stats.rows_per_lang[l] == 0 {
                    continue;
                }
                if (stats.rows_per_lang[l] as usize) < gb {
                    if !cfg.drop_last {
                        return Err(CoreError::value(
                            "batch_size",
                            format!(
                                "a monolingual global batch of {gb} is larger than the {} groups \
                                 of language code {l}: lower batch_size, leave the language out \
                                 (languages=...), or set drop_last=True to skip it",
                                stats.rows_per_lang[l]
                            ),
                        ));
                    }
                    skipped_langs.push(l);
                    continue;
                }
                mono_langs.push(l);
            }
            if mono_langs.is_empty() {
                return Err(CoreError::value(
                    "batch_size",
                    format!(
                        "no language has {gb} groups for a monolingual global batch: lower \
                         batch_size, or use alpha = 0"
                    ),
                ));
            }
        }
        // Cumulative weights, scaled by the largest so that huge finite weights cannot
        // overflow the sum to infinity.
        let w_max = mono_langs
            .iter()
            .map(|&l| cfg.lang_weights[l])
            .fold(0.0f64, f64::max);
        let mut acc = 0.0;
        let mono_cum = mono_langs
            .iter()
            .map(|&l| {
                acc += cfg.lang_weights[l] / w_max;
                acc
            })
            .collect();
        let steps = if cfg.drop_last {
            eligible / gb
        } else {
            eligible.div_ceil(gb)
        };
        if steps == 0 {
            return Err(CoreError::value(
                "batch_size",
                format!(
                    "the {eligible} eligible groups do not fill one global batch of {gb}: lower \
                     batch_size, or set drop_last=False"
                ),
            ));
        }
        Ok(HybridSampler {
            pool,
            cfg,
            gb,
            mono_langs,
            mono_cum,
            skipped_langs,
            eligible,
            steps,
        })
    }

    /// The probability of a monolingual step at global step `t` (see [`AlphaSchedule`]).
    pub fn alpha_at(&self, t: u64) -> f64 {
        alpha_at(&self.cfg, t)
    }

    /// Global steps per epoch (the same every epoch).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The pool sampled from.
    pub fn pool(&self) -> &PairPool {
        &self.pool
    }

    /// Languages left out of monolingual steps (fewer groups than a global batch).
    pub fn skipped_langs(&self) -> &[usize] {
        &self.skipped_langs
    }

    fn draw_lang(&self, rng: &mut Rng) -> usize {
        let total = self.mono_cum[self.mono_cum.len() - 1];
        let u = rng.next_f64() * total;
        let i = self.mono_cum.partition_point(|&c| c <= u);
        self.mono_langs[i.min(self.mono_langs.len() - 1)]
    }

    /// Plans epoch `epoch`: deterministic in `(seed, epoch)`.
    pub fn plan(&self, epoch: u64) -> EpochPlan {
        let pool = &self.pool;
        let ng = pool.n_groups();
        let nl = pool.n_langs();
        let gb = self.gb;
        let (a_min, a_max) = alpha_range(&self.cfg);
        let first_step = epoch.saturating_mul(self.steps as u64);
        let mut rng = Rng::new(
            self.cfg
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(epoch.wrapping_mul(0xD1B5_4A32_D192_ED03))
                ^ 0x6879_6272_6964,
        );
        // Per-epoch shuffle of the groups, then one queue per language and one for cross steps.
        let mut perm: Vec<u32> = (0..ng as u32).collect();
        for i in (1..perm.len()).rev() {
            perm.swap(i, rng.below(i + 1));
        }
        let mut queues: Vec<Vec<u32>> = vec![Vec::new(); nl];
        let mut cross_q: Vec<u32> = Vec::new();
        for &g in &perm {
            let (_, langs) = pool.group(g as usize);
            if a_max > 0.0 {
                for &l in langs {
                    queues[l as usize].push(g);
                }
            }
            if langs.len() >= 2 && a_min < 1.0 {
                cross_q.push(g);
            }
        }
        drop(perm);
        let mut cursor = vec![0usize; nl];
        let mut cross_cursor = 0usize;
        let mut used = vec![false; ng];
        // Step stamp of the last batch each group joined (reuse must not repeat in a batch).
        let mut in_batch = vec![u32::MAX; ng];
        let steps = self.steps;
        let mut plan = EpochPlan {
            global_batch: gb,
            modes: Vec::with_capacity(steps),
            q_rows: Vec::with_capacity(steps * gb),
            p_rows: Vec::with_capacity(steps * gb),
            stats: PlanStats {
                steps: steps as u64,
                eligible_groups: self.eligible as u64,
                ..PlanStats::default()
            },
        };
        let mut batch: Vec<u32> = Vec::with_capacity(gb);
        for step in 0..steps {
            let alpha = alpha_at(&self.cfg, first_step.saturating_add(step as u64));
            let mono = alpha > 0.0 && rng.next_f64() < alpha;
            let (queue, cur, mode) = if mono {
                let l = self.draw_lang(&mut rng);
                (&queues[l], &mut cursor[l], l as i32)
            } else {
                (&cross_q, &mut cross_cursor, -1)
            };
            batch.clear();
            while batch.len() < gb && *cur < queue.len() {
                let g = queue[*cur];
                *cur += 1;
                if !used[g as usize] {
                    used[g as usize] = true;
                    in_batch[g as usize] = step as u32;
                    batch.push(g);
                }
            }
            let fresh = batch.len();
            // The queue holds >= gb groups (checked in `new`), so this ends.
            while batch.len() < gb {
                let g = queue[rng.below(queue.len())];
                if in_batch[g as usize] != step as u32 {
                    in_batch[g as usize] = step as u32;
                    batch.push(g);
                }
            }
            plan.stats.reused_slots += (gb - fresh) as u64;
            plan.modes.push(mode);
            if mono {
                plan.stats.mono_steps += 1;
            } else {
                plan.stats.cross_steps += 1;
            }
            for &g in &batch {
                let (rows, langs) = pool.group(g as usize);
                if mono {
                    let i = langs.partition_point(|&l| (l as i32) < mode);
                    plan.q_rows.push(rows[i]);
                    plan.p_rows.push(rows[i]);
                } else {
                    let k = rows.len();
                    let a = rng.below(k);
                    let mut b = rng.below(k - 1);
                    if b >= a {
                        b += 1;
                    }
                    plan.q_rows.push(rows[a]);
                    plan.p_rows.push(rows[b]);
                }
            }
        }
        let eligible_used = (0..ng)
            .filter(|&g| used[g] && (a_max > 0.0 || pool.group(g).0.len() >= 2))
            .count();
        plan.stats.groups_used = used.iter().filter(|&&u| u).count() as u64;
        plan.stats.groups_unused = (self.eligible - eligible_used) as u64;
        plan
    }
}

/// The lowest and highest alpha the schedule reaches.
fn alpha_range(cfg: &SamplerConfig) -> (f64, f64) {
    match cfg.schedule {
        AlphaSchedule::Constant => (cfg.alpha, cfg.alpha),
        AlphaSchedule::Linear { alpha_end, .. } | AlphaSchedule::Triangle { alpha_end, .. } => {
            (cfg.alpha.min(alpha_end), cfg.alpha.max(alpha_end))
        }
    }
}

/// Alpha at global step `t` (validated settings: alphas in [0, 1], total_steps >= 1).
fn alpha_at(cfg: &SamplerConfig, t: u64) -> f64 {
    let (end, total, triangle) = match cfg.schedule {
        AlphaSchedule::Constant => return cfg.alpha,
        AlphaSchedule::Linear {
            alpha_end,
            total_steps,
        } => (alpha_end, total_steps, false),
        AlphaSchedule::Triangle {
            alpha_end,
            total_steps,
        } => (alpha_end, total_steps, true),
    };
    let last = total.saturating_sub(1).max(1) as f64;
    let mut x = (t.min(total.saturating_sub(1)) as f64 / last).clamp(0.0, 1.0);
    if triangle {
        x = 1.0 - (2.0 * x - 1.0).abs();
    }
    (cfg.alpha + (end - cfg.alpha) * x).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(groups: usize, langs: usize, missing_every: usize) -> PairPool {
        let mut g = Vec::new();
        let mut l = Vec::new();
        for i in 0..groups {
            for j in 0..langs {
                if missing_every > 0 && (i + j) % missing_every == 0 && j > 0 {
                    continue;
                }
                g.push(i as i64);
                l.push(j as i64);
            }
        }
        PairPool::from_arrays(&g, &l, langs).unwrap()
    }

    fn cfg(alpha: f64, batch: usize) -> SamplerConfig {
        SamplerConfig {
            batch_size: batch,
            world_size: 1,
            alpha,
            schedule: AlphaSchedule::Constant,
            seed: 7,
            lang_weights: vec![1.0; 3],
            drop_last: true,
        }
    }

    #[test]
    fn batches_are_valid_and_deterministic() {
        let p = pool(100, 3, 4);
        let s = HybridSampler::new(p.clone(), cfg(0.5, 8)).unwrap();
        let a = s.plan(0);
        assert_eq!(a, s.plan(0));
        assert_ne!(a.q_rows, s.plan(1).q_rows);
        assert_eq!(a.modes.len(), 100 / 8);
        // map caller row -> (group, lang)
        let mut info = vec![(0usize, 0u8); p.n_rows()];
        for g in 0..p.n_groups() {
            let (r, l) = p.group(g);
            for (&row, &lang) in r.iter().zip(l) {
                info[row as usize] = (g, lang);
            }
        }
        for (step, &mode) in a.modes.iter().enumerate() {
            let mut seen = std::collections::HashSet::new();
            for i in step * 8..(step + 1) * 8 {
                let (gq, lq) = info[a.q_rows[i] as usize];
                let (gp, lp) = info[a.p_rows[i] as usize];
                assert_eq!(gq, gp);
                assert!(seen.insert(gq), "group twice in one batch");
                if mode >= 0 {
                    assert_eq!((lq as i32, lp as i32), (mode, mode));
                } else {
                    assert_ne!(lq, lp);
                }
            }
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        let p = pool(10, 3, 0);
        assert!(HybridSampler::new(p.clone(), cfg(1.5, 2)).is_err());
        assert!(HybridSampler::new(p.clone(), cfg(0.5, 0)).is_err());
        assert!(HybridSampler::new(p.clone(), cfg(0.5, 11)).is_err());
        let mut c = cfg(0.5, 2);
        c.lang_weights = vec![1.0];
        assert!(HybridSampler::new(p, c).is_err());
    }

    #[test]
    fn schedules_move_alpha_with_the_global_step() {
        let p = pool(400, 3, 0);
        let mut c = cfg(0.0, 4);
        c.schedule = AlphaSchedule::Linear {
            alpha_end: 1.0,
            total_steps: 200,
        };
        let s = HybridSampler::new(p.clone(), c.clone()).unwrap();
        assert_eq!(s.steps(), 100);
        assert_eq!(s.alpha_at(0), 0.0);
        assert_eq!(s.alpha_at(199), 1.0);
        assert_eq!(s.alpha_at(5000), 1.0);
        assert!((s.alpha_at(99) - 99.0 / 199.0).abs() < 1e-12);
        // epoch 0 mostly cross-lingual, epoch 1 mostly monolingual; first / last steps exact
        let (e0, e1) = (s.plan(0), s.plan(1));
        assert_eq!(e0.modes[0], -1);
        assert!(e1.modes[99] >= 0);
        let mono = |m: &[i32]| m.iter().filter(|&&x| x >= 0).count();
        assert!(mono(&e0.modes) < 40 && mono(&e1.modes) > 60);
        c.schedule = AlphaSchedule::Triangle {
            alpha_end: 1.0,
            total_steps: 201,
        };
        let t = HybridSampler::new(p.clone(), c.clone()).unwrap();
        assert_eq!(
            (t.alpha_at(0), t.alpha_at(100), t.alpha_at(200)),
            (0.0, 1.0, 0.0)
        );
        assert!((t.alpha_at(50) - 0.5).abs() < 1e-12);
        // a constant schedule is the plain sampler
        let plain = HybridSampler::new(p.clone(), cfg(0.5, 4)).unwrap();
        let mut c2 = cfg(0.5, 4);
        c2.schedule = AlphaSchedule::Linear {
            alpha_end: 0.5,
            total_steps: 200,
        };
        assert_eq!(
            plain.plan(3),
            HybridSampler::new(p.clone(), c2).unwrap().plan(3)
        );
        c.schedule = AlphaSchedule::Linear {
            alpha_end: 1.5,
            total_steps: 10,
        };
        assert!(HybridSampler::new(p.clone(), c.clone()).is_err());
        c.schedule = AlphaSchedule::Linear {
            alpha_end: 1.0,
            total_steps: 0,
        };
        assert!(HybridSampler::new(p, c).is_err());
    }

    #[test]
    fn rng_below_is_in_range_and_uniformish() {
        let mut r = Rng::new(1);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[r.below(3)] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)));
    }
}
