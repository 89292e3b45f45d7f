#![allow(clippy::unwrap_used)]
//! Callback URL policy (protocol §7.1, §12 items 30 and 83; decisions item 8).

use std::net::IpAddr;

use efgs_core::callback_url::{
    AddressPolicy, CallbackHost, CallbackUrlError, IpCidr, MAX_URL_CHARS, REASON, blocked_range,
    check_addresses, check_url_and_addresses, parse_callback_url,
};
use time::macros::date;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn none() -> AddressPolicy {
    AddressPolicy::default()
}

/// The full check as the server runs it for an IP literal (no DNS).
fn check_literal(url: &str) -> Result<(), CallbackUrlError> {
    let u = parse_callback_url(url)?;
    check_url_and_addresses(&u, &[], &none())
}

fn assert_forbidden(url: &str) {
    match check_literal(url) {
        Err(e @ CallbackUrlError::ForbiddenAddress { .. }) => {
            assert_eq!(e.code(), "callback-url-forbidden-address");
            assert!(e.to_string().starts_with("Callback URL is invalid: "));
        }
        other => panic!("{url}: expected ForbiddenAddress, got {other:?}"),
    }
}

fn assert_unparsable(url: &str) {
    match parse_callback_url(url) {
        Err(e @ CallbackUrlError::Unparsable { .. }) => {
            assert_eq!(e.code(), "callback-url-unparsable");
        }
        other => panic!("{url}: expected Unparsable, got {other:?}"),
    }
}

// --- §7.1 negative literals -------------------------------------------------------------------

#[test]
fn rejects_teststring() {
    assert_unparsable("teststring1234");
}

#[test]
fn rejects_unbracketed_ipv6() {
    assert_unparsable("https://::1");
}

#[test]
fn rejects_invalid_ipv6_literal() {
    assert_unparsable("https://fd9e:35ga:352e:1212::1");
    assert_unparsable("https://[fd9e:35ga:352e:1212::1]");
}

#[test]
fn rejects_http() {
    for u in [
        "http://google.com",
        "http://example.org/cb",
        "ftp://example.org/",
    ] {
        match parse_callback_url(u) {
            Err(e @ CallbackUrlError::NotHttps { .. }) => {
                assert_eq!(e.code(), "callback-url-not-https");
                assert_eq!(e.reason(), "Callback URL is invalid");
            }
            other => panic!("{u}: {other:?}"),
        }
    }
}

#[test]
fn accepts_upper_case_scheme() {
    let u = parse_callback_url("HTTPS://Example.ORG/cb").unwrap();
    assert_eq!(u.as_str(), "https://example.org/cb");
    assert_eq!(u.original(), "HTTPS://Example.ORG/cb");
}

#[test]
fn rejects_query() {
    for u in [
        "https://notify.me/?you=evil_sql_injection",
        "https://host.example/cb?abc=123",
        "https://host.example/?",
        "https://host.example?",
        "https://host.example/cb?#frag",
    ] {
        match parse_callback_url(u) {
            Err(e @ CallbackUrlError::HasQuery) => assert_eq!(e.code(), "callback-url-has-query"),
            other => panic!("{u}: {other:?}"),
        }
    }
}

#[test]
fn rejects_127_0_0_1() {
    assert_forbidden("https://127.0.0.1");
}

#[test]
fn rejects_10_2_5_6() {
    assert_forbidden("https://10.2.5.6");
}

#[test]
fn rejects_100_64_23_5() {
    assert_forbidden("https://100.64.23.5");
}

#[test]
fn rejects_169_254_85_69() {
    assert_forbidden("https://169.254.85.69");
}

#[test]
fn rejects_172_16_5_3() {
    assert_forbidden("https://172.16.5.3");
}

#[test]
fn rejects_192_168_178_5_and_58() {
    assert_forbidden("https://192.168.178.5");
    assert_forbidden("https://192.168.178.58");
}

#[test]
fn rejects_zero_host() {
    // `https://0` is the IPv4 address 0.0.0.0.
    let u = parse_callback_url("https://0").unwrap();
    assert_eq!(u.host(), &CallbackHost::Ip(ip("0.0.0.0")));
    assert_forbidden("https://0");
}

#[test]
fn rejects_octal_loopback() {
    let u = parse_callback_url("https://0177.0.0.1/callback").unwrap();
    assert_eq!(u.ip_literal(), Some(ip("127.0.0.1")));
    assert_forbidden("https://0177.0.0.1/callback");
}

#[test]
fn rejects_octal_cgnat() {
    let u = parse_callback_url("https://0144.0100.0.1/callback").unwrap();
    assert_eq!(u.ip_literal(), Some(ip("100.64.0.1")));
    assert_forbidden("https://0144.0100.0.1/callback");
}

