//! The seed sweep of the default suite, and the determinism check.
//!
//! `DETCD_SIM_SEEDS` sets how many seeds the sweep runs (default 200, each with a
//! 1-second faulty phase so the debug suite stays within minutes); the README's
//! long mode raises it. `DETCD_SIM_STRICT=1` also fails on the known core bugs
//! listed below, which are otherwise reported and skipped until core fixes them.

use detcd_sim::mutations::Mutations;
use detcd_sim::options::Options;
use detcd_sim::run::{run, Report};

const SWEEP_SEEDS_DEFAULT: u64 = 200;
const SWEEP_SAFETY_MS: u64 = 1_000;

/// Failures the simulator found in core, reported to its owners; recognised by
/// what they look like, so a new kind of failure still fails the sweep.
fn known_core_bug(opts: &Options, failure: &str) -> Option<&'static str> {
    if opts.nodes == 1 && failure.contains("linearizability violation") {
        return Some(
            "raft singleton ReadIndex answers at the recovered commit before committing in its term \
             (core/src/raft/protocol.rs leader_read_index): stale read after a single-member restart",
        );
    }
    if failure.contains("watch guarantee broken") && failure.contains("gap") {
        return Some("watch stream misses events (gap), seen on members that installed leader snapshots");
    }
    None
}

fn opts(seed: u64) -> Options {
    let mut o = Options::from_seed(seed, None, None);
    o.safety_ms = SWEEP_SAFETY_MS;
    // A short quiet phase: the probe's ten election timeouts, then the final reads.
    o.liveness_ms = 10 * o.election_timeout_ms() + 200;
    o.clients = o.clients.min(4);
    o
}

fn replay(seed: u64) -> String {
    format!(
        "cargo run --release -p detcd-sim -- --seed {seed} --sim-seconds {} (the sweep also shortens the quiet phase and caps clients at 4; see opts())",
        SWEEP_SAFETY_MS / 1000
    )
}

#[test]
fn seed_sweep() {
    let seeds: u64 = std::env::var("DETCD_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SWEEP_SEEDS_DEFAULT);
    let strict = std::env::var_os("DETCD_SIM_STRICT").is_some();
    let mut known = Vec::new();
    for seed in 0..seeds {
        let o = opts(seed);
        let report: Report = run(&o, Mutations::NONE);
        let Some(failure) = report.failure else { continue };
        match known_core_bug(&o, &failure) {
            Some(bug) if !strict => known.push(format!("seed {seed}: {bug}")),
            _ => panic!("seed {seed} failed: {failure}\nreplay: {}", replay(seed)),
        }
    }
    for k in &known {
        eprintln!("known core bug: {k}");
    }
    eprintln!("{seeds} seeds, {} hit known core bugs", known.len());
}

#[test]
fn same_seed_same_trace_hash() {
    for seed in 1000..1050 {
        let mut o = opts(seed);
        o.safety_ms = 300;
        let a = run(&o, Mutations::NONE);
        let b = run(&o, Mutations::NONE);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} is not deterministic");
        assert_eq!(a.trace_events, b.trace_events);
        assert!(a.trace_events > 0);
    }
}
