//! Panic-free fixed-width field access on byte slices.
//!
//! Every accessor returns `None` when the field does not fit in the slice; callers turn that into a
//! typed error. Nothing here indexes a slice directly.

/// Byte order of the multi-byte fields of a capture file or section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endian {
    Big,
    Little,
}

impl Endian {
    pub(crate) fn u16(self, bytes: [u8; 2]) -> u16 {
        match self {
            Self::Big => u16::from_be_bytes(bytes),
            Self::Little => u16::from_le_bytes(bytes),
        }
    }

    pub(crate) fn u32(self, bytes: [u8; 4]) -> u32 {
        match self {
            Self::Big => u32::from_be_bytes(bytes),
            Self::Little => u32::from_le_bytes(bytes),
        }
    }

    pub(crate) fn u64(self, bytes: [u8; 8]) -> u64 {
        match self {
            Self::Big => u64::from_be_bytes(bytes),
            Self::Little => u64::from_le_bytes(bytes),
        }
    }

    /// Reads a `u16` at `at`, or `None` when it does not fit.
    pub(crate) fn u16_at(self, bytes: &[u8], at: usize) -> Option<u16> {
        array_at(bytes, at).map(|b| self.u16(b))
    }

    /// Reads a `u32` at `at`, or `None` when it does not fit.
    pub(crate) fn u32_at(self, bytes: &[u8], at: usize) -> Option<u32> {
        array_at(bytes, at).map(|b| self.u32(b))
    }

    /// Reads a `u64` at `at`, or `None` when it does not fit.
    pub(crate) fn u64_at(self, bytes: &[u8], at: usize) -> Option<u64> {
        array_at(bytes, at).map(|b| self.u64(b))
    }
}

/// The `N` bytes starting at `at`, or `None` when they do not fit.
pub(crate) fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    bytes.get(at..end)?.try_into().ok()
}

/// Big-endian (network order) `u16` at `at`.
pub(crate) fn be_u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Endian::Big.u16_at(bytes, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_that_do_not_fit_are_none() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(Endian::Big.u32_at(&b, 0), Some(0x0102_0304));
        assert_eq!(Endian::Little.u32_at(&b, 1), Some(0x0504_0302));
        assert_eq!(Endian::Little.u32_at(&b, 2), None);
        assert_eq!(Endian::Big.u64_at(&b, 0), None);
        assert_eq!(be_u16_at(&b, usize::MAX), None);
        assert_eq!(Endian::Little.u16_at(&b, 3), Some(0x0504));
    }
}
