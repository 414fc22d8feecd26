//! The Internet checksum (RFC 1071).

/// The one's-complement of the one's-complement sum of `data` taken as big-endian 16-bit words
/// (an odd trailing byte is padded with zero). A header whose checksum field is correct sums to a
/// result of 0 here.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Add `data` to a running 32-bit-folded sum. `data` must have even length unless it is the last
/// chunk.
pub(crate) fn sum(data: &[u8], initial: u64) -> u64 {
    // 32-bit words: 2^16 ≡ 1 in one's-complement arithmetic, so folding their sum gives the sum
    // of the 16-bit words in half the additions.
    let mut acc = initial;
    let mut chunks = data.chunks_exact(4);
    for word in &mut chunks {
        if let [a, b, c, d] = word {
            acc += u64::from(u32::from_be_bytes([*a, *b, *c, *d]));
        }
    }
    match chunks.remainder() {
        [a, b, c] => acc += u64::from(u16::from_be_bytes([*a, *b])) + (u64::from(*c) << 8),
        [a, b] => acc += u64::from(u16::from_be_bytes([*a, *b])),
        [a] => acc += u64::from(*a) << 8,
        _ => {}
    }
    acc
}

/// Fold a running sum into 16 bits (end-around carry).
pub(crate) fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves acc <= 0xffff.
    u16::try_from(acc).unwrap_or(0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of these words is 0xddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn word_size_does_not_change_the_sum() {
        // Against the 16-bit definition, for every length up to 64 and worst-case carries.
        let naive = |data: &[u8]| -> u16 {
            let mut acc = 0u64;
            for w in data.chunks(2) {
                let hi = u64::from(w[0]) << 8;
                acc += hi + w.get(1).map_or(0, |b| u64::from(*b));
            }
            !fold(acc)
        };
        for len in 0..64 {
            for fill in [0x00, 0x01, 0x7f, 0xff] {
                let data: Vec<u8> = (0..len)
                    .map(|i| fill ^ (i as u8).wrapping_mul(37))
                    .collect();
                assert_eq!(
                    internet_checksum(&data),
                    naive(&data),
                    "len {len} fill {fill}"
                );
            }
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(internet_checksum(&[0x12]), internet_checksum(&[0x12, 0x00]));
        assert_eq!(internet_checksum(&[]), 0xffff);
    }
}
