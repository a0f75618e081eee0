//! A bbolt database file, written and read for the subset of the format etcd's
//! snapshot files use: 4096-byte pages, two meta pages with their FNV-64a
//! checksums, a freelist page, branch and leaf pages (with overflow pages for
//! elements larger than a page), and buckets nested in the root bucket, stored on
//! their own pages or inline in their parent's leaf.
//!
//! No maintained Rust crate writes bbolt files (the Go library is the format's only
//! definition), so this is our own, kept to what a snapshot needs: the writer bulk
//! loads buckets from keys in ascending order, bottom-up, never rewriting a page
//! ([`write::BoltWriter`]); the reader checks every offset against the file and
//! refuses damage with a [`BoltError`], never a panic ([`read::BoltReader`]).
//!
//! Layout of a page (integers little-endian, as bbolt writes them on the machines
//! etcd runs on): header `id u64, flags u16, count u16, overflow u32`, then
//! `count` element headers, then the elements' bytes. A leaf element header is
//! `flags u32, pos u32, ksize u32, vsize u32`; a branch element header is
//! `pos u32, ksize u32, pgid u64`; `pos` counts from the element header itself.
//! A bucket's value in its parent is `root pgid u64, sequence u64`, followed, when
//! the root pgid is 0, by the bucket's one leaf page inline.

pub mod read;
pub mod write;

use std::fmt;

pub use read::BoltReader;
pub use write::BoltWriter;

/// The page size of the files written here (bbolt's default on the platforms etcd supports).
pub const PAGE_BYTES: usize = 4096;
/// Bytes of a page header.
pub const PAGE_HEADER_BYTES: usize = 16;
/// Bytes of a leaf or branch element header.
pub const ELEMENT_HEADER_BYTES: usize = 16;
/// Bytes of a bucket header (root pgid, sequence).
pub const BUCKET_HEADER_BYTES: usize = 16;

pub const FLAG_BRANCH: u16 = 0x01;
pub const FLAG_LEAF: u16 = 0x02;
pub const FLAG_META: u16 = 0x04;
pub const FLAG_FREELIST: u16 = 0x10;
/// A leaf element's flag marking its value as a bucket.
pub const LEAF_FLAG_BUCKET: u32 = 0x01;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
/// Bytes of the meta structure, checksum included (56 bytes checksummed).
const META_BYTES: usize = 64;
const META_CHECKSUMMED_BYTES: usize = 56;

/// Why a file was refused as a bbolt database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoltError {
    /// Neither meta page holds a valid meta (bbolt's "invalid database").
    InvalidDatabase(String),
    /// A page or element points outside the file or is malformed.
    Corrupt(String),
}

impl fmt::Display for BoltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoltError::InvalidDatabase(why) => write!(f, "invalid database ({why})"),
            BoltError::Corrupt(why) => write!(f, "corrupt database: {why}"),
        }
    }
}

impl std::error::Error for BoltError {}

/// FNV-1a, 64 bits: the meta page checksum.
pub fn fnv64a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The fields of a meta page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub page_bytes: u32,
    pub root: u64,
    pub root_sequence: u64,
    pub freelist: u64,
    /// Pages in the file (the high-water mark).
    pub pages: u64,
    pub txid: u64,
}

impl Meta {
    /// The meta page `id` holding this meta, checksum included.
    fn to_page(self, id: u64) -> Vec<u8> {
        let mut page = vec![0u8; self.page_bytes as usize];
        put_page_header(&mut page, id, FLAG_META, 0, 0);
        let m = &mut page[PAGE_HEADER_BYTES..PAGE_HEADER_BYTES + META_BYTES];
        m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&VERSION.to_le_bytes());
        m[8..12].copy_from_slice(&self.page_bytes.to_le_bytes());
        // flags (12..16) stay 0.
        m[16..24].copy_from_slice(&self.root.to_le_bytes());
        m[24..32].copy_from_slice(&self.root_sequence.to_le_bytes());
        m[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        m[40..48].copy_from_slice(&self.pages.to_le_bytes());
        m[48..56].copy_from_slice(&self.txid.to_le_bytes());
        let sum = fnv64a(&m[..META_CHECKSUMMED_BYTES]);
        m[56..64].copy_from_slice(&sum.to_le_bytes());
        page
    }

    /// Reads the meta at the start of `page`, checking magic, version and checksum.
    fn from_page(page: &[u8]) -> Result<Meta, String> {
        let m = page
            .get(PAGE_HEADER_BYTES..PAGE_HEADER_BYTES + META_BYTES)
            .ok_or("file too small")?;
        if le_u32(m, 0) != MAGIC {
            return Err("invalid magic".into());
        }
        if le_u32(m, 4) != VERSION {
            return Err("version mismatch".into());
        }
        if le_u64(m, 56) != fnv64a(&m[..META_CHECKSUMMED_BYTES]) {
            return Err("checksum error".into());
        }
        Ok(Meta {
            page_bytes: le_u32(m, 8),
            root: le_u64(m, 16),
            root_sequence: le_u64(m, 24),
            freelist: le_u64(m, 32),
            pages: le_u64(m, 40),
            txid: le_u64(m, 48),
        })
    }
}

fn put_page_header(page: &mut [u8], id: u64, flags: u16, count: u16, overflow: u32) {
    page[0..8].copy_from_slice(&id.to_le_bytes());
    page[8..10].copy_from_slice(&flags.to_le_bytes());
    page[10..12].copy_from_slice(&count.to_le_bytes());
    page[12..16].copy_from_slice(&overflow.to_le_bytes());
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv64a_matches_the_reference_vectors() {
        assert_eq!(fnv64a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv64a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn meta_round_trips_and_a_flipped_bit_is_refused() {
        let meta = Meta {
            page_bytes: PAGE_BYTES as u32,
            root: 7,
            root_sequence: 0,
            freelist: 2,
            pages: 9,
            txid: 3,
        };
        let mut page = meta.to_page(1);
        assert_eq!(Meta::from_page(&page), Ok(meta));
        page[PAGE_HEADER_BYTES + 20] ^= 1;
        assert_eq!(Meta::from_page(&page), Err("checksum error".into()));
    }
}
