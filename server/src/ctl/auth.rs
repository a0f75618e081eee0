//! etcdctl's `auth`, `user` and `role` commands and the global `--user` /
//! `--password` login, with etcdctl 3.4's arguments, messages, exit codes and
//! `simple` output (`etcdctl/ctlv3/command/{auth,user,role}_command.go`,
//! `printer_simple.go`). Other output formats are refused with etcdctl's
//! "not supported as output format" error.

use std::io::BufRead;

use detcd_proto::authpb::{permission::Type as PermType, Permission, UserAddOptions};
use detcd_proto::etcdserverpb::auth_client::AuthClient;
use detcd_proto::etcdserverpb::*;
use tonic::transport::Channel;

use super::args::Parsed;
use super::error::{CtlError, EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, EXIT_ERROR};
use super::print::Format;
use super::{out, Ctx};

/// etcdctl's `authCfgFromCmd`: `--user name:password`, or `--user name` with
/// `--password`, or a prompt for the password.
pub fn user_from_flags(
    user: Option<&str>,
    password: Option<&str>,
) -> Result<Option<(String, String)>, CtlError> {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        return Ok(Some((user.to_string(), password.to_string())));
    }
    match user.split_once(':') {
        Some((name, password)) => Ok(Some((name.to_string(), password.to_string()))),
        None => Ok(Some((user.to_string(), ask("Password: ")?))),
    }
}

/// Prints `prompt` and reads one line of stdin (etcdctl reads it from the
/// terminal with echo off).
fn ask(prompt: &str) -> Result<String, CtlError> {
    out(prompt);
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CtlError::new(EXIT_ERROR, e.to_string()))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Go's `fmt.Scanf("%s")`: the first whitespace-separated word of stdin.
fn scan_word() -> String {
    let mut all = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut all);
    all.split_whitespace().next().unwrap_or_default().to_string()
}

/// etcdctl's `readPasswordInteractive`.
fn read_password_interactive(name: &str) -> Result<String, CtlError> {
    let first = ask(&format!("Password of {name}: "))?;
    if first.is_empty() {
        return Err(CtlError::bad_args("empty password"));
    }
    let second = ask(&format!("Type password of {name} again for confirmation: "))?;
    if first != second {
        return Err(CtlError::bad_args("given passwords are different"));
    }
    Ok(first)
}

/// Logs in on a fresh channel and returns the token (none while auth is off:
/// the Go client then goes on without one); a refusal ends the command as
/// etcdctl's failed client creation does (exit 2).
pub async fn authenticate(
    ctx: &Ctx,
    channel: Channel,
    name: String,
    password: String,
) -> Result<Option<String>, CtlError> {
    let mut c = AuthClient::new(channel);
    match ctx
        .call(c.authenticate(AuthenticateRequest { name, password }))
        .await
    {
        Ok(r) => Ok(Some(r.token)),
        Err(e) if e.message == "etcdserver: authentication is not enabled" => Ok(None),
        Err(e) => Err(CtlError::new(EXIT_BAD_CONNECTION, e.message)),
    }
}

fn interactive(p: &Parsed) -> Result<bool, CtlError> {
    if p.is_set("interactive") {
        p.bool("interactive")
    } else {
        Ok(true)
    }
}

/// etcdctl's `StrToPermissionType`.
fn permission_type(s: &str) -> Result<PermType, CtlError> {
    PermType::from_str_name(&s.to_uppercase())
        .ok_or_else(|| CtlError::bad_args(format!("invalid permission type: {s}")))
}

