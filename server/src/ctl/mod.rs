//! detcdctl: an etcdctl-compatible command-line client for etcd's v3 gRPC API.
//!
//! It speaks to detcd or to etcd itself and reproduces etcdctl 3.4's commands, flags, exit
//! codes and output formats byte for byte, so scripts written for etcdctl keep working.
//! `args` parses the command line with pflag's rules; `print` and `format` hold the output
//! encodings; the commands live one family to a file, as etcdctl keeps them (`kv`, `lease`,
//! `member`, `endpoint`, `snapshot`, `defrag`, `move_leader`, `alarm`, `concurrency` for lock
//! and elect, ...);
//! `txn_parse` reads the `txn` grammar. `commands` is the table of commands and flags
//! (with their help texts), `help` renders etcdctl's help from it, and `find` resolves a
//! command line to a command as cobra does.

pub mod alarm;
pub mod args;
pub mod auth;
pub mod check;
pub mod commands;
pub mod completion;
pub mod concurrency;
pub mod debug;
pub mod defrag;
pub mod dial;
pub mod endpoint;
pub mod error;
pub mod find;
pub mod format;
pub mod help;
pub mod kv;
pub mod lease;
pub mod member;
pub mod mirror;
pub mod move_leader;
pub mod print;
pub mod restore;
pub mod snapshot;
pub mod txn_parse;
pub mod watch;

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use args::Parsed;
use commands::{COMMANDS, GLOBAL_FLAGS};
use error::{CtlError, EXIT_BAD_ARGS, EXIT_ERROR};
use find::{resolve_command, specs_for, strip_flags, unknown_command, usage_path};
use print::Format;

/// The version `detcdctl version` reports as its API version: the etcd API it speaks.
pub const API_VERSION: &str = "3.6";

/// Dial timeout when `--dial-timeout` is not given (etcdctl's default).
pub const DIAL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);
/// Per-request timeout when `--command-timeout` is not given (etcdctl's default).
pub const COMMAND_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// The global options every command shares.
#[derive(Debug, Clone)]
pub struct Globals {
    /// Endpoints as the user wrote them (etcdctl prints them that way).
    pub endpoints: Vec<String>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
    pub format: Format,
    pub hex: bool,
    /// `--cert`, `--key`, `--cacert`, `--insecure-transport`, `--insecure-skip-tls-verify`.
    pub tls: dial::ClientTls,
    /// `--user` (and `--password`): the user and password to authenticate as.
    pub user: Option<(String, String)>,
    /// `--keepalive-time` and `--keepalive-timeout`: HTTP/2 pings on open connections.
    pub keepalive: dial::Keepalive,
    /// `--debug`: the flag values etcdctl prints to stderr first.
    pub debug_lines: Option<String>,
    /// `--discovery-srv` (`-d`), `--discovery-srv-name`, `--insecure-discovery`: the
    /// endpoints come from `_etcd-client-ssl` / `_etcd-client` SRV records.
    pub discovery: Option<SrvEndpoints>,
}

/// DNS SRV discovery of the client endpoints.
#[derive(Debug, Clone)]
pub struct SrvEndpoints {
    pub domain: String,
    pub service_name: String,
    /// `--insecure-discovery` (default true): keep `http://` endpoints.
    pub insecure: bool,
}

impl Globals {
    /// Replaces the endpoints with the ones the SRV records name, when `--discovery-srv`
    /// is given and they name any (etcdctl's `endpointsFromCmd`).
    pub async fn discover_endpoints(&mut self) -> Result<(), CtlError> {
        let Some(d) = &self.discovery else {
            return Ok(());
        };
        let fail = |e: String| CtlError::new(EXIT_ERROR, e);
        let dns = crate::discovery::dns::Dns::from_env().map_err(fail)?;
        let found = crate::discovery::srv::client_endpoints(&dns, &d.domain, &d.service_name)
            .await
            .map_err(fail)?;
        let mut kept = Vec::new();
        for ep in found {
            if !d.insecure && ep.starts_with("http://") {
                err_line(&format!("ignoring discovered insecure endpoint {ep:?}\n"));
                continue;
            }
            kept.push(ep);
        }
        if !kept.is_empty() {
            self.endpoints = kept;
        }
        // Without insecure discovery, servers prove they are the domain's (etcdctl's
        // ServerName).
        if !d.insecure {
            self.tls = std::mem::take(&mut self.tls).with_server_name(&d.domain);
        }
        Ok(())
    }
}

