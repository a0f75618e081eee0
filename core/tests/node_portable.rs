//! The export in etcd's terms (`node::portable`): read a slice at a time while the
//! member keeps taking writes, it is exactly the state at its head; a compaction
//! in between at a revision the head holds moves the export's compaction with it,
//! one beyond the head's revision makes the next slice fail; and the import
//! (`node::import`) of an export rebuilds a store with the same HashKV and
//! revisions.

#[path = "support/mem_disk.rs"]
mod mem_disk;

use detcd_core::mvcc::Revision;
use detcd_core::node::{
    Credentials, ImportTarget, Importer, Input, Node, NodeConfig, NodeStart, PortableError, PortableHead,
    PortableRecord, Request,
};
use detcd_proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, Member, PutRequest};
use detcd_proto::mvccpb::KeyValue;
use detcd_proto::raftpb::{ConfState, HardState, Snapshot, SnapshotMetadata};
use mem_disk::MemDisk;
use prost::Message;

struct Member1 {
    node: Node,
    now_ms: u64,
    disk: MemDisk,
    next_client: u64,
}

impl Member1 {
    fn start(config: NodeConfig, start: NodeStart) -> Member1 {
        let mut m = Member1 {
            node: Node::new(config, start).expect("starts"),
            now_ms: 0,
            disk: MemDisk::default(),
            next_client: 1,
        };
        m.drain();
        while m.node.soft_state().leader == 0 {
            m.now_ms += 100;
            m.input(Input::Tick { now_ms: m.now_ms });
        }
        m
    }

    fn input(&mut self, input: Input) {
        self.node.handle(input);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(output) = self.node.poll() {
            self.disk.serve(&mut self.node, output);
        }
    }

    fn call(&mut self, request: Request) {
        let id = self.next_client;
        self.next_client += 1;
        self.input(Input::Client {
            id,
            request,
            credentials: Credentials::None,
        });
    }

    fn put(&mut self, key: &str, value: &str) {
        self.call(Request::Put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        }));
    }
}

fn config(id: u64) -> NodeConfig {
    let member = Member {
        id,
        name: "n1".to_string(),
        peer_ur_ls: vec!["http://n1:2380".to_string()],
        ..Default::default()
    };
    let mut config = NodeConfig::new(id, 0xc1, "n1", vec![member]);
    config.seed = 3;
    config
}

fn populated() -> Member1 {
    let mut m = Member1::start(config(1), NodeStart::Found);
    for i in 0..60 {
        m.put(&format!("k{:02}", i % 25), &format!("v{i}"));
    }
    m.call(Request::DeleteRange(DeleteRangeRequest {
        key: b"k03".to_vec(),
        ..Default::default()
    }));
    m
}

/// A member started from the import of an export (`head` and its `records`).
fn import(head: &PortableHead, records: &[PortableRecord]) -> Member1 {
    let mut importer = Importer::default();
    for r in records {
        let kv = KeyValue::decode(r.value.as_slice()).expect("KeyValue");
        let tombstone = r.backend_key.len() == 18;
        importer.push(r.revision, tombstone, kv).expect("push");
    }
    let target = ImportTarget {
        applied_index: 1,
        applied_term: 1,
        cluster_id: 0xc1,
        members: head.members.clone(),
        bump_revision: 0,
        mark_compacted: false,
    };
    let data = importer.finish(head, &target).expect("import");
    let snapshot = Snapshot {
        data,
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: vec![1],
                ..Default::default()
            }),
            index: 1,
            term: 1,
        }),
    };
    Member1::start(
        config(1),
        NodeStart::Recover {
            snapshot,
            hard_state: HardState {
                term: 1,
                vote: 0,
                commit: 1,
            },
            entries: Vec::new(),
        },
    )
}

/// The records of a sliced export and the compaction revision its last slice saw.
fn export_sliced(
    m: &mut Member1,
    records_max: usize,
    between: &mut dyn FnMut(&mut Member1),
) -> Result<(Vec<PortableRecord>, i64), PortableError> {
    let head = m.node.portable_head();
    let mut out = Vec::new();
    let mut compact_revision = head.compact_revision;
    let mut from = Some(Revision::new(i64::MIN, i64::MIN));
    while let Some(at) = from {
        let slice = m.node.portable_records(head.bound(), at, records_max)?;
        out.extend(slice.records);
        compact_revision = compact_revision.max(slice.compact_revision);
        from = slice.next;
        between(m);
    }
    Ok((out, compact_revision))
}