#[test]
fn rejects_hex_and_integer_loopback() {
    assert_forbidden("https://0x7f.1/");
    assert_forbidden("https://2130706433/");
    assert_forbidden("https://0x7f000001/");
}

#[test]
fn rejects_unspecified_ipv6_with_port() {
    let u = parse_callback_url("https://[::]:80").unwrap();
    assert_eq!(u.port(), 80);
    assert_eq!(u.ip_literal(), Some(ip("::")));
    assert_forbidden("https://[::]:80");
}

#[test]
fn rejects_ipv6_loopback() {
    assert_forbidden("https://[::1]/");
}

#[test]
fn rejects_ipv4_mapped_ipv6_loopback() {
    let u = parse_callback_url("https://[::ffff:127.0.0.1]/cb").unwrap();
    assert_eq!(u.ip_literal(), Some(ip("::ffff:7f00:1")));
    assert_forbidden("https://[::ffff:127.0.0.1]/cb");
    assert_forbidden("https://[::ffff:192.168.1.1]/cb");
}

#[test]
fn localhost_name_rejected_outright() {
    // Decision: `localhost` and `*.localhost` never reach DNS (RFC 6761).
    for u in [
        "https://localhost",
        "https://LOCALHOST/cb",
        "https://localhost./",
        "https://api.localhost/",
        "https://localhost:8443/x",
    ] {
        match parse_callback_url(u) {
            Err(e @ CallbackUrlError::LoopbackName { .. }) => {
                assert_eq!(e.code(), "callback-url-loopback-name");
            }
            other => panic!("{u}: {other:?}"),
        }
    }
}

#[test]
fn localhost_like_names_are_fine() {
    assert!(parse_callback_url("https://localhost.example.org/").is_ok());
    assert!(parse_callback_url("https://mylocalhost/").is_ok());
}

#[test]
fn loopback_resolution_rejected() {
    // A name resolving to loopback (as `localhost` would) is refused by the address check.
    let u = parse_callback_url("https://loopback.example/").unwrap();
    for a in ["127.0.0.1", "::1"] {
        assert!(matches!(
            check_url_and_addresses(&u, &[ip(a)], &none()),
            Err(CallbackUrlError::ForbiddenAddress {
                range: "loopback",
                ..
            })
        ));
    }
}

// --- positive cases --------------------------------------------------------------------------

#[test]
fn example_org_with_public_address_passes() {
    let u = parse_callback_url("https://example.org").unwrap();
    assert_eq!(u.host(), &CallbackHost::Domain("example.org".into()));
    assert_eq!(u.port(), 443);
    assert!(
        check_url_and_addresses(
            &u,
            &[
                ip("93.184.215.14"),
                ip("2606:2800:21f:cb07:6820:80da:af6b:8b2c")
            ],
            &none()
        )
        .is_ok()
    );
}

#[test]
fn fragment_port_path_userinfo_allowed() {
    let u = parse_callback_url("https://cb.example.net:8443/efgs/notify#frag").unwrap();
    assert_eq!(u.port(), 8443);
    assert_eq!(u.url().path(), "/efgs/notify");
    assert_eq!(u.url().fragment(), Some("frag"));
    assert!(parse_callback_url("https://user:pw@cb.example.net/").is_ok());
}

#[test]
fn public_ip_literal_passes() {
    assert!(check_literal("https://8.8.8.8/cb").is_ok());
    assert!(check_literal("https://[2001:4860:4860::8888]/cb").is_ok());
}

#[test]
fn reference_octal_oddities_not_blocked() {
    // The reference blocked 177.0.0.0/8 and 144.64.0.0/10 by accident; they are public.
    assert!(check_literal("https://177.1.2.3/").is_ok());
    assert!(check_literal("https://144.64.0.1/").is_ok());
}

#[test]
fn request_url_adds_batch_tag_and_date() {
    let u = parse_callback_url("https://cb.example.net/efgs/notify#frag").unwrap();
    assert_eq!(
        u.request_url("20240115-3", date!(2024 - 01 - 05)).as_str(),
        "https://cb.example.net/efgs/notify?batchTag=20240115-3&date=2024-01-05"
    );
}

// --- length and host -------------------------------------------------------------------------

