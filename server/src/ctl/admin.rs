//! Lease, cluster and maintenance commands: `lease *`, `member *`, `endpoint health|status`,
//! `snapshot save`, `move-leader` and `alarm list|disarm`, as etcdctl 3.4 runs and prints
//! them.

use std::io::Write;
use std::time::{Duration, Instant};

use detcd_proto::etcdserverpb::cluster_client::ClusterClient;
use detcd_proto::etcdserverpb::kv_client::KvClient;
use detcd_proto::etcdserverpb::lease_client::LeaseClient;
use detcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd_proto::etcdserverpb::{
    alarm_request, AlarmRequest, AlarmResponse, DefragmentRequest, LeaseGrantRequest, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest, Member,
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest,
    MoveLeaderRequest, RangeRequest, ResponseHeader, SnapshotRequest, StatusRequest, StatusResponse,
};
use detcd_proto::etcdserverpb::{HashKvRequest, HashKvResponse};
use prost::Message;
use sha2::Digest as _;
use tonic::codegen::tokio_stream::Stream;

use super::args::Parsed;
use super::error::{CtlError, EXIT_BAD_CONNECTION, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_IO};
use super::format::{go_duration, go_quote, go_string_slice, humanize_bytes, json_array, table, JsonObject};
use super::print::{self, Format};
use super::{connect, err_line, out, out_bytes, Ctx};

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

