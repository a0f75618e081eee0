//! `watch`, as etcdctl 3.4's `watch_command.go`: one key or range, `--prefix`, `--rev`,
//! `--prev-kv`; `ETCDCTL_WATCH_KEY` / `ETCDCTL_WATCH_RANGE_END` in place of the key;
//! `watch ... -- command args` runs the command once per event with `ETCD_WATCH_REVISION`,
//! `ETCD_WATCH_EVENT_TYPE`, `ETCD_WATCH_KEY` and `ETCD_WATCH_VALUE` set (Go-quoted as
//! etcdctl sets them); `watch -i` reads `watch ...` and `progress` lines from stdin and
//! runs every watch on one stream.

use std::collections::{BTreeMap, VecDeque};
use std::io::BufRead;

use detcd_proto::etcdserverpb::watch_client::WatchClient;
use detcd_proto::etcdserverpb::{
    watch_request, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use prost::Message;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::Stream;

use super::args::{bool_flag, value_flag, FlagSpec, Parsed};
use super::error::{CtlError, EXIT_BAD_ARGS, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_INVALID_INPUT};
use super::format::{go_quote, JsonObject};
use super::kv::apply_range_flags;
use super::print::{self, Format, KvStyle};
use super::{err_line, out, out_bytes, Ctx};

pub const WATCH_FLAGS: &[FlagSpec] = &[
    bool_flag("interactive").shorthand('i').about("Interactive mode"),
    bool_flag("prefix").about("Watch on a prefix if prefix is set"),
    value_flag("rev")
        .default_plain("0")
        .about("Revision to start watching"),
    bool_flag("prev-kv").about("get the previous key-value pair before the event happens"),
    bool_flag("progress-notify").about("get periodic watch progress notification from server"),
];

const BAD_ARGS_NUM: &str = "bad number of arguments";
const BAD_ARGS_CONFLICT_ENV: &str = "bad number of arguments (found conflicting environment key)";
const BAD_ARGS_SEPARATOR: &str = "bad number of arguments (found separator --, but no commands)";

/// `ETCDCTL_WATCH_KEY` and `ETCDCTL_WATCH_RANGE_END`.
#[derive(Debug, Clone, Default)]
struct EnvRange {
    key: String,
    range_end: String,
}

/// One watch to create and the command to run on its events.
#[derive(Debug)]
struct WatchSpec {
    create: WatchCreateRequest,
    exec: Vec<String>,
}

/// etcdctl's `parseWatchArgs` then `getWatchChan` over already parsed flags: the key
/// (or the environment's) and range end before `--`, the command after it.
fn watch_spec(p: &Parsed, env: &EnvRange) -> Result<WatchSpec, CtlError> {
    let bad = CtlError::bad_args;
    let (mut args, exec) = match p.dash {
        Some(at) => (p.args[..at].to_vec(), p.args[at..].to_vec()),
        None => (p.args.clone(), Vec::new()),
    };
    if p.dash.is_some() && exec.is_empty() {
        return Err(bad(BAD_ARGS_SEPARATOR));
    }
    if !env.key.is_empty() {
        if !args.is_empty() {
            return Err(bad(BAD_ARGS_CONFLICT_ENV));
        }
        args.push(env.key.clone());
        if !env.range_end.is_empty() {
            args.push(env.range_end.clone());
        }
    }
    if args.is_empty() || args.len() > 2 {
        return Err(bad(BAD_ARGS_NUM));
    }
    let prefix = p.bool("prefix")?;
    let mut key = args[0].clone().into_bytes();
    let mut range_end = Vec::new();
    if let Some(end) = args.get(1) {
        if prefix {
            return Err(bad("`range_end` and `--prefix` are mutually exclusive"));
        }
        range_end = end.clone().into_bytes();
    }
    apply_range_flags(&mut key, &mut range_end, prefix, false);
    let start_revision = super::kv::int_flag(p, "rev")?;
    Ok(WatchSpec {
        create: WatchCreateRequest {
            key,
            range_end,
            start_revision,
            progress_notify: p.bool("progress-notify")?,
            prev_kv: p.bool("prev-kv")?,
            ..Default::default()
        },
        exec,
    })
}

/// Keeps the watch request stream open for as long as the command runs.
struct RequestStream(mpsc::Receiver<WatchRequest>);

impl Stream for RequestStream {
    type Item = WatchRequest;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<WatchRequest>> {
        self.0.poll_recv(cx)
    }
}

/// The watches of one stream: the commands of those not yet acknowledged (in the order
/// they were asked for, as the server answers them) and of those running, by watch ID.
#[derive(Default)]
struct Watches {
    pending: VecDeque<Vec<String>>,
    running: BTreeMap<i64, Vec<String>>,
}

pub async fn watch(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let env = EnvRange {
        key: std::env::var("ETCDCTL_WATCH_KEY").unwrap_or_default(),
        range_end: std::env::var("ETCDCTL_WATCH_RANGE_END").unwrap_or_default(),
    };
    if env.key.is_empty() && !env.range_end.is_empty() {
        return Err(CtlError::bad_args(format!(
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
            go_quote(env.range_end.as_bytes())
        )));
    }
    let format = ctx.globals.format;
    if format == Format::Table {
        return Err(Format::Table.unsupported());
    }
    let interactive = p.bool("interactive")?;
    let first = if interactive {
        None
    } else {
        Some(watch_spec(p, &env)?)
    };
    // The first create request is queued before the stream opens: etcd (grpc-go) sends
    // the response headers tonic waits for only once a request arrived.
    let (tx, rx) = mpsc::channel(16);
    let mut watches = Watches::default();
    if let Some(spec) = first {
        create(&tx, &mut watches, spec).await?;
    }
    let mut lines = interactive.then(stdin_lines);
    if let Some(input) = lines.as_mut() {
        while watches.pending.is_empty() {
            let line = next_line(input).await?;
            interactive_line(&line, p, &env, &tx, &mut watches).await?;
        }
    }
    let mut client = WatchClient::new(ctx.channel().await?);
    let mut stream = client
        .watch(RequestStream(rx))
        .await
        .map_err(|s| CtlError::from_status(&s))?
        .into_inner();
    let style = super::kv::style(ctx);
    loop {
        let resp = tokio::select! {
            line = async {
                match lines.as_mut() {
                    Some(input) => next_line(input).await,
                    None => std::future::pending().await,
                }
            }, if lines.is_some() => {
                interactive_line(&line?, p, &env, &tx, &mut watches).await?;
                continue;
            }
            message = stream.message() => message,
        };
        let resp = match resp {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(status) => {
                err_line(&format!(
                    "watch was canceled ({})\n",
                    CtlError::from_status(&status).message
                ));
                break;
            }
        };
        if resp.created {
            if let Some(exec) = watches.pending.pop_front() {
                watches.running.insert(resp.watch_id, exec);
            }
        }
        // clientv3 consumes the creation acknowledgement itself.
        if resp.created && !resp.canceled && resp.events.is_empty() {
            continue;
        }
        if resp.canceled {
            let reason = if resp.compact_revision != 0 {
                "etcdserver: mvcc: required revision has been compacted".to_string()
            } else {
                resp.cancel_reason.clone()
            };
            err_line(&format!("watch was canceled ({reason})\n"));
        }
        // A requested progress report (watch ID -1) reaches every watch, as in clientv3.
        let copies = if resp.watch_id == -1 {
            watches.running.len().max(1)
        } else {
            1
        };
        for _ in 0..copies {
            print_watch_response(format, style, &resp);
        }
        if let Some(exec) = watches.running.get(&resp.watch_id).filter(|e| !e.is_empty()) {
            run_for_events(exec, &resp)?;
        }
        if resp.canceled {
            watches.running.remove(&resp.watch_id);
            if !interactive {
                break;
            }
        }
    }
    drop(tx);
    Err(CtlError::new(EXIT_INTERRUPTED, "watch is canceled by the server"))
}

async fn create(
    tx: &mpsc::Sender<WatchRequest>,
    watches: &mut Watches,
    spec: WatchSpec,
) -> Result<(), CtlError> {
    watches.pending.push_back(spec.exec);
    send(tx, watch_request::RequestUnion::CreateRequest(spec.create)).await
}

async fn send(tx: &mpsc::Sender<WatchRequest>, request: watch_request::RequestUnion) -> Result<(), CtlError> {
    tx.send(WatchRequest {
        request_union: Some(request),
    })
    .await
    .map_err(|_| CtlError::new(EXIT_ERROR, "watch request channel closed"))
}

/// The next line of `watch -i`'s input; its end is etcdctl's error.
async fn next_line(input: &mut mpsc::Receiver<Result<String, String>>) -> Result<String, CtlError> {
    let read_error = |why: &str| {
        CtlError::new(
            EXIT_INVALID_INPUT,
            format!("Error reading watch request line: {why}"),
        )
    };
    match input.recv().await {
        Some(Ok(line)) => Ok(line),
        Some(Err(why)) => Err(read_error(&why)),
        None => Err(read_error("EOF")),
    }
}

/// Lines of stdin, read on a thread of their own.
fn stdin_lines() -> mpsc::Receiver<Result<String, String>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut line = String::new();
            match lock.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) if !line.ends_with('\n') => return,
                Ok(_) => {
                    line.pop();
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.to_string()));
                    return;
                }
            }
        }
    });
    rx
}

