//! `etcdserverpb.Maintenance`: Status, Alarm, HashKV, Hash, the Snapshot stream,
//! MoveLeader, Defragment (and Downgrade, which detcd does not support).
//!
//! - Snapshot streams the member's state as an etcd bbolt backend (written by
//!   [`super::snapshot_export`] as of the applied index, a slice at a time) in 32 KiB
//!   chunks, then etcd's trailer: one more message whose blob is the SHA-256 of
//!   everything before it, `remaining_bytes` counting it. The file is whole pages,
//!   so `size % 512 == 32` holds as etcd's clients expect of the trailer.
//! - Defragment has nothing to do and says so in the log: detcd's store is in memory
//!   with no free pages to give back (a compaction frees what it removes at once, so
//!   Status's dbSize and dbSizeInUse are both the bytes the member holds, and both
//!   drop after a compaction); the WAL and snapshot files are released as snapshots
//!   are taken.
//! - Hash is etcd's backend hash (CRC-32C over every bucket's name, keys and values,
//!   `meta`'s consistent index left out) of the database Snapshot would send,
//!   computed as that export is produced, without writing it.

use std::pin::Pin;

use detcd_core::node::Request;
use detcd_proto::etcdserverpb::maintenance_server::Maintenance;
use detcd_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    ResponseHeader, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use sha2::Digest as _;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request as Rpc, Response as Reply, Status};

use super::{mismatch, unwrap_response, Services};
use crate::metrics::service::Timer;

/// Blob bytes per Snapshot message (etcd's `snapshotSendBufferSize`).
pub const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

impl Services {
    /// The header of a Status answer: this member's view right now.
    async fn status_header(&self) -> Result<(ResponseHeader, String), Status> {
        match self.call(Request::Status).await? {
            detcd_core::node::Response::Status(s) => Ok((s.header.unwrap_or_default(), s.version)),
            _ => Err(mismatch("Status")),
        }
    }
}

/// The Snapshot stream's messages for `data`: 32 KiB chunks, then the SHA-256 trailer;
/// `header` and `version` on the first message only.
pub fn snapshot_messages(data: &[u8], header: ResponseHeader, version: String) -> Vec<SnapshotResponse> {
    let digest = <[u8; 32]>::from(sha2::Sha256::digest(data));
    let total = data.len() + digest.len();
    let mut sent = 0;
    let mut messages = Vec::with_capacity(data.len() / SNAPSHOT_CHUNK_BYTES + 2);
    for blob in data
        .chunks(SNAPSHOT_CHUNK_BYTES)
        .chain(std::iter::once(&digest[..]))
    {
        sent += blob.len();
        messages.push(SnapshotResponse {
            header: None,
            remaining_bytes: (total - sent) as u64,
            blob: blob.to_vec(),
            version: String::new(),
        });
    }
    messages[0].header = Some(header);
    messages[0].version = version;
    messages
}

#[tonic::async_trait]
impl Maintenance for Services {
    async fn alarm(&self, r: Rpc<AlarmRequest>) -> Result<Reply<AlarmResponse>, Status> {
        unwrap_response!(self.call(Request::Alarm(r.into_inner())).await, Alarm)
    }

    async fn status(&self, _r: Rpc<StatusRequest>) -> Result<Reply<StatusResponse>, Status> {
        unwrap_response!(self.call(Request::Status).await, Status)
    }

    async fn defragment(&self, _r: Rpc<DefragmentRequest>) -> Result<Reply<DefragmentResponse>, Status> {
        self.call(Request::AdminCheck).await?;
        let status = unwrap_response!(self.call(Request::Status).await, Status)?.into_inner();
        crate::log(&format!(
            "defragment: nothing to reclaim: detcd keeps its key space in memory, and each \
             compaction already released the revisions it removed ({} bytes in use); the WAL \
             and snapshot files are released as new snapshots are taken",
            status.db_size_in_use
        ));
        Ok(Reply::new(DefragmentResponse {
            header: status.header,
        }))
    }

