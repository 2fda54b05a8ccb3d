//! Matrix products with bf16 operands and f32 accumulation — mixed precision for the tied head on the CPU
//! (`--precision bf16`) — on Intel AMX where the CPU has it.
//!
//! AMX multiplies tiles: `tdpbf16ps` adds a 16 × 32 bf16 tile times a 32 × 16 one into a 16 × 16 f32 tile, about
//! sixteen times the multiply-adds per cycle of AVX-512 in f32 on a Sapphire Rapids core. Each operand is packed
//! once into tile order ([`Packed`]), rounding f32 to bf16 to nearest with ties to even (what PyTorch's autocast
//! does), and the product runs over 32 × 32 blocks of the result, four accumulator tiles per block, the blocks split
//! over the cores ([`team`]). Every sum is accumulated in f32, as in f32 training; what changes is that the
//! operands carry 8 significant bits instead of 24.
//!
//! Where AMX is absent (other CPUs, wasm) the same packed operands go through a portable loop with the same
//! arithmetic (f32 sums of exact products of bf16 values), only much slower: results differ from AMX's only in
//! the order of the f32 additions.

use crate::host::gemm::Matrix;
use crate::host::team;
use crate::host::vector::simd;

/// Rows and columns of a result block, and the depth of one packed block (32 bf16 values: one 64-byte tile row).
const EDGE: usize = 32;
/// bf16 values per packed block: 32 × 32.
const BLOCK: usize = EDGE * EDGE;
/// Packed blocks of depth per pass over the result blocks: 2,048 deep, so a task's blocks of both operands stay in
/// its core's L2 while they are reused.
const DEPTH_CHUNK: usize = 64;

/// `x` rounded to bf16, to nearest with ties to even (NaN stays NaN, quiet). Written without branches, so that
/// loops over it vectorise.
#[inline(always)]
pub fn round(x: f32) -> u16 {
    let bits = x.to_bits();
    let nan = bits & 0x7fff_ffff > 0x7f80_0000;
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16;
    (if nan { (bits >> 16) | 0x40 } else { rounded }) as u16
}

/// The f32 value of a bf16 (exact).
pub fn widen(x: u16) -> f32 {
    f32::from_bits((x as u32) << 16)
}

/// Which side of a product an operand is packed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The left operand: panels of 32 rows, each block `[row][k]`.
    Left,
    /// The right operand: panels of 32 columns, each block in AMX's pair order: two 16-column halves, each
    /// `[k / 2][column][k % 2]`.
    Right,
}

/// Where value `(i, k)` of a panel's block goes: `i` the row (left) or column (right) within the panel, `k` the
/// depth within the block.
#[inline(always)]
fn slot(side: Side, i: usize, k: usize) -> usize {
    match side {
        Side::Left => i * EDGE + k,
        Side::Right => (i / 16) * (BLOCK / 2) + (k / 2) * EDGE + (i % 16) * 2 + k % 2,
    }
}

/// An operand rounded to bf16 in tile order: panel-major, each panel `blocks` blocks of [`BLOCK`] values along the
/// shared dimension, zero beyond the matrix's edges.
#[derive(Debug, Clone)]
pub struct Packed {
    data: Vec<u16>,
    panels: usize,
    blocks: usize,
}

impl Packed {
    /// `a` packed as the left operand of a product.
    pub fn left(a: Matrix) -> Self {
        Self::pack(a, Side::Left)
    }

    /// `b` packed as the right operand of a product.
    pub fn right(b: Matrix) -> Self {
        if b.col_stride() == 1 && b.rows() >= 2 * EDGE {
            Self::right_by_rows(b)
        } else {
            Self::pack(b.t(), Side::Right)
        }
    }