/// One line of `watch -i`: `watch [flags] key [range_end] [-- command]` or `progress`.
async fn interactive_line(
    line: &str,
    outer: &Parsed,
    env: &EnvRange,
    tx: &mpsc::Sender<WatchRequest>,
    watches: &mut Watches,
) -> Result<(), CtlError> {
    let words = super::txn_parse::argify(line).unwrap_or_default();
    match words.first().map(String::as_str) {
        None => err_line(&format!(
            "Invalid command: {line} (watch and progress supported)\n"
        )),
        Some("watch") => {
            if words.len() < 2 && env.key.is_empty() {
                err_line(&format!(
                    "Invalid command {line} (command type or key is not provided)\n"
                ));
                return Ok(());
            }
            if words.last().is_some_and(|w| w == "--") {
                return Err(CtlError::bad_args(BAD_ARGS_SEPARATOR));
            }
            let (_, mut parsed) = super::args::parse(&words[1..], |_| false, |_| WATCH_FLAGS.to_vec())
                .map_err(|e| CtlError::new(EXIT_BAD_ARGS, e.message))?;
            // The command line's own flags hold for every watch it starts, as etcdctl's
            // shared flag variables do, unless the line sets them again.
            for (name, value) in &outer.flags {
                if name != "interactive" && WATCH_FLAGS.iter().any(|f| f.long == name) {
                    parsed.flags.entry(name.clone()).or_insert_with(|| value.clone());
                }
            }
            match watch_spec(&parsed, env) {
                Ok(spec) => create(tx, watches, spec).await?,
                Err(e) if e.message == BAD_ARGS_NUM || e.message == BAD_ARGS_CONFLICT_ENV => return Err(e),
                Err(e) => err_line(&format!("Invalid command {line} ({})\n", e.message)),
            }
        }
        Some("progress") => {
            send(
                tx,
                watch_request::RequestUnion::ProgressRequest(WatchProgressRequest {}),
            )
            .await?;
        }
        Some(_) => err_line(&format!("Invalid command {line} (only support watch)\n")),
    }
    Ok(())
}