    async fn hash(&self, _r: Rpc<HashRequest>) -> Result<Reply<HashResponse>, Status> {
        self.call(Request::AdminCheck).await?;
        let _timer = Timer::start(&self.metrics().service.hash);
        let (mut header, _) = self.status_header().await?;
        let (hash, revision) = super::snapshot_export::backend_hash(&self.handle).await?;
        header.revision = revision;
        Ok(Reply::new(HashResponse {
            header: Some(header),
            hash,
        }))
    }

    async fn hash_kv(&self, r: Rpc<HashKvRequest>) -> Result<Reply<HashKvResponse>, Status> {
        let _timer = Timer::start(&self.metrics().service.hash_rev);
        let mut reply = unwrap_response!(self.call(Request::HashKv(r.into_inner())).await, HashKv)?;
        crate::corruption::plant(reply.get_mut());
        Ok(reply)
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(&self, _r: Rpc<SnapshotRequest>) -> Result<Reply<SnapshotStream>, Status> {
        self.call(Request::AdminCheck).await?;
        let (header, version) = self.status_header().await?;
        let timer = Timer::start(&self.metrics().service.snapshot);
        let export = super::snapshot_export::export(&self.handle, &self.scratch_dir).await?;
        drop(timer);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || stream_file(export, header, version, tx));
        Ok(Reply::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        ))))
    }

    async fn move_leader(&self, r: Rpc<MoveLeaderRequest>) -> Result<Reply<MoveLeaderResponse>, Status> {
        unwrap_response!(self.call(Request::MoveLeader(r.into_inner())).await, MoveLeader)
    }

    async fn downgrade(&self, _r: Rpc<DowngradeRequest>) -> Result<Reply<DowngradeResponse>, Status> {
        Err(Status::unimplemented("detcd: cluster downgrade is not supported"))
    }
}

/// Sends the file's bytes in [`SNAPSHOT_CHUNK_BYTES`] messages, then the SHA-256
/// trailer, as [`snapshot_messages`] lays them out; stops if the client goes.
fn stream_file(
    export: super::snapshot_export::ExportFile,
    header: ResponseHeader,
    version: String,
    tx: tokio::sync::mpsc::Sender<Result<SnapshotResponse, Status>>,
) {
    let total = export.size_bytes + 32;
    let mut sent = 0u64;
    let mut digest = sha2::Sha256::new();
    let mut first = Some((header, version));
    let send = |blob: Vec<u8>, sent: u64, first: &mut Option<(ResponseHeader, String)>| {
        let (header, version) = first.take().map_or((None, String::new()), |(h, v)| (Some(h), v));
        tx.blocking_send(Ok(SnapshotResponse {
            header,
            remaining_bytes: total - sent,
            blob,
            version,
        }))
        .is_ok()
    };
    let mut file = match export.open() {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(Err(Status::internal(format!("detcd: snapshot: {e}"))));
            return;
        }
    };
    loop {
        let mut blob = vec![0u8; SNAPSHOT_CHUNK_BYTES];
        let mut filled = 0;
        while filled < blob.len() {
            match std::io::Read::read(&mut file, &mut blob[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(Status::internal(format!("detcd: snapshot: {e}"))));
                    return;
                }
            }
        }
        if filled == 0 {
            break;
        }
        blob.truncate(filled);
        digest.update(&blob);
        sent += filled as u64;
        if !send(blob, sent, &mut first) {
            return;
        }
    }
    let _ = send(digest.finalize().to_vec(), total, &mut first);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_stream_is_chunks_then_the_sha256_trailer() {
        let data = vec![7u8; SNAPSHOT_CHUNK_BYTES * 2 + 5];
        let messages = snapshot_messages(&data, ResponseHeader::default(), "3.6.0".into());
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0].blob.len(), SNAPSHOT_CHUNK_BYTES);
        assert_eq!(
            messages[0].remaining_bytes as usize,
            SNAPSHOT_CHUNK_BYTES + 5 + 32
        );
        assert!(messages[0].header.is_some() && messages[1].header.is_none());
        assert_eq!(messages[3].blob, sha2::Sha256::digest(&data).to_vec());
        assert_eq!(messages[3].remaining_bytes, 0);
        let empty = snapshot_messages(&[], ResponseHeader::default(), String::new());
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].blob, sha2::Sha256::digest([]).to_vec());
    }
}
