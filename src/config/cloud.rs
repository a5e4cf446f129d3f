//! National clouds and their endpoints (protocol doc, section 2).

/// A Microsoft national cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// Worldwide, including M365 GCC (moderate).
    Global,
    /// US Government GCC High.
    UsGov,
    /// US Government DoD.
    UsGovDod,
    /// China, operated by 21Vianet.
    China,
}

impl Cloud {
    /// All clouds, in documentation order.
    pub const ALL: [Cloud; 4] = [Cloud::Global, Cloud::UsGov, Cloud::UsGovDod, Cloud::China];

    /// The config value and the `cloud` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGov => "usgov",
            Cloud::UsGovDod => "usgov-dod",
            Cloud::China => "china",
        }
    }

    /// Parses a config value.
    pub fn parse(s: &str) -> Option<Cloud> {
        Cloud::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The sign-in (authority) host.
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.partner.microsoftonline.cn",
        }
    }

    /// The Graph service root; the token scope is this plus `/.default`.
    pub fn graph_endpoint(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cloud;

    /// Protocol doc, section 2: sign-in host, Graph root and the token scope for each cloud.
    #[test]
    fn endpoints_per_cloud() {
        let table = [
            ("global", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
            ("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
            ("usgov-dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
            ("china", "https://login.partner.microsoftonline.cn", "https://microsoftgraph.chinacloudapi.cn"),
        ];
        for (name, authority, graph) in table {
            let cloud = Cloud::parse(name).expect(name);
            assert_eq!(cloud.as_str(), name);
            assert_eq!(cloud.authority_host(), authority, "{name}");
            assert_eq!(cloud.graph_endpoint(), graph, "{name}");
        }
        assert_eq!(Cloud::ALL.len(), table.len());
    }
}
