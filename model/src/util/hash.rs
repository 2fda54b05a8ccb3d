//! A stable hash for splits, deduplication and fingerprints.

/// FNV-1a's starting state.
pub const FNV1A_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: a stable hash (the same on every platform and Rust version), unlike `DefaultHasher`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(FNV1A_START, bytes)
}

/// FNV-1a continued from `state` (a previous result, or [`FNV1A_START`]): hashing a stream piece by piece gives the
/// hash of the whole.
pub fn fnv1a_from(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vector() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"abc"), 0xe71f_a219_0541_574b);
        assert_eq!(fnv1a_from(fnv1a(b"a"), b"bc"), fnv1a(b"abc"));
    }
}