/// etcd's `GetPrefixRangeEnd`: the key after every key with this prefix.
fn prefix_range_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// etcdctl's `permRange`: key and range end from the arguments and flags.
fn perm_range(args: &[String], p: &Parsed) -> Result<(Vec<u8>, Vec<u8>), CtlError> {
    let (prefix, from_key) = (p.bool("prefix")?, p.bool("from-key")?);
    let key = args[0].as_bytes().to_vec();
    if key.is_empty() {
        if prefix && from_key {
            return Err(CtlError::bad_args(
                "--from-key and --prefix flags are mutually exclusive",
            ));
        }
        let end = if prefix || from_key { vec![0] } else { Vec::new() };
        return Ok((vec![0], end));
    }
    if args.len() == 1 {
        return match (prefix, from_key) {
            (true, true) => Err(CtlError::bad_args(
                "--from-key and --prefix flags are mutually exclusive",
            )),
            (true, false) => {
                let end = prefix_range_end(&key);
                Ok((key, end))
            }
            (false, true) => Ok((key, vec![0])),
            (false, false) => Ok((key, Vec::new())),
        };
    }
    if prefix {
        return Err(CtlError::bad_args(
            "unexpected endkey argument with --prefix flag",
        ));
    }
    if from_key {
        return Err(CtlError::bad_args(
            "unexpected endkey argument with --from-key flag",
        ));
    }
    Ok((key, args[1].as_bytes().to_vec()))
}

/// printer_simple's `RoleGet`.
fn role_text(role: &str, perms: &[Permission]) -> String {
    let range = |p: &Permission| {
        let key = String::from_utf8_lossy(&p.key);
        if p.range_end.is_empty() {
            return format!("\t{key}\n");
        }
        let end = String::from_utf8_lossy(&p.range_end);
        let mut s = if p.range_end == [0] {
            format!("\t[{key}, <open ended>")
        } else {
            format!("\t[{key}, {end})")
        };
        if prefix_range_end(&p.key) == p.range_end {
            s.push_str(&format!(" (prefix {key})"));
        }
        s + "\n"
    };
    let mut s = format!("Role {role}\nKV Read:\n");
    for p in perms.iter().filter(|p| p.perm_type() != PermType::Write) {
        s.push_str(&range(p));
    }
    s.push_str("KV Write:\n");
    for p in perms.iter().filter(|p| p.perm_type() != PermType::Read) {
        s.push_str(&range(p));
    }
    s
}

/// Checks the argument count, with etcdctl's message.
fn want_args(p: &Parsed, ok: impl Fn(usize) -> bool, message: &str) -> Result<(), CtlError> {
    if ok(p.args.len()) {
        Ok(())
    } else {
        Err(CtlError::bad_args(message))
    }
}

