//! Golden transcripts of the lessor, one file per story under `testdata/lease/`.
//!
//! Each block of a file is a command line, a `----` line, and the expected
//! rendering, ended by a blank line; `#` lines between blocks are comments. The
//! harness plays a small cluster: every member holds a [`Lessor`]; replicated
//! operations (grant, revoke, attach, detach, checkpoints) are applied to every
//! member, as raft would after commit; leader-only ones go to the leader. Time is
//! explicit (`advance`). The files run through the shared datadriven runner
//! (`support/datadriven.rs`): `DETCD_REWRITE=1` rewrites the expected output.
//!
//! Commands:
//! - `cluster members=a,b election-ms=1000 checkpoint-ms=5000 seed=1`
//! - `lead <member>|none [extend-ms=N]`: demote the leader, promote the new one
//!   (extend defaults to the election timeout)
//! - `grant ttl=N [id=N]` (no id: the leader picks one)
//! - `revoke id=N`, `attach id=N key=K`, `detach id=N key=K`
//! - `renew id=N [on=M]`, `ttl id=N [keys] [on=M]`, `leases [on=M]`
//! - `advance ms=N [step-ms=500] [checkpoints=apply|drop] [revoke=true|false]`
//! - `state`: every member's view of every lease
//! - `restore from=M to=M`: snapshot one member's lessor into another

#[allow(dead_code)]
#[path = "support/datadriven.rs"]
mod datadriven;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use datadriven::run_file;
use detcd_core::lease::{Checkpoint, Lessor, LessorConfig};
use detcd_core::rng::Rng;

struct Cluster {
    members: BTreeMap<String, Lessor>,
    leader: Option<String>,
    now_ms: u64,
    election_ms: u64,
}

impl Cluster {
    fn new(args: &Args) -> (Cluster, String) {
        let names = args.get("members").unwrap_or("a");
        let election_ms = args.u64_or("election-ms", 1000);
        let mut config = LessorConfig::new(election_ms);
        config.checkpoint_interval_ms = args.u64_or("checkpoint-ms", 5000);
        let mut seed_rng = Rng::new(args.u64_or("seed", 1));
        let members = names
            .split(',')
            .map(|name| (name.to_string(), Lessor::new(config.clone(), seed_rng.fork())))
            .collect();
        let out = format!(
            "members {names}; ttl min {}s; checkpoint every {}ms",
            config.ttl_min_s, config.checkpoint_interval_ms
        );
        (
            Cluster {
                members,
                leader: None,
                now_ms: 0,
                election_ms,
            },
            out,
        )
    }

    fn member(&mut self, args: &Args) -> Result<&mut Lessor, String> {
        let name = match args.get("on") {
            Some(name) => name.to_string(),
            None => self.leader.clone().ok_or("no leader")?,
        };
        self.members
            .get_mut(&name)
            .ok_or_else(|| format!("no member {name}"))
    }

    fn apply_checkpoint(&mut self, checkpoint: Checkpoint) {
        for lessor in self.members.values_mut() {
            lessor.apply_checkpoint(checkpoint);
        }
    }

    /// Applies a replicated operation everywhere; members must agree on the result.
    fn replicate<T: PartialEq + std::fmt::Debug>(&mut self, mut op: impl FnMut(&mut Lessor) -> T) -> T {
        let mut results = self.members.values_mut().map(&mut op);
        let first = results.next().expect("a cluster has members");
        for other in results {
            assert_eq!(first, other, "members disagree on a replicated operation");
        }
        first
    }

    fn run(&mut self, cmd: &str, args: &Args) -> Result<String, String> {
        let now = self.now_ms;
        let out = match cmd {
            "lead" => {
                let target = args.positional().ok_or("lead needs a member")?.to_string();
                let extend = args.u64_or("extend-ms", self.election_ms);
                if let Some(old) = self.leader.take() {
                    self.members.get_mut(&old).expect("leader is a member").demote();
                }
                if target == "none" {
                    format!("t={now} no leader")
                } else {
                    let lessor = self
                        .members
                        .get_mut(&target)
                        .ok_or_else(|| format!("no member {target}"))?;
                    lessor.promote(now, extend);
                    self.leader = Some(target.clone());
                    format!("t={now} {target} leads (extend {extend}ms)")
                }
            }
            "grant" => {
                let ttl = args.i64("ttl")?;
                let id = match args.get("id") {
                    Some(_) => args.i64("id")?,
                    None => self.member(args)?.choose_id(None),
                };
                match self.replicate(|l| l.grant(id, ttl, now)) {
                    Ok(g) => format!("granted id={} ttl={}s", g.id, g.ttl_s),
                    Err(e) => format!("error: {e}"),
                }
            }
            "revoke" => {
                let id = args.i64("id")?;
                match self.replicate(|l| l.revoke(id)) {
                    Ok(keys) => format!("revoked id={id} keys={}", render_keys(&keys)),
                    Err(e) => format!("error: {e}"),
                }
            }
            "attach" | "detach" => {
                let id = args.i64("id")?;
                let key = args.get("key").ok_or("missing key")?.as_bytes().to_vec();
                let result = self.replicate(|l| {
                    if cmd == "attach" {
                        l.attach(id, &key)
                    } else {
                        l.detach(id, &key)
                    }
                });
                match result {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("error: {e}"),
                }
            }
            "renew" => {
                let id = args.i64("id")?;
                match self.member(args)?.renew(id, now) {
                    Ok(renewal) => {
                        let mut out = format!("ttl={}s", renewal.ttl_s);
                        if let Some(cp) = renewal.checkpoint {
                            self.apply_checkpoint(cp);
                            write!(out, "; checkpoint id={} remaining={}s", cp.id, cp.remaining_ttl_s)
                                .unwrap();
                        }
                        out
                    }
                    Err(e) => format!("error: {e}"),
                }
            }
            "ttl" => {
                let id = args.i64("id")?;
                match self.member(args)?.time_to_live(id, args.has("keys"), now) {
                    Ok(t) => {
                        let mut out = format!("id={} ttl={}s granted={}s", t.id, t.ttl_s, t.granted_ttl_s);
                        if args.has("keys") {
                            write!(out, " keys={}", render_keys(&t.keys)).unwrap();
                        }
                        out
                    }
                    Err(e) => format!("error: {e}"),
                }
            }
            "leases" => format!("{:?}", self.member(args)?.leases()),
            "advance" => self.advance(args)?,
            "state" => self.state(),
            "restore" => {
                let from = args.get("from").ok_or("missing from")?;
                let to = args.get("to").ok_or("missing to")?.to_string();
                let source = self.members.get(from).ok_or("no such member")?;
                let bytes = source.to_bytes();
                let restored = Lessor::from_bytes(source.config().clone(), Rng::new(7), &bytes)
                    .map_err(|e| e.to_string())?;
                assert_eq!(restored.to_bytes(), bytes, "snapshot round trip");
                self.members.insert(to.clone(), restored);
                format!("{to} restored from {from} ({} bytes)", bytes.len())
            }
            other => return Err(format!("unknown command {other}")),
        };
        for lessor in self.members.values() {
            lessor.check_invariants();
        }
        Ok(out)
    }