#[test]
fn a_sliced_export_is_the_state_at_its_head_while_writes_go_on() {
    let mut m = populated();
    let head = m.node.portable_head();
    let slice = m
        .node
        .portable_records(head.bound(), Revision::new(i64::MIN, i64::MIN), usize::MAX)
        .expect("export");
    assert_eq!(slice.next, None);
    let whole = slice.records;
    assert_eq!(whole.len(), 61, "60 puts and a tombstone, nothing compacted");
    assert!(whole.last().expect("records").backend_key.ends_with(b"t"));
    let mut n = 0;
    let (sliced, _) = export_sliced(&mut m, 7, &mut |m| {
        n += 1;
        m.put(&format!("late{n}"), "x");
    })
    .expect("no compaction in between");
    assert_eq!(sliced, whole, "writes during the export are left out");
    assert!(n >= 9, "read in slices of 7: {n}");
    // A restart exports the same head (the export reads only replicated state).
    let restarted = Member1::start(config(1), m.disk.recover());
    let (a, b) = (m.node.portable_head(), restarted.node.portable_head());
    assert_eq!(
        (a.last_record, a.leases, a.members),
        (b.last_record, b.leases, b.members)
    );
}

#[test]
fn a_compaction_beyond_the_heads_revision_fails_the_next_slice() {
    let mut m = populated();
    let result = export_sliced(&mut m, 10, &mut |m| {
        m.put("after-the-head", "x");
        let revision = m.node.store().revision();
        m.call(Request::Compact(CompactionRequest {
            revision,
            physical: false,
        }));
    });
    assert_eq!(result, Err(PortableError::Compacted));
}

#[test]
fn a_compaction_the_head_holds_moves_the_exports_compaction_and_imports_as_the_state() {
    let mut m = populated();
    let head = m.node.portable_head();
    let revision = m.node.store().revision();
    let mut slices = 0;
    let (records, compact_revision) = export_sliced(&mut m, 9, &mut |m| {
        slices += 1;
        m.put(&format!("late{slices}"), "x");
        if slices == 3 {
            m.call(Request::Compact(CompactionRequest {
                revision: revision - 10,
                physical: false,
            }));
        }
    })
    .expect("a compaction at a revision the head holds");
    assert_eq!(compact_revision, revision - 10);
    // What was written before the compaction stays in the file, below it.
    assert!(records.iter().any(|r| r.revision.main < revision - 10));
    let mut moved = head.clone();
    moved.compact_revision = compact_revision;
    let restored = import(&moved, &records);
    let ours = restored.node.store();
    assert_eq!(ours.compact_revision(), revision - 10);
    assert_eq!(ours.revision(), revision);
    // The head's state compacted at the same revision: the member's own store at
    // `revision`, read through HashKV (which covers history from the compaction on).
    assert_eq!(
        ours.hash_kv(revision).expect("hash").hash,
        m.node.store().hash_kv(revision).expect("hash").hash,
        "the imported export is the head's state compacted at {}",
        revision - 10
    );
}

#[test]
fn an_import_of_an_export_serves_the_same_history() {
    let mut m = populated();
    let revision = m.node.store().revision();
    m.call(Request::Compact(CompactionRequest {
        revision: revision - 20,
        physical: false,
    }));
    let head = m.node.portable_head();
    let (records, _) = export_sliced(&mut m, 13, &mut |_| {}).expect("export");
    let restored = import(&head, &records);
    let (a, b) = (m.node.store(), restored.node.store());
    assert_eq!(a.revision(), b.revision());
    assert_eq!(a.compact_revision(), b.compact_revision());
    for at in [0, revision - 20, revision - 5] {
        assert_eq!(
            a.hash_kv(at).expect("hash").hash,
            b.hash_kv(at).expect("hash").hash,
            "HashKV at {at}"
        );
    }
}
