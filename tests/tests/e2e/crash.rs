//! SIGKILL of every member while clients write, then a restart of all: every write that
//! was acknowledged is there, with its value.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::GetOptions;

use super::harness::Cluster;

/// Concurrent writers.
const WRITERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill_of_every_member() {
    let mut cluster = Cluster::start("crash", 3).await;
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut c = cluster.client_all().await;
        let acked = Arc::clone(&acked);
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let (k, v) = (format!("crash/{w}/{i:06}"), format!("value-{w}-{i}"));
                match c.put(k.clone(), v.clone(), None).await {
                    Ok(_) => {
                        acked.lock().expect("lock").insert(k, v);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for m in &mut cluster.members {
        m.kill();
    }
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() > 20, "only {} writes before the crash", acked.len());
    for m in &mut cluster.members {
        m.spawn();
    }
    cluster.wait_leader().await;
    let mut c = cluster.client_all().await;
    let got = c
        .get("crash/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("read back");
    let stored: BTreeMap<String, String> = got
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().expect("utf8").to_string(),
                kv.value_str().expect("utf8").to_string(),
            )
        })
        .collect();
    for (k, v) in &acked {
        assert_eq!(
            stored.get(k),
            Some(v),
            "acknowledged write {k} lost ({} acked)",
            acked.len()
        );
    }
}
