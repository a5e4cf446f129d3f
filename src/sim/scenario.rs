//! Timed fault scripts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use tokio::sync::watch;

use super::actions::known_status;
use super::duration::parse_duration;
use super::error::SimError;
use super::fault::{Fault, Target};
use super::state::Shared;
use super::world::{IssueSpec, World};

/// A timed fault script, loaded from YAML:
///
/// ```yaml
/// repeat_every: 6m            # optional; the steps run again each period
/// steps:
///   - {at: 30s, tenant: fabrikam.onmicrosoft.com, target: exchange, fault: down}
///   - {at: 1m, tenant: northwind.onmicrosoft.com, target: sharepoint, fault: throttled, retry_after: 20s}
///   - {at: 1m, tenant: x, target: organization, fault: slow, delay: 3s}
///   - {at: 3m, tenant: fabrikam.onmicrosoft.com, target: exchange, clear: true}
///   - {at: 1m, tenant: contoso.onmicrosoft.com, service_health: {service: Exchange Online, status: serviceDegradation}}
///   - {at: 1m, tenant: contoso.onmicrosoft.com, open_issue: {id: EX000001, service: Exchange Online, title: ...}}
///   - {at: 4m, tenant: contoso.onmicrosoft.com, resolve_issue: EX000001}
///   - {at: 5m, clear_all: true}
/// ```
/// `at` is measured from the start of the run (of each period when
/// repeating) and must be shorter than `repeat_every`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Run the steps again every period.
    pub repeat_every: Option<Duration>,
    /// Steps, applied in `at` order.
    pub steps: Vec<Step>,
}

/// One timed change.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Offset from the start of the (current period of the) run.
    pub at: Duration,
    /// GUID or domain; `None` only for [`Action::ClearAll`].
    pub tenant: Option<String>,
    /// What happens.
    pub action: Action,
    /// Where the step was defined (`file:line`), for messages.
    pub origin: Option<String>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Inject a fault.
    SetFault(Target, Fault),
    /// Remove the fault on a target.
    ClearFault(Target),
    /// Remove every fault of every tenant.
    ClearAll,
    /// Set a service's health status.
    ServiceHealth {
        /// Display name or ID.
        service: String,
        /// camelCase status.
        status: String,
    },
    /// Open (or reopen) an issue.
    OpenIssue(IssueSpec),
    /// Resolve an issue by ID.
    ResolveIssue(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    repeat_every: Option<Spanned<String>>,
    #[serde(default)]
    steps: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    fault: Option<String>,
    #[serde(default)]
    retry_after: Option<String>,
    #[serde(default)]
    delay: Option<String>,
    #[serde(default)]
    clear: bool,
    #[serde(default)]
    clear_all: bool,
    #[serde(default)]
    service_health: Option<RawHealth>,
    #[serde(default)]
    open_issue: Option<IssueSpec>,
    #[serde(default)]
    resolve_issue: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    service: String,
    status: String,
}

