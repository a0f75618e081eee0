//! The golden-file command language, shared by the transcript tests and the
//! paper tests that replay scripted scenarios.

use detcd_core::raft::Start;
use detcd_proto::raftpb::{ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};

use super::datadriven::Command;
use super::{conf_state, test_config, Cluster};

fn parse_changes(cmd: &Command) -> ConfChangeV2 {
    let mut cc = ConfChangeV2::default();
    for tok in &cmd.positional[1..] {
        let (kind, id) = tok.split_at(1);
        let t = match kind {
            "v" => ConfChangeType::ConfChangeAddNode,
            "l" => ConfChangeType::ConfChangeAddLearnerNode,
            "r" => ConfChangeType::ConfChangeRemoveNode,
            "u" => ConfChangeType::ConfChangeUpdateNode,
            other => panic!("line {}: unknown change kind {other}", cmd.line),
        };
        let mut single = ConfChangeSingle {
            r#type: 0,
            node_id: id.parse().expect("node id"),
        };
        single.set_type(t);
        cc.changes.push(single);
    }
    match cmd.get("transition") {
        None | Some("auto") => cc.set_transition(ConfChangeTransition::Auto),
        Some("implicit") => cc.set_transition(ConfChangeTransition::JointImplicit),
        Some("explicit") => cc.set_transition(ConfChangeTransition::JointExplicit),
        Some(other) => panic!("line {}: unknown transition {other}", cmd.line),
    }
    cc
}