fn member_id_arg(p: &Parsed) -> Result<u64, CtlError> {
    let arg = p
        .args
        .first()
        .filter(|_| p.args.len() == 1)
        .ok_or_else(|| CtlError::bad_args("member ID is not provided"))?;
    u64::from_str_radix(arg, 16).map_err(|_| {
        CtlError::bad_args(format!(
            "bad member ID arg (strconv.ParseUint: parsing {arg:?}: invalid syntax), expecting ID in Hex"
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

pub async fn lease_grant(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
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
    let s = match ctx.globals.format {
        Format::Simple => format!("lease {:016x} granted with TTL({}s)\n", r.id, r.ttl),
        Format::Json => {
            flat(&r.header)
                .int("ID", r.id)
                .int("TTL", r.ttl)
                .string("Error", &r.error)
                .finish()
                + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            print::fields_header(&mut s, &r.header);
            s + &format!("\"ID\" : {}\n\"TTL\" : {}\n", r.id, r.ttl)
        }
        Format::Protobuf => {
            out_bytes(&r.encode_to_vec());
            return Ok(());
        }
        Format::Table => return Err(Format::Table.unsupported()),
    };
    out(&s);
    Ok(())
}

pub async fn lease_revoke(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let id = lease_id_arg(p, "lease revoke command needs 1 argument")?;
    let mut c = LeaseClient::new(ctx.channel().await?);
    let r = ctx
        .call(c.lease_revoke(LeaseRevokeRequest { id }))
        .await
        .map_err(wrap("failed to revoke lease"))?;
    let s = match ctx.globals.format {
        Format::Simple => format!("lease {id:016x} revoked\n"),
        Format::Json => {
            JsonObject::new()
                .raw_opt("header", r.header.as_ref().map(print::header_json))
                .finish()
                + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            print::fields_header(&mut s, &r.header);
            s
        }
        Format::Protobuf => {
            out_bytes(&r.encode_to_vec());
            return Ok(());
        }
        Format::Table => return Err(Format::Table.unsupported()),
    };
    out(&s);
    Ok(())
}

pub async fn lease_timetolive(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let id = lease_id_arg(p, "lease timetolive command needs lease ID as argument")?;
    let keys = p.bool("keys")?;
    let mut c = LeaseClient::new(ctx.channel().await?);
    let r = ctx
        .call(c.lease_time_to_live(LeaseTimeToLiveRequest { id, keys }))
        .await?;
    let s = match ctx.globals.format {
        Format::Simple => {
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
        Format::Json => {
            flat(&r.header)
                .int("id", r.id)
                .int("ttl", r.ttl)
                .int("granted-ttl", r.granted_ttl)
                .raw("keys", &print::bytes_list_json(&r.keys))
                .finish()
                + "\n"
        }
        Format::Fields => {
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
        Format::Protobuf => {
            out_bytes(&r.encode_to_vec());
            return Ok(());
        }
        Format::Table => return Err(Format::Table.unsupported()),
    };
    out(&s);
    Ok(())
}

pub async fn lease_list(ctx: &mut Ctx, _p: &Parsed) -> Result<(), CtlError> {
    let mut c = LeaseClient::new(ctx.channel().await?);
    let r = ctx
        .call(c.lease_leases(LeaseLeasesRequest {}))
        .await
        .map_err(wrap("failed to list leases"))?;
    let s = match ctx.globals.format {
        Format::Simple => {
            let mut s = format!("found {} leases\n", r.leases.len());
            for l in &r.leases {
                s.push_str(&format!("{:016x}\n", l.id));
            }
            s
        }
        Format::Json => {
            let leases: Vec<String> = r
                .leases
                .iter()
                .map(|l| JsonObject::new().int("id", l.id).finish())
                .collect();
            flat(&r.header).raw("leases", &json_array(&leases)).finish() + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            print::fields_header(&mut s, &r.header);
            for l in &r.leases {
                s.push_str(&format!("\"ID\" : {}\n", l.id));
            }
            s
        }
        Format::Protobuf => {
            out_bytes(&r.encode_to_vec());
            return Ok(());
        }
        Format::Table => return Err(Format::Table.unsupported()),
    };
    out(&s);
    Ok(())
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

fn keep_alive_text(format: Format, r: &LeaseKeepAliveResponse) -> Result<String, CtlError> {
    Ok(match format {
        Format::Simple => format!("lease {:016x} keepalived with TTL({})\n", r.id, r.ttl),
        Format::Json => flat(&r.header).int("ID", r.id).int("TTL", r.ttl).finish() + "\n",
        Format::Fields => {
            let mut s = String::new();
            print::fields_header(&mut s, &r.header);
            s + &format!("\"ID\" : {}\n\"TTL\" : {}\n", r.id, r.ttl)
        }
        Format::Protobuf => {
            out_bytes(&r.encode_to_vec());
            String::new()
        }
        Format::Table => return Err(Format::Table.unsupported()),
    })
}

pub async fn lease_keep_alive(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
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
        out(&keep_alive_text(ctx.globals.format, &r)?);
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

// ---- member -----------------------------------------------------------------------------

pub async fn member_add(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let name = match p.args.as_slice() {
        [] => return Err(CtlError::bad_args("member name not provided")),
        [name] => name.clone(),
        args => {
            let mut msg = "too many arguments".to_string();
            for a in args {
                if a.to_lowercase().starts_with("http") {
                    msg.push_str(&format!(", did you mean --peer-urls={a}"));
                }
            }
            return Err(CtlError::bad_args(msg));
        }
    };
    let peer_urls = p.value("peer-urls").unwrap_or("");
    if peer_urls.is_empty() {
        return Err(CtlError::bad_args("member peer urls not provided"));
    }
    let urls: Vec<String> = peer_urls.split(',').map(str::to_string).collect();
    for u in &urls {
        crate::urls::parse_url(u).map_err(|e| CtlError::new(EXIT_ERROR, e))?;
    }
    let mut c = ClusterClient::new(ctx.channel().await?);
    let r = ctx
        .call(c.member_add(MemberAddRequest {
            peer_ur_ls: urls.clone(),
            is_learner: p.bool("learner")?,
        }))
        .await?;
    match ctx.globals.format {
        Format::Simple => {
            let new_id = r.member.as_ref().map_or(0, |m| m.id);
            let cluster = r.header.as_ref().map_or(0, |h| h.cluster_id);
            let mut s = format!("Member {new_id:16x} added to cluster {cluster:16x}\n");
            let list = ctx
                .call(c.member_list(MemberListRequest { linearizable: false }))
                .await?;
            let mut conf = Vec::new();
            for m in &list.members {
                for u in &m.peer_ur_ls {
                    let n = if m.id == new_id { &name } else { &m.name };
                    conf.push(format!("{n}={u}"));
                }
            }
            s.push('\n');
            s.push_str(&format!("ETCD_NAME={}\n", go_quote(name.as_bytes())));
            s.push_str(&format!(
                "ETCD_INITIAL_CLUSTER={}\n",
                go_quote(conf.join(",").as_bytes())
            ));
            s.push_str(&format!(
                "ETCD_INITIAL_ADVERTISE_PEER_URLS={}\n",
                go_quote(urls.join(",").as_bytes())
            ));
            s.push_str("ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n");
            out(&s);
        }
        Format::Json => out(&(print::members_json(&r.header, r.member.as_ref(), &r.members) + "\n")),
        Format::Protobuf => out_bytes(&r.encode_to_vec()),
        f => return Err(f.unsupported()),
    }
    Ok(())
}

pub async fn member_remove(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let id = member_id_arg(p)?;
    let mut c = ClusterClient::new(ctx.channel().await?);
    let r = ctx.call(c.member_remove(MemberRemoveRequest { id })).await?;
    print_member_change(ctx, id, "removed from", &r.header, &r.members, &r.encode_to_vec())
}

pub async fn member_update(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let id = member_id_arg(p)?;
    let peer_urls = p.value("peer-urls").unwrap_or("");
    if peer_urls.is_empty() {
        return Err(CtlError::bad_args("member peer urls not provided"));
    }
    let urls: Vec<String> = peer_urls.split(',').map(str::to_string).collect();
    for u in &urls {
        crate::urls::parse_url(u).map_err(|e| CtlError::new(EXIT_ERROR, e))?;
    }
    let mut c = ClusterClient::new(ctx.channel().await?);
    let r = ctx
        .call(c.member_update(MemberUpdateRequest { id, peer_ur_ls: urls }))
        .await?;
    print_member_change(ctx, id, "updated in", &r.header, &r.members, &r.encode_to_vec())
}

/// The output of member remove, update and promote: they differ only in the verb.
fn print_member_change(
    ctx: &Ctx,
    id: u64,
    verb: &str,
    header: &Option<ResponseHeader>,
    members: &[Member],
    encoded: &[u8],
) -> Result<(), CtlError> {
    let cluster = header.as_ref().map_or(0, |h| h.cluster_id);
    match ctx.globals.format {
        Format::Simple => out(&format!("Member {id:16x} {verb} cluster {cluster:16x}\n")),
        Format::Json => out(&(print::members_json(header, None, members) + "\n")),
        Format::Protobuf => out_bytes(encoded),
        f => return Err(f.unsupported()),
    }
    Ok(())
}

pub async fn member_promote(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let id = member_id_arg(p)?;
    let mut c = ClusterClient::new(ctx.channel().await?);
    let r = ctx.call(c.member_promote(MemberPromoteRequest { id })).await?;
    print_member_change(ctx, id, "promoted in", &r.header, &r.members, &r.encode_to_vec())
}

pub async fn member_list(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let linearizable = match p.value("consistency").unwrap_or("l") {
        "l" => true,
        "s" => false,
        other => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("unknown consistency flag {other:?}"),
            ))
        }
    };
    let mut c = ClusterClient::new(ctx.channel().await?);
    let r = ctx
        .call(c.member_list(MemberListRequest { linearizable }))
        .await?;
    let rows = print::member_rows(&r.members);
    let s = match ctx.globals.format {
        Format::Simple => rows.iter().map(|row| row.join(", ") + "\n").collect(),
        Format::Table => table(&print::MEMBER_HEADER, &rows),
        Format::Json => print::members_json(&r.header, None, &r.members) + "\n",
        Format::Fields => {
            let mut s = String::new();
            print::fields_members(&mut s, &r.header, &r.members);
            s
        }
        Format::Protobuf => {
            out_bytes(&r.encode_to_vec());
            return Ok(());
        }
    };
    out(&s);
    Ok(())
}

// ---- endpoint ---------------------------------------------------------------------------

/// The endpoints a command addresses: the global list, or with `--cluster` every client URL
/// in the member list.
async fn endpoints(ctx: &mut Ctx, p: &Parsed) -> Result<Vec<String>, CtlError> {
    if !p.bool("cluster")? {
        return Ok(ctx.globals.endpoints.clone());
    }
    let mut c = ClusterClient::new(ctx.channel().await?);
    let r = ctx
        .call(c.member_list(MemberListRequest { linearizable: false }))
        .await?;
    let mut eps: Vec<String> = r.members.iter().flat_map(|m| m.client_ur_ls.clone()).collect();
    eps.sort();
    eps.dedup();
    Ok(eps)
}

struct Health {
    endpoint: String,
    healthy: bool,
    took: String,
    error: String,
}

async fn check_health(ep: &str, globals: &super::Globals) -> Health {
    let command = globals.command_timeout;
    let start = Instant::now();
    let result: Result<(), CtlError> = async {
        let channel = connect(ep, globals).await?;
        let mut kv = KvClient::new(channel.clone());
        let req = RangeRequest {
            key: b"health".to_vec(),
            ..Default::default()
        };
        match tokio::time::timeout(command, kv.range(req)).await {
            Err(_) => return Err(CtlError::new(EXIT_ERROR, "context deadline exceeded")),
            // Permission denied still proves the request went through consensus.
            Ok(Err(s)) if s.message() != "etcdserver: permission denied" => {
                return Err(CtlError::from_status(&s))
            }
            Ok(_) => {}
        }
        let mut m = MaintenanceClient::new(channel);
        let alarms = tokio::time::timeout(command, m.alarm(AlarmRequest::default())).await;
        match alarms {
            Ok(Ok(r)) if !r.get_ref().alarms.is_empty() => {
                let mut msg = "Active Alarm(s): ".to_string();
                for a in &r.get_ref().alarms {
                    msg.push_str(match a.alarm {
                        1 => "NOSPACE ",
                        2 => "CORRUPT ",
                        _ => "NONE ",
                    });
                }
                Err(CtlError::new(EXIT_ERROR, msg))
            }
            Ok(Ok(_)) => Ok(()),
            _ => Err(CtlError::new(EXIT_ERROR, "Unable to fetch the alarm list")),
        }
    }
    .await;
    let took = go_duration(start.elapsed().as_nanos());
    match result {
        Ok(()) => Health {
            endpoint: ep.to_string(),
            healthy: true,
            took,
            error: String::new(),
        },
        Err(e) => Health {
            endpoint: ep.to_string(),
            healthy: false,
            took,
            error: e.message,
        },
    }
}

pub async fn endpoint_health(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let eps = endpoints(ctx, p).await?;
    let mut results = Vec::new();
    for ep in &eps {
        results.push(check_health(ep, &ctx.globals).await);
    }
    match ctx.globals.format {
        Format::Simple => {
            for h in &results {
                if h.healthy {
                    err_line(&format!(
                        "{} is healthy: successfully committed proposal: took = {}\n",
                        h.endpoint, h.took
                    ));
                } else {
                    err_line(&format!(
                        "{} is unhealthy: failed to commit proposal: {}\n",
                        h.endpoint, h.error
                    ));
                }
            }
        }
        Format::Json => {
            let items: Vec<String> = results
                .iter()
                .map(|h| {
                    JsonObject::new()
                        .string("endpoint", &h.endpoint)
                        .boolean("health", h.healthy)
                        .string("took", &h.took)
                        .string_oe("error", &h.error)
                        .finish()
                })
                .collect();
            out(&(json_array(&items) + "\n"));
        }
        Format::Fields => {
            let mut s = String::new();
            for h in &results {
                s.push_str(&format!(
                    "\"Endpoint\" : {}\n\"Health\" : {}\n\"Took\" : {}\n\"Error\" : {}\n\n",
                    go_quote(h.endpoint.as_bytes()),
                    h.healthy,
                    h.took,
                    h.error
                ));
            }
            out(&s);
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|h| {
                    vec![
                        h.endpoint.clone(),
                        h.healthy.to_string(),
                        h.took.clone(),
                        h.error.clone(),
                    ]
                })
                .collect();
            out(&table(&["endpoint", "health", "took", "error"], &rows));
        }
        Format::Protobuf => return Err(Format::Protobuf.unsupported()),
    }
    if results.iter().any(|h| !h.healthy) {
        return Err(CtlError::new(EXIT_ERROR, "unhealthy cluster"));
    }
    Ok(())
}

fn status_row(ep: &str, r: &StatusResponse) -> Vec<String> {
    let member = r.header.as_ref().map_or(0, |h| h.member_id);
    vec![
        ep.to_string(),
        format!("{member:x}"),
        r.version.clone(),
        humanize_bytes(r.db_size.max(0) as u64),
        (r.leader == member).to_string(),
        r.is_learner.to_string(),
        r.raft_term.to_string(),
        r.raft_index.to_string(),
        r.raft_applied_index.to_string(),
        r.errors.join(", "),
    ]
}

const STATUS_HEADER: [&str; 10] = [
    "endpoint",
    "ID",
    "version",
    "db size",
    "is leader",
    "is learner",
    "raft term",
    "raft index",
    "raft applied index",
    "errors",
];

pub async fn endpoint_status(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let eps = endpoints(ctx, p).await?;
    if ctx.globals.format == Format::Protobuf {
        return Err(Format::Protobuf.unsupported());
    }
    let mut list: Vec<(String, StatusResponse)> = Vec::new();
    let mut failed = false;
    for ep in &eps {
        let result = async {
            let channel = ctx.endpoint_channel(ep).await?;
            let mut m = MaintenanceClient::new(channel);
            ctx.call(m.status(StatusRequest {})).await
        }
        .await;
        match result {
            Ok(r) => list.push((ep.clone(), r)),
            Err(e) => {
                failed = true;
                err_line(&format!(
                    "Failed to get the status of endpoint {ep} ({})\n",
                    e.message
                ));
            }
        }
    }
    let s = match ctx.globals.format {
        Format::Simple => list
            .iter()
            .map(|(ep, r)| status_row(ep, r).join(", ") + "\n")
            .collect(),
        Format::Table => table(
            &STATUS_HEADER,
            &list.iter().map(|(ep, r)| status_row(ep, r)).collect::<Vec<_>>(),
        ),
        Format::Json => {
            let items: Vec<String> = list
                .iter()
                .map(|(ep, r)| {
                    JsonObject::new()
                        .string("Endpoint", ep)
                        .raw("Status", &print::status_json(r))
                        .finish()
                })
                .collect();
            json_array(&items) + "\n"
        }
        _ => {
            let mut s = String::new();
            for (ep, r) in &list {
                print::fields_header(&mut s, &r.header);
                s.push_str(&format!("\"Version\" : {}\n", go_quote(r.version.as_bytes())));
                s.push_str(&format!(
                    "\"DBSize\" : {}\n\"Leader\" : {}\n",
                    r.db_size, r.leader
                ));
                s.push_str(&format!(
                    "\"IsLearner\" : {}\n\"RaftIndex\" : {}\n",
                    r.is_learner, r.raft_index
                ));
                s.push_str(&format!(
                    "\"RaftTerm\" : {}\n\"RaftAppliedIndex\" : {}\n",
                    r.raft_term, r.raft_applied_index
                ));
                s.push_str(&format!("\"Errors\" : {}\n", go_string_slice(&r.errors)));
                s.push_str(&format!("\"Endpoint\" : {}\n\n", go_quote(ep.as_bytes())));
            }
            s
        }
    };
    out(&s);
    if failed {
        // etcdctl exits 1 here without an `Error:` line; the failures are already printed.
        return Err(CtlError::new(EXIT_ERROR, ""));
    }
    Ok(())
}

/// `endpoint hashkv [--cluster] [--rev N]`: each endpoint's HashKV, as etcdctl prints it.
pub async fn endpoint_hashkv(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let eps = endpoints(ctx, p).await?;
    if ctx.globals.format == Format::Protobuf {
        return Err(Format::Protobuf.unsupported());
    }
    let revision = match p.value("rev") {
        None => 0,
        Some(v) => v.parse::<i64>().map_err(|_| {
            CtlError::bad_args(format!(
                "invalid argument {v:?} for \"--rev\" flag: strconv.ParseInt: parsing {v:?}: invalid syntax"
            ))
        })?,
    };
    let mut list: Vec<(String, HashKvResponse)> = Vec::new();
    let mut last_error = None;
    for ep in &eps {
        let result = async {
            let channel = ctx.endpoint_channel(ep).await?;
            let mut m = MaintenanceClient::new(channel);
            ctx.call(m.hash_kv(HashKvRequest { revision })).await
        }
        .await;
        match result {
            Ok(r) => list.push((ep.clone(), r)),
            Err(e) => {
                err_line(&format!(
                    "Failed to get the hash of endpoint {ep} ({})\n",
                    e.message
                ));
                last_error = Some(e);
            }
        }
    }
    let s = match ctx.globals.format {
        Format::Simple => list.iter().map(|(ep, r)| format!("{ep}, {}\n", r.hash)).collect(),
        Format::Table => table(
            &["ENDPOINT", "HASH"],
            &list
                .iter()
                .map(|(ep, r)| vec![ep.clone(), r.hash.to_string()])
                .collect::<Vec<_>>(),
        ),
        Format::Json => {
            let items: Vec<String> = list
                .iter()
                .map(|(ep, r)| {
                    JsonObject::new()
                        .string("Endpoint", ep)
                        .raw("HashKV", &print::hashkv_json(r))
                        .finish()
                })
                .collect();
            json_array(&items) + "\n"
        }
        _ => {
            let mut s = String::new();
            for (ep, r) in &list {
                print::fields_header(&mut s, &r.header);
                s.push_str(&format!("\"Endpoint\" : {}\n", go_quote(ep.as_bytes())));
                s.push_str(&format!("\"Hash\" : {}\n\n", r.hash));
            }
            s
        }
    };
    out(&s);
    match last_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// ---- maintenance ------------------------------------------------------------------------

/// Size of the SHA-256 trailer etcd appends to the snapshot stream.
const SNAPSHOT_HASH_BYTES: usize = 32;

pub async fn snapshot_save(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
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
                if tail.len() > SNAPSHOT_HASH_BYTES {
                    let cut = tail.len() - SNAPSHOT_HASH_BYTES;
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
    if tail.len() != SNAPSHOT_HASH_BYTES || hasher.finalize()[..] != tail[..] {
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

fn print_alarms(format: Format, r: &AlarmResponse) -> Result<(), CtlError> {
    match format {
        Format::Simple => out(&r
            .alarms
            .iter()
            .map(|a| print::alarm_text(a.member_id, a.alarm) + "\n")
            .collect::<String>()),
        Format::Json => out(&(print::alarm_json(r) + "\n")),
        Format::Fields => {
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
            out(&s);
        }
        Format::Protobuf => out_bytes(&r.encode_to_vec()),
        Format::Table => return Err(Format::Table.unsupported()),
    }
    Ok(())
}

pub async fn alarm_list(ctx: &mut Ctx, _p: &Parsed) -> Result<(), CtlError> {
    let mut m = MaintenanceClient::new(ctx.channel().await?);
    let r = ctx.call(m.alarm(AlarmRequest::default())).await?;
    print_alarms(ctx.globals.format, &r)
}

/// clientv3's `AlarmDisarm` with an empty member: list the alarms, deactivate each one, and
/// report what was deactivated (no header).
pub async fn alarm_disarm(ctx: &mut Ctx, _p: &Parsed) -> Result<(), CtlError> {
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
