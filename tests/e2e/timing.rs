//! The one documented transformation of the shipped alerting files: every
//! duration that is about *waiting* (`for:` and `keep_firing_for:` in the
//! rules; `group_wait`, `group_interval`, `repeat_interval` and
//! `resolve_timeout` in Alertmanager) is divided by [`TIME_SCALE`], the same
//! factor by which the test shortens the probe interval (1m -> 2s) and the
//! scrape and evaluation intervals (30s -> 1s). Everything else (expressions,
//! windows such as `[5m]`, thresholds, routing, inhibition) stays as shipped.

/// Production timings / test timings.
pub const TIME_SCALE: u64 = 30;

/// Keys of the rule files whose durations are scaled.
pub const RULE_KEYS: &[&str] = &["for", "keep_firing_for"];
/// Keys of alertmanager.yml whose durations are scaled.
pub const ALERTMANAGER_KEYS: &[&str] = &["group_wait", "group_interval", "repeat_interval", "resolve_timeout"];

/// Parses a Prometheus duration (`1h30m`, `30s`, `500ms`) into milliseconds.
pub fn parse_ms(s: &str) -> Option<u64> {
    let s = s.trim().trim_matches(['\'', '"']);
    if s.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let ms = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total += n * ms;
    }
    Some(total)
}

/// Formats milliseconds as a Prometheus duration.
pub fn format_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

/// Rewrites every `KEY: DURATION` line (any indentation, optional `- `,
/// optional trailing comment) whose key is in `keys`, dividing the duration by
/// [`TIME_SCALE`]. Returns the new text and the (key, old, new) changes.
pub fn scale_durations(text: &str, keys: &[&str]) -> (String, Vec<(String, String, String)>) {
    let mut out = String::with_capacity(text.len());
    let mut changes = Vec::new();
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let eol = &line[body.len()..];
        let indent_len = body.len() - body.trim_start().len();
        let (indent, rest) = body.split_at(indent_len);
        let (dash, rest) = match rest.strip_prefix("- ") {
            Some(r) => ("- ", r),
            None => ("", rest),
        };
        let rewritten = rest.split_once(':').and_then(|(key, value)| {
            if !keys.contains(&key.trim()) {
                return None;
            }
            let (value, comment) = match value.find('#') {
                Some(i) => (&value[..i], &value[i..]),
                None => (value, ""),
            };
            let ms = parse_ms(value)?;
            let new = format_ms((ms / TIME_SCALE).max(1));
            changes.push((key.trim().to_string(), value.trim().to_string(), new.clone()));
            let comment = if comment.is_empty() { String::new() } else { format!("  {comment}") };
            Some(format!("{indent}{dash}{key}: {new}{comment}"))
        });
        match rewritten {
            Some(l) => {
                out.push_str(&l);
                out.push_str(eol);
            }
            None => out.push_str(line),
        }
    }
    (out, changes)
}

#[test]
fn scaling_rewrites_only_the_named_keys() {
    let text = "- alert: A\n  for: 5m\n  keep_firing_for: 1m # note\n  expr: x[5m]\n  group_wait: 30s\n";
    let (out, changes) = scale_durations(text, RULE_KEYS);
    assert_eq!(out, "- alert: A\n  for: 10s\n  keep_firing_for: 2s  # note\n  expr: x[5m]\n  group_wait: 30s\n");
    assert_eq!(changes.len(), 2);
    let (out, _) = scale_durations("  group_interval: 2m\n  repeat_interval: 4h\n", ALERTMANAGER_KEYS);
    assert_eq!(out, "  group_interval: 4s\n  repeat_interval: 480s\n");
    assert_eq!(parse_ms("1h30m"), Some(5_400_000));
    assert_eq!(format_ms(1500), "1500ms");
}
