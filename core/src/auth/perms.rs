//! Key-range permission arithmetic: whether a user's permissions (the union of
//! the ranges of its roles) cover a key or a whole range, as etcd's
//! `range_perm_cache.go` decides it with interval trees.
//!
//! A permission without `range_end` covers its key alone; `range_end` `"\0"`
//! covers every key from `key` on; otherwise `[key, range_end)`. A request for a
//! single key needs one permission containing it; a request for a range needs
//! the union of the permissions to cover all of it.

use detcd_proto::authpb::{permission::Type as PermType, Permission};

/// `[begin, end)`; `end == None` is unbounded.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Interval {
    begin: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    fn of(perm: &Permission) -> Interval {
        let end = match perm.range_end.as_slice() {
            [] => {
                let mut next = perm.key.clone();
                next.push(0);
                Some(next)
            }
            [0] => None,
            end => Some(end.to_vec()),
        };
        Interval {
            begin: perm.key.clone(),
            end,
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.begin.as_slice() <= key && self.end.as_deref().is_none_or(|e| key < e)
    }
}

/// Whether `perm` grants `wanted` (READ or WRITE; READWRITE grants both).
fn grants(perm: &Permission, wanted: PermType) -> bool {
    let have = perm.perm_type();
    have == PermType::Readwrite || have == wanted
}

/// etcd's `isValidPermissionRange`: a key is needed, and a range must not be
/// empty unless it is open-ended (`"\0"`).
pub fn is_valid_permission_range(key: &[u8], range_end: &[u8]) -> bool {
    !key.is_empty() && (range_end.is_empty() || key < range_end || range_end == [0])
}

/// Whether the permissions in `perms` that grant `wanted` cover `key` (when
/// `range_end` is empty) or all of `[key, range_end)` (`"\0"`: to the end).
pub fn covers<'a>(
    perms: impl IntoIterator<Item = &'a Permission>,
    wanted: PermType,
    key: &[u8],
    range_end: &[u8],
) -> bool {
    let mut intervals: Vec<Interval> = perms
        .into_iter()
        .filter(|p| grants(p, wanted))
        .map(Interval::of)
        .collect();
    let end: Option<&[u8]> = match range_end {
        [] => return intervals.iter().any(|i| i.contains(key)),
        [0] => None,
        end => Some(end),
    };
    if end.is_some_and(|e| e <= key) {
        // An empty range reads nothing; etcd's interval check treats it as its
        // start point.
        return intervals.iter().any(|i| i.contains(key));
    }
    intervals.sort();
    // Sweep from `key`: extend the covered prefix with every interval that starts
    // inside it, until it reaches `end` or a gap shows.
    let mut covered_to: Vec<u8> = key.to_vec();
    for i in &intervals {
        if i.begin > covered_to {
            return false;
        }
        match &i.end {
            None => return true,
            Some(e) if *e > covered_to => covered_to = e.clone(),
            Some(_) => {}
        }
        if end.is_some_and(|e| covered_to.as_slice() >= e) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn perm(kind: PermType, key: &[u8], range_end: &[u8]) -> Permission {
        Permission {
            perm_type: kind as i32,
            key: key.to_vec(),
            range_end: range_end.to_vec(),
        }
    }

    #[test]
    fn a_single_key_permission_covers_that_key_only() {
        let p = [perm(PermType::Read, b"foo", b"")];
        assert!(covers(&p, PermType::Read, b"foo", b""));
        assert!(!covers(&p, PermType::Read, b"foo0", b""));
        assert!(!covers(&p, PermType::Write, b"foo", b""));
        assert!(!covers(&p, PermType::Read, b"foo", b"fop"));
    }

    #[test]
    fn adjacent_ranges_cover_their_union() {
        let p = [
            perm(PermType::Readwrite, b"a", b"c"),
            perm(PermType::Write, b"c", b"e"),
        ];
        assert!(covers(&p, PermType::Write, b"a", b"e"));
        assert!(!covers(&p, PermType::Read, b"a", b"e"));
        assert!(covers(&p, PermType::Read, b"b", b"c"));
        assert!(!covers(&p, PermType::Write, b"a", b"e\0"));
    }

    #[test]
    fn from_key_permissions_cover_everything_after() {
        let p = [perm(PermType::Read, b"k", b"\0")];
        assert!(covers(&p, PermType::Read, b"zzz", b""));
        assert!(covers(&p, PermType::Read, b"k", b"\0"));
        assert!(!covers(&p, PermType::Read, b"j", b"\0"));
        let bounded = [perm(PermType::Read, b"k", b"z")];
        assert!(!covers(&bounded, PermType::Read, b"k", b"\0"));
    }

    #[test]
    fn valid_permission_ranges_follow_etcd() {
        assert!(is_valid_permission_range(b"a", b""));
        assert!(is_valid_permission_range(b"a", b"b"));
        assert!(is_valid_permission_range(b"a", b"\0"));
        assert!(!is_valid_permission_range(b"", b""));
        assert!(!is_valid_permission_range(b"b", b"a"));
        assert!(!is_valid_permission_range(b"a", b"a"));
    }

    /// The model: a range is covered when every key in it, of all strings up to
    /// length 2 over a small alphabet, is in some permission.
    fn model_covers(perms: &[Permission], key: &[u8], end: &[u8]) -> bool {
        let alphabet = [b'a', b'b', b'c', b'd'];
        let mut keys: Vec<Vec<u8>> = vec![];
        for x in alphabet {
            keys.push(vec![x]);
            for y in alphabet {
                keys.push(vec![x, y]);
            }
        }
        keys.iter()
            .filter(|k| k.as_slice() >= key && k.as_slice() < end)
            .all(|k| perms.iter().any(|p| Interval::of(p).contains(k)))
    }

    fn word() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'c', b'd']), 1..3)
    }

    proptest! {
        #[test]
        fn covering_a_range_matches_a_key_by_key_model(
            ranges in prop::collection::vec((word(), word()), 0..4),
            key in word(),
            end in word(),
        ) {
            let perms: Vec<Permission> = ranges
                .iter()
                .map(|(a, b)| if a < b { perm(PermType::Read, a, b) } else { perm(PermType::Read, b, a) })
                .collect();
            prop_assume!(key < end);
            // Every gap in a union of such ranges starts at a word of length <= 2
            // over the alphabet, so the model's finite key set sees every gap.
            prop_assert_eq!(covers(&perms, PermType::Read, &key, &end), model_covers(&perms, &key, &end));
        }
    }
}
