//! The mutation campaign: every planted bug in the catalogue must be caught.
//!
//! Long mode only: `DETCD_SIM_MUTATIONS=1 cargo test --release -p detcd-sim
//! --features mutations --test mutations -- --nocapture` (otherwise the test says
//! so and returns). `DETCD_SIM_MUTATION=NAME[,NAME]` narrows it to some mutations.
//!
//! For each mutation, seeds 1.. run (options drawn from the seed, plus the faults
//! and cluster size the mutation declares it needs) until the first failure, up
//! to 1000 seeds. A failing seed counts only if the same options pass without the
//! mutation (so a known unmutated failure is never credited to a mutation).
//! Then the unmutated code runs once over seeds 1..=max(seeds used) (on the same
//! threads) and must pass.
#![cfg(feature = "mutations")]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use detcd_sim::mutations::{Mutations, CATALOGUE};
use detcd_sim::options::Options;
use detcd_sim::run::run;

const MAX_SEEDS: u64 = 1000;

#[derive(Debug)]
struct Outcome {
    name: &'static str,
    /// (seed, first line of the failure) of the first seed that caught it.
    caught: Option<(u64, String)>,
    /// Failing seeds that also fail unmutated (not credited).
    discounted: Vec<u64>,
    seeds_run: u64,
    secs: f64,
}

fn options(seed: u64, mutations: Mutations) -> Options {
    let mut opts = Options::from_seed(seed, None, None);
    mutations.adjust(&mut opts);
    opts
}

