//! etcd's periodic corruption check, run by the simulator at the end of a run (the
//! cluster healed, the final reads done), and the checker that reads its verdict.
//!
//! As the server's check does (`server/src/corruption.rs`), the leader's HashKV at its
//! own revision is compared with every other member's at that revision; a member with
//! the same compact revision and another hash gets the CORRUPT alarm, raised through
//! the leader as an ordinary Alarm request. The checker then lists the alarms on the
//! leader: a CORRUPT alarm means the members' key spaces diverged, a failure.
//!
//! A member that cannot answer at that revision (not caught up, compacted past it) is
//! skipped, as etcd skips a peer it cannot ask.

use detcd_core::node::{Credentials, Request, Response};
use detcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, HashKvRequest, HashKvResponse,
};

use crate::cluster::Route;
use crate::sim::Sim;

/// Election timeouts a check's request may take before the member is skipped.
const ANSWER_ELECTION_TIMEOUTS: u64 = 5;

/// The member's own rights for its hash and alarm requests (etcd makes them below its
/// auth layer): root's, which every auth-enabled cluster has.
fn as_member() -> Credentials {
    Credentials::Verified {
        user: "root".to_string(),
        revision: None,
    }
}

fn ask(sim: &mut Sim, member: u64, request: Request) -> Option<Response> {
    let timeout_ms = ANSWER_ELECTION_TIMEOUTS * sim.opts.election_timeout_ms();
    let id = sim.submit_as(member, request, Route::Scenario, as_member());
    sim.wait(id, timeout_ms)?.ok()
}

fn hash_kv(sim: &mut Sim, member: u64, revision: i64) -> Option<HashKvResponse> {
    match ask(sim, member, Request::HashKv(HashKvRequest { revision }))? {
        Response::HashKv(h) => Some(h),
        _ => None,
    }
}

/// One round of the periodic check on the current leader; the members it raised the
/// CORRUPT alarm for.
pub fn periodic(sim: &mut Sim) -> Vec<u64> {
    let Some(leader) = sim.leader() else {
        return Vec::new();
    };
    let Some(mine) = hash_kv(sim, leader, 0) else {
        return Vec::new();
    };
    let revision = mine.header.as_ref().map_or(0, |h| h.revision);
    let mut raised = Vec::new();
    for member in sim.member_ids() {
        if member == leader || !sim.is_up(member) {
            continue;
        }
        let Some(theirs) = hash_kv(sim, member, revision) else {
            continue;
        };
        if theirs.compact_revision == mine.compact_revision && theirs.hash != mine.hash {
            let alarm = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: member,
                alarm: AlarmType::Corrupt as i32,
            };
            if ask(sim, leader, Request::Alarm(alarm)).is_some() {
                raised.push(member);
            }
        }
    }
    raised
}

/// The checker: the CORRUPT alarms the leader lists, as a failure naming the members.
pub fn check(sim: &mut Sim) -> Result<(), String> {
    let Some(leader) = sim.leader() else {
        return Ok(());
    };
    let list = AlarmRequest {
        action: AlarmAction::Get as i32,
        member_id: 0,
        alarm: AlarmType::None as i32,
    };
    let Some(Response::Alarm(alarms)) = ask(sim, leader, Request::Alarm(list)) else {
        return Ok(());
    };
    let corrupt: Vec<String> = alarms
        .alarms
        .iter()
        .filter(|a| a.alarm == AlarmType::Corrupt as i32)
        .map(|a| format!("{:x}", a.member_id))
        .collect();
    if corrupt.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the corruption check raised the CORRUPT alarm for member(s) {}: their key space diverged from the leader's",
        corrupt.join(", ")
    ))
}
