//! etcd's corruption checks between members (`server/etcdserver/corrupt.go`):
//!
//! - the initial check (`--experimental-initial-corrupt-check`, gate
//!   `InitialCorruptCheck`): before serving clients, the member asks every peer for its
//!   HashKV at the member's own revision; a peer with the same compact revision and
//!   another hash stops the start-up ("found data inconsistency with peers");
//! - the periodic check (`--experimental-corrupt-check-time`, `--corrupt-check-time`):
//!   the leader does the same every interval and raises the CORRUPT alarm for a
//!   follower whose hash differs, or for itself when a follower is ahead of it; the
//!   cluster then refuses writes as etcd's does (see core's `refused_as_corrupt`).
//!
//! - the compaction hash check (`--experimental-compact-hash-check-enabled`, gate
//!   `CompactHashCheck`, every `--compact-hash-check-time`): the leader compares its
//!   HashKV at its last compaction's revision (the key space as that compaction left
//!   it, the same on every member that applied it) with every voter's; a follower
//!   with the same compact revision and another hash raises the CORRUPT alarm for
//!   member 0 (etcd 3.5 cannot tell which side is wrong, and neither can this check),
//!   and a compaction revision checked on every peer is not checked again.
//!
//! Peers are asked as etcd asks them: `GET /members/hashkv` on their peer URLs, with
//! this member's peer TLS when the URL is https and the cluster ID in
//! `X-Etcd-Cluster-ID` (served by [`detcd_io::transport::peer_http`]). The peer port
//! needs no client credentials, so the checks work while auth is enabled. A peer that
//! cannot be asked is skipped with a warning, as etcd skips it.
//!
//! Test-only fault switch: in debug builds, `DETCD_TEST_FAULT_CORRUPT_HASH=1` in a
//! member's environment makes it report a wrong hash (a planted divergence); release
//! builds have no such switch ([`detcd_io::transport::peer_http::plant_hash_fault`]).

use std::time::Duration;

use detcd_core::node::{Request, Response};
use detcd_io::driver::MemberHandle;
use detcd_io::log::Level;
use detcd_io::transport::conn::{self, SharedPeerTls};
use detcd_io::transport::peer_http::{self, CLUSTER_ID_HEADER, HASHKV_PATH};
use detcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, HashKvRequest, HashKvResponse, Member,
    ResponseHeader,
};
use http_body_util::{BodyExt, Full};

use crate::config::Config;

/// How long the initial check waits for the member to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long asking one peer may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies the fault switch to a HashKV answer this member gives.
pub fn plant(response: &mut HashKvResponse) {
    peer_http::plant_hash_fault(response);
}

/// What the checks need: the member and how to reach its peers.
#[derive(Clone)]
pub struct Checker {
    handle: MemberHandle,
    peer_tls: SharedPeerTls,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").finish_non_exhaustive()
    }
}

/// One peer's answer compared with this member's hash.
#[derive(Debug, PartialEq, Eq)]
enum Finding {
    /// Same compact revision, another hash: the peer diverged.
    PeerDiverged(u64),
    /// The peer is ahead of this member (only meaningful on the leader).
    PeerAhead(u64),
}

/// A HashKVResponse from etcd's JSON (`/members/hashkv`).
fn parse_hashkv(bytes: &[u8]) -> Result<HashKvResponse, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let revision = v["header"]["revision"].as_i64().unwrap_or(0);
    Ok(HashKvResponse {
        header: Some(ResponseHeader {
            revision,
            ..ResponseHeader::default()
        }),
        hash: v["hash"].as_u64().map_or(0, |h| h as u32),
        compact_revision: v["compact_revision"].as_i64().unwrap_or(0),
        hash_revision: v["hash_revision"].as_i64().unwrap_or(0),
    })
}

impl Checker {
    pub fn new(config: &Config, handle: MemberHandle) -> Result<Checker, String> {
        let peer_tls = crate::member::peer_tls(config).map_err(|e| e.to_string())?;
        Ok(Checker { handle, peer_tls })
    }

