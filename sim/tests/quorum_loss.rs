//! Quorum loss, deterministically: which requests a cluster serves with members
//! down, with which of etcd's errors it refuses the rest, and that nothing
//! acknowledged is lost when the members come back.

use detcd_core::error::{Code, EtcdError};
use detcd_core::node::{Request, Response};
use detcd_proto::etcdserverpb::{PutRequest, RangeRequest};
use detcd_sim::mutations::Mutations;
use detcd_sim::options::Options;
use detcd_sim::sim::Sim;

const SEED: u64 = 4242;

fn cluster(nodes: usize) -> Sim {
    let mut opts = Options::quiet(SEED, nodes);
    opts.tick_ms = 100;
    opts.election_ticks = 10;
    opts.request_timeout_ms = 3_000;
    opts.snapshot_count = 1000;
    let mut sim = Sim::new(opts, Mutations::NONE);
    sim.run_until(5_000_000);
    assert!(sim.leader().is_some(), "a leader within 5 s");
    sim
}

fn put(sim: &mut Sim, member: u64, key: &str, value: &str) -> Result<Response, EtcdError> {
    let request = Request::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    });
    let id = sim.request(member, request);
    sim.wait(id, 20_000).expect("every request is answered")
}

fn get(sim: &mut Sim, member: u64, key: &str, serializable: bool) -> Result<Option<Vec<u8>>, EtcdError> {
    let request = Request::Range(RangeRequest {
        key: key.into(),
        serializable,
        ..Default::default()
    });
    let id = sim.request(member, request);
    match sim.wait(id, 20_000).expect("every request is answered")? {
        Response::Range(r) => Ok(r.kvs.first().map(|kv| kv.value.clone())),
        other => panic!("not a range answer: {other:?}"),
    }
}

fn assert_unavailable(result: Result<impl std::fmt::Debug, EtcdError>) {
    let e = result.expect_err("must fail without a quorum");
    assert_eq!(e.code, Code::Unavailable, "{e:?}");
    assert!(
        ["etcdserver: request timed out", "etcdserver: no leader"].contains(&e.message)
            || e.message.starts_with("etcdserver: request timed out"),
        "unexpected error {e:?}"
    );
}

/// Takes down `down` members, never `keep`.
fn crash_some(sim: &mut Sim, down: usize, keep: u64) -> Vec<u64> {
    let victims: Vec<u64> = sim
        .member_ids()
        .into_iter()
        .filter(|&id| id != keep)
        .take(down)
        .collect();
    for &id in &victims {
        sim.crash(id);
    }
    victims
}

#[test]
fn three_members_serve_with_one_down() {
    let mut sim = cluster(3);
    let survivor = 1;
    crash_some(&mut sim, 1, survivor);
    put(&mut sim, survivor, "a", "1").expect("write with 2 of 3 up");
    assert_eq!(
        get(&mut sim, survivor, "a", false).expect("linearizable read"),
        Some(b"1".to_vec())
    );
    assert!(sim.failure.is_none(), "{:?}", sim.failure);
}

#[test]
fn three_members_refuse_writes_and_linearizable_reads_with_two_down_but_serve_serializable() {
    let mut sim = cluster(3);
    let survivor = 1;
    put(&mut sim, survivor, "a", "before").expect("write with everyone up");
    let down = crash_some(&mut sim, 2, survivor);
    assert_unavailable(put(&mut sim, survivor, "a", "lost?"));
    assert_unavailable(get(&mut sim, survivor, "a", false));
    let stale = get(&mut sim, survivor, "a", true).expect("serializable reads are served locally");
    assert!(stale.is_some());
    for id in down {
        sim.restart(id);
    }
    sim.run_until(sim.now_us + 5_000_000);
    put(&mut sim, survivor, "b", "after").expect("service resumes");
    assert_eq!(
        get(&mut sim, survivor, "b", false).unwrap(),
        Some(b"after".to_vec())
    );
    let a = get(&mut sim, survivor, "a", false).unwrap();
    assert!(
        a == Some(b"before".to_vec()) || a == Some(b"lost?".to_vec()),
        "{a:?}"
    );
    assert!(sim.failure.is_none(), "{:?}", sim.failure);
}

#[test]
fn four_members_stop_with_two_down() {
    let mut sim = cluster(4);
    let survivor = 1;
    crash_some(&mut sim, 2, survivor);
    assert_unavailable(put(&mut sim, survivor, "a", "1"));
    assert_unavailable(get(&mut sim, survivor, "a", false));
    assert!(sim.failure.is_none(), "{:?}", sim.failure);
}

#[test]
fn five_members_serve_with_two_down_and_lose_nothing_when_they_return() {
    let mut sim = cluster(5);
    let survivor = 1;
    let mut acked = Vec::new();
    let down = crash_some(&mut sim, 2, survivor);
    for i in 0..10 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        put(&mut sim, survivor, &k, &v).expect("write with 3 of 5 up");
        acked.push((k, v));
    }
    for id in down {
        sim.restart(id);
    }
    sim.run_until(sim.now_us + 5_000_000);
    // Every member, the returned ones included, serves every acknowledged write.
    for member in sim.member_ids() {
        for (k, v) in &acked {
            assert_eq!(
                get(&mut sim, member, k, false).unwrap(),
                Some(v.clone().into_bytes()),
                "member {member}"
            );
        }
    }
    assert!(sim.failure.is_none(), "{:?}", sim.failure);
}

#[test]
fn a_leader_paused_past_its_term_resumes_as_a_follower_and_serves_no_stale_read() {
    let mut sim = cluster(3);
    let old_leader = sim.leader().expect("leader");
    put(&mut sim, old_leader, "a", "1").expect("first write");
    // A stop-the-world pause of five election timeouts: the others elect a
    // leader and take a write while the old one still believes it leads.
    let paused_at = sim.now_ms();
    sim.pause(old_leader, 5_000);
    let other = sim
        .member_ids()
        .into_iter()
        .find(|&id| id != old_leader)
        .expect("3 members");
    // The first try may be forwarded to the paused leader and time out, as in
    // etcd ("possibly due to previous leader failure"); a client retries.
    let mut tries = 0;
    while let Err(e) = put(&mut sim, other, "a", "2") {
        tries += 1;
        assert!(
            tries < 3 && e.code == Code::Unavailable,
            "the two others form a quorum: {e:?}"
        );
    }
    // Asked while it is still paused, answered after it resumes.
    assert!(sim.now_ms() < paused_at + 5_000, "the pause is still on");
    assert_eq!(
        get(&mut sim, old_leader, "a", false).expect("linearizable read after the pause"),
        Some(b"2".to_vec()),
        "a deposed leader must not answer from its own state"
    );
    assert!(
        sim.counters.pauses == 1 && sim.counters.events_held > 0,
        "{:?}",
        sim.counters
    );
    assert!(
        sim.leader().is_some_and(|l| l != old_leader),
        "a new leader, agreed on"
    );
    assert_eq!(
        get(&mut sim, old_leader, "a", true).expect("serializable"),
        Some(b"2".to_vec())
    );
}
