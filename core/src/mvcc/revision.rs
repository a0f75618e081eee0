//! A store revision: `main` is the store-wide counter bumped once per write request,
//! `sub` numbers the changes inside that request (a txn or a multi-key delete).

/// A point in the store's history, ordered by `(main, sub)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// Bytes of a revision as etcd's backend keys it: big-endian main, `_`, big-endian sub.
pub const REVISION_BYTES: usize = 17;

/// The byte etcd appends to a tombstone's backend key.
pub const TOMBSTONE_MARK: u8 = b't';

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// The backend key etcd stores this revision under (18 bytes for a tombstone);
    /// HashKV hashes exactly these bytes, so they must match etcd's.
    pub fn to_bytes(self, tombstone: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(REVISION_BYTES + 1);
        out.extend_from_slice(&self.main.to_be_bytes());
        out.push(b'_');
        out.extend_from_slice(&self.sub.to_be_bytes());
        if tombstone {
            out.push(TOMBSTONE_MARK);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_big_endian_main_underscore_sub() {
        let b = Revision::new(0x0102, 3).to_bytes(false);
        assert_eq!(b.len(), REVISION_BYTES);
        assert_eq!(&b[..8], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(b[8], b'_');
        assert_eq!(b[16], 3);
        assert_eq!(Revision::new(1, 0).to_bytes(true).last(), Some(&b't'));
    }

    #[test]
    fn order_is_main_then_sub() {
        assert!(Revision::new(2, 0) > Revision::new(1, 9));
        assert!(Revision::new(2, 1) > Revision::new(2, 0));
    }
}
