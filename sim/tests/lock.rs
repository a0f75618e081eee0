//! The Lock and Election workload under crashes and partitions: clients run Lock
//! and Election sessions through core's recipe machines (the code the server's
//! services drive), and [`detcd_sim::recipe_check`] confirms that no two tenures of
//! one lock, nor two leaderships of one election, overlapped while their leases
//! lived, that Leader named the current leader, and that Proclaim was refused only
//! for a lapsed or resigned leader.

use detcd_sim::mutations::Mutations;
use detcd_sim::options::{FaultKind, FaultSet, Options};
use detcd_sim::run::run;

fn options(seed: u64) -> Options {
    let faults = FaultSet::NONE.with(FaultKind::Crash).with(FaultKind::Partition);
    let mut opts = Options::from_seed(seed, Some(3), Some(faults));
    opts.safety_ms = 10_000;
    opts.recipes = true;
    opts
}

/// The number after `label` in the workload's summary line.
fn count(summary: &str, label: &str) -> u64 {
    let before = summary.split(label).next().unwrap_or_default();
    let number = before.trim_end().rsplit(' ').next().unwrap_or_default();
    number.parse().unwrap_or(0)
}

#[test]
fn lock_and_election_sessions_hold_under_crashes_and_partitions() {
    let (mut locks, mut leaderships) = (0, 0);
    for seed in 1..=4 {
        let report = run(&options(seed), Mutations::NONE);
        assert!(report.failure.is_none(), "seed {seed}: {:?}", report.failure);
        let summary = report.recipe_summary.expect("the recipe workload ran");
        eprintln!("seed {seed}: {summary}");
        locks += count(&summary, "locks and");
        leaderships += count(&summary, "leaderships won");
    }
    assert!(
        locks >= 20 && leaderships >= 10,
        "only {locks} locks and {leaderships} leaderships won: too little progress"
    );
}
