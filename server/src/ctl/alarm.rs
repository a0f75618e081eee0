//! `alarm list|disarm`, as etcdctl 3.4 runs and prints them (`alarm_command.go`).

use detcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd_proto::etcdserverpb::{alarm_request, AlarmRequest, AlarmResponse};

use super::args::Parsed;
use super::error::CtlError;
use super::print::{self, Format, Text};
use super::Ctx;

fn print_alarms(format: Format, r: &AlarmResponse) -> Result<(), CtlError> {
    print::respond(format, r, |text| match text {
        Text::Simple => r
            .alarms
            .iter()
            .map(|a| print::alarm_text(a.member_id, a.alarm) + "\n")
            .collect(),
        Text::Json => print::alarm_json(r) + "\n",
        Text::Fields => {
            let mut s = String::new();
            print::fields_header(&mut s, &r.header);
            for a in &r.alarms {
                let name = print::alarm_text(0, a.alarm);
                let name = name.trim().trim_start_matches("alarm:");
                s.push_str(&format!(
                    "\"MemberID\" : {}\n\"AlarmType\" : {}\n\n",
                    a.member_id,
                    if name.is_empty() { "NONE" } else { name }
                ));
            }
            s
        }
    })
}

pub async fn list(ctx: &mut Ctx, _p: &Parsed) -> Result<(), CtlError> {
    let mut m = MaintenanceClient::new(ctx.channel().await?);
    let r = ctx.call(m.alarm(AlarmRequest::default())).await?;
    print_alarms(ctx.globals.format, &r)
}

/// clientv3's `AlarmDisarm` with an empty member: list the alarms, deactivate each one, and
/// report what was deactivated (no header).
pub async fn disarm(ctx: &mut Ctx, _p: &Parsed) -> Result<(), CtlError> {
    let mut m = MaintenanceClient::new(ctx.channel().await?);
    let list = ctx.call(m.alarm(AlarmRequest::default())).await?;
    let mut result = AlarmResponse::default();
    for a in &list.alarms {
        let req = AlarmRequest {
            action: alarm_request::AlarmAction::Deactivate as i32,
            member_id: a.member_id,
            alarm: a.alarm,
        };
        let r = ctx.call(m.alarm(req)).await?;
        result.alarms.extend(r.alarms);
    }
    print_alarms(ctx.globals.format, &result)
}
