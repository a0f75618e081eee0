//! Auth in one member: the permission checks on writes (at apply), reads (when
//! served), watches and admin RPCs, simple tokens, the auth revision, and the
//! auth store surviving a restart from a snapshot plus the WAL.

#[path = "support/mem_disk.rs"]
mod mem_disk;

use detcd_core::error::{self, EtcdError};
use detcd_core::node::{
    AuthResponse, Credentials, Input, Node, NodeConfig, NodeStart, Output, Request, Response,
};
use detcd_proto::authpb::{permission::Type as PermType, Permission};
use detcd_proto::detcdpb::{auth_raft_request::Request as Auth, InternalAuthenticate};
use detcd_proto::etcdserverpb::{
    request_op, AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest,
    AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserChangePasswordRequest, AuthUserGetRequest,
    AuthUserGrantRoleRequest, AuthUserListRequest, Compare, Member, MemberListRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchResponse,
};
use mem_disk::MemDisk;

struct Member1 {
    node: Node,
    config: NodeConfig,
    now_ms: u64,
    disk: MemDisk,
    answers: Vec<(u64, Result<Response, EtcdError>)>,
    watch: Vec<WatchResponse>,
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
            answers: Vec::new(),
            watch: Vec::new(),
            next_client: 1,
        };
        m.drain();
        while m.node.soft_state().leader == 0 {
            m.tick();
        }
        m
    }

    fn new() -> Member1 {
        let member = Member {
            id: 1,
            peer_ur_ls: vec!["http://n1:2380".to_string()],
            ..Default::default()
        };
        let mut config = NodeConfig::new(1, 0xc1, "n1", vec![member]);
        config.snapshot_count = 5;
        config.auth_token_ttl_ms = 10_000;
        Member1::start(config, NodeStart::Found)
    }

    fn drain(&mut self) {
        while let Some(output) = self.node.poll() {
            match self.disk.serve(&mut self.node, output) {
                Some(Output::Respond { id, result }) => self.answers.push((id, result)),
                Some(Output::Watch { response, .. }) => self.watch.push(response),
                _ => {}
            }
        }
    }

    fn tick(&mut self) {
        self.now_ms += 100;
        self.node.handle(Input::Tick { now_ms: self.now_ms });
        self.drain();
    }

    /// Sends a request and ticks until it is answered.
    fn call(&mut self, request: Request, credentials: Credentials) -> Result<Response, EtcdError> {
        let id = self.next_client;
        self.next_client += 1;
        self.node.handle(Input::Client {
            id,
            request,
            credentials,
        });
        self.drain();
        for _ in 0..100 {
            if let Some(at) = self.answers.iter().position(|(a, _)| *a == id) {
                return self.answers.remove(at).1;
            }
            self.tick();
        }
        panic!("request {id} unanswered");
    }

    fn auth(&mut self, request: Auth, credentials: Credentials) -> Result<Response, EtcdError> {
        self.call(Request::Auth(request), credentials)
    }

    /// Authenticate as the driver does it: the password check (compared "outside
    /// core"), then the token proposal.
    fn login(&mut self, name: &str, prefix: &str) -> Result<String, EtcdError> {
        let check = match self.call(
            Request::AuthPasswordCheck {
                name: name.to_string(),
            },
            Credentials::None,
        )? {
            Response::AuthPasswordCheck(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(check.hash, format!("hash-of-{name}").into_bytes());
        let request = Auth::Authenticate(InternalAuthenticate {
            name: name.to_string(),
            simple_token: prefix.to_string(),
            checked_revision: check.revision,
        });
        match self.auth(request, Credentials::None)? {
            Response::Auth(AuthResponse::Authenticate(a)) => Ok(a.token),
            other => panic!("{other:?}"),
        }
    }

    fn put(&mut self, key: &str, credentials: &Credentials) -> Result<Response, EtcdError> {
        let request = Request::Put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        });
        self.call(request, credentials.clone())
    }

    fn get(
        &mut self,
        key: &str,
        serializable: bool,
        credentials: &Credentials,
    ) -> Result<Response, EtcdError> {
        let request = Request::Range(RangeRequest {
            key: key.as_bytes().to_vec(),
            serializable,
            ..Default::default()
        });
        self.call(request, credentials.clone())
    }
}

fn user_add(name: &str) -> Auth {
    Auth::UserAdd(AuthUserAddRequest {
        name: name.to_string(),
        hashed_password: format!("hash-of-{name}"),
        ..Default::default()
    })
}

fn grant_role(user: &str, role: &str) -> Auth {
    Auth::UserGrantRole(AuthUserGrantRoleRequest {
        user: user.to_string(),
        role: role.to_string(),
    })
}

fn prefix_perm(kind: PermType, prefix: &str) -> Permission {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    Permission {
        perm_type: kind as i32,
        key: prefix.as_bytes().to_vec(),
        range_end: end,
    }
}

