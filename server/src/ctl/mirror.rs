//! `make-mirror <destination>`, as etcdctl 3.4 (`make_mirror_command.go` and clientv3's
//! `mirror.Syncer`): copy every key under `--prefix` as of one revision, in batches,
//! then apply the watched changes after it, one destination transaction per source
//! revision; keys move from `--prefix` to `--dest-prefix` (or to the root with
//! `--no-dest-prefix`). The number of keys mirrored so far is printed every 30 s. The
//! destination is dialed with the `--dest-*` TLS flags.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use detcd_proto::etcdserverpb::kv_client::KvClient;
use detcd_proto::etcdserverpb::watch_client::WatchClient;
use detcd_proto::etcdserverpb::{
    request_op, watch_request, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    WatchCreateRequest, WatchRequest,
};
use tonic::transport::Channel;

use super::args::{bool_flag, value_flag, FlagSpec, Parsed};
use super::error::{CtlError, EXIT_ERROR};
use super::kv::prefix_end;
use super::{dial, out, Ctx};

pub const MIRROR_FLAGS: &[FlagSpec] = &[
    value_flag("prefix").about("Key-value prefix to mirror"),
    value_flag("dest-prefix")
        .about("destination prefix to mirror a prefix to a different prefix in the destination cluster"),
    bool_flag("no-dest-prefix").about("mirror key-values to the root of the destination cluster"),
    value_flag("dest-cert")
        .about("Identify secure client using this TLS certificate file for the destination cluster"),
    value_flag("dest-key").about("Identify secure client using this TLS key file"),
    value_flag("dest-cacert").about("Verify certificates of TLS enabled secure servers using this CA bundle"),
    bool_flag("dest-insecure-transport")
        .default_true()
        .about("Disable transport security for client connections"),
];

/// clientv3 mirror's batch size for the base copy.
const BATCH_KEYS: i64 = 1000;
/// How often the running total is printed.
const PROGRESS_SECS: u64 = 30;

/// Moves `key` from the source prefix to the destination's (Go's `strings.Replace(key,
/// prefix, dest, 1)`: the first occurrence, wherever it is).
fn modify_prefix(key: &[u8], prefix: &[u8], dest: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        return [dest, key].concat();
    }
    match key.windows(prefix.len()).position(|w| w == prefix) {
        Some(at) => [&key[..at], dest, &key[at + prefix.len()..]].concat(),
        None => key.to_vec(),
    }
}

pub async fn make_mirror(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    if p.args.len() != 1 {
        return Err(CtlError::bad_args("make-mirror takes one destination argument"));
    }
    let mut dest_flags = Parsed::default();
    for (from, to) in [
        ("dest-cert", "cert"),
        ("dest-key", "key"),
        ("dest-cacert", "cacert"),
        ("dest-insecure-transport", "insecure-transport"),
    ] {
        if let Some(v) = p.value(from) {
            dest_flags.flags.insert(to.to_string(), v.to_string());
        }
    }
    let dest_tls = dial::ClientTls::from_flags(&dest_flags)?;
    let g = &ctx.globals;
    let dest = dial::connect(&p.args[0], g.dial_timeout, &dest_tls, Some(g.keepalive)).await?;
    let source = ctx.channel().await?;
    let prefix = p.value("prefix").unwrap_or("").as_bytes().to_vec();
    let total = Arc::new(AtomicI64::new(0));
    let progress = {
        let total = total.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(PROGRESS_SECS)).await;
                out(&format!("{}\n", total.load(Ordering::Relaxed)));
            }
        })
    };
    let result = mirror(ctx, source, dest, p, &prefix, &total).await;
    progress.abort();
    result
}

