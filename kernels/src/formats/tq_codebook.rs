//! Generators of the TurboQuant codebooks (docs/turboquant.md §6, §11): Lloyd–Max for scalar
//! laws (the Gaussian, the exact law of a rotated coordinate, PolarQuant's angle laws), 2-D
//! Lloyd for coordinate pairs, the int8 rounding and 4-way partition of the trellis tables, and
//! [`render_tables`], which prints `tq_tables.rs`. The committed tables are normative; a
//! decoder never runs this code. A unit test checks that the generator reproduces the committed
//! file byte for byte (regenerate: `cargo run -p gq-kernels --release --example tq_tables >
//! kernels/src/formats/tq_tables.rs`).
//!
//! Everything is deterministic: fixed initialisation, fixed quadrature, fixed iteration counts.

// Index loops over grid points, levels and labels read better than iterator chains here.
#![allow(clippy::needless_range_loop)]

use std::f64::consts::PI;
// ------------------------------------------------------------------------------------------------
// from special.rs

/// Standard normal density.
pub fn norm_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

/// Error function: Maclaurin series for |x| < 2.5, else `1 - erfc` by continued fraction.
pub fn erf(x: f64) -> f64 {
    if x.abs() >= 2.5 {
        return x.signum() * (1.0 - erfc_cf(x.abs()));
    }
    // erf x = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    let mut term = x; // (-1)^n x^(2n+1) / n!
    let mut sum = x;
    let x2 = x * x;
    for n in 1..200 {
        term *= -x2 / n as f64;
        let t = term / (2 * n + 1) as f64;
        sum += t;
        if t.abs() < 1e-17 * sum.abs() {
            break;
        }
    }
    sum * 2.0 / PI.sqrt()
}

/// Complementary error function for x >= 2.5 (Lentz continued fraction:
/// erfc x = exp(-x²)/sqrt(pi) · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …))))).
fn erfc_cf(x: f64) -> f64 {
    // erfc(x) = exp(-x^2)/sqrt(pi) * K, K = 1/(x+ (1/2)/(x+ 1/(x+ (3/2)/(x+ 2/(x+ ...)))))
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for n in 1..500 {
        let a = n as f64 * 0.5;
        d = x + a * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = x + a / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / PI.sqrt() / f
}

/// Standard normal CDF.
pub fn norm_cdf(x: f64) -> f64 {
    if x < -2.5 * std::f64::consts::SQRT_2 {
        0.5 * erfc_cf(-x / std::f64::consts::SQRT_2)
    } else if x > 2.5 * std::f64::consts::SQRT_2 {
        1.0 - 0.5 * erfc_cf(x / std::f64::consts::SQRT_2)
    } else {
        0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
    }
}

/// Gauss–Legendre nodes and weights on [-1, 1] (Newton iteration on P_n).
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut xs = vec![0.0; n];
    let mut ws = vec![0.0; n];
    for i in 0..n {
        let mut z = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 0.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0f64, z);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * z * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            dp = n as f64 * (z * p1 - p0) / (z * z - 1.0);
            let dz = p1 / dp;
            z -= dz;
            if dz.abs() < 1e-16 {
                break;
            }
        }
        xs[i] = z;
        ws[i] = 2.0 / ((1.0 - z * z) * dp * dp);
    }
    (xs, ws)
}

/// Composite Gauss–Legendre quadrature of `f` on [a, b] with `panels` panels of the rule
/// `(xs, ws)`.
pub fn integrate<F: Fn(f64) -> f64>(
    f: &F,
    a: f64,
    b: f64,
    panels: usize,
    rule: &(Vec<f64>, Vec<f64>),
) -> f64 {
    if b <= a {
        return 0.0;
    }
    let h = (b - a) / panels as f64;
    let mut s = 0.0;
    for p in 0..panels {
        let lo = a + h * p as f64;
        let mid = lo + 0.5 * h;
        for (x, w) in rule.0.iter().zip(&rule.1) {
            s += w * f(mid + 0.5 * h * x);
        }
    }
    s * 0.5 * h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error ~1e-15).
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

// ------------------------------------------------------------------------------------------------
// from lloyd.rs

/// A probability law on an interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Law {
    /// Standard normal.
    Gaussian,
    /// Coordinate of a uniform unit vector in R^d, scaled by sqrt(d).
    Sphere(usize),
    /// PolarQuant angle with density ∝ sin(2ψ)^(k-1) on [0, π/2].
    PolarAngle(usize),
    /// Uniform on [a, b].
    Uniform(f64, f64),
}

impl Law {
    /// Support of the law (the Gaussian is truncated at ±12, far beyond f64 relevance).
    pub fn support(&self) -> (f64, f64) {
        match *self {
            Law::Gaussian => (-12.0, 12.0),
            Law::Sphere(d) => (-(d as f64).sqrt(), (d as f64).sqrt()),
            Law::PolarAngle(_) => (0.0, PI / 2.0),
            Law::Uniform(a, b) => (a, b),
        }
    }

