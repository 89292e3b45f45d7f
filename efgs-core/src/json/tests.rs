use super::*;
#[test]
fn base64_follows_java_rules() {
    let ok =
        |s: &str, v: &[u8]| assert_eq!(java_base64_decode(s.as_bytes()).as_deref(), Some(v), "{s}");
    let bad = |s: &str| assert_eq!(java_base64_decode(s.as_bytes()), None, "{s}");
    ok("", b"");
    ok("QQ==", b"A");
    ok("QQ", b"A");
    ok("QUI=", b"AB");
    ok("QUI", b"AB");
    ok("QUJD", b"ABC");
    ok("QR==", b"A"); // unused bits ignored, like Java
    bad("QQ=");
    bad("Q");
    bad("Q=");
    bad("=");
    bad("QUJD=");
    bad("QQ==QQ==");
    bad("QQ== ");
    bad(" QQ==");
    bad("QU JD");
    bad("_-8=");
    bad("invalidBase64");
}

#[test]
fn java_double_tokens() {
    for t in [
        "1",
        "-1",
        "1.5",
        ".5",
        "1.",
        "1e5",
        "1E-5",
        "1d",
        "2F",
        "NaN",
        "-Infinity",
        "0x1p3",
        "0x.8P-1",
    ] {
        assert!(is_java_double(t), "{t}");
    }
    for t in [
        "", "-", ".", "e5", "1e", "1x", "0x1", "abc", "1..2", "DE", "1-2",
    ] {
        assert!(!is_java_double(t), "{t}");
    }
}

#[test]
fn integers() {
    assert_eq!(parse_text_format_int("0x10"), Ok(16));
    assert_eq!(parse_text_format_int("-0x10"), Ok(-16));
    assert_eq!(parse_text_format_int("010"), Ok(8));
    assert_eq!(parse_text_format_int("0"), Ok(0));
    assert_eq!(parse_text_format_int("+7"), Ok(7));
    assert!(parse_text_format_int("09").is_err());
    assert!(parse_text_format_int("0x").is_err());
    assert!(parse_text_format_int("-").is_err());
    assert!(parse_text_format_int("1.0").is_err());
    assert!(parse_text_format_int("1e3").is_err());
    assert_eq!(parse_quoted_int("010"), Ok(10));
    assert_eq!(parse_quoted_int(""), Ok(0));
    assert!(parse_quoted_int("0x10").is_err());
    assert!(parse_text_format_int(&"9".repeat(100)).unwrap() > i128::from(u32::MAX));
}

#[test]
fn write_string_escapes_like_escape_text() {
    let mut out = String::new();
    write_string(&mut out, "a\"b\\c\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}/ü€😀");
    assert_eq!(
        out,
        "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}/ü€\\ud83d\\ude00\""
    );
}
