//! Maps Entra ID token errors to bounded failure reasons (protocol doc 1.9).

use crate::probe::FailureReason;

/// The failure reason for an Entra error, from its AADSTS code first and its
/// OAuth `error` string second (Microsoft says not to branch on the text).
pub fn classify_error(error: &str, codes: &[u64]) -> FailureReason {
    for code in codes {
        let reason = match code {
            7000215 | 700027 | 700024 | 50012 | 50048 | 50027 | 700023 | 700025 => FailureReason::CredentialInvalid,
            7000222 => FailureReason::CredentialExpired,
            700016 | 65001 | 7000112 | 500011 => FailureReason::NotConsented,
            90002 | 90038 => FailureReason::TenantNotFound,
            50196 | 90055 => FailureReason::Throttled,
            _ => continue,
        };
        return reason;
    }
    match error {
        "invalid_client" => FailureReason::CredentialInvalid,
        "unauthorized_client" => FailureReason::NotConsented,
        "invalid_tenant" => FailureReason::TenantNotFound,
        "temporarily_unavailable" => FailureReason::Http5xx,
        _ => FailureReason::AuthFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_win_over_error_strings() {
        assert_eq!(classify_error("invalid_client", &[7000222]), FailureReason::CredentialExpired);
        assert_eq!(classify_error("invalid_client", &[7000215]), FailureReason::CredentialInvalid);
        assert_eq!(classify_error("unauthorized_client", &[700016]), FailureReason::NotConsented);
        assert_eq!(classify_error("invalid_request", &[90002]), FailureReason::TenantNotFound);
        assert_eq!(classify_error("invalid_tenant", &[90002]), FailureReason::TenantNotFound);
        assert_eq!(classify_error("invalid_grant", &[65001]), FailureReason::NotConsented);
        assert_eq!(classify_error("invalid_request", &[50196]), FailureReason::Throttled);
        assert_eq!(classify_error("invalid_client", &[700027]), FailureReason::CredentialInvalid);
        assert_eq!(classify_error("invalid_client", &[700024]), FailureReason::CredentialInvalid);
    }

    #[test]
    fn falls_back_to_error_strings() {
        assert_eq!(classify_error("invalid_client", &[]), FailureReason::CredentialInvalid);
        assert_eq!(classify_error("invalid_tenant", &[]), FailureReason::TenantNotFound);
        assert_eq!(classify_error("invalid_scope", &[70011]), FailureReason::AuthFailed);
        assert_eq!(classify_error("something_new", &[1]), FailureReason::AuthFailed);
    }
}