    /// Density at `t` (normalised).
    pub fn pdf(&self, t: f64) -> f64 {
        match *self {
            Law::Gaussian => norm_pdf(t),
            Law::Sphere(d) => {
                let df = d as f64;
                let u = 1.0 - t * t / df;
                if u <= 0.0 {
                    return 0.0;
                }
                let ln_c = ln_gamma(df / 2.0) - ln_gamma((df - 1.0) / 2.0) - 0.5 * (PI * df).ln();
                (ln_c + 0.5 * (df - 3.0) * u.ln()).exp()
            }
            Law::PolarAngle(k) => {
                // ∫_0^{π/2} sin(2ψ)^(k-1) dψ = (1/2) B(1/2, k/2) = Γ(1/2)Γ(k/2) / (2 Γ((k+1)/2))
                let kf = k as f64;
                let ln_norm =
                    0.5 * PI.ln() + ln_gamma(kf / 2.0) - ln_gamma((kf + 1.0) / 2.0) - 2f64.ln();
                let s = (2.0 * t).sin();
                if s <= 0.0 {
                    return if k == 1 { (-ln_norm).exp() } else { 0.0 };
                }
                ((kf - 1.0) * s.ln() - ln_norm).exp()
            }
            Law::Uniform(a, b) => {
                if t >= a && t <= b {
                    1.0 / (b - a)
                } else {
                    0.0
                }
            }
        }
    }
}

/// A scalar quantizer: sorted reconstruction levels and the decision thresholds between them.
#[derive(Clone, Debug)]
pub struct ScalarCodebook {
    /// Reconstruction levels, ascending.
    pub levels: Vec<f64>,
    /// `levels.len() - 1` thresholds (midpoints of neighbouring levels).
    pub thresholds: Vec<f64>,
    /// Mean squared error under the law.
    pub mse: f64,
}

/// Quadrature panels per unit length of the support (8-point Gauss–Legendre each); enough for
/// 1e-12 accuracy on these smooth laws.
const PANELS_PER_UNIT: f64 = 24.0;

struct Quad {
    rule: (Vec<f64>, Vec<f64>),
}

impl Quad {
    fn new() -> Self {
        Self {
            rule: gauss_legendre(8),
        }
    }
    fn int<F: Fn(f64) -> f64>(&self, f: F, a: f64, b: f64) -> f64 {
        if b <= a {
            return 0.0;
        }
        let panels = (((b - a) * PANELS_PER_UNIT).ceil() as usize).clamp(4, 4000);
        integrate(&f, a, b, panels, &self.rule)
    }
}

/// Lloyd–Max quantizer with `n` levels for `law`: starts from the quantiles of `f^(1/3)` (the
/// high-resolution optimum) and runs Lloyd iterations until the levels move by < 1e-13 (at most
/// `20000` iterations).
pub fn lloyd_max(law: Law, n: usize) -> ScalarCodebook {
    assert!(n >= 1);
    let (lo, hi) = law.support();
    let q = Quad::new();
    // Initial levels: quantiles of f^(1/3) on a fine grid.
    let grid = 20000;
    let h = (hi - lo) / grid as f64;
    let mut cdf = vec![0.0f64; grid + 1];
    for i in 0..grid {
        let t = lo + (i as f64 + 0.5) * h;
        cdf[i + 1] = cdf[i] + law.pdf(t).cbrt() * h;
    }
    let total = cdf[grid];
    let mut levels: Vec<f64> = (0..n)
        .map(|k| {
            let target = (k as f64 + 0.5) / n as f64 * total;
            let i = cdf.partition_point(|&c| c < target).clamp(1, grid);
            let frac = (target - cdf[i - 1]) / (cdf[i] - cdf[i - 1]).max(1e-300);
            lo + (i as f64 - 1.0 + frac) * h
        })
        .collect();
    let mut thresholds = vec![0.0; n.saturating_sub(1)];
    for _ in 0..20000 {
        for i in 0..n - 1 {
            thresholds[i] = 0.5 * (levels[i] + levels[i + 1]);
        }
        let mut moved = 0.0f64;
        for i in 0..n {
            let a = if i == 0 { lo } else { thresholds[i - 1] };
            let b = if i == n - 1 { hi } else { thresholds[i] };
            let m0 = q.int(|t| law.pdf(t), a, b);
            let m1 = q.int(|t| t * law.pdf(t), a, b);
            if m0 > 1e-300 {
                let c = m1 / m0;
                moved = moved.max((c - levels[i]).abs());
                levels[i] = c;
            }
        }
        if moved < 1e-13 {
            break;
        }
    }
    for i in 0..n - 1 {
        thresholds[i] = 0.5 * (levels[i] + levels[i + 1]);
    }
    let mut mse = 0.0;
    for i in 0..n {
        let a = if i == 0 { lo } else { thresholds[i - 1] };
        let b = if i == n - 1 { hi } else { thresholds[i] };
        let c = levels[i];
        mse += q.int(|t| (t - c) * (t - c) * law.pdf(t), a, b);
    }
    ScalarCodebook {
        levels,
        thresholds,
        mse,
    }
}

