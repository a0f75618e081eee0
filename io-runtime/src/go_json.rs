//! A JSON string as Go's `encoding/json` writes it: HTML-safe escaping (`<`, `>`,
//! `&`, U+2028 and U+2029 as `\uXXXX`), the short escapes for `\n`, `\r` and
//! `\t`, other control characters as `\u00XX`. The peer port's answers, the v2
//! API and detcdctl's JSON output all write strings this way.

/// `s` as a quoted JSON string, escaped as Go's encoder escapes it.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
