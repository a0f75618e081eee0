//! Times as Go's `encoding/json` writes a UTC `time.Time` (RFC 3339 with the
//! fraction's trailing zeros left out): the v2 API's expirations and the peer
//! probing answer's `Now`; and zap's ISO 8601 times of etcd's log lines.

/// `unix_ms` milliseconds since the epoch, in RFC 3339 UTC.
pub fn rfc3339(unix_ms: u64) -> String {
    rfc3339_nanos(u128::from(unix_ms) * 1_000_000)
}

/// `unix_nanos` nanoseconds since the epoch, in RFC 3339 UTC (Go's `RFC3339Nano`).
pub fn rfc3339_nanos(unix_nanos: u128) -> String {
    let secs = (unix_nanos / 1_000_000_000) as u64;
    let nanos = (unix_nanos % 1_000_000_000) as u32;
    let mut frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}")
    };
    while frac.ends_with('0') {
        frac.pop();
    }
    format!("{}{frac}Z", date_time(secs))
}

/// zap's ISO 8601 time as etcd 3.4 and 3.5 write it, in UTC: `2021-08-04T09:12:01.123Z`.
pub fn iso8601(epoch_millis: u64) -> String {
    format!("{}.{:03}Z", date_time(epoch_millis / 1000), epoch_millis % 1000)
}

/// `secs` since the epoch as `YYYY-MM-DDThh:mm:ss` in UTC.
fn date_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm: the
    // proleptic Gregorian calendar in 400-year eras).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_lose_their_trailing_zeros_as_go_writes_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_120), "2023-11-14T22:13:20.12Z");
        assert_eq!(
            rfc3339_nanos(1_700_000_000_000_000_001),
            "2023-11-14T22:13:20.000000001Z"
        );
    }
}
