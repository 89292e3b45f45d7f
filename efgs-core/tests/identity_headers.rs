//! The authentication headers: thumbprint normalisation and DN parsing (protocol §2,
//! §12 items 36-46, decisions item 1).
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use efgs_core::identity::{
    IdentityError, IdentityErrorKind, MISSING_COUNTRY_REASON, country_from_dn,
    identity_from_headers, normalise_thumbprint,
};

/// The auth_de_rsa thumbprint of vectors.json, hex and Base64.
const HEX: &str = "98b6066b9afcdea8f929e4dc85239eae125fb09191e12e423171c8f879ca6bce";
const B64: &str = "mLYGa5r83qj5KeTchSOerhJfsJGR4S5CMXHI+HnKa84=";

// ------------------------------------------------------------------------------ thumbprints

#[test]
fn hex_lower_and_upper_case() {
    assert_eq!(normalise_thumbprint(HEX).unwrap().as_str(), HEX);
    assert_eq!(
        normalise_thumbprint(&HEX.to_uppercase()).unwrap().as_str(),
        HEX
    );
    let mixed: String = HEX
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    assert_eq!(normalise_thumbprint(&mixed).unwrap().as_str(), HEX);
}

#[test]
fn base64_forms_item_43() {
    assert_eq!(normalise_thumbprint(B64).unwrap().as_str(), HEX);
    // Padding optional.
    assert_eq!(
        normalise_thumbprint(B64.trim_end_matches('='))
            .unwrap()
            .as_str(),
        HEX
    );
    // The vector's Base64 is the standard encoding of the raw digest.
    assert_eq!(STANDARD.encode(hex::decode(HEX).unwrap()), B64);
}

#[test]
fn url_encoded_base64_item_42() {
    // As Java's URLEncoder writes it: '+' → %2B, '=' → %3D, '/' → %2F.
    let encoded = B64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    assert!(encoded.contains('%'));
    assert_eq!(normalise_thumbprint(&encoded).unwrap().as_str(), HEX);
    // Lower-case escapes.
    let lower = B64.replace('+', "%2b").replace('=', "%3d");
    assert_eq!(normalise_thumbprint(&lower).unwrap().as_str(), HEX);
    // Only the padding escaped: the literal '+' is kept as '+', not form-decoded to a space
    // (the reference would turn it into a space and fail).
    let only_pad = B64.replace('=', "%3D");
    assert!(only_pad.contains('+'));
    assert_eq!(normalise_thumbprint(&only_pad).unwrap().as_str(), HEX);
}

#[test]
fn garbage_thumbprints_items_39_and_12() {
    for bad in [
        "randomString",
        "trashHash",
        "",
        " ",
        // 63 and 65 hex characters.
        &HEX[..63],
        &format!("{HEX}0"),
        // A sign prefix the Java BigInteger parser would accept.
        &format!("+{}", &HEX[1..]),
        // Malformed escapes.
        "%zz",
        "mLYGa5r83qj5KeTchSOerhJfsJGR4S5CMXHI+HnKa84%3",
        // Whitespace inside.
        "mLYGa5r83qj5KeTc hSOerhJfsJGR4S5CMXHI+HnKa84=",
        // A form-decoded '+' (space) does not come back.
        "mLYGa5r83qj5KeTchSOerhJfsJGR4S5CMXHI HnKa84=",
    ] {
        assert!(normalise_thumbprint(bad).is_none(), "{bad:?} accepted");
    }
}

#[test]
fn base64_of_other_lengths_is_refused() {
    // 31 bytes: the reference would accept it and produce 62 hex characters.
    assert!(normalise_thumbprint(&STANDARD.encode([0xabu8; 31])).is_none());
    assert!(normalise_thumbprint(&STANDARD.encode([0xabu8; 33])).is_none());
    assert!(normalise_thumbprint(&STANDARD.encode([0xabu8; 20])).is_none());
    // 32 bytes including leading zeros keep all 64 characters.
    let mut d = [0x11u8; 32];
    d[0] = 0;
    d[1] = 0;
    let t = normalise_thumbprint(&STANDARD_NO_PAD.encode(d)).unwrap();
    assert_eq!(t.as_str(), hex::encode(d));
    assert!(t.as_str().starts_with("0000"));
}

#[test]
fn url_safe_alphabet_is_refused() {
    let safe = URL_SAFE.encode(hex::decode(HEX).unwrap());
    assert_ne!(safe, B64);
    assert!(normalise_thumbprint(&safe).is_none());
}

// ------------------------------------------------------------------------------ DN

#[test]
fn dn_plain_and_url_encoded_item_41() {
    assert_eq!(country_from_dn("C=DE").unwrap(), "DE");
    assert_eq!(
        country_from_dn(
            "ST%3dSome-State%2c%20C%3dDE%2c%20O%3dInternet%20Widgits%20Pty%20Ltd%2c%20CN%3dTest"
        )
        .unwrap(),
        "DE"
    );
    assert_eq!(
        country_from_dn("ST%3DSome-State%2C+C%3DDE%2C+O%3DTest").unwrap(),
        "DE"
    );
    // nginx's RFC 2253 rendering (reverse order).
    assert_eq!(
        country_from_dn("CN=client,O=Test Firma GmbH,C=DE").unwrap(),
        "DE"
    );
}

