//! `etcdserverpb.Watch`: one bidirectional gRPC stream carries many watchers.
//!
//! Each gRPC stream opens one driver [`WatchStream`](detcd_io::driver::WatchStream); one
//! task per stream moves requests in (create, cancel, progress, in the order the client
//! sent them) and responses out (in the order the node made them). The node answers
//! creates, cancels, progress and events itself; this file only adds what etcd's
//! `serverWatchStream` does at the gRPC layer:
//! - a create the node refuses outright is answered `created, canceled, watch_id = -1`
//!   with the reason, not as a stream error;
//! - the stream ends (OK) when the client closes its side, as etcd's does;
//! - a stream the driver dropped because its client read too slowly ends with
//!   `Unavailable`, so clients re-create their watchers from the last revision they saw.

use std::pin::Pin;

use detcd_io::driver::WatchStreamRequest;
use detcd_proto::etcdserverpb::watch_request::RequestUnion;
use detcd_proto::etcdserverpb::watch_server::Watch;
use detcd_proto::etcdserverpb::{WatchRequest, WatchResponse};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request as Rpc, Response as Reply, Status, Streaming};

use super::{status, Services};

/// Responses one gRPC stream buffers for its client (etcd's `chanBufLen`).
pub const WATCH_RESPONSES_BUFFERED_MAX: usize = 128;

type WatchResponseStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for Services {
    type WatchStream = WatchResponseStream;

    async fn watch(&self, r: Rpc<Streaming<WatchRequest>>) -> Result<Reply<WatchResponseStream>, Status> {
        self.check_require_leader(&r)?;
        let mut inbound = r.into_inner();
        let mut stream = self.handle.open_watch_stream().await;
        stream.set_credentials(super::current_credentials());
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_RESPONSES_BUFFERED_MAX);
        let services = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    request = inbound.message() => {
                        let Ok(Some(request)) = request else { break };
                        let Some(union) = request.request_union else { continue };
                        let request = match union {
                            RequestUnion::CreateRequest(c) => WatchStreamRequest::Create(c),
                            RequestUnion::CancelRequest(c) => WatchStreamRequest::Cancel(c.watch_id),
                            RequestUnion::ProgressRequest(_) => WatchStreamRequest::Progress,
                        };
                        let is_create = matches!(request, WatchStreamRequest::Create(_));
                        if let Err(e) = stream.send(request).await {
                            if e == detcd_core::error::STOPPED {
                                let _ = tx.send(Err(status(e))).await;
                                break;
                            }
                            if is_create {
                                let refused = WatchResponse {
                                    header: Some(services.header()),
                                    watch_id: -1,
                                    created: true,
                                    canceled: true,
                                    cancel_reason: e.message.to_string(),
                                    ..WatchResponse::default()
                                };
                                if tx.send(Ok(refused)).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    response = stream.recv() => {
                        match response {
                            Some(response) => {
                                if tx.send(Ok(response)).await.is_err() {
                                    break;
                                }
                            }
                            None => {
                                let why = if stream.overflowed() {
                                    Status::unavailable("detcd: watch stream dropped: the client read too slowly")
                                } else {
                                    status(detcd_core::error::STOPPED)
                                };
                                let _ = tx.send(Err(why)).await;
                                break;
                            }
                        }
                    }
                    () = tx.closed() => break,
                }
            }
        });
        Ok(Reply::new(Box::pin(ReceiverStream::new(rx))))
    }
}
