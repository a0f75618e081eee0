//! The seed sweep of the default suite, and the determinism check.
//!
//! `DETCD_SIM_SEEDS` sets how many seeds the sweep runs (default 200, each with an
//! 8-second faulty phase: about a minute and a half for the 200 in a debug build on
//! two loaded cores, core and sim being built with opt-level 2) and
//! `DETCD_SIM_FIRST_SEED` where it starts (default 0); the README's long mode raises
//! the count. Any failure fails the sweep, with a replay command for that one seed.
//! About a quarter of the seeds draw the v2 workload (`Options::v2`), so the v2
//! checks run in the sweep at no extra length.

use detcd_sim::mutations::Mutations;
use detcd_sim::options::Options;
use detcd_sim::run::{run, Report};

const SWEEP_SEEDS_DEFAULT: u64 = 200;
const SWEEP_SAFETY_MS: u64 = 8_000;

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
        "DETCD_SIM_FIRST_SEED={seed} DETCD_SIM_SEEDS=1 cargo test --release -p detcd-sim --test sweep seed_sweep \
         (close to: cargo run --release -p detcd-sim -- --seed {seed} --sim-seconds {}; the sweep also shortens \
         the quiet phase and caps clients at 4, see opts())",
        SWEEP_SAFETY_MS / 1000
    )
}

#[test]
fn seed_sweep() {
    let seeds: u64 = std::env::var("DETCD_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SWEEP_SEEDS_DEFAULT);
    let first: u64 = std::env::var("DETCD_SIM_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for seed in first..first + seeds {
        let report: Report = run(&opts(seed), Mutations::NONE);
        if let Some(failure) = report.failure {
            panic!("seed {seed} failed: {failure}\nreplay: {}", replay(seed));
        }
    }
}

/// Snapshots encoded a few dozen bytes per input and, once the state passes 1 KiB,
/// spaced by size: the slices interleave with writes, compactions, conf changes,
/// snapshot installs and crashes, under every check.
#[test]
fn sliced_snapshot_sweep() {
    let (mut saved, mut installed) = (0, 0);
    for seed in 5000..5040 {
        let mut o = opts(seed);
        o.snapshot_count = 20;
        o.snapshot_step_bytes = 48;
        o.snapshot_size_free_bytes = 1024;
        let report: Report = run(&o, Mutations::NONE);
        if let Some(failure) = report.failure {
            panic!("seed {seed} (sliced snapshots) failed: {failure}");
        }
        saved += report.counters.snapshots_saved;
        installed += report.counters.snapshots_installed;
    }
    // Every state is larger than two steps, so each of these spanned inputs.
    assert!(
        saved >= 200 && installed >= 10,
        "snapshots saved {saved}, installed {installed}"
    );
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

/// Seeds that failed a long sweep once, with their full options (`--seed S`).
/// 297: an aimed crash landed while a follower's write replacing its conflicting
/// tail (term 17 entries, replaced by the leader's term 14 entry at index 198) was
/// in flight; the write survived, and the durability self-check took the shorter,
/// older-termed log for lost acknowledged entries.
const REGRESSION_SEEDS: &[u64] = &[297];

#[test]
fn regression_seeds() {
    for &seed in REGRESSION_SEEDS {
        let report = run(&Options::from_seed(seed, None, None), Mutations::NONE);
        if let Some(failure) = report.failure {
            panic!(
                "seed {seed} failed: {failure}\nreplay: cargo run --release -p detcd-sim -- --seed {seed}"
            );
        }
    }
}

/// The auth workload (an admin toggling permissions while the other clients act
/// as a user) under the sweep's faults, checked by the auth checker; the counts
/// show the user was both served and refused, so the check had work to do.
#[test]
fn auth_sweep() {
    let (mut served, mut denied, mut toggles, mut users) = (0, 0, 0, 0);
    for seed in 7000..7016 {
        let mut o = opts(seed);
        o.auth = true;
        let report: Report = run(&o, Mutations::NONE);
        if let Some(failure) = report.failure {
            panic!("seed {seed} (auth) failed: {failure}\nreplay: cargo run --release -p detcd-sim -- --auth --seed {seed}");
        }
        served += report.auth_user_ops.1;
        denied += report.auth_user_ops.2;
        toggles += report.auth_admin.0;
        users += report.auth_admin.1;
    }
    assert!(served >= 100 && denied >= 100, "served {served}, denied {denied}");
    assert!(
        toggles >= 16 && users >= 32,
        "auth off/on {toggles}, bob generations {users}"
    );
}

/// The v2 workload is drawn for about a quarter of the seeds, so the sweep runs
/// the v2 checks on dozens of seeds without lengthening it.
#[test]
fn sweep_draws_the_v2_workload_for_a_quarter_of_seeds() {
    let drawn = (0..SWEEP_SEEDS_DEFAULT).filter(|&seed| opts(seed).v2).count();
    assert!(
        (30..=70).contains(&drawn),
        "{drawn} of {SWEEP_SEEDS_DEFAULT} seeds draw v2"
    );
}
