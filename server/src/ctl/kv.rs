//! The key-value commands: `put`, `get`, `del`, `txn` and `compaction` (`watch` is in
//! [`super::watch`]), with
//! etcdctl 3.4's argument checks and messages (`etcdctl/ctlv3/command/*_command.go`).

use std::io::{BufRead, Read};

use detcd_proto::etcdserverpb::kv_client::KvClient;
use detcd_proto::etcdserverpb::{
    range_request, request_op, CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest,
    RangeResponse, RequestOp, TxnRequest,
};

use super::args::{bool_flag, value_flag, FlagSpec, Parsed};
use super::error::{CtlError, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT};
use super::print::{self, Format, KvStyle, Text};
use super::{out, Ctx};

pub const PUT_FLAGS: &[FlagSpec] = &[
    bool_flag("prev-kv").about("return the previous key-value pair before modification"),
    value_flag("lease")
        .default_str("0")
        .about("lease ID (in hexadecimal) to attach to the key"),
    bool_flag("ignore-value").about("updates the key using its current value"),
    bool_flag("ignore-lease").about("updates the key using its current lease"),
];
pub const GET_FLAGS: &[FlagSpec] = &[
    value_flag("consistency")
        .default_str("l")
        .about("Linearizable(l) or Serializable(s)"),
    value_flag("order").about("Order of results; ASCEND or DESCEND (ASCEND by default)"),
    value_flag("sort-by").about("Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION"),
    value_flag("limit")
        .default_plain("0")
        .about("Maximum number of results"),
    bool_flag("prefix").about("Get keys with matching prefix"),
    bool_flag("from-key")
        .about("Get keys that are greater than or equal to the given key using byte compare"),
    value_flag("rev")
        .default_plain("0")
        .about("Specify the kv revision"),
    bool_flag("keys-only").about("Get only the keys"),
    bool_flag("count-only").about("Get only the count"),
    bool_flag("print-value-only").about("Only write values when using the \"simple\" output format"),
    value_flag("min-create-rev")
        .default_plain("0")
        .about("Minimum create revision"),
    value_flag("max-create-rev")
        .default_plain("0")
        .about("Maximum create revision"),
    value_flag("min-mod-rev")
        .default_plain("0")
        .about("Minimum modification revision"),
    value_flag("max-mod-rev")
        .default_plain("0")
        .about("Maximum modification revision"),
];
/// `--range` (etcdctl 3.5+) only silences 3.5's warning about an explicit range end;
/// etcdctl 3.4 has no such warning, so it changes nothing here.
pub const DEL_FLAGS: &[FlagSpec] = &[
    bool_flag("prefix").about("delete keys with matching prefix"),
    bool_flag("prev-kv").about("return deleted key-value pairs"),
    bool_flag("from-key")
        .about("delete keys that are greater than or equal to the given key using byte compare"),
    bool_flag("range").about("delete range of keys"),
];

/// The end of the range holding every key with `prefix` (clientv3 `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn parse_i64(v: &str, radix: u32) -> Result<i64, String> {
    i64::from_str_radix(v, radix).map_err(|_| format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
}

pub(super) fn int_flag(p: &Parsed, name: &str) -> Result<i64, CtlError> {
    Ok(p.int(name)?.unwrap_or(0))
}

/// `getPutOp`. `stdin` supplies the value when only the key is given.
pub fn put_request(p: &Parsed, stdin: &mut dyn FnMut() -> Option<String>) -> Result<PutRequest, CtlError> {
    let usage = "put command needs 1 argument and input from stdin or 2 arguments";
    let key = p.args.first().ok_or_else(|| CtlError::bad_args(usage))?;
    let ignore_value = p.bool("ignore-value")?;
    if ignore_value && p.args.len() > 1 {
        return Err(CtlError::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let value = if ignore_value {
        String::new()
    } else if let Some(v) = p.args.get(1) {
        v.clone()
    } else {
        stdin()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CtlError::bad_args(usage))?
    };
    let lease = parse_i64(p.value("lease").unwrap_or("0"), 16)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key: key.clone().into_bytes(),
        value: value.into_bytes(),
        lease,
        prev_kv: p.bool("prev-kv")?,
        ignore_value,
        ignore_lease: p.bool("ignore-lease")?,
    })
}

