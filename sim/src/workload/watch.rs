//! Watch sessions: a client's watch of the KV prefix, created by the request mix,
//! resumed after the last event it got when the client draws a watch again, fed
//! by the member's watch responses, and ended by a cancel or the member's crash.
//! Each session goes to the watch checker.

use detcd_core::node::Request;
use detcd_proto::etcdserverpb::{WatchCreateRequest, WatchResponse};
use detcd_proto::mvccpb::event::EventType;

use super::client::Pending;
use super::Workload;
use crate::cluster::Cluster;
use crate::watch_check::{WatchEvent, WatchSession};

/// The keys the KV workload writes, and so what a watch watches: `[PREFIX, PREFIX_END)`.
const PREFIX: &[u8] = b"k";
const PREFIX_END: &[u8] = b"l";

impl Workload {
    pub(crate) fn pending_watch_session(&self, client: usize) -> Option<usize> {
        match self.clients.get(client)?.inflight.as_ref()?.pending {
            Pending::WatchCreate { session } => Some(session),
            _ => None,
        }
    }

    pub(crate) fn member_crashed(&mut self, member: u64) {
        for c in &mut self.clients {
            if c.watch.is_some_and(|(m, _)| m == member) {
                c.watch = None;
            }
        }
    }

    pub(crate) fn watch_response(&mut self, client: usize, session: usize, response: &WatchResponse) {
        let s = &mut self.sessions[session];
        for e in &response.events {
            let kv = e.kv.clone().unwrap_or_default();
            let value = (e.r#type() == EventType::Put).then_some(kv.value);
            s.events.push(WatchEvent {
                revision: kv.mod_revision,
                key: kv.key,
                value,
            });
        }
        if response.canceled {
            if response.compact_revision > 0 {
                s.compact_revision = Some(response.compact_revision);
            }
            if let Some(c) = self.clients.get_mut(client) {
                if c.watch.is_some_and(|(_, sess)| sess == session) {
                    c.watch = None;
                }
            }
        }
    }

    /// `client`'s new watch session. A client already watching drops its stream and
    /// resumes after the last event it got, as clientv3 does when a watch stream
    /// breaks; without one it watches from now or from a recent past revision.
    pub(super) fn watch_op(&mut self, sim: &mut impl Cluster, client: usize) -> (Request, Pending, bool) {
        let previous = self.clients[client].watch.take();
        let resume_from = previous
            .and_then(|(_, session)| self.sessions[session].events.last())
            .map(|e| e.revision + 1);
        let last = self.clients[client].last_revision;
        let start_revision = match resume_from {
            Some(from) => from,
            None if last > 0 && self.rng.chance(1, 2) => (last - self.rng.range(0, 10) as i64).max(1),
            None => 0,
        };
        if let Some((member, session)) = previous {
            sim.close_watch_stream(member, client, session);
        }
        self.sessions.push(WatchSession {
            start_revision,
            prefix: PREFIX.to_vec(),
            ..Default::default()
        });
        let session = self.sessions.len() - 1;
        let stream = sim.new_stream();
        let request = WatchCreateRequest {
            key: PREFIX.to_vec(),
            range_end: PREFIX_END.to_vec(),
            start_revision,
            ..Default::default()
        };
        (
            Request::WatchCreate { stream, request },
            Pending::WatchCreate { session },
            false,
        )
    }
}
