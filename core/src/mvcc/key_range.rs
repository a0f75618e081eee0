//! etcd's key-range rules, shared by range, delete, compare and watch:
//! an empty `range_end` names the single key `key`; `range_end = "\0"` means every key
//! at or after `key` (so `key = "\0", range_end = "\0"` is the whole key space);
//! otherwise the range is `[key, range_end)`, empty when `range_end <= key`.

/// True when `k` lies in the range that `key` and `range_end` describe.
pub fn in_range(key: &[u8], range_end: &[u8], k: &[u8]) -> bool {
    match range_end {
        [] => k == key,
        [0] => k >= key,
        end => k >= key && k < end,
    }
}

/// The smallest range end that covers every key starting with `prefix`
/// (etcd's `GetPrefixRangeEnd`): `"\0"` when no such end exists (all bytes `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_key_from_key_and_half_open_span() {
        assert!(in_range(b"a", b"", b"a"));
        assert!(!in_range(b"a", b"", b"ab"));
        assert!(in_range(b"b", b"\0", b"zzz"));
        assert!(!in_range(b"b", b"\0", b"a"));
        assert!(in_range(b"\0", b"\0", b"\0"));
        assert!(in_range(b"a", b"c", b"b"));
        assert!(!in_range(b"a", b"c", b"c"));
        assert!(
            !in_range(b"c", b"a", b"b"),
            "an end before the key is an empty range"
        );
    }

    #[test]
    fn prefix_end_increments_the_last_byte_that_can_be() {
        assert_eq!(prefix_end(b"foo"), b"fop");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }
}