/// root (role root), alice with READWRITE on prefix `foo`, auth enabled.
fn with_auth() -> Member1 {
    let mut m = Member1::new();
    let none = Credentials::None;
    m.auth(user_add("root"), none.clone()).unwrap();
    m.auth(grant_role("root", "root"), none.clone()).unwrap();
    m.auth(user_add("alice"), none.clone()).unwrap();
    m.auth(
        Auth::RoleAdd(AuthRoleAddRequest {
            name: "foo-rw".to_string(),
        }),
        none.clone(),
    )
    .unwrap();
    let grant = AuthRoleGrantPermissionRequest {
        name: "foo-rw".to_string(),
        perm: Some(prefix_perm(PermType::Readwrite, "foo")),
    };
    m.auth(Auth::RoleGrantPermission(grant), none.clone()).unwrap();
    m.auth(grant_role("alice", "foo-rw"), none.clone()).unwrap();
    m.auth(Auth::Enable(AuthEnableRequest {}), none).unwrap();
    m
}

#[test]
fn enabling_needs_root_and_then_requests_need_a_user() {
    let mut m = Member1::new();
    let none = Credentials::None;
    assert_eq!(
        m.auth(Auth::Enable(AuthEnableRequest {}), none.clone()),
        Err(error::ROOT_USER_NOT_EXIST)
    );
    m.auth(user_add("root"), none.clone()).unwrap();
    assert_eq!(
        m.auth(Auth::Enable(AuthEnableRequest {}), none.clone()),
        Err(error::ROOT_ROLE_NOT_EXIST)
    );
    let mut m = with_auth();
    assert_eq!(m.put("foo1", &none), Err(error::USER_EMPTY));
    assert_eq!(m.get("foo1", true, &none), Err(error::USER_EMPTY));
    assert_eq!(
        m.put("foo1", &Credentials::Token("nope".to_string())),
        Err(error::INVALID_AUTH_TOKEN)
    );
    assert_eq!(m.login("ghost", "x").unwrap_err(), error::AUTH_FAILED);
    // MemberList stays open.
    assert!(m
        .call(Request::MemberList(MemberListRequest::default()), none)
        .is_ok());
}