    /// [`Packed::right`] for a `b` whose rows are contiguous (the tied head's `W` as `∂h`'s right side): the
    /// panels run across `b`'s rows, so tasks take runs of rows instead of panels, and read `b` once, in order.
    /// Two rows at a time fill each panel's 64-byte slot rows whole (pair order: `[k / 2][column][k % 2]`).
    fn right_by_rows(b: Matrix) -> Self {
        let (depth, len) = (b.rows(), b.cols());
        let (panels, blocks) = (len.div_ceil(EDGE), depth.div_ceil(EDGE));
        let mut data = vec![0u16; panels * blocks * BLOCK];
        let out = Out16(data.as_mut_ptr());
        let per_task = DEPTH_CHUNK;
        team::split(blocks.div_ceil(per_task), |task| {
            let mut pair = [vec![0u16; panels * EDGE], vec![0u16; panels * EDGE]];
            simd(
                #[inline(always)]
                || {
                    let rows = task * per_task * EDGE..((task + 1) * per_task * EDGE).min(depth);
                    for k0 in rows.step_by(2) {
                        for (j, line) in pair.iter_mut().enumerate() {
                            if k0 + j < depth {
                                round_into(b.row(k0 + j), &mut line[..len]);
                            } else {
                                line.fill(0);
                            }
                        }
                        let row_of_slots = (k0 / EDGE) * BLOCK + ((k0 % EDGE) / 2) * EDGE;
                        for p in 0..panels {
                            for half in 0..2 {
                                let at = p * blocks * BLOCK + row_of_slots + half * (BLOCK / 2);
                                let columns = p * EDGE + half * 16..p * EDGE + half * 16 + 16;
                                let (even, odd) = (&pair[0][columns.clone()], &pair[1][columns]);
                                let mut slots = [0u16; EDGE];
                                for c in 0..16 {
                                    slots[2 * c] = even[c];
                                    slots[2 * c + 1] = odd[c];
                                }
                                // SAFETY: `at` addresses 32 slots of block (p, k0 / 32), whose rows k0 and k0 + 1
                                // belong to this task alone, inside `data`.
                                unsafe { std::ptr::copy_nonoverlapping(slots.as_ptr(), out.at(at), EDGE) };
                            }
                        }
                    }
                },
            );
        });
        Self { data, panels, blocks }
    }

    /// `m` (rows: the panels' dimension; columns: depth) packed for `side`, one task per panel. The source is read
    /// one contiguous line at a time (a row, or a panel's part of a column), rounded in one vectorised loop, and
    /// its values then dealt into their slots.
    fn pack(m: Matrix, side: Side) -> Self {
        let (len, depth) = (m.rows(), m.cols());
        let (panels, blocks) = (len.div_ceil(EDGE), depth.div_ceil(EDGE));
        let mut data = vec![0u16; panels * blocks * BLOCK];
        if !data.is_empty() {
            team::for_each(data.chunks_mut(blocks * BLOCK).collect(), |p, panel| {
                let rows = (len - p * EDGE).min(EDGE);
                let mut line = vec![0u16; depth.max(EDGE)];
                simd(
                    #[inline(always)]
                    || {
                        if m.col_stride() == 1 {
                            for i in 0..rows {
                                round_into(m.row(p * EDGE + i), &mut line[..depth]);
                                for (k, &x) in line[..depth].iter().enumerate() {
                                    panel[(k / EDGE) * BLOCK + slot(side, i, k % EDGE)] = x;
                                }
                            }
                        } else {
                            let columns = m.t();
                            for k in 0..depth {
                                if columns.col_stride() == 1 {
                                    round_into(&columns.row(k)[p * EDGE..][..rows], &mut line[..rows]);
                                } else {
                                    (0..rows).for_each(|i| line[i] = round(m.at(p * EDGE + i, k)));
                                }
                                let block = &mut panel[(k / EDGE) * BLOCK..][..BLOCK];
                                for (i, &x) in line[..rows].iter().enumerate() {
                                    block[slot(side, i, k % EDGE)] = x;
                                }
                            }
                        }
                    },
                );
            });
        }
        Self { data, panels, blocks }
    }
}

/// `to[i] = round(from[i])`.
#[inline(always)]
fn round_into(from: &[f32], to: &mut [u16]) {
    to.iter_mut().zip(from).for_each(|(t, &x)| *t = round(x));
}

/// A pointer to a packed operand shared by the tasks that fill it, each its own slots.
#[derive(Clone, Copy)]
struct Out16(*mut u16);
// SAFETY: tasks write disjoint slots (see `Packed::right_by_rows`), and the buffer outlives them.
unsafe impl Send for Out16 {}
unsafe impl Sync for Out16 {}

