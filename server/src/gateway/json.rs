//! JSON <-> protobuf as etcd's grpc-gateway (v1, `JSONPb{OrigName: true}`) writes and
//! reads it, driven by the descriptors of the .proto files ([`FILE_DESCRIPTOR_SET`]):
//!
//! - out: field names as written in the .proto (`create_revision`, `TTL`, `peerURLs`),
//!   bytes as base64, 64-bit integers as strings, enums by name, zero values left out;
//! - in: either spelling of a field name, integers as numbers or strings, enums by name
//!   or number, unknown fields ignored, an empty body as the empty message.
//!
//! Errors have the gateway's shapes: `{"error","message","code"}` for a unary call, the
//! `{"error":{"grpc_code",...}}` line that ends a stream, and the HTTP status
//! grpc-gateway v1 maps each gRPC code to.

use std::sync::OnceLock;

use bytes::Bytes;
use detcd_proto::FILE_DESCRIPTOR_SET;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
};

/// The request and response types of one gRPC method.
#[derive(Debug, Clone)]
pub struct MethodTypes {
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The set is produced by this crate's own build: failing to read it is a build defect.
        DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("detcd-proto's FILE_DESCRIPTOR_SET decodes")
    })
}

/// The types of `service`'s `method` (`etcdserverpb.KV`, `Range`); `None` if the
/// descriptors lack it.
pub fn method_types(service: &str, method: &str) -> Option<MethodTypes> {
    let method = pool()
        .get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)?;
    Some(MethodTypes {
        input: method.input(),
        output: method.output(),
    })
}

fn serialize_options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true)
        .stringify_64_bit_integers(true)
        .use_enum_numbers(false)
}

/// One JSON object (the first value of `json`; blank means `{}`) as the encoded
/// protobuf message of type `input`, or the parse error's text.
pub fn request_to_proto(input: &MessageDescriptor, json: &[u8]) -> Result<Vec<u8>, String> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let mut de = serde_json::Deserializer::from_slice(json);
    let message = DynamicMessage::deserialize_with_options(input.clone(), &mut de, &options)
        .map_err(|e| super::go_json_errors::reword(&e, json))?;
    Ok(message.encode_to_vec())
}

/// An encoded protobuf message of type `output` as etcd's gateway writes it.
pub fn response_to_json(output: &MessageDescriptor, proto: Bytes) -> Result<Vec<u8>, String> {
    let message = DynamicMessage::decode(output.clone(), proto).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut ser, &serialize_options())
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// One line of a streamed answer: `{"result":<message>}`.
pub fn stream_result(message_json: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(message_json.len() + 12);
    line.extend_from_slice(b"{\"result\":");
    line.extend_from_slice(message_json);
    line.extend_from_slice(b"}\n");
    line
}

/// The HTTP status grpc-gateway v1 answers a gRPC code with.
pub fn http_status(code: tonic::Code) -> u16 {
    use tonic::Code::*;
    match code {
        Ok => 200,
        Cancelled => 408,
        Unknown | Internal | DataLoss => 500,
        InvalidArgument | OutOfRange => 400,
        DeadlineExceeded => 504,
        NotFound => 404,
        AlreadyExists | Aborted => 409,
        PermissionDenied => 403,
        Unauthenticated => 401,
        ResourceExhausted => 429,
        FailedPrecondition => 412,
        Unimplemented => 501,
        Unavailable => 503,
    }
}

/// The body of a failed unary call: `{"error":m,"message":m,"code":n}`.
pub fn error_body(status: &tonic::Status) -> String {
    let message = serde_json::Value::from(status.message()).to_string();
    format!(
        r#"{{"error":{message},"message":{message},"code":{}}}"#,
        status.code() as i32
    )
}

/// The line that ends a failed stream.
pub fn stream_error_line(status: &tonic::Status) -> Vec<u8> {
    let code = http_status(status.code());
    let reason = axum::http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let error = serde_json::json!({
        "grpc_code": status.code() as i32,
        "http_code": code,
        "message": status.message(),
        "http_status": reason,
    });
    format!("{}\n", serde_json::json!({ "error": error })).into_bytes()
}

/// Splits a streamed request body, fed in chunks, into its JSON values (objects one
/// after another, with or without newlines between them).
#[derive(Debug, Default)]
pub struct ValueSplitter {
    buffered: Vec<u8>,
}

