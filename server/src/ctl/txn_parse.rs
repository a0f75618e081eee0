//! The `etcdctl txn` input grammar (`etcdctl/ctlv3/command/txn_command.go`): compare lines
//! such as `mod("k") > "0"`, a blank line, success operations written like the `get`,
//! `put` and `del` commands, a blank line, failure operations, a blank line.

use detcd_proto::etcdserverpb::{compare, Compare};

use super::error::{CtlError, EXIT_INVALID_INPUT};

/// Parses one compare line, with etcdctl's error messages.
pub fn parse_compare(line: &str) -> Result<Compare, CtlError> {
    let malformed = || CtlError::new(EXIT_INVALID_INPUT, format!("malformed comparison: {line}"));
    let (target, rest) = line.split_once('(').ok_or_else(malformed)?;
    // fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val)
    let mut key = String::new();
    let mut op = String::new();
    let mut val = String::new();
    let mut n = 0;
    let scanned = (|| {
        let (k, r) = go_unquote_prefix(rest.trim_start())?;
        key = k;
        n = 1;
        let r = r.strip_prefix(')')?;
        let r = r.trim_start_matches([' ', '\t']);
        let end = r.find(char::is_whitespace).unwrap_or(r.len());
        if end == 0 {
            return None;
        }
        op = r[..end].to_string();
        n = 2;
        let (v, _) = go_unquote_prefix(r[end..].trim_start_matches([' ', '\t']))?;
        val = v;
        n = 3;
        Some(())
    })();
    if scanned.is_none() || n != 3 {
        return Err(CtlError::new(
            EXIT_INVALID_INPUT,
            format!(
                "malformed comparison: {line}; got {target}({}) {op} {}",
                go_quote_str(&key),
                go_quote_str(&val)
            ),
        ));
    }
    let result = match op.as_str() {
        "=" => compare::CompareResult::Equal,
        "!=" => compare::CompareResult::NotEqual,
        ">" => compare::CompareResult::Greater,
        "<" => compare::CompareResult::Less,
        _ => {
            return Err(CtlError::new(
                EXIT_INVALID_INPUT,
                format!("malformed comparison: {line} (unknown result op {op:?})"),
            ))
        }
    };
    let invalid = || CtlError::new(EXIT_INVALID_INPUT, format!("invalid txn compare request: {line}"));
    let int = |radix: u32| i64::from_str_radix(&val, radix).map_err(|_| invalid());
    let (target, union) = match target {
        "ver" | "version" => (
            compare::CompareTarget::Version,
            compare::TargetUnion::Version(int(10)?),
        ),
        "c" | "create" => (
            compare::CompareTarget::Create,
            compare::TargetUnion::CreateRevision(int(10)?),
        ),
        "m" | "mod" => (
            compare::CompareTarget::Mod,
            compare::TargetUnion::ModRevision(int(10)?),
        ),
        "val" | "value" => (
            compare::CompareTarget::Value,
            compare::TargetUnion::Value(val.clone().into_bytes()),
        ),
        "lease" => (
            compare::CompareTarget::Lease,
            compare::TargetUnion::Lease(int(16)?),
        ),
        other => {
            return Err(CtlError::new(
                EXIT_INVALID_INPUT,
                format!("malformed comparison: {line} (unknown target {other})"),
            ))
        }
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key: key.into_bytes(),
        range_end: Vec::new(),
        target_union: Some(union),
    })
}

