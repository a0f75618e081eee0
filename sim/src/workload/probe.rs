//! The liveness probe: once the faults stop, a put then a linearizable read of
//! `kprobe`, retried across members, which must both succeed within ten election
//! timeouts.

use detcd_core::node::Request;

use super::client::{Client, Pending};
use super::Workload;
use crate::check::history::KvOp;
use crate::cluster::Cluster;

/// When the probe started, and when its put and its read were acknowledged.
#[derive(Clone, Debug, Default)]
pub struct ProbeState {
    pub started_us: u64,
    pub put_ok_us: Option<u64>,
    pub get_ok_us: Option<u64>,
}

impl Workload {
    /// Starts the liveness probe: a put then a linearizable read of `kprobe`,
    /// retried across members, which must both succeed within ten election timeouts.
    pub(crate) fn start_probe(&mut self, sim: &mut impl Cluster) {
        self.probe = Some(ProbeState {
            started_us: sim.now_us(),
            ..Default::default()
        });
        self.clients.push(Client {
            probe: true,
            ..Default::default()
        });
        let client = self.clients.len() - 1;
        sim.wake_client(client, sim.now_us(), 0);
    }

    /// The probe's next request, or None when it is done.
    pub(super) fn probe_op(
        &mut self,
        sim: &mut impl Cluster,
        client: usize,
    ) -> Option<(Request, Pending, bool)> {
        let probe = self.probe.clone().unwrap_or_default();
        let key = b"kprobe".to_vec();
        let now = sim.now_us();
        let c = &mut self.clients[client];
        c.seq += 1;
        if probe.put_ok_us.is_none() {
            let value = format!("probe-{}", c.seq).into_bytes();
            return Some(self.invoke_kv(client, KvOp::Put { key, value }, now));
        }
        if probe.get_ok_us.is_none() {
            return Some(self.invoke_kv(client, KvOp::Get { key }, now));
        }
        None
    }

    /// Notes the answer to a probe's operation at `now`.
    pub(super) fn probe_answered(&mut self, op: &KvOp, now: u64) {
        if let Some(p) = self.probe.as_mut() {
            if op.key() == b"kprobe" {
                if op.is_write() {
                    p.put_ok_us.get_or_insert(now);
                } else if p.put_ok_us.is_some() {
                    p.get_ok_us.get_or_insert(now);
                }
            }
        }
    }
}
