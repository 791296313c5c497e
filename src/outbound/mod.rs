//! The outbound address guard: requests whose destination a tenant chooses (a polled feed or
//! endpoint, each page link it follows, each redirect hop) may not reach this host, its private
//! networks or a cloud's metadata service. Without it, any user could read the engine's
//! neighbours through a polling trigger (server-side request forgery).
//!
//! **Where it checks.** On the address actually connected to: the guarded client resolves names
//! with [`GuardedResolver`], which hands the connector only permitted addresses, so a name that
//! resolves to a denied address (`localhost`, a DNS rebinding between a check and the connect)
//! never reaches it. A URL whose host is an address literal is not resolved by the client, so
//! [`Guard::check_url`] judges it before the request, and on every redirect hop (the client's
//! redirect policy). The client has no proxy, which would otherwise connect on its behalf.
//!
//! **What passes.** Everything but [`ranges`]' special-purpose blocks, and those too when the
//! operator allows them (`TRIGGER_ENGINE_OUTBOUND_ALLOW`: CIDRs, addresses or host names), for
//! feeds on a private network and for tests whose servers listen on loopback.
//!
//! Operator-set destinations (the executor, Typeform's API) are trusted and use their own clients.
//!
//! # Layout
//! - [`ranges`]: the denied blocks and their reasons, IPv6 forms of IPv4 addresses.
//! - this module: the allow list, the checks, the guarded client and its bounded reads.

pub mod ranges;

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{redirect, Url};

/// The environment variable of the allow list, named in refusals so an operator knows the way out.
pub const ALLOW_OPTION: &str = "TRIGGER_ENGINE_OUTBOUND_ALLOW";

/// The most redirects one request follows: reqwest's own default, which browsers also use.
const MAX_REDIRECTS: usize = 10;

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The destination is (or resolves only to) a denied address.
    #[error("refused to connect to {address} for `{host}`: {reason} addresses are not allowed (an operator may allow them with {ALLOW_OPTION})")]
    Address {
        host: String,
        address: IpAddr,
        reason: &'static str,
    },
    /// A name that always means this host (RFC 6761: `localhost` and its subdomains).
    #[error("refused to connect to `{host}`: it always names this host (an operator may allow it with {ALLOW_OPTION})")]
    Localhost { host: String },
    /// Not an http(s) URL with a host.
    #[error("`{0}` is not an http or https URL with a host")]
    NotHttp(String),
}

/// An entry of the allow list that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{ALLOW_OPTION} entry `{0}` is neither a CIDR, an IP address nor a host name")]
pub struct BadAllowEntry(String);

/// What the operator allows despite the deny list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    nets: Vec<IpNet>,
    /// Lower-case, without a trailing dot.
    hosts: Vec<String>,
}

impl FromStr for Allowed {
    type Err = BadAllowEntry;

    /// A comma-separated list of CIDRs (`10.20.0.0/16`), addresses (`127.0.0.1`, `::1`, the
    /// same as a /32 or /128) and host names (`feeds.internal`); blanks are ignored.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut allowed = Allowed::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                allowed.nets.push(net);
            } else if let Ok(address) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                allowed.nets.push(IpNet::from(address));
            } else if is_host_name(entry) {
                allowed.hosts.push(normal_host(entry));
            } else {
                return Err(BadAllowEntry(entry.to_owned()));
            }
        }
        Ok(allowed)
    }
}

fn is_host_name(entry: &str) -> bool {
    let entry = entry.strip_suffix('.').unwrap_or(entry);
    !entry.is_empty()
        && entry.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn normal_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// The guard's policy: cheap to clone and share between the HTTP edge and the pollers.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Arc<Allowed>,
}

impl Guard {
    pub fn new(allowed: Allowed) -> Self {
        Self {
            allowed: Arc::new(allowed),
        }
    }

    /// Judges `address`, connected to for `host`.
    pub fn check_address(&self, host: &str, address: IpAddr) -> Result<(), Denied> {
        if ranges::within(&self.allowed.nets, address) || self.host_allowed(host) {
            return Ok(());
        }
        match ranges::denial_reason(address) {
            None => Ok(()),
            Some(reason) => Err(Denied::Address {
                host: host.to_owned(),
                address,
                reason,
            }),
        }
    }

    /// Judges what a URL's text alone tells: a host that is an address literal (in any spelling
    /// the URL standard reads as one: `127.1`, `0x7f.1`, `2130706433`, `[::ffff:127.0.0.1]`),
    /// or a name that always means this host. A name that resolves to a denied address passes
    /// here and is refused by the resolver, at the connect.
    pub fn check_url(&self, url: &Url) -> Result<(), Denied> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Denied::NotHttp(url.to_string()));
        }
        let host = match url.host() {
            Some(url::Host::Ipv4(v4)) => {
                return self.check_address(&v4.to_string(), IpAddr::V4(v4));
            }
            Some(url::Host::Ipv6(v6)) => {
                return self.check_address(&format!("[{v6}]"), IpAddr::V6(v6));
            }
            Some(url::Host::Domain(name)) => normal_host(name),
            None => return Err(Denied::NotHttp(url.to_string())),
        };
        if (host == "localhost" || host.ends_with(".localhost")) && !self.host_allowed(&host) {
            return Err(Denied::Localhost { host });
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = normal_host(host.trim_matches(['[', ']']));
        self.allowed.hosts.contains(&host)
    }

    /// A client for tenant-chosen destinations: names resolved through the guard, redirects
    /// judged hop by hop, no proxy, `timeout` for the whole request (body included) and
    /// `connect_timeout` for each connect.
    pub fn client(
        &self,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> reqwest::Result<reqwest::Client> {
        let guard = self.clone();
        let redirects = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match guard.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(denied) => attempt.error(denied),
            }
        });
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .user_agent(concat!("trigger-engine/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .redirect(redirects)
            .dns_resolver(Arc::new(GuardedResolver(self.clone())))
            .build()
    }
}

