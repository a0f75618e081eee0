//! `defrag [--cluster]`, as etcdctl 3.4 runs and prints it (`defrag_command.go`).

use detcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd_proto::etcdserverpb::DefragmentRequest;

use super::args::Parsed;
use super::endpoint::endpoints;
use super::error::{CtlError, EXIT_BAD_FEATURE, EXIT_ERROR};
use super::{err_line, out, Ctx};

/// `defrag [--cluster]`: Maintenance.Defragment on each endpoint in turn, as etcdctl does;
/// any failure makes the exit status 1 after every endpoint was tried.
pub async fn defrag(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    if p.value("data-dir").is_some_and(|d| !d.is_empty()) {
        return Err(CtlError::new(
            EXIT_BAD_FEATURE,
            "defrag --data-dir is not supported by detcdctl: detcd keeps no bbolt file to defragment offline; defragment a running member instead",
        ));
    }
    let mut failed = false;
    for ep in endpoints(ctx, p).await? {
        let result = async {
            let channel = ctx.endpoint_channel(&ep).await?;
            let mut m = MaintenanceClient::new(channel);
            ctx.call(m.defragment(DefragmentRequest {})).await
        }
        .await;
        match result {
            Ok(_) => out(&format!("Finished defragmenting etcd member[{ep}]\n")),
            Err(e) => {
                failed = true;
                err_line(&format!(
                    "Failed to defragment etcd member[{ep}] ({})\n",
                    e.message
                ));
            }
        }
    }
    if failed {
        return Err(CtlError::new(EXIT_ERROR, ""));
    }
    Ok(())
}
