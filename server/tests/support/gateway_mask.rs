//! Gateway answers with the values that differ between any two clusters with the same
//! history masked (IDs, terms, ports, tokens), so etcd's and detcd's can be compared.

#![allow(dead_code)]

/// Keys whose values differ between two clusters with the same history.
const MASKED: &[&str] = &[
    "cluster_id",
    "member_id",
    "raft_term",
    "ID",
    "lease",
    "token",
    "peerURLs",
    "clientURLs",
];

pub fn mask_value(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if MASKED.contains(&k.as_str()) {
                    *val = serde_json::Value::String("<masked>".into());
                } else {
                    mask_value(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_value),
        _ => {}
    }
}

/// Each line of a body with masked values (a line that is not JSON as it is).
pub fn mask(body: &str) -> String {
    body.lines()
        .map(|line| match serde_json::from_str::<serde_json::Value>(line) {
            Ok(mut v) => {
                mask_value(&mut v);
                v.to_string()
            }
            Err(_) => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
