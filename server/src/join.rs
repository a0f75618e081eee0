//! How a member started with `--initial-cluster-state existing` on an empty data
//! directory learns who it is.
//!
//! etcd asks the existing members' peer `/members` endpoint for the member list and finds
//! itself by its peer URLs. detcd's peer port speaks detcd-io's framed handshake instead
//! of HTTP, so the same facts are learned from that handshake:
//! 1. each other member of `--initial-cluster` is greeted with a hello that names no
//!    cluster; its refusal carries that member's ID and its cluster's ID (so the joiner
//!    knows where to reach each existing member by ID);
//! 2. the new member listens on its own peer URLs until the leader, which starts
//!    replicating to every member it added, dials it: the leader's hello is addressed to
//!    the ID the cluster gave the new member. The connection is closed unanswered; the
//!    leader redials (within its 2 s backoff) once the driver listens.
//!
//! A member that was not added first is never dialed: that ends in a clear error after
//! [`JOIN_WAIT_MS_MAX`].

use std::time::Duration;

use detcd_io::transport::conn::SharedPeerTls;
use detcd_io::transport::handshake::{probe, read_hello};
use detcd_io::transport::PeerListener;
use detcd_proto::detcdpb::PeerHello;
use detcd_proto::etcdserverpb::Member as MemberInfo;

use crate::config::Config;
use crate::member::{Identity, StartupError};

/// How long a joining member waits to be dialed by the cluster's leader.
pub const JOIN_WAIT_MS_MAX: u64 = 60_000;
/// How long one greeting of an existing member may take.
pub const PROBE_TIMEOUT_MS: u64 = 2_000;

/// What a joining member learned.
#[derive(Debug)]
pub struct Joined {
    pub identity: Identity,
    /// The members it could reach (with their real IDs) and itself.
    pub members: Vec<MemberInfo>,
}

/// Learns this member's ID and its cluster from the members already running.
pub async fn discover(config: &Config, tls: &SharedPeerTls) -> Result<Joined, StartupError> {
    let own_urls: Vec<String> = config
        .initial_advertise_peer_urls
        .iter()
        .map(ToString::to_string)
        .collect();
    // Listen first, so the leader's dial cannot be missed while the others are greeted.
    let listen_urls: Vec<String> = config.listen_peer_urls.iter().map(ToString::to_string).collect();
    let listeners = detcd_io::transport::bind(&listen_urls, tls)
        .await
        .map_err(|e| StartupError::Join(e.to_string()))?;
    let mut members = Vec::new();
    let mut cluster_ids = Vec::new();
    for (name, urls) in &config.initial_cluster {
        if name == &config.name {
            continue;
        }
        for url in urls {
            let reply = tokio::time::timeout(
                Duration::from_millis(PROBE_TIMEOUT_MS),
                probe(&url.to_string(), tls),
            )
            .await;
            match reply {
                Ok(Ok(reply)) if reply.member_id != 0 => {
                    crate::log(&format!(
                        "join: member {name} at {url} is {:x} of cluster {:x}",
                        reply.member_id, reply.cluster_id
                    ));
                    cluster_ids.push(reply.cluster_id);
                    members.push(MemberInfo {
                        id: reply.member_id,
                        name: name.clone(),
                        peer_ur_ls: urls.iter().map(ToString::to_string).collect(),
                        client_ur_ls: Vec::new(),
                        is_learner: false,
                    });
                    break;
                }
                Ok(Ok(_)) => crate::log(&format!("join: {url} did not say who it is")),
                Ok(Err(e)) => crate::log(&format!("join: cannot reach member {name} at {url}: {e}")),
                Err(_) => crate::log(&format!("join: member {name} at {url} did not answer")),
            }
        }
    }
    cluster_ids.dedup();
    if cluster_ids.len() > 1 {
        return Err(StartupError::Join(format!(
            "the members of --initial-cluster belong to different clusters ({})",
            cluster_ids
                .iter()
                .map(|c| format!("{c:x}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    crate::log(&format!(
        "join: waiting for the leader to contact this member on {}",
        own_urls.join(",")
    ));
    let wait = wait_for_leader(&listeners, tls, cluster_ids.first().copied());
    let hello = tokio::time::timeout(Duration::from_millis(JOIN_WAIT_MS_MAX), wait)
        .await
        .map_err(|_| {
            StartupError::Join(format!(
                "no member of the cluster contacted this member within {} s: add it first \
                 (`member add {} --peer-urls={}`) and check --initial-cluster",
                JOIN_WAIT_MS_MAX / 1000,
                config.name,
                own_urls.join(",")
            ))
        })?;
    drop(listeners);
    let identity = Identity {
        member_id: hello.to,
        cluster_id: hello.cluster_id,
    };
    crate::log(&format!(
        "join: member {:x} of cluster {:x} (contacted by {:x})",
        identity.member_id, identity.cluster_id, hello.from
    ));
    members.retain(|m| m.id != identity.member_id);
    members.push(MemberInfo {
        id: identity.member_id,
        name: config.name.clone(),
        peer_ur_ls: own_urls,
        client_ur_ls: Vec::new(),
        is_learner: false,
    });
    Ok(Joined { identity, members })
}

/// The first well-formed hello (of `cluster`, when known) that reaches `listeners`.
async fn wait_for_leader(listeners: &[PeerListener], tls: &SharedPeerTls, cluster: Option<u64>) -> PeerHello {
    loop {
        let accepted = std::future::poll_fn(|cx| {
            for PeerListener {
                listener,
                tls: secure,
                ..
            } in listeners
            {
                if let std::task::Poll::Ready(r) = listener.poll_accept(cx) {
                    return std::task::Poll::Ready(r.map(|(stream, addr)| (stream, addr, *secure)));
                }
            }
            std::task::Poll::Pending
        })
        .await;
        let Ok((stream, addr, secure)) = accepted else {
            continue;
        };
        let tls = if secure { tls.as_ref() } else { None };
        let read = tokio::time::timeout(
            Duration::from_millis(PROBE_TIMEOUT_MS),
            read_hello(stream, &addr, tls),
        )
        .await;
        if let Ok(Ok(hello)) = read {
            let right_cluster = cluster.is_none_or(|c| c == hello.cluster_id);
            if hello.to != 0 && hello.from != 0 && hello.cluster_id != 0 && right_cluster {
                return hello;
            }
        }
    }
}
