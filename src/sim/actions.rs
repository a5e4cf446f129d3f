//! State changes shared by the handle, the control API and scenarios.

use super::clock;
use super::fault::{Fault, Target};
use super::state::Runtime;
use super::world::{Customer, IssueSpec, Service, check_status};

impl Runtime {
    /// Sets a fault; `tenant` is a GUID or domain.
    pub(crate) fn set_fault(&mut self, tenant: &str, target: Target, fault: Fault) {
        let key = self.tenant_key(tenant);
        self.faults.insert((key, target), fault);
    }

    /// Clears faults matching the given tenant and/or target (both `None`: all).
    /// Returns how many were cleared.
    pub(crate) fn clear_faults(&mut self, tenant: Option<&str>, target: Option<Target>) -> usize {
        let key = tenant.map(|t| self.tenant_key(t));
        let before = self.faults.len();
        self.faults.retain(|(t, g), _| !(key.as_ref().is_none_or(|k| k == t) && target.is_none_or(|x| x == *g)));
        before - self.faults.len()
    }

    /// Sets a service's status (by display name or ID); an unknown service is added.
    pub(crate) fn set_service_status(&mut self, tenant: &str, service: &str, status: &str) -> Result<(), String> {
        let idx = self.world.tenant_index(tenant).ok_or_else(|| format!("unknown tenant {tenant:?}"))?;
        let t = &mut self.world.tenants[idx];
        match t.services.iter_mut().find(|s| s.name.eq_ignore_ascii_case(service) || s.id.eq_ignore_ascii_case(service))
        {
            Some(s) => s.status = status.to_string(),
            None => t.services.push(Service {
                id: service.replace(' ', ""),
                name: service.to_string(),
                status: status.to_string(),
            }),
        }
        Ok(())
    }

    /// Opens (or reopens) an issue.
    pub(crate) fn open_issue(&mut self, tenant: &str, spec: &IssueSpec) -> Result<(), String> {
        spec.validate()?;
        let now = clock::fmt_iso(self.now());
        let idx = self.world.tenant_index(tenant).ok_or_else(|| format!("unknown tenant {tenant:?}"))?;
        let issue = spec.to_issue(&now);
        let issues = &mut self.world.tenants[idx].issues;
        match issues.iter_mut().find(|i| i.id == issue.id) {
            Some(existing) => *existing = issue,
            None => issues.push(issue),
        }
        Ok(())
    }

    /// Resolves an issue: `isResolved`, `endDateTime`, status `serviceRestored`.
    pub(crate) fn resolve_issue(&mut self, tenant: &str, id: &str) -> Result<(), String> {
        let now = clock::fmt_iso(self.now());
        let idx = self.world.tenant_index(tenant).ok_or_else(|| format!("unknown tenant {tenant:?}"))?;
        let issue = self.world.tenants[idx]
            .issues
            .iter_mut()
            .find(|i| i.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| format!("tenant {tenant:?} has no issue {id:?}"))?;
        issue.is_resolved = true;
        issue.status = "serviceRestored".into();
        issue.end_date_time = Some(now.clone());
        issue.last_modified_date_time = now;
        Ok(())
    }
}

impl Runtime {
    /// Changes a tenant's mail delivery: delay and/or drop (`None` keeps the value).
    pub(crate) fn set_mail_delivery(
        &mut self,
        tenant: &str,
        delay_seconds: Option<u64>,
        drop: Option<bool>,
    ) -> Result<(), String> {
        let idx = self.world.tenant_index(tenant).ok_or_else(|| format!("unknown tenant {tenant:?}"))?;
        let mail = &mut self.world.tenants[idx].mail;
        if let Some(d) = delay_seconds {
            mail.delivery_delay_seconds = d;
        }
        if let Some(d) = drop {
            mail.drop = d;
        }
        Ok(())
    }
}

/// Checks a status for the control API and scenarios (the handle accepts anything).
pub(crate) fn known_status(status: &str) -> Result<(), String> {
    check_status(status)
}

impl Runtime {
    /// Adds `customer` to the partner tenant's GDAP customers, replacing one
    /// with the same tenant ID.
    pub(crate) fn upsert_customer(&mut self, partner: &str, customer: Customer) -> Result<(), String> {
        let idx = self.world.tenant_index(partner).ok_or_else(|| format!("unknown tenant {partner:?}"))?;
        let list = &mut self.world.tenants[idx].customers;
        match list.iter_mut().find(|c| c.tenant_id.eq_ignore_ascii_case(&customer.tenant_id)) {
            Some(c) => *c = customer,
            None => list.push(customer),
        }
        Ok(())
    }

    /// Removes a GDAP customer of the partner tenant; `Ok(false)` if it had none such.
    pub(crate) fn remove_customer(&mut self, partner: &str, tenant_id: &str) -> Result<bool, String> {
        let idx = self.world.tenant_index(partner).ok_or_else(|| format!("unknown tenant {partner:?}"))?;
        let list = &mut self.world.tenants[idx].customers;
        let before = list.len();
        list.retain(|c| !c.tenant_id.eq_ignore_ascii_case(tenant_id));
        Ok(list.len() != before)
    }
}
