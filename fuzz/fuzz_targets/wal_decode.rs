//! Arbitrary bytes through `core::wal::scan` and `recover`; the body (and its
//! invariants) is `detcd_io::fuzz_support::wal_decode`, which
//! `io-runtime/tests/fuzz_corpus.rs` also runs over the checked-in corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = detcd_io::fuzz_support::wal_decode(data);
});
