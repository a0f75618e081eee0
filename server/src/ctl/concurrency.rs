//! `lock` and `elect`, with etcdctl's arguments, output and exit codes, through the
//! server's Lock and Election services (whose keys are those of etcdctl's client-side
//! recipes, so detcdctl and etcdctl exclude each other).
//!
//! A session is a lease (`--ttl` seconds for lock, 60 for elect, as etcdctl's) kept
//! alive while the command runs. `lock <name>` prints the held key and holds it until
//! SIGINT or SIGTERM; `lock <name> <command...>` runs the command with `ETCD_LOCK_KEY`
//! and `ETCD_LOCK_REV` set and releases the lock when it exits. `elect <name> <proposal>`
//! campaigns, prints the leader key and value once elected and resigns on a signal;
//! `elect -l <name>` prints every leader as it changes. On a signal while waiting, the
//! session's lease is revoked, so nothing is left behind.

use std::time::Duration;

use detcd_proto::etcdserverpb::kv_client::KvClient;
use detcd_proto::etcdserverpb::lease_client::LeaseClient;
use detcd_proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest};
use detcd_proto::etcdserverpb::{RangeRequest, RangeResponse};
use detcd_proto::v3electionpb::election_client::ElectionClient;
use detcd_proto::v3electionpb::{CampaignRequest, LeaderRequest, ResignRequest};
use detcd_proto::v3lockpb::lock_client::LockClient;
use detcd_proto::v3lockpb::{LockRequest, UnlockRequest};
use tokio_stream::StreamExt as _;

use super::args::Parsed;
use super::error::{CtlError, EXIT_BAD_ARGS, EXIT_ERROR};
use super::kv::print_range;
use super::print::Format;
use super::{CtlChannel, Ctx};

/// etcdctl's `--ttl` default for `lock`.
pub const LOCK_TTL_DEFAULT_S: i64 = 10;
/// concurrency's default session TTL (what `elect` uses).
pub const SESSION_TTL_S: i64 = 60;

/// Resolves on the first SIGINT or SIGTERM.
async fn signalled() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// A lease kept alive (every third of its TTL) until dropped or revoked.
struct Session {
    id: i64,
    channel: CtlChannel,
    keepalive: tokio::task::JoinHandle<()>,
}

impl Session {
    async fn new(ctx: &Ctx, channel: CtlChannel, ttl: i64) -> Result<Session, CtlError> {
        let mut lease = LeaseClient::new(channel.clone());
        let granted = ctx
            .call(lease.lease_grant(LeaseGrantRequest { ttl, id: 0 }))
            .await?;
        if !granted.error.is_empty() {
            return Err(CtlError::new(EXIT_ERROR, granted.error));
        }
        let id = granted.id;
        let period = Duration::from_millis(u64::try_from(granted.ttl.max(1)).unwrap_or(1) * 1000 / 3);
        let keepalive = tokio::spawn(async move {
            let requests = tokio_stream::StreamExt::throttle(
                tokio_stream::iter(std::iter::repeat(LeaseKeepAliveRequest { id })),
                period,
            );
            if let Ok(answers) = lease.lease_keep_alive(requests).await {
                let mut answers = answers.into_inner();
                while let Some(Ok(a)) = answers.next().await {
                    if a.ttl <= 0 {
                        break;
                    }
                }
            }
        });
        Ok(Session {
            id,
            channel,
            keepalive,
        })
    }

    /// Stops the keepalives and revokes the lease (what holds the keys goes with it).
    async fn close(self) {
        self.keepalive.abort();
        let mut lease = LeaseClient::new(self.channel.clone());
        let _ = lease.lease_revoke(LeaseRevokeRequest { id: self.id }).await;
    }

    /// Whether the keepalives stopped (the lease expired or was revoked elsewhere).
    fn lost(&self) -> bool {
        self.keepalive.is_finished()
    }
}

/// Reads `key` and prints the answer as `get` does (what etcdctl's lock and elect
/// print once they hold the lock or lead).
async fn print_key(ctx: &mut Ctx, channel: CtlChannel, key: &[u8]) -> Result<(), CtlError> {
    let request = RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    };
    let answer = ctx.call(KvClient::new(channel).range(request)).await?;
    print_range(ctx, &answer, false)
}

