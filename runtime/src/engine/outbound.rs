//! Which outgoing HTTP requests an HTTP function may make: its
//! `allowedOutboundHosts` (a wasmfc extension field), in the syntax of
//! Spin's `allowed_outbound_hosts`.
//!
//! An entry is `scheme://host[:port]`: scheme `http`, `https` or `*`; host
//! a name, an IP address, `*` or `*.suffix`; port a number or `*` (absent:
//! the scheme's default port). A bare host name (`api.example.com`) allows
//! that host on any scheme and port, and a bare `*` any public host.
//!
//! A wildcard host (`*`, `*.example.com`) reaches **public addresses
//! only**: a guest allowed "everything" must not reach loopback, link-local
//! or private addresses — wasmfc's own API, a cloud metadata service, the
//! rest of the operator's network. Such hosts need an entry that names
//! them (`http://127.0.0.1:8080`, `http://localhost:*`). For a wildcard
//! match the name is resolved here and every address it resolves to must
//! be public; a plain-`http` request is then sent to the address that was
//! checked (the `Host` header keeps the name), so a DNS answer that
//! changes between the check and the connection (rebinding) cannot send
//! it elsewhere. An `https` request is connected by name again, and a
//! rebound address would have to present a certificate for that name.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A parsed allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: Pattern,
    host: HostPattern,
    /// `None`: any port.
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Exactly(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: any public host.
    Any,
    /// `*.example.com`: any public host under the suffix (`.example.com`).
    Under(String),
    /// A name or address, lower-case (IPv6 without brackets).
    Exactly(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// The scheme's default port (80 for http, 443 for https).
    Default,
    Exactly(u16),
}

/// What checking a request decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by an entry that names the host: connect as asked.
    Named,
    /// Allowed by a wildcard entry: only to public addresses.
    PublicOnly,
    Denied,
}

impl AllowList {
    /// Parses entries; the error names the bad one.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, String> {
        let entries = entries
            .iter()
            .map(|e| Entry::parse(e.as_ref()).map_err(|why| format!("'{}': {why}", e.as_ref())))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a request to `scheme://host:port` may go out, and how.
    pub fn decide(&self, scheme: &str, host: &str, port: u16) -> Decision {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let mut decision = Decision::Denied;
        for e in &self.entries {
            if !e.scheme_matches(scheme) || !e.port_matches(scheme, port) {
                continue;
            }
            match &e.host {
                HostPattern::Exactly(h) if *h == host => return Decision::Named,
                HostPattern::Any => decision = Decision::PublicOnly,
                HostPattern::Under(suffix) if host.ends_with(suffix.as_str()) => decision = Decision::PublicOnly,
                _ => {}
            }
        }
        decision
    }
}

