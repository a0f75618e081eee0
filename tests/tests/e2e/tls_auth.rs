//! Certificate authentication (etcd's `AuthInfoFromTLS`): with `--client-cert-auth` and
//! auth enabled, a request that brings no token is served as the common name of its
//! verified client certificate, and that user's roles decide what it may do. Driven
//! with the real etcdctl 3.4 (on PATH; CI installs it). Also the etcd-client crate over TLS.

use super::harness::test_dir;
use super::tls::{etcdctl, make_certs, ok, start_client_cert_auth, wait_until, with_cert};

#[test]
fn client_certificate_common_name_is_the_user() {
    let dir = test_dir("tls-cn-user");
    let certs = make_certs(&dir);
    let (member, https, http) = start_client_cert_auth(&dir, &certs, &[]);
    let plain = |args: &[&str]| {
        let mut all = vec!["--endpoints", &http];
        all.extend_from_slice(args);
        ok(&etcdctl(&all))
    };
    wait_until("member serves", || {
        etcdctl(&["--endpoints", &http, "put", "k", "0"]).status.success()
    });
    // The certificate's CN is "client": a user of that name may read and write `k` only.
    plain(&["user", "add", "root", "--new-user-password=rootpw"]);
    plain(&["role", "add", "root"]);
    plain(&["user", "grant-role", "root", "root"]);
    plain(&["user", "add", "client", "--new-user-password=unused"]);
    plain(&["role", "add", "k-only"]);
    plain(&["role", "grant-permission", "k-only", "readwrite", "k"]);
    plain(&["user", "grant-role", "client", "k-only"]);
    assert_eq!(plain(&["auth", "enable"]), "Authentication Enabled\n");

    let as_cert = |args: &[&str]| with_cert(&https, &certs.ca, &certs.client, args);
    assert_eq!(ok(&as_cert(&["put", "k", "by-cert"])), "OK\n");
    assert_eq!(ok(&as_cert(&["get", "k"])), "k\nby-cert\n");
    let denied = as_cert(&["put", "other", "v"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).ends_with("Error: etcdserver: permission denied\n"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    // A token still wins over the certificate: root may write anywhere.
    assert_eq!(
        ok(&as_cert(&["--user", "root:rootpw", "put", "other", "v"])),
        "OK\n"
    );
    // Without a certificate (the plain port) there is no user at all.
    let anonymous = etcdctl(&["--endpoints", &http, "get", "k"]);
    assert!(!anonymous.status.success());
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).ends_with("Error: etcdserver: user name is empty\n"),
        "{}",
        String::from_utf8_lossy(&anonymous.stderr)
    );
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The third-party etcd-client crate (tonic over rustls) with a CA and a client
/// identity; with auth on, its certificate's common name is its user. Without a
/// client certificate it is not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_client_crate_over_tls_with_a_client_certificate() {
    use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
    let dir = test_dir("tls-etcd-client");
    let certs = make_certs(&dir);
    let (member, https, _http) = start_client_cert_auth(&dir, &certs, &[]);
    let read = |path: &str| std::fs::read(path).expect("read certificate");
    let tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&certs.ca)));
    let with_identity = tls
        .clone()
        .identity(Identity::from_pem(read(&certs.client.0), read(&certs.client.1)));
    let connect = |tls: TlsOptions| {
        let options = ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(std::time::Duration::from_secs(3))
            .with_timeout(std::time::Duration::from_secs(5));
        Client::connect([https.clone()], Some(options))
    };
    let mut client = None;
    for _ in 0..100 {
        if let Ok(mut c) = connect(with_identity.clone()).await {
            if c.put("k", "tls", None).await.is_ok() {
                client = Some(c);
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut client = client.expect("etcd-client connects over TLS");
    let got = client.get("k", None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"tls");
    assert!(client.status().await.expect("status").version().starts_with('3'));
    let anonymous = match connect(tls).await {
        Ok(mut c) => c.get("k", None).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(anonymous.is_err(), "served without a client certificate");
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}
