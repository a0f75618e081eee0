//! Golden transcript tests for core::node: every `core/testdata/node/*.txt` file is
//! a scenario run against an in-memory cluster of `Node`s (disk = vectors, network
//! = one FIFO queue, links can be cut, time advanced by `tick`). Client answers,
//! watch responses, role changes and snapshots are rendered into the transcript.
//! Set `DETCD_REWRITE=1` to accept new outputs, then review the diff like code.
//!
//! Also: the determinism test (same seed and inputs, byte-identical transcript).

#[allow(dead_code)]
#[path = "support/datadriven.rs"]
mod datadriven;
#[path = "support/mem_disk.rs"]
mod mem_disk;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write;
use std::path::PathBuf;

use datadriven::{run_file, Command};
use detcd_core::node::{
    Credentials, Input, Node, NodeConfig, NodeStart, Output, PeerMessage, Request, Response,
};
use detcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, compare, request_op, AlarmRequest, AlarmType, CompactionRequest, Compare,
    DeleteRangeRequest, HashKvRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, Member, MemberAddRequest, MemberListRequest, MemberPromoteRequest,
    MemberRemoveRequest, MoveLeaderRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest,
    WatchCreateRequest,
};
use mem_disk::{DrainEnd, Drained, MemDisk};

struct Host {
    node: Option<Node>,
    config: NodeConfig,
    disk: MemDisk,
}

/// The cluster, its network, the clock and the transcript.
struct Cluster {
    members: BTreeMap<u64, Host>,
    net: VecDeque<(u64, u64, PeerMessage)>,
    cut: BTreeSet<(u64, u64)>,
    now_ms: u64,
    next_client_id: u64,
    /// The ID of the member the last MemberAdd created.
    last_added: u64,
    out: String,
    snapshot_count: u64,
    /// Raft message types the network delivers twice (e.g. "MsgProp").
    duplicate: BTreeSet<String>,
    /// Members whose Persists are written but not acknowledged until
    /// `release-persist`; what they send meanwhile is written to the transcript.
    holding: BTreeSet<u64>,
    /// The newest Persist each holding member wrote and has not had acknowledged.
    held: BTreeMap<u64, u64>,
    /// Founding members persisting their bootstrap snapshot (not written to the
    /// transcript: every founding member starts from one).
    founding: BTreeSet<u64>,
}

fn member(id: u64, learner: bool) -> Member {
    Member {
        id,
        name: String::new(),
        peer_ur_ls: vec![format!("http://n{id}:2380")],
        client_ur_ls: Vec::new(),
        is_learner: learner,
    }
}

