//! `endpoint health|status|hashkv [--cluster]`, as etcdctl 3.4 runs and prints them
//! (`ep_command.go`), and the endpoint list those commands and `defrag` address.

use std::future::Future;
use std::time::Instant;

use detcd_proto::etcdserverpb::cluster_client::ClusterClient;
use detcd_proto::etcdserverpb::kv_client::KvClient;
use detcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd_proto::etcdserverpb::{
    AlarmRequest, HashKvRequest, MemberListRequest, RangeRequest, StatusRequest, StatusResponse,
};

use super::args::Parsed;
use super::error::{CtlError, EXIT_ERROR};
use super::format::{go_duration, go_quote, go_string_slice, humanize_bytes, json_array, table, JsonObject};
use super::print::{self, Format};
use super::{connect, err_line, out, CtlChannel, Ctx};

/// The endpoints a command addresses: the global list, or with `--cluster` every client URL
/// in the member list.
pub(super) async fn endpoints(ctx: &mut Ctx, p: &Parsed) -> Result<Vec<String>, CtlError> {
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

pub async fn health(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
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

/// Dials each endpoint and makes one Maintenance call `call` there: the answers in
/// endpoint order, and the last failure; each failure is printed as etcdctl prints it
/// (`Failed to get the {what} of endpoint ...`).
async fn call_each<R, F, Fut>(
    ctx: &mut Ctx,
    eps: &[String],
    what: &str,
    mut call: F,
) -> (Vec<(String, R)>, Option<CtlError>)
where
    F: FnMut(MaintenanceClient<CtlChannel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
{
    let mut answers = Vec::new();
    let mut last_error = None;
    for ep in eps {
        let result = async {
            let channel = ctx.endpoint_channel(ep).await?;
            ctx.call(call(MaintenanceClient::new(channel))).await
        }
        .await;
        match result {
            Ok(r) => answers.push((ep.clone(), r)),
            Err(e) => {
                err_line(&format!(
                    "Failed to get the {what} of endpoint {ep} ({})\n",
                    e.message
                ));
                last_error = Some(e);
            }
        }
    }
    (answers, last_error)
}

/// etcdctl's JSON of the answers of several endpoints: `[{"Endpoint":..,"<name>":..},..]`.
fn endpoints_json<R>(list: &[(String, R)], name: &str, json: impl Fn(&R) -> String) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(ep, r)| {
            JsonObject::new()
                .string("Endpoint", ep)
                .raw(name, &json(r))
                .finish()
        })
        .collect();
    json_array(&items) + "\n"
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

pub async fn status(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let eps = endpoints(ctx, p).await?;
    if ctx.globals.format == Format::Protobuf {
        return Err(Format::Protobuf.unsupported());
    }
    let (list, failure) = call_each(ctx, &eps, "status", |mut m| async move {
        m.status(StatusRequest {}).await
    })
    .await;
    let s = match ctx.globals.format {
        Format::Simple => list
            .iter()
            .map(|(ep, r)| status_row(ep, r).join(", ") + "\n")
            .collect(),
        Format::Table => table(
            &STATUS_HEADER,
            &list.iter().map(|(ep, r)| status_row(ep, r)).collect::<Vec<_>>(),
        ),
        Format::Json => endpoints_json(&list, "Status", print::status_json),
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
    if failure.is_some() {
        // etcdctl exits 1 here without an `Error:` line; the failures are already printed.
        return Err(CtlError::new(EXIT_ERROR, ""));
    }
    Ok(())
}

/// `endpoint hashkv [--cluster] [--rev N]`: each endpoint's HashKV, as etcdctl prints it.
pub async fn hashkv(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let eps = endpoints(ctx, p).await?;
    if ctx.globals.format == Format::Protobuf {
        return Err(Format::Protobuf.unsupported());
    }
    let revision = p.int("rev")?.unwrap_or(0);
    let (list, last_error) = call_each(ctx, &eps, "hash", |mut m| async move {
        m.hash_kv(HashKvRequest { revision }).await
    })
    .await;
    let s = match ctx.globals.format {
        Format::Simple => list.iter().map(|(ep, r)| format!("{ep}, {}\n", r.hash)).collect(),
        Format::Table => table(
            &["ENDPOINT", "HASH"],
            &list
                .iter()
                .map(|(ep, r)| vec![ep.clone(), r.hash.to_string()])
                .collect::<Vec<_>>(),
        ),
        Format::Json => endpoints_json(&list, "HashKV", print::hashkv_json),
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