impl Scenario {
    /// Reads a scenario file; errors name the file, line and column.
    pub fn from_yaml_file(path: &Path) -> Result<Scenario, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SimError::Read { path: path.display().to_string(), source })?;
        Scenario::from_yaml_str(&text, &path.display().to_string())
    }

    /// Parses scenario YAML; `origin` names it in errors.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Scenario, SimError> {
        let raw: RawScenario = serde_saphyr::from_str(text).map_err(|e| SimError::from_yaml(origin, &e))?;
        let err = |loc: Location, msg: String| SimError::at(origin, Some(loc), msg);
        let repeat_every = match raw.repeat_every {
            Some(r) => {
                let d = parse_duration(&r.value).map_err(|e| err(r.referenced, format!("repeat_every: {e}")))?;
                if d.is_zero() {
                    return Err(err(r.referenced, "repeat_every: must be longer than 0s".into()));
                }
                Some(d)
            }
            None => None,
        };
        let mut steps = Vec::new();
        for (i, s) in raw.steps.into_iter().enumerate() {
            let loc = s.referenced;
            let p = format!("steps[{i}]");
            let step = convert_step(s.value, &p, format!("{origin}:{}", loc.line())).map_err(|m| err(loc, m))?;
            if let Some(r) = repeat_every
                && step.at >= r
            {
                return Err(err(loc, format!("{p}.at: must be shorter than repeat_every")));
            }
            steps.push(step);
        }
        Ok(Scenario { repeat_every, steps })
    }

    /// The built-in demo scenario, repeating every 6 minutes: fabrikam's
    /// Exchange is down from 30 s to 3 m; northwind's SharePoint is throttled
    /// (Retry-After 20 s) from 1 m to 2 m; contoso's "Exchange Online" is in
    /// `serviceDegradation` with incident EX000001 open from 1 m to 4 m.
    /// Tailspin fails sign-in all the time (its secret has expired).
    pub fn demo() -> Scenario {
        let step = |secs: u64, tenant: &str, action: Action| Step {
            at: Duration::from_secs(secs),
            tenant: Some(tenant.to_string()),
            action,
            origin: Some("<built-in demo scenario>".into()),
        };
        let fabrikam = "fabrikam.onmicrosoft.com";
        let northwind = "northwind.onmicrosoft.com";
        let contoso = "contoso.onmicrosoft.com";
        let health = |status: &str| Action::ServiceHealth { service: "Exchange Online".into(), status: status.into() };
        let incident = IssueSpec {
            id: "EX000001".into(),
            service: "Exchange Online".into(),
            title: Some("Some users can't send email".into()),
            classification: Some("incident".into()),
            status: Some("serviceDegradation".into()),
            feature: Some("Mail flow".into()),
            feature_group: Some("E-Mail and calendar access".into()),
            impact_description: Some("Users may be unable to send messages.".into()),
        };
        let mut steps = vec![
            step(30, fabrikam, Action::SetFault(Target::Exchange, Fault::Down)),
            step(
                60,
                northwind,
                Action::SetFault(Target::Sharepoint, Fault::Throttled { retry_after: Duration::from_secs(20) }),
            ),
            step(60, contoso, health("serviceDegradation")),
            step(60, contoso, Action::OpenIssue(incident)),
            step(120, northwind, Action::ClearFault(Target::Sharepoint)),
            step(180, fabrikam, Action::ClearFault(Target::Exchange)),
            step(240, contoso, Action::ResolveIssue("EX000001".into())),
            step(240, contoso, health("serviceOperational")),
        ];
        steps.sort_by_key(|s| s.at);
        Scenario { repeat_every: Some(Duration::from_secs(360)), steps }
    }

    /// Checks that every step's tenant exists in `world`.
    pub fn check_tenants(&self, world: &World) -> Result<(), SimError> {
        for s in &self.steps {
            if let Some(t) = &s.tenant
                && world.tenant(t).is_none()
            {
                let origin = s.origin.clone().unwrap_or_else(|| "<scenario>".into());
                return Err(SimError::Invalid(super::error::Located {
                    origin,
                    line: None,
                    column: None,
                    message: format!("tenant {t:?} is not in the world"),
                }));
            }
        }
        Ok(())
    }
}

fn convert_step(r: RawStep, p: &str, origin: String) -> Result<Step, String> {
    let at = parse_duration(&r.at).map_err(|e| format!("{p}.at: {e}"))?;
    let dur = |name: &str, v: &Option<String>| -> Result<Option<Duration>, String> {
        v.as_ref().map(|s| parse_duration(s).map_err(|e| format!("{p}.{name}: {e}"))).transpose()
    };
    let retry_after = dur("retry_after", &r.retry_after)?;
    let delay = dur("delay", &r.delay)?;
    let kinds = usize::from(r.fault.is_some())
        + usize::from(r.clear)
        + usize::from(r.clear_all)
        + usize::from(r.service_health.is_some())
        + usize::from(r.open_issue.is_some())
        + usize::from(r.resolve_issue.is_some());
    if kinds != 1 {
        return Err(format!(
            "{p}: give exactly one of fault, clear, clear_all, service_health, open_issue, resolve_issue"
        ));
    }
    let target =
        r.target.as_deref().map(|t| t.parse::<Target>().map_err(|e| format!("{p}.target: {e}"))).transpose()?;
    let needs_target = r.fault.is_some() || r.clear;
    if needs_target && target.is_none() {
        return Err(format!("{p}: target is required with fault and clear"));
    }
    if !needs_target && target.is_some() {
        return Err(format!("{p}.target: only fault and clear steps take a target"));
    }
    if (retry_after.is_some() || delay.is_some()) && r.fault.is_none() {
        return Err(format!("{p}: retry_after and delay only go with fault"));
    }
    if r.clear_all != r.tenant.is_none() {
        return Err(if r.clear_all {
            format!("{p}: clear_all applies to every tenant; remove tenant")
        } else {
            format!("{p}: tenant is required")
        });
    }
    let action = if let Some(f) = r.fault {
        let fault = Fault::from_parts(&f, retry_after, delay).map_err(|e| format!("{p}.fault: {e}"))?;
        Action::SetFault(target.unwrap_or(Target::Token), fault)
    } else if r.clear {
        Action::ClearFault(target.unwrap_or(Target::Token))
    } else if r.clear_all {
        Action::ClearAll
    } else if let Some(h) = r.service_health {
        known_status(&h.status).map_err(|e| format!("{p}.service_health.status: {e}"))?;
        Action::ServiceHealth { service: h.service, status: h.status }
    } else if let Some(spec) = r.open_issue {
        spec.validate().map_err(|e| format!("{p}.open_issue: {e}"))?;
        Action::OpenIssue(spec)
    } else {
        Action::ResolveIssue(r.resolve_issue.unwrap_or_default())
    };
    Ok(Step { at, tenant: r.tenant, action, origin: Some(origin) })
}