impl Out16 {
    /// The slot `i` values in (a method, so that closures capture the whole `Sync` wrapper).
    ///
    /// # Safety
    /// `i` must lie inside the buffer.
    unsafe fn at(self, i: usize) -> *mut u16 {
        self.0.add(i)
    }
}

/// Whether this machine multiplies on AMX (the CPU has AMX-BF16 and the kernel lets this process use its tiles).
pub fn amx() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    return amx::available();
    #[allow(unreachable_code)]
    false
}

/// A part of a packed operand: `panels` panels from `data`'s start, `panel_stride` values apart, each `blocks`
/// blocks deep. [`Operand::panels`] and [`Operand::blocks`] narrow it without copying.
#[derive(Debug, Clone, Copy)]
pub struct Operand<'a> {
    data: &'a [u16],
    panel_stride: usize,
    panels: usize,
    blocks: usize,
}

impl<'a> Operand<'a> {
    /// Panels `first..first + count` of this part (the rows of a left operand, the columns of a right one).
    pub fn panels(self, first: usize, count: usize) -> Self {
        assert!(first + count <= self.panels, "panels {first}..{} of {}", first + count, self.panels);
        Self { data: &self.data[(first * self.panel_stride).min(self.data.len())..], panels: count, ..self }
    }

    /// Blocks `first..first + count` of the depth (values `32·first..32·(first + count)` of the shared dimension).
    pub fn blocks(self, first: usize, count: usize) -> Self {
        assert!(first + count <= self.blocks, "blocks {first}..{} of {}", first + count, self.blocks);
        Self { data: &self.data[(first * BLOCK).min(self.data.len())..], blocks: count, ..self }
    }

    fn panel(&self, p: usize) -> &[u16] {
        &self.data[p * self.panel_stride..][..self.blocks * BLOCK]
    }
}

impl Packed {
    /// The whole operand.
    pub fn operand(&self) -> Operand<'_> {
        Operand { data: &self.data, panel_stride: self.blocks * BLOCK, panels: self.panels, blocks: self.blocks }
    }
}

/// A left operand written in place, row by row ([`Scratch::row_map`]): for products whose left side is computed
/// block by block, such as the head's probabilities.
#[derive(Debug, Clone)]
pub struct Scratch {
    data: Vec<u16>,
    panels: usize,
    blocks: usize,
}

impl Scratch {
    /// `rows × depth` zeros, both rounded up to multiples of 32.
    pub fn zeros(rows: usize, depth: usize) -> Self {
        let (panels, blocks) = (rows.div_ceil(EDGE), depth.div_ceil(EDGE));
        Self { data: vec![0; panels * blocks * BLOCK], panels, blocks }
    }

    /// Sets row `i` to `f(values)` (rounded; the rest of the row keeps what it held), in one pass over `values`.
    #[inline(always)]
    pub fn row_map(&mut self, i: usize, values: &[f32], f: impl Fn(f32) -> f32) {
        let panel = &mut self.data[(i / EDGE) * self.blocks * BLOCK..][..self.blocks * BLOCK];
        for (k, run) in values.chunks(EDGE).enumerate() {
            let mut mapped = [0.0f32; EDGE];
            mapped.iter_mut().zip(run).for_each(|(y, &x)| *y = f(x));
            round_into(&mapped[..run.len()], &mut panel[k * BLOCK + (i % EDGE) * EDGE..][..run.len()]);
        }
    }

    /// Makes `into` this operand's transpose, block by block (`into` has this one's depth as rows, and its rows as
    /// depth).
    pub fn transpose_into(&self, into: &mut Scratch) {
        assert_eq!((into.panels, into.blocks), (self.blocks, self.panels), "transposing into the wrong shape");
        for p in 0..self.panels {
            for b in 0..self.blocks {
                let src = &self.data[(p * self.blocks + b) * BLOCK..][..BLOCK];
                let dst = &mut into.data[(b * into.blocks + p) * BLOCK..][..BLOCK];
                for (r, row) in src.chunks_exact(EDGE).enumerate() {
                    for (k, &x) in row.iter().enumerate() {
                        dst[k * EDGE + r] = x;
                    }
                }
            }
        }
    }