impl ScalarCodebook {
    /// Index of the level nearest to `x` (binary search on the thresholds).
    #[inline]
    pub fn nearest(&self, x: f64) -> usize {
        self.thresholds.partition_point(|&t| t < x)
    }
}

// ------------------------------------------------------------------------------------------------
// from lloyd2d.rs

/// A circularly symmetric law of a coordinate pair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PairLaw {
    /// Two independent standard normals.
    Gaussian,
    /// Two coordinates of a uniform unit vector of R^d scaled by sqrt(d).
    Sphere(usize),
}

impl PairLaw {
    /// Unnormalised density as a function of r².
    fn density_r2(&self, r2: f64) -> f64 {
        match *self {
            PairLaw::Gaussian => (-0.5 * r2).exp(),
            PairLaw::Sphere(d) => {
                let u = 1.0 - r2 / d as f64;
                if u <= 0.0 {
                    0.0
                } else {
                    u.powf(0.5 * (d as f64 - 4.0))
                }
            }
        }
    }
}

/// A 4-fold symmetric 2-D code: first-quadrant points (x >= 0, y >= 0).
#[derive(Clone, Debug)]
pub struct PairCodebook {
    /// First-quadrant points, sorted by angle then radius is not implied (order = index).
    pub points: Vec<[f64; 2]>,
    /// Mean squared error per coordinate under the law.
    pub mse: f64,
}

impl PairCodebook {
    /// Index of the first-quadrant point nearest to (|x|, |y|) (brute force).
    #[inline]
    pub fn nearest_q1(&self, ax: f32, ay: f32) -> usize {
        let mut best = 0;
        let mut bd = f32::INFINITY;
        for (i, p) in self.points.iter().enumerate() {
            let dx = ax - p[0] as f32;
            let dy = ay - p[1] as f32;
            let d = dx * dx + dy * dy;
            if d < bd {
                bd = d;
                best = i;
            }
        }
        best
    }
}

/// Settings of the generator.
#[derive(Clone, Copy, Debug)]
pub struct Lloyd2dSettings {
    /// Grid step.
    pub h: f64,
    /// Grid extent (the quadrant [0, R]²).
    pub r_max: f64,
    /// Lloyd iterations per start.
    pub iters: usize,
    /// Number of starting configurations tried (best kept).
    pub starts: usize,
}

impl Default for Lloyd2dSettings {
    fn default() -> Self {
        Self {
            h: 0.02,
            r_max: 6.5,
            iters: 400,
            starts: 4,
        }
    }
}

/// Lloyd's algorithm for an `N = 4·m` point symmetric code of `law`.
pub fn lloyd_pair(law: PairLaw, m: usize, s: Lloyd2dSettings) -> PairCodebook {
    // Quadrature grid.
    let r_max = match law {
        PairLaw::Gaussian => s.r_max,
        PairLaw::Sphere(d) => s.r_max.min((d as f64).sqrt()),
    };
    let n = (r_max / s.h).ceil() as usize;
    let mut gx = Vec::new();
    let mut gy = Vec::new();
    let mut gw = Vec::new();
    for i in 0..n {
        for j in 0..n {
            let x = (i as f64 + 0.5) * s.h;
            let y = (j as f64 + 0.5) * s.h;
            let w = law.density_r2(x * x + y * y);
            if w > 1e-14 {
                gx.push(x as f32);
                gy.push(y as f32);
                gw.push(w);
            }
        }
    }
    let tot: f64 = gw.iter().sum();
    for w in gw.iter_mut() {
        *w /= tot;
    }
    let mut best: Option<PairCodebook> = None;
    for start in 0..s.starts {
        let pts = sunflower_init(law, m, start);
        let cb = lloyd_run(&gx, &gy, &gw, pts, s.iters);
        if best.as_ref().is_none_or(|b| cb.mse < b.mse) {
            best = Some(cb);
        }
    }
    best.unwrap()
}

/// Initial first-quadrant points: radii at quantiles of the high-resolution point density
/// (∝ f^(1/2) in 2-D; for the Gaussian that is a Rayleigh law of scale sqrt 2), angles on a
/// golden-ratio sequence offset by `start`.
fn sunflower_init(_law: PairLaw, m: usize, start: usize) -> Vec<[f64; 2]> {
    let phi = 0.618_033_988_749_894_9;
    (0..m)
        .map(|k| {
            let q = (k as f64 + 0.5) / m as f64;
            let r = 2.0 * (-(1.0 - q).ln()).sqrt();
            let a = ((k as f64 + 0.5) * phi + start as f64 * 0.25).fract() * PI / 2.0;
            [r * a.cos(), r * a.sin()]
        })
        .collect()
}

