//! Wire-format checks: encodings of etcd messages pinned byte for byte, so that a
//! wrong field number in the .proto files fails here rather than in an etcd client.
//!
//! A protobuf key is `(field_number << 3) | wire_type`; wire type 0 is a varint,
//! 2 is length-delimited. Each expected byte string is spelled out by hand.

use detcd_proto::{authpb, etcdserverpb as pb, health, mvccpb, v3electionpb, v3lockpb};
use prost::Message;

fn encoded(message: &impl Message) -> Vec<u8> {
    message.encode_to_vec()
}

#[test]
fn range_request_key_and_limit() {
    let request = pb::RangeRequest {
        key: b"a".to_vec(),
        limit: 5,
        ..Default::default()
    };
    // key = field 1 (0x0a, len 1, 'a'); limit = field 3 varint (0x18, 5).
    assert_eq!(encoded(&request), [0x0a, 0x01, 0x61, 0x18, 0x05]);
}

#[test]
fn range_request_sort_and_revision_filters() {
    let request = pb::RangeRequest {
        sort_order: pb::range_request::SortOrder::Descend as i32,
        sort_target: pb::range_request::SortTarget::Mod as i32,
        serializable: true,
        max_create_revision: 9,
        ..Default::default()
    };
    // sort_order = 5 (0x28), sort_target = 6 (0x30), serializable = 7 (0x38),
    // max_create_revision = 13 (0x68).
    assert_eq!(
        encoded(&request),
        [0x28, 0x02, 0x30, 0x03, 0x38, 0x01, 0x68, 0x09]
    );
}

#[test]
fn put_request_prev_kv_is_field_4() {
    let request = pb::PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        lease: 3,
        prev_kv: true,
        ignore_lease: true,
        ..Default::default()
    };
    assert_eq!(
        encoded(&request),
        [0x0a, 0x01, b'k', 0x12, 0x01, b'v', 0x18, 0x03, 0x20, 0x01, 0x30, 0x01]
    );
}

#[test]
fn key_value_fields() {
    let kv = mvccpb::KeyValue {
        key: b"k".to_vec(),
        create_revision: 2,
        mod_revision: 3,
        version: 4,
        value: b"v".to_vec(),
        lease: 6,
    };
    assert_eq!(
        encoded(&kv),
        [0x0a, 0x01, b'k', 0x10, 0x02, 0x18, 0x03, 0x20, 0x04, 0x2a, 0x01, b'v', 0x30, 0x06]
    );
}

#[test]
fn event_type_values_and_prev_kv() {
    assert_eq!(mvccpb::event::EventType::Put as i32, 0);
    assert_eq!(mvccpb::event::EventType::Delete as i32, 1);
    let event = mvccpb::Event {
        r#type: mvccpb::event::EventType::Delete as i32,
        kv: None,
        prev_kv: Some(mvccpb::KeyValue {
            lease: 1,
            ..Default::default()
        }),
    };
    // type = field 1 (0x08, 1); prev_kv = field 3 (0x1a, len 2, {lease: 1}).
    assert_eq!(encoded(&event), [0x08, 0x01, 0x1a, 0x02, 0x30, 0x01]);
}

#[test]
fn watch_create_request_watch_id_is_field_7() {
    let request = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: b"a".to_vec(),
                filters: vec![pb::watch_create_request::FilterType::Nodelete as i32],
                prev_kv: true,
                watch_id: 7,
                fragment: true,
                ..Default::default()
            },
        )),
    };
    // Outer: create_request = field 1. Inner: key = 1, filters = 5 (packed:
    // 0x2a, len 1, NODELETE), prev_kv = 6 (0x30), watch_id = 7 (0x38),
    // fragment = 8 (0x40).
    let inner = [
        0x0a, 0x01, b'a', 0x2a, 0x01, 0x01, 0x30, 0x01, 0x38, 0x07, 0x40, 0x01,
    ];
    let mut expected = vec![0x0a, inner.len() as u8];
    expected.extend_from_slice(&inner);
    assert_eq!(encoded(&request), expected);
}

#[test]
fn watch_request_cancel_and_progress_arms() {
    let cancel = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CancelRequest(
            pb::WatchCancelRequest { watch_id: 4 },
        )),
    };
    assert_eq!(encoded(&cancel), [0x12, 0x02, 0x08, 0x04]);
    // An empty message in a oneof is still sent, so the server sees the arm.
    let progress = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(
            pb::WatchProgressRequest {},
        )),
    };
    assert_eq!(encoded(&progress), [0x1a, 0x00]);
}

