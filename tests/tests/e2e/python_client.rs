//! The third-party Python client (`etcd3` on PyPI, over grpcio's C-core HTTP/2 and HPACK)
//! against detcd, including requests whose HTTP/2 `:authority` is the endpoint written as a
//! URL, which is what etcd's Go client sends for `--endpoints=http://...` and what h2
//! alone refuses (server/src/h2_authority.rs).
//!
//! Needs `python3` with `etcd3` (`pip install etcd3`; .ci/run installs it). Without it
//! the test says so and stops, except under CI (`CI` set), where a missing client fails.

use std::process::Command;

use super::harness::Cluster;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_etcd3_and_url_authorities() {
    if !python_has_etcd3() {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with etcd3 is required under CI (pip install etcd3)"
        );
        eprintln!("skipped: python3 with etcd3 not found (pip install etcd3)");
        return;
    }
    let cluster = Cluster::start("python", 1).await;
    let port = cluster.members[0].client_port;
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", SCRIPT, &port.to_string()])
            // etcd3's generated modules predate protobuf 4; the pure-Python runtime loads them.
            .env("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
            .output()
            .expect("run python3")
    })
    .await
    .expect("python");
    assert!(
        out.status.success(),
        "python etcd3 failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
