//! Prometheus-style durations (`30s`, `2m`, `1h30m`, `500ms`).

use std::time::Duration;

/// Parses a Prometheus duration: one or more `<integer><unit>` parts, units
/// `ms`, `s`, `m`, `h`, `d`, `w`, `y`, largest first.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. 30s, 2m, 1h30m, 500ms");
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    let mut last_rank = usize::MAX;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let n: u128 = s[start..i].parse().map_err(|_| bad())?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let (rank, ms) = match &s[ustart..i] {
            "y" => (0, 365 * 24 * 3_600_000),
            "w" => (1, 7 * 24 * 3_600_000),
            "d" => (2, 24 * 3_600_000),
            "h" => (3, 3_600_000),
            "m" => (4, 60_000),
            "s" => (5, 1000),
            "ms" => (6, 1),
            _ => return Err(bad()),
        };
        if last_rank != usize::MAX && rank <= last_rank {
            return Err(bad());
        }
        last_rank = rank;
        total = total.checked_add(n.checked_mul(ms).ok_or_else(bad)?).ok_or_else(bad)?;
    }
    u64::try_from(total).map(Duration::from_millis).map_err(|_| bad())
}

/// Formats a duration the way [`parse_duration`] reads it (`1m30s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_durations() {
        for s in ["", "5", "s", "1x", "30s1m", "1.5s", "-1s", "1m1m"] {
            assert!(parse_duration(s).is_err(), "{s} should fail");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["30s", "2m", "1h30m", "250ms", "1d"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
