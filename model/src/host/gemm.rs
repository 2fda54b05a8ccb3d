//! Matrix products of host slices through the `gemm` crate, the one burn's Flex backend multiplies with (the same
//! kernels, AVX-512 where the CPU has it, the same threads), so a fused host kernel multiplies at Flex's speed
//! without building tensors around its buffers. Transposes are views: only strides change. Products of a few rows
//! against a wide matrix, which gemm runs on one core, have their own kernels ([`rows_times_transpose`],
//! [`rows_times`]), split over the cores through [`team`].

use crate::host::{team, vector};

/// A read-only `rows × cols` matrix over a slice; element `(i, j)` is `data[i·row_stride + j·col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// `data` as a row-major `rows × cols` matrix.
    ///
    /// # Panics
    /// When `data` does not hold exactly `rows · cols` values.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "{} values are not a {rows} × {cols} matrix", data.len());
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, without a copy.
    pub fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// How far apart neighbours within a row are (1: rows are contiguous).
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }

    /// Row `i`, when rows are contiguous.
    ///
    /// # Panics
    /// When they are not, or outside the matrix.
    pub fn row(&self, i: usize) -> &'a [f32] {
        assert!(
            self.col_stride == 1 && i < self.rows,
            "row {i} of a {} × {} matrix with column stride {}",
            self.rows,
            self.cols,
            self.col_stride
        );
        &self.data[i * self.row_stride..][..self.cols]
    }

    /// Element `(i, j)`.
    ///
    /// # Panics
    /// Outside the matrix.
    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        debug_assert!(i < self.rows && j < self.cols);
        self.data[i * self.row_stride + j * self.col_stride]
    }
}

/// Products smaller than this many multiply-adds run on one thread (Flex's threshold: below it, waking the other
/// threads costs more than it saves).
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// All cores for a large product natively; one thread in wasm (no threads there).
fn parallelism(multiply_adds: usize) -> gemm::Parallelism {
    #[cfg(not(target_arch = "wasm32"))]
    if multiply_adds >= PARALLEL_THRESHOLD {
        return gemm::Parallelism::Rayon(0);
    }
    let _ = multiply_adds;
    gemm::Parallelism::None
}

/// `a · b`, a new row-major `[a.rows, b.cols]` buffer.
///
/// # Panics
/// When the inner dimensions differ.
pub fn matmul(a: Matrix, b: Matrix) -> Vec<f32> {
    assert_eq!(a.cols, b.rows, "a {} × {} matrix times a {} × {} one", a.rows, a.cols, b.rows, b.cols);
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if k == 0 {
        return vec![0.0; m * n];
    }
    let parallelism = parallelism(m.saturating_mul(n).saturating_mul(k));
    let mut out = Vec::<f32>::with_capacity(m * n);
    // SAFETY: `Matrix` is only built by `row_major` (which checks that `data` holds rows · cols values) and `t`
    // (which swaps dimensions with their strides), so every (i, j) read is inside its slice; `out` has room for
    // m · n values, every one of which gemm writes (`read_dst` is false: dst = 1 · a·b, never read), before
    // `set_len` exposes them.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
        out.set_len(m * n);
    }
    out
}

/// Rows of `w` per task of [`rows_times_transpose`]: 1024 rows of GPT-2 small's head are 1 MB, a core's L2 share.
const ROWS_PER_TASK: usize = 1024;

/// `x · wᵀ` for a few rows `x` (`[m, c]`, row-major) and a wide `w` (`[n, c]`, row-major): a new row-major `[m, n]`
/// buffer. Decoding's LM head is such a product, one row against GPT-2's 50,257 × 768 embedding; `gemm` runs it on
/// one core, bound by how fast that core reads `w`. Here the rows of `w` are split over every core and each is read
/// once for all of `x`'s rows.
///
/// # Panics
/// When `x` or `w` are not rows of `c` values.
pub fn rows_times_transpose(x: &[f32], w: &[f32], c: usize) -> Vec<f32> {
    assert!(c > 0 && x.len().is_multiple_of(c) && w.len().is_multiple_of(c), "{} and {} values are not rows of {c}", x.len(), w.len());
    let (m, n) = (x.len() / c, w.len() / c);
    // Task-major scratch: task k holds the [m, rows] block of its rows of w; transposed into [m, n] below.
    let mut blocks = vec![0.0f32; m * n];
    let tasks: Vec<&mut [f32]> = blocks.chunks_mut(m * ROWS_PER_TASK).collect();
    team::for_each(tasks, |k, out| {
        let rows = &w[k * ROWS_PER_TASK * c..][..out.len() / m * c];
        pulp::Arch::new().dispatch(DotRows { x, rows, c, out });
    });
    task_major_to_rows(blocks, m, n, ROWS_PER_TASK)
}