#[test]
fn watch_response_events_are_field_11() {
    let response = pb::WatchResponse {
        watch_id: 1,
        canceled: true,
        compact_revision: 5,
        cancel_reason: "x".to_owned(),
        fragment: true,
        events: vec![mvccpb::Event::default()],
        ..Default::default()
    };
    assert_eq!(
        encoded(&response),
        [0x10, 0x01, 0x20, 0x01, 0x28, 0x05, 0x32, 0x01, b'x', 0x38, 0x01, 0x5a, 0x00]
    );
}

#[test]
fn compare_target_union_and_range_end_64() {
    let compare = pb::Compare {
        result: pb::compare::CompareResult::NotEqual as i32,
        target: pb::compare::CompareTarget::Value as i32,
        key: b"k".to_vec(),
        target_union: Some(pb::compare::TargetUnion::Value(b"v".to_vec())),
        range_end: b"z".to_vec(),
    };
    // result = 1, target = 2, key = 3, value = 7 (0x3a), range_end = 64
    // (key 64 << 3 | 2 = 514 = varint 0x82 0x04).
    assert_eq!(
        encoded(&compare),
        [0x08, 0x03, 0x10, 0x03, 0x1a, 0x01, b'k', 0x3a, 0x01, b'v', 0x82, 0x04, 0x01, b'z']
    );
}

#[test]
fn compare_zero_in_target_union_is_still_sent() {
    // "mod_revision == 0" (the key does not exist) must reach the server: a set
    // oneof member is encoded even when it holds the default value.
    let compare = pb::Compare {
        target: pb::compare::CompareTarget::Mod as i32,
        key: b"k".to_vec(),
        target_union: Some(pb::compare::TargetUnion::ModRevision(0)),
        ..Default::default()
    };
    assert_eq!(encoded(&compare), [0x10, 0x02, 0x1a, 0x01, b'k', 0x30, 0x00]);
    let lease = pb::Compare {
        target: pb::compare::CompareTarget::Lease as i32,
        target_union: Some(pb::compare::TargetUnion::Lease(9)),
        ..Default::default()
    };
    assert_eq!(encoded(&lease), [0x10, 0x04, 0x40, 0x09]);
}

#[test]
fn txn_with_nested_txn_round_trips() {
    let nested = pb::TxnRequest {
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    let outer = pb::TxnRequest {
        failure: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestTxn(nested.clone())),
        }],
        ..Default::default()
    };
    // failure = field 3; request_txn = field 4 of RequestOp (0x22);
    // success = field 2; request_put = field 2 of RequestOp (0x12).
    let put = [0x0a, 0x01, b'k'];
    let op_put = [&[0x12, put.len() as u8][..], &put].concat();
    let txn = [&[0x12, op_put.len() as u8][..], &op_put].concat();
    let op_txn = [&[0x22, txn.len() as u8][..], &txn].concat();
    let expected = [&[0x1a, op_txn.len() as u8][..], &op_txn].concat();
    assert_eq!(encoded(&outer), expected);
    assert_eq!(pb::TxnRequest::decode(&expected[..]).unwrap(), outer);
}

#[test]
fn response_header_and_range_response() {
    let response = pb::RangeResponse {
        header: Some(pb::ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 3,
            raft_term: 4,
        }),
        kvs: vec![],
        more: true,
        count: 7,
    };
    assert_eq!(
        encoded(&response),
        [0x0a, 0x08, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x20, 0x04, 0x18, 0x01, 0x20, 0x07]
    );
}

#[test]
fn lease_messages() {
    let grant = pb::LeaseGrantRequest { ttl: 10, id: 0x22 };
    assert_eq!(encoded(&grant), [0x08, 0x0a, 0x10, 0x22]);
    let ttl = pb::LeaseTimeToLiveResponse {
        header: None,
        id: 1,
        ttl: -1,
        granted_ttl: 5,
        keys: vec![b"k".to_vec()],
    };
    // TTL -1 as int64 is a 10-byte varint.
    let mut expected = vec![0x10, 0x01, 0x18];
    expected.extend_from_slice(&[0xff; 9]);
    expected.push(0x01);
    expected.extend_from_slice(&[0x20, 0x05, 0x2a, 0x01, b'k']);
    assert_eq!(encoded(&ttl), expected);
    let checkpoint = pb::LeaseCheckpointRequest {
        checkpoints: vec![pb::LeaseCheckpoint {
            id: 1,
            remaining_ttl: 2,
        }],
    };
    assert_eq!(encoded(&checkpoint), [0x0a, 0x04, 0x08, 0x01, 0x10, 0x02]);
}