impl Globals {
    /// Reads the global flags, falling back to `ETCDCTL_*` variables for flags not given.
    /// A variable and a flag both set is an error, as in etcd's `pkg/flags`.
    pub fn from_parsed(parsed: &Parsed, env: &[(String, String)]) -> Result<Self, CtlError> {
        let mut values = parsed.flags.clone();
        for spec in GLOBAL_FLAGS {
            let key = format!("ETCDCTL_{}", spec.long.to_uppercase().replace('-', "_"));
            let Some((_, v)) = env.iter().find(|(k, v)| *k == key && !v.is_empty()) else {
                continue;
            };
            if parsed.is_set(spec.long) {
                return Err(CtlError::new(
                    EXIT_ERROR,
                    format!(
                        "conflicting environment variable {key:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
                    ),
                ));
            }
            values.insert(spec.long.to_string(), v.clone());
        }
        let merged = Parsed {
            flags: values,
            ..Parsed::default()
        };
        let endpoints = merged
            .value("endpoints")
            .unwrap_or("127.0.0.1:2379")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let duration = |name: &str, default: Duration| -> Result<Duration, CtlError> {
            match merged.value(name) {
                None => Ok(default),
                Some(v) => parse_go_duration(v).ok_or_else(|| {
                    CtlError::bad_flag_value(
                        name,
                        v,
                        format!("time: invalid duration {}", format::go_quote(v.as_bytes())),
                    )
                }),
            }
        };
        let format_name = merged.value("write-out").unwrap_or("simple");
        let format = Format::parse(format_name)
            .ok_or_else(|| CtlError::new(EXIT_BAD_ARGS, format!("unknown output format {format_name:?}")))?;
        let discovery = merged
            .value("discovery-srv")
            .filter(|d| !d.is_empty())
            .map(|domain| SrvEndpoints {
                domain: domain.to_string(),
                service_name: merged.value("discovery-srv-name").unwrap_or("").to_string(),
                insecure: merged.value("insecure-discovery").is_none()
                    || merged.bool("insecure-discovery").unwrap_or(true),
            });
        Ok(Self {
            endpoints,
            discovery,
            dial_timeout: duration("dial-timeout", DIAL_TIMEOUT_DEFAULT)?,
            command_timeout: duration("command-timeout", COMMAND_TIMEOUT_DEFAULT)?,
            format,
            hex: merged.bool("hex")?,
            tls: dial::ClientTls::from_flags(&merged)?,
            user: auth::user_from_flags(merged.value("user"), merged.value("password"))?,
            keepalive: dial::Keepalive {
                time: duration("keepalive-time", dial::Keepalive::default().time)?,
                timeout: duration("keepalive-timeout", dial::Keepalive::default().timeout)?,
            },
            debug_lines: merged
                .bool("debug")?
                .then(|| debug::flag_lines(GLOBAL_FLAGS, &merged)),
        })
    }
}

/// Go's `time.ParseDuration` for the forms people type: `2s`, `500ms`, `1m30s`, `1.5s`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

/// Adds the auth token (if any) to every request, as the Go client does.
#[derive(Clone, Debug, Default)]
pub struct TokenInterceptor(Option<AsciiMetadataValue>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert("token", token.clone());
        }
        Ok(request)
    }
}

/// A channel whose requests carry the user's token.
pub type CtlChannel = InterceptedService<Channel, TokenInterceptor>;

/// A connection to the cluster plus the options that shape requests and output.
#[derive(Debug)]
pub struct Ctx {
    pub globals: Globals,
    channel: Option<CtlChannel>,
}

impl Ctx {
    pub fn new(globals: Globals) -> Self {
        Self {
            globals,
            channel: None,
        }
    }