fn lloyd_run(
    gx: &[f32],
    gy: &[f32],
    gw: &[f64],
    mut pts: Vec<[f64; 2]>,
    iters: usize,
) -> PairCodebook {
    // Lloyd iterations. Assignment is exact on every 16th iteration and on the last one; in
    // between each grid point only checks the 16 code points nearest to its previous code point
    // (code points move little per iteration). Deterministic.
    let m = pts.len();
    let mut assign = vec![0u32; gx.len()];
    let mut mse = 0.0;
    const NB: usize = 16;
    for it in 0..=iters {
        let px: Vec<f32> = pts.iter().map(|p| p[0] as f32).collect();
        let py: Vec<f32> = pts.iter().map(|p| p[1] as f32).collect();
        let exact = it % 16 == 0 || it == iters || m <= NB;
        // neighbour lists
        let mut nbr: Vec<Vec<u32>> = Vec::new();
        if !exact {
            nbr = (0..m)
                .map(|k| {
                    let mut d: Vec<(f32, u32)> = (0..m)
                        .map(|j| ((px[k] - px[j]).powi(2) + (py[k] - py[j]).powi(2), j as u32))
                        .collect();
                    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
                    d.iter().take(NB).map(|x| x.1).collect()
                })
                .collect();
        }
        let mut s0 = vec![0.0f64; m];
        let mut sx = vec![0.0f64; m];
        let mut sy = vec![0.0f64; m];
        let mut err = 0.0f64;
        for g in 0..gx.len() {
            let (x, y) = (gx[g], gy[g]);
            let mut bi = 0usize;
            let mut bd = f32::INFINITY;
            if exact {
                for k in 0..m {
                    let d = (x - px[k]).powi(2) + (y - py[k]).powi(2);
                    if d < bd {
                        bd = d;
                        bi = k;
                    }
                }
            } else {
                for &k in &nbr[assign[g] as usize] {
                    let k = k as usize;
                    let d = (x - px[k]).powi(2) + (y - py[k]).powi(2);
                    if d < bd || (d == bd && k < bi) {
                        bd = d;
                        bi = k;
                    }
                }
            }
            assign[g] = bi as u32;
            let w = gw[g];
            s0[bi] += w;
            sx[bi] += w * x as f64;
            sy[bi] += w * y as f64;
            err += w * bd as f64;
        }
        mse = err / 2.0;
        if it == iters {
            break;
        }
        for k in 0..m {
            if s0[k] > 0.0 {
                pts[k] = [sx[k] / s0[k], sy[k] / s0[k]];
            }
        }
    }
    PairCodebook { points: pts, mse }
}

// ------------------------------------------------------------------------------------------------
// from pairtab.rs

/// One TCQ constituent table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairTable {
    /// Bits per coded pair (branch bit + two sign bits + `b - 3` index bits).
    pub bits: u32,
    /// `2^(b-1)` first-quadrant points in units of 1/32, label-major.
    pub points: Vec<[i8; 2]>,
}

impl PairTable {
    /// Points per label (`2^(b-3)`).
    pub fn per_label(&self) -> usize {
        1 << (self.bits - 3)
    }
}

fn key(p: [i32; 2]) -> (i32, i32, i32) {
    (p[0] * p[0] + p[1] * p[1], p[1], p[0])
}

/// Step 3 and 4 on integer first-quadrant points: labels and the label-major table order.
pub fn partition(points: &[[i32; 2]]) -> Vec<[i32; 2]> {
    let m = points.len();
    assert!(m.is_multiple_of(4) && m >= 4);
    let cap = m / 4;
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by_key(|&i| key(points[i]));
    let mut label = vec![u8::MAX; m];
    let mut count = [0usize; 4];
    let mut placed: Vec<usize> = Vec::with_capacity(m);
    for &i in &order {
        let p = points[i];
        let mut best: Option<(i64, u8)> = None;
        for z in 0..4u8 {
            if count[z as usize] >= cap {
                continue;
            }
            let mut md = i64::MAX;
            for &j in &placed {
                for mirror in 0..4u8 {
                    if label[j] ^ mirror != z {
                        continue;
                    }
                    let qx = if mirror & 1 == 1 {
                        -points[j][0]
                    } else {
                        points[j][0]
                    };
                    let qy = if mirror & 2 == 2 {
                        -points[j][1]
                    } else {
                        points[j][1]
                    };
                    let d = ((p[0] - qx) as i64).pow(2) + ((p[1] - qy) as i64).pow(2);
                    md = md.min(d);
                }
            }
            // The point's own mirror images are in other subsets (mirror != 0 changes the label).
            if best.is_none_or(|(bd, _)| md > bd) {
                best = Some((md, z));
            }
        }
        let z = best.unwrap().1;
        label[i] = z;
        count[z as usize] += 1;
        placed.push(i);
    }
    type Keyed = (u8, (i32, i32, i32), [i32; 2]);
    let mut out: Vec<Keyed> = (0..m)
        .map(|i| (label[i], key(points[i]), points[i]))
        .collect();
    out.sort();
    out.into_iter().map(|x| x.2).collect()
}