/// `getGetOp`.
pub fn get_request(p: &Parsed) -> Result<RangeRequest, CtlError> {
    if p.args.is_empty() {
        return Err(CtlError::bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    }
    let (prefix, from_key) = (p.bool("prefix")?, p.bool("from-key")?);
    if prefix && from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    if p.bool("keys-only")? && p.bool("count-only")? {
        return Err(CtlError::bad_args(
            "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
        ));
    }
    let serializable = match p.value("consistency").unwrap_or("l") {
        "l" => false,
        "s" => true,
        other => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("unknown consistency flag {other:?}"),
            ))
        }
    };
    let mut req = RangeRequest {
        key: p.args[0].clone().into_bytes(),
        range_end: range_end_arg(p, prefix, from_key)?,
        serializable,
        ..Default::default()
    };
    req.limit = int_flag(p, "limit")?;
    req.revision = int_flag(p, "rev")?.max(0);
    let order_name = p.value("order").unwrap_or("");
    let mut order = match order_name.to_uppercase().as_str() {
        "ASCEND" => range_request::SortOrder::Ascend,
        "DESCEND" => range_request::SortOrder::Descend,
        "" => range_request::SortOrder::None,
        _ => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("bad sort order {order_name}"),
            ))
        }
    };
    let target_name = p.value("sort-by").unwrap_or("");
    let target = match target_name.to_uppercase().as_str() {
        "CREATE" => range_request::SortTarget::Create,
        "KEY" | "" => range_request::SortTarget::Key,
        "MODIFY" => range_request::SortTarget::Mod,
        "VALUE" => range_request::SortTarget::Value,
        "VERSION" => range_request::SortTarget::Version,
        _ => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("bad sort target {target_name}"),
            ))
        }
    };
    // clientv3.WithSort: ascending by key is the natural order, so it is not sent.
    if target == range_request::SortTarget::Key && order == range_request::SortOrder::Ascend {
        order = range_request::SortOrder::None;
    }
    req.sort_order = order as i32;
    req.sort_target = target as i32;
    apply_range_flags(&mut req.key, &mut req.range_end, prefix, from_key);
    req.keys_only = p.bool("keys-only")?;
    req.count_only = p.bool("count-only")?;
    // etcdctl 3.5+: the revision filters, each sent only when positive.
    let (min_create, max_create) = (int_flag(p, "min-create-rev")?, int_flag(p, "max-create-rev")?);
    let (min_mod, max_mod) = (int_flag(p, "min-mod-rev")?, int_flag(p, "max-mod-rev")?);
    for (what, min, max) in [
        ("CreateRev", min_create, max_create),
        ("ModRev", min_mod, max_mod),
    ] {
        if max > 0 && min > max {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("getMin{what}(={min}) > getMax{what}(={max})"),
            ));
        }
    }
    req.min_create_revision = min_create.max(0);
    req.max_create_revision = max_create.max(0);
    req.min_mod_revision = min_mod.max(0);
    req.max_mod_revision = max_mod.max(0);
    Ok(req)
}

/// clientv3's `WithPrefix` / `WithFromKey` on an op's key and range end.
pub(super) fn apply_range_flags(key: &mut Vec<u8>, end: &mut Vec<u8>, prefix: bool, from_key: bool) {
    if prefix {
        if key.is_empty() {
            *key = vec![0];
            *end = vec![0];
        } else {
            *end = prefix_end(key);
        }
    }
    if from_key {
        if key.is_empty() {
            *key = vec![0];
        }
        *end = vec![0];
    }
}

