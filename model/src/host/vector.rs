//! Elementwise math over f32 slices that the compiler vectorises: a polynomial `exp` without libm calls or
//! branches, and reductions kept in [`LANES`] independent accumulators (a float reduction in one accumulator is a
//! dependency chain the compiler may not reorder). [`simd`] runs a closure compiled for the best instruction set
//! this CPU has (AVX-512, AVX2, NEON, wasm SIMD), chosen at run time, so one binary is fast on every machine; the
//! functions here are `#[inline(always)]` so that they are compiled inside it.

/// Independent accumulators per reduction: one AVX-512 register of f32.
pub const LANES: usize = 16;

/// Runs `f` compiled for the widest vector instructions this CPU supports (detected once, cheaply, per call).
///
/// `f` must be a closure marked `#[inline(always)]` (`simd(#[inline(always)] || …)`): pulp calls it from a
/// function compiled with those instructions enabled, and only code inlined into that function is compiled with
/// them. A closure the optimiser chooses not to inline is compiled for the baseline CPU (SSE2 on x86-64), where
/// `mul_add` even becomes a call to libm's `fmaf`.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// eˣ to within a few ulp (Cephes' `expf`: Cody–Waite reduction by ln 2 and a degree-7 polynomial), written so
/// that it vectorises. Inputs below −87 give e⁻⁸⁷ ≈ 1.6·10⁻³⁸ instead of a subnormal or zero, and inputs above 88
/// give e⁸⁸: the callers exponentiate logits shifted by their maximum, where such a term beside the maximum's 1
/// is the same. NaN stays NaN.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' constants, as published
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_375; // ln 2 = LN2_HI + LN2_LO, LN2_HI exact in 9 bits so that n·LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_40e-4;
    // Adding 1.5·2²³ rounds a float of magnitude below 2²² to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    // Comparisons, not min/max: NaN fails both and passes through.
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND; // round(x / ln 2), an integer in [−126, 127]
    let r = x - n * LN2_HI - n * LN2_LO; // |r| ≤ ln 2 / 2
                                         // Horner's rule over the coefficients of r², highest power first.
    const P: [f32; 6] =
        [1.987_569_150_0e-4, 1.398_199_950_7e-3, 8.333_451_907_3e-3, 4.166_579_589_4e-2, 1.666_666_545_9e-1, 5.000_000_120_1e-1];
    let p = P.iter().fold(0.0, |acc, &c| acc * r + c);
    let er = p * r * r + r + 1.0;
    // 2ⁿ built from its bits: t's low mantissa bits hold n, and n + 127 is the biased exponent.
    let pow2n = f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    er * pow2n
}

/// The logistic function `1 / (1 + e⁻ˣ)` through [`exp`] (so saturating to within 10⁻³⁸ of 0 and 1 beyond ±87).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// The largest value (NaN is skipped, as by `f32::max`; −∞ for an empty slice).
#[inline(always)]
pub fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    acc.iter().chain(rest).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// Replaces each `x` by `exp(x − shift)` and returns their sum (accumulated in f64 across the lanes).
#[inline(always)]
pub fn exp_shifted_in_place(xs: &mut [f32], shift: f32) -> f64 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = xs.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *x = exp(*x - shift);
            *a += *x;
        }
    }
    let mut sum: f64 = acc.iter().map(|&a| a as f64).sum();
    for x in chunks.into_remainder() {
        *x = exp(*x - shift);
        sum += *x as f64;
    }
    sum
}

/// `Σ aᵢ·bᵢ` over the shorter of the two.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Multiplies every value by `a`.
#[inline(always)]
pub fn scale_in_place(xs: &mut [f32], a: f32) {
    for x in xs {
        *x *= a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_closure_given_to_simd_is_inlined_into_the_dispatched_code() {
        // A closure the optimiser does not inline runs without the vector instructions `simd` selected (see there);
        // the head's dot products ran 5× slower that way. Every call site in the crate must mark its closure.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![root];
        let mut calls = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (at, _) in text.match_indices("simd(") {
                        let line = &text[text[..at].rfind('\n').map_or(0, |i| i + 1)..at];
                        // Calls only: not in comments, not `with_simd(` or `fn simd(`, not inside a string literal.
                        let named = line.ends_with(|c: char| c.is_alphanumeric() || c == '_') || line.ends_with("fn ");
                        if line.trim_start().starts_with("//") || named || line.matches('"').count() % 2 == 1 {
                            continue;
                        }
                        calls += 1;
                        let n = text[..at].lines().count();
                        let after = text[at + 5..].trim_start();
                        assert!(after.starts_with("#[inline(always)]"), "{}:{n}: a closure not marked #[inline(always)]", path.display());
                    }
                }
            }
        }
        assert!(calls >= 8, "found only {calls} calls of simd(");
    }

    #[test]
    fn exp_is_within_a_few_ulp_over_the_range_softmax_uses_and_beyond() {
        let mut worst = 0.0f64;
        for k in 0..=400_000 {
            let x = -87.0 + 175.0 * k as f32 / 400_000.0;
            let got = simd(
                #[inline(always)]
                || exp(x),
            ) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        // f32's ulp is 2⁻²³ ≈ 1.19·10⁻⁷ relative; libm's expf is within 1 ulp, this within 3.
        assert!(worst < 3.6e-7, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(-87.0) > 0.0 && exp(-87.0) < 2e-38);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn max_and_the_shifted_exponential_sum_agree_with_plain_loops() {
        // Lengths around the lane count and a vocabulary-sized one; values spread over tens of nats.
        for len in [0, 1, 15, 16, 17, 33, 50_257] {
            let xs: Vec<f32> = (0..len).map(|i| 30.0 * ((i as f32) * 0.37).sin() - (i % 7) as f32).collect();
            let top = simd(
                #[inline(always)]
                || max(&xs),
            );
            assert_eq!(top, xs.iter().copied().fold(f32::NEG_INFINITY, f32::max), "max over {len}");
            let mut ys = xs.clone();
            let sum = simd(
                #[inline(always)]
                || exp_shifted_in_place(&mut ys, top),
            );
            let want: f64 = xs.iter().map(|&x| ((x - top) as f64).exp()).sum();
            assert!((sum - want).abs() <= 1e-6 * want.max(1e-30), "sum over {len}: {sum} vs {want}");
            for (y, x) in ys.iter().zip(&xs) {
                let e = ((x - top) as f64).exp();
                assert!((*y as f64 - e).abs() <= 4e-7 * e + 1e-37, "exp({x} − {top}) = {y}, not {e}");
            }
        }
        assert_eq!(max(&[1.0, f32::NAN, 3.0]), 3.0, "NaN is skipped, as by f32::max");
        let mut with_nan = vec![0.0, f32::NAN, 1.0];
        assert!(exp_shifted_in_place(&mut with_nan, 1.0).is_nan(), "a NaN reaches the sum");
    }
}