    /// This member's HashKV at `revision` (0: the current one).
    async fn local_hash(&self, revision: i64) -> Result<HashKvResponse, String> {
        match self
            .handle
            .call_as(
                Request::HashKv(HashKvRequest { revision }),
                peer_http::as_member(),
            )
            .await
        {
            Ok(Response::HashKv(mut h)) => {
                plant(&mut h);
                Ok(h)
            }
            Ok(_) => Err("unexpected answer to HashKV".to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The voters other than this member.
    async fn peers(&self) -> Result<Vec<Member>, String> {
        let members = match self
            .handle
            .call(Request::MemberList(Default::default()))
            .await
            .map_err(|e| e.to_string())?
        {
            Response::MemberList(l) => l.members,
            _ => return Err("unexpected answer to MemberList".to_string()),
        };
        let me = self.handle.member_id();
        Ok(members
            .into_iter()
            .filter(|m| m.id != me && !m.is_learner)
            .collect())
    }

    /// `peer`'s HashKV at `revision`; `None` (with etcd's warning) when it cannot
    /// be asked.
    async fn ask(&self, peer: &Member, revision: i64) -> Option<HashKvResponse> {
        let url = peer.peer_ur_ls.first()?;
        match self.peer_hash(url, revision).await {
            Ok(h) => Some(h),
            Err(e) => {
                detcd_io::log!(
                    Level::Warn,
                    "detcd",
                    "failed hash kv request remote-peer-id={:x} requested-revision={revision} remote-peer-endpoint={url} error={e}",
                    peer.id
                );
                None
            }
        }
    }

    /// Compares this member's hash with every peer's at the same revision.
    async fn compare(&self) -> Result<(HashKvResponse, Vec<Finding>), String> {
        let mine = self.local_hash(0).await?;
        let revision = mine.header.as_ref().map_or(0, |h| h.revision);
        let mut findings = Vec::new();
        for peer in self.peers().await? {
            let Some(theirs) = self.ask(&peer, revision).await else {
                continue;
            };
            let their_revision = theirs.header.as_ref().map_or(0, |h| h.revision);
            if theirs.compact_revision == mine.compact_revision && theirs.hash != mine.hash {
                findings.push(Finding::PeerDiverged(peer.id));
            } else if their_revision > revision && theirs.compact_revision > mine.compact_revision {
                findings.push(Finding::PeerAhead(peer.id));
            }
        }
        Ok((mine, findings))
    }

    async fn peer_hash(&self, url: &str, revision: i64) -> Result<HashKvResponse, String> {
        tokio::time::timeout(PEER_TIMEOUT, self.peer_hash_now(url, revision))
            .await
            .map_err(|_| "timed out".to_string())?
    }

    /// etcd's `getPeerHashKVHTTP`: the peer's `/members/hashkv` answer.
    async fn peer_hash_now(&self, url: &str, revision: i64) -> Result<HashKvResponse, String> {
        let addr = detcd_io::transport::parse_url(url).map_err(|e| e.to_string())?;
        let stream = conn::dial(url, &addr, &self.peer_tls)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Full<bytes::Bytes>>(
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let host = url.split("://").nth(1).unwrap_or(url).trim_end_matches('/');
        let body = format!(r#"{{"revision":{revision}}}"#);
        let request = axum::http::Request::get(HASHKV_PATH)
            .header(axum::http::header::HOST, host)
            .header(CLUSTER_ID_HEADER, format!("{:x}", self.handle.cluster_id()))
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&bytes).trim_end()
            ));
        }
        parse_hashkv(&bytes)
    }

    /// The initial check: `Err` with etcd's message when a peer diverged. It first
    /// waits (up to [`CATCH_UP_TIMEOUT`]) until a linearizable read answers, so that the
    /// member has applied what it recovered and knows its peers' client URLs.
    pub async fn initial(&self) -> Result<(), String> {
        let me = self.handle.member_id();
        crate::log(&format!(
            "starting initial corruption check local-member-id={me:x}"
        ));
        let read = detcd_proto::etcdserverpb::RangeRequest {
            key: b"health".to_vec(),
            keys_only: true,
            limit: 1,
            ..Default::default()
        };
        let caught_up = async {
            while self
                .handle
                .call_as(Request::Range(read.clone()), peer_http::as_member())
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        if tokio::time::timeout(CATCH_UP_TIMEOUT, caught_up).await.is_err() {
            detcd_io::log!(
                Level::Warn,
                "detcd",
                "initial corruption check: no linearizable read within {CATCH_UP_TIMEOUT:?}; comparing with the peers known now"
            );
        }
        let (mine, findings) = self.compare().await?;
        if let Some(Finding::PeerDiverged(peer)) =
            findings.iter().find(|f| matches!(f, Finding::PeerDiverged(_)))
        {
            detcd_io::log!(
                Level::Error,
                "detcd",
                "found data inconsistency with peers local-member-id={me:x} local-member-hash={} remote-peer-id={peer:x}",
                mine.hash
            );
            return Err(format!("{me:x} found data inconsistency with peers"));
        }
        crate::log(&format!(
            "initial corruption checking passed; no corruption local-member-id={me:x}"
        ));
        Ok(())
    }

    /// The compaction hash check, on the leader, every `every` (see the module doc).
    pub async fn compaction(self, every: Duration) {
        let mut timer = tokio::time::interval(every);
        timer.tick().await;
        let mut checked = 0;
        loop {
            timer.tick().await;
            if !self.handle.metrics().is_leader {
                continue;
            }
            match self.compaction_round(checked).await {
                Ok(Some(revision)) => checked = revision,
                Ok(None) => {}
                Err(e) => detcd_io::log!(Level::Warn, "detcd", "compaction hash check failed: {e}"),
            }
        }
    }

    /// One round of the compaction hash check; the compaction revision it checked
    /// on every peer, if it did.
    async fn compaction_round(&self, checked: i64) -> Result<Option<i64>, String> {
        let compacted = self.local_hash(0).await?.compact_revision;
        if compacted <= 0 || compacted <= checked {
            return Ok(None);
        }
        let me = self.handle.member_id();
        crate::log(&format!("starting compact hash check local-member-id={me:x}"));
        let mine = self.local_hash(compacted).await?;
        let peers = self.peers().await?;
        let mut peers_checked = 0;
        for peer in &peers {
            let Some(theirs) = self.ask(peer, compacted).await else {
                continue;
            };
            if theirs.compact_revision != mine.compact_revision {
                continue;
            }
            if theirs.hash != mine.hash {
                detcd_io::log!(
                    Level::Error,
                    "detcd",
                    "failed compaction hash check revision={compacted} leader-compact-revision={} leader-hash={} follower-compact-revision={} follower-hash={} follower-peer-id={:x}",
                    mine.compact_revision,
                    mine.hash,
                    theirs.compact_revision,
                    theirs.hash,
                    peer.id
                );
                let alarm = AlarmRequest {
                    action: AlarmAction::Activate as i32,
                    member_id: 0,
                    alarm: AlarmType::Corrupt as i32,
                };
                if let Err(e) = self
                    .handle
                    .call_as(Request::Alarm(alarm), peer_http::as_member())
                    .await
                {
                    detcd_io::log!(Level::Warn, "detcd", "cannot raise the CORRUPT alarm: {e}");
                }
                return Ok(None);
            }
            peers_checked += 1;
        }
        if peers_checked == peers.len() {
            crate::log(&format!(
                "successfully checked hash on whole cluster number-of-peers-checked={peers_checked} revision={compacted}"
            ));
            return Ok(Some(compacted));
        }
        detcd_io::log!(
            Level::Warn,
            "detcd",
            "skipped revision in compaction hash check; was not able to check all peers number-of-peers-checked={peers_checked} number-of-peers={} revision={compacted}",
            peers.len()
        );
        Ok(None)
    }

    /// The periodic check, on the leader, every `every`.
    pub async fn periodic(self, every: Duration) {
        let mut timer = tokio::time::interval(every);
        timer.tick().await;
        loop {
            timer.tick().await;
            if !self.handle.metrics().is_leader {
                continue;
            }
            match self.compare().await {
                Ok((_, findings)) => {
                    for finding in findings {
                        let (culprit, what) = match finding {
                            Finding::PeerDiverged(peer) => (peer, "found hash mismatch with a follower"),
                            Finding::PeerAhead(_) => {
                                (self.handle.member_id(), "a follower is ahead of the leader")
                            }
                        };
                        detcd_io::log!(
                            Level::Error,
                            "detcd",
                            "{what}; raising the CORRUPT alarm for member {culprit:x}"
                        );
                        let alarm = AlarmRequest {
                            action: AlarmAction::Activate as i32,
                            member_id: culprit,
                            alarm: AlarmType::Corrupt as i32,
                        };
                        if let Err(e) = self
                            .handle
                            .call_as(Request::Alarm(alarm), peer_http::as_member())
                            .await
                        {
                            detcd_io::log!(Level::Warn, "detcd", "cannot raise the CORRUPT alarm: {e}");
                        }
                    }
                }
                Err(e) => detcd_io::log!(Level::Warn, "detcd", "corruption check failed: {e}"),
            }
        }
    }
}
