//! Golden transcript tests for core::raft: every `core/testdata/raft/*.txt` file is
//! a scenario run against a simulated in-memory cluster (see `support`). Set
//! `DETCD_REWRITE=1` to accept new outputs, then review the diff like code.

mod support;

use std::path::PathBuf;

use support::datadriven::run_file;
use support::script::run;
use support::Cluster;

#[test]
fn golden_transcripts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/raft");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata/raft exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files in {}", dir.display());
    for f in files {
        let mut cluster = Cluster::new();
        run_file(&f, |cmd| run(&mut cluster, cmd));
    }
}