    /// Zeroes everything.
    pub fn clear(&mut self) {
        self.data.fill(0);
    }

    /// The whole operand.
    pub fn operand(&self) -> Operand<'_> {
        Operand { data: &self.data, panel_stride: self.blocks * BLOCK, panels: self.panels, blocks: self.blocks }
    }
}

/// One thread's multiplier: AMX's tile registers configured for this thread while it lives, or the portable loop.
/// Not `Send`: the configuration belongs to the thread that made it.
pub struct Tiles {
    #[cfg_attr(not(all(target_arch = "x86_64", target_os = "linux")), allow(dead_code))]
    amx: bool,
    _thread: std::marker::PhantomData<*const ()>,
}

impl Tiles {
    /// Configures this thread's tiles (when the machine has them) until the value is dropped.
    pub fn new() -> Self {
        let amx = amx();
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if amx {
            // SAFETY: `amx::available()` said so.
            unsafe { amx::configure() };
        }
        Self { amx, _thread: std::marker::PhantomData }
    }

    /// `out = a · b`, or `out += a · b` when `accumulate`, over whole 32 × 32 blocks: `out` is row-major with rows
    /// `ld` values apart, `32 · a`'s panels rows of at least `32 · b`'s panels values each. `a` left, `b` right.
    ///
    /// # Panics
    /// When the depths differ or `out` is too small.
    pub fn multiply(&mut self, a: Operand, b: Operand, out: &mut [f32], ld: usize, accumulate: bool) {
        assert_eq!(a.blocks, b.blocks, "operands of different depths");
        assert!(ld >= b.panels * EDGE && out.len() >= a.panels * EDGE * ld, "the result does not fit");
        let ptr = out.as_mut_ptr();
        for first in (0..a.blocks.max(1)).step_by(DEPTH_CHUNK) {
            let count = DEPTH_CHUNK.min(a.blocks - first);
            let accumulate = accumulate || first > 0;
            // Each block reads a panel of each operand: the inner loop walks every panel of one operand (kept in L2)
            // while the outer one's panel stays in L1, so the outer loop takes the operand with more panels.
            let a_outer = a.panels >= b.panels;
            let (outer, inner) = if a_outer { (a.panels, b.panels) } else { (b.panels, a.panels) };
            for o in 0..outer {
                for i in 0..inner {
                    let (mp, np) = if a_outer { (o, i) } else { (i, o) };
                    let ab = &a.panel(mp)[first * BLOCK..][..count * BLOCK];
                    let bb = &b.panel(np)[first * BLOCK..][..count * BLOCK];
                    // SAFETY: block (mp, np) lies inside `out` (checked above) and `out` is borrowed mutably.
                    let c = unsafe { ptr.add(mp * EDGE * ld + np * EDGE) };
                    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
                    if self.amx {
                        // SAFETY: tiles configured in `new`; `ab`, `bb` hold `count` blocks; `c` 32 rows of `ld`.
                        unsafe { amx::block(ab.as_ptr(), bb.as_ptr(), count, c, ld * 4, accumulate) };
                        continue;
                    }
                    // SAFETY: as above.
                    unsafe { portable_block(ab, bb, count, c, ld, accumulate) };
                }
            }
        }
    }
}

impl Default for Tiles {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if self.amx {
            // SAFETY: configured in `new`.
            unsafe { amx::release() };
        }
    }
}