/// Runs steps 1–4 for pair width `bits` (3..=9).
pub fn generate(bits: u32) -> PairTable {
    assert!((3..=9).contains(&bits));
    let m = 1usize << (bits - 1);
    let cb = lloyd_pair(
        PairLaw::Gaussian,
        m,
        Lloyd2dSettings {
            starts: 1,
            ..Default::default()
        },
    );
    let ints: Vec<[i32; 2]> = cb
        .points
        .iter()
        .map(|p| {
            [
                ((p[0] * 32.0).round() as i32).clamp(1, 127),
                ((p[1] * 32.0).round() as i32).clamp(1, 127),
            ]
        })
        .collect();
    let pts = partition(&ints);
    PairTable {
        bits,
        points: pts.iter().map(|p| [p[0] as i8, p[1] as i8]).collect(),
    }
}

// ------------------------------------------------------------------------------------------------
// PolarQuant angle codebooks and the rendering of the committed tables.

/// Bits per angle at levels 1..=8 of the PolarQuant types (`TQP4_5`, `TQP3_4375`, `TQP2_5`;
/// docs/turboquant.md §11): greedy allocations measured on Gaussian blocks (research report).
pub const POLAR_ALLOCATIONS: [[u32; 8]; 3] = [
    [5, 3, 4, 6, 6, 6, 5, 6],
    [4, 2, 3, 4, 4, 6, 5, 6],
    [3, 1, 2, 4, 3, 5, 4, 4],
];

/// The angle codebook of PolarQuant level `level` (1..=8) with `bits` bits: level 1 is the
/// uniform law on [0, 2π) (midpoints of `2^bits` equal cells), level `l >= 2` the Lloyd–Max
/// code of `sin(2ψ)^(2^(l-1) − 1)` on [0, π/2]. Returns the angles, ascending.
pub fn polar_angles(level: u32, bits: u32) -> Vec<f64> {
    let n = 1usize << bits;
    if level == 1 {
        (0..n)
            .map(|k| (k as f64 + 0.5) * std::f64::consts::TAU / n as f64)
            .collect()
    } else {
        lloyd_max(Law::PolarAngle(1 << (level - 1)), n).levels
    }
}

/// Every (level, bits) the PolarQuant types use, sorted.
pub fn polar_books() -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = POLAR_ALLOCATIONS
        .iter()
        .flat_map(|a| a.iter().enumerate().map(|(l, &b)| (l as u32 + 1, b)))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The source of `tq_tables.rs`: the trellis pair tables `PAIR_B3` … `PAIR_B9` ([`generate`])
