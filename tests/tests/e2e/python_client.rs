//! The third-party Python client (`etcd3` on PyPI, over grpcio's C-core HTTP/2 and HPACK)
//! against detcd, including requests whose HTTP/2 `:authority` is the endpoint written as a
//! URL, which is what etcd's Go client sends for `--endpoints=http://...` and what h2
//! alone refuses (server/src/h2_authority.rs).
//!
//! With auth: users and roles made through the Auth stub, then etcd3's own login over
//! TLS (grpcio sends call credentials, etcd3's token, only on a secure channel).
//!
//! Needs `python3` with `etcd3` (`pip install etcd3`; .ci/run installs it). Without it
//! the test says so and stops, except under CI (`CI` set), where a missing client fails.

use std::process::Command;

use detcd_testkit::free_port;

use super::harness::{test_dir, Cluster};
use super::tls::{etcdctl, make_certs, start, start_client_cert_auth, wait_until, with_cert};

const SCRIPT: &str = r#"
import sys
import etcd3, grpc
from etcd3.etcdrpc import rpc_pb2, rpc_pb2_grpc

port = int(sys.argv[1])
c = etcd3.client(host="127.0.0.1", port=port)
c.put("py/a", "1")
value, meta = c.get("py/a")
assert value == b"1", value
assert c.status().version, "no version"

# The same requests with the endpoint URL as the authority, several on one connection so
# the client's HPACK dynamic table is used for it.
for authority in ["http://127.0.0.1:%d" % port, "http://127.0.0.1:%d/" % port]:
    ch = grpc.insecure_channel("127.0.0.1:%d" % port, options=[("grpc.default_authority", authority)])
    kv = rpc_pb2_grpc.KVStub(ch)
    m = rpc_pb2_grpc.MaintenanceStub(ch)
    for i in range(5):
        kv.Put(rpc_pb2.PutRequest(key=b"py/b", value=str(i).encode()), timeout=10)
        got = kv.Range(rpc_pb2.RangeRequest(key=b"py/b"), timeout=10)
        assert got.kvs[0].value == str(i).encode(), got
        assert m.Status(rpc_pb2.StatusRequest(), timeout=10).version
    ch.close()
print("python etcd3: ok")
"#;

fn python_has_etcd3() -> bool {
    Command::new("python3")
        .args(["-c", "import etcd3"])
        .env("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Users, roles and a prefix permission set up through etcd3's generated Auth stub, then
/// etcd3's own `user=`/`password=` login: allowed and denied operations, and a bad password.
const AUTH_SCRIPT: &str = r#"
import sys
import etcd3, grpc
from etcd3.etcdrpc import rpc_pb2, rpc_pb2_grpc, auth_pb2

plain, port, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ch = grpc.insecure_channel("127.0.0.1:%d" % plain)
auth = rpc_pb2_grpc.AuthStub(ch)
auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"), timeout=10)
auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="root"), timeout=10)
auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"), timeout=10)
auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="alice", password="alicepw"), timeout=10)
auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="py-rw"), timeout=10)
perm = auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"py/", range_end=b"py0")
auth.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(name="py-rw", perm=perm), timeout=10)
auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="py-rw"), timeout=10)
auth.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=10)
ch.close()

alice = etcd3.client(host="127.0.0.1", port=port, ca_cert=ca, user="alice", password="alicepw")
alice.put("py/x", "1")
value, _ = alice.get("py/x")
assert value == b"1", value
try:
    alice.put("elsewhere", "1")
    raise SystemExit("a put outside alice's prefix succeeded")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e
    assert e.details() == "etcdserver: permission denied", e.details()
root = etcd3.client(host="127.0.0.1", port=port, ca_cert=ca, user="root", password="rootpw")
root.put("elsewhere", "2")
try:
    etcd3.client(host="127.0.0.1", port=port, ca_cert=ca, user="alice", password="wrong")
    raise SystemExit("a wrong password logged in")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    assert e.details() == "etcdserver: authentication failed, invalid user ID or password", e.details()
print("python etcd3 auth: ok")
"#;

/// Whether the test can run: python3 with etcd3, which CI must have.
fn etcd3_available() -> bool {
    if python_has_etcd3() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "python3 with etcd3 is required under CI (pip install etcd3)"
    );
    eprintln!("skipped: python3 with etcd3 not found (pip install etcd3)");
    false
}

