//! etcdctl's printers for each response: `simple`, `json`, `fields`, `table` and
//! `protobuf`, following `etcdctl/ctlv3/command/printer*.go` of etcd 3.4. JSON mirrors what
//! Go's `encoding/json` makes of the gogo-generated structs (field names from their json
//! tags, `omitempty`, bytes in base64, 64-bit integers as numbers) and, for the lease
//! commands, of clientv3's wrapper structs whose embedded header is flattened.

use detcd_proto::etcdserverpb::{
    response_op, AlarmResponse, DeleteRangeResponse, HashKvResponse, Member, PutResponse, RangeResponse,
    ResponseHeader, StatusResponse, TxnResponse,
};
use detcd_proto::mvccpb::{Event, KeyValue};
use prost::Message;

use super::error::{CtlError, EXIT_BAD_FEATURE};
use super::format::{base64, go_quote, json_array, json_string, JsonObject};
use super::{out, out_bytes};

/// The `-w/--write-out` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Json,
    Fields,
    Table,
    Protobuf,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "simple" => Self::Simple,
            "json" => Self::Json,
            "fields" => Self::Fields,
            "table" => Self::Table,
            "protobuf" => Self::Protobuf,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Simple => "simple",
            Self::Json => "json",
            Self::Fields => "fields",
            Self::Table => "table",
            Self::Protobuf => "protobuf",
        }
    }

    /// etcdctl's answer for a command a printer does not implement.
    pub fn unsupported(self) -> CtlError {
        CtlError::new(
            EXIT_BAD_FEATURE,
            format!("{} not supported as output format", self.name()),
        )
    }
}

/// The text formats of a printer that has no table: `simple`, `json` and `fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    Simple,
    Json,
    Fields,
}

/// Writes a response as etcdctl's printers with no table do: the text `text` makes of it
/// for `simple`, `json` or `fields`, its protobuf bytes for `protobuf`, and etcdctl's
/// refusal for `table`.
pub fn respond<M: Message>(format: Format, r: &M, text: impl FnOnce(Text) -> String) -> Result<(), CtlError> {
    match format {
        Format::Simple => out(&text(Text::Simple)),
        Format::Json => out(&text(Text::Json)),
        Format::Fields => out(&text(Text::Fields)),
        Format::Protobuf => out_bytes(&r.encode_to_vec()),
        Format::Table => return Err(Format::Table.unsupported()),
    }
    Ok(())
}

/// How `simple` prints keys and values.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvStyle {
    pub hex: bool,
    pub value_only: bool,
}

/// `printKV`: the key line (unless value-only) and the value line.
pub fn simple_kv(out: &mut String, style: KvStyle, kv: &KeyValue) {
    let show = |b: &[u8]| {
        if style.hex {
            b.iter().map(|x| format!("\\x{x:02x}")).collect::<String>()
        } else {
            String::from_utf8_lossy(b).into_owned()
        }
    };
    if !style.value_only {
        out.push_str(&show(&kv.key));
        out.push('\n');
    }
    out.push_str(&show(&kv.value));
    out.push('\n');
}

// ---- JSON -------------------------------------------------------------------------------

pub fn header_json(h: &ResponseHeader) -> String {
    header_fields(JsonObject::new(), h).finish()
}

/// The header's fields, as they appear inline where clientv3 embeds `*pb.ResponseHeader`.
pub fn header_fields(o: JsonObject, h: &ResponseHeader) -> JsonObject {
    o.int_oe("cluster_id", h.cluster_id)
        .int_oe("member_id", h.member_id)
        .int_oe("revision", h.revision)
        .int_oe("raft_term", h.raft_term)
}

fn header_opt(h: &Option<ResponseHeader>) -> Option<String> {
    h.as_ref().map(header_json)
}

pub fn kv_json(kv: &KeyValue) -> String {
    JsonObject::new()
        .bytes_oe("key", &kv.key)
        .int_oe("create_revision", kv.create_revision)
        .int_oe("mod_revision", kv.mod_revision)
        .int_oe("version", kv.version)
        .bytes_oe("value", &kv.value)
        .int_oe("lease", kv.lease)
        .finish()
}

fn kvs_json(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter().map(kv_json).collect()
}