impl ValueSplitter {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffered.extend_from_slice(chunk);
    }

    /// The next complete value's bytes, `Ok(None)` until one has arrived, or the
    /// syntax error's text.
    pub fn next_value(&mut self) -> Result<Option<Vec<u8>>, String> {
        let start = self
            .buffered
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(self.buffered.len());
        self.buffered.drain(..start);
        if self.buffered.is_empty() {
            return Ok(None);
        }
        let mut values =
            serde_json::Deserializer::from_slice(&self.buffered).into_iter::<serde::de::IgnoredAny>();
        match values.next() {
            Some(Ok(_)) => {
                let end = values.byte_offset();
                Ok(Some(self.buffered.drain(..end).collect()))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(e.to_string()),
            None => Ok(None),
        }
    }

    /// Everything not yet returned as a value.
    pub fn into_rest(self) -> Vec<u8> {
        self.buffered
    }

    /// Whether anything but whitespace is left over.
    pub fn has_partial(&self) -> bool {
        self.buffered.iter().any(|b| !b.is_ascii_whitespace())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(service: &str, method: &str, json: &str) -> String {
        let types = method_types(service, method).expect("method");
        let proto = request_to_proto(&types.input, json.as_bytes()).expect("parse");
        let out = response_to_json(&types.input, Bytes::from(proto)).expect("print");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn etcd_conventions_on_the_way_out_and_in() {
        // proto names, base64, int64 as strings, enums by name, zero values omitted,
        // unknown fields ignored, camelCase accepted, numbers accepted for int64.
        let got = roundtrip(
            "etcdserverpb.KV",
            "Range",
            r#"{"key":"Zm9v","rangeEnd":"Zm9w","limit":5,"revision":"0","sort_order":"DESCEND","bogus":[1]}"#,
        );
        assert_eq!(
            got,
            r#"{"key":"Zm9v","range_end":"Zm9w","limit":"5","sort_order":"DESCEND"}"#
        );
        let got = roundtrip("etcdserverpb.Lease", "LeaseGrant", r#"{"TTL":"10","ID":7}"#);
        assert_eq!(got, r#"{"TTL":"10","ID":"7"}"#);
        let got = roundtrip(
            "etcdserverpb.Cluster",
            "MemberAdd",
            r#"{"peerURLs":["http://a:1"]}"#,
        );
        assert_eq!(got, r#"{"peerURLs":["http://a:1"]}"#);
        assert_eq!(roundtrip("etcdserverpb.KV", "Range", "  "), "{}");
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        let types = method_types("etcdserverpb.KV", "Put").expect("method");
        assert!(request_to_proto(&types.input, b"garbage").is_err());
        assert!(request_to_proto(&types.input, br#"{"key":123}"#).is_err());
        assert!(request_to_proto(&types.input, br#"{"key":"!!"}"#).is_err());
    }

    #[test]
    fn every_service_the_gateway_routes_is_described() {
        for (service, method) in [
            ("v3lockpb.Lock", "Lock"),
            ("v3electionpb.Election", "Observe"),
            ("etcdserverpb.Maintenance", "Snapshot"),
        ] {
            assert!(method_types(service, method).is_some(), "{service}/{method}");
        }
    }

    #[test]
    fn errors_have_the_gateway_shape() {
        let s = tonic::Status::failed_precondition("etcdserver: \"x\"");
        assert_eq!(
            error_body(&s),
            r#"{"error":"etcdserver: \"x\"","message":"etcdserver: \"x\"","code":9}"#
        );
        assert_eq!(http_status(s.code()), 412);
        let line = String::from_utf8(stream_error_line(&tonic::Status::unavailable("gone"))).expect("utf8");
        assert_eq!(
            line,
            "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"http_status\":\"Service Unavailable\",\"message\":\"gone\"}}\n"
        );
    }

    #[test]
    fn values_are_split_across_chunks() {
        let body = br#"{"a":{"b":"}"}} {"c":1}
{"d":[2]}"#;
        for chunk in [1, 3, body.len()] {
            let mut s = ValueSplitter::default();
            let mut got = Vec::new();
            for piece in body.chunks(chunk) {
                s.push(piece);
                while let Some(v) = s.next_value().expect("value") {
                    got.push(String::from_utf8(v).expect("utf8"));
                }
            }
            assert_eq!(got, [r#"{"a":{"b":"}"}}"#, r#"{"c":1}"#, r#"{"d":[2]}"#]);
            assert!(!s.has_partial());
        }
        let mut s = ValueSplitter::default();
        s.push(b"{] ");
        assert!(s.next_value().is_err());
    }
}
