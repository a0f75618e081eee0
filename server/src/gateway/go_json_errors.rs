//! A request body's JSON error in the words etcd's gateway uses (Go's
//! `encoding/json` and grpc-gateway's jsonpb), so a script that matches etcd's
//! message sees the same text: `unexpected EOF`, `invalid character 'x' looking for
//! beginning of value`, `json: cannot unmarshal bool into Go value of type int64`,
//! `illegal base64 data at input byte 4`.
//!
//! The parse itself is serde_json's (through prost-reflect); this only rewords its
//! error. Syntax errors are located by serde_json; the phrase after the character
//! follows from the last significant byte before it, as Go's scanner decides it.
//! What is not recognised keeps serde_json's text.

use serde_json::error::Category;

/// Go's text for `error`, raised while parsing `json` into a message.
pub fn reword(error: &serde_json::Error, json: &[u8]) -> String {
    match error.classify() {
        Category::Eof => "unexpected EOF".to_string(),
        Category::Syntax => syntax(error, json).unwrap_or_else(|| strip_position(error)),
        Category::Data => fraction(error, json).unwrap_or_else(|| data(&strip_position(error))),
        Category::Io => strip_position(error),
    }
}

/// serde_json's message without its " at line L column C".
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The byte offset of serde_json's (1-based) line and column in `json`.
fn offset(json: &[u8], line: usize, column: usize) -> Option<usize> {
    let mut at = 0;
    for _ in 1..line {
        at += json.get(at..)?.iter().position(|b| *b == b'\n')? + 1;
    }
    Some(at + column.checked_sub(1)?)
}

fn syntax(error: &serde_json::Error, json: &[u8]) -> Option<String> {
    let at = offset(json, error.line(), error.column())?;
    // serde_json reports the column of the offending byte, or of the byte before it
    // when it stopped after a complete token: take the first significant byte there.
    let bad = json
        .get(at..)?
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| at + i)?;
    let c = char::from(json[bad]);
    let before = json[..bad].iter().rev().find(|b| !b.is_ascii_whitespace());
    let phrase = match before {
        None | Some(b':') | Some(b'[') => "looking for beginning of value",
        Some(b'{') | Some(b',') if in_object(&json[..bad]) => "looking for beginning of object key string",
        Some(b',') => "looking for beginning of value",
        Some(b'"') if ends_key(&json[..bad]) => "after object key",
        _ if in_object(&json[..bad]) => "after object key:value pair",
        _ => "after array element",
    };
    Some(format!("invalid character {} {phrase}", go_quote(c)))
}

/// Whether the innermost open bracket of `prefix` is an object's.
fn in_object(prefix: &[u8]) -> bool {
    let mut stack = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for &b in prefix {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => stack.push(b),
            b'}' | b']' => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack.last() == Some(&b'{')
}

/// Whether `prefix` ends with an object key (a string right after `{` or `,`).
fn ends_key(prefix: &[u8]) -> bool {
    let Some(close) = prefix.iter().rposition(|b| *b == b'"') else {
        return false;
    };
    let Some(open) = prefix[..close].iter().rposition(|b| *b == b'"') else {
        return false;
    };
    matches!(
        prefix[..open].iter().rev().find(|b| !b.is_ascii_whitespace()),
        Some(b'{') | Some(b',')
    ) && in_object(&prefix[..open])
}

/// Go's `%q` of a character as `invalid character` prints it.
fn go_quote(c: char) -> String {
    match c {
        '\'' => "'\\''".to_string(),
        c if c.is_ascii_graphic() || c == ' ' => format!("'{c}'"),
        c => format!("'\\x{:02x}'", u32::from(c)),
    }
}

/// A number with a fraction where an integer goes (prost-reflect's "expected integer
/// value", raised just after the number): Go names the number, and etcd's integer
/// fields are 64-bit.
fn fraction(error: &serde_json::Error, json: &[u8]) -> Option<String> {
    if strip_position(error) != "expected integer value" {
        return None;
    }
    let numeric = |b: &u8| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-');
    let at = offset(json, error.line(), error.column())?.min(json.len());
    let end = at + json[at..].iter().take_while(|b| numeric(b)).count();
    let start = json[..end].iter().rposition(|b| !numeric(b)).map_or(0, |i| i + 1);
    let number = std::str::from_utf8(&json[start..end]).ok()?;
    (!number.is_empty())
        .then(|| format!("json: cannot unmarshal number {number} into Go value of type int64"))
}

/// serde's "invalid type: X, expected Y" and the base64 decoder's errors in Go's words.
fn data(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            if let (Some(found), Some(go_type)) = (json_kind(found), go_type(expected)) {
                return format!("json: cannot unmarshal {found} into Go value of type {go_type}");
            }
        }
    }
    if let Some(at) = message.find("offset ") {
        let digits: String = message[at + 7..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if message.contains("base64") && !digits.is_empty() {
            return format!("illegal base64 data at input byte {digits}");
        }
    }
    message.to_string()
}

/// The JSON kind serde names (`integer \`1\``, `boolean \`true\``, `sequence`, ...)
/// as Go's unmarshal error names it.
fn json_kind(found: &str) -> Option<String> {
    let word = found.split_whitespace().next()?;
    Some(match word {
        "integer" => "number".to_string(),
        "floating" => {
            let value = found.split('`').nth(1).unwrap_or_default();
            format!("number {value}")
        }
        "boolean" => "bool".to_string(),
        "string" => "string".to_string(),
        "sequence" => "array".to_string(),
        "map" => "object".to_string(),
        _ => return None,
    })
}

/// The Go type etcd's generated structs hold for what serde expected.
fn go_type(expected: &str) -> Option<&'static str> {
    let e = expected.to_ascii_lowercase();
    Some(if e.contains("base64") || e.contains("bytes") {
        "[]uint8"
    } else if e.contains("map") || e.contains("struct") || e.contains("message") {
        "map[string]json.RawMessage"
    } else if e.contains("unsigned") && e.contains("64") {
        "uint64"
    } else if e.contains("64") {
        "int64"
    } else if e.contains("unsigned") || e.contains("32") {
        "int32"
    } else if e.contains("bool") {
        "bool"
    } else if e.contains("string") {
        "string"
    } else {
        return None;
    })
}
