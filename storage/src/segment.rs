//! WAL segment file names.

/// `%016x-%016x.wal`: the segment's sequence number and the index of the first
/// entry it was cut for (etcd's naming; the first file is all zeros).
pub(crate) fn segment_file_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

/// Parses a segment file name; `None` when `name` does not end in `.wal`,
/// `Some(Err)` when it does but is malformed.
pub(crate) fn parse_segment_name(name: &str) -> Option<Result<(u64, u64), ()>> {
    let stem = name.strip_suffix(".wal")?;
    let parsed = (|| {
        let (seq, index) = stem.split_once('-')?;
        if seq.len() != 16 || index.len() != 16 {
            return None;
        }
        Some((
            u64::from_str_radix(seq, 16).ok()?,
            u64::from_str_radix(index, 16).ok()?,
        ))
    })();
    Some(parsed.ok_or(()))
}