/// Resolves with the system's resolver (as reqwest does by default), then keeps only the
/// addresses the guard permits: the connector tries nothing else.
struct GuardedResolver(Guard);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_denial = None;
            let permitted: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| match guard.check_address(&host, address.ip()) {
                    Ok(()) => true,
                    Err(denied) => {
                        first_denial.get_or_insert(denied);
                        false
                    }
                })
                .collect();
            match (permitted.is_empty(), first_denial) {
                (true, Some(denied)) => Err(denied.into()),
                _ => Ok(Box::new(permitted.into_iter()) as Addrs),
            }
        })
    }
}

/// The guard's refusal inside a client error, if that is what failed it: the resolver's and the
/// redirect policy's errors come back wrapped in reqwest's and hyper's.
pub fn denial_of<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Denied> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(denied) = error.downcast_ref::<Denied>() {
            return Some(denied);
        }
        cause = error.source();
    }
    None
}

/// Why a bounded read stopped short.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the response is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Client(#[from] reqwest::Error),
}

/// Reads `response`'s body chunk by chunk, abandoning it as soon as it passes `limit` bytes: a
/// hostile source cannot make the engine hold more than the limit (plus one chunk).
pub async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(ReadError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn it_should_read_odd_spellings_of_an_address_as_the_address_they_mean() {
        let guard = Guard::default();
        for spelling in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://017700000001/",
            "http://0177.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:127.0.0.1]/",
            "http://[::1]/",
            "http://0/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "https://10.0.0.1:8443/",
        ] {
            let denied = guard.check_url(&url(spelling));
            assert!(
                matches!(denied, Err(Denied::Address { .. })),
                "{spelling}: {denied:?}"
            );
        }
        assert_eq!(guard.check_url(&url("https://93.184.215.14/feed")), Ok(()));
        assert_eq!(
            guard.check_url(&url("https://blog.example.com/feed")),
            Ok(())
        );
    }

    #[test]
    fn it_should_refuse_names_that_always_mean_this_host() {
        let guard = Guard::default();
        for name in [
            "http://localhost/",
            "http://LOCALHOST./x",
            "http://api.localhost:8080/",
        ] {
            assert!(
                matches!(guard.check_url(&url(name)), Err(Denied::Localhost { .. })),
                "{name}"
            );
        }
        assert!(guard
            .check_url(&url("http://localhost.example.com/"))
            .is_ok());
        assert!(matches!(
            guard.check_url(&url("file:///etc/passwd")),
            Err(Denied::NotHttp(_))
        ));
    }

    #[test]
    fn it_should_admit_exactly_what_the_allow_list_names() {
        let allowed: Allowed = "127.0.0.1, 10.20.0.0/16, feeds.internal., [::1]"
            .parse()
            .unwrap();
        let guard = Guard::new(allowed);
        assert_eq!(guard.check_url(&url("http://127.0.0.1:9000/")), Ok(()));
        assert!(
            guard.check_url(&url("http://127.0.0.2:9000/")).is_err(),
            "the neighbour"
        );
        assert_eq!(guard.check_url(&url("http://[::ffff:127.0.0.1]/")), Ok(()));
        assert_eq!(guard.check_url(&url("http://10.20.3.4/")), Ok(()));
        assert!(guard.check_url(&url("http://10.21.0.1/")).is_err());
        assert_eq!(guard.check_url(&url("http://[::1]/")), Ok(()));
        let name = "feeds.internal";
        assert_eq!(
            guard.check_address(name, "10.9.9.9".parse().unwrap()),
            Ok(())
        );
        assert!(guard
            .check_address("other.internal", "10.9.9.9".parse().unwrap())
            .is_err());
        assert!("not a host!".parse::<Allowed>().is_err());
        assert_eq!("".parse::<Allowed>().unwrap(), Allowed::default());
    }

    #[test]
    fn it_should_name_the_address_the_reason_and_the_way_out_in_a_refusal() {
        let denied = Guard::default()
            .check_url(&url("http://169.254.169.254/"))
            .unwrap_err()
            .to_string();
        assert!(denied.contains("169.254.169.254"), "{denied}");
        assert!(denied.contains("link-local"), "{denied}");
        assert!(denied.contains(ALLOW_OPTION), "{denied}");
    }
}
