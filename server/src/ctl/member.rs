//! `member add|remove|update|promote|list`, as etcdctl 3.4 runs and prints them
//! (`member_command.go`).

use detcd_proto::etcdserverpb::cluster_client::ClusterClient;
use detcd_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MemberUpdateRequest, ResponseHeader,
};
use prost::Message;

use super::args::Parsed;
use super::error::{CtlError, EXIT_BAD_FEATURE, EXIT_ERROR};
use super::format::{go_quote, table};
use super::print::{self, Format};
use super::{out, out_bytes, Ctx};

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

/// `--peer-urls` of `member add` and `member update`: a comma-separated list of URLs.
fn peer_urls_arg(p: &Parsed) -> Result<Vec<String>, CtlError> {
    let peer_urls = p.value("peer-urls").unwrap_or("");
    if peer_urls.is_empty() {
        return Err(CtlError::bad_args("member peer urls not provided"));
    }
    let urls: Vec<String> = peer_urls.split(',').map(str::to_string).collect();
    for u in &urls {
        crate::urls::parse_url(u).map_err(|e| CtlError::new(EXIT_ERROR, e))?;
    }
    Ok(urls)
}

pub async fn add(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
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
    let urls = peer_urls_arg(p)?;
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

pub async fn remove(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let id = member_id_arg(p)?;
    let mut c = ClusterClient::new(ctx.channel().await?);
    let r = ctx.call(c.member_remove(MemberRemoveRequest { id })).await?;
    print_member_change(ctx, id, "removed from", &r.header, &r.members, &r.encode_to_vec())
}

pub async fn update(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let id = member_id_arg(p)?;
    let urls = peer_urls_arg(p)?;
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

pub async fn promote(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let id = member_id_arg(p)?;
    let mut c = ClusterClient::new(ctx.channel().await?);
    let r = ctx.call(c.member_promote(MemberPromoteRequest { id })).await?;
    print_member_change(ctx, id, "promoted in", &r.header, &r.members, &r.encode_to_vec())
}

pub async fn list(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
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