pub fn range_json(r: &RangeResponse) -> String {
    JsonObject::new()
        .raw_opt("header", header_opt(&r.header))
        .array_oe("kvs", &kvs_json(&r.kvs))
        .bool_oe("more", r.more)
        .int_oe("count", r.count)
        .finish()
}

pub fn put_json(r: &PutResponse) -> String {
    JsonObject::new()
        .raw_opt("header", header_opt(&r.header))
        .raw_opt("prev_kv", r.prev_kv.as_ref().map(kv_json))
        .finish()
}

pub fn del_json(r: &DeleteRangeResponse) -> String {
    JsonObject::new()
        .raw_opt("header", header_opt(&r.header))
        .int_oe("deleted", r.deleted)
        .array_oe("prev_kvs", &kvs_json(&r.prev_kvs))
        .finish()
}

pub fn txn_json(r: &TxnResponse) -> String {
    let responses: Vec<String> = r
        .responses
        .iter()
        .map(|op| {
            let inner = match &op.response {
                None => "null".to_string(),
                Some(response_op::Response::ResponseRange(x)) => {
                    JsonObject::new().raw("ResponseRange", &range_json(x)).finish()
                }
                Some(response_op::Response::ResponsePut(x)) => {
                    JsonObject::new().raw("ResponsePut", &put_json(x)).finish()
                }
                Some(response_op::Response::ResponseDeleteRange(x)) => JsonObject::new()
                    .raw("ResponseDeleteRange", &del_json(x))
                    .finish(),
                Some(response_op::Response::ResponseTxn(x)) => {
                    JsonObject::new().raw("ResponseTxn", &txn_json(x)).finish()
                }
            };
            JsonObject::new().raw("Response", &inner).finish()
        })
        .collect();
    JsonObject::new()
        .raw_opt("header", header_opt(&r.header))
        .bool_oe("succeeded", r.succeeded)
        .array_oe("responses", &responses)
        .finish()
}

