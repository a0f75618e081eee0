//! `snapshot save`, which streams a member's snapshot to a file and checks its SHA-256
//! trailer, and `snapshot status` (with `restore`): reading a snapshot file (etcd's bbolt
//! backend, with or without the SHA-256 trailer of the Snapshot stream) without a server,
//! as etcdctl 3.4 and etcdutl do (`snapshot_command.go`).

use std::io::Write;

use detcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd_proto::etcdserverpb::SnapshotRequest;
use sha2::Digest as _;

use super::error::{CtlError, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_IO};
use super::format::{go_string_slice, humanize_bytes, table};
use super::print::Format;
use super::{out, Ctx};
use crate::ctl::args::Parsed;
use detcd_storage::bolt::{BoltError, BoltReader, PAGE_BYTES};
use detcd_storage::etcd_db::{self, DbStatus};

/// Bytes of the SHA-256 trailer of a saved snapshot.
const HASH_BYTES: usize = 32;
/// etcd's test for a trailer: a bbolt file is whole pages, so its size is a
/// multiple of 512; with the trailer it is 32 more.
const HASH_ALIGN_BYTES: usize = 512;

fn error(message: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_ERROR, message)
}

/// bbolt's words for a file it cannot open.
fn bolt_error(e: BoltError) -> CtlError {
    match e {
        BoltError::InvalidDatabase(_) => error("invalid database"),
        BoltError::Corrupt(why) => error(format!("snapshot file integrity check failed: {why}")),
    }
}

pub async fn save(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let [path] = p.args.as_slice() else {
        return Err(CtlError::bad_args("snapshot save expects one argument"));
    };
    if ctx.globals.endpoints.len() != 1 {
        return Err(CtlError::new(
            EXIT_BAD_FEATURE,
            format!(
                "snapshot must be requested to one selected node, not multiple {}",
                go_string_slice(&ctx.globals.endpoints)
            ),
        ));
    }
    let part = format!("{path}.part");
    let io = |e: std::io::Error| CtlError::new(EXIT_IO, e.to_string());
    let mut file = open_private(&part).map_err(io)?;
    let mut m = MaintenanceClient::new(ctx.channel().await?);
    let mut stream = ctx.call(m.snapshot(SnapshotRequest {})).await?;
    // Everything but the last 32 bytes is hashed; those 32 bytes must equal the hash.
    let mut hasher = sha2::Sha256::new();
    let mut tail: Vec<u8> = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => {
                file.write_all(&chunk.blob).map_err(io)?;
                tail.extend_from_slice(&chunk.blob);
                if tail.len() > HASH_BYTES {
                    let cut = tail.len() - HASH_BYTES;
                    hasher.update(&tail[..cut]);
                    tail.drain(..cut);
                }
            }
            Ok(None) => break,
            Err(s) => {
                let _ = std::fs::remove_file(&part);
                return Err(CtlError::from_status(&s));
            }
        }
    }
    file.sync_all().map_err(io)?;
    drop(file);
    if tail.len() != HASH_BYTES || hasher.finalize()[..] != tail[..] {
        let _ = std::fs::remove_file(&part);
        return Err(CtlError::new(
            EXIT_ERROR,
            "snapshot stream failed its SHA-256 integrity check",
        ));
    }
    std::fs::rename(&part, path).map_err(io)?;
    out(&format!("Snapshot saved at {path}\n"));
    Ok(())
}

#[cfg(unix)]
fn open_private(path: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &str) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

/// Reads a snapshot file: its bytes, and whether it ends with the trailer.
fn read_file(path: &str) -> Result<(Vec<u8>, bool), CtlError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => error(format!("stat {path}: no such file or directory")),
        _ => error(format!("open {path}: {e}")),
    })?;
    let has_hash = bytes.len() % HASH_ALIGN_BYTES == HASH_BYTES;
    Ok((bytes, has_hash))
}

/// The database of a snapshot file, its trailer checked unless `skip_hash_check`.
pub fn open_checked(path: &str, skip_hash_check: bool) -> Result<BoltReader, CtlError> {
    let (mut bytes, has_hash) = read_file(path)?;
    if has_hash {
        let at = bytes.len() - HASH_BYTES;
        if !skip_hash_check {
            let want = &bytes[at..];
            let got = sha2::Sha256::digest(&bytes[..at]);
            if want != &got[..] {
                return Err(error(format!(
                    "expected sha256 {}, got {}",
                    go_bytes(want),
                    go_bytes(&got)
                )));
            }
        }
        bytes.truncate(at);
    } else if !skip_hash_check {
        return Err(error("snapshot missing hash but --skip-hash-check=false"));
    }
    open_db(bytes)
}

fn open_db(bytes: Vec<u8>) -> Result<BoltReader, CtlError> {
    if bytes.len() < 2 * PAGE_BYTES {
        return Err(error("file size too small"));
    }
    BoltReader::open(bytes).map_err(bolt_error)
}

/// Go's `%v` of a byte slice.
fn go_bytes(b: &[u8]) -> String {
    let items: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", items.join(" "))
}

/// `snapshot status <file>`: hash, revision, keys and size, as etcdctl prints them.
pub fn status(ctx: &Ctx, p: &Parsed) -> Result<(), CtlError> {
    let [path] = p.args.as_slice() else {
        return Err(CtlError::bad_args(
            "snapshot status requires exactly one argument",
        ));
    };
    let (mut bytes, has_hash) = read_file(path)?;
    if has_hash {
        bytes.truncate(bytes.len() - HASH_BYTES);
    }
    let db = open_db(bytes)?;
    let s = etcd_db::db_status(&db).map_err(bolt_error)?;
    out(&render_status(&s, ctx.globals.format)?);
    Ok(())
}

fn render_status(s: &DbStatus, format: Format) -> Result<String, CtlError> {
    Ok(match format {
        Format::Simple => format!(
            "{:x}, {}, {}, {}\n",
            s.hash,
            s.revision,
            s.total_keys,
            humanize_bytes(s.total_size)
        ),
        Format::Json => format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            s.hash, s.revision, s.total_keys, s.total_size
        ),
        Format::Fields => format!(
            "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
            s.hash, s.revision, s.total_keys, s.total_size
        ),
        Format::Table => table(
            &["hash", "revision", "total keys", "total size"],
            &[vec![
                format!("{:x}", s.hash),
                s.revision.to_string(),
                s.total_keys.to_string(),
                humanize_bytes(s.total_size),
            ]],
        ),
        Format::Protobuf => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                "protobuf not supported as output format",
            ))
        }
    })
}
