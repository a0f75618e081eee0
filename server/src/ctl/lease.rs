//! `lease grant|revoke|timetolive|list|keep-alive`, as etcdctl 3.4 runs and prints them
//! (`lease_command.go`).

use std::time::Duration;

use detcd_proto::etcdserverpb::lease_client::LeaseClient;
use detcd_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, ResponseHeader,
};
use tonic::codegen::tokio_stream::Stream;

use super::args::Parsed;
use super::error::{CtlError, EXIT_BAD_CONNECTION};
use super::format::{go_quote, go_string_slice, json_array, JsonObject};
use super::print::{self, Format, Text};
use super::{out, Ctx};

fn lease_id_arg(p: &Parsed, missing: &str) -> Result<i64, CtlError> {
    let arg = p
        .args
        .first()
        .filter(|_| p.args.len() == 1)
        .ok_or_else(|| CtlError::bad_args(missing))?;
    i64::from_str_radix(arg, 16).map_err(|_| {
        CtlError::bad_args(format!(
            "bad lease ID arg (strconv.ParseInt: parsing {arg:?}: invalid syntax), expecting ID in Hex"
        ))
    })
}

fn wrap(prefix: &str) -> impl Fn(CtlError) -> CtlError + '_ {
    move |e| CtlError::new(e.code, format!("{prefix} ({})", e.message))
}

/// clientv3 lease responses embed `*pb.ResponseHeader`, so their JSON starts with the
/// header's own fields.
fn flat(h: &Option<ResponseHeader>) -> JsonObject {
    match h {
        Some(h) => print::header_fields(JsonObject::new(), h),
        None => JsonObject::new(),
    }
}

pub async fn grant(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let arg = p
        .args
        .first()
        .filter(|_| p.args.len() == 1)
        .ok_or_else(|| CtlError::bad_args("lease grant command needs TTL argument"))?;
    let ttl: i64 = arg.parse().map_err(|_| {
        CtlError::bad_args(format!(
            "bad TTL (strconv.ParseInt: parsing {arg:?}: invalid syntax)"
        ))
    })?;
    let mut c = LeaseClient::new(ctx.channel().await?);
    let r = ctx
        .call(c.lease_grant(LeaseGrantRequest { ttl, id: 0 }))
        .await
        .map_err(wrap("failed to grant lease"))?;
    print::respond(ctx.globals.format, &r, |text| match text {
        Text::Simple => format!("lease {:016x} granted with TTL({}s)\n", r.id, r.ttl),
        Text::Json => {
            flat(&r.header)
                .int("ID", r.id)
                .int("TTL", r.ttl)
                .string("Error", &r.error)
                .finish()
                + "\n"
        }
        Text::Fields => fields_id_ttl(&r.header, r.id, r.ttl),
    })
}

/// The `fields` text of a granted or kept-alive lease.
fn fields_id_ttl(header: &Option<ResponseHeader>, id: i64, ttl: i64) -> String {
    let mut s = String::new();
    print::fields_header(&mut s, header);
    s + &format!("\"ID\" : {id}\n\"TTL\" : {ttl}\n")
}

pub async fn revoke(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let id = lease_id_arg(p, "lease revoke command needs 1 argument")?;
    let mut c = LeaseClient::new(ctx.channel().await?);
    let r = ctx
        .call(c.lease_revoke(LeaseRevokeRequest { id }))
        .await
        .map_err(wrap("failed to revoke lease"))?;
    print::respond(ctx.globals.format, &r, |text| match text {
        Text::Simple => format!("lease {id:016x} revoked\n"),
        Text::Json => {
            JsonObject::new()
                .raw_opt("header", r.header.as_ref().map(print::header_json))
                .finish()
                + "\n"
        }
        Text::Fields => {
            let mut s = String::new();
            print::fields_header(&mut s, &r.header);
            s
        }
    })
}