pub fn event_json(e: &Event) -> String {
    JsonObject::new()
        .int_oe("type", e.r#type)
        .raw_opt("kv", e.kv.as_ref().map(kv_json))
        .raw_opt("prev_kv", e.prev_kv.as_ref().map(kv_json))
        .finish()
}

pub fn member_json(m: &Member) -> String {
    let strs = |v: &[String]| v.iter().map(|s| json_string(s)).collect::<Vec<_>>();
    JsonObject::new()
        .int_oe("ID", m.id)
        .string_oe("name", &m.name)
        .array_oe("peerURLs", &strs(&m.peer_ur_ls))
        .array_oe("clientURLs", &strs(&m.client_ur_ls))
        .bool_oe("isLearner", m.is_learner)
        .finish()
}

/// A Cluster response: `header`, the optional added `member`, then `members`.
pub fn members_json(header: &Option<ResponseHeader>, member: Option<&Member>, members: &[Member]) -> String {
    JsonObject::new()
        .raw_opt("header", header_opt(header))
        .raw_opt("member", member.map(member_json))
        .array_oe("members", &members.iter().map(member_json).collect::<Vec<_>>())
        .finish()
}

pub fn alarm_json(r: &AlarmResponse) -> String {
    let alarms: Vec<String> = r
        .alarms
        .iter()
        .map(|a| {
            JsonObject::new()
                .int_oe("memberID", a.member_id)
                .int_oe("alarm", a.alarm)
                .finish()
        })
        .collect();
    JsonObject::new()
        .raw_opt("header", header_opt(&r.header))
        .array_oe("alarms", &alarms)
        .finish()
}

/// A HashKV response as etcdctl 3.4 prints it in JSON (its proto has no hash_revision).
pub fn hashkv_json(r: &HashKvResponse) -> String {
    JsonObject::new()
        .raw_opt("header", header_opt(&r.header))
        .int_oe("hash", i64::from(r.hash))
        .int_oe("compact_revision", r.compact_revision)
        .finish()
}

pub fn status_json(r: &StatusResponse) -> String {
    let errors: Vec<String> = r.errors.iter().map(|e| json_string(e)).collect();
    JsonObject::new()
        .raw_opt("header", header_opt(&r.header))
        .string_oe("version", &r.version)
        .int_oe("dbSize", r.db_size)
        .int_oe("leader", r.leader)
        .int_oe("raftIndex", r.raft_index)
        .int_oe("raftTerm", r.raft_term)
        .int_oe("raftAppliedIndex", r.raft_applied_index)
        .array_oe("errors", &errors)
        .int_oe("dbSizeInUse", r.db_size_in_use)
        .bool_oe("isLearner", r.is_learner)
        .string_oe("storageVersion", &r.storage_version)
        .int_oe("dbSizeQuota", r.db_size_quota)
        .raw_opt(
            "downgradeInfo",
            r.downgrade_info.as_ref().map(|d| {
                JsonObject::new()
                    .bool_oe("enabled", d.enabled)
                    .string_oe("targetVersion", &d.target_version)
                    .finish()
            }),
        )
        .finish()
}

/// `[]byte` slices without omitempty: `null` when empty.
pub fn bytes_list_json(items: &[Vec<u8>]) -> String {
    if items.is_empty() {
        "null".to_string()
    } else {
        json_array(&items.iter().map(|k| json_string(&base64(k))).collect::<Vec<_>>())
    }
}

// ---- fields -----------------------------------------------------------------------------

pub fn fields_header(out: &mut String, h: &Option<ResponseHeader>) {
    let h = (*h).unwrap_or_default();
    out.push_str(&format!(
        "\"ClusterID\" : {}\n\"MemberID\" : {}\n\"Revision\" : {}\n\"RaftTerm\" : {}\n",
        h.cluster_id, h.member_id, h.revision, h.raft_term
    ));
}

pub fn fields_kv(out: &mut String, prefix: &str, kv: &KeyValue) {
    out.push_str(&format!("\"{prefix}Key\" : {}\n", go_quote(&kv.key)));
    out.push_str(&format!("\"{prefix}CreateRevision\" : {}\n", kv.create_revision));
    out.push_str(&format!("\"{prefix}ModRevision\" : {}\n", kv.mod_revision));
    out.push_str(&format!("\"{prefix}Version\" : {}\n", kv.version));
    out.push_str(&format!("\"{prefix}Value\" : {}\n", go_quote(&kv.value)));
    out.push_str(&format!("\"{prefix}Lease\" : {}\n", kv.lease));
}

pub fn fields_range(out: &mut String, r: &RangeResponse) {
    fields_header(out, &r.header);
    for kv in &r.kvs {
        fields_kv(out, "", kv);
    }
    out.push_str(&format!("\"More\" : {}\n\"Count\" : {}\n", r.more, r.count));
}

pub fn fields_put(out: &mut String, r: &PutResponse) {
    fields_header(out, &r.header);
    if let Some(kv) = &r.prev_kv {
        fields_kv(out, "Prev", kv);
    }
}

pub fn fields_del(out: &mut String, r: &DeleteRangeResponse) {
    fields_header(out, &r.header);
    out.push_str(&format!("\"Deleted\" : {}\n", r.deleted));
    for kv in &r.prev_kvs {
        fields_kv(out, "Prev", kv);
    }
}

pub fn fields_txn(out: &mut String, r: &TxnResponse) {
    fields_header(out, &r.header);
    out.push_str(&format!("\"Succeeded\" : {}\n", r.succeeded));
    for op in &r.responses {
        match &op.response {
            Some(response_op::Response::ResponseRange(x)) => fields_range(out, x),
            Some(response_op::Response::ResponsePut(x)) => fields_put(out, x),
            Some(response_op::Response::ResponseDeleteRange(x)) => fields_del(out, x),
            Some(response_op::Response::ResponseTxn(x)) => out.push_str(&format!(
                "\"Unknown\" : {}\n",
                go_quote(format!("{x:?}").as_bytes())
            )),
            None => out.push_str("\"Unknown\" : \"<nil>\"\n"),
        }
    }
}

// ---- simple -----------------------------------------------------------------------------

pub fn simple_txn(out: &mut String, style: KvStyle, r: &TxnResponse) {
    out.push_str(if r.succeeded { "SUCCESS\n" } else { "FAILURE\n" });
    for op in &r.responses {
        out.push('\n');
        match &op.response {
            Some(response_op::Response::ResponseRange(x)) => {
                x.kvs.iter().for_each(|kv| simple_kv(out, style, kv))
            }
            Some(response_op::Response::ResponsePut(x)) => {
                out.push_str("OK\n");
                if let Some(kv) = &x.prev_kv {
                    simple_kv(out, style, kv);
                }
            }
            Some(response_op::Response::ResponseDeleteRange(x)) => {
                out.push_str(&format!("{}\n", x.deleted));
                x.prev_kvs.iter().for_each(|kv| simple_kv(out, style, kv));
            }
            other => out.push_str(&format!("unexpected response {other:?}\n")),
        }
    }
}

/// `makeMemberListTable` rows.
pub fn member_rows(members: &[Member]) -> Vec<Vec<String>> {
    members
        .iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() { "unstarted" } else { "started" }.to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect()
}

pub const MEMBER_HEADER: [&str; 6] = ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"];

pub fn fields_members(out: &mut String, header: &Option<ResponseHeader>, members: &[Member]) {
    fields_header(out, header);
    for m in members {
        out.push_str(&format!(
            "\"ID\" : {}\n\"Name\" : {}\n",
            m.id,
            go_quote(m.name.as_bytes())
        ));
        for u in &m.peer_ur_ls {
            out.push_str(&format!("\"PeerURL\" : {}\n", go_quote(u.as_bytes())));
        }
        for u in &m.client_ur_ls {
            out.push_str(&format!("\"ClientURL\" : {}\n", go_quote(u.as_bytes())));
        }
        out.push_str(&format!("\"IsLearner\" : {}\n\n", m.is_learner));
    }
}

/// The proto3 text rendering gogo's `String()` gives an `AlarmMember` (`%+v` in etcdctl).
pub fn alarm_text(member_id: u64, alarm: i32) -> String {
    let name = match alarm {
        0 => "NONE".to_string(),
        1 => "NOSPACE".to_string(),
        2 => "CORRUPT".to_string(),
        n => n.to_string(),
    };
    let mut s = String::new();
    if member_id != 0 {
        s.push_str(&format!("memberID:{member_id} "));
    }
    if alarm != 0 {
        s.push_str(&format!("alarm:{name} "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 14194993031503503814,
            member_id: 10908436505915459540,
            revision: 4,
            raft_term: 2,
        })
    }

    fn kv() -> KeyValue {
        KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 4,
            version: 3,
            value: b"bar2".to_vec(),
            lease: 0,
        }
    }

    #[test]
    fn range_json_matches_etcdctl_3_4() {
        let r = RangeResponse {
            header: hdr(),
            kvs: vec![kv()],
            more: false,
            count: 1,
        };
        assert_eq!(
            range_json(&r),
            r#"{"header":{"cluster_id":14194993031503503814,"member_id":10908436505915459540,"revision":4,"raft_term":2},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":4,"version":3,"value":"YmFyMg=="}],"count":1}"#
        );
    }

    #[test]
    fn fields_get_matches_etcdctl_3_4() {
        let r = RangeResponse {
            header: hdr(),
            kvs: vec![kv()],
            more: false,
            count: 1,
        };
        let mut out = String::new();
        fields_range(&mut out, &r);
        assert_eq!(
            out,
            "\"ClusterID\" : 14194993031503503814\n\"MemberID\" : 10908436505915459540\n\"Revision\" : 4\n\"RaftTerm\" : 2\n\"Key\" : \"foo\"\n\"CreateRevision\" : 2\n\"ModRevision\" : 4\n\"Version\" : 3\n\"Value\" : \"bar2\"\n\"Lease\" : 0\n\"More\" : false\n\"Count\" : 1\n"
        );
    }

    #[test]
    fn member_json_uses_etcd_names() {
        let m = Member {
            id: 10908436505915459540,
            name: "n1".into(),
            peer_ur_ls: vec!["http://127.0.0.1:23800".into()],
            client_ur_ls: vec![],
            is_learner: true,
        };
        assert_eq!(
            member_json(&m),
            r#"{"ID":10908436505915459540,"name":"n1","peerURLs":["http://127.0.0.1:23800"],"isLearner":true}"#
        );
    }

    #[test]
    fn alarm_text_is_gogo_compact_text() {
        assert_eq!(
            alarm_text(10908436505915459540, 1),
            "memberID:10908436505915459540 alarm:NOSPACE "
        );
    }
}
