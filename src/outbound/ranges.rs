//! The addresses a tenant may not aim the engine at, each with the reason a refusal names.
//!
//! The lists follow IANA's special-purpose address registries (RFC 6890 and its updates):
//! every block that is not globally reachable, or that reaches this host, its network or a
//! cloud's metadata service. An IPv6 address that embeds an IPv4 one (IPv4-mapped, the
//! deprecated IPv4-compatible form, NAT64's well-known prefix, 6to4) is judged by the IPv4
//! address it carries as well, so `[::ffff:127.0.0.1]` is loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The IPv4 blocks refused, most specific first (the first match names the reason).
const V4: [(&str, &str); 15] = [
    ("255.255.255.255/32", "broadcast"),
    ("0.0.0.0/8", "unspecified (\"this network\")"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
];

/// The IPv6 blocks refused outright. The blocks that embed an IPv4 address are not here: they
/// are judged by the address they carry ([`embedded_v4`]).
const V6: [(&str, &str); 10] = [
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("2001:2::/48", "benchmarking (RFC 5180)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("fc00::/7", "unique-local (RFC 4193)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
    ("3fff::/20", "documentation (RFC 9637)"),
];

/// Why `address` is refused, or `None` when it is a public address.
pub fn denial_reason(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

/// `address` with an IPv4 address embedded in IPv6 taken out: `::ffff:10.0.0.1` is `10.0.0.1`.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

fn v4_reason(address: Ipv4Addr) -> Option<&'static str> {
    V4.iter().find_map(|(block, reason)| {
        let block: Ipv4Net = block.parse().expect("the deny list's blocks parse");
        block.contains(&address).then_some(*reason)
    })
}

fn v6_reason(address: Ipv6Addr) -> Option<&'static str> {
    let listed = V6.iter().find_map(|(block, reason)| {
        let block: Ipv6Net = block.parse().expect("the deny list's blocks parse");
        block.contains(&address).then_some(*reason)
    });
    listed.or_else(|| embedded_v4(address).and_then(v4_reason))
}

/// The IPv4 address an IPv6 one carries: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, deprecated by RFC 4291 but still routed by some stacks), NAT64's well-known
/// prefix (`64:ff9b::a.b.c.d`, RFC 6052) and 6to4 (`2002:aabb:ccdd::`, RFC 3056).
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = address.segments();
    let low = || {
        Ipv4Addr::new(
            (segments[6] >> 8) as u8,
            segments[6] as u8,
            (segments[7] >> 8) as u8,
            segments[7] as u8,
        )
    };
    match segments {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low()),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses, listed above.
        [0, 0, 0, 0, 0, 0, high, rest] if high != 0 || rest > 1 => Some(low()),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        )),
        _ => None,
    }
}

/// Whether `address` (or the IPv4 address it carries) is inside one of `nets`.
pub fn within(nets: &[IpNet], address: IpAddr) -> bool {
    let canonical = canonical(address);
    nets.iter()
        .any(|net| net.contains(&address) || net.contains(&canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> Option<&'static str> {
        denial_reason(text.parse().unwrap())
    }

    #[test]
    fn it_should_refuse_every_special_purpose_ipv4_block() {
        for (address, expected) in [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.255", "carrier-grade NAT"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.10", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("192.0.0.8", "IETF"),
        ] {
            let found = reason(address).unwrap_or_else(|| panic!("{address} passed"));
            assert!(found.starts_with(expected), "{address}: {found}");
        }
    }

    #[test]
    fn it_should_let_public_addresses_through_beside_the_blocks() {
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "11.0.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4007:80f::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(reason(address), None, "{address}");
        }
    }

    #[test]
    fn it_should_refuse_ipv6_blocks_and_ipv4_addresses_written_as_ipv6() {
        for (address, expected) in [
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:7f00:1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("::192.168.0.1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:7f00:1::", "loopback"),
            ("2002:a9fe:a9fe::1", "link-local"),
        ] {
            let found = reason(address).unwrap_or_else(|| panic!("{address} passed"));
            assert!(found.starts_with(expected), "{address}: {found}");
        }
    }

    #[test]
    fn it_should_find_an_address_in_a_block_whichever_way_it_is_written() {
        let nets: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert!(within(&nets, "127.0.0.1".parse().unwrap()));
        assert!(within(&nets, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(
            !within(&nets, "127.0.0.2".parse().unwrap()),
            "the neighbour"
        );
    }
}