fn config_for(id: u64, initial: Vec<Member>, snapshot_count: u64) -> NodeConfig {
    let mut c = NodeConfig::new(id, 0xc1, &format!("n{id}"), initial);
    c.client_urls = vec![format!("http://n{id}:2379")];
    c.snapshot_count = snapshot_count;
    c.seed = id.wrapping_mul(7919);
    c
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            members: BTreeMap::new(),
            net: VecDeque::new(),
            cut: BTreeSet::new(),
            now_ms: 0,
            next_client_id: 1,
            last_added: 0,
            out: String::new(),
            snapshot_count: 10_000,
            duplicate: BTreeSet::new(),
            holding: BTreeSet::new(),
            held: BTreeMap::new(),
            founding: BTreeSet::new(),
        }
    }

    fn line(&mut self, s: impl AsRef<str>) {
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }

    fn start(&mut self, id: u64, config: NodeConfig, start: NodeStart) {
        let disk = match &start {
            NodeStart::Recover { .. } => self.members[&id].disk.clone(),
            _ => MemDisk::default(),
        };
        if matches!(start, NodeStart::Found) {
            self.founding.insert(id);
        }
        let node = Node::new(config.clone(), start).expect("node starts");
        self.members.insert(
            id,
            Host {
                node: Some(node),
                config,
                disk,
            },
        );
        self.drain(id);
        self.founding.remove(&id);
    }

    /// Feeds one input to `id` and carries out everything it asks, acknowledging
    /// persistence at once (the in-memory disk is durable when written).
    fn input(&mut self, id: u64, input: Input) {
        let Some(node) = self.members.get_mut(&id).and_then(|m| m.node.as_mut()) else {
            return;
        };
        node.handle(input);
        self.drain(id);
    }

    fn drain(&mut self, id: u64) {
        let mut lines = Vec::new();
        self.drain_into(id, &mut lines);
        for l in lines {
            self.line(l);
        }
    }

    fn drain_into(&mut self, id: u64, lines: &mut Vec<String>) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        let Some(node) = member.node.as_mut() else { return };
        let hold = self.holding.contains(&id);
        let founding = self.founding.contains(&id);
        let (net, cut, duplicate, held) = (&mut self.net, &self.cut, &self.duplicate, &mut self.held);
        let end = member.disk.drain(node, hold, |_, drained| {
            let out = match drained {
                Drained::Persisted {
                    ready_number,
                    snapshot_index,
                    entries,
                    hard_state,
                    acknowledged,
                } => {
                    if snapshot_index > 0 && !founding {
                        lines.push(format!(
                            "n{id}: installing the leader's snapshot at index {snapshot_index}"
                        ));
                    }
                    if !acknowledged {
                        lines.push(format!(
                            "n{id}: persist ready={ready_number} written ({entries} entries{}), not acknowledged",
                            if hard_state { ", hard state" } else { "" }
                        ));
                        held.insert(id, ready_number);
                    }
                    return;
                }
                Drained::SnapshotSaved { index, .. } => {
                    lines.push(format!("n{id}: snapshot saved at index {index}"));
                    return;
                }
                Drained::Output(out) => *out,
            };
            match out {
                Output::Send { to, message } => {
                    if hold {
                        if let PeerMessage::Raft(m) = &message {
                            lines.push(format!("n{id}: send {:?} to n{to}", m.r#type()));
                        }
                    }
                    if !cut.contains(&(id, to)) {
                        if let PeerMessage::Raft(m) = &message {
                            if duplicate.contains(&format!("{:?}", m.r#type())) {
                                lines.push(format!("net: duplicating {:?} n{id} -> n{to}", m.r#type()));
                                net.push_back((id, to, message.clone()));
                            }
                        }
                        net.push_back((id, to, message));
                    }
                }
                Output::Respond { id: cid, result } => {
                    let text = match result {
                        Ok(r) => render(&r),
                        Err(e) => format!("error: {}", e.message),
                    };
                    lines.push(format!("n{id}: #{cid} {text}"));
                }
                Output::Watch { stream, response } => {
                    let mut s = format!("n{id}: watch stream={stream} id={}", response.watch_id);
                    if response.created {
                        s.push_str(" created");
                    }
                    if response.canceled {
                        let _ = write!(s, " canceled compact_revision={}", response.compact_revision);
                    }
                    let _ = write!(s, " {}", header(&response.header));
                    for e in &response.events {
                        let kv = e.kv.clone().unwrap_or_default();
                        let _ = write!(
                            s,
                            " {:?}({}={}@{})",
                            e.r#type(),
                            String::from_utf8_lossy(&kv.key),
                            String::from_utf8_lossy(&kv.value),
                            kv.mod_revision
                        );
                    }
                    lines.push(s);
                }
                Output::RoleChanged { leader, role, term } => {
                    lines.push(format!("n{id}: role {} leader={leader} term={term}", role.name()));
                }
                Output::AutoCompaction { revision, completed } => {
                    lines.push(format!(
                        "n{id}: auto compaction to {revision}, completed={completed}"
                    ));
                }
                Output::Removed => lines.push(format!("n{id}: removed, stopping")),
                Output::ReleaseWal { .. }
                | Output::PeerUrls { .. }
                | Output::SnapshotExport { .. }
                | Output::PortableHead { .. }
                | Output::PortableRecords { .. }
                | Output::Status(_)
                | Output::Persist(_)
                | Output::SaveSnapshot { .. } => {}
            }
        });
        if end == DrainEnd::Removed {
            member.node = None;
        }
    }

    /// Delivers network messages until none is left.
    fn deliver(&mut self) {
        for _ in 0..100_000 {
            let Some((from, to, message)) = self.net.pop_front() else {
                return;
            };
            if self.cut.contains(&(from, to)) {
                continue;
            }
            self.input(to, Input::Peer(message));
        }
        panic!("network did not quiesce");
    }

    /// Advances time by `ms` in steps of one tick, ticking `only` (or everyone).
    fn tick(&mut self, ms: u64, only: &[u64]) {
        let step = 100;
        let mut left = ms;
        while left > 0 {
            let d = left.min(step);
            left -= d;
            self.now_ms += d;
            let ids: Vec<u64> = self
                .members
                .keys()
                .copied()
                .filter(|id| only.is_empty() || only.contains(id))
                .collect();
            for id in ids {
                self.input(id, Input::Tick { now_ms: self.now_ms });
            }
            self.deliver();
        }
    }

    fn client(&mut self, id: u64, request: Request) {
        let id = if id == NEW_MEMBER { self.last_added } else { id };
        let cid = self.next_client_id;
        self.next_client_id += 1;
        self.input(
            id,
            Input::Client {
                id: cid,
                request,
                credentials: Credentials::None,
            },
        );
        self.deliver();
    }

    fn node(&self, id: u64) -> &Node {
        self.members[&id].node.as_ref().expect("running member")
    }
}

fn header(h: &Option<ResponseHeader>) -> String {
    let h = h.unwrap_or_default();
    format!(
        "[cluster={:x} member={} rev={} term={}]",
        h.cluster_id, h.member_id, h.revision, h.raft_term
    )
}

fn kvs(kvs: &[detcd_proto::mvccpb::KeyValue]) -> String {
    let parts: Vec<String> = kvs
        .iter()
        .map(|kv| {
            let lease = if kv.lease != 0 {
                format!(" lease={}", kv.lease)
            } else {
                String::new()
            };
            format!(
                "{}={} c={} m={} v={}{lease}",
                String::from_utf8_lossy(&kv.key),
                String::from_utf8_lossy(&kv.value),
                kv.create_revision,
                kv.mod_revision,
                kv.version
            )
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn members(ms: &[Member]) -> String {
    let parts: Vec<String> = ms
        .iter()
        .map(|m| {
            format!(
                "{}{} name={:?} peers={:?} clients={:?}",
                m.id,
                if m.is_learner { " learner" } else { "" },
                m.name,
                m.peer_ur_ls,
                m.client_ur_ls
            )
        })
        .collect();
    format!("[{}]", parts.join("; "))
}

fn render(r: &Response) -> String {
    match r {
        Response::Range(r) => format!(
            "range {} count={} more={} kvs={}",
            header(&r.header),
            r.count,
            r.more,
            kvs(&r.kvs)
        ),
        Response::Put(r) => format!("put {} prev={}", header(&r.header), kvs(r.prev_kv.as_slice())),
        Response::DeleteRange(r) => format!("delete {} deleted={}", header(&r.header), r.deleted),
        Response::Txn(r) => {
            let mut s = format!("txn {} succeeded={}", header(&r.header), r.succeeded);
            for op in &r.responses {
                match &op.response {
                    Some(detcd_proto::etcdserverpb::response_op::Response::ResponseRange(rr)) => {
                        let _ = write!(s, " range{}", kvs(&rr.kvs));
                    }
                    Some(detcd_proto::etcdserverpb::response_op::Response::ResponsePut(_)) => {
                        s.push_str(" put")
                    }
                    _ => s.push_str(" op"),
                }
            }
            s
        }
        Response::Compact(r) => format!("compact {}", header(&r.header)),
        Response::LeaseGrant(r) => format!("lease-grant {} id={} ttl={}", header(&r.header), r.id, r.ttl),
        Response::LeaseRevoke(r) => format!("lease-revoke {}", header(&r.header)),
        Response::LeaseKeepAlive(r) => format!("keepalive {} id={} ttl={}", header(&r.header), r.id, r.ttl),
        Response::LeaseTimeToLive(r) => {
            let keys: Vec<String> = r
                .keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            format!(
                "ttl {} id={} ttl={} granted={} keys={keys:?}",
                header(&r.header),
                r.id,
                r.ttl,
                r.granted_ttl
            )
        }
        Response::LeaseLeases(r) => {
            let ids: Vec<i64> = r.leases.iter().map(|l| l.id).collect();
            format!("leases {} {ids:?}", header(&r.header))
        }
        Response::MemberAdd(r) => format!(
            "member-add {} member={} members={}",
            header(&r.header),
            members(r.member.as_slice()),
            members(&r.members)
        ),
        Response::MemberRemove(r) => format!(
            "member-remove {} members={}",
            header(&r.header),
            members(&r.members)
        ),
        Response::MemberUpdate(r) => format!(
            "member-update {} members={}",
            header(&r.header),
            members(&r.members)
        ),
        Response::MemberList(r) => format!(
            "member-list {} members={}",
            header(&r.header),
            members(&r.members)
        ),
        Response::MemberPromote(r) => format!(
            "member-promote {} members={}",
            header(&r.header),
            members(&r.members)
        ),
        Response::Status(r) => format!(
            "status {} leader={} raft_index={} raft_term={} applied={} learner={} errors={:?}",
            header(&r.header),
            r.leader,
            r.raft_index,
            r.raft_term,
            r.raft_applied_index,
            r.is_learner,
            r.errors
        ),
        Response::HashKv(r) => {
            format!(
                "hashkv {} hash={} compact_revision={}",
                header(&r.header),
                r.hash,
                r.compact_revision
            )
        }
        Response::Alarm(r) => {
            let a: Vec<String> = r
                .alarms
                .iter()
                .map(|a| format!("{}:{}", a.member_id, a.alarm))
                .collect();
            format!("alarm {} {a:?}", header(&r.header))
        }
        Response::MoveLeader(r) => format!("move-leader {}", header(&r.header)),
        Response::Watch => "watch accepted".to_string(),
        Response::Auth(r) => format!("auth {r:?}"),
        Response::AuthPasswordCheck(c) => format!("password-check rev={}", c.revision),
        Response::AdminCheck => "admin".to_string(),
        Response::V2(r) => format!("v2 {:?}", r.result),
    }
}

fn bytes(cmd: &Command, key: &str) -> Vec<u8> {
    cmd.get(key).unwrap_or_default().as_bytes().to_vec()
}

/// The member a command targets: `n=ID`, `n=NEW` (the last added member), default 1.
fn n(cmd: &Command) -> u64 {
    match cmd.get("n") {
        Some("NEW") => NEW_MEMBER,
        _ => cmd.u64_arg("n").unwrap_or(1),
    }
}

const NEW_MEMBER: u64 = u64::MAX;

fn i64_arg(cmd: &Command, key: &str) -> i64 {
    cmd.get(key).map_or(0, |v| v.parse().expect("number"))
}

fn range_end(cmd: &Command) -> Vec<u8> {
    if cmd.positional.iter().any(|p| p == "prefix") {
        detcd_core::mvcc::prefix_end(&bytes(cmd, "key"))
    } else {
        bytes(cmd, "end")
    }
}

fn run(c: &mut Cluster, cmd: &Command) -> String {
    match cmd.name.as_str() {
        "cluster" => {
            let count = cmd.u64_arg("size").unwrap_or(3);
            c.snapshot_count = cmd.u64_arg("snapshot-count").unwrap_or(10_000);
            let initial: Vec<Member> = (1..=count).map(|id| member(id, false)).collect();
            for id in 1..=count {
                let config = config_for(id, initial.clone(), c.snapshot_count);
                c.start(id, config, NodeStart::Found);
            }
            // Only member 1 ticks until it leads, so the leader is known in advance.
            c.tick(3000, &[1]);
            c.tick(500, &[]);
        }
        "tick" => {
            let only = cmd.list_arg("only");
            c.tick(cmd.u64_arg("ms").unwrap_or(100), &only);
        }
        "isolate" => {
            for id in cmd.ids() {
                let others: Vec<u64> = c.members.keys().copied().filter(|&o| o != id).collect();
                for o in others {
                    c.cut.insert((id, o));
                    c.cut.insert((o, id));
                }
            }
        }
        "heal" => c.cut.clear(),
        "hold-persist" => {
            // hold-persist 2 3: their Persists are written but not acknowledged.
            c.holding.extend(cmd.ids());
        }
        "release-persist" => {
            // release-persist 2: acknowledges what it wrote (every Persist up to
            // the newest) and stops holding.
            // What the acknowledgement releases is still written out.
            for id in cmd.ids() {
                while let Some(ready_number) = c.held.remove(&id) {
                    c.line(format!("n{id}: persisted ready={ready_number}"));
                    c.input(id, Input::Persisted { ready_number });
                }
                c.holding.remove(&id);
            }
            c.deliver();
        }
        "duplicate" => {
            // duplicate type=MsgProp | duplicate off
            match cmd.get("type") {
                Some(t) => {
                    c.duplicate.insert(t.to_string());
                }
                None => c.duplicate.clear(),
            }
        }
        "put" => {
            let req = PutRequest {
                key: bytes(cmd, "key"),
                value: bytes(cmd, "value"),
                lease: i64_arg(cmd, "lease"),
                prev_kv: cmd.positional.iter().any(|p| p == "prev"),
                ..Default::default()
            };
            c.client(n(cmd), Request::Put(req));
        }
        "get" => {
            let req = RangeRequest {
                key: bytes(cmd, "key"),
                range_end: range_end(cmd),
                serializable: cmd.positional.iter().any(|p| p == "serializable"),
                revision: i64_arg(cmd, "rev"),
                ..Default::default()
            };
            c.client(n(cmd), Request::Range(req));
        }
        "del" => {
            let req = DeleteRangeRequest {
                key: bytes(cmd, "key"),
                range_end: range_end(cmd),
                ..Default::default()
            };
            c.client(n(cmd), Request::DeleteRange(req));
        }
        "cas" => {
            // if value(key) == expect then put key=value else get key
            let key = bytes(cmd, "key");
            let cmp = Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Value as i32,
                key: key.clone(),
                target_union: Some(compare::TargetUnion::Value(bytes(cmd, "expect"))),
                ..Default::default()
            };
            let put = RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key.clone(),
                    value: bytes(cmd, "value"),
                    ..Default::default()
                })),
            };
            let get = RequestOp {
                request: Some(request_op::Request::RequestRange(RangeRequest {
                    key,
                    ..Default::default()
                })),
            };
            let req = TxnRequest {
                compare: vec![cmp],
                success: vec![put],
                failure: vec![get],
            };
            c.client(n(cmd), Request::Txn(req));
        }
        "read-txn" => {
            let get = RequestOp {
                request: Some(request_op::Request::RequestRange(RangeRequest {
                    key: bytes(cmd, "key"),
                    ..Default::default()
                })),
            };
            c.client(
                n(cmd),
                Request::Txn(TxnRequest {
                    compare: vec![],
                    success: vec![get],
                    failure: vec![],
                }),
            );
        }
        "compact" => {
            let req = CompactionRequest {
                revision: i64_arg(cmd, "rev"),
                physical: false,
            };
            c.client(n(cmd), Request::Compact(req));
        }
        "watch" => {
            let request = WatchCreateRequest {
                key: bytes(cmd, "key"),
                range_end: range_end(cmd),
                start_revision: i64_arg(cmd, "rev"),
                ..Default::default()
            };
            let stream = cmd.u64_arg("stream").unwrap_or(1);
            c.client(n(cmd), Request::WatchCreate { stream, request });
        }
        "lease-grant" => {
            let req = LeaseGrantRequest {
                ttl: i64_arg(cmd, "ttl"),
                id: i64_arg(cmd, "id"),
            };
            c.client(n(cmd), Request::LeaseGrant(req));
        }
        "lease-revoke" => c.client(
            n(cmd),
            Request::LeaseRevoke(LeaseRevokeRequest {
                id: i64_arg(cmd, "id"),
            }),
        ),
        "keepalive" => c.client(
            n(cmd),
            Request::LeaseKeepAlive(LeaseKeepAliveRequest {
                id: i64_arg(cmd, "id"),
            }),
        ),
        "lease-ttl" => {
            let req = LeaseTimeToLiveRequest {
                id: i64_arg(cmd, "id"),
                keys: true,
            };
            c.client(n(cmd), Request::LeaseTimeToLive(req));
        }
        "leases" => c.client(n(cmd), Request::LeaseLeases),
        "member-add" => {
            let req = MemberAddRequest {
                peer_ur_ls: vec![cmd.get("peer").unwrap_or("http://new:2380").to_string()],
                is_learner: cmd.positional.iter().any(|p| p == "learner"),
            };
            let before = c.out.len();
            c.client(n(cmd), Request::MemberAdd(req));
            // Remember the new member's ID for `join` (IDs are drawn from the seed).
            let added: Vec<u64> = c.node(n(cmd)).members().keys().copied().collect();
            if let Some(&id) = added.iter().find(|id| !c.members.contains_key(id)) {
                c.last_added = id;
                let text = c.out.split_off(before).replace(&id.to_string(), "NEW");
                c.out.push_str(&text);
            }
        }
        "join" => {
            let id = c.last_added;
            let from = cmd.u64_arg("via").unwrap_or(1);
            let initial: Vec<Member> = c.node(from).members().values().cloned().collect();
            let config = config_for(id, initial, c.snapshot_count);
            c.start(id, config, NodeStart::Join);
            let before = c.out.len();
            c.tick(cmd.u64_arg("ms").unwrap_or(1000), &[]);
            let text = c.out.split_off(before).replace(&id.to_string(), "NEW");
            c.out.push_str(&text);
        }
        "member-promote" => {
            let id = cmd.get("id").map_or(c.last_added, |v| v.parse().expect("id"));
            let before = c.out.len();
            c.client(n(cmd), Request::MemberPromote(MemberPromoteRequest { id }));
            let text = c.out.split_off(before).replace(&c.last_added.to_string(), "NEW");
            c.out.push_str(&text);
        }
        "member-remove" => {
            let id = cmd.get("id").map_or(c.last_added, |v| v.parse().expect("id"));
            c.client(n(cmd), Request::MemberRemove(MemberRemoveRequest { id }));
        }
        "member-list" => {
            let linearizable = cmd.positional.iter().any(|p| p == "linearizable");
            c.client(n(cmd), Request::MemberList(MemberListRequest { linearizable }));
        }
        "status" => c.client(n(cmd), Request::Status),
        "hashkv" => c.client(n(cmd), Request::HashKv(HashKvRequest { revision: 0 })),
        "alarm" => {
            let action = match cmd.get("action").unwrap_or("get") {
                "activate" => AlarmAction::Activate,
                "deactivate" => AlarmAction::Deactivate,
                _ => AlarmAction::Get,
            };
            let req = AlarmRequest {
                action: action as i32,
                member_id: cmd.u64_arg("member").unwrap_or(0),
                alarm: if cmd.get("alarm") == Some("nospace") {
                    AlarmType::Nospace as i32
                } else {
                    0
                },
            };
            c.client(n(cmd), Request::Alarm(req));
        }
        "move-leader" => {
            let target = cmd.u64_arg("target").expect("target");
            c.client(
                n(cmd),
                Request::MoveLeader(MoveLeaderRequest { target_id: target }),
            );
        }
        "crash" => {
            for id in cmd.ids() {
                c.members.get_mut(&id).expect("member").node = None;
                c.net.retain(|(from, to, _)| *from != id && *to != id);
                c.line(format!("n{id}: crashed"));
            }
        }
        "restart" => {
            for id in cmd.ids() {
                let disk = c.members[&id].disk.clone();
                let config = c.members[&id].config.clone();
                let start = disk.recover();
                c.line(format!(
                    "n{id}: restarting from snapshot at {} with {} entries, commit {}",
                    disk.snapshot_index(),
                    disk.entries.len(),
                    disk.hard_state.commit
                ));
                c.start(id, config, start);
            }
        }
        "state" => {
            let ids: Vec<u64> = c.members.keys().copied().collect();
            for id in ids {
                let Some(node) = c.members[&id].node.as_ref() else {
                    c.line(format!("n{id}: stopped"));
                    continue;
                };
                let hash = node.store().hash_kv(0).expect("hash").hash;
                let line = format!(
                    "n{id}: {} leader={} applied={} rev={} hash={hash} leases={:?} members={}",
                    node.soft_state().role.name(),
                    node.soft_state().leader,
                    node.applied_index(),
                    node.store().revision(),
                    node.lessor().leases(),
                    node.members().len()
                );
                c.line(line);
            }
        }
        other => panic!("line {}: unknown command {other}", cmd.line),
    }
    // Added members' IDs are drawn from a seed; transcripts call the last one NEW.
    let out = std::mem::take(&mut c.out);
    if c.last_added == 0 {
        return out;
    }
    out.replace(&c.last_added.to_string(), "NEW")
}

fn golden_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/node");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata/node exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn golden_transcripts() {
    let files = golden_files();
    assert!(!files.is_empty(), "no golden files");
    for f in files {
        let mut cluster = Cluster::new();
        run_file(&f, |cmd| run(&mut cluster, cmd));
    }
}

/// Runs every scenario's commands twice from scratch and compares the transcripts
/// byte for byte: same seeds and inputs, same outputs.
#[test]
fn same_seed_and_inputs_give_identical_transcripts() {
    for f in golden_files() {
        let text = std::fs::read_to_string(&f).expect("readable");
        let transcript = || {
            let mut c = Cluster::new();
            let mut out = String::new();
            let mut lines = text.lines().enumerate().peekable();
            while let Some((i, line)) = lines.next() {
                if line.trim().is_empty() || line.starts_with('#') {
                    continue;
                }
                if lines.peek().is_some_and(|(_, l)| l.trim() == "----") {
                    out.push_str(&run(&mut c, &Command::parse(line, i + 1)));
                    for (_, l) in lines.by_ref() {
                        if l.trim().is_empty() {
                            break;
                        }
                    }
                }
            }
            out
        };
        assert_eq!(transcript(), transcript(), "{} is not deterministic", f.display());
    }
}