/// Runs `exec` once per event of `resp`, with etcdctl's variables; a command that fails
/// ends detcdctl with exit status 1, as etcdctl.
fn run_for_events(exec: &[String], resp: &WatchResponse) -> Result<(), CtlError> {
    let revision = resp.header.as_ref().map_or(0, |h| h.revision);
    for event in &resp.events {
        let kv = event.kv.clone().unwrap_or_default();
        let kind = if event.r#type == 1 {
            "\"DELETE\""
        } else {
            "\"PUT\""
        };
        let status = std::process::Command::new(&exec[0])
            .args(&exec[1..])
            .env("ETCD_WATCH_REVISION", revision.to_string())
            .env("ETCD_WATCH_EVENT_TYPE", kind)
            .env("ETCD_WATCH_KEY", go_quote(&kv.key))
            .env("ETCD_WATCH_VALUE", go_quote(&kv.value))
            .status();
        let failure = match status {
            Ok(s) if s.success() => continue,
            Ok(s) => match s.code() {
                Some(code) => format!("exit status {code}"),
                None => "signal: killed".to_string(),
            },
            Err(e) => format!("exec: {}: {e}", go_quote(exec[0].as_bytes())),
        };
        let quoted: Vec<String> = exec.iter().map(|a| go_quote(a.as_bytes())).collect();
        err_line(&format!("command [{}] error ({failure})\n", quoted.join(" ")));
        return Err(CtlError::new(EXIT_ERROR, ""));
    }
    Ok(())
}

