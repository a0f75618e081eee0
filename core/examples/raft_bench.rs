//! Committed proposals per second through a 3-node in-memory cluster of the core
//! alone: no disk, no network, no clock inside the state machines (the wall clock
//! here only measures). Proposals are batched: each round proposes a batch on the
//! leader, then every node's Ready is persisted to memory, its messages delivered,
//! and the round repeats until the batch is committed everywhere.
//!
//! Run: `cargo run --release -p detcd-core --example raft_bench [batch] [total]`.

use std::collections::VecDeque;
use std::time::Instant;

use detcd_core::raft::{Config, RawNode, Role, Start};
use detcd_proto::raftpb::{ConfState, Message};

struct Node {
    raw: RawNode,
    /// Stand-in for durable storage: only the length matters here.
    persisted_entries: u64,
    applied: u64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().map_or(4096, |s| s.parse().expect("batch size"));
    let total: u64 = args
        .next()
        .map_or(5_000_000, |s| s.parse().expect("total proposals"));
    let cs = ConfState {
        voters: vec![1, 2, 3],
        ..Default::default()
    };
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut cfg = Config::new(id);
            cfg.inflight_msgs_max = 1024;
            cfg.append_bytes_max = 4 * 1024 * 1024;
            Node {
                raw: RawNode::new(cfg, Start::Bootstrap(cs.clone())).expect("valid"),
                persisted_entries: 0,
                applied: 0,
            }
        })
        .collect();
    let mut queues: Vec<VecDeque<Message>> = vec![VecDeque::new(); 4];
    // Persist the bootstrap snapshot first: a node does not campaign while it
    // has a snapshot it has not handed to the application.
    pump(&mut nodes, &mut queues);
    nodes[0].raw.campaign();
    pump(&mut nodes, &mut queues);
    assert_eq!(nodes[0].raw.status().role, Role::Leader);

    let payload = vec![b'x'; 16];
    let base = nodes[0].applied;
    let start = Instant::now();
    let mut proposed = 0u64;
    while proposed < total {
        let n = batch.min((total - proposed) as usize);
        nodes[0]
            .raw
            .propose_batch(vec![payload.clone(); n])
            .expect("leader accepts");
        proposed += n as u64;
        pump(&mut nodes, &mut queues);
    }
    let elapsed = start.elapsed();
    let committed = nodes.iter().map(|n| n.applied - base).min().expect("nodes");
    assert_eq!(committed, total, "every proposal applied on every node");
    let per_sec = committed as f64 / elapsed.as_secs_f64();
    println!(
        "raft_bench: 3 nodes, batch {batch}, {committed} proposals committed and applied on all nodes in {:.3}s: {:.0} proposals/s",
        elapsed.as_secs_f64(),
        per_sec
    );
    let persisted: u64 = nodes.iter().map(|n| n.persisted_entries).sum();
    println!("raft_bench: {persisted} entries persisted in total (in memory)");
}

/// Processes readies and delivers messages until the cluster is quiet.
fn pump(nodes: &mut [Node], queues: &mut [VecDeque<Message>]) {
    loop {
        let mut moved = false;
        for node in nodes.iter_mut() {
            while node.raw.has_ready() {
                moved = true;
                let rd = node.raw.ready();
                node.persisted_entries += rd.entries.len() as u64;
                node.applied += rd.committed_entries.iter().filter(|e| !e.data.is_empty()).count() as u64;
                for m in rd.messages {
                    queues[m.to as usize].push_back(m);
                }
                node.raw.advance(rd.number);
            }
        }
        for (i, node) in nodes.iter_mut().enumerate() {
            while let Some(m) = queues[i + 1].pop_front() {
                moved = true;
                node.raw.step(m).expect("step");
            }
        }
        if !moved {
            return;
        }
    }
}
