//! Writes the seed corpus of the `wal_decode` fuzz target:
//! `cargo run -p detcd-io --example gen_wal_corpus -- fuzz/corpus/wal_decode`.
//! Valid WALs, torn ones, corrupt ones, each a few KiB, all from fixed inputs so
//! rerunning gives the same bytes.

use std::path::PathBuf;

use detcd_core::wal::{Encoder, Record};
use detcd_proto::raftpb::{Entry, HardState};
use detcd_proto::walpb::Snapshot;

fn segment(records: &[Record], size: usize, start_crc: u32) -> Vec<u8> {
    let mut encoder = Encoder::new(start_crc);
    let mut bytes = Vec::new();
    encoder.begin_segment(&mut bytes);
    for record in records {
        encoder.append(record, &mut bytes).expect("encode");
    }
    bytes.resize(size.max(bytes.len()), 0);
    bytes
}

fn entries(from: u64, to: u64, data_bytes: usize) -> Vec<Record> {
    (from..=to)
        .map(|index| {
            Record::Entry(Entry {
                r#type: 0,
                term: 1,
                index,
                data: vec![(index % 251) as u8; data_bytes],
            })
        })
        .collect()
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus/wal_decode".into()),
    );
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    let mut base = vec![Record::Metadata(b"member-1".to_vec())];
    base.extend(entries(1, 8, 40));
    base.push(Record::HardState(HardState {
        term: 1,
        vote: 1,
        commit: 6,
    }));
    base.push(Record::Snapshot(Snapshot {
        index: 4,
        term: 1,
        conf_state: None,
    }));
    base.extend(entries(9, 10, 700));
    let valid = segment(&base, 4096, 0);
    let used = valid.iter().rposition(|&b| b != 0).unwrap() + 1;
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("valid-small", segment(&base[..3], 0, 0)),
        ("valid-padded", valid.clone()),
        ("valid-empty-preallocated", vec![0; 1024]),
        (
            "valid-chained-start",
            segment(&entries(20, 24, 9), 1024, 0xdead_beef),
        ),
    ];
    let mut torn_cut = valid[..used - 100].to_vec();
    torn_cut.resize(4096, 0);
    files.push(("torn-cut-mid-record", torn_cut));
    files.push(("torn-truncated-file", valid[..used - 5].to_vec()));
    let mut torn_sector = valid.clone();
    let sector = (used / 512 - 1) * 512;
    torn_sector[sector..sector + 512].fill(0);
    files.push(("torn-zero-sector", torn_sector));
    let mut flipped = valid.clone();
    flipped[200] ^= 1;
    files.push(("corrupt-flipped-byte", flipped));
    let mut bad_length = valid.clone();
    bad_length[7] = 0x83;
    files.push(("corrupt-length-word", bad_length));
    let mut after_end = valid.clone();
    after_end[used + 64] = 9;
    files.push(("corrupt-data-after-end", after_end));
    let mut garbage: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    garbage[..64].copy_from_slice(&valid[..64]);
    files.push(("corrupt-garbage-tail", garbage));
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write corpus file");
    }
}
