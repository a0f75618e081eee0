//! etcd's backend schema: what `write_head` and `write_records` put in a bbolt
//! file reads back through `read_head`, `for_each_record` and `db_status`.

use std::io::Cursor;

use detcd_core::mvcc::Revision;
use detcd_core::node::{PortableHead, PortableRecord};
use detcd_proto::authpb::{Role, User};
use detcd_proto::etcdserverpb::Member;
use detcd_proto::mvccpb::KeyValue;
use detcd_storage::bolt::{BoltReader, BoltWriter};
use detcd_storage::etcd_db::{self, BucketSink};
use prost::Message;

fn record(main: i64, sub: i64, key: &str, tombstone: bool) -> PortableRecord {
    let revision = Revision::new(main, sub);
    let kv = if tombstone {
        KeyValue {
            key: key.into(),
            ..Default::default()
        }
    } else {
        KeyValue {
            key: key.into(),
            create_revision: main,
            mod_revision: main,
            version: 1,
            value: vec![b'v'; 300],
            lease: 0,
        }
    };
    PortableRecord {
        revision,
        backend_key: revision.to_bytes(tombstone),
        value: kv.encode_to_vec(),
    }
}

/// An export of `head` and `records` into `sink`, as the server writes one.
fn export(sink: &mut impl BucketSink, head: &PortableHead, records: &[PortableRecord]) {
    etcd_db::write_head(sink, head).unwrap();
    sink.begin_bucket(etcd_db::KEY_BUCKET).unwrap();
    for slice in records.chunks(100) {
        etcd_db::write_records(sink, slice).unwrap();
    }
    sink.end_bucket().unwrap();
    etcd_db::write_meta(sink, head, head.compact_revision).unwrap();
}

#[test]
fn a_written_database_reads_back_in_etcds_terms() {
    let head = PortableHead {
        applied_index: 42,
        applied_term: 3,
        cluster_id: 7,
        members: vec![Member {
            id: 0xabc,
            name: "m\"1".into(),
            peer_ur_ls: vec!["http://a:2380".into()],
            ..Default::default()
        }],
        removed_members: vec![9],
        alarms: vec![(0xabc, 1)],
        leases: vec![(5, 60, 0), (6, 900, 30)],
        auth_enabled: true,
        auth_revision: 12,
        users: vec![User {
            name: b"root".to_vec(),
            password: b"$2a$10$hash".to_vec(),
            roles: vec!["root".into()],
            options: None,
        }],
        roles: vec![Role {
            name: b"reader".to_vec(),
            key_permission: Vec::new(),
        }],
        current_revision: 2001,
        compact_revision: 1000,
        last_record: Some(Revision::new(2001, 0)),
    };
    let records: Vec<PortableRecord> = (1000..=2001)
        .map(|main| record(main, 0, &format!("key{}", main % 97), main % 10 == 0))
        .collect();
    let mut w = BoltWriter::new(Cursor::new(Vec::new())).unwrap();
    export(&mut w, &head, &records);
    let (out, _) = w.finish().unwrap();
    let db = BoltReader::open(out.into_inner()).unwrap();

    // The hash computed while exporting equals etcd's backend hash of the file.
    let mut hasher = etcd_db::BackendHasher::default();
    export(&mut hasher, &head, &records);
    let streamed = hasher.finish().unwrap();
    assert_eq!(streamed, etcd_db::backend_hash(&db).unwrap());
    // consistent_index is left out, as etcd's DefaultIgnores; every other key counts.
    let mut moved = head.clone();
    moved.applied_index += 1;
    let mut again = etcd_db::BackendHasher::default();
    export(&mut again, &moved, &records);
    assert_eq!(again.finish().unwrap(), streamed);
    assert_ne!(
        etcd_db::db_status(&db).unwrap().hash,
        streamed,
        "snapshot status's hash covers it"
    );

    let back = etcd_db::read_head(&db).unwrap();
    assert_eq!(back.applied_index, 42);
    assert_eq!(back.applied_term, 3);
    assert_eq!(back.leases, head.leases);
    assert_eq!((back.auth_enabled, back.auth_revision), (true, 12));
    assert_eq!(
        (back.users.clone(), back.roles.clone()),
        (head.users.clone(), head.roles.clone())
    );
    assert_eq!(back.alarms, head.alarms);
    assert_eq!(back.compact_revision, 1000);
    assert_eq!(back.current_revision, 2001);
    assert_eq!(back.last_record, head.last_record);
    assert!(
        back.members.is_empty(),
        "membership comes from the restore's flags"
    );

    let mut seen = Vec::new();
    etcd_db::for_each_record(&db, &mut |rev, tombstone, value| {
        seen.push((rev, tombstone, value.to_vec()));
        Ok(())
    })
    .unwrap();
    let want: Vec<_> = records
        .iter()
        .map(|r| (r.revision, r.backend_key.len() == 18, r.value.clone()))
        .collect();
    assert_eq!(seen, want);

    let status = etcd_db::db_status(&db).unwrap();
    assert_eq!(status.revision, 2001);
    assert_eq!(status.total_size, db.size_bytes());
    // keys: records, meta (5), leases (2), auth (2), users, roles, members, removed, cluster, alarm
    assert_eq!(
        status.total_keys,
        records.len() as u64 + 5 + 2 + 2 + 1 + 1 + 1 + 1 + 1 + 1
    );
    let member = db.get(etcd_db::MEMBERS_BUCKET, b"abc").unwrap().unwrap();
    assert_eq!(
        String::from_utf8(member).unwrap(),
        r#"{"id":2748,"peerURLs":["http://a:2380"],"name":"m\"1"}"#
    );
}

#[test]
fn a_bad_revision_key_is_refused() {
    assert!(etcd_db::parse_revision(b"short").is_err());
    let mut k = Revision::new(1, 2).to_bytes(false);
    k[8] = b'x';
    assert!(etcd_db::parse_revision(&k).is_err());
    let mut t = Revision::new(1, 2).to_bytes(true);
    assert_eq!(etcd_db::parse_revision(&t).unwrap(), (Revision::new(1, 2), true));
    t[17] = b'u';
    assert!(etcd_db::parse_revision(&t).is_err());
}