pub async fn timetolive(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let id = lease_id_arg(p, "lease timetolive command needs lease ID as argument")?;
    let keys = p.bool("keys")?;
    let mut c = LeaseClient::new(ctx.channel().await?);
    let r = ctx
        .call(c.lease_time_to_live(LeaseTimeToLiveRequest { id, keys }))
        .await?;
    print::respond(ctx.globals.format, &r, |text| match text {
        Text::Simple => {
            if r.granted_ttl == 0 && r.ttl == -1 {
                format!("lease {:016x} already expired\n", r.id)
            } else {
                let mut t = format!(
                    "lease {:016x} granted with TTL({}s), remaining({}s)",
                    r.id, r.granted_ttl, r.ttl
                );
                if keys {
                    let ks: Vec<String> = r
                        .keys
                        .iter()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect();
                    t.push_str(&format!(", attached keys({})", go_string_slice(&ks)));
                }
                t + "\n"
            }
        }
        Text::Json => {
            flat(&r.header)
                .int("id", r.id)
                .int("ttl", r.ttl)
                .int("granted-ttl", r.granted_ttl)
                .raw("keys", &print::bytes_list_json(&r.keys))
                .finish()
                + "\n"
        }
        Text::Fields => {
            let mut s = String::new();
            print::fields_header(&mut s, &r.header);
            s.push_str(&format!(
                "\"ID\" : {}\n\"TTL\" : {}\n\"GrantedTTL\" : {}\n",
                r.id, r.ttl, r.granted_ttl
            ));
            for k in &r.keys {
                s.push_str(&format!("\"Key\" : {}\n", go_quote(k)));
            }
            s
        }
    })
}

pub async fn list(ctx: &mut Ctx, _p: &Parsed) -> Result<(), CtlError> {
    let mut c = LeaseClient::new(ctx.channel().await?);
    let r = ctx
        .call(c.lease_leases(LeaseLeasesRequest {}))
        .await
        .map_err(wrap("failed to list leases"))?;
    print::respond(ctx.globals.format, &r, |text| match text {
        Text::Simple => {
            let mut s = format!("found {} leases\n", r.leases.len());
            for l in &r.leases {
                s.push_str(&format!("{:016x}\n", l.id));
            }
            s
        }
        Text::Json => {
            let leases: Vec<String> = r
                .leases
                .iter()
                .map(|l| JsonObject::new().int("id", l.id).finish())
                .collect();
            flat(&r.header).raw("leases", &json_array(&leases)).finish() + "\n"
        }
        Text::Fields => {
            let mut s = String::new();
            print::fields_header(&mut s, &r.header);
            for l in &r.leases {
                s.push_str(&format!("\"ID\" : {}\n", l.id));
            }
            s
        }
    })
}

/// Keeps the keep-alive request stream open.
struct KeepAliveStream(tokio::sync::mpsc::Receiver<LeaseKeepAliveRequest>);

impl Stream for KeepAliveStream {
    type Item = LeaseKeepAliveRequest;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<LeaseKeepAliveRequest>> {
        self.0.poll_recv(cx)
    }
}

fn print_keep_alive(format: Format, r: &LeaseKeepAliveResponse) -> Result<(), CtlError> {
    print::respond(format, r, |text| match text {
        Text::Simple => format!("lease {:016x} keepalived with TTL({})\n", r.id, r.ttl),
        Text::Json => flat(&r.header).int("ID", r.id).int("TTL", r.ttl).finish() + "\n",
        Text::Fields => fields_id_ttl(&r.header, r.id, r.ttl),
    })
}

pub async fn keep_alive(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let id = lease_id_arg(p, "lease keep-alive command needs lease ID as argument")?;
    let once = p.bool("once")?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut c = LeaseClient::new(ctx.channel().await?);
    let lost = |e: CtlError| CtlError::new(EXIT_BAD_CONNECTION, e.message);
    tx.send(LeaseKeepAliveRequest { id })
        .await
        .map_err(|_| CtlError::new(EXIT_BAD_CONNECTION, "keep-alive stream closed"))?;
    let mut stream = ctx
        .call(c.lease_keep_alive(KeepAliveStream(rx)))
        .await
        .map_err(lost)?;
    loop {
        let r = match tokio::time::timeout(ctx.globals.command_timeout, stream.message()).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => break,
            Ok(Err(s)) => return Err(lost(CtlError::from_status(&s))),
            Err(_) => return Err(CtlError::new(EXIT_BAD_CONNECTION, "context deadline exceeded")),
        };
        if r.ttl <= 0 {
            if once {
                return Err(CtlError::new(
                    EXIT_BAD_CONNECTION,
                    "etcdserver: requested lease not found",
                ));
            }
            break;
        }
        print_keep_alive(ctx.globals.format, &r)?;
        if once {
            return Ok(());
        }
        // clientv3 renews every third of the TTL.
        tokio::time::sleep(Duration::from_millis((r.ttl as u64).saturating_mul(1000) / 3)).await;
        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
            break;
        }
    }
    if ctx.globals.format == Format::Simple {
        out(&format!("lease {id:016x} expired or revoked.\n"));
    }
    Ok(())
}
