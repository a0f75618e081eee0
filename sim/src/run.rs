//! One seeded run: build the cluster, run the faulty safety phase with the
//! workload, heal, require progress within ten election timeouts (the liveness
//! probe), let the workload run on, stop it, read every key back linearizably,
//! then check the history and the watches, and run etcd's corruption check. The report carries everything `main`
//! prints.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use detcd_core::mutation::ActiveGuard;

use crate::check::history::{KvOp, KvResult, Outcome};
use crate::check::kv::{check_kv, CheckConfig, CheckOutcome};
use crate::cluster::Cluster as _;
use crate::corruption_check;
use crate::lost_writes::{self, Resolved};
use crate::membership::MembershipCounters;
use crate::mutations::Mutations;
use crate::options::Options;
use crate::sim::{Counters, Sim};
use crate::watch_check;

/// Election timeouts within which a healed cluster must serve a write and a read.
pub const LIVENESS_ELECTION_TIMEOUTS: u64 = 10;

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub trace_hash: u64,
    pub trace_events: u64,
    pub counters: Counters,
    pub sim_ms: u64,
    pub wall: Duration,
    pub ops: usize,
    pub ops_ok: u64,
    pub ops_unknown: u64,
    pub ops_failed: u64,
    pub lost_writes: Resolved,
    pub watch_sessions: usize,
    pub watch_events: usize,
    /// The auth workload's user requests: (recorded, served, denied).
    pub auth_user_ops: (usize, usize, usize),
    /// The auth workload's admin: (acknowledged auth off/on changes, bob generations).
    pub auth_admin: (u64, u64),
    /// The v2 workload's counts, one line (`--v2`).
    pub v2_summary: Option<String>,
    /// The Lock and Election workload's counts, one line (`--recipes`).
    pub recipe_summary: Option<String>,
    pub lin_steps: u64,
    pub liveness_ms: Option<u64>,
    pub membership: MembershipCounters,
    pub failure: Option<String>,
}

