//! The server-side request forgery guard: which URLs wagate may fetch or post to (webhook
//! endpoints, media by URL).

use std::net::IpAddr;

/// Why a URL was refused, in words for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlRefused(pub String);

/// Accepts http(s) URLs without credentials whose host does not resolve to a loopback,
/// private or link-local address (unless private addresses are allowed).
#[derive(Debug, Clone, Copy)]
pub struct UrlGuard {
    allow_private: bool,
}

impl UrlGuard {
    pub fn new(allow_private: bool) -> Self {
        UrlGuard { allow_private }
    }

    /// The parsed URL if wagate may reach it.
    pub async fn check(&self, raw: &str) -> Result<reqwest::Url, UrlRefused> {
        let refuse = |detail: &str| UrlRefused(detail.to_owned());
        let url = reqwest::Url::parse(raw).map_err(|e| UrlRefused(format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse("only http and https URLs are allowed"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("credentials in the URL are not allowed"));
        }
        let host = url.host_str().ok_or_else(|| refuse("the URL has no host"))?;
        if self.allow_private {
            return Ok(url);
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| UrlRefused(format!("cannot resolve {host}")))?
                .map(|a| a.ip())
                .collect(),
        };
        if addresses.iter().any(|ip| is_private(*ip)) {
            return Err(refuse(
                "the URL points at a loopback, private or link-local address (set allow_private_urls to allow)",
            ));
        }
        Ok(url)
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (b & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::248"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