/// Runs `auth ...`, `user ...` or `role ...`.
pub async fn run(ctx: &mut Ctx, path: &[&str], p: &Parsed) -> Result<(), CtlError> {
    if ctx.globals.format != Format::Simple {
        return Err(ctx.globals.format.unsupported());
    }
    let a = &p.args;
    // Arguments are checked before connecting, as etcdctl does.
    let text = match path {
        ["auth", "enable"] => {
            want_args(p, |n| n == 0, "auth enable command does not accept any arguments")?;
            auth_enable(ctx).await?;
            "Authentication Enabled\n".to_string()
        }
        ["auth", "disable"] => {
            want_args(
                p,
                |n| n == 0,
                "auth disable command does not accept any arguments",
            )?;
            let mut c = AuthClient::new(ctx.channel().await?);
            ctx.call(c.auth_disable(AuthDisableRequest {})).await?;
            "Authentication Disabled\n".to_string()
        }
        ["auth", "status"] => {
            want_args(p, |n| n == 0, "auth status command does not accept any arguments")?;
            let mut c = AuthClient::new(ctx.channel().await?);
            let r = ctx.call(c.auth_status(AuthStatusRequest {})).await?;
            format!(
                "Authentication Status: {}\nAuthRevision: {}\n",
                r.enabled, r.auth_revision
            )
        }
        ["user", "add"] => {
            want_args(
                p,
                |n| n == 1,
                "user add command requires user name as its argument",
            )?;
            let (name, password, no_password) = user_add_args(p)?;
            let mut c = AuthClient::new(ctx.channel().await?);
            let request = AuthUserAddRequest {
                name: name.clone(),
                password,
                options: Some(UserAddOptions { no_password }),
                hashed_password: String::new(),
            };
            ctx.call(c.user_add(request)).await?;
            format!("User {name} created\n")
        }
        ["user", "delete"] => {
            want_args(
                p,
                |n| n == 1,
                "user delete command requires user name as its argument",
            )?;
            let mut c = AuthClient::new(ctx.channel().await?);
            ctx.call(c.user_delete(AuthUserDeleteRequest { name: a[0].clone() }))
                .await?;
            format!("User {} deleted\n", a[0])
        }
        ["user", "get"] => {
            want_args(
                p,
                |n| n == 1,
                "user get command requires user name as its argument",
            )?;
            let mut c = AuthClient::new(ctx.channel().await?);
            let r = ctx
                .call(c.user_get(AuthUserGetRequest { name: a[0].clone() }))
                .await?;
            let mut s = format!("User: {}\n", a[0]);
            if p.bool("detail")? {
                for role in r.roles {
                    let perms = ctx
                        .call(c.role_get(AuthRoleGetRequest { role: role.clone() }))
                        .await?
                        .perm;
                    s.push('\n');
                    s.push_str(&role_text(&role, &perms));
                }
            } else {
                s.push_str("Roles:");
                for role in r.roles {
                    s.push_str(&format!(" {role}"));
                }
                s.push('\n');
            }
            s
        }
        ["user", "list"] => {
            want_args(p, |n| n == 0, "user list command requires no arguments")?;
            let mut c = AuthClient::new(ctx.channel().await?);
            let r = ctx.call(c.user_list(AuthUserListRequest {})).await?;
            r.users.iter().map(|u| format!("{u}\n")).collect()
        }
        ["user", "passwd"] => {
            want_args(
                p,
                |n| n == 1,
                "user passwd command requires user name as its argument",
            )?;
            let password = if interactive(p)? {
                read_password_interactive(&a[0])?
            } else {
                scan_word()
            };
            let mut c = AuthClient::new(ctx.channel().await?);
            let request = AuthUserChangePasswordRequest {
                name: a[0].clone(),
                password,
                hashed_password: String::new(),
            };
            ctx.call(c.user_change_password(request)).await?;
            "Password updated\n".to_string()
        }
        ["user", "grant-role"] => {
            want_args(
                p,
                |n| n == 2,
                "user grant command requires user name and role name as its argument",
            )?;
            let mut c = AuthClient::new(ctx.channel().await?);
            let request = AuthUserGrantRoleRequest {
                user: a[0].clone(),
                role: a[1].clone(),
            };
            ctx.call(c.user_grant_role(request)).await?;
            format!("Role {} is granted to user {}\n", a[1], a[0])
        }
        ["user", "revoke-role"] => {
            want_args(
                p,
                |n| n == 2,
                "user revoke-role requires user name and role name as its argument",
            )?;
            let mut c = AuthClient::new(ctx.channel().await?);
            let request = AuthUserRevokeRoleRequest {
                name: a[0].clone(),
                role: a[1].clone(),
            };
            ctx.call(c.user_revoke_role(request)).await?;
            format!("Role {} is revoked from user {}\n", a[1], a[0])
        }
        ["role", "add"] => {
            want_args(
                p,
                |n| n == 1,
                "role add command requires role name as its argument",
            )?;
            let mut c = AuthClient::new(ctx.channel().await?);
            ctx.call(c.role_add(AuthRoleAddRequest { name: a[0].clone() }))
                .await?;
            format!("Role {} created\n", a[0])
        }
        ["role", "delete"] => {
            want_args(
                p,
                |n| n == 1,
                "role delete command requires role name as its argument",
            )?;
            let mut c = AuthClient::new(ctx.channel().await?);
            ctx.call(c.role_delete(AuthRoleDeleteRequest { role: a[0].clone() }))
                .await?;
            format!("Role {} deleted\n", a[0])
        }
        ["role", "get"] => {
            want_args(
                p,
                |n| n == 1,
                "role get command requires role name as its argument",
            )?;
            let mut c = AuthClient::new(ctx.channel().await?);
            let r = ctx
                .call(c.role_get(AuthRoleGetRequest { role: a[0].clone() }))
                .await?;
            role_text(&a[0], &r.perm)
        }
        ["role", "list"] => {
            want_args(p, |n| n == 0, "role list command requires no arguments")?;
            let mut c = AuthClient::new(ctx.channel().await?);
            let r = ctx.call(c.role_list(AuthRoleListRequest {})).await?;
            r.roles.iter().map(|role| format!("{role}\n")).collect()
        }
        ["role", "grant-permission"] => {
            want_args(
                p,
                |n| n >= 3,
                "role grant command requires role name, permission type, and key [endkey] as its argument",
            )?;
            let kind = permission_type(&a[1])?;
            let (key, range_end) = perm_range(&a[2..], p)?;
            let mut c = AuthClient::new(ctx.channel().await?);
            let request = AuthRoleGrantPermissionRequest {
                name: a[0].clone(),
                perm: Some(Permission {
                    perm_type: kind as i32,
                    key,
                    range_end,
                }),
            };
            ctx.call(c.role_grant_permission(request)).await?;
            format!("Role {} updated\n", a[0])
        }
        ["role", "revoke-permission"] => {
            want_args(
                p,
                |n| n >= 2,
                "role revoke-permission command requires role name and key [endkey] as its argument",
            )?;
            let (key, range_end) = perm_range(&a[1..], p)?;
            let mut c = AuthClient::new(ctx.channel().await?);
            let request = AuthRoleRevokePermissionRequest {
                role: a[0].clone(),
                key,
                range_end: range_end.clone(),
            };
            ctx.call(c.role_revoke_permission(request)).await?;
            let (key, role) = (&a[1], &a[0]);
            match range_end.as_slice() {
                [] => format!("Permission of key {key} is revoked from role {role}\n"),
                [0] => format!("Permission of range [{key}, <open ended> is revoked from role {role}\n"),
                end => format!(
                    "Permission of range [{key}, {}) is revoked from role {role}\n",
                    String::from_utf8_lossy(end)
                ),
            }
        }
        _ => {
            return Err(CtlError::new(
                EXIT_BAD_ARGS,
                format!("unknown command {:?}", path.join(" ")),
            ))
        }
    };
    out(&text);
    Ok(())
}

