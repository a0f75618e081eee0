//! The v2 store as bytes, for the member's snapshots: the index, the tree (each
//! node: created, modified, optional expiry, then a value or its children by name)
//! and the history's events, then (from the state format 6) the cluster version
//! and (from 7) whether the store still numbers as format 5 did (see
//! [`super::internal`]). Little-endian, length-prefixed; decoding checks every
//! length and tag and answers an error, never a panic.

use std::collections::BTreeMap;

use super::history::History;
use super::store::{Kind, Node};
use super::{Action, Event, NodeView, Store};

/// Which state format's v2 store bytes are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    /// 5: no cluster version, numbered without the cluster's records.
    Legacy,
    /// 6: the cluster version.
    ClusterVersion,
    /// 7 on: the cluster version, then whether the numbering is still format 5's.
    Numbering,
}

const FILE: u8 = 0;
const DIR: u8 = 1;

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).expect("under 4 Gi").to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => {
            out.push(1);
            put_u64(out, n);
        }
        None => out.push(0),
    }
}

fn put_node(out: &mut Vec<u8>, node: &Node) {
    put_u64(out, node.created);
    put_u64(out, node.modified);
    put_opt(out, node.expire);
    match &node.kind {
        Kind::File(value) => {
            out.push(FILE);
            put_str(out, value);
        }
        Kind::Dir(children) => {
            out.push(DIR);
            put_len(out, children.len());
            for (name, child) in children {
                put_str(out, name);
                put_node(out, child);
            }
        }
    }
}

fn put_view(out: &mut Vec<u8>, v: &NodeView) {
    put_str(out, &v.key);
    match &v.value {
        Some(value) => {
            out.push(1);
            put_str(out, value);
        }
        None => out.push(0),
    }
    out.push(u8::from(v.dir));
    put_opt(out, v.expire_unix_ms);
    out.extend_from_slice(&v.ttl.to_le_bytes());
    put_u64(out, v.modified_index);
    put_u64(out, v.created_index);
    put_len(out, v.nodes.len());
    for child in &v.nodes {
        put_view(out, child);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("v2 store truncated at byte {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn len(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize)
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "v2 store: a string is not UTF-8".to_string())
    }

    fn flag(&mut self) -> Result<bool, String> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("v2 store: bad flag {b}")),
        }
    }

    fn opt(&mut self) -> Result<Option<u64>, String> {
        Ok(if self.flag()? { Some(self.u64()?) } else { None })
    }

    fn node(&mut self) -> Result<Node, String> {
        let created = self.u64()?;
        let modified = self.u64()?;
        let expire = self.opt()?;
        let kind = match self.byte()? {
            FILE => Kind::File(self.string()?),
            DIR => {
                let mut children = BTreeMap::new();
                for _ in 0..self.len()? {
                    let name = self.string()?;
                    children.insert(name, self.node()?);
                }
                Kind::Dir(children)
            }
            b => return Err(format!("v2 store: bad node kind {b}")),
        };
        Ok(Node {
            created,
            modified,
            expire,
            kind,
        })
    }

    fn view(&mut self) -> Result<NodeView, String> {
        let key = self.string()?;
        let value = if self.flag()? { Some(self.string()?) } else { None };
        let dir = self.flag()?;
        let expire_unix_ms = self.opt()?;
        let ttl = self.u64()? as i64;
        let modified_index = self.u64()?;
        let created_index = self.u64()?;
        let mut nodes = Vec::new();
        for _ in 0..self.len()? {
            nodes.push(self.view()?);
        }
        Ok(NodeView {
            key,
            value,
            dir,
            expire_unix_ms,
            ttl,
            nodes,
            modified_index,
            created_index,
        })
    }
}

impl Store {
    /// The store as snapshot bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.index);
        put_node(out, &self.root);
        put_len(out, self.history.events.len());
        for e in &self.history.events {
            out.push(e.action.to_byte());
            out.push(u8::from(e.refresh));
            put_u64(out, e.etcd_index);
            put_view(out, &e.node);
            match &e.prev_node {
                Some(prev) => {
                    out.push(1);
                    put_view(out, prev);
                }
                None => out.push(0),
            }
        }
        match &self.cluster_version {
            Some(v) => {
                out.push(1);
                put_str(out, v);
            }
            None => out.push(0),
        }
        out.push(u8::from(self.legacy_numbering));
    }

    /// Reads bytes written by [`Store::encode`] (state format 7 on).
    pub fn decode(bytes: &[u8]) -> Result<Store, String> {
        Store::decode_with(bytes, Format::Numbering)
    }

    /// Reads the v2 store of a state format 6 snapshot (no numbering flag: it
    /// counted the cluster's records).
    pub fn decode_format_6(bytes: &[u8]) -> Result<Store, String> {
        Store::decode_with(bytes, Format::ClusterVersion)
    }

    /// Reads the v2 store of a state format 5 snapshot, written before the
    /// cluster's records were counted: no cluster version at the end, and an
    /// index without the membership events before it. The store keeps that
    /// numbering until a cluster version is set (see [`super::internal`]).
    pub fn decode_without_cluster_version(bytes: &[u8]) -> Result<Store, String> {
        Store::decode_with(bytes, Format::Legacy)
    }

    fn decode_with(bytes: &[u8], format: Format) -> Result<Store, String> {
        let mut r = Reader { bytes, at: 0 };
        let index = r.u64()?;
        let root = r.node()?;
        if !matches!(root.kind, Kind::Dir(_)) {
            return Err("v2 store: the root is not a directory".to_string());
        }
        let mut history = History::default();
        for _ in 0..r.len()? {
            let action = Action::from_byte(r.byte()?).ok_or("v2 store: bad event action")?;
            let refresh = r.flag()?;
            let etcd_index = r.u64()?;
            let node = r.view()?;
            let prev_node = if r.flag()? { Some(r.view()?) } else { None };
            history.add(Event {
                action,
                node,
                prev_node,
                etcd_index,
                refresh,
            });
        }
        let cluster_version = if format != Format::Legacy && r.flag()? {
            Some(r.string()?)
        } else {
            None
        };
        let legacy_numbering = match format {
            Format::Legacy => true,
            Format::ClusterVersion => false,
            Format::Numbering => r.flag()?,
        };
        if r.at != bytes.len() {
            return Err("v2 store: trailing bytes".to_string());
        }
        Ok(Store {
            root,
            index,
            history,
            cluster_version,
            legacy_numbering,
        })
    }
}