/// Waits for a signal or the loss of the session: `true` for a signal.
async fn hold(session: &Session) -> bool {
    let lost = async {
        while !session.lost() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        () = signalled() => true,
        () = lost => false,
    }
}

pub async fn lock(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let Some((name, command)) = p.args.split_first() else {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "lock takes a lock name argument and an optional command to execute",
        ));
    };
    let ttl = p.int("ttl")?.unwrap_or(LOCK_TTL_DEFAULT_S);
    let channel = ctx.channel().await?;
    let session = Session::new(ctx, channel.clone(), ttl).await?;
    let mut locks = LockClient::new(channel.clone());
    let request = LockRequest {
        name: name.clone().into_bytes(),
        lease: session.id,
    };
    let held = tokio::select! {
        held = locks.lock(request) => held,
        () = signalled() => {
            session.close().await;
            return Ok(());
        }
    };
    let held = match held {
        Ok(h) => h.into_inner(),
        Err(s) => {
            session.close().await;
            return Err(CtlError::from_status(&s));
        }
    };
    let key = String::from_utf8_lossy(&held.key).into_owned();
    let outcome = if command.is_empty() {
        // etcdctl reads the key it holds and prints that answer as `get` would.
        print_key(ctx, channel, &held.key).await?;
        if hold(&session).await {
            Ok(())
        } else {
            Err(CtlError::new(EXIT_ERROR, "session expired"))
        }
    } else {
        let revision = held.header.map_or(0, |h| h.revision);
        run_locked(command, &key, revision).await
    };
    let _ = locks.unlock(UnlockRequest { key: held.key }).await;
    session.close().await;
    outcome
}

/// Runs `command` while the lock is held, as etcdctl does: its environment carries the
/// key and revision, its status decides ours.
async fn run_locked(command: &[String], key: &str, revision: i64) -> Result<(), CtlError> {
    let status = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .env("ETCD_LOCK_KEY", key)
        .env("ETCD_LOCK_REV", revision.to_string())
        .status()
        .await
        .map_err(|e| CtlError::new(EXIT_ERROR, format!("exec: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        let how = match status.code() {
            Some(code) => format!("exit status {code}"),
            None => "signal: killed".to_string(),
        };
        Err(CtlError::new(EXIT_ERROR, how))
    }
}

pub async fn elect(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    if p.args.is_empty() || p.args.len() > 2 {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "elect takes one election name argument and an optional proposal argument",
        ));
    }
    if ctx.globals.format == Format::Table {
        return Err(ctx.globals.format.unsupported());
    }
    let name = p.args[0].clone().into_bytes();
    let channel = ctx.channel().await?;
    let mut elections = ElectionClient::new(channel.clone());
    if p.bool("listen")? {
        let mut stream = elections
            .observe(LeaderRequest { name })
            .await
            .map_err(|s| CtlError::from_status(&s))?
            .into_inner();
        loop {
            tokio::select! {
                () = signalled() => return Ok(()),
                next = stream.next() => match next {
                    Some(Ok(leader)) => {
                        // etcdctl prints each leader as a get answer without a count.
                        let answer = RangeResponse {
                            header: leader.header,
                            kvs: leader.kv.into_iter().collect(),
                            more: false,
                            count: 0,
                        };
                        print_range(ctx, &answer, false)?;
                    }
                    _ => return Err(CtlError::new(EXIT_ERROR, "elect: observer lost")),
                },
            }
        }
    }
    let Some(proposal) = p.args.get(1) else {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "no proposal argument but -l not set",
        ));
    };
    let session = Session::new(ctx, channel.clone(), SESSION_TTL_S).await?;
    let request = CampaignRequest {
        name: name.clone(),
        lease: session.id,
        value: proposal.clone().into_bytes(),
    };
    let won = tokio::select! {
        won = elections.campaign(request) => won,
        () = signalled() => {
            session.close().await;
            return Ok(());
        }
    };
    let leader = match won {
        Ok(w) => w.into_inner().leader,
        Err(s) => {
            session.close().await;
            return Err(CtlError::from_status(&s));
        }
    };
    if let Some(mine) = &leader {
        print_key(ctx, channel, &mine.key).await?;
    }
    let signalled = hold(&session).await;
    let _ = elections.resign(ResignRequest { leader }).await;
    session.close().await;
    if signalled {
        Ok(())
    } else {
        Err(CtlError::new(EXIT_ERROR, "elect: session expired"))
    }
}