/// The range end given as the second argument of `get` and `del` (empty without one),
/// which `--prefix` and `--from-key` leave no room for.
fn range_end_arg(p: &Parsed, prefix: bool, from_key: bool) -> Result<Vec<u8>, CtlError> {
    let Some(end) = p.args.get(1) else {
        return Ok(Vec::new());
    };
    if prefix || from_key {
        return Err(CtlError::bad_args(
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
        ));
    }
    Ok(end.clone().into_bytes())
}

/// `getDelOp`.
pub fn del_request(p: &Parsed) -> Result<DeleteRangeRequest, CtlError> {
    if p.args.is_empty() || p.args.len() > 2 {
        return Err(CtlError::bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    let (prefix, from_key) = (p.bool("prefix")?, p.bool("from-key")?);
    if prefix && from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let mut req = DeleteRangeRequest {
        key: p.args[0].clone().into_bytes(),
        range_end: range_end_arg(p, prefix, from_key)?,
        ..Default::default()
    };
    apply_range_flags(&mut req.key, &mut req.range_end, prefix, from_key);
    req.prev_kv = p.bool("prev-kv")?;
    Ok(req)
}

fn read_stdin_all() -> Option<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).ok()?;
    Some(s)
}

pub(super) fn style(ctx: &Ctx) -> KvStyle {
    KvStyle {
        hex: ctx.globals.hex,
        value_only: false,
    }
}

pub async fn put(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let req = put_request(p, &mut read_stdin_all)?;
    let mut kv = KvClient::new(ctx.channel().await?);
    let r = ctx.call(kv.put(req)).await?;
    print::respond(ctx.globals.format, &r, |text| {
        let mut s = String::new();
        match text {
            Text::Simple => {
                s.push_str("OK\n");
                if let Some(kv) = &r.prev_kv {
                    print::simple_kv(&mut s, style(ctx), kv);
                }
            }
            Text::Json => s = print::put_json(&r) + "\n",
            Text::Fields => print::fields_put(&mut s, &r),
        }
        s
    })
}

pub async fn get(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let req = get_request(p)?;
    let value_only = p.bool("print-value-only")?;
    if value_only && ctx.globals.format != Format::Simple {
        return Err(CtlError::bad_args(
            "print-value-only is only for `--write-out=simple`",
        ));
    }
    if req.count_only && ctx.globals.format != Format::Fields {
        return Err(CtlError::bad_args(
            "--count-only is only for `--write-out=fields`",
        ));
    }
    let mut kv = KvClient::new(ctx.channel().await?);
    let r = ctx.call(kv.range(req)).await?;
    print_range(ctx, &r, value_only)
}

/// A Range answer as etcdctl's `display.Get` prints it in the chosen format (`get`,
/// and `lock` and `elect`, which print their key that way).
pub fn print_range(ctx: &Ctx, r: &RangeResponse, value_only: bool) -> Result<(), CtlError> {
    print::respond(ctx.globals.format, r, |text| {
        let mut s = String::new();
        match text {
            Text::Simple => {
                let st = KvStyle {
                    hex: ctx.globals.hex,
                    value_only,
                };
                r.kvs.iter().for_each(|kv| print::simple_kv(&mut s, st, kv));
            }
            Text::Json => s = print::range_json(r) + "\n",
            Text::Fields => print::fields_range(&mut s, r),
        }
        s
    })
}

pub async fn del(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let req = del_request(p)?;
    let mut kv = KvClient::new(ctx.channel().await?);
    let r = ctx.call(kv.delete_range(req)).await?;
    print::respond(ctx.globals.format, &r, |text| {
        let mut s = String::new();
        match text {
            Text::Simple => {
                s.push_str(&format!("{}\n", r.deleted));
                r.prev_kvs
                    .iter()
                    .for_each(|kv| print::simple_kv(&mut s, style(ctx), kv));
            }
            Text::Json => s = print::del_json(&r) + "\n",
            Text::Fields => print::fields_del(&mut s, &r),
        }
        s
    })
}

