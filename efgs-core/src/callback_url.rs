//! Callback URL policy (protocol §7.1, decisions item 8).
//!
//! A callback URL is checked when a subscription is created (`PUT /diagnosiskeys/callback/{id}`)
//! and again before every delivery:
//!
//! 1. [`parse_callback_url`]: at most [`MAX_URL_CHARS`] characters; parses with the WHATWG URL
//!    rules of the `url` crate, which also normalises numeric, octal and hex IPv4 host forms
//!    (`https://0`, `https://0177.0.0.1`, `https://0x7f.1` become `0.0.0.0` and `127.0.0.1`);
//!    scheme `https` (any case); no query at all, not even an empty `?`; a host is required;
//!    fragment, port, path and user info are allowed. The names `localhost` and `*.localhost`
//!    are refused outright (RFC 6761: they are loopback whatever DNS says).
//! 2. The server resolves the host (an IP literal needs no resolution) and calls
//!    [`check_url_and_addresses`] with **every** address it got. Each one must be public
//!    ([`blocked_range`]: the IANA IPv4 and IPv6 special-purpose registries' non-global
//!    entries, multicast, reserved space, and for IPv6 anything outside global unicast
//!    `2000::/3`; IPv4-mapped and NAT64 addresses are judged by their embedded IPv4 address),
//!    unless it lies inside an operator-allowed [`IpCidr`] of the [`AddressPolicy`].
//! 3. The server then connects to one of exactly those checked addresses (no second lookup,
//!    so no DNS rebinding).
//!
//! [`check_callback_url`] runs all three steps against a [`Resolver`] the caller passes in
//! and returns the [`CheckedUrl`] with the only addresses that may be connected to.
//!
//! Differences from the reference, by decision: the reference tested only the first resolved
//! address against a short list, missed IPv4-mapped IPv6 and most special ranges, and (because
//! Java read its octal-looking list entries as decimal) blocked the public ranges
//! 177.0.0.0/8 and 144.64.0.0/10, which efgs-rs does not block.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use time::Date;

/// The reference's reason text for every refused callback URL.
pub const REASON: &str = "Callback URL is invalid";

/// Longest accepted callback URL, in characters (the reference's `url varchar(256)` column).
pub const MAX_URL_CHARS: usize = 256;

/// The host of a callback URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallbackHost {
    /// A DNS name, lower-cased and IDNA-encoded by the URL parser; needs resolving.
    Domain(String),
    /// An IP literal (IPv4 in any numeric form, or bracketed IPv6).
    Ip(IpAddr),
}

/// A callback URL that passed [`parse_callback_url`]. Its addresses are not checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackUrl {
    original: String,
    url: url::Url,
    host: CallbackHost,
    port: u16,
}

impl CallbackUrl {
    /// The host to resolve (or the IP literal to check).
    pub fn host(&self) -> &CallbackHost {
        &self.host
    }

    /// The IP literal, when the host is one.
    pub fn ip_literal(&self) -> Option<IpAddr> {
        match self.host {
            CallbackHost::Ip(ip) => Some(ip),
            CallbackHost::Domain(_) => None,
        }
    }

    /// The port to connect to: the explicit one, or 443.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The normalised URL (lower-case scheme and host, decimal IPv4, path at least `/`).
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The URL exactly as the client sent it. This is what is stored and listed back by
    /// `GET /diagnosiskeys/callback`, as the reference did.
    pub fn original(&self) -> &str {
        &self.original
    }

    /// The parsed URL.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The URL of one notification: this URL (without fragment) plus the query
    /// `batchTag=<tag>&date=<yyyy-MM-dd>` (protocol §7.4 step 4).
    pub fn request_url(&self, batch_tag: &str, date: Date) -> url::Url {
        let mut u = self.url.clone();
        u.set_fragment(None);
        let date = format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        );
        u.query_pairs_mut()
            .append_pair("batchTag", batch_tag)
            .append_pair("date", &date);
        u
    }
}

