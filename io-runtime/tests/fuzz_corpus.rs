//! Runs every file of the `wal_decode` fuzz corpus through the fuzz target's body
//! (no nightly needed), and checks the seed files decode as their names say.

use std::path::PathBuf;

use detcd_io::fuzz_support::wal_decode;

#[test]
fn every_corpus_file_decodes_without_panicking_and_as_named() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/wal_decode");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "corpus has {} files", files.len());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let summary = wal_decode(&bytes);
        let name = path.file_name().unwrap().to_str().unwrap();
        let expected = ["valid", "torn", "corrupt"]
            .into_iter()
            .find(|p| name.starts_with(p));
        match expected {
            Some("valid") => assert_eq!(summary.end, "clean", "{name}: {summary:?}"),
            Some("torn") => assert_eq!(summary.end, "torn", "{name}: {summary:?}"),
            Some("corrupt") => assert_eq!(summary.end, "corrupt", "{name}: {summary:?}"),
            _ => {} // files the fuzzer added
        }
    }
}

#[test]
fn prefixes_and_bit_flips_of_a_valid_wal_never_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/wal_decode");
    let valid = std::fs::read(dir.join("valid-padded")).unwrap();
    for cut in (0..valid.len()).step_by(7) {
        wal_decode(&valid[..cut]);
    }
    for at in (0..valid.len()).step_by(3) {
        let mut flipped = valid.clone();
        flipped[at] ^= 1 << (at % 8);
        wal_decode(&flipped);
    }
}