/// `a · b` with bf16 operands and f32 sums, a new row-major `[a.rows, b.cols]` buffer: both operands packed, the
/// result's 32-row panels split over the cores ([`team`]), each core with its own [`Tiles`]. The products of
/// `--precision bf16`'s linear layers ([`crate::host::autocast`]).
///
/// # Panics
/// When the inner dimensions differ.
pub fn matmul(a: Matrix, b: Matrix) -> Vec<f32> {
    assert_eq!(a.cols(), b.rows(), "a {} × {} matrix times a {} × {} one", a.rows(), a.cols(), b.rows(), b.cols());
    let (m, n) = (a.rows(), b.cols());
    let (left, right) = (Packed::left(a), Packed::right(b));
    let (panels, ld) = (m.div_ceil(EDGE), n.div_ceil(EDGE) * EDGE);
    let mut out = vec![0.0f32; panels * EDGE * ld];
    if panels > 0 && ld > 0 {
        let tasks = team::workers().clamp(1, panels);
        let first = |task: usize| task * panels / tasks;
        let mut parts = Vec::with_capacity(tasks);
        let mut rest = out.as_mut_slice();
        for task in 0..tasks {
            let (mine, later) = rest.split_at_mut((first(task + 1) - first(task)) * EDGE * ld);
            parts.push(mine);
            rest = later;
        }
        team::for_each(parts, |task, part| {
            let count = first(task + 1) - first(task);
            Tiles::new().multiply(left.operand().panels(first(task), count), right.operand(), part, ld, false);
        });
    }
    if ld != n {
        for i in 0..m {
            out.copy_within(i * ld..i * ld + n, i * n);
        }
    }
    out.truncate(m * n);
    out
}

/// The block at `c` (32 rows `ld` apart) set to, or increased by, `a · b` over `count` packed blocks: what
/// `tdpbf16ps` computes, one product at a time.
///
/// # Safety
/// `c` must point at 32 writable rows of 32 values, `ld` apart.
unsafe fn portable_block(a: &[u16], b: &[u16], count: usize, c: *mut f32, ld: usize, accumulate: bool) {
    let mut acc = [0.0f32; BLOCK];
    if accumulate {
        for r in 0..EDGE {
            std::ptr::copy_nonoverlapping(c.add(r * ld), acc[r * EDGE..].as_mut_ptr(), EDGE);
        }
    }
    for (ab, bb) in a.chunks_exact(BLOCK).zip(b.chunks_exact(BLOCK)).take(count) {
        for r in 0..EDGE {
            for k in 0..EDGE {
                let x = widen(ab[slot(Side::Left, r, k)]);
                let row = &mut acc[r * EDGE..][..EDGE];
                for (j, y) in row.iter_mut().enumerate() {
                    *y += x * widen(bb[slot(Side::Right, j, k)]);
                }
            }
        }
    }
    for r in 0..EDGE {
        std::ptr::copy_nonoverlapping(acc[r * EDGE..].as_ptr(), c.add(r * ld), EDGE);
    }
}