#[test]
fn maintenance_fields_added_in_3_6() {
    let hash = pb::HashKvResponse {
        hash_revision: 8,
        ..Default::default()
    };
    assert_eq!(encoded(&hash), [0x20, 0x08]);
    let snapshot = pb::SnapshotResponse {
        version: "3".to_owned(),
        ..Default::default()
    };
    assert_eq!(encoded(&snapshot), [0x22, 0x01, b'3']);
    let status = pb::StatusResponse {
        is_learner: true,
        storage_version: "s".to_owned(),
        db_size_quota: 1,
        downgrade_info: Some(pb::DowngradeInfo {
            enabled: true,
            target_version: String::new(),
        }),
        ..Default::default()
    };
    assert_eq!(
        encoded(&status),
        [0x50, 0x01, 0x5a, 0x01, b's', 0x60, 0x01, 0x6a, 0x02, 0x08, 0x01]
    );
}

#[test]
fn alarm_and_member_messages() {
    let alarm = pb::AlarmRequest {
        action: pb::alarm_request::AlarmAction::Deactivate as i32,
        member_id: 5,
        alarm: pb::AlarmType::Nospace as i32,
    };
    assert_eq!(encoded(&alarm), [0x08, 0x02, 0x10, 0x05, 0x18, 0x01]);
    assert_eq!(pb::AlarmType::Corrupt as i32, 2);
    let member = pb::Member {
        id: 1,
        name: String::new(),
        peer_ur_ls: vec!["p".to_owned()],
        client_ur_ls: vec!["c".to_owned()],
        is_learner: true,
    };
    assert_eq!(
        encoded(&member),
        [0x08, 0x01, 0x1a, 0x01, b'p', 0x22, 0x01, b'c', 0x28, 0x01]
    );
    let list = pb::MemberListRequest { linearizable: true };
    assert_eq!(encoded(&list), [0x08, 0x01]);
}

#[test]
fn auth_messages() {
    let add = pb::AuthUserAddRequest {
        name: "u".to_owned(),
        options: Some(authpb::UserAddOptions { no_password: true }),
        hashed_password: "h".to_owned(),
        ..Default::default()
    };
    assert_eq!(
        encoded(&add),
        [0x0a, 0x01, b'u', 0x1a, 0x02, 0x08, 0x01, 0x22, 0x01, b'h']
    );
    let grant = pb::AuthRoleGrantPermissionRequest {
        name: "r".to_owned(),
        perm: Some(authpb::Permission {
            perm_type: authpb::permission::Type::Readwrite as i32,
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
        }),
    };
    assert_eq!(
        encoded(&grant),
        [0x0a, 0x01, b'r', 0x12, 0x08, 0x08, 0x02, 0x12, 0x01, b'a', 0x1a, 0x01, b'b']
    );
    let status = pb::AuthStatusResponse {
        header: None,
        enabled: true,
        auth_revision: 3,
    };
    assert_eq!(encoded(&status), [0x10, 0x01, 0x18, 0x03]);
}

#[test]
fn lock_and_election_messages() {
    let lock = v3lockpb::LockRequest {
        name: b"n".to_vec(),
        lease: 2,
    };
    assert_eq!(encoded(&lock), [0x0a, 0x01, b'n', 0x10, 0x02]);
    let leader = v3electionpb::LeaderKey {
        name: b"n".to_vec(),
        key: b"k".to_vec(),
        rev: 3,
        lease: 4,
    };
    assert_eq!(
        encoded(&leader),
        [0x0a, 0x01, b'n', 0x12, 0x01, b'k', 0x18, 0x03, 0x20, 0x04]
    );
    let campaign = v3electionpb::CampaignRequest {
        name: vec![],
        lease: 1,
        value: b"v".to_vec(),
    };
    assert_eq!(encoded(&campaign), [0x10, 0x01, 0x1a, 0x01, b'v']);
}