#[test]
fn a_user_reads_and_writes_only_what_its_roles_grant() {
    let mut m = with_auth();
    let token = m.login("alice", "abcdefghijklmnop").unwrap();
    assert!(token.starts_with("abcdefghijklmnop."), "{token}");
    let alice = Credentials::Token(token);
    assert!(m.put("foo1", &alice).is_ok());
    assert!(m.get("foo1", false, &alice).is_ok());
    assert!(m.get("foo1", true, &alice).is_ok());
    assert_eq!(m.put("bar", &alice), Err(error::PERMISSION_DENIED));
    assert_eq!(m.get("bar", true, &alice), Err(error::PERMISSION_DENIED));
    assert_eq!(m.get("bar", false, &alice), Err(error::PERMISSION_DENIED));
    // A txn is checked on its compares and on both branches, nested ones too.
    let put_bar = RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: b"bar".to_vec(),
            ..Default::default()
        })),
    };
    let nested = RequestOp {
        request: Some(request_op::Request::RequestTxn(TxnRequest {
            failure: vec![put_bar.clone()],
            ..Default::default()
        })),
    };
    let compare_foo = Compare {
        key: b"foo1".to_vec(),
        ..Default::default()
    };
    for txn in [
        TxnRequest {
            failure: vec![put_bar.clone()],
            ..Default::default()
        },
        TxnRequest {
            success: vec![nested],
            ..Default::default()
        },
        TxnRequest {
            compare: vec![Compare {
                key: b"bar".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        },
    ] {
        assert_eq!(
            m.call(Request::Txn(txn), alice.clone()),
            Err(error::PERMISSION_DENIED)
        );
    }
    let allowed = TxnRequest {
        compare: vec![compare_foo],
        ..Default::default()
    };
    assert!(m.call(Request::Txn(allowed), alice.clone()).is_ok());
    // Admin RPCs need root.
    assert_eq!(
        m.auth(Auth::UserList(AuthUserListRequest {}), alice.clone()),
        Err(error::PERMISSION_DENIED)
    );
    let own = Auth::UserGet(AuthUserGetRequest {
        name: "alice".to_string(),
    });
    assert!(m.auth(own, alice.clone()).is_ok(), "a user may read itself");
    // A watch it may not read is refused as created and canceled.
    let watch = WatchCreateRequest {
        key: b"bar".to_vec(),
        ..Default::default()
    };
    assert!(m
        .call(
            Request::WatchCreate {
                stream: 1,
                request: watch
            },
            alice
        )
        .is_ok());
    let refused = m.watch.pop().expect("a watch answer");
    assert!(refused.created && refused.canceled && refused.watch_id == -1);
    assert_eq!(
        refused.cancel_reason,
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    );
}

#[test]
fn auth_changes_apply_to_requests_in_flight_and_drop_tokens() {
    let mut m = with_auth();
    let root = Credentials::Token(m.login("root", "rootrootrootroot").unwrap());
    let alice = Credentials::Token(m.login("alice", "alicealicealicea").unwrap());
    assert!(m.put("foo1", &alice).is_ok());
    // Revoking the permission applies to the next request.
    let revoke = AuthRoleRevokePermissionRequest {
        role: "foo-rw".to_string(),
        key: b"foo".to_vec(),
        range_end: b"fop".to_vec(),
    };
    m.auth(Auth::RoleRevokePermission(revoke), root.clone()).unwrap();
    assert_eq!(m.put("foo1", &alice), Err(error::PERMISSION_DENIED));
    // A request authorised under an older auth revision is refused.
    let stale = Credentials::Verified {
        user: "root".to_string(),
        revision: Some(1),
    };
    assert_eq!(m.put("foo1", &stale), Err(error::AUTH_OLD_REVISION));
    // A password change drops the user's tokens.
    let change = AuthUserChangePasswordRequest {
        name: "alice".to_string(),
        hashed_password: "hash-of-alice".to_string(),
        ..Default::default()
    };
    m.auth(Auth::UserChangePassword(change), root.clone()).unwrap();
    assert_eq!(m.get("foo1", true, &alice), Err(error::INVALID_AUTH_TOKEN));
    // Tokens expire after their TTL without use.
    for _ in 0..110 {
        m.tick();
    }
    assert_eq!(m.put("foo1", &root), Err(error::INVALID_AUTH_TOKEN));
}

#[test]
fn the_auth_store_survives_a_restart_from_snapshot_and_wal() {
    let mut m = with_auth();
    let root = Credentials::Token(m.login("root", "rootrootrootroot").unwrap());
    for i in 0..12 {
        m.put(&format!("k{i}"), &root).unwrap();
    }
    assert!(m.disk.snapshot_index() > 0, "a snapshot was taken");
    let mut again = Member1::start(m.config.clone(), m.disk.recover());
    // Tokens are member-local and gone; the users, roles and flag are not.
    assert_eq!(again.put("k", &root), Err(error::INVALID_AUTH_TOKEN));
    assert_eq!(again.put("k", &Credentials::None), Err(error::USER_EMPTY));
    let alice = Credentials::Token(again.login("alice", "alicealicealicea").unwrap());
    assert!(again.put("foo2", &alice).is_ok());
    assert_eq!(again.put("bar", &alice), Err(error::PERMISSION_DENIED));
}

#[test]
fn a_clear_password_is_refused_before_it_reaches_the_log() {
    let mut m = Member1::new();
    let clear = Auth::UserAdd(AuthUserAddRequest {
        name: "bob".to_string(),
        password: "secret".to_string(),
        ..Default::default()
    });
    assert_eq!(m.auth(clear, Credentials::None), Err(error::AUTH_FAILED));
    let get = Auth::UserGet(AuthUserGetRequest {
        name: "bob".to_string(),
    });
    assert_eq!(m.auth(get, Credentials::None), Err(error::USER_NOT_FOUND));
    let logged = m
        .disk
        .entries
        .iter()
        .any(|e| e.data.windows(6).any(|w| w == b"secret"));
    assert!(!logged, "the clear password reached the log");
}

#[test]
fn leases_need_access_to_their_keys() {
    use detcd_proto::etcdserverpb::{
        LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
    };
    let mut m = with_auth();
    let root = Credentials::Token(m.login("root", "rootrootrootroot").unwrap());
    let alice = Credentials::Token(m.login("alice", "alicealicealicea").unwrap());
    let grant = Request::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 7 });
    assert!(m.call(grant, root.clone()).is_ok());
    let put = Request::Put(PutRequest {
        key: b"bar".to_vec(),
        value: b"v".to_vec(),
        lease: 7,
        ..Default::default()
    });
    assert!(m.call(put, root.clone()).is_ok());
    let keepalive = || Request::LeaseKeepAlive(LeaseKeepAliveRequest { id: 7 });
    let ttl = || Request::LeaseTimeToLive(LeaseTimeToLiveRequest { id: 7, keys: false });
    assert_eq!(m.call(keepalive(), Credentials::None), Err(error::USER_EMPTY));
    assert_eq!(m.call(keepalive(), alice.clone()), Err(error::PERMISSION_DENIED));
    assert_eq!(m.call(ttl(), alice.clone()), Err(error::PERMISSION_DENIED));
    // Attaching alice's key to a lease holding a key she may not write is refused.
    let put_on_lease = Request::Put(PutRequest {
        key: b"foo1".to_vec(),
        lease: 7,
        ..Default::default()
    });
    assert_eq!(m.call(put_on_lease, alice.clone()), Err(error::PERMISSION_DENIED));
    let revoke = || Request::LeaseRevoke(LeaseRevokeRequest { id: 7 });
    assert_eq!(m.call(revoke(), alice), Err(error::PERMISSION_DENIED));
    assert!(m.call(keepalive(), root.clone()).is_ok());
    assert!(m.call(revoke(), root).is_ok());
}
