//! The text encodings etcdctl's printers get from Go's standard library and its two
//! helper packages, reproduced byte for byte: `encoding/json` (with `omitempty` and HTML
//! escaping), `strconv.Quote` (`%q`), `time.Duration.String`, `go-humanize.Bytes` and
//! olekukonko/tablewriter's boxed tables as etcdctl configures them.

/// Builds one JSON object the way `encoding/json` marshals a Go struct: fields in
/// declaration order, `omitempty` fields left out when zero.
#[derive(Debug, Default)]
pub struct JsonObject {
    body: String,
}

impl JsonObject {
    pub fn new() -> Self {
        Self::default()
    }

    /// A field whose value is already JSON text.
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        self.body.push_str(&json_string(key));
        self.body.push(':');
        self.body.push_str(json);
        self
    }

    pub fn raw_opt(self, key: &str, json: Option<String>) -> Self {
        match json {
            Some(j) => self.raw(key, &j),
            None => self,
        }
    }

    pub fn int(self, key: &str, v: impl Into<i128>) -> Self {
        self.raw(key, &v.into().to_string())
    }

    /// `omitempty` integer.
    pub fn int_oe(self, key: &str, v: impl Into<i128>) -> Self {
        let v = v.into();
        if v == 0 {
            self
        } else {
            self.raw(key, &v.to_string())
        }
    }

    pub fn boolean(self, key: &str, v: bool) -> Self {
        self.raw(key, if v { "true" } else { "false" })
    }

    pub fn bool_oe(self, key: &str, v: bool) -> Self {
        if v {
            self.raw(key, "true")
        } else {
            self
        }
    }

    pub fn string(self, key: &str, v: &str) -> Self {
        self.raw(key, &json_string(v))
    }

    pub fn string_oe(self, key: &str, v: &str) -> Self {
        if v.is_empty() {
            self
        } else {
            self.string(key, v)
        }
    }

    /// `omitempty` `[]byte`: base64 text.
    pub fn bytes_oe(self, key: &str, v: &[u8]) -> Self {
        if v.is_empty() {
            self
        } else {
            self.raw(key, &json_string(&base64(v)))
        }
    }

    /// `omitempty` slice: left out when empty, else `[a,b]`.
    pub fn array_oe(self, key: &str, items: &[String]) -> Self {
        if items.is_empty() {
            self
        } else {
            self.raw(key, &json_array(items))
        }
    }

    pub fn finish(self) -> String {
        format!("{{{}}}", self.body)
    }
}

pub fn json_array(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

/// A JSON string as `encoding/json` writes it (HTML-safe escaping).
pub use detcd_io::go_json::string as json_string;

/// Standard base64 with padding, as `encoding/json` encodes `[]byte`.
pub fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Go's `strconv.Quote` over the bytes of a Go string.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut rest = bytes;
    while !rest.is_empty() {
        let (c, len) = decode_utf8(rest);
        match c {
            None => out.push_str(&format!("\\x{:02x}", rest[0])),
            Some('"') => out.push_str("\\\""),
            Some('\\') => out.push_str("\\\\"),
            Some('\u{7}') => out.push_str("\\a"),
            Some('\u{8}') => out.push_str("\\b"),
            Some('\u{c}') => out.push_str("\\f"),
            Some('\n') => out.push_str("\\n"),
            Some('\r') => out.push_str("\\r"),
            Some('\t') => out.push_str("\\t"),
            Some('\u{b}') => out.push_str("\\v"),
            Some(c) if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            Some(c) if ((c as u32) >= 0x80 && (c as u32) < 0xa0) || c == '\u{ad}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            Some(c) => out.push(c),
        }
        rest = &rest[len..];
    }
    out.push('"');
    out
}

/// The first UTF-8 character of `bytes` and its length, or `None` and 1 for an invalid byte.
fn decode_utf8(bytes: &[u8]) -> (Option<char>, usize) {
    let want = match bytes[0] {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return (None, 1),
    };
    if bytes.len() < want {
        return (None, 1);
    }
    match std::str::from_utf8(&bytes[..want]) {
        Ok(s) => (s.chars().next(), want),
        Err(_) => (None, 1),
    }
}