/// Reads a `txn` request from `input` in etcdctl's grammar.
pub fn read_txn(input: &mut dyn BufRead, interactive: bool) -> Result<TxnRequest, CtlError> {
    let eof = || CtlError::new(EXIT_INVALID_INPUT, "EOF");
    let read_line = |input: &mut dyn BufRead| -> Result<String, CtlError> {
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(_) if line.ends_with('\n') => Ok(line.trim().to_string()),
            Ok(_) => Err(eof()),
            Err(e) => Err(CtlError::new(EXIT_INVALID_INPUT, e.to_string())),
        }
    };
    let mut req = TxnRequest::default();
    if interactive {
        out("compares:\n");
    }
    loop {
        let line = read_line(input)?;
        if line.is_empty() {
            break;
        }
        req.compare.push(super::txn_parse::parse_compare(&line)?);
    }
    for (i, prompt) in [
        "success requests (get, put, del):\n",
        "failure requests (get, put, del):\n",
    ]
    .iter()
    .enumerate()
    {
        if interactive {
            out(prompt);
        }
        loop {
            let line = read_line(input)?;
            if line.is_empty() {
                break;
            }
            let op = parse_request_op(&line)?;
            if i == 0 {
                req.success.push(op);
            } else {
                req.failure.push(op);
            }
        }
    }
    Ok(req)
}