impl fmt::Display for CallbackUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// Why a callback URL was refused. Every variant displays as
/// `Callback URL is invalid: <detail>` and is answered with status 400 (the reference's text is
/// [`REASON`]). The refused address itself is kept in the variant but not in the message, so
/// the answer does not reveal what internal names resolve to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackUrlError {
    /// More than [`MAX_URL_CHARS`] characters.
    #[error("Callback URL is invalid: longer than {max} characters")]
    TooLong {
        /// Length in characters.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// Not an absolute URL.
    #[error("Callback URL is invalid: not a URL ({source})")]
    Unparsable {
        /// The parser's complaint.
        #[source]
        source: url::ParseError,
    },
    /// The scheme is not `https`.
    #[error("Callback URL is invalid: scheme must be https")]
    NotHttps {
        /// The scheme found (lower case).
        scheme: String,
    },
    /// The URL has a query component (possibly empty).
    #[error("Callback URL is invalid: a query is not allowed")]
    HasQuery,
    /// The URL has no host.
    #[error("Callback URL is invalid: no host")]
    NoHost,
    /// The host is `localhost` or a name under `.localhost`.
    #[error("Callback URL is invalid: host is a loopback name")]
    LoopbackName {
        /// The host name.
        host: String,
    },
    /// The host resolved to no address at all.
    #[error("Callback URL is invalid: host does not resolve")]
    NoAddresses,
    /// One of the host's addresses is not public.
    #[error("Callback URL is invalid: host resolves to a {range} address")]
    ForbiddenAddress {
        /// The refused address.
        address: IpAddr,
        /// Name of the special-purpose range it lies in.
        range: &'static str,
    },
}

impl CallbackUrlError {
    /// A stable kebab-case machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            CallbackUrlError::TooLong { .. } => "callback-url-too-long",
            CallbackUrlError::Unparsable { .. } => "callback-url-unparsable",
            CallbackUrlError::NotHttps { .. } => "callback-url-not-https",
            CallbackUrlError::HasQuery => "callback-url-has-query",
            CallbackUrlError::NoHost => "callback-url-no-host",
            CallbackUrlError::LoopbackName { .. } => "callback-url-loopback-name",
            CallbackUrlError::NoAddresses => "callback-url-unresolvable",
            CallbackUrlError::ForbiddenAddress { .. } => "callback-url-forbidden-address",
        }
    }

    /// The reference's reason text, [`REASON`], for every variant.
    pub fn reason(&self) -> &'static str {
        REASON
    }
}

/// Parses and checks the syntax of a callback URL (step 1 of the module docs).
pub fn parse_callback_url(s: &str) -> Result<CallbackUrl, CallbackUrlError> {
    let length = s.chars().count();
    if length > MAX_URL_CHARS {
        return Err(CallbackUrlError::TooLong {
            length,
            max: MAX_URL_CHARS,
        });
    }
    let url = url::Url::parse(s).map_err(|source| CallbackUrlError::Unparsable { source })?;
    if url.scheme() != "https" {
        return Err(CallbackUrlError::NotHttps {
            scheme: url.scheme().to_owned(),
        });
    }
    if url.query().is_some() {
        return Err(CallbackUrlError::HasQuery);
    }
    let host = match url.host() {
        None => return Err(CallbackUrlError::NoHost),
        Some(url::Host::Ipv4(ip)) => CallbackHost::Ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => CallbackHost::Ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            if d.is_empty() {
                return Err(CallbackUrlError::NoHost);
            }
            let name = d.strip_suffix('.').unwrap_or(d);
            if name == "localhost" || name.ends_with(".localhost") {
                return Err(CallbackUrlError::LoopbackName { host: d.to_owned() });
            }
            CallbackHost::Domain(d.to_owned())
        }
    };
    let port = url.port_or_known_default().unwrap_or(443);
    Ok(CallbackUrl {
        original: s.to_owned(),
        url,
        host,
        port,
    })
}