#[test]
fn dn_without_country_item_44() {
    let err = country_from_dn("O=Test Firma GmbH,U=Abteilung XYZ,TR=test").unwrap_err();
    assert!(matches!(err, IdentityError::MissingCountry));
    assert_eq!(err.to_string(), MISSING_COUNTRY_REASON);
    assert_eq!(err.kind(), IdentityErrorKind::BadRequest);
    assert_eq!(err.code(), "missing-country");
    assert!(matches!(
        country_from_dn(""),
        Err(IdentityError::MissingCountry)
    ));
    // CN contains a C but is not C.
    assert!(matches!(
        country_from_dn("CN=C,O=C"),
        Err(IdentityError::MissingCountry)
    ));
    // An empty C value counts as no C.
    assert!(matches!(
        country_from_dn("C= ,O=x"),
        Err(IdentityError::MissingCountry)
    ));
}

#[test]
fn dn_malformed_parts_item_45() {
    assert_eq!(
        country_from_dn("O=Test Firma GmbH,C=DE,U=,TR,TT=43").unwrap(),
        "DE"
    );
    // Parts with more than two pieces are skipped, so the C hidden in them is not seen.
    assert!(matches!(
        country_from_dn("O=a=b,C=DE=x"),
        Err(IdentityError::MissingCountry)
    ));
    // Trailing '=' pieces vanish (Java split): "C==" is one piece, skipped.
    assert_eq!(country_from_dn("C==,C=FR").unwrap(), "FR");
    // A leading empty key is kept as a key "" and ignored.
    assert_eq!(country_from_dn("=x,C=NL").unwrap(), "NL");
}

#[test]
fn dn_duplicate_keys_item_46_first_wins() {
    assert_eq!(
        country_from_dn("O=Test Firma GmbH,O=Test Firma GmbH,C=DE").unwrap(),
        "DE"
    );
    assert_eq!(country_from_dn("C=DE,C=FR").unwrap(), "DE");
    assert_eq!(country_from_dn("C=FR,O=x,c=DE").unwrap(), "FR");
}

#[test]
fn dn_key_case_and_trimming() {
    assert_eq!(country_from_dn("c=DE").unwrap(), "DE");
    assert_eq!(country_from_dn("O=x,  C  =  DE  ").unwrap(), "DE");
    assert_eq!(country_from_dn("O=x,\tC=DE\t").unwrap(), "DE");
    // The value is not upper-cased (the lookup then fails, as in the reference).
    assert_eq!(country_from_dn("C=de").unwrap(), "de");
    // '+' is a space after form decoding: trimmed away.
    assert_eq!(country_from_dn("O=a+b,+C=DE+").unwrap(), "DE");
    // %-escaped UTF-8 in other parts is fine.
    assert_eq!(country_from_dn("O=M%C3%BCller,C=AT").unwrap(), "AT");
}

#[test]
fn dn_malformed_escape_is_400_not_500() {
    for bad in ["C=DE,O=%zz", "C=DE%", "C=D%4", "O=%g1,C=DE"] {
        let err = country_from_dn(bad).unwrap_err();
        assert!(matches!(err, IdentityError::MalformedDn { .. }), "{bad}");
        assert_eq!(err.kind(), IdentityErrorKind::BadRequest);
        assert_eq!(err.code(), "malformed-dn");
    }
}

// ------------------------------------------------------------------------------ both headers

#[test]
fn valid_headers_item_40() {
    let id = identity_from_headers(Some(HEX), Some("C=DE")).unwrap();
    assert_eq!(id.thumbprint.as_str(), HEX);
    assert_eq!(id.country, "DE");
    let id = identity_from_headers(Some(B64), Some("O%3dx%2cC%3dDE")).unwrap();
    assert_eq!(id.thumbprint.as_str(), HEX);
    assert_eq!(id.country, "DE");
}

#[test]
fn missing_headers_items_36_to_38() {
    let cases: [(Option<&str>, Option<&str>, &str); 3] = [
        (Some(HEX), None, "missing-dn"),
        (None, Some("C=DE"), "missing-thumbprint"),
        (None, None, "missing-thumbprint"),
    ];
    for (t, dn, code) in cases {
        let err = identity_from_headers(t, dn).unwrap_err();
        assert_eq!(
            err.kind(),
            IdentityErrorKind::Unauthenticated,
            "{t:?} {dn:?}"
        );
        assert_eq!(err.code(), code);
    }
}

#[test]
fn unreadable_thumbprint_is_treated_as_missing_item_39() {
    for t in ["randomString", "trashHash"] {
        let err = identity_from_headers(Some(t), Some("C=DE")).unwrap_err();
        assert!(matches!(err, IdentityError::UnreadableThumbprint));
        assert_eq!(err.kind(), IdentityErrorKind::Unauthenticated);
    }
}

#[test]
fn missing_credentials_win_over_a_bad_dn() {
    // The reference checks presence (403) before it parses the DN (400).
    let err = identity_from_headers(Some("randomString"), Some("O=no country")).unwrap_err();
    assert_eq!(err.kind(), IdentityErrorKind::Unauthenticated);
    let err = identity_from_headers(None, Some("O=%zz")).unwrap_err();
    assert_eq!(err.kind(), IdentityErrorKind::Unauthenticated);
    // With a good thumbprint the DN errors show.
    let err = identity_from_headers(Some(HEX), Some("O=no country")).unwrap_err();
    assert!(matches!(err, IdentityError::MissingCountry));
}
