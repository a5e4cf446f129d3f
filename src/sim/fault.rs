//! What can be broken ([`Fault`]) and where ([`Target`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The part of a tenant a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The token endpoint (`POST /login/{tenant}/oauth2/v2.0/token` and `/devicecode`).
    Token,
    /// `GET /v1.0/organization`.
    Organization,
    /// `/v1.0/users/{u}/mailFolders/...` (mailbox reads).
    Exchange,
    /// `/v1.0/sites/...`.
    Sharepoint,
    /// `/v1.0/users/{u}/drive...` and `/v1.0/drives/...`.
    Onedrive,
    /// `/v1.0/teams/...` and `/v1.0/users/{u}/joinedTeams`.
    Teams,
    /// `/v1.0/admin/serviceAnnouncement/...`.
    ServiceHealth,
    /// Mail send and message endpoints (`sendMail`, `messages`, `messages/{id}/send`).
    Mail,
    /// `/v1.0/tenantRelationships/...` (GDAP customers and relationships).
    TenantRelationships,
}

impl Target {
    /// Every target, in declaration order.
    pub const ALL: [Target; 9] = [
        Target::Token,
        Target::Organization,
        Target::Exchange,
        Target::Sharepoint,
        Target::Onedrive,
        Target::Teams,
        Target::ServiceHealth,
        Target::Mail,
        Target::TenantRelationships,
    ];

    /// The snake_case name used in YAML, JSON and [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Token => "token",
            Target::Organization => "organization",
            Target::Exchange => "exchange",
            Target::Sharepoint => "sharepoint",
            Target::Onedrive => "onedrive",
            Target::Teams => "teams",
            Target::ServiceHealth => "service_health",
            Target::Mail => "mail",
            Target::TenantRelationships => "tenant_relationships",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Target::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Target::ALL.iter().map(|t| t.as_str()).collect();
            format!("unknown target {s:?}; expected one of {}", names.join(", "))
        })
    }
}

/// Default `Retry-After` for `unavailable` and `throttled` when none is given.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Default added latency for `slow` when none is given.
pub const DEFAULT_SLOW_DELAY: Duration = Duration::from_secs(5);

/// A fault injected for one (tenant, target).
///
/// On Graph targets the sign-in faults (`bad_secret`, `expired_secret`,
/// `unknown_tenant`) answer 401 `InvalidAuthenticationToken` and
/// `not_consented` answers the workload's 403; the refresh-token faults have
/// no effect there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 503 `serviceNotAvailable` (token endpoint: `temporarily_unavailable`, AADSTS90033), no `Retry-After`.
    Down,
    /// 503 with `Retry-After`.
    Unavailable {
        /// Sent as whole seconds, rounded up.
        retry_after: Duration,
    },
    /// The normal answer, after `delay` (a `tokio::time::sleep`).
    Slow {
        /// Added latency.
        delay: Duration,
    },
    /// 429 `TooManyRequests` with `Retry-After` (token endpoint: 429, AADSTS90055).
    Throttled {
        /// Sent as whole seconds, rounded up.
        retry_after: Duration,
    },
    /// The workload's 403 (token endpoint: 400 `invalid_grant`, AADSTS53003 Conditional Access).
    Forbidden,
    /// The workload's 404 (token endpoint: behaves like `unknown_tenant`).
    NotFound,
    /// 200 with a body that is not valid JSON.
    Malformed,
    /// The connection is closed without any response.
    ConnectionReset,
    /// Token endpoint: 401 `invalid_client`, AADSTS7000215.
    BadSecret,
    /// Token endpoint: 401 `invalid_client`, AADSTS7000222.
    ExpiredSecret,
    /// Token endpoint: 400 `unauthorized_client`, AADSTS700016.
    NotConsented,
    /// Token endpoint: 400 `invalid_tenant`, AADSTS90002.
    UnknownTenant,
    /// 500 (`generalException` on Graph, `server_error` on the token endpoint).
    ServerError,
    /// Refresh-token grants only: 400 `invalid_grant`, AADSTS700082, suberror `bad_token`.
    RefreshExpired,
    /// Refresh-token grants only: 400 `invalid_grant`, AADSTS50173.
    RefreshRevoked,
    /// Refresh-token grants only: 400 `invalid_grant`, AADSTS65001, suberror `consent_required`.
    ConsentRevoked,
}