impl Report {
    pub fn sim_per_real(&self) -> f64 {
        self.sim_ms as f64 / 1000.0 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs `opts` to the end (or the first failure).
pub fn run(opts: &Options, mutations: Mutations) -> Report {
    let started = Instant::now();
    // Core's planted bugs are per thread: active on this (the simulation) thread
    // for the whole run, cleared when the guard drops, even on a panic.
    let _core_mutation = mutations.core().map(ActiveGuard::new);
    let mut sim = Sim::new(opts.clone(), mutations);
    let outcome = catch_unwind(AssertUnwindSafe(|| phases(&mut sim)));
    let mut report = Report {
        seed: opts.seed,
        trace_hash: sim.trace.value(),
        trace_events: sim.trace.events(),
        counters: sim.counters.clone(),
        sim_ms: sim.now_ms(),
        wall: started.elapsed(),
        ops: sim.workload.history.len(),
        ops_ok: sim.workload.ops_ok,
        ops_unknown: sim.workload.ops_unknown,
        ops_failed: sim.workload.ops_failed,
        lost_writes: sim.workload.lost_writes,
        auth_user_ops: sim.workload.auth.as_ref().map_or((0, 0, 0), |a| {
            let (served, denied) = a.history.user_outcomes();
            (a.history.user_ops(), served, denied)
        }),
        auth_admin: sim
            .workload
            .auth
            .as_ref()
            .map_or((0, 0), |a| (a.toggles_ok, a.bob_generations())),
        v2_summary: sim.workload.v2.as_ref().map(|v| v.summary()),
        recipe_summary: sim.workload.recipes.as_ref().map(|r| r.summary()),
        watch_sessions: sim.workload.sessions.len(),
        watch_events: sim.workload.sessions.iter().map(|s| s.events.len()).sum(),
        lin_steps: 0,
        liveness_ms: None,
        membership: sim.membership().clone(),
        failure: sim.failure.clone(),
    };
    match outcome {
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            report
                .failure
                .get_or_insert(format!("at {} ms: panic: {why}", sim.now_ms()));
        }
        Ok((lin_steps, liveness_ms)) => {
            report.lin_steps = lin_steps;
            report.liveness_ms = liveness_ms;
            report.failure = sim.failure.clone();
        }
    }
    report
}

fn phases(sim: &mut Sim) -> (u64, Option<u64>) {
    let opts = sim.opts.clone();
    let election_us = opts.election_timeout_ms() * 1000;
    sim.start_faults();
    sim.start_workload();
    let heal_us = opts.safety_ms * 1000;
    sim.run_until(heal_us);
    sim.heal();
    sim.start_probe();
    sim.run_until(heal_us + LIVENESS_ELECTION_TIMEOUTS * election_us);
    if sim.failure.is_some() {
        return (0, None);
    }
    let probe = sim.workload.probe.clone().unwrap_or_default();
    let liveness_ms = probe.get_ok_us.map(|t| (t - probe.started_us) / 1000);
    if liveness_ms.is_none() {
        sim.fail(format!(
            "liveness: no write and linearizable read within {LIVENESS_ELECTION_TIMEOUTS} election timeouts ({} ms) after healing (write acknowledged: {})",
            LIVENESS_ELECTION_TIMEOUTS * opts.election_timeout_ms(),
            probe.put_ok_us.is_some()
        ));
        return (0, None);
    }
    sim.run_until((heal_us + opts.liveness_ms * 1000).max(sim.now_us));
    // Stop new operations, let the ones in flight end, then read everything back.
    sim.workload.active = false;
    let drain_until =
        sim.now_us + 4 * opts.request_timeout_ms.max(opts.election_timeout_ms()) * 1000 + 4 * election_us;
    while sim.failure.is_none() && sim.workload.inflight() > 0 && sim.now_us < drain_until {
        let step = sim.now_us + election_us;
        sim.run_until(step);
    }
    let reader = sim.workload.add_final_reader(opts.keys);
    sim.schedule_wake_now(reader);
    let final_until = sim.now_us + 20 * election_us + 4 * opts.request_timeout_ms * 1000;
    while sim.failure.is_none() && sim.workload.finals_left() > 0 && sim.now_us < final_until {
        let step = sim.now_us + election_us;
        sim.run_until(step);
    }
    if sim.failure.is_some() {
        return (0, liveness_ms);
    }
    if sim.workload.finals_left() > 0 {
        sim.fail(format!(
            "final reads: {} keys not read back",
            sim.workload.finals_left()
        ));
        return (0, liveness_ms);
    }
    sim.phase = crate::sim::Phase::Done;
    sim.workload.lost_writes = lost_writes::resolve(&mut sim.workload.history, &sim.write_log);
    let report = check_kv(&sim.workload.history, &CheckConfig::default());
    let steps = report.search_steps;
    match report.outcome {
        CheckOutcome::Linearizable => {}
        CheckOutcome::Violation(v) => {
            sim.fail(format!("linearizability violation:\n{v}"));
            return (steps, liveness_ms);
        }
        CheckOutcome::Unknown { keys } => {
            // Out of search budget is not a verdict; say so without failing.
            eprintln!(
                "seed {}: linearizability check ran out of budget on {} keys",
                opts.seed,
                keys.len()
            );
        }
    }
    let mut writes = BTreeMap::new();
    for op in sim.workload.history.operations() {
        let Outcome::Completed { result, .. } = &op.outcome else {
            continue;
        };
        if !result.created_revision() {
            continue;
        }
        let entry = match (&op.op, result) {
            (KvOp::Put { key, value }, KvResult::PutOk { revision }) => {
                (*revision, (key.clone(), Some(value.clone())))
            }
            (KvOp::Delete { key }, KvResult::DeleteOk { revision, .. }) => (*revision, (key.clone(), None)),
            (KvOp::CompareAndSwap { key, new_value, .. }, KvResult::TxnOk { revision, .. }) => {
                (*revision, (key.clone(), Some(new_value.clone())))
            }
            _ => continue,
        };
        writes.insert(entry.0, entry.1);
    }
    if let Err(why) = watch_check::check(&sim.workload.sessions, &writes) {
        sim.fail(format!("watch guarantee broken: {why}"));
        return (steps, liveness_ms);
    }
    check_v2(sim);
    // etcd's periodic corruption check, once, on the quiet cluster; then its verdict.
    corruption_check::periodic(sim);
    if let Err(why) = corruption_check::check(sim) {
        sim.fail(why);
        return (steps, liveness_ms);
    }
    if let Some(recipes) = &sim.workload.recipes {
        if let Err(why) = recipes.history.check(sim.clock_offsets_ms()) {
            sim.fail(format!("recipe check: {why}"));
        }
    }
    if let Some(auth) = &sim.workload.auth {
        let violations = auth.history.check();
        if let Some(first) = violations.first() {
            sim.fail(format!(
                "auth check: {} violation(s); the first: {first}",
                violations.len()
            ));
        }
    }
    (steps, liveness_ms)
}

/// The report as `detcd-sim` prints it.
pub fn render(opts: &Options, mutations: Mutations, report: &Report, verbose: bool) -> String {
    let mut out = String::new();
    if verbose {
        out.push_str(&format!("{opts}\n"));
        out.push_str(&format!("mutation:    {mutations}\n"));
        let c = &report.counters;
        out.push_str(&format!(
            "network:     sent {} delivered {} dropped {} partitioned {} duplicated {} delayed {}; partitions {} one-way cuts {} leader isolations {}\n",
            c.messages_sent,
            c.messages_delivered,
            c.messages_dropped,
            c.messages_partitioned,
            c.messages_duplicated,
            c.messages_delayed,
            c.partitions,
            c.one_way_cuts,
            c.leader_isolations
        ));
        out.push_str(&format!(
            "members:     crashes {} (aimed {}) restarts {} torn tails recovered {} slow fsyncs {} clock jumps {} pauses {} (events held {}) persists {} snapshots saved {} installed {} auto-compactions {} role changes {}\n",
            c.crashes, c.crashes_aimed, c.restarts, c.torn_tails_recovered, c.slow_fsyncs, c.clock_jumps, c.pauses, c.events_held, c.persists, c.snapshots_saved,
            c.snapshots_installed, c.auto_compactions, c.leader_changes
        ));
        if c.snapshot_files_damaged > 0 {
            out.push_str(&format!(
                "snapshots:   files lost or corrupted {}; restarts after that recovered {}, refused {}\n",
                c.snapshot_files_damaged, c.snapshot_damage_recovered, c.snapshot_refusals
            ));
        }
        let m = &report.membership;
        if m.requests > 0 {
            out.push_str(&format!(
                "membership:  operator requests {} retries {}; learners added {} promoted {} members removed {} (leaders {})\n",
                m.requests, m.retries, m.learners_added, m.promoted, m.removed, m.leaders_removed
            ));
        }
        out.push_str(&format!(
            "workload:    {} KV ops recorded; ok {} unknown {} failed {}; lost writes found applied {} not applied {} left unknown {}; watch sessions {} events {}; lin search steps {}\n",
            report.ops,
            report.ops_ok,
            report.ops_unknown,
            report.ops_failed,
            report.lost_writes.applied,
            report.lost_writes.not_applied,
            report.lost_writes.left,
            report.watch_sessions,
            report.watch_events,
            report.lin_steps
        ));
        if opts.auth {
            let (ops, served, denied) = report.auth_user_ops;
            out.push_str(&format!(
                "auth:        {ops} user requests recorded; served {served} permission denied {denied}; auth turned off/on {} times; users bob0..bob{}\n",
                report.auth_admin.0,
                report.auth_admin.1.saturating_sub(1)
            ));
        }
        if let Some(v2) = &report.v2_summary {
            out.push_str(&format!("v2:          {v2}\n"));
        }
        if let Some(recipes) = &report.recipe_summary {
            out.push_str(&format!("recipes:     {recipes}\n"));
        }
        out.push_str(&format!(
            "checks:      {} invariant checks; liveness after heal {}\n",
            c.invariant_checks,
            report
                .liveness_ms
                .map_or("-".to_string(), |ms| format!("{ms} ms"))
        ));
        out.push_str(&format!(
            "speed:       {:.1} simulated s in {:.3} s real = {:.0}x\n",
            report.sim_ms as f64 / 1000.0,
            report.wall.as_secs_f64(),
            report.sim_per_real()
        ));
    }
    out.push_str(&format!("trace-hash: {:016x}\n", report.trace_hash));
    out
}

/// Search steps one v2 key (or the directory tree) may take (as the KV check's budget).
const V2_SEARCH_STEPS_MAX_PER_KEY: u64 = 1_000_000;

/// The v2 checks' verdict: the violations found during the run, then the final
/// store (of the member that applied the most) against the acknowledged writes,
/// then the linearizability of the single-key requests and of the directory tree's.
fn check_v2(sim: &mut Sim) {
    let Some(mut v2) = sim.workload.v2.take() else {
        return;
    };
    let last = sim
        .member_ids()
        .into_iter()
        .filter_map(|id| sim.node(id).map(|n| (n.applied_index(), id)))
        .max();
    if let Some((_, id)) = last {
        let now = sim.wall_ms(id);
        if let Some(node) = sim.node(id) {
            v2.history.final_check(node.v2_store(), now);
        }
    }
    if let Some(first) = v2.history.violations.first() {
        sim.fail(format!(
            "v2 check: {} violation(s); the first: {first}",
            v2.history.violations.len()
        ));
    } else {
        let keys = v2.lin.check(V2_SEARCH_STEPS_MAX_PER_KEY);
        let complete = crate::v2_lost::add_expiries(&mut v2.dir_lin, &v2.events);
        v2.lost = crate::v2_lost::resolve(&mut v2.dir_lin, &v2.events);
        let tree = if complete {
            v2.dir_lin.check(V2_SEARCH_STEPS_MAX_PER_KEY)
        } else {
            // An expiry the log missed would read as a violation: undecided.
            crate::check::v2::V2CheckReport {
                unknown: vec![format!("{} (v2 events missed)", crate::check::v2_dir::DIR)],
                ..Default::default()
            }
        };
        if let Some(why) = keys.violation.as_ref().or(tree.violation.as_ref()) {
            sim.fail(format!("v2 check: not linearizable: {why}"));
        } else if !keys.unknown.is_empty() || !tree.unknown.is_empty() {
            eprintln!(
                "seed {}: v2 linearizability check ran out of budget on {:?}",
                sim.opts.seed,
                [keys.unknown, tree.unknown].concat()
            );
        }
        v2.lin_steps = keys.search_steps + tree.search_steps;
    }
    sim.workload.v2 = Some(v2);
}
