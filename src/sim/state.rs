//! The simulator's mutable state, shared by the server, the handle and scenarios.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use super::fault::{Fault, Target};
use super::jwt::SigningKeys;
use super::mail::MailState;
use super::world::World;

/// Most requests kept by the request log; older ones are dropped.
pub const MAX_RECORDED_REQUESTS: usize = 10_000;

/// One request as the simulator saw it (control API requests are not recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, as sent (still percent-encoded).
    pub path: String,
    /// Query string without `?`, when present.
    pub query: Option<String>,
    /// Tenant GUID, when known (token path tenant, or the token's `tid` on Graph).
    pub tenant: Option<String>,
    /// The `client-request-id` request header.
    pub client_request_id: Option<String>,
    /// Status returned; `None` when the connection was reset without a response.
    pub status: Option<u16>,
}

/// A refresh token the simulator issued.
#[derive(Debug, Clone)]
pub(crate) struct RefreshRecord {
    pub tenant: String,
    pub client_id: String,
    pub user_upn: String,
    /// Resource base the scopes belong to (e.g. `https://graph.microsoft.com`).
    pub resource: String,
    /// Granted resource scopes (names without the base).
    pub scopes: Vec<String>,
    /// OIDC scopes requested with it (`openid`, `profile`, `offline_access`, `email`).
    pub oidc: Vec<String>,
    pub last_used_unix: i64,
    pub valid: bool,
}

/// Where a device code stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceState {
    /// Follows the tenant's [`super::world::DeviceFlow`] script.
    Scripted,
    /// Approved through the control API.
    Approved,
    /// Declined through the control API.
    Declined,
    /// Tokens were issued.
    Redeemed,
}

/// A pending device authorization.
#[derive(Debug, Clone)]
pub(crate) struct DeviceCode {
    pub user_code: String,
    pub tenant: String,
    pub client_id: String,
    pub scope: String,
    pub created_unix: i64,
    pub expires_in: u64,
    pub interval: u64,
    pub polls: u32,
    pub last_poll_unix: Option<i64>,
    pub state: DeviceState,
}

/// Everything that changes while the simulator runs.
pub(crate) struct Runtime {
    pub world: World,
    /// Keyed by (tenant GUID or the lowercased name given, target).
    pub faults: BTreeMap<(String, Target), Fault>,
    pub refresh_tokens: HashMap<String, RefreshRecord>,
    pub device_codes: HashMap<String, DeviceCode>,
    pub requests: VecDeque<RecordedRequest>,
    pub token_requests: HashMap<String, u64>,
    /// Added to the wall clock for every time check (tests move time forward with it).
    pub clock_offset: Duration,
    pub mail: MailState,
    /// Replaces the message of the `server_error` fault's Graph error body
    /// (to test how the exporter copes with odd error text).
    pub server_error_message: Option<String>,
}

impl Runtime {
    /// The tenant GUID for a GUID or domain, else the key lowercased.
    pub fn tenant_key(&self, key: &str) -> String {
        match self.world.tenant(key) {
            Some(t) => t.id.clone(),
            None => key.to_ascii_lowercase(),
        }
    }

    /// The fault for (tenant, target), if any.
    pub fn fault(&self, tenant: &str, target: Target) -> Option<Fault> {
        self.faults.get(&(tenant.to_string(), target)).copied()
    }

    /// Now, in seconds since the epoch, on the simulator's clock.
    pub fn now(&self) -> i64 {
        super::clock::unix_now(self.clock_offset)
    }

    pub fn record(&mut self, r: RecordedRequest) {
        if self.requests.len() >= MAX_RECORDED_REQUESTS {
            self.requests.pop_front();
        }
        self.requests.push_back(r);
    }
}

/// State shared by every task of one simulator.
pub(crate) struct Shared {
    runtime: Mutex<Runtime>,
    pub keys: SigningKeys,
    /// The listener's address (unspecified IPs replaced by loopback).
    pub addr: SocketAddr,
}

impl Shared {
    pub(crate) fn new(world: World, keys: SigningKeys, addr: SocketAddr) -> Self {
        Shared {
            runtime: Mutex::new(Runtime {
                world,
                faults: BTreeMap::new(),
                refresh_tokens: HashMap::new(),
                device_codes: HashMap::new(),
                requests: VecDeque::new(),
                token_requests: HashMap::new(),
                clock_offset: Duration::ZERO,
                mail: MailState::default(),
                server_error_message: None,
            }),
            keys,
            addr,
        }
    }

    /// Locks the runtime. This is a std mutex: no lock is held across an
    /// `.await`, and a poisoned lock (a panic elsewhere) is still usable
    /// because every update leaves the state consistent.
    pub(crate) fn rt(&self) -> MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(|p| p.into_inner())
    }
}