    /// A channel to the first endpoint that answers within the dial timeout,
    /// authenticated as `--user` when one is given.
    pub async fn channel(&mut self) -> Result<CtlChannel, CtlError> {
        if let Some(c) = &self.channel {
            return Ok(c.clone());
        }
        let mut last = CtlError::new(EXIT_ERROR, "context deadline exceeded");
        for ep in self.globals.endpoints.clone() {
            match self.endpoint_channel(&ep).await {
                Ok(c) => {
                    self.channel = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A channel to `endpoint` alone (the commands that ask each endpoint in turn),
    /// authenticated as `--user` when one is given.
    pub async fn endpoint_channel(&mut self, endpoint: &str) -> Result<CtlChannel, CtlError> {
        let c = connect(endpoint, &self.globals).await?;
        let token = match self.globals.user.clone() {
            Some((user, password)) => auth::authenticate(self, c.clone(), user, password).await?,
            None => None,
        };
        let token = token
            .map(|t| AsciiMetadataValue::try_from(t.as_str()))
            .transpose()
            .map_err(|_| CtlError::new(EXIT_ERROR, "the server sent a token that is not ASCII"))?;
        Ok(InterceptedService::new(c, TokenInterceptor(token)))
    }

    /// Runs one unary call under `--command-timeout`.
    pub async fn call<T>(
        &self,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CtlError> {
        match tokio::time::timeout(self.globals.command_timeout, fut).await {
            Err(_) => Err(CtlError::new(EXIT_ERROR, "context deadline exceeded")),
            Ok(Err(status)) => Err(CtlError::from_status(&status)),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }
}

/// Dials one endpoint with the global dial timeout and TLS flags (see [`dial`]).
pub async fn connect(endpoint: &str, globals: &Globals) -> Result<Channel, CtlError> {
    dial::connect(
        endpoint,
        globals.dial_timeout,
        &globals.tls,
        Some(globals.keepalive),
    )
    .await
}

/// Writes to stdout, ignoring a closed pipe (as a Go program killed by SIGPIPE would stop).
pub fn out(s: &str) {
    out_bytes(s.as_bytes());
}

pub fn out_bytes(b: &[u8]) {
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(b);
    let _ = so.flush();
}

pub fn err_line(s: &str) {
    let mut se = std::io::stderr().lock();
    let _ = se.write_all(s.as_bytes());
    let _ = se.flush();
}

/// Runs detcdctl with `args` (without the program name) and returns the exit status.
pub fn main(args: Vec<String>) -> i32 {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            err_line(&format!("Error: {e}\n"));
            return error::EXIT_IO;
        }
    };
    match runtime.block_on(run(args.clone(), env)) {
        Ok(()) => error::EXIT_SUCCESS,
        Err(e) => {
            let mut e = e;
            if is_flag_error(&e.message) {
                let path = usage_path(&args);
                let stray = strip_flags(&args, &specs_for(&[])).into_iter().next();
                match stray.filter(|_| path.is_empty()) {
                    // cobra finds the command before it parses flags: a word the root
                    // does not know is its error, not the flag.
                    Some(word) => e = unknown_command(&word),
                    None => {
                        // cobra prints a flag error, then the command's usage on stdout,
                        // and etcdctl prints the error again.
                        err_line(&format!("Error: {}\n\n", e.message));
                        let path: Vec<&str> = path.iter().map(String::as_str).collect();
                        out(&help::help(&path, true));
                    }
                }
            }
            if !e.message.is_empty() {
                err_line(&format!("Error: {}\n", e.message));
            }
            e.code
        }
    }
}

/// Whether `message` is one of pflag's errors for the command line.
fn is_flag_error(message: &str) -> bool {
    [
        "unknown flag: ",
        "unknown shorthand flag: ",
        "flag needs an argument: ",
    ]
    .iter()
    .any(|p| message.starts_with(p))
        || (message.starts_with("invalid argument \"") && message.contains("\" flag: "))
}

async fn run(args: Vec<String>, env: Vec<(String, String)>) -> Result<(), CtlError> {
    let (path, parsed) = args::parse_commands(&args, resolve_command, specs_for)?;
    let mut globals = Globals::from_parsed(&parsed, &env)?;
    globals.discover_endpoints().await?;
    if let Some(lines) = &globals.debug_lines {
        err_line(lines);
    }
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    if path.is_empty() {
        if let Some(word) = parsed.args.first() {
            return Err(unknown_command(word));
        }
    }
    if parsed.bool("help")? || path.is_empty() {
        out(&help::help(&path, true));
        return Ok(());
    }
    if path == ["help"] {
        return help_command(&parsed.args);
    }
    if !commands::children(&path).is_empty() && path != ["completion"] {
        // A group runs nothing: cobra prints its help (also after an unknown subcommand).
        out(&help::help(&path, true));
        return Ok(());
    }
    let mut ctx = Ctx::new(globals);
    match path.as_slice() {
        ["put"] => kv::put(&mut ctx, &parsed).await,
        ["lock"] => concurrency::lock(&mut ctx, &parsed).await,
        ["elect"] => concurrency::elect(&mut ctx, &parsed).await,
        ["get"] => kv::get(&mut ctx, &parsed).await,
        ["del"] => kv::del(&mut ctx, &parsed).await,
        ["txn"] => kv::txn(&mut ctx, &parsed).await,
        ["compaction"] => kv::compaction(&mut ctx, &parsed).await,
        ["watch"] => watch::watch(&mut ctx, &parsed).await,
        ["lease", "grant"] => lease::grant(&mut ctx, &parsed).await,
        ["lease", "revoke"] => lease::revoke(&mut ctx, &parsed).await,
        ["lease", "timetolive"] => lease::timetolive(&mut ctx, &parsed).await,
        ["lease", "list"] => lease::list(&mut ctx, &parsed).await,
        ["lease", "keep-alive"] => lease::keep_alive(&mut ctx, &parsed).await,
        ["member", "add"] => member::add(&mut ctx, &parsed).await,
        ["member", "remove"] => member::remove(&mut ctx, &parsed).await,
        ["member", "update"] => member::update(&mut ctx, &parsed).await,
        ["member", "list"] => member::list(&mut ctx, &parsed).await,
        ["member", "promote"] => member::promote(&mut ctx, &parsed).await,
        ["endpoint", "health"] => endpoint::health(&mut ctx, &parsed).await,
        ["endpoint", "status"] => endpoint::status(&mut ctx, &parsed).await,
        ["endpoint", "hashkv"] => endpoint::hashkv(&mut ctx, &parsed).await,
        ["snapshot", "save"] => snapshot::save(&mut ctx, &parsed).await,
        ["snapshot", "status"] => snapshot::status(&ctx, &parsed),
        ["snapshot", "restore"] => restore::restore(&parsed),
        ["move-leader"] => move_leader::move_leader(&mut ctx, &parsed).await,
        ["make-mirror"] => mirror::make_mirror(&mut ctx, &parsed).await,
        ["check", "perf"] => check::perf(&mut ctx, &parsed).await,
        ["check", "datascale"] => check::datascale(&mut ctx, &parsed).await,
        ["completion"] if parsed.args.is_empty() => {
            out(&help::help(&path, true));
            Ok(())
        }
        ["completion"] => completion::run(&parsed.args, COMMANDS, GLOBAL_FLAGS),
        ["completion", shell] => completion::run(&[shell.to_string()], COMMANDS, GLOBAL_FLAGS),
        ["defrag"] => defrag::defrag(&mut ctx, &parsed).await,
        ["alarm", "list"] => alarm::list(&mut ctx, &parsed).await,
        ["alarm", "disarm"] => alarm::disarm(&mut ctx, &parsed).await,
        ["auth", _] | ["user", _] | ["role", _] => auth::run(&mut ctx, &path, &parsed).await,
        ["version"] => {
            out(&format!(
                "detcdctl version: {}\nAPI version: {API_VERSION}\n",
                env!("CARGO_PKG_VERSION")
            ));
            Ok(())
        }
        _ => {
            out(&help::help(&path, true));
            Ok(())
        }
    }
}

/// `help [command]`: that command's help; for a first word that names no command,
/// cobra's notice on stderr and the root's usage (which lacks the `--help` line there).
fn help_command(words: &[String]) -> Result<(), CtlError> {
    let mut path: Vec<String> = Vec::new();
    for word in words {
        match resolve_command(&path, word) {
            Some(name) => path.push(name),
            None if path.is_empty() => {
                let quoted: Vec<String> = words
                    .iter()
                    .map(|w| {
                        if w.contains('`') || w.chars().any(char::is_control) {
                            format::go_quote(w.as_bytes())
                        } else {
                            format!("`{w}`")
                        }
                    })
                    .collect();
                err_line(&format!("Unknown help topic [{}]\n", quoted.join(" ")));
                out(&help::help(&[], false));
                return Ok(());
            }
            None => break,
        }
    }
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    out(&help::help(&path, true));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::find::is_command;
    use super::*;

    fn parsed(args: &[&str]) -> Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args::parse(&args, is_command, specs_for).unwrap().1
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_go_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("5"), None);
    }

    #[test]
    fn env_fills_unset_flags_and_conflicts_are_errors() {
        let env = vec![("ETCDCTL_ENDPOINTS".to_string(), "a:1,b:2".to_string())];
        let g = Globals::from_parsed(&parsed(&["get", "k"]), &env).unwrap();
        assert_eq!(g.endpoints, vec!["a:1", "b:2"]);
        let e = Globals::from_parsed(&parsed(&["--endpoints=c:3", "get", "k"]), &env).unwrap_err();
        assert!(e
            .message
            .starts_with("conflicting environment variable \"ETCDCTL_ENDPOINTS\""));
        let g = Globals::from_parsed(&parsed(&["get", "k", "-w", "json", "--hex"]), &[]).unwrap();
        assert_eq!(g.format, Format::Json);
        assert!(g.hex);
        assert_eq!(g.endpoints, vec!["127.0.0.1:2379"]);
    }
}