/// One task of [`rows_times_transpose`]: `out` (`[m, rows]`, row-major) = `x · rowsᵀ`. Four rows of `w` at a time
/// against one row of `x`, so that `x` is loaded once for four and four independent chains of fused multiply-adds
/// keep the vector units busy (one dot product's chain waits on each addition's latency). Written with pulp's
/// portable vectors rather than left to the auto-vectoriser, which kept these accumulators in scalar registers.
struct DotRows<'a> {
    x: &'a [f32],
    rows: &'a [f32],
    c: usize,
    out: &'a mut [f32],
}

impl pulp::WithSimd for DotRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, s: S) {
        let DotRows { x, rows, c, out } = self;
        let width = out.len() / (x.len() / c);
        let mut quads = rows.chunks_exact(4 * c);
        for (q, w4) in (&mut quads).enumerate() {
            let w = [&w4[..c], &w4[c..2 * c], &w4[2 * c..3 * c], &w4[3 * c..]];
            let (wv, wt) = (w.map(|r| S::as_simd_f32s(r).0), w.map(|r| S::as_simd_f32s(r).1));
            for (i, xi) in x.chunks_exact(c).enumerate() {
                let (xv, xt) = S::as_simd_f32s(xi);
                let mut acc = [s.splat_f32s(0.0); 4];
                for (k, &xk) in xv.iter().enumerate() {
                    for (a, r) in acc.iter_mut().zip(&wv) {
                        *a = s.mul_add_e_f32s(xk, r[k], *a);
                    }
                }
                for (j, a) in acc.into_iter().enumerate() {
                    out[i * width + 4 * q + j] = s.reduce_sum_f32s(a) + vector::dot(xt, wt[j]);
                }
            }
        }
        let done = width / 4 * 4;
        for (j, wj) in quads.remainder().chunks_exact(c).enumerate() {
            for (i, xi) in x.chunks_exact(c).enumerate() {
                out[i * width + done + j] = vector::dot(xi, wj);
            }
        }
    }
}

/// `x · w + bias` for a few rows `x` (`[m, k]`, row-major) and a `[k, n]` row-major `w` (burn's `Linear` layout): a
/// new row-major `[m, n]` buffer. Decoding's projections are such products, one row against a block's weights;
/// `gemm` runs them on one core. Here `w`'s rows are split into one contiguous band per worker of [`team`], each
/// read once for all of `x`'s rows into that band's partial sums, which are then added in band order (the result
/// does not depend on which thread ran which band).
///
/// # Panics
/// When `x` is not rows of `k` values, `w` is not `k × n` values or `bias` is neither empty nor `n` values.
pub fn rows_times(x: &[f32], w: &[f32], bias: &[f32], k: usize, n: usize) -> Vec<f32> {
    assert!(k > 0 && x.len().is_multiple_of(k) && w.len() == k * n, "{} and {} values are not [m, {k}] and [{k}, {n}]", x.len(), w.len());
    assert!(bias.is_empty() || bias.len() == n, "a bias of {} values for {n} outputs", bias.len());
    let m = x.len() / k;
    if m * n == 0 {
        return Vec::new();
    }
    let bands = team::workers().clamp(1, k.div_ceil(BAND_MIN_ROWS).max(1));
    let band = k.div_ceil(bands);
    // Band-major partial sums: band p's [m, n] block.
    let mut partials = vec![0.0f32; bands * m * n];
    team::for_each(partials.chunks_mut(m * n).collect(), |p, out| {
        let rows = p * band..((p + 1) * band).min(k);
        pulp::Arch::new().dispatch(AxpyRows { x, k, first: rows.start, w: &w[rows.start * n..rows.end * n], n, out });
    });
    let (out, rest) = partials.split_at_mut(m * n);
    for partial in rest.chunks_exact(m * n) {
        out.iter_mut().zip(partial).for_each(|(o, p)| *o += p);
    }
    let mut out = partials;
    out.truncate(m * n);
    if !bias.is_empty() {
        out.chunks_exact_mut(n).for_each(|row| row.iter_mut().zip(bias).for_each(|(o, b)| *o += b));
    }
    out
}

/// Fewest rows of `w` worth a band of [`rows_times`] of their own (below, one thread reads them all).
const BAND_MIN_ROWS: usize = 64;

/// One band of [`rows_times`]: `out[i] = Σ_r x[i][first + r] · w[r]` over the band's rows `w` (`[rows, n]`), four
/// rows of `w` per pass over `out` so that each output vector is loaded and stored once for four multiply-adds.
struct AxpyRows<'a> {
    x: &'a [f32],
    k: usize,
    first: usize,
    w: &'a [f32],
    n: usize,
    out: &'a mut [f32],
}

