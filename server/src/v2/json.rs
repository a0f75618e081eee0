//! The v2 API's JSON as etcd 3.4 writes it with Go's `encoding/json`: fields in
//! struct order, `omitempty` fields left out when empty, strings escaped the Go
//! way (`<`, `>` and `&` as `\u003c`...), times in RFC 3339 UTC.

use detcd_core::v2store::{Event, NodeView, V2Error};

/// A JSON string literal, escaped as Go's encoder escapes it (the one escaper
/// detcdctl's output uses too).
pub fn string(s: &str) -> String {
    crate::ctl::format::json_string(s)
}

/// A list of strings, `[]` when empty.
pub fn strings(list: &[String]) -> String {
    format!(
        "[{}]",
        list.iter().map(|s| string(s)).collect::<Vec<_>>().join(",")
    )
}

/// `unix_ms` as Go writes a UTC `time.Time` (RFC 3339, fraction without trailing zeros).
pub use detcd_io::time_text::rfc3339;

fn push_node(out: &mut String, n: &NodeView) {
    let mut fields = Vec::new();
    // The root's key is the keys prefix itself, which etcd trims to nothing.
    if n.key != "/" {
        fields.push(format!("\"key\":{}", string(&n.key)));
    }
    if let Some(v) = &n.value {
        fields.push(format!("\"value\":{}", string(v)));
    }
    if n.dir {
        fields.push("\"dir\":true".to_string());
    }
    if let Some(at) = n.expire_unix_ms {
        fields.push(format!("\"expiration\":\"{}\"", rfc3339(at)));
    }
    if n.ttl != 0 {
        fields.push(format!("\"ttl\":{}", n.ttl));
    }
    if !n.nodes.is_empty() {
        let mut nodes = String::from("\"nodes\":[");
        for (i, child) in n.nodes.iter().enumerate() {
            if i > 0 {
                nodes.push(',');
            }
            push_node(&mut nodes, child);
        }
        nodes.push(']');
        fields.push(nodes);
    }
    if n.modified_index != 0 {
        fields.push(format!("\"modifiedIndex\":{}", n.modified_index));
    }
    if n.created_index != 0 {
        fields.push(format!("\"createdIndex\":{}", n.created_index));
    }
    out.push('{');
    out.push_str(&fields.join(","));
    out.push('}');
}

/// An event as etcd's `json.Encoder` writes it (with the trailing newline);
/// `no_value` leaves the nodes out (`noValueOnSuccess`).
pub fn event(e: &Event, no_value: bool) -> String {
    let mut out = format!("{{\"action\":\"{}\"", e.action.as_str());
    if !no_value {
        out.push_str(",\"node\":");
        push_node(&mut out, &e.node);
        if let Some(prev) = &e.prev_node {
            out.push_str(",\"prevNode\":");
            push_node(&mut out, prev);
        }
    }
    // etcd's handler writes a clone of the event, which drops its refresh flag.
    out.push_str("}\n");
    out
}

/// A v2 error body (etcd's `v2error.Error`, with its trailing newline).
pub fn error(e: &V2Error) -> String {
    let mut out = format!("{{\"errorCode\":{},\"message\":{}", e.code, string(e.message()));
    if !e.cause.is_empty() {
        out.push_str(&format!(",\"cause\":{}", string(&e.cause)));
    }
    out.push_str(&format!(",\"index\":{}}}\n", e.index));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_strings_are_written_as_go_writes_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_780_000_000_120), "2026-05-28T20:26:40.12Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(string("a<b>&\"\n\u{1}"), r#""a\u003cb\u003e\u0026\"\n\u0001""#);
    }
}