fn threads() -> usize {
    std::env::var("DETCD_SIM_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

fn campaign(name: &'static str) -> Outcome {
    let started = Instant::now();
    let mutations = Mutations::select(name).expect("catalogued");
    let mut discounted = Vec::new();
    let mut caught = None;
    let mut seeds_run = 0;
    for seed in 1..=MAX_SEEDS {
        seeds_run = seed;
        let opts = options(seed, mutations);
        let report = run(&opts, mutations);
        let Some(why) = report.failure else { continue };
        if run(&opts, Mutations::NONE).failure.is_some() {
            discounted.push(seed);
            continue;
        }
        let first = why.lines().take(2).collect::<Vec<_>>().join(" / ");
        caught = Some((seed, first));
        break;
    }
    Outcome {
        name,
        caught,
        discounted,
        seeds_run,
        secs: started.elapsed().as_secs_f64(),
    }
}

#[test]
fn every_mutation_is_caught_within_1000_seeds() {
    if std::env::var_os("DETCD_SIM_MUTATIONS").is_none() {
        eprintln!("mutation campaign skipped: set DETCD_SIM_MUTATIONS=1 (and use --release) to run it");
        return;
    }
    let only: Option<Vec<String>> = std::env::var("DETCD_SIM_MUTATION")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let names: Vec<&'static str> = CATALOGUE
        .iter()
        .map(|m| m.name)
        .filter(|n| only.as_ref().is_none_or(|o| o.iter().any(|x| x == n)))
        .collect();
    assert!(!names.is_empty(), "no mutation selected");

    // The simulator is single-threaded and core's mutation is per thread: run
    // mutations on parallel threads, each activating its own.
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads().min(names.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&name) = names.get(i) else { break };
                let outcome = campaign(name);
                eprintln!(
                    "{name}: {} ({:.0} s)",
                    outcome
                        .caught
                        .as_ref()
                        .map_or("NOT CAUGHT".to_string(), |(seed, why)| format!(
                            "seed {seed}: {why}"
                        )),
                    outcome.secs
                );
                outcomes.lock().unwrap().push(outcome);
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by_key(|o| names.iter().position(|n| *n == o.name));

    let max_seeds = outcomes.iter().map(|o| o.seeds_run).max().unwrap_or(0);
    let started = Instant::now();
    let next_seed = AtomicU64::new(1);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads().min(max_seeds as usize) {
            s.spawn(|| loop {
                let seed = next_seed.fetch_add(1, Ordering::SeqCst);
                if seed > max_seeds {
                    break;
                }
                let report = run(&Options::from_seed(seed, None, None), Mutations::NONE);
                if let Some(why) = report.failure {
                    let first = why.lines().next().unwrap_or("").to_string();
                    failures.lock().unwrap().push((seed, first));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    let unmutated_failures: Vec<String> = failures
        .iter()
        .map(|(seed, why)| format!("seed {seed}: {why}"))
        .collect();
    let unmutated_secs = started.elapsed().as_secs_f64();

    println!("\n| mutation | seeds to catch | caught by |");
    println!("|---|---|---|");
    for o in &outcomes {
        let (seeds, why) = match &o.caught {
            Some((seed, why)) => (seed.to_string(), why.clone()),
            None => (format!("not caught in {MAX_SEEDS}"), "-".to_string()),
        };
        let why = why.replace('|', "\\|");
        let discounted = if o.discounted.is_empty() {
            String::new()
        } else {
            format!(" (seeds also failing unmutated, not counted: {:?})", o.discounted)
        };
        println!("| {} | {seeds} | {why}{discounted} |", o.name);
    }
    println!(
        "\nunmutated: seeds 1..={max_seeds} (swarm options) in {unmutated_secs:.0} s, {} failures",
        unmutated_failures.len()
    );
    for f in &unmutated_failures {
        println!("  unmutated {f}");
    }

    let missed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.caught.is_none())
        .map(|o| o.name)
        .collect();
    assert!(
        missed.is_empty(),
        "mutations not caught within {MAX_SEEDS} seeds: {missed:?}"
    );
    assert!(
        unmutated_failures.is_empty(),
        "the unmutated code fails seeds the campaign used: {unmutated_failures:?}"
    );
}

/// The auth checker's planted bugs, in every `--features mutations` run (not only
/// the long campaign): each is caught within a few seeds of the auth workload.
#[test]
fn auth_mutations_are_caught_within_five_seeds() {
    for name in [
        "auth-txn-failure-branch-unchecked",
        "auth-range-end-ignored",
        "auth-follower-serializable-unchecked",
    ] {
        let mutations = Mutations::select(name).expect("catalogued");
        let caught = (1..=5).find(|&seed| {
            let opts = options(seed, mutations);
            assert!(opts.auth, "{name} turns the auth workload on");
            run(&opts, mutations)
                .failure
                .is_some_and(|why| why.contains("auth check"))
        });
        assert!(caught.is_some(), "{name} not caught within 5 seeds");
    }
}

/// The v2 checker's planted bugs (a compare-and-swap that ignores prevIndex; a
/// get that expires keys by the member's own clock; an rmdir that removes a
/// directory with children), in every `--features mutations` run: each caught
/// within five seeds of the v2 workload by the v2 linearizability check, while
/// the same options pass unmutated.
#[test]
fn v2_mutations_are_caught_within_five_seeds() {
    for name in [
        "v2-cas-ignores-prev-index",
        "v2-expiry-by-local-clock",
        "v2-rmdir-ignores-children",
    ] {
        let mutations = Mutations::select(name).expect("catalogued");
        let caught = (1..=5).find(|&seed| {
            let opts = options(seed, mutations);
            assert!(opts.v2, "{name} turns the v2 workload on");
            run(&opts, mutations)
                .failure
                .is_some_and(|why| why.contains("v2 check: not linearizable"))
        });
        let seed = caught.unwrap_or_else(|| panic!("{name} not caught within 5 seeds"));
        let opts = options(seed, mutations);
        let unmutated = run(&opts, Mutations::NONE);
        assert!(
            unmutated.failure.is_none(),
            "{name}: seed {seed} fails unmutated: {:?}",
            unmutated.failure
        );
    }
}

/// The planted recipe bug (a Lock that does not wait for the older waiter) is
/// caught by the recipe checker within five seeds of the Lock and Election
/// workload, while the same options pass unmutated.
#[test]
fn recipe_mutation_is_caught_within_five_seeds() {
    let mutations = Mutations::select("lock-ignores-older-waiter").expect("catalogued");
    let caught = (1..=5).find(|&seed| {
        let opts = options(seed, mutations);
        assert!(opts.recipes, "the recipe mutation turns the recipe workload on");
        run(&opts, mutations)
            .failure
            .is_some_and(|why| why.contains("recipe check"))
    });
    let seed = caught.expect("lock-ignores-older-waiter not caught within 5 seeds");
    let opts = options(seed, mutations);
    let unmutated = run(&opts, Mutations::NONE);
    assert!(
        unmutated.failure.is_none(),
        "seed {seed} fails unmutated: {:?}",
        unmutated.failure
    );
}
