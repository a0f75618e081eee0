//! `--debug`: etcdctl 3.4 prints every global flag as the `ETCDCTL_*` variable that
//! sets it, with its value, to stderr before running the command (`global.go`); grpc-go's
//! own debug log that follows has no detcdctl equivalent.

use std::time::Duration;

use super::args::{FlagSpec, Parsed};

/// Go's `time.Duration.String`: `0s`, `500ms`, `1.5s`, `1m30s`, `2h0m0s`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000_000_000 {
        let (unit, scale) = match ns {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", decimal(ns, scale));
    }
    let seconds = decimal(ns % 60_000_000_000, 1_000_000_000);
    let minutes = ns / 60_000_000_000;
    match (minutes / 60, minutes % 60) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `value / scale` with the fraction's trailing zeros dropped.
fn decimal(value: u128, scale: u128) -> String {
    let (whole, fraction) = (value / scale, value % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The value etcdctl prints for a flag not given.
fn default_value(long: &str) -> &'static str {
    match long {
        "command-timeout" => "5s",
        "dial-timeout" | "keepalive-time" => "2s",
        "keepalive-timeout" => "6s",
        "endpoints" => "127.0.0.1:2379",
        "write-out" => "simple",
        "insecure-discovery" | "insecure-transport" => "true",
        "debug" | "hex" | "insecure-skip-tls-verify" => "false",
        _ => "",
    }
}

/// The lines `--debug` prints: every global flag (but `--help`), sorted by name, with
/// the value given (flag or variable) or its default, as pflag formats it.
pub fn flag_lines(globals: &[FlagSpec], merged: &Parsed) -> String {
    let mut names: Vec<&str> = globals.iter().map(|f| f.long).filter(|n| *n != "help").collect();
    names.sort_unstable();
    let mut out = String::new();
    for name in names {
        let raw = merged.value(name).unwrap_or(default_value(name));
        let value = match name {
            "endpoints" => format!(
                "[{}]",
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "command-timeout" | "dial-timeout" | "keepalive-time" | "keepalive-timeout" => {
                super::parse_go_duration(raw).map_or_else(|| raw.to_string(), go_duration)
            }
            "debug" | "hex" | "insecure-discovery" | "insecure-transport" | "insecure-skip-tls-verify" => {
                match super::args::parse_go_bool(raw) {
                    Some(b) => b.to_string(),
                    None => raw.to_string(),
                }
            }
            _ => raw.to_string(),
        };
        let env = format!("ETCDCTL_{}", name.to_uppercase().replace('-', "_"));
        out.push_str(&format!("{env}={value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(6), "6s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(7200), "2h0m0s"),
            (Duration::from_micros(1500), "1.5ms"),
        ];
        for (d, text) in cases {
            assert_eq!(go_duration(d), text);
        }
    }
}