#[test]
fn length_limit_256() {
    let base = "https://cb.example.net/";
    let ok = format!("{base}{}", "a".repeat(MAX_URL_CHARS - base.len()));
    assert_eq!(ok.len(), 256);
    assert!(parse_callback_url(&ok).is_ok());
    let long = format!("{ok}a");
    match parse_callback_url(&long) {
        Err(e @ CallbackUrlError::TooLong { length: 257, .. }) => {
            assert_eq!(e.code(), "callback-url-too-long");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_host_rejected() {
    assert!(parse_callback_url("https://").is_err());
    assert!(
        parse_callback_url("https:///path")
            .is_ok_and(|u| u.host() != &CallbackHost::Domain(String::new()))
    );
}

// --- all-addresses rule and policy -------------------------------------------------------------

#[test]
fn empty_address_list_rejected() {
    match check_addresses(&[], &none()) {
        Err(e @ CallbackUrlError::NoAddresses) => assert_eq!(e.code(), "callback-url-unresolvable"),
        other => panic!("{other:?}"),
    }
    let u = parse_callback_url("https://example.org").unwrap();
    assert!(matches!(
        check_url_and_addresses(&u, &[], &none()),
        Err(CallbackUrlError::NoAddresses)
    ));
}

#[test]
fn one_public_one_private_rejected() {
    let u = parse_callback_url("https://example.org").unwrap();
    let r = check_url_and_addresses(&u, &[ip("93.184.215.14"), ip("10.0.0.7")], &none());
    match r {
        Err(CallbackUrlError::ForbiddenAddress { address, range }) => {
            assert_eq!(address, ip("10.0.0.7"));
            assert_eq!(range, "private-use");
        }
        other => panic!("{other:?}"),
    }
    // And the other order: not only the first address counts.
    assert!(check_addresses(&[ip("10.0.0.7"), ip("93.184.215.14")], &none()).is_err());
    assert!(check_addresses(&[ip("2606:4700::1"), ip("fd00::1")], &none()).is_err());
}

#[test]
fn error_message_does_not_reveal_address() {
    let e = check_addresses(&[ip("10.1.2.3")], &none()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Callback URL is invalid: host resolves to a private-use address"
    );
    assert!(e.to_string().starts_with(REASON));
}

#[test]
fn allowed_cidr_overrides() {
    let policy = AddressPolicy {
        allowed: vec![
            IpCidr::parse("10.0.0.0/8").unwrap(),
            IpCidr::parse("127.0.0.1").unwrap(),
        ],
    };
    assert!(check_addresses(&[ip("10.2.5.6")], &policy).is_ok());
    assert!(check_addresses(&[ip("127.0.0.1")], &policy).is_ok());
    assert!(check_addresses(&[ip("::ffff:10.9.9.9")], &policy).is_ok());
    // Outside the allowed networks the normal rules apply.
    assert!(check_addresses(&[ip("127.0.0.2")], &policy).is_err());
    assert!(check_addresses(&[ip("192.168.1.1")], &policy).is_err());
    assert!(check_addresses(&[ip("10.2.5.6"), ip("192.168.1.1")], &policy).is_err());
    let u = parse_callback_url("https://127.0.0.1:8443/cb").unwrap();
    assert!(check_url_and_addresses(&u, &[], &policy).is_ok());
}

#[test]
fn allowed_ipv6_cidr() {
    let policy = AddressPolicy {
        allowed: vec![IpCidr::parse("fd00:1234::/32").unwrap()],
    };
    assert!(check_addresses(&[ip("fd00:1234::5")], &policy).is_ok());
    assert!(check_addresses(&[ip("fd00:1235::5")], &policy).is_err());
}

// --- special-purpose ranges --------------------------------------------------------------------

#[test]
fn every_special_range_blocked() {
    for (a, name) in [
        ("0.0.0.0", "this-network"),
        ("0.1.2.3", "this-network"),
        ("10.255.255.255", "private-use"),
        ("100.64.0.0", "shared (CGNAT)"),
        ("100.127.255.255", "shared (CGNAT)"),
        ("127.255.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("172.31.255.255", "private-use"),
        ("192.0.0.8", "IETF protocol assignments"),
        ("192.0.2.1", "documentation"),
        ("192.88.99.1", "6to4 relay anycast"),
        ("192.168.0.1", "private-use"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.255", "benchmarking"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::127.0.0.1", "IPv4-compatible (deprecated)"),
        ("::8.8.8.8", "IPv4-compatible (deprecated)"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.1.1", "link-local"),
        ("64:ff9b::10.0.0.1", "private-use"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b:1::1", "local-use IPv4/IPv6 translation"),
        ("100::1", "discard-only"),
        ("2001::1", "Teredo"),
        ("2001:2::1", "benchmarking"),
        ("2001:10::1", "ORCHID"),
        ("2001:20::1", "ORCHIDv2"),
        ("2001:100::1", "IETF protocol assignments"),
        ("2001:db8::1", "documentation"),
        ("2002:c0a8:101::1", "6to4"),
        ("3fff::1", "documentation"),
        ("5f00::1", "segment routing"),
        ("fc00::1", "unique-local"),
        ("fd9e:35aa:352e:1212::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "site-local (deprecated)"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        ("::ffff:0:0:1", "non-global IPv6"),
        ("4000::1", "non-global IPv6"),
        ("1::1", "non-global IPv6"),
    ] {
        assert_eq!(blocked_range(ip(a)), Some(name), "{a}");
        assert!(check_addresses(&[ip(a)], &none()).is_err(), "{a}");
    }
}

#[test]
fn public_addresses_pass() {
    for a in [
        "1.1.1.1",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.255",
        "192.0.3.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2001:200::1",
        "2001:4860:4860::8888",
        "2003::1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80e::200e",
        "3ffe::1",
    ] {
        assert_eq!(blocked_range(ip(a)), None, "{a}");
        assert!(check_addresses(&[ip(a)], &none()).is_ok(), "{a}");
    }
}

// --- CIDR type -----------------------------------------------------------------------------------

#[test]
fn cidr_parse_and_contains() {
    let c = IpCidr::parse("10.0.0.0/8").unwrap();
    assert_eq!(c.to_string(), "10.0.0.0/8");
    assert!(c.contains(ip("10.0.0.0")));
    assert!(c.contains(ip("10.255.255.255")));
    assert!(!c.contains(ip("11.0.0.0")));
    assert!(!c.contains(ip("::ffff:10.0.0.1")));
    let all: IpCidr = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains(ip("255.1.2.3")));
    assert!(!all.contains(ip("::1")));
    let v6 = IpCidr::parse("2001:db8::/32").unwrap();
    assert!(v6.contains(ip("2001:db8:ffff::1")));
    assert!(!v6.contains(ip("2001:db9::1")));
    assert_eq!(IpCidr::parse("::1").unwrap().prefix(), 128);
    assert_eq!(IpCidr::parse("1.2.3.4").unwrap().prefix(), 32);
}

#[test]
fn cidr_parse_errors() {
    for s in [
        "",
        "10.0.0.0/",
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/8/8",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.1.0.0/8",
        "0177.0.0.0/8",
        "10.0.0/8",
        "example.org/8",
        "fd00::1/8",
        "10.0.0.0/0008",
    ] {
        assert!(IpCidr::parse(s).is_err(), "{s:?}");
    }
}

#[test]
fn cidr_mapped_ranges_are_the_ipv4_ranges_they_denote() {
    let mapped = IpCidr::parse("::ffff:0:0/96").unwrap();
    assert_eq!(mapped.to_string(), "0.0.0.0/0");
    assert_eq!(mapped.prefix(), 0);
    let ten = IpCidr::parse("::ffff:10.0.0.0/104").unwrap();
    assert_eq!(ten, IpCidr::parse("10.0.0.0/8").unwrap());
    assert!(ten.contains(ip("10.1.2.3")));
    // Not a mapped range: stays IPv6.
    assert_eq!(IpCidr::parse("::/96").unwrap().to_string(), "::/96");
    assert_eq!(IpCidr::LOOPBACK_V4, IpCidr::parse("127.0.0.0/8").unwrap());
    assert_eq!(IpCidr::LOOPBACK_V6, IpCidr::parse("::1").unwrap());
    assert_eq!(IpCidr::parse(" 10.0.0.0/8 ").unwrap().prefix(), 8);
}

#[test]
fn cidr_error_codes_and_suggestion() {
    let code = |s: &str| IpCidr::parse(s).unwrap_err().code();
    assert_eq!(code("10.0.0.1/8"), "cidr-host-bits");
    assert_eq!(code("fd00::1/8"), "cidr-host-bits");
    assert_eq!(code("10.0.0.0/33"), "cidr-prefix");
    assert_eq!(code("10.0.0.0/+8"), "cidr-prefix");
    assert_eq!(code("::/129"), "cidr-prefix");
    assert_eq!(code("10.0.0.0/"), "cidr-prefix");
    assert_eq!(code("example.org"), "cidr-address");
    assert_eq!(code("0177.0.0.0/8"), "cidr-address");
    let e = IpCidr::parse("10.1.2.3/8").unwrap_err();
    assert!(e.to_string().contains("10.0.0.0/8"), "{e}");
    assert!(IpCidr::new(ip("10.1.0.0"), 8).is_err());
    assert!(IpCidr::new(ip("10.0.0.0"), 33).is_err());
}