/// AMX on Linux: the process asks the kernel for the tile state once; each task configures eight 16 × 64-byte tile
/// registers (four accumulators, two tiles of each operand) and releases them at its end.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx {
    use std::arch::asm;
    use std::sync::OnceLock;

    /// CPUID leaf 7's EDX bits: AMX-BF16 (22) and AMX-TILE (24).
    const CPUID_AMX: u32 = (1 << 22) | (1 << 24);
    /// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: Linux (5.16 on) hands out the tile state only on request.
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;

    pub fn available() -> bool {
        static ON: OnceLock<bool> = OnceLock::new();
        *ON.get_or_init(|| {
            let leaf = std::arch::x86_64::__cpuid_count(7, 0);
            // SAFETY: a plain system call with integer arguments.
            leaf.edx & CPUID_AMX == CPUID_AMX
                && unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) } == 0
        })
    }

    /// Palette 1, eight tiles of 16 rows × 64 bytes.
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    const CONFIG: Config = {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut t = 0;
        while t < 8 {
            c[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
            c[48 + t] = 16; // rows
            t += 1;
        }
        Config(c)
    };

    /// # Safety
    /// Only after [`available`] returned true.
    pub unsafe fn configure() {
        asm!("ldtilecfg [{}]", in(reg) &CONFIG as *const Config, options(nostack, readonly));
    }

    /// # Safety
    /// Only after [`configure`] on this thread.
    pub unsafe fn release() {
        asm!("tilerelease", options(nostack, nomem));
    }

    /// The 32 × 32 f32 block at `c` (rows `stride` bytes apart) set to, or increased by, `a · b` over `count`
    /// packed blocks (left: two 16-row tiles; right: two 16-column tiles in pair order, 2,048 bytes a block each).
    /// Accumulators: tmm0 = rows 0–15 × columns 0–15, tmm1 = rows 0–15 × 16–31, tmm2 and tmm3 the rows 16–31.
    ///
    /// # Safety
    /// After [`configure`] on this thread; `a`, `b` hold `count` blocks; `c` 32 rows of 32 writable f32.
    pub unsafe fn block(a: *const u16, b: *const u16, count: usize, c: *mut f32, stride: usize, accumulate: bool) {
        if accumulate {
            asm!(
                "tileloadd tmm0, [{c} + {s}*1]",
                "tileloadd tmm1, [{c} + {s}*1 + 64]",
                "tileloadd tmm2, [{h} + {s}*1]",
                "tileloadd tmm3, [{h} + {s}*1 + 64]",
                c = in(reg) c, h = in(reg) c.byte_add(16 * stride), s = in(reg) stride,
                options(nostack, readonly)
            );
        } else {
            asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        }
        if count > 0 {
            asm!(
                "2:",
                "tileloadd tmm4, [{a} + {s}*1]",
                "tileloadd tmm6, [{b} + {s}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tileloadd tmm5, [{a} + {s}*1 + 1024]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tileloadd tmm7, [{b} + {s}*1 + 1024]",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "add {a}, 2048",
                "add {b}, 2048",
                "dec {k}",
                "jnz 2b",
                a = inout(reg) a => _, b = inout(reg) b => _, k = inout(reg) count => _, s = in(reg) 64usize,
                options(nostack, readonly)
            );
        }
        asm!(
            "tilestored [{c} + {s}*1], tmm0",
            "tilestored [{c} + {s}*1 + 64], tmm1",
            "tilestored [{h} + {s}*1], tmm2",
            "tilestored [{h} + {s}*1 + 64], tmm3",
            c = in(reg) c, h = in(reg) c.byte_add(16 * stride), s = in(reg) stride,
            options(nostack)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product of the operands rounded to bf16, summed in f64.
    fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let r = |x: f32| widen(round(x)) as f64;
        (0..m * n).map(|ij| (0..k).map(|l| r(a[ij / n * k + l]) * r(b[l * n + ij % n])).sum::<f64>() as f32).collect()
    }

    fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        (0..cols * rows).map(|k| x[(k % rows) * cols + k / rows]).collect()
    }

    /// `a · b` through [`Tiles::multiply`], cut to `m × n`.
    fn product(a: Operand, b: Operand, m: usize, n: usize, tiles: &mut Tiles) -> Vec<f32> {
        let ld = b.panels * EDGE;
        let mut out = vec![f32::NAN; a.panels * EDGE * ld];
        tiles.multiply(a, b, &mut out, ld, false);
        out.chunks(ld).take(m).flat_map(|row| row[..n].to_vec()).collect()
    }

    fn close(got: &[f32], want: &[f32], k: usize, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5 * k as f32 * (1.0 + w.abs()), "{what}: {g} vs {w} (amx: {})", amx());
        }
    }

    #[test]
    fn a_whole_product_over_the_cores_matches_the_rounded_schoolbook_product() {
        for (m, k, n) in [(1, 1, 1), (33, 70, 31), (100, 64, 96), (64, 200, 5), (3, 0, 4)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
            let want = reference(&a, &b, m, k, n);
            close(&matmul(Matrix::row_major(&a, m, k), Matrix::row_major(&b, k, n)), &want, k.max(1), "row-major");
            // Transposed views, as a linear layer's backward pass takes them.
            let (at, bt) = (transpose(&a, m, k), transpose(&b, k, n));
            let got = matmul(Matrix::row_major(&at, k, m).t(), Matrix::row_major(&bt, n, k).t());
            close(&got, &want, k.max(1), "transposed views");
        }
    }

    #[test]
    fn rounding_is_to_nearest_even_and_keeps_specials() {
        assert_eq!(round(1.0), 0x3f80);
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties to the even one (1); 1 + 3·2⁻⁸ rounds up to 1 + 2⁻⁶.
        assert_eq!(widen(round(1.0 + 2f32.powi(-8))), 1.0);
        assert_eq!(widen(round(1.0 + 3.0 * 2f32.powi(-8))), 1.0 + 2f32.powi(-6));
        assert_eq!(widen(round(1.0 + 1.1 * 2f32.powi(-8))), 1.0 + 2f32.powi(-7));
        assert_eq!(widen(round(-2.5)), -2.5);
        assert_eq!(widen(round(f32::INFINITY)), f32::INFINITY);
        assert!(widen(round(f32::NAN)).is_nan());
        // The largest finite f32 rounds to infinity, as in PyTorch.
        assert_eq!(widen(round(f32::MAX)), f32::INFINITY);
    }

    #[test]
    fn products_match_the_rounded_schoolbook_product() {
        let mut tiles = Tiles::new();
        // Sizes with and without whole 32 × 32 blocks, depths across a chunk of packed blocks (64 × 32 = 2,048).
        for (m, k, n) in [(1, 1, 1), (3, 5, 2), (32, 32, 32), (33, 70, 65), (64, 2100, 40), (100, 64, 300), (5, 0, 3)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0 + 1e-3 * (i % 3) as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
            let want = reference(&a, &b, m, k, n);
            let what = format!("{m}×{k}×{n}");
            let (pa, pb) = (Packed::left(Matrix::row_major(&a, m, k)), Packed::right(Matrix::row_major(&b, k, n)));
            close(&product(pa.operand(), pb.operand(), m, n, &mut tiles), &want, k, &what);
            // Operands stored transposed and viewed back pack to the same tiles.
            let (at, bt) = (transpose(&a, m, k), transpose(&b, k, n));
            let (qa, qb) = (Packed::left(Matrix::row_major(&at, k, m).t()), Packed::right(Matrix::row_major(&bt, n, k).t()));
            assert_eq!((qa.data == pa.data, qb.data == pb.data), (true, true), "{what}");
            // A left operand written row by row, and its transpose, are the same tiles as packed ones.
            let mut rows = Scratch::zeros(m, k);
            a.chunks(k.max(1)).take(m).enumerate().for_each(|(i, row)| rows.row_map(i, row, |x| x));
            assert_eq!(rows.data, pa.data, "{what}");
            let mut t = Scratch::zeros(k, m);
            rows.transpose_into(&mut t);
            assert_eq!(t.data, Packed::left(Matrix::row_major(&at, k, m)).data, "{what}");
            // Parts: the product of panels 1.. of a and blocks 1.. of the depth.
            if m > 32 && k > 32 {
                let (a1, b1) = (pa.operand().panels(1, pa.panels - 1).blocks(1, pa.blocks - 1), pb.operand().blocks(1, pb.blocks - 1));
                let a_rest: Vec<f32> = (32..m).flat_map(|i| a[i * k + 32..(i + 1) * k].to_vec()).collect();
                let want = reference(&a_rest, &b[32 * n..], m - 32, k - 32, n);
                close(&product(a1, b1, m - 32, n, &mut tiles), &want, k, &format!("{what}, parts"));
            }
        }
    }

    #[test]
    fn accumulating_adds_to_the_result_and_amx_agrees_with_the_portable_loop() {
        let (m, k, n) = (64, 96, 64);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let (pa, pb) = (Packed::left(Matrix::row_major(&a, m, k)), Packed::right(Matrix::row_major(&b, k, n)));
        let mut out = vec![1.0f32; m * n];
        Tiles::new().multiply(pa.operand(), pb.operand(), &mut out, n, true);
        let want: Vec<f32> = reference(&a, &b, m, k, n).iter().map(|x| x + 1.0).collect();
        close(&out, &want, k, "1 + a·b");
        let mut slow = vec![1.0f32; m * n];
        for (mp, np) in (0..2).flat_map(|i| (0..2).map(move |j| (i, j))) {
            // SAFETY: block (mp, np) of a 64 × 64 buffer.
            unsafe {
                portable_block(
                    pa.operand().panel(mp),
                    pb.operand().panel(np),
                    pa.blocks,
                    slow[(mp * n + np) * EDGE..].as_mut_ptr(),
                    n,
                    true,
                )
            };
        }
        close(&out, &slow, k, "amx vs portable");
    }
}