/// Applies one step now.
pub(crate) fn apply(shared: &Shared, step: &Step) {
    let mut rt = shared.rt();
    let tenant = step.tenant.as_deref().unwrap_or_default();
    let result = match &step.action {
        Action::SetFault(t, f) => {
            rt.set_fault(tenant, *t, *f);
            Ok(())
        }
        Action::ClearFault(t) => {
            rt.clear_faults(Some(tenant), Some(*t));
            Ok(())
        }
        Action::ClearAll => {
            rt.clear_faults(None, None);
            Ok(())
        }
        Action::ServiceHealth { service, status } => rt.set_service_status(tenant, service, status),
        Action::OpenIssue(spec) => rt.open_issue(tenant, spec),
        Action::ResolveIssue(id) => rt.resolve_issue(tenant, id),
    };
    if let Err(e) = result {
        tracing::warn!(step = step.origin.as_deref().unwrap_or(""), error = %e, "scenario step not applied");
    }
}

/// Runs a scenario until it ends or `shutdown` fires.
pub(crate) async fn run(shared: Arc<Shared>, scenario: Scenario, mut shutdown: watch::Receiver<bool>) {
    let mut steps = scenario.steps;
    steps.sort_by_key(|s| s.at);
    if steps.is_empty() {
        return;
    }
    let start = tokio::time::Instant::now();
    let mut period_start = start;
    loop {
        for step in &steps {
            tokio::select! {
                _ = tokio::time::sleep_until(period_start + step.at) => {}
                _ = shutdown.changed() => return,
            }
            apply(&shared, step);
        }
        match scenario.repeat_every {
            Some(p) => period_start += p,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_step_kind() {
        let text = "\
repeat_every: 6m
steps:
  - {at: 30s, tenant: a.onmicrosoft.com, target: exchange, fault: down}
  - {at: 1m, tenant: a.onmicrosoft.com, target: sharepoint, fault: throttled, retry_after: 20s}
  - {at: 1m, tenant: a.onmicrosoft.com, target: organization, fault: slow, delay: 1500ms}
  - {at: 3m, tenant: a.onmicrosoft.com, target: exchange, clear: true}
  - {at: 1m, tenant: a.onmicrosoft.com, service_health: {service: Exchange Online, status: serviceDegradation}}
  - {at: 1m, tenant: a.onmicrosoft.com, open_issue: {id: EX1, service: Exchange Online}}
  - {at: 4m, tenant: a.onmicrosoft.com, resolve_issue: EX1}
  - {at: 5m, clear_all: true}
";
        let s = Scenario::from_yaml_str(text, "s.yml").unwrap();
        assert_eq!(s.repeat_every, Some(Duration::from_secs(360)));
        assert_eq!(s.steps.len(), 8);
        assert_eq!(
            s.steps[1].action,
            Action::SetFault(Target::Sharepoint, Fault::Throttled { retry_after: Duration::from_secs(20) })
        );
        assert_eq!(
            s.steps[2].action,
            Action::SetFault(Target::Organization, Fault::Slow { delay: Duration::from_millis(1500) })
        );
        assert_eq!(s.steps[7].action, Action::ClearAll);
        assert_eq!(s.steps[0].origin.as_deref(), Some("s.yml:3"));
    }

    fn err(text: &str) -> String {
        Scenario::from_yaml_str(text, "s.yml").unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            err("steps:\n  - {at: 30s, tenant: a, target: exchange, fault: dwn}\n"),
            format!("s.yml:2:5: steps[0].fault: unknown fault \"dwn\"; expected one of {}", Fault::NAMES.join(", "))
        );
        assert!(
            err("steps:\n  - {at: 3x, tenant: a, clear_all: true}\n")
                .starts_with("s.yml:2:5: steps[0].at: invalid duration")
        );
        assert!(err("steps:\n  - {at: 3s, tenant: a, target: exchange}\n").contains("give exactly one of"));
        assert!(err("repeat_every: 1m\nsteps:\n  - {at: 2m, clear_all: true}\n").contains("shorter than repeat_every"));
        assert!(
            err("steps:\n  - {at: 1s, tenant: a, target: mailbox, clear: true}\n")
                .contains("unknown target \"mailbox\"")
        );
        assert!(err("stepz: []\n").starts_with("s.yml:1:"));
    }

    #[test]
    fn demo_scenario_is_valid_for_the_demo_world() {
        let s = Scenario::demo();
        assert_eq!(s.repeat_every, Some(Duration::from_secs(360)));
        s.check_tenants(&World::demo()).unwrap();
        assert!(s.steps.windows(2).all(|w| w[0].at <= w[1].at));
    }
}
