//! The Snapshot RPC's database: the member's state written as an etcd bbolt
//! backend (`detcd_storage::etcd_db`) into a temporary file, then streamed.
//!
//! The state is read from the member a slice at a time
//! (`MemberHandle::portable_records`, [`RECORDS_PER_SLICE`] revisions per call),
//! so the member keeps serving in between and memory stays bounded by a slice
//! and a page, whatever the store's size. The file exists because bbolt's meta
//! pages at the front name the root pages written last; it is removed once
//! streamed (or on failure).

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use detcd_core::mvcc::Revision;
use detcd_io::driver::MemberHandle;
use detcd_storage::bolt::BoltWriter;
use detcd_storage::etcd_db::{self, BucketSink};
use tonic::Status;

/// Revisions asked of the member per call: a few milliseconds of its time.
pub const RECORDS_PER_SLICE: usize = 1024;
/// Bytes buffered before the file is written to.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

/// The names of export files start with this.
const EXPORT_PREFIX: &str = "detcd-snapshot-export-";

/// Removes export files a previous process left in `dir` (it stopped while
/// streaming); returns how many.
pub fn remove_stale_exports(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(EXPORT_PREFIX))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// A temporary database file, removed when dropped.
#[derive(Debug)]
pub struct ExportFile {
    pub path: PathBuf,
    pub size_bytes: u64,
}

impl Drop for ExportFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ExportFile {
    pub fn open(&self) -> std::io::Result<impl Read> {
        File::open(&self.path)
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> Status {
    Status::internal(format!("detcd: snapshot: {what}: {e}"))
}

/// Writes the member's state as an etcd database into a new file in `dir`.
///
/// The encoding and the file writes run on a blocking thread (they are most of
/// the work), so the runtime's workers stay free for client requests; the member
/// is asked for each slice from there.
pub async fn export(handle: &MemberHandle, dir: &Path) -> Result<ExportFile, Status> {
    let handle = handle.clone();
    let dir = dir.to_path_buf();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || export_blocking(&runtime, &handle, &dir))
        .await
        .map_err(|e| internal("export task", e))?
}

fn export_blocking(
    runtime: &tokio::runtime::Handle,
    handle: &MemberHandle,
    dir: &Path,
) -> Result<ExportFile, Status> {
    let n = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{EXPORT_PREFIX}{}-{n}.db", std::process::id()));
    let file = File::create(&path).map_err(|e| internal("creating the file", e))?;
    let mut export = ExportFile { path, size_bytes: 0 };
    let out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
    let mut bolt = BoltWriter::new(out).map_err(|e| internal("writing", e))?;
    export_into(runtime, handle, &mut bolt)?;
    let (out, size) = bolt.finish().map_err(|e| internal("writing", e))?;
    let file = out.into_inner().map_err(|e| internal("writing", e.error()))?;
    file.sync_all().map_err(|e| internal("syncing", e))?;
    export.size_bytes = size;
    Ok(export)
}

/// etcd's backend hash of the member's state (Maintenance.Hash), computed from an
/// export as it is produced (no file), and the revision it covers.
pub async fn backend_hash(handle: &MemberHandle) -> Result<(u32, i64), Status> {
    let handle = handle.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut hasher = etcd_db::BackendHasher::default();
        let revision = export_into(&runtime, &handle, &mut hasher)?;
        let hash = hasher.finish().map_err(|e| internal("hashing", e))?;
        Ok((hash, revision))
    })
    .await
    .map_err(|e| internal("hash task", e))?
}

/// Writes the member's state into `sink` as etcd's buckets: the head, the key
/// space a slice at a time, then `meta`; returns the head's revision.
fn export_into<S: BucketSink>(
    runtime: &tokio::runtime::Handle,
    handle: &MemberHandle,
    sink: &mut S,
) -> Result<i64, Status> {
    let head = runtime.block_on(handle.portable_head()).map_err(super::status)?;
    etcd_db::write_head(sink, &head).map_err(|e| internal("writing", e))?;
    sink.begin_bucket(etcd_db::KEY_BUCKET)
        .map_err(|e| internal("writing", e))?;
    let mut from = Some(Revision::new(i64::MIN, i64::MIN));
    let mut compact_revision = head.compact_revision;
    while let Some(at) = from {
        let slice = runtime
            .block_on(handle.portable_records(head.bound(), at, RECORDS_PER_SLICE))
            .map_err(super::status)?;
        let slice = slice.map_err(|e| Status::unavailable(format!("detcd: {e}")))?;
        etcd_db::write_records(sink, &slice.records).map_err(|e| internal("writing", e))?;
        compact_revision = compact_revision.max(slice.compact_revision);
        from = slice.next;
    }
    sink.end_bucket().map_err(|e| internal("writing", e))?;
    // After the records: a compaction while they were read moves it.
    etcd_db::write_meta(sink, &head, compact_revision).map_err(|e| internal("writing", e))?;
    Ok(head.current_revision)
}