/// etcdctl's `argify`: splits a line into words, honouring "double" (Go escapes) and
/// 'single' quotes.
pub fn argify(line: &str) -> Result<Vec<String>, CtlError> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'"' {
            let mut j = i + 1;
            let mut closed = false;
            while j < b.len() {
                match b[j] {
                    b'\\' => j += 2,
                    b'"' => {
                        closed = true;
                        break;
                    }
                    _ => j += 1,
                }
            }
            if closed {
                let (s, _) = go_unquote_prefix(&line[i..=j])
                    .ok_or_else(|| CtlError::new(EXIT_INVALID_INPUT, "invalid syntax"))?;
                out.push(s);
                i = j + 1;
            } else {
                i += 1;
            }
            continue;
        }
        if c == b'\'' {
            match line[i + 1..].find('\'') {
                Some(end) => {
                    out.push(line[i + 1..i + 1 + end].to_string());
                    i = i + 2 + end;
                }
                None => i += 1,
            }
            continue;
        }
        let end = line[i..]
            .find(|ch: char| ch.is_whitespace())
            .map(|e| i + e)
            .unwrap_or(line.len());
        out.push(line[i..end].to_string());
        i = end;
    }
    Ok(out)
}

/// Reads one Go quoted string (`"..."` with escapes or a `raw` back-quoted one) from the
/// start of `s`; returns it and the rest.
pub fn go_unquote_prefix(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    let (_, q) = chars.next()?;
    if q == '`' {
        let end = s[1..].find('`')?;
        return Some((s[1..1 + end].to_string(), &s[2 + end..]));
    }
    if q != '"' {
        return None;
    }
    let mut out: Vec<u8> = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some((String::from_utf8_lossy(&out).into_owned(), &s[i + 1..])),
            b'\n' => return None,
            b'\\' => {
                let e = *bytes.get(i + 1)?;
                i += 2;
                match e {
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'\\' => out.push(b'\\'),
                    b'"' => out.push(b'"'),
                    b'x' => {
                        let h = s.get(i..i + 2)?;
                        out.push(u8::from_str_radix(h, 16).ok()?);
                        i += 2;
                    }
                    b'0'..=b'7' => {
                        let o = s.get(i - 1..i + 2)?;
                        out.push(u8::from_str_radix(o, 8).ok()?);
                        i += 2;
                    }
                    b'u' | b'U' => {
                        let len = if e == b'u' { 4 } else { 8 };
                        let h = s.get(i..i + len)?;
                        let c = char::from_u32(u32::from_str_radix(h, 16).ok()?)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += len;
                    }
                    _ => return None,
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    None
}

fn go_quote_str(s: &str) -> String {
    super::format::go_quote(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_parse_like_etcdctl() {
        let c = parse_compare(r#"mod("k1") > "0""#).unwrap();
        assert_eq!(c.key, b"k1");
        assert_eq!(c.result, compare::CompareResult::Greater as i32);
        assert_eq!(c.target_union, Some(compare::TargetUnion::ModRevision(0)));
        let c = parse_compare(r#"val("k1") != "x y""#).unwrap();
        assert_eq!(c.target_union, Some(compare::TargetUnion::Value(b"x y".to_vec())));
        let c = parse_compare(r#"lease("k") = "1f""#).unwrap();
        assert_eq!(c.target_union, Some(compare::TargetUnion::Lease(0x1f)));
    }

    #[test]
    fn compare_errors_match_etcdctl_text() {
        assert_eq!(
            parse_compare("bogus").unwrap_err().message,
            "malformed comparison: bogus"
        );
        assert_eq!(
            parse_compare(r#"val(k1) = "a""#).unwrap_err().message,
            r#"malformed comparison: val(k1) = "a"; got val("")  """#
        );
        assert_eq!(
            parse_compare(r#"val("k1") = a"#).unwrap_err().message,
            r#"malformed comparison: val("k1") = a; got val("k1") = """#
        );
        assert_eq!(
            parse_compare(r#"ver("k1") = "x""#).unwrap_err().message,
            r#"invalid txn compare request: ver("k1") = "x""#
        );
    }

    #[test]
    fn argify_handles_quotes() {
        assert_eq!(argify(r#"put k1 "v 2""#).unwrap(), vec!["put", "k1", "v 2"]);
        assert_eq!(argify("put 'a b' c\\td").unwrap(), vec!["put", "a b", "c\\td"]);
        assert_eq!(argify(r#"put "a\tb" x"#).unwrap(), vec!["put", "a\tb", "x"]);
    }
}