impl Fault {
    /// Every fault name, as accepted by [`Fault::from_parts`].
    pub const NAMES: [&'static str; 16] = [
        "down",
        "unavailable",
        "slow",
        "throttled",
        "forbidden",
        "not_found",
        "malformed",
        "connection_reset",
        "bad_secret",
        "expired_secret",
        "not_consented",
        "unknown_tenant",
        "server_error",
        "refresh_expired",
        "refresh_revoked",
        "consent_revoked",
    ];

    /// The snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Down => "down",
            Fault::Unavailable { .. } => "unavailable",
            Fault::Slow { .. } => "slow",
            Fault::Throttled { .. } => "throttled",
            Fault::Forbidden => "forbidden",
            Fault::NotFound => "not_found",
            Fault::Malformed => "malformed",
            Fault::ConnectionReset => "connection_reset",
            Fault::BadSecret => "bad_secret",
            Fault::ExpiredSecret => "expired_secret",
            Fault::NotConsented => "not_consented",
            Fault::UnknownTenant => "unknown_tenant",
            Fault::ServerError => "server_error",
            Fault::RefreshExpired => "refresh_expired",
            Fault::RefreshRevoked => "refresh_revoked",
            Fault::ConsentRevoked => "consent_revoked",
        }
    }

    /// Builds a fault from its name and optional parameters. `retry_after`
    /// is only valid for `unavailable`/`throttled` (default 10 s), `delay`
    /// only for `slow` (default 5 s).
    pub fn from_parts(name: &str, retry_after: Option<Duration>, delay: Option<Duration>) -> Result<Fault, String> {
        let fault = match name {
            "down" => Fault::Down,
            "unavailable" => Fault::Unavailable { retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER) },
            "slow" => Fault::Slow { delay: delay.unwrap_or(DEFAULT_SLOW_DELAY) },
            "throttled" => Fault::Throttled { retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER) },
            "forbidden" => Fault::Forbidden,
            "not_found" => Fault::NotFound,
            "malformed" => Fault::Malformed,
            "connection_reset" => Fault::ConnectionReset,
            "bad_secret" => Fault::BadSecret,
            "expired_secret" => Fault::ExpiredSecret,
            "not_consented" => Fault::NotConsented,
            "unknown_tenant" => Fault::UnknownTenant,
            "server_error" => Fault::ServerError,
            "refresh_expired" => Fault::RefreshExpired,
            "refresh_revoked" => Fault::RefreshRevoked,
            "consent_revoked" => Fault::ConsentRevoked,
            _ => {
                return Err(format!("unknown fault {name:?}; expected one of {}", Fault::NAMES.join(", ")));
            }
        };
        let takes_retry = matches!(fault, Fault::Unavailable { .. } | Fault::Throttled { .. });
        if retry_after.is_some() && !takes_retry {
            return Err(format!("fault {name:?} takes no retry_after (only unavailable and throttled do)"));
        }
        if delay.is_some() && !matches!(fault, Fault::Slow { .. }) {
            return Err(format!("fault {name:?} takes no delay (only slow does)"));
        }
        Ok(fault)
    }

    /// `Retry-After` for this fault, when it sends one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Fault::Unavailable { retry_after } | Fault::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fault {
    type Err = String;
    /// Parses a fault name with default parameters.
    fn from_str(s: &str) -> Result<Self, String> {
        Fault::from_parts(s, None, None)
    }
}

/// Whole seconds for a `Retry-After` header, rounded up.
pub(crate) fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_their_names() {
        for t in Target::ALL {
            assert_eq!(t.to_string().parse::<Target>(), Ok(t));
        }
        assert_eq!("service_health".parse::<Target>(), Ok(Target::ServiceHealth));
        assert!("serviceHealth".parse::<Target>().unwrap_err().contains("service_health"));
    }

    #[test]
    fn faults_round_trip_through_their_names() {
        for n in Fault::NAMES {
            assert_eq!(n.parse::<Fault>().map(|f| f.name()), Ok(n));
        }
    }

    #[test]
    fn parameters_are_checked() {
        let ten = Some(Duration::from_secs(20));
        assert_eq!(
            Fault::from_parts("throttled", ten, None),
            Ok(Fault::Throttled { retry_after: Duration::from_secs(20) })
        );
        assert_eq!(
            Fault::from_parts("unavailable", None, None),
            Ok(Fault::Unavailable { retry_after: DEFAULT_RETRY_AFTER })
        );
        assert!(Fault::from_parts("down", ten, None).unwrap_err().contains("no retry_after"));
        assert!(Fault::from_parts("throttled", None, ten).unwrap_err().contains("no delay"));
        assert!(Fault::from_parts("explode", None, None).unwrap_err().contains("unknown fault"));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(20)), 20);
    }
}
