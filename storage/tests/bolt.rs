//! The bbolt writer and reader: what is written reads back, in order, whatever the
//! sizes (inline buckets, many pages, branch levels, values over a page); damage
//! is an error, never a panic.

use std::collections::BTreeMap;
use std::io::Cursor;

use detcd_storage::bolt::{BoltError, BoltReader, BoltWriter, PAGE_BYTES};
use proptest::prelude::*;

type Buckets = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

fn write(buckets: &Buckets) -> Vec<u8> {
    let mut w = BoltWriter::new(Cursor::new(Vec::new())).unwrap();
    // Written in reverse name order: the writer sorts the root bucket itself.
    for (name, keys) in buckets.iter().rev() {
        w.begin_bucket(name).unwrap();
        for (k, v) in keys {
            w.put(k, v).unwrap();
        }
        w.end_bucket().unwrap();
    }
    let (out, size) = w.finish().unwrap();
    let bytes = out.into_inner();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(bytes.len() % PAGE_BYTES, 0);
    bytes
}

fn read(bytes: Vec<u8>) -> Result<Buckets, BoltError> {
    let r = BoltReader::open(bytes)?;
    let mut out = Buckets::new();
    for name in r.buckets()? {
        let mut keys = BTreeMap::new();
        let mut last: Option<Vec<u8>> = None;
        r.for_each(&name, &mut |k, v| {
            assert!(last.as_deref().is_none_or(|l| l < k), "keys come in order");
            last = Some(k.to_vec());
            keys.insert(k.to_vec(), v.to_vec());
            Ok(())
        })?;
        out.insert(name, keys);
    }
    Ok(out)
}

fn buckets_strategy() -> impl Strategy<Value = Buckets> {
    let value = prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::collection::vec(any::<u8>(), 0..3 * PAGE_BYTES),
    ];
    let keys = proptest::collection::btree_map(proptest::collection::vec(any::<u8>(), 1..40), value, 0..400);
    proptest::collection::btree_map(proptest::collection::vec(b'a'..=b'z', 1..12), keys, 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn what_is_written_reads_back(buckets in buckets_strategy()) {
        let bytes = write(&buckets);
        prop_assert_eq!(read(bytes).unwrap(), buckets);
    }

    #[test]
    fn damage_is_an_error_or_a_readable_file_never_a_panic(
        buckets in buckets_strategy(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = write(&buckets);
        let mut flipped = bytes.clone();
        for (at, bits) in flips {
            let i = at.index(flipped.len());
            flipped[i] ^= bits | 1;
        }
        let _ = read(flipped);
        let mut cut_short = bytes;
        cut_short.truncate(cut.index(cut_short.len()));
        let _ = read(cut_short);
    }
}

#[test]
fn a_large_bucket_gets_branch_levels_and_reads_back() {
    let keys: BTreeMap<Vec<u8>, Vec<u8>> = (0u64..60_000)
        .map(|i| {
            (
                i.to_be_bytes().to_vec(),
                vec![(i % 251) as u8; (i % 300) as usize],
            )
        })
        .collect();
    let buckets: Buckets = [(b"key".to_vec(), keys), (b"meta".to_vec(), BTreeMap::new())].into();
    let bytes = write(&buckets);
    assert_eq!(read(bytes).unwrap(), buckets);
}

#[test]
fn keys_out_of_order_are_refused() {
    let mut w = BoltWriter::new(Cursor::new(Vec::new())).unwrap();
    w.begin_bucket(b"key").unwrap();
    w.put(b"b", b"").unwrap();
    assert!(w.put(b"a", b"").is_err());
    assert!(w.put(b"b", b"").is_err());
    assert!(w.begin_bucket(b"meta").is_err(), "one bucket at a time");
}

#[test]
fn a_file_without_meta_pages_is_an_invalid_database() {
    let err = BoltReader::open(vec![0u8; 4 * PAGE_BYTES]).unwrap_err();
    assert!(matches!(err, BoltError::InvalidDatabase(_)), "{err}");
    assert!(BoltReader::open(Vec::new()).is_err());
}
