//! `move-leader <member-id>`, as etcdctl 3.4 runs and prints it (`move_leader_command.go`).

use detcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd_proto::etcdserverpb::{MoveLeaderRequest, StatusRequest};
use prost::Message;

use super::args::Parsed;
use super::error::CtlError;
use super::format::{go_string_slice, JsonObject};
use super::print::{self, Format};
use super::{out, out_bytes, Ctx};

pub async fn move_leader(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let [arg] = p.args.as_slice() else {
        return Err(CtlError::bad_args("move-leader command needs 1 argument"));
    };
    let target = u64::from_str_radix(arg, 16).map_err(|_| {
        CtlError::bad_args(format!(
            "bad leader ID arg (strconv.ParseUint: parsing {arg:?}: invalid syntax), expecting ID in Hex"
        ))
    })?;
    // MoveLeader must reach the current leader: find it among the endpoints.
    for ep in ctx.globals.endpoints.clone() {
        let channel = ctx.endpoint_channel(&ep).await?;
        let mut m = MaintenanceClient::new(channel);
        let status = ctx.call(m.status(StatusRequest {})).await?;
        let member = status.header.as_ref().map_or(0, |h| h.member_id);
        if member != status.leader {
            continue;
        }
        let r = ctx
            .call(m.move_leader(MoveLeaderRequest { target_id: target }))
            .await?;
        match ctx.globals.format {
            Format::Simple => out(&format!(
                "Leadership transferred from {:x} to {target:x}\n",
                status.leader
            )),
            Format::Json => out(&(JsonObject::new()
                .raw_opt("header", r.header.as_ref().map(print::header_json))
                .finish()
                + "\n")),
            Format::Protobuf => out_bytes(&r.encode_to_vec()),
            f => return Err(f.unsupported()),
        }
        return Ok(());
    }
    Err(CtlError::bad_args(format!(
        "no leader endpoint given at {}",
        go_string_slice(&ctx.globals.endpoints)
    )))
}