/// `parseRequestUnion`: one `get`/`put`/`del` line inside a txn.
fn parse_request_op(line: &str) -> Result<RequestOp, CtlError> {
    let words = super::txn_parse::argify(line)?;
    if words.len() < 2 {
        return Err(CtlError::new(
            EXIT_INVALID_INPUT,
            format!("invalid txn compare request: {line}"),
        ));
    }
    let invalid = || CtlError::new(EXIT_INVALID_INPUT, format!("invalid txn request: {line}"));
    let flags: &[FlagSpec] = match words[0].as_str() {
        "get" => GET_FLAGS,
        "put" => PUT_FLAGS,
        "del" => DEL_FLAGS,
        _ => return Err(invalid()),
    };
    let (_, parsed) =
        super::args::parse(&words[1..], |_| false, |_| flags.to_vec()).map_err(|_| invalid())?;
    let request = match words[0].as_str() {
        "get" => request_op::Request::RequestRange(get_request(&parsed)?),
        "put" => request_op::Request::RequestPut(put_request(&parsed, &mut || None)?),
        _ => request_op::Request::RequestDeleteRange(del_request(&parsed)?),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

pub async fn txn(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    if !p.args.is_empty() {
        return Err(CtlError::bad_args("txn command does not accept argument"));
    }
    let req = {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        read_txn(&mut lock, p.bool("interactive")?)?
    };
    let mut kv = KvClient::new(ctx.channel().await?);
    let r = ctx.call(kv.txn(req)).await?;
    print::respond(ctx.globals.format, &r, |text| {
        let mut s = String::new();
        match text {
            Text::Simple => print::simple_txn(&mut s, style(ctx), &r),
            Text::Json => s = print::txn_json(&r) + "\n",
            Text::Fields => print::fields_txn(&mut s, &r),
        }
        s
    })
}

pub async fn compaction(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    if p.args.len() != 1 {
        return Err(CtlError::bad_args("compaction command needs 1 argument"));
    }
    let revision = parse_i64(&p.args[0], 10).map_err(|e| CtlError::new(EXIT_ERROR, e))?;
    let mut kv = KvClient::new(ctx.channel().await?);
    ctx.call(kv.compact(CompactionRequest {
        revision,
        physical: p.bool("physical")?,
    }))
    .await?;
    out(&format!("compacted revision {revision}\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::error::EXIT_BAD_ARGS;
    use super::*;
    use detcd_proto::etcdserverpb::compare;

    fn parsed(flags: &[FlagSpec], args: &[&str]) -> Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        super::super::args::parse(&args, |_| false, |_| flags.to_vec())
            .unwrap()
            .1
    }

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"a"), b"b");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\x00");
    }

    #[test]
    fn get_builds_clientv3_ranges() {
        let r = get_request(&parsed(GET_FLAGS, &["", "--prefix"])).unwrap();
        assert_eq!((r.key, r.range_end), (vec![0], vec![0]));
        let r = get_request(&parsed(GET_FLAGS, &["a", "--from-key", "--limit", "2"])).unwrap();
        assert_eq!((r.key, r.range_end, r.limit), (b"a".to_vec(), vec![0], 2));
        let r = get_request(&parsed(GET_FLAGS, &["a", "--sort-by=KEY", "--order=ASCEND"])).unwrap();
        assert_eq!(r.sort_order, 0);
        assert_eq!(
            get_request(&parsed(GET_FLAGS, &["a", "--consistency=x"]))
                .unwrap_err()
                .message,
            "unknown consistency flag \"x\""
        );
        assert_eq!(
            get_request(&parsed(GET_FLAGS, &["a", "--sort-by=FOO"]))
                .unwrap_err()
                .message,
            "bad sort target FOO"
        );
        assert_eq!(
            get_request(&parsed(GET_FLAGS, &[])).unwrap_err().code,
            EXIT_BAD_ARGS
        );
    }

    #[test]
    fn get_and_del_take_a_range_end_unless_prefix_or_from_key() {
        let r = get_request(&parsed(GET_FLAGS, &["a", "c"])).unwrap();
        assert_eq!((r.key, r.range_end), (b"a".to_vec(), b"c".to_vec()));
        let r = del_request(&parsed(DEL_FLAGS, &["a", "c"])).unwrap();
        assert_eq!((r.key, r.range_end), (b"a".to_vec(), b"c".to_vec()));
        let too_many = "too many arguments, only accept one argument when `--prefix` or `--from-key` is set";
        for flag in ["--prefix", "--from-key"] {
            let e = get_request(&parsed(GET_FLAGS, &["a", "c", flag])).unwrap_err();
            assert_eq!((e.code, e.message.as_str()), (EXIT_BAD_ARGS, too_many));
            let e = del_request(&parsed(DEL_FLAGS, &["a", "c", flag])).unwrap_err();
            assert_eq!((e.code, e.message.as_str()), (EXIT_BAD_ARGS, too_many));
        }
    }

    #[test]
    fn put_reads_lease_in_hex() {
        let r = put_request(&parsed(PUT_FLAGS, &["k", "v", "--lease=1f"]), &mut || None).unwrap();
        assert_eq!(r.lease, 0x1f);
        let e = put_request(&parsed(PUT_FLAGS, &["k", "v", "--lease=zz"]), &mut || None).unwrap_err();
        assert_eq!(
            e.message,
            "bad lease ID (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"
        );
        assert!(put_request(&parsed(PUT_FLAGS, &["k"]), &mut || None).is_err());
    }

    #[test]
    fn txn_grammar_reads_three_sections() {
        let input = "mod(\"k1\") > \"0\"\n\nput k1 \"v 2\"\nget k1\n\nput k1 f\n\n";
        let req = read_txn(&mut input.as_bytes(), false).unwrap();
        assert_eq!(req.compare.len(), 1);
        assert_eq!(req.compare[0].result, compare::CompareResult::Greater as i32);
        assert_eq!(req.success.len(), 2);
        assert_eq!(req.failure.len(), 1);
        let e = read_txn(&mut "\n\nput k1 f\n".as_bytes(), false).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (EXIT_INVALID_INPUT, "EOF"));
        let e = read_txn(&mut "\nput\n\n\n".as_bytes(), false).unwrap_err();
        assert_eq!(e.message, "invalid txn compare request: put");
        let e = read_txn(&mut "\nfoo x\n\n\n".as_bytes(), false).unwrap_err();
        assert_eq!(e.message, "invalid txn request: foo x");
    }
}
