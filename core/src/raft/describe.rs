//! Human-readable renderings of raft values in the style of etcd's `Describe*`
//! helpers, shared by golden transcripts, the simulator's traces and logs.
//!
//! They are part of the test surface: golden files pin them, so change them only
//! together with a rewrite of the transcripts.

use std::fmt::Write;

use detcd_proto::raftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, Snapshot,
};
use prost::Message as _;

use super::conf_change::v1_to_v2;

/// `1->2 MsgApp Term:2 Log:1/5 Commit:5 Entries:[2/6 EntryNormal "foo"]`.
pub fn message(m: &Message) -> String {
    let mut s = format!(
        "{}->{} {:?} Term:{} Log:{}/{}",
        m.from,
        m.to,
        m.r#type(),
        m.term,
        m.log_term,
        m.index
    );
    if m.reject {
        let _ = write!(s, " Rejected (Hint: {})", m.reject_hint);
    }
    if m.commit != 0 {
        let _ = write!(s, " Commit:{}", m.commit);
    }
    if !m.entries.is_empty() {
        s.push_str(" Entries:[");
        for (i, e) in m.entries.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&entry(e));
        }
        s.push(']');
    }
    if let Some(snap) = &m.snapshot {
        let _ = write!(s, " Snapshot: {}", snapshot(snap));
    }
    if !m.context.is_empty() {
        let _ = write!(s, " Context:{:?}", String::from_utf8_lossy(&m.context));
    }
    s
}

/// `2/6 EntryNormal "foo"`; conf changes are decoded (`v2 l3 r4`).
pub fn entry(e: &Entry) -> String {
    let body = match e.r#type() {
        EntryType::EntryNormal => format!("{:?}", String::from_utf8_lossy(&e.data)),
        EntryType::EntryConfChange => match ConfChange::decode(e.data.as_slice()) {
            Ok(cc) => conf_change(&v1_to_v2(&cc)),
            Err(_) => "<undecodable>".to_string(),
        },
        EntryType::EntryConfChangeV2 => match ConfChangeV2::decode(e.data.as_slice()) {
            Ok(cc) => conf_change(&cc),
            Err(_) => "<undecodable>".to_string(),
        },
    };
    format!("{}/{} {:?} {}", e.term, e.index, e.r#type(), body)
}

/// `v2 l3 r4 u5`, plus the transition when it is not automatic.
pub fn conf_change(cc: &ConfChangeV2) -> String {
    let mut parts: Vec<String> = cc
        .changes
        .iter()
        .map(|c| {
            let tag = match c.r#type() {
                ConfChangeType::ConfChangeAddNode => "v",
                ConfChangeType::ConfChangeAddLearnerNode => "l",
                ConfChangeType::ConfChangeRemoveNode => "r",
                ConfChangeType::ConfChangeUpdateNode => "u",
            };
            format!("{tag}{}", c.node_id)
        })
        .collect();
    if cc.transition() != detcd_proto::raftpb::ConfChangeTransition::Auto {
        parts.push(format!("{:?}", cc.transition()));
    }
    if parts.is_empty() {
        "leave-joint".to_string()
    } else {
        parts.join(" ")
    }
}

/// `Voters:[1 2 3] VotersOutgoing:[1 2] Learners:[4] LearnersNext:[] AutoLeave:true`,
/// leaving out empty parts of the joint state.
pub fn conf_state(cs: &ConfState) -> String {
    let list = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    let mut s = format!("Voters:[{}]", list(&cs.voters));
    if !cs.voters_outgoing.is_empty() {
        let _ = write!(s, " VotersOutgoing:[{}]", list(&cs.voters_outgoing));
    }
    let _ = write!(s, " Learners:[{}]", list(&cs.learners));
    if !cs.learners_next.is_empty() {
        let _ = write!(s, " LearnersNext:[{}]", list(&cs.learners_next));
    }
    if cs.auto_leave {
        s.push_str(" AutoLeave:true");
    }
    s
}

/// `Index:5 Term:2 ConfState:Voters:[1 2 3] Learners:[]`.
pub fn snapshot(s: &Snapshot) -> String {
    let meta = s.metadata.clone().unwrap_or_default();
    format!(
        "Index:{} Term:{} ConfState:{}",
        meta.index,
        meta.term,
        conf_state(&meta.conf_state.unwrap_or_default())
    )
}

/// `Term:2 Vote:1 Commit:5`.
pub fn hard_state(hs: &HardState) -> String {
    format!("Term:{} Vote:{} Commit:{}", hs.term, hs.vote, hs.commit)
}