#[test]
fn health_status_values() {
    use health::health_check_response::ServingStatus;
    let response = health::HealthCheckResponse {
        status: ServingStatus::NotServing as i32,
    };
    assert_eq!(encoded(&response), [0x08, 0x02]);
    assert_eq!(ServingStatus::ServiceUnknown as i32, 3);
}

#[test]
fn decoding_tolerates_unknown_fields() {
    // A newer etcd client may send fields detcd does not know; they are skipped.
    let bytes = [0x0a, 0x01, b'a', 0xf8, 0x07, 0x01, 0x18, 0x05];
    let request = pb::RangeRequest::decode(&bytes[..]).unwrap();
    assert_eq!(request.key, b"a");
    assert_eq!(request.limit, 5);
}

#[cfg(feature = "grpc")]
mod grpc {
    use detcd_proto::{etcdserverpb as pb, health, v3electionpb, v3lockpb};
    use tonic::server::NamedService;

    fn service_name<S: NamedService>() -> &'static str {
        S::NAME
    }

    #[test]
    fn service_names_match_etcd() {
        assert_eq!(pb::kv_server::SERVICE_NAME, "etcdserverpb.KV");
        assert_eq!(pb::watch_server::SERVICE_NAME, "etcdserverpb.Watch");
        assert_eq!(pb::lease_server::SERVICE_NAME, "etcdserverpb.Lease");
        assert_eq!(pb::cluster_server::SERVICE_NAME, "etcdserverpb.Cluster");
        assert_eq!(pb::maintenance_server::SERVICE_NAME, "etcdserverpb.Maintenance");
        assert_eq!(pb::auth_server::SERVICE_NAME, "etcdserverpb.Auth");
        assert_eq!(v3lockpb::lock_server::SERVICE_NAME, "v3lockpb.Lock");
        assert_eq!(
            v3electionpb::election_server::SERVICE_NAME,
            "v3electionpb.Election"
        );
        assert_eq!(health::health_server::SERVICE_NAME, "grpc.health.v1.Health");
    }

    #[test]
    fn servers_and_clients_exist() {
        struct NoKv;
        #[tonic::async_trait]
        impl pb::kv_server::Kv for NoKv {
            async fn range(
                &self,
                _: tonic::Request<pb::RangeRequest>,
            ) -> Result<tonic::Response<pb::RangeResponse>, tonic::Status> {
                Err(tonic::Status::unimplemented("range"))
            }
            async fn put(
                &self,
                _: tonic::Request<pb::PutRequest>,
            ) -> Result<tonic::Response<pb::PutResponse>, tonic::Status> {
                Err(tonic::Status::unimplemented("put"))
            }
            async fn delete_range(
                &self,
                _: tonic::Request<pb::DeleteRangeRequest>,
            ) -> Result<tonic::Response<pb::DeleteRangeResponse>, tonic::Status> {
                Err(tonic::Status::unimplemented("delete_range"))
            }
            async fn txn(
                &self,
                _: tonic::Request<pb::TxnRequest>,
            ) -> Result<tonic::Response<pb::TxnResponse>, tonic::Status> {
                Err(tonic::Status::unimplemented("txn"))
            }
            async fn compact(
                &self,
                _: tonic::Request<pb::CompactionRequest>,
            ) -> Result<tonic::Response<pb::CompactionResponse>, tonic::Status> {
                Err(tonic::Status::unimplemented("compact"))
            }
        }
        assert_eq!(service_name::<pb::kv_server::KvServer<NoKv>>(), "etcdserverpb.KV");
        let type_name = std::any::type_name::<pb::kv_client::KvClient<()>>();
        assert!(type_name.contains("KvClient"), "{type_name}");
        let _ = std::any::type_name::<pb::watch_client::WatchClient<()>>();
        let _ = std::any::type_name::<pb::lease_client::LeaseClient<()>>();
        let _ = std::any::type_name::<pb::cluster_client::ClusterClient<()>>();
        let _ = std::any::type_name::<pb::maintenance_client::MaintenanceClient<()>>();
        let _ = std::any::type_name::<pb::auth_client::AuthClient<()>>();
        let _ = std::any::type_name::<v3lockpb::lock_client::LockClient<()>>();
        let _ = std::any::type_name::<v3electionpb::election_client::ElectionClient<()>>();
        let _ = std::any::type_name::<health::health_client::HealthClient<()>>();
    }
}
