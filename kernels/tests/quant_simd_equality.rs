//! The vector paths of the k-quants (AVX2, AVX-512) give the same bytes as the scalar
//! reference, with and without an importance row, on random rows of several distributions
//! (including BF16-rounded ones, full of ties) and on adversarial rows: zeros, values below
//! ggml's zero threshold, constants, lone huge values, all-negative groups, ±a ties, half-step
//! grids, subnormals, huge magnitudes, infinities and NaNs; row lengths that exercise every
//! batch shape (full, narrow and padded batches).

mod common;
use common::isas;
use gq_kernels::{format, GgmlType, Isa};

const KQUANTS: [GgmlType; 5] = [
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [-1, 1).
    fn sym(&mut self) -> f32 {
        2.0 * self.unit() - 1.0
    }
    /// Roughly normal (sum of four uniforms).
    fn normal(&mut self) -> f32 {
        (self.sym() + self.sym() + self.sym() + self.sym()) * 0.866
    }
    fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }
}

fn bf16_round(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// Random rows of `n` values: one per distribution.
fn random_rows(rng: &mut Rng, n: usize) -> Vec<(String, Vec<f32>)> {
    let mut rows = Vec::new();
    let scale = 10f32.powi(rng.below(7) as i32 - 4);
    rows.push((
        "uniform".into(),
        (0..n).map(|_| rng.sym() * scale).collect(),
    ));
    rows.push((
        "normal-bf16".into(),
        (0..n).map(|_| bf16_round(rng.normal() * 0.02)).collect(),
    ));
    rows.push((
        "heavy-tail-bf16".into(),
        (0..n)
            .map(|_| {
                let v = rng.normal();
                bf16_round(v * v * v * 0.05)
            })
            .collect(),
    ));
    rows.push((
        "positive".into(),
        (0..n).map(|_| rng.unit() * scale + scale * 0.1).collect(),
    ));
    rows.push((
        "negative-offset".into(),
        (0..n).map(|_| rng.sym() * scale - 3.0 * scale).collect(),
    ));
    rows.push((
        "small-ints".into(),
        (0..n)
            .map(|_| (rng.below(17) as f32 - 8.0) * 0.25)
            .collect(),
    ));
    // Sub-blocks of very different scales.
    rows.push((
        "mixed-scales-bf16".into(),
        (0..n)
            .map(|i| {
                let s = 10f32.powi((i / 16 % 9) as i32 - 6);
                bf16_round(rng.normal() * s)
            })
            .collect(),
    ));
    // Coarse bf16 values: few distinct values per sub-block, many exact ties.
    rows.push((
        "coarse".into(),
        (0..n)
            .map(|_| {
                let v = rng.normal();
                f32::from_bits(bf16_round(v).to_bits() & 0xfffc_0000)
            })
            .collect(),
    ));
    rows
}

/// Adversarial rows of `n` values.
fn adversarial_rows(rng: &mut Rng, n: usize) -> Vec<(String, Vec<f32>)> {
    let mut rows: Vec<(String, Vec<f32>)> = vec![
        ("zeros".into(), vec![0.0; n]),
        ("neg-zeros".into(), vec![-0.0; n]),
        (
            "tiny".into(),
            (0..n).map(|i| 1e-20 * (i % 7) as f32).collect(),
        ),
        ("const-pos".into(), vec![0.75; n]),
        ("const-neg".into(), vec![-2.0; n]),
        (
            "subnormal".into(),
            (0..n)
                .map(|i| f32::from_bits((i as u32).wrapping_mul(2_654_435_761) % 0x007f_ffff))
                .collect(),
        ),
        ("huge".into(), (0..n).map(|_| rng.sym() * 3e38).collect()),
        (
            "big-1e30".into(),
            (0..n).map(|_| rng.sym() * 1e30).collect(),
        ),
        (
            "half-steps".into(),
            (0..n)
                .map(|i| ((i * 29 % 64) as f32 - 32.0) / 64.0)
                .collect(),
        ),
        (
            "ties-pm".into(),
            (0..n)
                .map(|i| {
                    if i % 3 == 0 {
                        1.0
                    } else if i % 3 == 1 {
                        -1.0
                    } else {
                        0.5
                    }
                })
                .collect(),
        ),
        (
            "const-per-sub".into(),
            (0..n)
                .map(|i| (i / 16 + 1) as f32 * 0.1 * if i / 32 % 2 == 0 { 1.0 } else { -1.0 })
                .collect(),
        ),
    ];
    let mut lone = (0..n).map(|_| rng.sym()).collect::<Vec<_>>();
    lone[n / 3] = 3.0e4;
    lone[n - 1] = -7.0e6;
    rows.push(("lone-huge".into(), lone));
    let mut sparse = vec![0f32; n];
    for _ in 0..n / 50 + 1 {
        sparse[rng.below(n)] = rng.normal();
    }
    rows.push(("sparse".into(), sparse));
    // Zero and tiny sub-blocks inside normal ones.
    rows.push((
        "zero-subs".into(),
        (0..n)
            .map(|i| match i / 16 % 5 {
                0 => 0.0,
                1 => 1e-17 * rng.sym(),
                _ => rng.normal(),
            })
            .collect(),
    ));
    let mut inf = (0..n).map(|_| rng.normal()).collect::<Vec<_>>();
    inf[5] = f32::INFINITY;
    inf[n / 2 + 17] = f32::NEG_INFINITY;
    rows.push(("inf".into(), inf));
    let mut nan = (0..n).map(|_| rng.normal()).collect::<Vec<_>>();
    nan[0] = f32::NAN;
    nan[40] = f32::NAN;
    nan[n / 2 + 3] = -f32::NAN;
    rows.push(("nan".into(), nan));
    let mut first_nan = (0..n).map(|_| rng.normal()).collect::<Vec<_>>();
    for i in (0..n).step_by(16) {
        first_nan[i] = f32::NAN;
    }
    rows.push(("nan-first".into(), first_nan));
    rows
}

/// Importance rows of `n` values.
fn importance(rng: &mut Rng, n: usize) -> Vec<(String, Vec<f32>)> {
    let mut zeros_some: Vec<f32> = (0..n).map(|_| rng.unit() * 2.0).collect();
    for i in (0..n).step_by(3) {
        zeros_some[i] = 0.0;
    }
    vec![
        (
            "imatrix-random".into(),
            (0..n).map(|_| rng.unit() * 5.0 + 0.01).collect(),
        ),
        ("imatrix-zeros-some".into(), zeros_some),
        ("imatrix-ones".into(), vec![1.0; n]),
        ("imatrix-zero".into(), vec![0.0; n]),
        (
            "imatrix-wide".into(),
            (0..n)
                .map(|i| 10f32.powi((i % 13) as i32 - 6) * rng.unit())
                .collect(),
        ),
    ]
}

fn vector_isas() -> Vec<Isa> {
    Isa::ALL
        .into_iter()
        .filter(|&i| i != Isa::Scalar && i.available())
        .collect()
}

/// Compares every vector path with the scalar one; returns the number of rows checked and
/// panics listing the mismatches.
fn compare(rows: &[(String, Vec<f32>)], imatrices: &[(String, Vec<f32>)]) -> usize {
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut exercised = Vec::new();
    for ty in KQUANTS {
        let f = format(ty).unwrap();
        for (name, x) in rows {
            let nbytes = ty.row_bytes(x.len()).unwrap();
            let weights = std::iter::once(None).chain(
                imatrices
                    .iter()
                    .filter(|(_, w)| w.len() == x.len())
                    .map(|(n, w)| Some((n, w))),
            );
            for w in weights {
                let mut want = vec![0x5au8; nbytes];
                f.quantize_row_imatrix_isa(x, w.map(|w| &w.1[..]), &mut want, Isa::Scalar);
                for isa in vector_isas() {
                    let mut got = vec![0xa5u8; nbytes];
                    f.quantize_row_imatrix_isa(x, w.map(|w| &w.1[..]), &mut got, isa);
                    checked += 1;
                    exercised.push(isa);
                    if got != want {
                        let bb = ty.block_bytes();
                        let first = (0..nbytes / bb)
                            .find(|&b| got[b * bb..(b + 1) * bb] != want[b * bb..(b + 1) * bb])
                            .unwrap();
                        failures.push(format!(
                            "{ty} {isa:?} row {name} (len {}) weights {}: block {first} differs:\n  scalar {:?}\n  vector {:?}",
                            x.len(),
                            w.map_or("none", |w| w.0.as_str()),
                            &want[first * bb..(first + 1) * bb],
                            &got[first * bb..(first + 1) * bb],
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    isas::check_exercised("quant_simd_equality", &exercised);
    checked
}

#[test]
fn vector_paths_match_scalar_on_random_rows() {
    if vector_isas().is_empty() {
        eprintln!("no vector instruction set on this CPU; nothing to compare");
        return;
    }
    let mut rng = Rng(0x5eed);
    let mut checked = 0;
    // 1..=9 super-blocks cover full, narrow and padded batches for 8 and 16 lanes; 10 is a
    // 2560 row.
    for nsb in [1usize, 2, 3, 4, 5, 6, 7, 9, 10] {
        for _ in 0..3 {
            let n = nsb * 256;
            let rows = random_rows(&mut rng, n);
            let imatrices = importance(&mut rng, n);
            checked += compare(&rows, &imatrices);
        }
    }
    assert!(checked > 0);
}

#[test]
fn vector_paths_match_scalar_on_adversarial_rows() {
    if vector_isas().is_empty() {
        isas::check_exercised("quant_simd_equality", &[]);
        return;
    }
    let mut rng = Rng(0xadd);
    for nsb in [1usize, 3, 8] {
        let n = nsb * 256;
        let rows = adversarial_rows(&mut rng, n);
        let imatrices = importance(&mut rng, n);
        compare(&rows, &imatrices);
    }
}

#[test]
fn vector_paths_match_scalar_on_many_small_rows() {
    if vector_isas().is_empty() {
        isas::check_exercised("quant_simd_equality", &[]);
        return;
    }
    let mut rng = Rng(0xfeed);
    for _ in 0..200 {
        let n = 256 * (1 + rng.below(5));
        let mut x: Vec<f32> = (0..n).map(|_| bf16_round(rng.normal() * 0.05)).collect();
        // Sprinkle special values.
        for _ in 0..rng.below(4) {
            let at = rng.below(n);
            x[at] = [0.0, -0.0, 1e-30, 65504.0, -1e5, 1e-8][rng.below(6)];
        }
        let w: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
        compare(&[("small".into(), x)], &[("imatrix".into(), w)]);
    }
}

#[test]
fn env_override_names_parse() {
    for isa in Isa::ALL {
        assert_eq!(Isa::parse(isa.name()), Some(isa));
    }
    // Whatever GQ_ISA says, the current choice is one this CPU runs.
    assert!(Isa::selected().available());
}