/// An IP network in CIDR notation: callback [`AddressPolicy::allowed`] ranges and the
/// server's trusted proxies. Host bits are always zero, and an IPv4-mapped IPv6 range
/// (`::ffff:a.b.c.d/n`, n >= 96) is kept as the IPv4 range it denotes, so its breadth is judged
/// correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpCidr {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR string or address/prefix pair that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrParseError {
    /// Not an IP address.
    #[error("`{input}` is not an IP address or CIDR range")]
    Address {
        /// The text given.
        input: String,
    },
    /// The prefix length is not a plain number within the address family's range.
    #[error("`{input}`: the prefix length must be a number from 0 to {max}")]
    Prefix {
        /// The text given.
        input: String,
        /// The longest prefix of the address family.
        max: u8,
    },
    /// Bits after the prefix are set (`10.1.2.3/8`).
    #[error("`{input}` has bits set after the prefix; did you mean {suggestion}?")]
    HostBits {
        /// The text given.
        input: String,
        /// The network with those bits cleared.
        suggestion: String,
    },
}

impl CidrParseError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            CidrParseError::Address { .. } => "cidr-address",
            CidrParseError::Prefix { .. } => "cidr-prefix",
            CidrParseError::HostBits { .. } => "cidr-host-bits",
        }
    }
}

impl IpCidr {
    /// `127.0.0.0/8`.
    pub const LOOPBACK_V4: IpCidr = IpCidr {
        addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
        prefix: 8,
    };
    /// `::1/128`.
    pub const LOOPBACK_V6: IpCidr = IpCidr {
        addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
        prefix: 128,
    };

    /// A network from its address and prefix length. The address must have no bits set after
    /// the prefix (`10.0.0.0/8`, not `10.1.2.3/8`), so typos in configuration are caught.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrParseError> {
        Self::checked(addr, prefix, || format!("{addr}/{prefix}"))
    }

    fn checked(
        addr: IpAddr,
        prefix: u8,
        input: impl Fn() -> String,
    ) -> Result<Self, CidrParseError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrParseError::Prefix {
                input: input(),
                max,
            });
        }
        let masked = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from_bits(a.to_bits() & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from_bits(a.to_bits() & mask128(prefix))),
        };
        if masked != addr {
            return Err(CidrParseError::HostBits {
                input: input(),
                suggestion: format!("{masked}/{prefix}"),
            });
        }
        if let IpAddr::V6(v6) = addr
            && prefix >= 96
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return Ok(IpCidr {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            });
        }
        Ok(IpCidr { addr, prefix })
    }

    /// Parses `10.0.0.0/8`, `fd00::/8`, or a bare address (a single host, `/32` or `/128`),
    /// ignoring surrounding white space. IPv4 must be in dotted decimal without leading zeros;
    /// the prefix is 1 to 3 digits.
    pub fn parse(s: &str) -> Result<Self, CidrParseError> {
        let input = || s.to_owned();
        let t = s.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrParseError::Address { input: input() })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| CidrParseError::Prefix {
                    input: input(),
                    max,
                })?
            }
            Some(_) => {
                return Err(CidrParseError::Prefix {
                    input: input(),
                    max,
                });
            }
        };
        Self::checked(addr, prefix, input)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this network. Families must match: an IPv4 network does not
    /// contain IPv4-mapped IPv6 addresses; callers unwrap those first where they mean the
    /// IPv4 address ([`check_addresses`] and the server's proxy check do).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = mask32(self.prefix);
                ip.to_bits() & m == net.to_bits() & m
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = mask128(self.prefix);
                ip.to_bits() & m == net.to_bits() & m
            }
            _ => false,
        }
    }
}

/// Whether `ip` lies in any of `ranges`, an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a
/// dual-stack listener reports IPv4 peers) taken as the IPv4 address it carries.
pub fn any_contains(ranges: &[IpCidr], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    ranges.iter().any(|c| c.contains(ip))
}