pub fn run(c: &mut Cluster, cmd: &Command) -> String {
    let first = || {
        cmd.positional
            .first()
            .map(|s| s.parse::<u64>().expect("node id"))
            .expect("node id argument")
    };
    match cmd.name.as_str() {
        "add-nodes" => {
            let n: u64 = cmd.positional[0].parse().expect("count");
            let voters = cmd.list_arg("voters");
            let learners = cmd.list_arg("learners");
            let start_id = c.nodes.keys().last().copied().unwrap_or(0) + 1;
            for id in start_id..start_id + n {
                let mut cfg = test_config(id);
                if let Some(v) = cmd.bool_arg("pre-vote") {
                    cfg.pre_vote = v;
                }
                if let Some(v) = cmd.bool_arg("check-quorum") {
                    cfg.check_quorum = v;
                }
                if let Some(v) = cmd.u64_arg("inflight-msgs-max") {
                    cfg.inflight_msgs_max = v as usize;
                }
                if let Some(v) = cmd.u64_arg("inflight-bytes-max") {
                    cfg.inflight_bytes_max = v;
                }
                if let Some(v) = cmd.u64_arg("append-bytes-max") {
                    cfg.append_bytes_max = v;
                }
                if let Some(v) = cmd.u64_arg("uncommitted-bytes-max") {
                    cfg.uncommitted_bytes_max = v;
                }
                if let Some(v) = cmd.u64_arg("election-ticks") {
                    cfg.election_ticks = v;
                }
                c.add_node(cfg, Start::Bootstrap(conf_state(&voters, &learners)));
            }
            let ids: Vec<String> = (start_id..start_id + n).map(|i| i.to_string()).collect();
            c.line_pub(format!("added {}", ids.join(" ")));
        }
        "campaign" => {
            let id = first();
            c.nodes.get_mut(&id).expect("node").raw.campaign();
            c.line_pub(format!("{id} campaigns"));
        }
        "propose" => {
            let id = first();
            let data = cmd.positional.get(1).cloned().unwrap_or_default();
            let count = cmd.u64_arg("count").unwrap_or(1);
            for i in 0..count {
                let d = if count == 1 {
                    data.clone()
                } else {
                    format!("{data}{i}")
                };
                if let Err(e) = c.nodes.get_mut(&id).expect("node").raw.propose(d.into_bytes()) {
                    c.line_pub(format!("{id} propose error: {e:?}"));
                }
            }
        }
        "propose-conf-change" => {
            let id = first();
            let node = &mut c.nodes.get_mut(&id).expect("node").raw;
            let result = if cmd.bool_arg("v1") == Some(true) {
                let v2 = parse_changes(cmd);
                assert_eq!(v2.changes.len(), 1, "v1 carries one change");
                let mut cc = ConfChange {
                    id: 0,
                    r#type: 0,
                    node_id: v2.changes[0].node_id,
                    context: Vec::new(),
                };
                cc.set_type(v2.changes[0].r#type());
                node.propose_conf_change_v1(cc)
            } else {
                node.propose_conf_change(parse_changes(cmd))
            };
            if let Err(e) = result {
                c.line_pub(format!("{id} propose-conf-change error: {e:?}"));
            }
        }
        "tick" => {
            let id = first();
            let count: u64 = cmd
                .positional
                .get(1)
                .map(|s| s.parse().expect("count"))
                .unwrap_or(1);
            for _ in 0..count {
                c.nodes.get_mut(&id).expect("node").raw.tick();
            }
        }
        "deliver" => {
            let n = c.deliver(cmd.u64_arg("from"), cmd.u64_arg("to"), cmd.get("type"));
            if n == 0 {
                c.line_pub("no messages".to_string());
            }
        }
        "drop" => {
            let n = c.drop_msgs(cmd.u64_arg("from"), cmd.u64_arg("to"), cmd.get("type"));
            if n == 0 {
                c.line_pub("no messages".to_string());
            }
        }
        "partition" => {
            // `partition 1 2 / 3 4 5`
            let slash = cmd
                .positional
                .iter()
                .position(|s| s == "/")
                .expect("partition a / b");
            let parse = |v: &[String]| {
                v.iter()
                    .map(|s| s.parse::<u64>().expect("id"))
                    .collect::<Vec<_>>()
            };
            let a = parse(&cmd.positional[..slash]);
            let b = parse(&cmd.positional[slash + 1..]);
            c.partition(&a, &b);
        }
        "heal" => c.heal(),
        "process-ready" => {
            for id in cmd.ids() {
                if c.nodes[&id].raw.has_ready() {
                    c.process_ready(id);
                } else {
                    c.line_pub(format!("> {id} has no Ready"));
                }
            }
        }
        "stabilize" => {
            let ids = cmd.ids();
            c.stabilize(if ids.is_empty() { None } else { Some(&ids) });
        }
        "transfer-leader" => {
            let from = cmd.u64_arg("from").expect("from=");
            let to = cmd.u64_arg("to").expect("to=");
            c.nodes.get_mut(&from).expect("node").raw.transfer_leader(to);
        }
        "read-index" => {
            let id = first();
            let ctx = cmd.positional.get(1).cloned().unwrap_or_default();
            if let Err(e) = c
                .nodes
                .get_mut(&id)
                .expect("node")
                .raw
                .read_index(ctx.into_bytes())
            {
                c.line_pub(format!("{id} read-index error: {e:?}"));
            }
        }
        "compact" => {
            let id = first();
            let index: u64 = cmd.positional[1].parse().expect("index");
            c.compact(id, index);
        }
        "report-unreachable" => {
            let id = first();
            let peer: u64 = cmd.positional[1].parse().expect("peer");
            c.nodes.get_mut(&id).expect("node").raw.report_unreachable(peer);
        }
        "report-snapshot" => {
            let id = first();
            let peer: u64 = cmd.positional[1].parse().expect("peer");
            let ok = cmd.positional.get(2).is_none_or(|s| s == "ok");
            c.nodes.get_mut(&id).expect("node").raw.report_snapshot(peer, ok);
        }
        "restart" => c.restart(first()),
        "lose-commit" => {
            // A crash lost the last commit-only HardState (it needs no sync) and the
            // state machine's progress past `commit=`.
            let id = first();
            let commit = cmd.u64_arg("commit").expect("commit=");
            let st = &mut c.nodes.get_mut(&id).expect("node").storage;
            st.hard_state.commit = commit;
            st.applied = st.applied.min(commit);
            c.line_pub(format!("{id} lost commit past {commit}"));
        }
        "status" => c.render_status(first()),
        "log" => c.render_log(first()),
        "raft-state" => c.raft_state(),
        other => panic!("line {}: unknown command {other}", cmd.line),
    }
    c.check_all_invariants();
    c.take_output()
}

/// Runs a script of commands (one per line, blank lines and `#` comments skipped)
/// and returns the concatenated transcript.
pub fn run_script(c: &mut Cluster, script: &str) -> String {
    let mut out = String::new();
    for (i, line) in script.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push_str(&run(c, &Command::parse(line, i + 1)));
    }
    out
}