/// Go's `fmt.Print` of a `[]string`: `[a b c]`.
pub fn go_string_slice(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// `go-humanize.Bytes`: SI units, one decimal below 10.
pub fn humanize_bytes(size: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if size < 10 {
        return format!("{size} B");
    }
    let e = ((size as f64).ln() / 1000f64.ln()).floor();
    let suffix = UNITS[e as usize];
    let val = ((size as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{} {suffix}", go_fixed(val, 1))
    } else {
        format!("{} {suffix}", go_fixed(val, 0))
    }
}

/// `%.Nf` with Go's round-half-to-even on the exact binary value.
fn go_fixed(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

/// Go's `time.Duration.String()` for a duration in nanoseconds.
pub fn go_duration(nanos: u128) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos, 1_000_000));
    }
    let total_secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let hours = total_secs / 3600;
    let mins = (total_secs % 3600) / 60;
    let secs = trim_fraction((total_secs % 60) * 1_000_000_000 + frac, 1_000_000_000);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || mins > 0 {
        out.push_str(&format!("{mins}m"));
    }
    out.push_str(&format!("{secs}s"));
    out
}

/// `value / unit` with the fraction's trailing zeros dropped.
fn trim_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A table as olekukonko/tablewriter renders it with etcdctl's settings: headers upper-cased
/// and centred, cells right-aligned, one space of padding, `+`/`-`/`|` borders.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = {
        let mut l = String::from("+");
        for w in &widths {
            l.push_str(&"-".repeat(w + 2));
            l.push('+');
        }
        l.push('\n');
        l
    };
    let mut out = line.clone();
    out.push('|');
    for (h, w) in header.iter().zip(&widths) {
        let gap = w - h.chars().count();
        let left = gap / 2;
        out.push_str(&format!(" {}{}{} |", " ".repeat(left), h, " ".repeat(gap - left)));
    }
    out.push('\n');
    out.push_str(&line);
    for row in rows {
        out.push('|');
        for (i, w) in widths.iter().enumerate() {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            out.push_str(&format!(" {}{} |", " ".repeat(w - cell.chars().count()), cell));
        }
        out.push('\n');
    }
    out.push_str(&line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_and_base64() {
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"bar2"), "YmFyMg==");
        assert_eq!(base64(b"c"), "Yw==");
        assert_eq!(base64(b""), "");
        assert_eq!(
            json_string("a<b>&\"\n\u{1}"),
            r#""a\u003cb\u003e\u0026\"\n\u0001""#
        );
        let o = JsonObject::new()
            .int("a", 1u64)
            .int_oe("b", 0i64)
            .string_oe("c", "")
            .bool_oe("d", true)
            .finish();
        assert_eq!(o, r#"{"a":1,"d":true}"#);
    }

    #[test]
    fn go_quote_matches_strconv_quote() {
        assert_eq!(go_quote(b"foo"), "\"foo\"");
        assert_eq!(go_quote(b"a\"b\\c\td\n"), r#""a\"b\\c\td\n""#);
        assert_eq!(go_quote(b"\x00\xff"), r#""\x00\xff""#);
        assert_eq!(go_quote("é".as_bytes()), "\"é\"");
    }

    #[test]
    fn humanize_matches_go_humanize() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(9), "9 B");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(25000), "25 kB");
        assert_eq!(humanize_bytes(1500), "1.5 kB");
        assert_eq!(humanize_bytes(2_147_483_648), "2.1 GB");
    }

    #[test]
    fn durations_match_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(999), "999ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(2_085_634), "2.085634ms");
        assert_eq!(go_duration(5_001_169_402), "5.001169402s");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
    }

    #[test]
    fn table_matches_tablewriter() {
        let t = table(
            &["ID", "Status", "Name"],
            &[vec!["97628d34edfe87d4".into(), "started".into(), "n1".into()]],
        );
        let want = "\
+------------------+---------+------+
|        ID        | STATUS  | NAME |
+------------------+---------+------+
| 97628d34edfe87d4 | started |   n1 |
+------------------+---------+------+
";
        assert_eq!(t, want);
    }
}
