//! Sizes, rates and durations on the command line: `50MiB`, `50MiB/s`,
//! `500ms`, `6h`.

use std::time::Duration;

/// `50MiB`, `1G`, `4096` → bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let at = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(at);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}: use e.g. 4KiB, 50MiB, 1GiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    Ok((value * scale) as u64)
}

/// `50MiB/s` → bytes per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    parse_bytes(text.trim().trim_end_matches("/s"))
}

/// Units a duration is written in, largest first.
const DURATION_UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// `500ms`, `5s`, `2m`, `6h`, `1d 2h`, `1h30m` (a bare number is seconds):
/// the forms [`format_duration`] prints, so anything the CLI shows can be
/// typed back.
/// An S3 user given as `ACCESS_KEY:SECRET_KEY`.
pub fn parse_user(text: &str) -> Result<cairn_gateway::config::Credential, String> {
    match text.split_once(':') {
        Some((access_key, secret_key)) if !access_key.is_empty() && !secret_key.is_empty() => {
            Ok(cairn_gateway::config::Credential {
                access_key: access_key.to_owned(),
                secret_key: secret_key.to_owned(),
            })
        }
        _ => Err("expected ACCESS_KEY:SECRET_KEY".into()),
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}: use e.g. 500ms, 5s, 2m, 6h, 1d 2h");
    let compact: String = text.split_whitespace().collect();
    if compact.is_empty() {
        return Err(invalid());
    }
    if compact.bytes().all(|b| b.is_ascii_digit()) {
        return compact
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| invalid());
    }
    let mut rest = compact.as_str();
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let value: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = DURATION_UNITS
            .iter()
            .find(|(unit, _)| *unit == &rest[..unit_len])
            .map(|(_, scale)| *scale)
            .ok_or_else(|| format!("invalid duration unit in {text:?}: use ms, s, m, h or d"))?;
        total_ms = value
            .checked_mul(scale)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(invalid)?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_millis(total_ms))
}

/// A duration as a person writes it: `6h`, `30m`, `1d 2h`, `1m 15s`,
/// `12.3s`, `250ms`. Under a minute, tenths of a second are kept; above, the
/// largest units that are not zero.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis() as u64;
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        return if ms.is_multiple_of(1_000) {
            format!("{}s", ms / 1_000)
        } else {
            format!("{:.1}s", ms as f64 / 1_000.0)
        };
    }
    let mut rest = ms / 1_000 * 1_000;
    let mut parts = Vec::new();
    for (unit, scale) in &DURATION_UNITS[..4] {
        let count = rest / scale;
        if count > 0 {
            parts.push(format!("{count}{unit}"));
            rest -= count * scale;
        }
    }
    parts.join(" ")
}

/// [`format_duration`] of whole seconds.
pub fn format_secs(secs: u64) -> String {
    format_duration(Duration::from_secs(secs))
}

/// [`format_duration`] of milliseconds.
pub fn format_ms(ms: u64) -> String {
    format_duration(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse() {
        assert_eq!(parse_bytes("4KiB"), Ok(4096));
        assert_eq!(parse_bytes("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_rate("50MiB/s"), Ok(52_428_800));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(21_600)));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn durations_read_and_print_the_way_people_write_them() {
        for (typed, secs, shown) in [
            ("6h", 21_600, "6h"),
            ("30m", 1_800, "30m"),
            ("1d 2h", 93_600, "1d 2h"),
            ("1d2h", 93_600, "1d 2h"),
            ("1h30m", 5_400, "1h 30m"),
            ("90s", 90, "1m 30s"),
            ("45", 45, "45s"),
            ("2d 0h 5m 1s", 173_101, "2d 5m 1s"),
        ] {
            let parsed = parse_duration(typed).expect(typed);
            assert_eq!(parsed, Duration::from_secs(secs), "{typed}");
            assert_eq!(format_duration(parsed), shown, "{typed}");
            assert_eq!(parse_duration(shown), Ok(parsed), "{shown} reads back");
        }
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(format_ms(75_300), "1m 15s");
        for bad in ["", "h", "5 parsecs", "1d x", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