impl pulp::WithSimd for AxpyRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, s: S) {
        let AxpyRows { x, k, first, w, n, out } = self;
        let mut quads = w.chunks_exact(4 * n);
        for (q, w4) in (&mut quads).enumerate() {
            let w = [&w4[..n], &w4[n..2 * n], &w4[2 * n..3 * n], &w4[3 * n..]];
            let (wv, wt) = (w.map(|r| S::as_simd_f32s(r).0), w.map(|r| S::as_simd_f32s(r).1));
            for (xi, oi) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
                let a = [0, 1, 2, 3].map(|j| xi[first + 4 * q + j]);
                let av = a.map(|a| s.splat_f32s(a));
                let (ov, ot) = S::as_mut_simd_f32s(oi);
                for (j, o) in ov.iter_mut().enumerate() {
                    let acc = s.mul_add_e_f32s(av[0], wv[0][j], *o);
                    let acc = s.mul_add_e_f32s(av[1], wv[1][j], acc);
                    let acc = s.mul_add_e_f32s(av[2], wv[2][j], acc);
                    *o = s.mul_add_e_f32s(av[3], wv[3][j], acc);
                }
                for (j, o) in ot.iter_mut().enumerate() {
                    *o = a[3].mul_add(wt[3][j], a[2].mul_add(wt[2][j], a[1].mul_add(wt[1][j], a[0].mul_add(wt[0][j], *o))));
                }
            }
        }
        let done = w.len() / n / 4 * 4;
        for (r, wr) in quads.remainder().chunks_exact(n).enumerate() {
            for (xi, oi) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
                let a = xi[first + done + r];
                oi.iter_mut().zip(wr).for_each(|(o, w)| *o = a.mul_add(*w, *o));
            }
        }
    }
}

/// `[m, n]` row-major from blocks of `width` columns, each `[m, width]` row-major (the last one narrower).
fn task_major_to_rows(blocks: Vec<f32>, m: usize, n: usize, width: usize) -> Vec<f32> {
    if m == 1 {
        return blocks;
    }
    let mut out = vec![0.0f32; m * n];
    for (t, block) in blocks.chunks(m * width).enumerate() {
        let cols = block.len() / m;
        for i in 0..m {
            out[i * n + t * width..][..cols].copy_from_slice(&block[i * cols..(i + 1) * cols]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|l| a[i * k + l] as f64 * b[l * n + j] as f64).sum::<f64>() as f32;
            }
        }
        out
    }

    fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        (0..cols * rows).map(|k| x[(k % rows) * cols + k / rows]).collect()
    }

    #[test]
    fn products_of_matrices_and_transposed_views_match_the_schoolbook_product() {
        // Sizes on both sides of the threading threshold, odd ones included.
        for (m, k, n) in [(1, 1, 1), (3, 5, 2), (7, 1, 9), (33, 17, 65), (200, 190, 210)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
            let want = naive(&a, &b, m, k, n);
            let close = |got: &[f32], what: &str| {
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what} {m}×{k}×{n}: {g} vs {w}");
                }
            };
            close(&matmul(Matrix::row_major(&a, m, k), Matrix::row_major(&b, k, n)), "a·b");
            // The same product with both operands stored transposed and viewed back.
            let (at, bt) = (transpose(&a, m, k), transpose(&b, k, n));
            close(&matmul(Matrix::row_major(&at, k, m).t(), Matrix::row_major(&bt, n, k).t()), "(aᵀ)ᵀ·(bᵀ)ᵀ");
        }
        assert_eq!(matmul(Matrix::row_major(&[], 2, 0), Matrix::row_major(&[], 0, 3)), vec![0.0; 6]);
    }

    #[test]
    fn a_few_rows_times_a_matrix_plus_bias_match_the_schoolbook_product_inside_and_outside_a_team() {
        // One band and several, ragged bands and quads, with and without a bias.
        for (m, k, n, with_bias) in
            [(0, 4, 3, true), (1, 1, 1, true), (1, 7, 33, false), (2, 130, 17, true), (3, 257, 70, true), (1, 768, 2304, false)]
        {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let w: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
            let bias: Vec<f32> = if with_bias { (0..n).map(|j| j as f32 / 7.0 - 1.0).collect() } else { vec![] };
            let mut want = naive(&x, &w, m, k, n);
            for (j, o) in want.iter_mut().enumerate() {
                *o += bias.get(j % n).copied().unwrap_or(0.0);
            }
            let check = |got: Vec<f32>, how: &str| {
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{m}×{k}·{k}×{n} {how}: {g} vs {w}");
                }
            };
            check(rows_times(&x, &w, &bias, k, n), "on the pool");
            check(team::run(|| rows_times(&x, &w, &bias, k, n)), "in a team");
        }
    }

    #[test]
    fn a_few_rows_times_a_wide_transposed_matrix_match_the_schoolbook_product() {
        // Widths around a task's worth of rows, with a ragged last task; one row and several.
        for (m, c, n) in [(1, 5, 3), (1, 37, 2500), (3, 16, 1024), (4, 33, 2049)] {
            let x: Vec<f32> = (0..m * c).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let w: Vec<f32> = (0..n * c).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
            let want = naive(&x, &transpose(&w, n, c), m, c, n);
            let got = rows_times_transpose(&x, &w, c);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{m}×{c}·({n}×{c})ᵀ: {g} vs {w}");
            }
        }
    }
}