fn print_watch_response(format: Format, style: KvStyle, resp: &WatchResponse) {
    let progress = resp.events.is_empty()
        && !resp.canceled
        && !resp.created
        && resp.compact_revision == 0
        && resp.header.as_ref().is_some_and(|h| h.revision != 0);
    let mut s = String::new();
    if progress {
        s.push_str(&format!(
            "progress notify: {}\n",
            resp.header.as_ref().map_or(0, |h| h.revision)
        ));
    }
    match format {
        Format::Simple => {
            for e in &resp.events {
                s.push_str(if e.r#type == 1 { "DELETE\n" } else { "PUT\n" });
                if let Some(kv) = &e.prev_kv {
                    print::simple_kv(&mut s, style, kv);
                }
                print::simple_kv(&mut s, style, &e.kv.clone().unwrap_or_default());
            }
        }
        Format::Json => {
            let events: Vec<String> = resp.events.iter().map(print::event_json).collect();
            let line = JsonObject::new()
                .raw("Header", &print::header_json(&resp.header.unwrap_or_default()))
                .raw(
                    "Events",
                    &if events.is_empty() {
                        "null".to_string()
                    } else {
                        super::format::json_array(&events)
                    },
                )
                .int("CompactRevision", resp.compact_revision)
                .boolean("Canceled", resp.canceled)
                .boolean("Created", resp.created)
                .finish();
            s.push_str(&line);
            s.push('\n');
        }
        Format::Fields => {
            print::fields_header(&mut s, &resp.header);
            for e in &resp.events {
                s.push_str(if e.r#type == 1 {
                    "\"Type\" : DELETE\n"
                } else {
                    "\"Type\" : PUT\n"
                });
                if let Some(kv) = &e.prev_kv {
                    print::fields_kv(&mut s, "Prev", kv);
                }
                print::fields_kv(&mut s, "", &e.kv.clone().unwrap_or_default());
            }
        }
        Format::Protobuf => {
            out_bytes(&resp.encode_to_vec());
        }
        Format::Table => {}
    }
    out(&s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        super::super::args::parse(&args, |_| false, |_| WATCH_FLAGS.to_vec())
            .expect("parse")
            .1
    }

    #[test]
    fn arguments_as_etcdctl_reads_them() {
        let none = EnvRange::default();
        let spec = watch_spec(&parsed(&["k", "--", "sh", "-c", "env"]), &none).expect("spec");
        assert_eq!(spec.create.key, b"k");
        assert_eq!(spec.exec, ["sh", "-c", "env"]);
        let msg = |args: &[&str], env: &EnvRange| watch_spec(&parsed(args), env).unwrap_err().message;
        assert_eq!(msg(&["k", "--"], &none), BAD_ARGS_SEPARATOR);
        assert_eq!(msg(&["--", "echo"], &none), BAD_ARGS_NUM);
        assert_eq!(msg(&[], &none), BAD_ARGS_NUM);
        assert_eq!(
            msg(&["a", "b", "--prefix"], &none),
            "`range_end` and `--prefix` are mutually exclusive"
        );
        let env = EnvRange {
            key: "x".into(),
            range_end: "y".into(),
        };
        assert_eq!(msg(&["a"], &env), BAD_ARGS_CONFLICT_ENV);
        let spec = watch_spec(&parsed(&["--", "echo"]), &env).expect("env key");
        assert_eq!(
            (spec.create.key, spec.create.range_end),
            (b"x".to_vec(), b"y".to_vec())
        );
    }
}
