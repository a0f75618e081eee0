//! Application snapshots of a large state: taken only once the entries since the
//! last one outweigh it, encoded a slice per input (so no single input pays for
//! the whole state), and exactly the state at their index (a member restarted
//! from one, plus the entries after it, rebuilds the same state).

#[path = "support/mem_disk.rs"]
mod mem_disk;

use detcd_core::node::{
    Credentials, ExportProgress, Input, Node, NodeConfig, NodeStart, Output, Request,
    SNAPSHOT_SIZE_FREE_BYTES, SNAPSHOT_STEP_BYTES,
};
use detcd_proto::etcdserverpb::{Member, PutRequest};
use mem_disk::{Drained, MemDisk};

const VALUE_BYTES: usize = 48 << 10;

/// One member with an in-memory disk that is durable as soon as written.
struct Member1 {
    node: Node,
    config: NodeConfig,
    now_ms: u64,
    disk: MemDisk,
    /// (index, applied index when it came out, state bytes) of each saved snapshot.
    saved: Vec<(u64, u64, usize)>,
    /// Progress of exports, as it came out.
    exported: Vec<(u64, ExportProgress)>,
    next_client: u64,
}

impl Member1 {
    fn start(config: NodeConfig, start: NodeStart) -> Member1 {
        let node = Node::new(config.clone(), start).expect("starts");
        let mut m = Member1 {
            node,
            config,
            now_ms: 0,
            disk: MemDisk::default(),
            saved: Vec::new(),
            exported: Vec::new(),
            next_client: 1,
        };
        m.drain();
        m
    }

    fn input(&mut self, input: Input) {
        self.node.handle(input);
        self.drain();
    }

    fn drain(&mut self) {
        let (saved, exported) = (&mut self.saved, &mut self.exported);
        self.disk
            .drain(&mut self.node, false, |node, drained| match drained {
                Drained::SnapshotSaved { index, bytes } => saved.push((index, node.applied_index(), bytes)),
                Drained::Output(out) => {
                    if let Output::SnapshotExport { export, progress } = *out {
                        exported.push((export, progress));
                    }
                }
                Drained::Persisted { .. } => {}
            });
    }

    fn tick(&mut self) {
        self.now_ms += 100;
        self.input(Input::Tick { now_ms: self.now_ms });
    }

    fn put(&mut self, i: u64) {
        let id = self.next_client;
        self.next_client += 1;
        let request = Request::Put(PutRequest {
            key: format!("key-{:04}", i % 300).into_bytes(),
            value: vec![(i % 251) as u8; VALUE_BYTES],
            ..Default::default()
        });
        self.input(Input::Client {
            id,
            request,
            credentials: Credentials::None,
        });
    }

    fn restarted(&self) -> Member1 {
        Member1::start(self.config.clone(), self.disk.recover())
    }
}

#[test]
fn large_state_snapshots_are_sliced_spaced_and_exact() {
    let member = Member {
        id: 1,
        peer_ur_ls: vec!["http://n1:2380".to_string()],
        ..Default::default()
    };
    let mut config = NodeConfig::new(1, 0xc1, "n1", vec![member]);
    config.snapshot_count = 20;
    config.seed = 7;
    let mut m = Member1::start(config, NodeStart::Found);
    while m.node.soft_state().leader == 0 {
        m.tick();
    }
    // About 48 KiB per entry: 600 entries are about 29 MiB of writes over 300 keys,
    // so the state passes the size below which snapshots go by count alone.
    for i in 0..600 {
        m.put(i);
        m.tick();
    }
    assert!(m.saved.len() >= 4, "snapshots taken: {:?}", m.saved);
    let mut sliced = 0;
    for pair in m.saved.windows(2) {
        let ((prev_index, _, prev_bytes), (index, came_out_at, bytes)) = (pair[0], pair[1]);
        assert!(index >= prev_index + 20, "snapshot_count honoured: {:?}", m.saved);
        if prev_bytes as u64 > SNAPSHOT_SIZE_FREE_BYTES {
            // Spaced by size: the entries in between hold at least the last state.
            let between = (index - prev_index) as usize * VALUE_BYTES;
            assert!(
                between >= prev_bytes,
                "snapshot at {index} too soon after {prev_index}: {:?}",
                m.saved
            );
        }
        if bytes > 2 * SNAPSHOT_STEP_BYTES {
            // Encoded over several inputs: it came out after more entries applied.
            assert!(
                came_out_at > index,
                "snapshot at {index} of {bytes} bytes came out in one input"
            );
            sliced += 1;
        }
    }
    assert!(
        sliced >= 2,
        "no snapshot was large enough to be sliced: {:?}",
        m.saved
    );
    let last = m.saved.last().unwrap().2;
    assert!(
        last as u64 > SNAPSHOT_SIZE_FREE_BYTES,
        "state stayed small: {:?}",
        m.saved
    );

    // The latest snapshot plus the entries after it rebuild the same state.
    let applied = m.node.applied_index();
    let r = m.restarted();
    assert_eq!(r.node.applied_index(), applied);
    assert_eq!(r.node.store().to_snapshot(), m.node.store().to_snapshot());
    assert!(
        m.disk.snapshot_index() < applied,
        "the restart replays entries after the snapshot"
    );
}

/// An export (the Maintenance snapshot) is encoded a slice per input, the driver
/// asking for each next slice; what it ends with is the state when it started,
/// although writes applied in between.
#[test]
fn an_export_is_sliced_and_holds_the_state_it_started_from() {
    let member = Member {
        id: 1,
        peer_ur_ls: vec!["http://n1:2380".to_string()],
        ..Default::default()
    };
    let mut config = NodeConfig::new(1, 0xc1, "n1", vec![member]);
    config.snapshot_count = 100_000;
    let mut m = Member1::start(config, NodeStart::Found);
    while m.node.soft_state().leader == 0 {
        m.tick();
    }
    for i in 0..100 {
        m.put(i);
    }
    let expected = m.node.app_snapshot();
    assert!(
        expected.len() > 2 * SNAPSHOT_STEP_BYTES,
        "{} bytes",
        expected.len()
    );
    m.input(Input::ExportSnapshot { export: 9 });
    let mut slices = 1;
    loop {
        let (export, progress) = m.exported.pop().expect("the export answers every input");
        assert_eq!(export, 9);
        match progress {
            ExportProgress::Pending => {
                // A write between slices does not reach the export.
                m.put(1000 + slices);
                m.input(Input::ExportSnapshot { export: 9 });
                slices += 1;
            }
            ExportProgress::Done(data) => {
                assert!(
                    data == expected,
                    "the export differs from the state it started from"
                );
                break;
            }
        }
    }
    assert!(slices >= 2, "encoded in one input");
    assert!(m.node.app_snapshot() != expected, "the writes in between applied");
}
