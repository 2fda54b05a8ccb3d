//! Half precision, both ways, in one place: f32 → f16 for shipping checkpoints to the browser (round to nearest
//! even, as `half` and PyTorch do), and f16/bf16 → f32 when loading ours or Hugging Face's (exact).

use safetensors::Dtype;

use crate::error::LoadError;

/// f32 → f16, round to nearest even (what `half` and PyTorch do).
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00; // overflow → ∞
    }
    if e <= 0 {
        if e < -10 {
            return sign; // underflow → ±0
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rounded = (m + half - 1 + ((m >> shift) & 1)) >> shift;
        return sign | rounded as u16;
    }
    let half_mant = mant >> 13;
    let rest = mant & 0x1fff;
    let mut out = (sign as u32) | ((e as u32) << 10) | half_mant;
    if rest > 0x1000 || (rest == 0x1000 && (half_mant & 1) == 1) {
        out += 1; // may carry into the exponent, which is still correct
    }
    out as u16
}

/// Widens a tensor's raw little-endian data to f32 bytes.
pub fn to_f32_bytes(name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<u8>, LoadError> {
    let widen = |f: fn([u8; 2]) -> f32| data.chunks_exact(2).flat_map(|c| f([c[0], c[1]]).to_le_bytes()).collect();
    match dtype {
        Dtype::F32 => Ok(data.to_vec()),
        Dtype::F16 => Ok(widen(|b| f16_to_f32(u16::from_le_bytes(b)))),
        Dtype::BF16 => Ok(widen(|b| f32::from_bits((u16::from_le_bytes(b) as u32) << 16))),
        other => Err(LoadError::Dtype { name: name.to_string(), dtype: format!("{other:?}") }),
    }
}

/// f16 → f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_widens_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }

    #[test]
    fn f32_rounds_to_the_nearest_f16() {
        for (x, h) in
            [(1.0f32, 0x3c00u16), (-2.0, 0xc000), (65504.0, 0x7bff), (1e6, 0x7c00), (2f32.powi(-24), 0x0001), (0.333_333_34, 0x3555)]
        {
            assert_eq!(f32_to_f16(x), h, "{x}");
        }
    }
}