/// and the PolarQuant angle tables `POLAR_L{l}_B{b}` (angle as f64 bits, cos and sin rounded
/// to f32 bits).
pub fn render_tables() -> String {
    use std::fmt::Write;
    let mut s = String::new();
    s.push_str(
        "//! TurboQuant codebook tables, generated by `tq_codebook::render_tables` (regenerate with\n\
         //! `cargo run -p gq-kernels --release --example tq_tables > \
         kernels/src/formats/tq_tables.rs`;\n\
         //! do not edit). Normative: docs/turboquant.md §6 and §11.\n\
         //!\n\
         //! `PAIR_Bb`: the `2^(b-1)` first-quadrant points `(X, Y)` of the `b`-bit pair code, int8 in\n\
         //! units of 1/32 of the block scale, label-major (entry `L·2^(b-3) + q`).\n\
         //! `POLAR_L{l}_B{b}`: the `2^b` angles of PolarQuant level `l` (f64 bits, ascending) and\n\
         //! their cosines and sines rounded to f32 (bits).\n\n",
    );
    for b in 3..=9u32 {
        let t = generate(b);
        let _ = writeln!(
            s,
            "/// {b}-bit pairs: {} first-quadrant points, {} per label.",
            t.points.len(),
            t.per_label()
        );
        let _ = writeln!(s, "pub const PAIR_B{b}: [[i8; 2]; {}] = [", t.points.len());
        for chunk in t.points.chunks(8) {
            let row: Vec<String> = chunk
                .iter()
                .map(|p| format!("[{}, {}]", p[0], p[1]))
                .collect();
            let _ = writeln!(s, "    {},", row.join(", "));
        }
        s.push_str("];\n\n");
    }
    for (l, b) in polar_books() {
        let a = polar_angles(l, b);
        let n = a.len();
        let _ = writeln!(s, "/// PolarQuant level {l}, {b} bits: angles (f64 bits).");
        let _ = writeln!(s, "pub const POLAR_L{l}_B{b}_ANGLE: [u64; {n}] = [");
        for chunk in a.chunks(4) {
            let row: Vec<String> = chunk
                .iter()
                .map(|v| format!("0x{:016x}", v.to_bits()))
                .collect();
            let _ = writeln!(s, "    {},", row.join(", "));
        }
        s.push_str("];\n");
        for (name, f) in [("COS", f64::cos as fn(f64) -> f64), ("SIN", f64::sin)] {
            let _ = writeln!(
                s,
                "/// PolarQuant level {l}, {b} bits: {} of the angles (f32 bits).",
                name.to_lowercase()
            );
            let _ = writeln!(s, "pub const POLAR_L{l}_B{b}_{name}: [u32; {n}] = [");
            for chunk in a.chunks(8) {
                let row: Vec<String> = chunk
                    .iter()
                    .map(|v| format!("0x{:08x}", (f(*v) as f32).to_bits()))
                    .collect();
                let _ = writeln!(s, "    {},", row.join(", "));
            }
            s.push_str("];\n");
        }
        s.push('\n');
    }
    s.push_str("/// The table of `b`-bit pairs (3..=9).\n");
    s.push_str("pub fn pair_table(b: u32) -> &'static [[i8; 2]] {\n    match b {\n");
    for b in 3..=9 {
        let _ = writeln!(s, "        {b} => &PAIR_B{b},");
    }
    s.push_str("        _ => panic!(\"no {b}-bit pair table\"),\n    }\n}\n\n");
    s.push_str(
        "/// The angle table of PolarQuant level `l` with `b` bits: (angles, cos, sin).\n\
         pub fn polar_table(l: u32, b: u32) -> (&'static [u64], &'static [u32], &'static [u32]) {\n    match (l, b) {\n",
    );
    for (l, b) in polar_books() {
        let _ = writeln!(
            s,
            "        ({l}, {b}) => (&POLAR_L{l}_B{b}_ANGLE, &POLAR_L{l}_B{b}_COS, &POLAR_L{l}_B{b}_SIN),"
        );
    }
    s.push_str("        _ => panic!(\"no polar table for level {l}, {b} bits\"),\n    }\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_known_values() {
        // Abramowitz & Stegun table 7.1 values.
        assert!((erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-14);
        assert!((erf(1.0) - 0.842_700_792_949_714_9).abs() < 1e-14);
        assert!((erf(2.0) - 0.995_322_265_018_952_7).abs() < 1e-14);
        assert!((erf(3.0) - 0.999_977_909_503_001_4).abs() < 1e-14);
        assert!((norm_cdf(0.0) - 0.5).abs() < 1e-16);
        assert!((norm_cdf(-5.0) - 2.866_515_718_791_939e-7).abs() < 1e-18);
    }

    #[test]
    fn quadrature_integrates_gaussian() {
        let rule = gauss_legendre(8);
        let s = integrate(&norm_pdf, -10.0, 10.0, 40, &rule);
        assert!((s - 1.0).abs() < 1e-13, "{s}");
        let m2 = integrate(&|x: f64| x * x * norm_pdf(x), -10.0, 10.0, 40, &rule);
        assert!((m2 - 1.0).abs() < 1e-13, "{m2}");
    }

    #[test]
    fn ln_gamma_values() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-13);
        assert!((ln_gamma(0.5) - PI.sqrt().ln()).abs() < 1e-13);
    }

    #[test]
    fn one_bit_gaussian_is_closed_form() {
        let c = lloyd_max(Law::Gaussian, 2);
        let want = (2.0 / PI).sqrt();
        assert!((c.levels[1] - want).abs() < 1e-12, "{:?}", c.levels);
        assert!((c.levels[0] + want).abs() < 1e-12);
        assert!((c.mse - (1.0 - 2.0 / PI)).abs() < 1e-12, "{}", c.mse);
    }

    #[test]
    fn gaussian_lloyd_max_mse_table() {
        // Max (1960) / Lloyd (1982): optimum MSE of an N-level quantizer for N(0,1) (the 32-level
        // value is often rounded to 0.0025 in the literature).
        let want = [
            (2, 0.3634),
            (4, 0.1175),
            (8, 0.03454),
            (16, 0.009497),
            (32, 0.002505),
        ];
        for (n, m) in want {
            let c = lloyd_max(Law::Gaussian, n);
            assert!((c.mse - m).abs() / m < 2e-3, "n={n}: {} vs {m}", c.mse);
            let b = (n as f64).log2();
            assert!(c.mse < 3f64.sqrt() * PI / 2.0 * 4f64.powf(-b));
        }
        // 2-bit levels: ±0.4528, ±1.510 (Max 1960).
        let c = lloyd_max(Law::Gaussian, 4);
        assert!((c.levels[2] - 0.4528).abs() < 1e-3 && (c.levels[3] - 1.510).abs() < 1e-3);
    }

    #[test]
    fn sphere_law_is_normalised_and_tends_to_gaussian() {
        for d in [32usize, 64, 256] {
            let q = Quad::new();
            let (lo, hi) = Law::Sphere(d).support();
            let m0 = q.int(|t| Law::Sphere(d).pdf(t), lo, hi);
            let m2 = q.int(|t| t * t * Law::Sphere(d).pdf(t), lo, hi);
            assert!(
                (m0 - 1.0).abs() < 1e-10 && (m2 - 1.0).abs() < 1e-9,
                "d={d} {m0} {m2}"
            );
        }
        let g = lloyd_max(Law::Gaussian, 16);
        let s = lloyd_max(Law::Sphere(4096), 16);
        for (a, b) in g.levels.iter().zip(&s.levels) {
            assert!((a - b).abs() < 2e-3);
        }
    }

    #[test]
    fn polar_angle_law_is_normalised() {
        let q = Quad::new();
        for k in [1usize, 2, 4, 8, 64] {
            let m0 = q.int(|t| Law::PolarAngle(k).pdf(t), 0.0, PI / 2.0);
            assert!((m0 - 1.0).abs() < 1e-9, "k={k} {m0}");
        }
    }

    #[test]
    fn one_point_per_quadrant_is_the_one_bit_product_code() {
        // N = 4: the optimum is (±sqrt(2/π), ±sqrt(2/π)), MSE 1 - 2/π per coordinate.
        let c = lloyd_pair(
            PairLaw::Gaussian,
            1,
            Lloyd2dSettings {
                h: 0.01,
                ..Default::default()
            },
        );
        let want = (2.0 / PI).sqrt();
        assert!((c.points[0][0] - want).abs() < 1e-3 && (c.points[0][1] - want).abs() < 1e-3);
        assert!((c.mse - (1.0 - 2.0 / PI)).abs() < 1e-3, "{}", c.mse);
    }

    #[test]
    fn partition_is_balanced() {
        for bits in 3..=9 {
            let t = super::super::tq_tables::pair_table(bits);
            let per = 1usize << (bits - 3);
            let ints: Vec<[i32; 2]> = t.iter().map(|p| [p[0] as i32, p[1] as i32]).collect();
            // Re-partitioning the committed (already ordered) points gives the same order.
            assert_eq!(partition(&ints), ints, "{bits}");
            assert_eq!(t.len(), 4 * per);
        }
    }

    // --------------------------------------------------------------------------------------------
    // The committed tables.

    // About 20 s in a release build, minutes in a debug one: scripts/test.sh runs it in release
    // (`cargo test --release -p gq-kernels --lib tq_codebook`).
    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "slow without optimisation: scripts/test.sh runs it with --release"
    )]
    fn generator_reproduces_the_committed_tables() {
        // Byte for byte: the generator's output is the committed source file.
        let want = include_str!("tq_tables.rs");
        let got = render_tables();
        if got != want {
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "tq_tables.rs differs from the generator's output from line {}: {:?} vs {:?}",
                line + 1,
                got.lines().nth(line),
                want.lines().nth(line)
            );
        }
    }

    // --------------------------------------------------------------------------------------------
    // TurboQuant's closed forms (the checks): scalar Lloyd–Max on rotated unit vectors
    // and the QJL sketch, through the formats' rotation.

    use super::super::tq_rotation::{block_sign_bits, rotate_block, unrotate_block, SplitMix64};

    /// `TurboQuant_mse` with `bits` bits per coordinate on blocks of `d`: rotate, code every
    /// coordinate with the Lloyd–Max code of the exact coordinate law scaled by √d / ‖x‖.
    struct ScalarLm {
        d: usize,
        book: ScalarCodebook,
    }

    impl ScalarLm {
        fn new(d: usize, bits: u32) -> Self {
            Self {
                d,
                book: lloyd_max(Law::Sphere(d), 1 << bits),
            }
        }
        fn round_trip(&self, x: &[f32], signs: &[u64; 4]) -> Vec<f32> {
            let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            let mut u = x.to_vec();
            rotate_block(&mut u, signs);
            let k = (self.d as f32).sqrt() / norm;
            for v in u.iter_mut() {
                *v = self.book.levels[self.book.nearest((*v * k) as f64)] as f32 / k;
            }
            unrotate_block(&mut u, signs);
            u
        }
    }

    fn unit(g: &mut SplitMix64, d: usize) -> Vec<f32> {
        let v: Vec<f64> = (0..d).map(|_| g.next_normal()).collect();
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| (x / n) as f32).collect()
    }

    #[test]
    fn one_bit_codebook_is_the_closed_form_for_the_exact_law() {
        // 1 bit: ±E|t| = ±Γ(d/2)/Γ((d+1)/2)·√(d/π) for the exact law, → ±√(2/π) as d grows.
        for d in [64usize, 256, 1024] {
            let c = lloyd_max(Law::Sphere(d), 2);
            let df = d as f64;
            let e_abs = (ln_gamma(df / 2.0) - ln_gamma((df + 1.0) / 2.0)).exp() * (df / PI).sqrt();
            assert!((c.levels[1] - e_abs).abs() < 1e-9, "d={d}");
            assert!((c.levels[0] + e_abs).abs() < 1e-9, "d={d}");
            assert!((c.levels[1] - (2.0 / PI).sqrt()).abs() < 1.0 / df, "d={d}");
        }
    }

    #[test]
    fn empirical_mse_on_random_unit_vectors() {
        // The table: 0.363, 0.117, 0.0345, 0.0095 for b = 1..4, within 3 %, and below
        // the upper bound √3·π/2·4^-b.
        let want = [0.363, 0.117, 0.0345, 0.0095];
        for d in [128usize, 256, 1024] {
            for bits in 1..=4u32 {
                let q = ScalarLm::new(d, bits);
                let mut g = SplitMix64::new(d as u64 * 10 + bits as u64);
                let trials = 200;
                let mut tot = 0.0f64;
                for t in 0..trials {
                    let x = unit(&mut g, d);
                    // One rotation over the whole vector when d <= 256; larger d uses a rotation
                    // of size d built from the same transform (orthogonality is all that matters).
                    let y = if d <= 256 {
                        q.round_trip(&x, &block_sign_bits(t as u64, 0, d))
                    } else {
                        round_trip_large(&q, &x, t as u64)
                    };
                    tot += x
                        .iter()
                        .zip(&y)
                        .map(|(a, b)| ((a - b) as f64).powi(2))
                        .sum::<f64>();
                }
                let mse = tot / trials as f64;
                let w = want[bits as usize - 1];
                assert!((mse - w).abs() / w < 0.03, "d={d} b={bits}: {mse} vs {w}");
                assert!(mse < 3f64.sqrt() * PI / 2.0 * 4f64.powi(-(bits as i32)));
            }
        }
    }

    /// [`ScalarLm::round_trip`] for `d > 256`: random signs from the stream of block 0 (all
    /// words), the Hadamard transform of size `d`.
    fn round_trip_large(q: &ScalarLm, x: &[f32], seed: u64) -> Vec<f32> {
        let d = x.len();
        let mut rng = SplitMix64::new(seed);
        let signs: Vec<u64> = (0..d / 64).map(|_| rng.next_u64()).collect();
        let flip = |v: &mut [f32]| {
            for (c, e) in v.iter_mut().enumerate() {
                if (signs[c / 64] >> (c % 64)) & 1 == 1 {
                    *e = -*e;
                }
            }
        };
        let k = 1.0 / (d as f32).sqrt();
        let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
        let mut u = x.to_vec();
        flip(&mut u);
        super::super::tq_rotation::fwht(&mut u);
        let s = (d as f32).sqrt() / norm;
        for v in u.iter_mut() {
            *v *= k;
            *v = q.book.levels[q.book.nearest((*v * s) as f64)] as f32 / s;
        }
        super::super::tq_rotation::fwht(&mut u);
        for v in u.iter_mut() {
            *v *= k;
        }
        flip(&mut u);
        u
    }

    #[test]
    fn qjl_estimator_is_unbiased_with_predicted_variance() {
        // Fixed residual r (unit) and query y; over random sketches S (the first m rows of a
        // randomised Hadamard transform) the estimate √(π/2)·√d·‖r‖/m·Σ sign((Sr)_i)(Sy)_i is
        // unbiased, and — the rows being orthonormal, not i.i.d. Gaussian — its variance is,
        // with α = ⟨r, y⟩ and ‖y⊥‖² = ‖y‖² − α²:
        //   Var ≈ (π/2)/m · [‖y⊥‖²·(1 − 2m/(πd)) + α²·(1 − 2/π)·(1 − m/d)].
        let d = 256;
        let mut g = SplitMix64::new(99);
        for m in [d, d - 16, d / 2] {
            let r = unit(&mut g, d);
            let y: Vec<f32> = (0..d).map(|_| g.next_normal() as f32).collect();
            let exact: f64 = r.iter().zip(&y).map(|(a, b)| *a as f64 * *b as f64).sum();
            let yy: f64 = y.iter().map(|v| (*v as f64).powi(2)).sum();
            let trials = 3000;
            let mut errs = Vec::with_capacity(trials);
            for t in 0..trials {
                let s = block_sign_bits(1_000_000 + t as u64, 0, d);
                let mut sr = r.clone();
                rotate_block(&mut sr, &s);
                let mut sy = y.clone();
                rotate_block(&mut sy, &s);
                let sum: f32 = sr[..m]
                    .iter()
                    .zip(&sy)
                    .map(|(a, b)| if *a < 0.0 { -b } else { *b })
                    .sum();
                let est = (PI as f32 / 2.0).sqrt() * (d as f32).sqrt() / m as f32 * sum;
                errs.push(est as f64 - exact);
            }
            let mean = errs.iter().sum::<f64>() / trials as f64;
            let var = errs.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (trials - 1) as f64;
            let (mf, df) = (m as f64, d as f64);
            let pred = PI / (2.0 * mf)
                * ((yy - exact * exact) * (1.0 - 2.0 * mf / (PI * df))
                    + exact * exact * (1.0 - 2.0 / PI) * (1.0 - mf / df));
            assert!(
                mean.abs() < 4.0 * (var / trials as f64).sqrt(),
                "m={m}: mean {mean}, sd {}",
                var.sqrt()
            );
            assert!(
                (var / pred - 1.0).abs() < 0.15,
                "m={m}: var {var} vs {pred}"
            );
        }
    }
}