/// etcdctl's `user add` arguments: name, password, no-password.
fn user_add_args(p: &Parsed) -> Result<(String, String, bool), CtlError> {
    let arg = &p.args[0];
    if p.bool("no-password")? {
        return Ok((arg.clone(), String::new(), true));
    }
    if let Some(password) = p.value("new-user-password").filter(|v| !v.is_empty()) {
        return Ok((arg.clone(), password.to_string(), false));
    }
    match arg.split_once(':') {
        Some(("", _)) => Err(CtlError::bad_args("empty user name is not allowed")),
        Some((name, password)) => Ok((name.to_string(), password.to_string(), false)),
        None if interactive(p)? => Ok((arg.clone(), read_password_interactive(arg)?, false)),
        None => Ok((arg.clone(), scan_word(), false)),
    }
}

/// etcdctl's `auth enable`: when root lacks role root, the role is created and
/// granted to root and enabling tried again, until enabling works or something
/// else fails.
async fn auth_enable(ctx: &mut Ctx) -> Result<(), CtlError> {
    let mut c = AuthClient::new(ctx.channel().await?);
    loop {
        match ctx.call(c.auth_enable(AuthEnableRequest {})).await {
            Ok(_) => return Ok(()),
            Err(e) if e.message == "etcdserver: root user does not have root role" => {
                ctx.call(c.role_add(AuthRoleAddRequest {
                    name: "root".to_string(),
                }))
                .await?;
                let grant = AuthUserGrantRoleRequest {
                    user: "root".to_string(),
                    role: "root".to_string(),
                };
                ctx.call(c.user_grant_role(grant)).await?;
            }
            Err(e) => return Err(e),
        }
    }
}