/// etcd3's `ca_cert`, `cert_key`, `cert_cert` against a member that requires client
/// certificates; without one the handshake is refused and nothing is served.
const CLIENT_CERT_SCRIPT: &str = r#"
import sys
import etcd3
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c = etcd3.client(host="127.0.0.1", port=port, ca_cert=ca, cert_cert=cert, cert_key=key, timeout=10)
c.put("py/tls", "1")
value, _ = c.get("py/tls")
assert value == b"1", value
assert c.status().version, "no version"
try:
    etcd3.client(host="127.0.0.1", port=port, ca_cert=ca, timeout=3).get("py/tls")
    raise SystemExit("served without a client certificate")
except etcd3.exceptions.ConnectionFailedError:
    pass
print("python etcd3 client certificate: ok")
"#;

/// Runs `script` with `args` and asserts it succeeded.
fn run_python(script: &str, args: &[&str]) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        // etcd3's generated modules predate protobuf 4; the pure-Python runtime loads them.
        .env("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python etcd3 failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_etcd3_and_url_authorities() {
    if !etcd3_available() {
        return;
    }
    let cluster = Cluster::start("python", 1).await;
    let port = cluster.members[0].client_port.to_string();
    tokio::task::spawn_blocking(move || run_python(SCRIPT, &[&port]))
        .await
        .expect("python");
}

/// A member with a plain URL (to set auth up) and a TLS one (to log in over).
#[test]
fn python_etcd3_with_user_and_password() {
    if !etcd3_available() {
        return;
    }
    let dir = test_dir("python-auth");
    let certs = make_certs(&dir);
    let (plain, tls) = (free_port(), free_port());
    let member = start(
        &dir,
        &format!("http://127.0.0.1:{plain},https://127.0.0.1:{tls}"),
        &["--cert-file", &certs.server.0, "--key-file", &certs.server.1],
    );
    wait_until("member serves", || {
        etcdctl(&["--endpoints", &format!("127.0.0.1:{plain}"), "put", "up", "1"])
            .status
            .success()
    });
    run_python(AUTH_SCRIPT, &[&plain.to_string(), &tls.to_string(), &certs.ca]);
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn python_etcd3_with_a_client_certificate() {
    if !etcd3_available() {
        return;
    }
    let dir = test_dir("python-cert");
    let certs = make_certs(&dir);
    let (member, https, _http) = start_client_cert_auth(&dir, &certs, &[]);
    let port = https.rsplit(':').next().expect("port").to_string();
    wait_until("member serves", || {
        with_cert(&https, &certs.ca, &certs.client, &["put", "up", "1"])
            .status
            .success()
    });
    run_python(
        CLIENT_CERT_SCRIPT,
        &[&port, &certs.ca, &certs.client.0, &certs.client.1],
    );
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}

/// etcd3's own lock (`client.lock`: a txn that creates `/locks/<name>` under a lease
/// when it does not exist, and a watch for its deletion otherwise), contended by four
/// threads with a client each: critical sections never overlap, and a holder that walks
/// away without releasing loses the lock when its lease expires.
const LOCK_SCRIPT: &str = r#"
import sys, threading, time
import etcd3

port = int(sys.argv[1])
spans, errors = [], []
guard = threading.Lock()

def worker(n):
    try:
        c = etcd3.client(host="127.0.0.1", port=port, timeout=10)
        for _ in range(3):
            lock = c.lock("pylock", ttl=10)
            assert lock.acquire(timeout=30), "worker %d never got the lock" % n
            start = time.monotonic()
            time.sleep(0.05)
            end = time.monotonic()
            with guard:
                spans.append((start, end, n))
            assert lock.release(), "worker %d lost the lock it held" % n
    except Exception as e:
        errors.append(repr(e))

threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not errors, errors
assert len(spans) == 12, spans
spans.sort()
for a, b in zip(spans, spans[1:]):
    assert a[1] <= b[0], "critical sections overlap: %r %r" % (a, b)

# A holder that walks away: its 2 s lease expires and the next waiter gets the lock.
c = etcd3.client(host="127.0.0.1", port=port, timeout=10)
gone = c.lock("abandoned", ttl=2)
assert gone.acquire(timeout=10)
waited = time.monotonic()
other = c.lock("abandoned", ttl=10)
assert other.acquire(timeout=20), "the abandoned lock was never freed"
held_after = time.monotonic() - waited
assert 1.0 <= held_after <= 15, held_after
assert other.release()
print("python etcd3 lock: ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_etcd3_locks_exclude_each_other() {
    if !etcd3_available() {
        return;
    }
    let cluster = Cluster::start("python-lock", 1).await;
    let port = cluster.members[0].client_port.to_string();
    tokio::task::spawn_blocking(move || run_python(LOCK_SCRIPT, &[&port]))
        .await
        .expect("python");
}
