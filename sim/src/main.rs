//! `detcd-sim`: runs seeded simulations of a detcd cluster and checks them.
//!
//! ```text
//! detcd-sim --seed 42                 # one run, every option printed
//! detcd-sim --seed 1 --seeds 1000     # seeds 1..=1000, stops at the first failure
//! detcd-sim --seed 7 --nodes 5 --faults crash,partition --sim-seconds 60
//! detcd-sim --list-mutations
//! cargo run --release -p detcd-sim --features mutations -- --seed 3 --mutation disk-sync-lies
//! ```

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use detcd_sim::mutations::{Mutations, CATALOGUE};
use detcd_sim::options::{FaultSet, Options};
use detcd_sim::run::{render, run};

#[derive(Debug, Parser)]
#[command(
    name = "detcd-sim",
    about = "Deterministic simulation of a detcd cluster under faults"
)]
struct Args {
    /// The seed of the (first) run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run this many seeds, from --seed on; exit non-zero at the first failure.
    #[arg(long)]
    seeds: Option<u64>,
    /// Cluster size (1 to 7); drawn from the seed when absent.
    #[arg(long)]
    nodes: Option<usize>,
    /// Comma list of fault kinds to enable (replaces the swarm draw): partition,
    /// one-way, drop, duplicate, delay, crash, torn, slow-fsync, clock-jump,
    /// membership, pause, snapshot-loss, or all / none.
    #[arg(long)]
    faults: Option<String>,
    /// Length of the faulty phase in simulated seconds (drawn from the seed when absent).
    #[arg(long = "sim-seconds", alias = "steps")]
    sim_seconds: Option<u64>,
    /// Run the auth workload: an admin client grants and revokes permissions while
    /// the other clients mix in requests as a user, checked by the auth checker.
    #[arg(long)]
    auth: bool,
    /// Run the v2 workload (drawn for a quarter of the seeds anyway): a third of
    /// the requests go to the v2 store, checked by the v2 checker.
    #[arg(long)]
    v2: bool,
    /// Run the Lock and Election workload (drawn for a quarter of the seeds
    /// anyway): clients run Lock and Election sessions, checked by the recipe checker.
    #[arg(long)]
    recipes: bool,
    /// Print the mutation names, one per line, and exit.
    #[arg(long)]
    list_mutations: bool,
    /// Plant this bug (needs a build with --features mutations).
    #[arg(long)]
    mutation: Option<String>,
    /// Print only the trace hash line per run (and failures).
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list_mutations {
        // Every planted bug, sim-side and core (core's under core's names); selecting
        // one needs a build with `--features mutations`.
        for m in CATALOGUE {
            println!("{}", m.name);
        }
        return ExitCode::SUCCESS;
    }
    let forced = match args.faults.as_deref().map(FaultSet::parse).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("detcd-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let mutations = match args.mutation.as_deref().map(Mutations::select).transpose() {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => {
            eprintln!("detcd-sim: {e}");
            return ExitCode::from(2);
        }
    };
    if args.nodes.is_some_and(|n| !(1..=7).contains(&n)) {
        eprintln!("detcd-sim: --nodes must be 1 to 7");
        return ExitCode::from(2);
    }
    let count = args.seeds.unwrap_or(1);
    if count > 1 || args.quiet {
        println!("mutation: {mutations}");
    }
    let started = Instant::now();
    let (mut sim_ms, mut wall_s) = (0u64, 0f64);
    for seed in args.seed..args.seed.saturating_add(count) {
        let mut opts = Options::from_seed(seed, args.nodes, forced);
        if let Some(s) = args.sim_seconds {
            opts.safety_ms = s * 1000;
        }
        // The faults and cluster size a planted bug needs to be reachable, unless
        // the command line forced them.
        let mut adjusted = opts.clone();
        mutations.adjust(&mut adjusted);
        if forced.is_none() {
            opts.faults = adjusted.faults;
        }
        if args.nodes.is_none() {
            opts.nodes = adjusted.nodes;
        }
        opts.auth = args.auth || adjusted.auth;
        opts.v2 = args.v2 || adjusted.v2;
        opts.recipes = args.recipes || adjusted.recipes;
        let report = run(&opts, mutations);
        sim_ms += report.sim_ms;
        wall_s += report.wall.as_secs_f64();
        let verbose = !args.quiet && count == 1;
        if args.quiet || count > 1 {
            print!("seed {seed}: ");
        }
        print!(
            "{}",
            render(&opts, mutations, &report, verbose || report.failure.is_some())
        );
        if let Some(why) = &report.failure {
            println!("FAILED seed {seed}: {why}");
            println!("replay: {}", replay_command(&args, seed));
            return ExitCode::FAILURE;
        }
    }
    if count > 1 {
        let minutes = started.elapsed().as_secs_f64() / 60.0;
        println!(
            "{count} seeds passed in {:.1} s ({:.0} seeds/minute, {:.0}x simulated/real)",
            started.elapsed().as_secs_f64(),
            count as f64 / minutes.max(1e-9),
            sim_ms as f64 / 1000.0 / wall_s.max(1e-9)
        );
    }
    ExitCode::SUCCESS
}

fn replay_command(args: &Args, seed: u64) -> String {
    let mut cmd = String::from("cargo run --release -p detcd-sim");
    if args.mutation.is_some() {
        cmd.push_str(" --features mutations");
    }
    cmd.push_str(&format!(" -- --seed {seed}"));
    if let Some(n) = args.nodes {
        cmd.push_str(&format!(" --nodes {n}"));
    }
    if let Some(f) = &args.faults {
        cmd.push_str(&format!(" --faults {f}"));
    }
    if let Some(s) = args.sim_seconds {
        cmd.push_str(&format!(" --sim-seconds {s}"));
    }
    if args.auth {
        cmd.push_str(" --auth");
    }
    if args.v2 {
        cmd.push_str(" --v2");
    }
    if args.recipes {
        cmd.push_str(" --recipes");
    }
    if let Some(m) = &args.mutation {
        cmd.push_str(&format!(" --mutation {m}"));
    }
    cmd
}
