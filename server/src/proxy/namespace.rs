//! `--namespace`: the proxy's clients see the keys under one prefix as the whole key
//! space (etcd's `clientv3/namespace`).
//!
//! On the way up every key and range end is prefixed: a range end of `"\0"` (the end of
//! the key space) becomes the end of the prefix's range, an empty one stays empty (one
//! key). On the way down the prefix is stripped from every key (ranges, txn answers,
//! prev_kv, watch events, a lease's keys); keys outside the prefix never reach a client.
//! With no namespace (an empty prefix) everything passes unchanged.

use detcd_proto::etcdserverpb::request_op::Request as Op;
use detcd_proto::etcdserverpb::response_op::Response as OpAnswer;
use detcd_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    RequestOp, ResponseOp, TxnRequest, TxnResponse, WatchCreateRequest,
};
use detcd_proto::mvccpb::{Event, KeyValue};

/// The key prefix of `--namespace` (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace {
    prefix: Vec<u8>,
}

impl Namespace {
    pub fn new(prefix: &str) -> Namespace {
        Namespace {
            prefix: prefix.as_bytes().to_vec(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.prefix.is_empty()
    }

    /// A client's key as the upstream's.
    pub fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + key.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(key);
        out
    }

    /// A client's `[key, end)` as the upstream's.
    pub fn interval(&self, key: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
        if self.is_empty() {
            return (key.to_vec(), end.to_vec());
        }
        let end = match end {
            [] => Vec::new(),
            [0] => prefix_end(&self.prefix),
            _ => self.key(end),
        };
        (self.key(key), end)
    }

    /// An upstream key as the client's; `None` outside the namespace.
    pub fn strip<'a>(&self, key: &'a [u8]) -> Option<&'a [u8]> {
        key.strip_prefix(self.prefix.as_slice())
    }

    fn strip_kv(&self, kv: &mut KeyValue) {
        if let Some(stripped) = self.strip(&kv.key) {
            kv.key = stripped.to_vec();
        }
    }

    pub fn range_up(&self, r: &mut RangeRequest) {
        (r.key, r.range_end) = self.interval(&r.key, &r.range_end);
    }

    pub fn range_down(&self, r: &mut RangeResponse) {
        r.kvs.iter_mut().for_each(|kv| self.strip_kv(kv));
    }

    pub fn put_up(&self, r: &mut PutRequest) {
        r.key = self.key(&r.key);
    }

    pub fn put_down(&self, r: &mut PutResponse) {
        if let Some(kv) = &mut r.prev_kv {
            self.strip_kv(kv);
        }
    }

    pub fn delete_up(&self, r: &mut DeleteRangeRequest) {
        (r.key, r.range_end) = self.interval(&r.key, &r.range_end);
    }

    pub fn delete_down(&self, r: &mut DeleteRangeResponse) {
        r.prev_kvs.iter_mut().for_each(|kv| self.strip_kv(kv));
    }

    pub fn txn_up(&self, t: &mut TxnRequest) {
        t.compare.iter_mut().for_each(|c| self.compare_up(c));
        t.success
            .iter_mut()
            .chain(t.failure.iter_mut())
            .for_each(|op| self.op_up(op));
    }

    pub fn txn_down(&self, t: &mut TxnResponse) {
        t.responses.iter_mut().for_each(|r| self.answer_down(r));
    }

    fn compare_up(&self, c: &mut Compare) {
        (c.key, c.range_end) = self.interval(&c.key, &c.range_end);
    }

    fn op_up(&self, op: &mut RequestOp) {
        match &mut op.request {
            Some(Op::RequestRange(r)) => self.range_up(r),
            Some(Op::RequestPut(r)) => self.put_up(r),
            Some(Op::RequestDeleteRange(r)) => self.delete_up(r),
            Some(Op::RequestTxn(t)) => self.txn_up(t),
            None => {}
        }
    }

    fn answer_down(&self, answer: &mut ResponseOp) {
        match &mut answer.response {
            Some(OpAnswer::ResponseRange(r)) => self.range_down(r),
            Some(OpAnswer::ResponsePut(r)) => self.put_down(r),
            Some(OpAnswer::ResponseDeleteRange(r)) => self.delete_down(r),
            Some(OpAnswer::ResponseTxn(t)) => self.txn_down(t),
            None => {}
        }
    }

    pub fn watch_up(&self, w: &mut WatchCreateRequest) {
        (w.key, w.range_end) = self.interval(&w.key, &w.range_end);
    }

    /// A watch event with its keys as the client's.
    pub fn event_down(&self, e: &mut Event) {
        if let Some(kv) = &mut e.kv {
            self.strip_kv(kv);
        }
        if let Some(kv) = &mut e.prev_kv {
            self.strip_kv(kv);
        }
    }

    /// A lease's keys as the client sees them: those in the namespace, stripped.
    pub fn lease_keys_down(&self, keys: &mut Vec<Vec<u8>>) {
        if self.is_empty() {
            return;
        }
        keys.retain(|k| self.strip(k).is_some());
        for k in keys.iter_mut() {
            *k = k[self.prefix.len()..].to_vec();
        }
    }
}

/// The end of the range of keys starting with `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    // All 0xff: to the end of the key space.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_as_etcds_namespace() {
        let ns = Namespace::new("app/");
        assert_eq!(ns.interval(b"k", b""), (b"app/k".to_vec(), Vec::new()));
        assert_eq!(ns.interval(b"a", b"b"), (b"app/a".to_vec(), b"app/b".to_vec()));
        // "from key" and "all keys" stop at the namespace's end.
        assert_eq!(ns.interval(b"\0", b"\0"), (b"app/\0".to_vec(), b"app0".to_vec()));
        assert_eq!(ns.strip(b"app/x"), Some(&b"x"[..]));
        assert_eq!(ns.strip(b"other"), None);
        assert_eq!(
            Namespace::default().interval(b"a", b"\0"),
            (b"a".to_vec(), vec![0])
        );
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn txn_compares_and_nested_ops_are_prefixed_and_answers_stripped() {
        let ns = Namespace::new("p/");
        let mut t = TxnRequest {
            compare: vec![Compare {
                key: b"c".to_vec(),
                ..Compare::default()
            }],
            success: vec![RequestOp {
                request: Some(Op::RequestTxn(TxnRequest {
                    success: vec![RequestOp {
                        request: Some(Op::RequestPut(PutRequest {
                            key: b"k".to_vec(),
                            ..PutRequest::default()
                        })),
                    }],
                    ..TxnRequest::default()
                })),
            }],
            failure: vec![],
        };
        ns.txn_up(&mut t);
        assert_eq!(t.compare[0].key, b"p/c");
        let Some(Op::RequestTxn(inner)) = &t.success[0].request else {
            panic!("nested txn")
        };
        let Some(Op::RequestPut(put)) = &inner.success[0].request else {
            panic!("nested put")
        };
        assert_eq!(put.key, b"p/k");
        let mut answer = TxnResponse {
            responses: vec![ResponseOp {
                response: Some(OpAnswer::ResponseRange(RangeResponse {
                    kvs: vec![KeyValue {
                        key: b"p/k".to_vec(),
                        ..KeyValue::default()
                    }],
                    ..RangeResponse::default()
                })),
            }],
            ..TxnResponse::default()
        };
        ns.txn_down(&mut answer);
        let Some(OpAnswer::ResponseRange(r)) = &answer.responses[0].response else {
            panic!("range answer")
        };
        assert_eq!(r.kvs[0].key, b"k");
    }
}