impl FromStr for IpCidr {
    type Err = CidrParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IpCidr::parse(s)
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> serde::Deserialize<'de> for IpCidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        IpCidr::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

/// Which non-public addresses are nevertheless allowed as callback targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Networks whose addresses always pass (test set-ups, private federations). Empty by
    /// default.
    pub allowed: Vec<IpCidr>,
}

impl AddressPolicy {
    fn allows(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowed
            .iter()
            .any(|c| c.contains(ip) || embedded.is_some_and(|e| c.contains(e)))
    }
}

/// (network, prefix, name) of the IPv4 ranges that are never public: the IANA IPv4
/// Special-Purpose Address Registry entries that are not globally reachable, plus the
/// deprecated 6to4 relay anycast, multicast and the reserved 240/4 (with broadcast named first).
const V4_BLOCKED: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "this-network"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private-use"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "shared (CGNAT)"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private-use"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private-use"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

/// (network, prefix, name) of IPv6 ranges refused even though some lie inside `2000::/3`, or
/// named for a clearer message; everything outside `2000::/3` is refused anyway.
const V6_BLOCKED: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, "loopback"),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),
        96,
        "IPv4-compatible (deprecated)",
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "local-use IPv4/IPv6 translation",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only",
    ),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, "Teredo"),
    (
        Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0),
        48,
        "benchmarking",
    ),
    (Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0), 28, "ORCHID"),
    (
        Ipv6Addr::new(0x2001, 0x20, 0, 0, 0, 0, 0, 0),
        28,
        "ORCHIDv2",
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, "6to4"),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),
        16,
        "segment routing",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique-local",
    ),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "site-local (deprecated)",
    ),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`) or well-known NAT64
/// (`64:ff9b::/96`) IPv6 address.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = ip.to_bits();
    let prefix = bits >> 32;
    let mapped = 0xffff_u128;
    let nat64 = 0x0064_ff9b_u128 << 64;
    if prefix == mapped || prefix == nat64 {
        // The low 32 bits are the IPv4 address; the shift above proves the rest.
        Some(Ipv4Addr::from_bits((bits & 0xffff_ffff) as u32))
    } else {
        None
    }
}

/// The name of the special-purpose range `ip` lies in, or `None` for a public address.
///
/// IPv4: the non-global entries of the IANA IPv4 Special-Purpose Address Registry (this
/// network, private use, CGNAT, loopback, link-local, IETF protocol assignments,
/// documentation, benchmarking, 6to4 relay anycast), multicast, reserved and broadcast.
/// IPv6: IPv4-mapped and NAT64 (`64:ff9b::/96`) addresses are judged by their embedded IPv4
/// address; everything outside global unicast `2000::/3` is refused (unspecified, loopback,
/// IPv4-compatible, discard-only, local-use NAT64, unique-local, link-local, site-local,
/// multicast, ...), and inside it the IETF protocol assignments `2001::/23` (Teredo, ORCHID,
/// benchmarking, ...), documentation (`2001:db8::/32`, `3fff::/20`) and 6to4 `2002::/16`.
pub fn blocked_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => V4_BLOCKED
            .iter()
            .find(|(net, p, _)| v4.to_bits() & mask32(*p) == net.to_bits())
            .map(|(_, _, name)| *name),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return blocked_range(IpAddr::V4(v4));
            }
            if let Some((_, _, name)) = V6_BLOCKED
                .iter()
                .find(|(net, p, _)| v6.to_bits() & mask128(*p) == net.to_bits())
            {
                return Some(name);
            }
            // Global unicast is 2000::/3; anything else is reserved or special.
            if v6.to_bits() >> 125 != 0b001 {
                return Some("non-global IPv6");
            }
            None
        }
    }
}

/// Checks every address the callback host resolved to (step 2 of the module docs). The list
/// must not be empty, and each address must be public or inside an allowed network.
pub fn check_addresses(addrs: &[IpAddr], policy: &AddressPolicy) -> Result<(), CallbackUrlError> {
    if addrs.is_empty() {
        return Err(CallbackUrlError::NoAddresses);
    }
    for &address in addrs {
        if policy.allows(address) {
            continue;
        }
        if let Some(range) = blocked_range(address) {
            return Err(CallbackUrlError::ForbiddenAddress { address, range });
        }
    }
    Ok(())
}

/// [`check_addresses`] for a parsed URL: an IP-literal host is checked itself (together with
/// any `addrs` given); a domain host is checked through the addresses it resolved to.
pub fn check_url_and_addresses(
    url: &CallbackUrl,
    addrs: &[IpAddr],
    policy: &AddressPolicy,
) -> Result<(), CallbackUrlError> {
    match url.ip_literal() {
        Some(ip) => {
            let mut all = Vec::with_capacity(addrs.len() + 1);
            all.push(ip);
            all.extend_from_slice(addrs);
            check_addresses(&all, policy)
        }
        None => check_addresses(addrs, policy),
    }
}

/// Resolves host names for the callback URL policy (step 2 of the module docs). efgs-core has
/// no runtime and does no I/O: the server passes its system resolver, tests a resolver they
/// control (to show that a name changing its address cannot reach a refused one).
#[async_trait::async_trait]
pub trait Resolver: Send + Sync + fmt::Debug {
    /// Every address `host` resolves to (the port is a hint for resolvers that need one).
    /// An error or an empty list refuses the URL ([`CallbackUrlError::NoAddresses`]).
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, crate::BoxError>;
}

/// A callback URL whose every address passed the policy: the addresses to connect to, and
/// nothing else (no second resolution between check and connect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl {
    /// The parsed URL.
    pub url: CallbackUrl,
    /// The checked addresses with the URL's port, in the resolver's order.
    pub addrs: Vec<std::net::SocketAddr>,
}

/// The whole policy (steps 1 and 2 of the module docs): parses `s`, resolves its host once
/// with `resolver` (an IP literal is not resolved) and checks every address. The result names
/// the only addresses the caller may connect to. Used at `PUT` and again before every delivery.
pub async fn check_callback_url(
    s: &str,
    resolver: &dyn Resolver,
    policy: &AddressPolicy,
) -> Result<CheckedUrl, CallbackUrlError> {
    let url = parse_callback_url(s)?;
    let ips = match url.host() {
        CallbackHost::Ip(ip) => vec![*ip],
        CallbackHost::Domain(name) => match resolver.resolve(name, url.port()).await {
            Ok(ips) => ips,
            Err(_) => return Err(CallbackUrlError::NoAddresses),
        },
    };
    check_addresses(&ips, policy)?;
    let port = url.port();
    let mut addrs: Vec<std::net::SocketAddr> = Vec::with_capacity(ips.len());
    for ip in ips {
        let a = std::net::SocketAddr::new(ip, port);
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    Ok(CheckedUrl { url, addrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask32(0), 0);
        assert_eq!(mask32(8), 0xff00_0000);
        assert_eq!(mask32(32), u32::MAX);
        assert_eq!(mask128(0), 0);
        assert_eq!(mask128(128), u128::MAX);
    }

    #[test]
    fn tables_are_canonical() {
        for (net, p, name) in V4_BLOCKED {
            assert!(IpCidr::new(IpAddr::V4(*net), *p).is_ok(), "{name}");
        }
        for (net, p, name) in V6_BLOCKED {
            assert!(IpCidr::new(IpAddr::V6(*net), *p).is_ok(), "{name}");
        }
    }

    #[test]
    fn embedded() {
        assert_eq!(
            embedded_ipv4("::ffff:10.0.0.1".parse().unwrap()),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(
            embedded_ipv4("64:ff9b::8.8.8.8".parse().unwrap()),
            Some(Ipv4Addr::new(8, 8, 8, 8))
        );
        assert_eq!(embedded_ipv4("2001:4860::8888".parse().unwrap()), None);
    }
}
