//! Auth on a 3-member cluster through the third-party `etcd-client` crate with a
//! user and password: permissions hold on followers and on the leader, for
//! serializable reads served locally too, and a revocation applies everywhere.

use std::time::{Duration, Instant};

use detcd_proto::etcdserverpb::kv_client::KvClient;
use detcd_proto::etcdserverpb::PutRequest;
use etcd_client::{Client, ConnectOptions, Error, GetOptions, Permission, RoleRevokePermissionOptions};

use super::harness::Cluster;

fn code(e: &Error) -> String {
    match e {
        Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => format!("not a gRPC status: {other}"),
    }
}

async fn login(endpoint: String, user: &str, password: &str) -> Result<Client, Error> {
    let options = ConnectOptions::new()
        .with_user(user, password)
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10));
    Client::connect([endpoint], Some(options)).await
}

const DENIED: &str = "PermissionDenied: etcdserver: permission denied";

#[tokio::test]
async fn permissions_hold_on_every_member_through_etcd_client() {
    let cluster = Cluster::start_with("auth", 3, &["--bcrypt-cost", "4"]).await;
    let leader = cluster.wait_leader().await;
    let mut admin = cluster.client(leader).await;
    admin.user_add("root", "rootpw", None).await.expect("add root");
    admin.user_grant_role("root", "root").await.expect("grant root");
    admin.user_add("alice", "alicepw", None).await.expect("add alice");
    admin.role_add("fooer").await.expect("add role");
    admin
        .role_grant_permission("fooer", Permission::read_write("foo").with_prefix())
        .await
        .expect("grant perm");
    admin.user_grant_role("alice", "fooer").await.expect("grant role");
    admin.auth_enable().await.expect("enable");
    let e = admin.put("foo1", "x", None).await.unwrap_err();
    assert_eq!(code(&e), "InvalidArgument: etcdserver: user name is empty");
    let bad = login(cluster.members[leader].endpoint(), "alice", "wrong").await;
    let e = bad.err().expect("a wrong password is refused");
    assert_eq!(
        code(&e),
        "InvalidArgument: etcdserver: authentication failed, invalid user ID or password"
    );
    for (i, m) in cluster.members.iter().enumerate() {
        let mut alice = login(m.endpoint(), "alice", "alicepw")
            .await
            .expect("alice logs in");
        alice
            .put(format!("foo{i}"), "v", None)
            .await
            .expect("alice writes foo*");
        let e = alice.put("bar", "v", None).await.unwrap_err();
        assert_eq!(code(&e), DENIED, "member {i}");
        let local = GetOptions::new().with_serializable();
        let e = alice.get("bar", Some(local)).await.unwrap_err();
        assert_eq!(code(&e), DENIED, "serializable read on member {i}");
        let e = alice.user_list().await.unwrap_err();
        assert_eq!(code(&e), DENIED, "admin RPC on member {i}");
    }
    let mut root = login(cluster.members[leader].endpoint(), "root", "rootpw")
        .await
        .expect("root logs in");
    // Leadership moves (as root: MoveLeader is an admin RPC); alice's token from before
    // serves her on the new leader, and her permissions are the same there.
    let mut alice = login(cluster.members[leader].endpoint(), "alice", "alicepw")
        .await
        .expect("alice logs in");
    let target = (leader + 1) % cluster.members.len();
    let e = alice
        .move_leader(cluster.member_id(target).await)
        .await
        .unwrap_err();
    assert_eq!(code(&e), DENIED, "move-leader as alice");
    let mut on_leader = login(cluster.members[leader].endpoint(), "root", "rootpw")
        .await
        .expect("root logs in");
    on_leader
        .move_leader(cluster.member_id(target).await)
        .await
        .expect("move leader");
    assert_eq!(cluster.wait_leader().await, target);
    let mut alice_new = login(cluster.members[target].endpoint(), "alice", "alicepw")
        .await
        .expect("alice logs in on the new leader");
    for c in [&mut alice, &mut alice_new] {
        c.put("foo-after-move", "v", None)
            .await
            .expect("alice writes foo*");
        let e = c.put("bar", "v", None).await.unwrap_err();
        assert_eq!(code(&e), DENIED, "after the leader moved");
    }
    let options = RoleRevokePermissionOptions::new().with_range_end("fop");
    root.role_revoke_permission("fooer", "foo", Some(options))
        .await
        .expect("revoke");
    // Every member applies the revocation; then a follower's local read is refused.
    for (i, m) in cluster.members.iter().enumerate() {
        let mut alice = login(m.endpoint(), "alice", "alicepw")
            .await
            .expect("alice logs in");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let local = GetOptions::new().with_serializable();
            match alice.get("foo1", Some(local)).await {
                Err(e) if code(&e) == DENIED => break,
                other => assert!(Instant::now() < deadline, "member {i} still serves: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    root.auth_disable().await.expect("disable");
    admin.put("foo1", "after", None).await.expect("open again");
}

/// One Put on `endpoint` with `token` in the metadata, through raw gRPC.
async fn put_with_token(endpoint: &str, token: &str) -> Result<(), tonic::Status> {
    let mut kv = KvClient::connect(endpoint.to_string()).await.expect("connects");
    let mut request = tonic::Request::new(PutRequest {
        key: b"jwt-key".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("token", token.parse().expect("ASCII token"));
    kv.put(request).await.map(|_| ())
}

#[tokio::test]
async fn a_jwt_from_one_member_is_verified_by_another() {
    let dir = super::harness::test_dir("auth-jwt-key");
    std::fs::create_dir_all(&dir).expect("key dir");
    let secret = dir.join("hmac.key");
    std::fs::write(&secret, b"a shared secret for the whole cluster").expect("key");
    let spec = format!("jwt,priv-key={},sign-method=HS256,ttl=1m", secret.display());
    let cluster = Cluster::start_with("auth-jwt", 3, &["--auth-token", &spec, "--bcrypt-cost", "4"]).await;
    let mut admin = cluster.client(0).await;
    admin.user_add("root", "rootpw", None).await.expect("add root");
    admin.user_grant_role("root", "root").await.expect("grant root");
    admin.auth_enable().await.expect("enable");
    let token = admin
        .auth_client()
        .authenticate("root".to_string(), "rootpw".to_string())
        .await
        .expect("authenticate on member 0")
        .token()
        .to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    for m in &cluster.members[1..] {
        put_with_token(&m.endpoint(), &token)
            .await
            .expect("another member verifies the token");
    }
    let tampered = format!("{token}x");
    let e = put_with_token(&cluster.members[1].endpoint(), &tampered)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (tonic::Code::Unauthenticated, "etcdserver: invalid auth token")
    );
    // An auth change makes tokens issued before it stale everywhere.
    let mut root = login(cluster.members[2].endpoint(), "root", "rootpw")
        .await
        .expect("root");
    root.role_add("later").await.expect("role add");
    let e = put_with_token(&cluster.members[1].endpoint(), &token)
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: revision of auth store is old");
    let _ = std::fs::remove_dir_all(&dir);
}
