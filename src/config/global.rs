//! The `global:` section.

use std::time::Duration;

use super::check::{Located, MapView, Report, unknown};
use super::yaml::{Node, Value};
use super::{Cloud, Global, values};

const KEYS: &[&str] =
    &["cloud", "authority_host", "graph_endpoint", "probe_interval", "probe_timeout", "max_concurrent_probes"];

/// Default for `global.probe_interval`.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(60);
/// Default for `global.probe_timeout`.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// Default for `global.max_concurrent_probes`.
pub const DEFAULT_MAX_CONCURRENT_PROBES: usize = 64;
/// Largest `global.max_concurrent_probes`: far more than any deployment
/// needs, far below what a semaphore can hold.
pub const MAX_CONCURRENT_PROBES: usize = 10_000;

/// The global settings plus where the two probe defaults came from, for
/// messages that relate them to per-probe values.
pub(super) struct GlobalSection {
    pub global: Global,
    pub interval: Located<Duration>,
    pub timeout: Located<Duration>,
}

pub(super) fn parse(r: &mut Report, node: Option<&Node>) -> GlobalSection {
    let map = node.and_then(|n| MapView::new(r, n, "global"));
    let map = map.as_ref();
    if let Some(m) = map {
        m.deny_unknown(r, KEYS);
    }

    let cloud = map
        .and_then(|m| m.string(r, "cloud"))
        .and_then(|s| {
            let c = Cloud::parse(&s.value);
            if c.is_none() {
                let names: Vec<&str> = Cloud::ALL.iter().map(|c| c.as_str()).collect();
                r.error(s.loc, &s.path, unknown("cloud", &s.value, &names));
            }
            c
        })
        .unwrap_or(Cloud::Global);

    let endpoint = |r: &mut Report, key: &str, default: &str| {
        map.and_then(|m| m.string(r, key))
            .and_then(|s| values::check_endpoint(&s.value).map_err(|msg| r.error(s.loc, &s.path, msg)).ok())
            .unwrap_or_else(|| default.to_owned())
    };
    let authority_host = endpoint(r, "authority_host", cloud.authority_host());
    let graph_endpoint = endpoint(r, "graph_endpoint", cloud.graph_endpoint());

    let duration = |r: &mut Report, key: &str, default: Duration, max: Duration| {
        // A default has no place in the file (`loc: None`); messages say so.
        map.and_then(|m| m.duration(r, key, max)).unwrap_or_else(|| Located {
            value: default,
            loc: None,
            path: format!("global.{key}"),
        })
    };
    let interval = duration(r, "probe_interval", DEFAULT_PROBE_INTERVAL, values::MAX_PROBE_INTERVAL);
    let timeout = duration(r, "probe_timeout", DEFAULT_PROBE_TIMEOUT, values::MAX_PROBE_TIMEOUT);

    let max_concurrent_probes = map
        .and_then(|m| {
            let node = m.get("max_concurrent_probes")?;
            let path = m.path_of("max_concurrent_probes");
            match node.value {
                Value::Int(n) if n > MAX_CONCURRENT_PROBES as i128 => {
                    r.error(node.loc, &path, format!("must be at most {MAX_CONCURRENT_PROBES}, found {n}"));
                    None
                }
                Value::Int(n) if n >= 1 => Some(usize::try_from(n).unwrap_or(MAX_CONCURRENT_PROBES)),
                Value::Int(n) => {
                    r.error(node.loc, &path, format!("must be at least 1, found {n}"));
                    None
                }
                _ => {
                    r.error(node.loc, &path, format!("expected an integer, found {}", node.kind_name()));
                    None
                }
            }
        })
        .unwrap_or(DEFAULT_MAX_CONCURRENT_PROBES);

    GlobalSection {
        global: Global {
            cloud,
            authority_host,
            graph_endpoint,
            probe_interval: interval.value,
            probe_timeout: timeout.value,
            max_concurrent_probes,
        },
        interval,
        timeout,
    }
}