impl Entry {
    fn parse(text: &str) -> Result<Entry, String> {
        let text = text.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            // A bare host: any scheme and port.
            return Ok(Entry {
                scheme: Pattern::Any,
                host: HostPattern::parse(text)?,
                port: PortPattern::Any,
            });
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "*" => Pattern::Any,
            s @ ("http" | "https") => Pattern::Exactly(s.to_string()),
            other => return Err(format!("scheme '{other}' is not http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err("an entry is scheme://host[:port], without a path".into());
        }
        let (host, port) = split_port(rest)?;
        Ok(Entry {
            scheme,
            host: HostPattern::parse(host)?,
            port,
        })
    }

    fn scheme_matches(&self, scheme: &str) -> bool {
        match &self.scheme {
            Pattern::Any => true,
            Pattern::Exactly(s) => s.eq_ignore_ascii_case(scheme),
        }
    }

    fn port_matches(&self, scheme: &str, port: u16) -> bool {
        match self.port {
            PortPattern::Any => true,
            PortPattern::Exactly(p) => p == port,
            PortPattern::Default => default_port(scheme) == Some(port),
        }
    }
}

impl HostPattern {
    fn parse(host: &str) -> Result<HostPattern, String> {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host == "*" {
            return Ok(HostPattern::Any);
        }
        if let Some(suffix) = host.strip_prefix("*.") {
            check_name(suffix)?;
            return Ok(HostPattern::Under(format!(".{suffix}")));
        }
        if host.parse::<IpAddr>().is_err() {
            check_name(&host)?;
        }
        Ok(HostPattern::Exactly(host))
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if ok {
        Ok(())
    } else {
        Err("not a host name, an IP address, * or *.domain".into())
    }
}

/// `host[:port]` (IPv6 in brackets) → host and port pattern.
fn split_port(rest: &str) -> Result<(&str, PortPattern), String> {
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("unclosed '[' in the host")?;
        (addr, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => PortPattern::Default,
        Some("*") => PortPattern::Any,
        Some(p) => PortPattern::Exactly(p.parse().map_err(|_| format!("port '{p}' is not a number or *"))?),
    };
    Ok((host, port))
}

pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Whether `ip` is a public unicast address: not loopback, private,
/// link-local, shared (CGNAT), unspecified, multicast, broadcast or
/// documentation space, in IPv4 or IPv6 (IPv4-mapped addresses are judged
/// as the IPv4 address they carry).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4)))
}

/// Resolves `host:port` and answers the first address when every address
/// the name resolves to is public; an error says why not.
pub async fn resolve_public(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("cannot resolve {bare}: {e}"))?
            .collect(),
    };
    let first = *addrs.first().ok_or_else(|| format!("{bare} resolves to no address"))?;
    if let Some(private) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(format!(
            "{bare} resolves to {}, which is not a public address; a wildcard entry reaches public \
             hosts only, so name this host in allowedOutboundHosts to allow it",
            private.ip()
        ));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(entries).unwrap()
    }

    #[test]
    fn entries_parse_as_spin_writes_them() {
        for ok in [
            "*",
            "api.example.com",
            "https://api.example.com",
            "http://127.0.0.1:8080",
            "http://localhost:*",
            "*://*:*",
            "https://*.example.com",
            "http://[::1]:9000",
        ] {
            assert!(AllowList::parse(&[ok]).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://x.com",
            "http://x.com/path",
            "http://x.com:http",
            "",
            "x y",
            "http://[::1",
        ] {
            assert!(AllowList::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn named_hosts_win_and_wildcards_are_public_only() {
        let l = list(&["*", "http://127.0.0.1:8080"]);
        assert_eq!(l.decide("http", "127.0.0.1", 8080), Decision::Named);
        assert_eq!(l.decide("http", "127.0.0.1", 8081), Decision::PublicOnly);
        assert_eq!(l.decide("https", "example.com", 443), Decision::PublicOnly);
        let l = list(&["https://*.example.com"]);
        assert_eq!(l.decide("https", "api.example.com", 443), Decision::PublicOnly);
        assert_eq!(l.decide("https", "example.com", 443), Decision::Denied);
        assert_eq!(l.decide("http", "api.example.com", 80), Decision::Denied);
        assert_eq!(l.decide("https", "api.example.com", 8443), Decision::Denied);
        let l = list(&["API.example.com"]);
        assert_eq!(l.decide("https", "api.EXAMPLE.com", 8443), Decision::Named);
        assert_eq!(list(&[]).decide("http", "x", 80), Decision::Denied);
        assert_eq!(
            list(&["http://[::1]:9000"]).decide("http", "[::1]", 9000),
            Decision::Named
        );
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn resolving_a_private_name_for_a_wildcard_is_refused() {
        let err = resolve_public("localhost", 80).await.unwrap_err();
        assert!(err.contains("not a public address"), "{err}");
        assert!(resolve_public("127.0.0.1", 80).await.is_err());
        assert_eq!(
            resolve_public("93.184.216.34", 80).await.unwrap(),
            "93.184.216.34:80".parse().unwrap()
        );
    }
}