    fn advance(&mut self, args: &Args) -> Result<String, String> {
        let total = args.u64("ms")?;
        let step = args.u64_or("step-ms", 500);
        let apply = args.get("checkpoints").unwrap_or("apply") == "apply";
        let revoke = args.get("revoke").unwrap_or("true") == "true";
        let end = self.now_ms + total;
        let mut out = String::new();
        while self.now_ms < end {
            self.now_ms = (self.now_ms + step).min(end);
            let now = self.now_ms;
            let Some(leader) = self.leader.clone() else {
                continue;
            };
            let lessor = self.members.get_mut(&leader).expect("leader is a member");
            let checkpoints = lessor.checkpoints_due(now);
            let expired = lessor.expired(now);
            for cp in checkpoints {
                let fate = if apply { "" } else { " (dropped)" };
                writeln!(
                    out,
                    "t={now} checkpoint id={} remaining={}s{fate}",
                    cp.id, cp.remaining_ttl_s
                )
                .unwrap();
                if apply {
                    self.apply_checkpoint(cp);
                }
            }
            for id in expired {
                writeln!(out, "t={now} expired id={id}").unwrap();
                if revoke {
                    let keys = self.replicate(|l| l.revoke(id)).map_err(|e| e.to_string())?;
                    writeln!(out, "t={now} revoked id={id} keys={}", render_keys(&keys)).unwrap();
                }
            }
        }
        write!(out, "now t={}", self.now_ms).unwrap();
        Ok(out)
    }

    fn state(&self) -> String {
        let mut out = String::new();
        for (name, lessor) in &self.members {
            let role = if lessor.is_primary() {
                "primary"
            } else {
                "follower"
            };
            write!(out, "{name} ({role}):").unwrap();
            if lessor.leases().is_empty() {
                out.push_str(" no leases");
            }
            for id in lessor.leases() {
                let (ttl, remaining) = lessor.ttls_s(id).expect("listed");
                write!(out, "\n  id={id} ttl={ttl}s checkpointed={remaining}s").unwrap();
                if let Some(expiry) = lessor.expiry_ms(id) {
                    write!(out, " expires t={expiry}").unwrap();
                }
            }
            out.push('\n');
        }
        out.trim_end().to_string()
    }
}

fn render_keys(keys: &[Vec<u8>]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    format!("[{}]", keys.join(", "))
}

/// The `word key=value key` arguments after the command name.
struct Args(Vec<(String, Option<String>)>);

impl Args {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    fn positional(&self) -> Option<&str> {
        self.0.iter().find(|(_, v)| v.is_none()).map(|(k, _)| k.as_str())
    }

    fn i64(&self, key: &str) -> Result<i64, String> {
        let v = self.get(key).ok_or_else(|| format!("missing {key}"))?;
        v.parse().map_err(|_| format!("bad {key}: {v}"))
    }

    fn u64(&self, key: &str) -> Result<u64, String> {
        let v = self.get(key).ok_or_else(|| format!("missing {key}"))?;
        v.parse().map_err(|_| format!("bad {key}: {v}"))
    }

    fn u64_or(&self, key: &str, default: u64) -> u64 {
        self.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
    }
}

/// Runs one transcript through the shared datadriven runner: `cluster` starts
/// the cluster the later commands run against.
fn run_transcript(path: &Path) {
    let mut cluster: Option<Cluster> = None;
    run_file(path, |cmd| {
        let args = Args(
            cmd.positional
                .iter()
                .map(|p| (p.clone(), None))
                .chain(cmd.keyed.iter().map(|(k, v)| (k.clone(), Some(v.clone()))))
                .collect(),
        );
        if cmd.name == "cluster" {
            let (c, out) = Cluster::new(&args);
            cluster = Some(c);
            return out;
        }
        let c = cluster
            .as_mut()
            .unwrap_or_else(|| panic!("{}: cluster first", path.display()));
        c.run(&cmd.name, &args)
            .unwrap_or_else(|e| format!("harness error: {e}"))
    });
}

fn transcripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/lease");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata/lease exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn lease_transcripts() {
    let files = transcripts();
    assert!(!files.is_empty(), "no transcripts found");
    for f in &files {
        run_transcript(f);
    }
}
