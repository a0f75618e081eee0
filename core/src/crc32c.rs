//! CRC-32C (Castagnoli): the checksum of WAL records, snapshots and HashKV (etcd's
//! `crc32.MakeTable(crc32.Castagnoli)`). One implementation for all of core.
//!
//! Written here because core takes no checksum dependency; a table built at compile
//! time and byte-at-a-time updates are plenty for recovery scans and tests (the
//! production writer may use a hardware-accelerated crate as long as it agrees with
//! [`extend`] on every input, which the test vector pins).
//!
//! [`extend`] works like Go's `crc32.Update`: `extend(extend(0, a), b)` equals
//! `extend(0, a ++ b)`, so a chain of records seeded with the previous record's CRC
//! is simply the CRC of everything the chain covered.

/// The Castagnoli polynomial, bit-reversed (the form a right-shifting CRC uses).
const POLYNOMIAL_REFLECTED: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = build_table();

const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = byte as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLYNOMIAL_REFLECTED } else { crc >> 1 };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
}

/// Continues the CRC-32C `crc` (of some earlier bytes; 0 for none) over `data`.
pub fn extend(crc: u32, data: &[u8]) -> u32 {
    // The standard CRC-32C inverts the register before and after; doing both here
    // makes the result chainable.
    let mut register = !crc;
    for &byte in data {
        register = TABLE[((register ^ u32::from(byte)) & 0xFF) as usize] ^ (register >> 8);
    }
    !register
}

/// The CRC-32C of `data`.
pub fn checksum(data: &[u8]) -> u32 {
    extend(0, data)
}

/// A running CRC-32C fed piece by piece, like Go's `hash.Hash32`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Crc32c {
    crc: u32,
}

impl Crc32c {
    pub const fn new() -> Self {
        Crc32c { crc: 0 }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.crc = extend(self.crc, bytes);
    }

    pub fn sum(&self) -> u32 {
        self.crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check value every CRC-32C implementation publishes (RFC 3720, iSCSI).
    #[test]
    fn standard_check_value() {
        assert_eq!(checksum(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn rfc3720_zero_vector_and_streaming() {
        assert_eq!(checksum(&[0u8; 32]), 0x8A91_36AA);
        let mut c = Crc32c::new();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.sum(), checksum(b"123456789"));
    }

    #[test]
    fn empty_input_leaves_the_crc_alone() {
        assert_eq!(checksum(b""), 0);
        assert_eq!(extend(0xDEAD_BEEF, b""), 0xDEAD_BEEF);
    }

    /// RFC 3720 appendix B.4: 32 bytes of zeros and of 0xFF.
    #[test]
    fn rfc3720_vectors() {
        assert_eq!(checksum(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(checksum(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0u8..32).collect();
        assert_eq!(checksum(&ascending), 0x46DD_794E);
    }

    #[test]
    fn chaining_equals_concatenation() {
        let data = b"the quick brown fox jumps over the lazy dog";
        for split in 0..=data.len() {
            let (a, b) = data.split_at(split);
            assert_eq!(extend(extend(0, a), b), checksum(data));
        }
    }
}