async fn mirror(
    ctx: &Ctx,
    source: super::CtlChannel,
    dest: Channel,
    p: &Parsed,
    prefix: &[u8],
    total: &AtomicI64,
) -> Result<(), CtlError> {
    let mut src = KvClient::new(source.clone());
    let mut dst = KvClient::new(dest);
    // The revision to copy at: a read's header.
    let head = ctx
        .call(src.range(RangeRequest {
            key: b"foo".to_vec(),
            ..Default::default()
        }))
        .await?;
    let rev = head.header.map_or(0, |h| h.revision);
    let dest_prefix = p.value("dest-prefix").unwrap_or("");
    if p.bool("no-dest-prefix")? && !dest_prefix.is_empty() {
        return Err(CtlError::bad_args(
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
        ));
    }
    let dest_prefix = if !p.bool("no-dest-prefix")? && dest_prefix.is_empty() {
        prefix.to_vec()
    } else {
        dest_prefix.as_bytes().to_vec()
    };
    let (mut key, range_end) = if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (prefix.to_vec(), prefix_end(prefix))
    };
    loop {
        let resp = ctx
            .call(src.range(RangeRequest {
                key: key.clone(),
                range_end: range_end.clone(),
                limit: BATCH_KEYS,
                revision: rev,
                ..Default::default()
            }))
            .await?;
        for kv in &resp.kvs {
            let put = PutRequest {
                key: modify_prefix(&kv.key, prefix, &dest_prefix),
                value: kv.value.clone(),
                ..Default::default()
            };
            ctx.call(dst.put(put)).await?;
            total.fetch_add(1, Ordering::Relaxed);
        }
        match resp.kvs.last() {
            Some(last) if resp.more => key = [last.key.as_slice(), &[0]].concat(),
            _ => break,
        }
    }
    // Then the changes after that revision, one destination txn per source revision.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let (watch_key, watch_end) = if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (prefix.to_vec(), prefix_end(prefix))
    };
    let create = WatchCreateRequest {
        key: watch_key,
        range_end: watch_end,
        start_revision: rev + 1,
        ..Default::default()
    };
    // etcd answers the stream's headers only once a request arrived: queue it first.
    let _ = tx
        .send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
        })
        .await;
    let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut stream = WatchClient::new(source)
        .watch(requests)
        .await
        .map_err(|s| CtlError::from_status(&s))?
        .into_inner();
    while let Some(resp) = stream.message().await.map_err(|s| CtlError::from_status(&s))? {
        if resp.compact_revision != 0 {
            return Err(CtlError::new(
                EXIT_ERROR,
                "etcdserver: mvcc: required revision has been compacted",
            ));
        }
        if resp.canceled {
            return Err(CtlError::new(EXIT_ERROR, resp.cancel_reason));
        }
        let mut ops = Vec::new();
        let mut last_rev = 0;
        for event in &resp.events {
            let kv = event.kv.clone().unwrap_or_default();
            if last_rev != 0 && kv.mod_revision > last_rev {
                commit(ctx, &mut dst, std::mem::take(&mut ops)).await?;
            }
            last_rev = kv.mod_revision;
            let key = modify_prefix(&kv.key, prefix, &dest_prefix);
            let op = if event.r#type == 1 {
                request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                    key,
                    ..Default::default()
                })
            } else {
                request_op::Request::RequestPut(PutRequest {
                    key,
                    value: kv.value,
                    ..Default::default()
                })
            };
            ops.push(RequestOp { request: Some(op) });
            total.fetch_add(1, Ordering::Relaxed);
        }
        if !ops.is_empty() {
            commit(ctx, &mut dst, ops).await?;
        }
    }
    drop(tx);
    // etcdctl ends with ExitWithError(ExitError, nil) when the watch closes.
    Err(CtlError::new(EXIT_ERROR, "<nil>"))
}

async fn commit(ctx: &Ctx, dst: &mut KvClient<Channel>, ops: Vec<RequestOp>) -> Result<(), CtlError> {
    let txn = TxnRequest {
        success: ops,
        ..Default::default()
    };
    ctx.call(dst.txn(txn)).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_move_as_go_replaces_the_first_occurrence() {
        assert_eq!(modify_prefix(b"/a/k", b"/a/", b"/b/"), b"/b/k");
        assert_eq!(modify_prefix(b"x/a/k", b"/a/", b"/b/"), b"x/b/k");
        assert_eq!(modify_prefix(b"/a/k", b"/a/", b""), b"k");
        assert_eq!(modify_prefix(b"k", b"", b"/m/"), b"/m/k");
    }
}
