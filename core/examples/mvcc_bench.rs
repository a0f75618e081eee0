//! Throughput and memory of the pure MVCC store.
//!
//! `cargo run --release -p detcd-core --example mvcc_bench`
//! Prints puts/s, single-key ranges/s, and the heap bytes per key of a store holding
//! 1,000,000 keys with 256-byte values, measured by a counting global allocator.

// The counting allocator must implement the unsafe `GlobalAlloc` trait.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use detcd_core::mvcc::{Store, StoreConfig};
use detcd_proto::etcdserverpb::{PutRequest, RangeRequest};

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const KEYS: usize = 1_000_000;
const VALUE_BYTES: usize = 256;
const RANGES: usize = 1_000_000;

fn key(i: usize) -> Vec<u8> {
    format!("/registry/pods/ns-{:03}/pod-{:08}", i % 997, i).into_bytes()
}

fn main() {
    let no_lease = |_: i64| false;
    let value = vec![b'v'; VALUE_BYTES];
    let base = LIVE_BYTES.load(Ordering::Relaxed);
    let mut store = Store::new(StoreConfig::default());

    let start = Instant::now();
    for i in 0..KEYS {
        let req = PutRequest {
            key: key(i),
            value: value.clone(),
            ..Default::default()
        };
        store.put(&req, &no_lease).expect("put");
    }
    let put_secs = start.elapsed().as_secs_f64();
    let held = LIVE_BYTES.load(Ordering::Relaxed) - base;
    let key_bytes: usize = (0..KEYS).map(|i| key(i).len()).sum::<usize>() / KEYS;

    let start = Instant::now();
    let mut found = 0;
    for i in 0..RANGES {
        let req = RangeRequest {
            key: key((i * 7919) % KEYS),
            ..Default::default()
        };
        found += store.range(&req).expect("range").kvs.len();
    }
    let range_secs = start.elapsed().as_secs_f64();
    assert_eq!(found, RANGES);

    // A second revision for every tenth key: what one more revision costs.
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for i in (0..KEYS).step_by(10) {
        let req = PutRequest {
            key: key(i),
            value: value.clone(),
            ..Default::default()
        };
        store.put(&req, &no_lease).expect("put");
    }
    let per_rev = (LIVE_BYTES.load(Ordering::Relaxed) - before) as f64 / (KEYS / 10) as f64;

    println!("keys: {KEYS}, key bytes (mean): {key_bytes}, value bytes: {VALUE_BYTES}");
    println!("puts/s:   {:.0}", KEYS as f64 / put_secs);
    println!(
        "ranges/s: {:.0} (single key, point lookups)",
        RANGES as f64 / range_secs
    );
    println!(
        "heap bytes per key (1 revision): {:.1}",
        held as f64 / KEYS as f64
    );
    println!(
        "  of which overhead beyond key + value: {:.1}",
        held as f64 / KEYS as f64 - (key_bytes + VALUE_BYTES) as f64
    );
    println!("heap bytes per extra revision (256-byte value): {per_rev:.1}");
}
