//! Penetration suite, identity (issue 9 points 3, 6, 1 and 8): spoofed identity headers from
//! an address that is not a trusted proxy; unknown, revoked, expired and other-country
//! AUTHENTICATION certificates on every route, in both auth modes; the certificate header and
//! duplicated identity headers; revocation across a restart that re-imports the trust list.
//!
//! Every case runs while a well-behaved member state (DE, from 127.0.0.2) downloads and
//! audits, and checks that the attack changed nothing stored (`support::attack`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::sync::Arc;

use base64::Engine as _;
use efgs_core::callback_url::IpCidr;
use efgs_core::model::CertificateType;
use efgs_core::store::TrustListStore as _;
use efgs_testkit::federation::Federation;
use efgs_testkit::national::url_encode;
use efgs_testkit::pki::{CertSpec, GeneratedCert, trust_entry};
use support::Backend;
use support::attack::{Client, GOOD_IP, Mode, Scene, assert_every_route_refused, every_route};
use time::Duration;

http_tests!(
    spoofed_identity_headers_from_non_proxy_address_403,
    spoofed_identity_headers_ignored_in_mtls_403,
    unknown_certificate_403_proxy,
    unknown_certificate_403_mtls,
    revoked_certificate_403_proxy,
    revoked_certificate_403_mtls,
    expired_certificate_403_proxy,
    expired_certificate_403_mtls,
    other_country_certificate_403_proxy,
    other_country_certificate_403_mtls,
    cert_header_not_honoured_without_setting_403,
    duplicated_identity_headers_403,
    revocation_survives_restart,
);

/// A self-signed AUTHENTICATION-capable certificate of `country` (not on the trust list).
fn stranger(fed: &Federation, country: &str, cn: &str) -> (CertSpec, GeneratedCert) {
    let spec = CertSpec {
        client_auth: true,
        ..CertSpec::new(Some(country), cn, fed.now())
    };
    let cert = spec.generate().unwrap();
    (spec, cert)
}

/// PKCS#8 DER of a PEM private key.
fn pem_to_der(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap()
}

/// Puts `cert` on the trust list as an AUTHENTICATION entry of `country`.
async fn onboard(fed: &Federation, cert: &GeneratedCert, country: &str) {
    fed.register(&cert.cert_pem, country, CertificateType::Authentication)
        .await
        .unwrap();
}

/// Identity headers sent from 127.0.0.1 when only 127.0.0.2 is a trusted proxy: every route
/// 403 (`missing-thumbprint`, the headers are ignored), whichever headers and forwarding
/// claims are sent.
async fn spoofed_identity_headers_from_non_proxy_address_403(b: Backend) {
    let scene = &Scene::new(&b, Mode::Proxy, |f| {
        f.trusted_proxies(vec![IpCidr::parse("127.0.0.2/32").unwrap()])
    })
    .await;
    let fed = &scene.fed;
    let de = fed["DE"].credentials();
    let cert = url_encode(&de.auth_cert_pem);
    let variants: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "thumbprint and DN",
            vec![
                ("X-SSL-Client-SHA256", de.auth_thumbprint.as_str()),
                ("X-SSL-Client-DN", &de.auth_dn),
            ],
        ),
        ("certificate", vec![("X-SSL-Client-Cert", &cert)]),
        (
            "all three, forwarding claims",
            vec![
                ("X-SSL-Client-SHA256", de.auth_thumbprint.as_str()),
                ("X-SSL-Client-DN", &de.auth_dn),
                ("X-SSL-Client-Cert", &cert),
                ("X-Forwarded-For", "127.0.0.2"),
                ("X-Real-IP", "127.0.0.2"),
                ("Forwarded", "for=127.0.0.2;proto=https"),
            ],
        ),
    ];
    let variants = &variants;
    let ((), _) = scene
        .under_attack("spoofed identity headers", move || async move {
            for (what, headers) in variants {
                let client = Client::anonymous(fed).with_headers(headers);
                let replies = every_route(scene, &client, "DE", &[]).await;
                assert_every_route_refused(what, &replies, 403, &["missing-thumbprint"]);
            }
        })
        .await;
}

/// mtls mode: a certificate not on the trust list, with DE's identity headers beside it: the
/// headers are ignored and every route is 403.
async fn spoofed_identity_headers_ignored_in_mtls_403(b: Backend) {
    let scene = &Scene::new(&b, Mode::Mtls, |f| f).await;
    let fed = &scene.fed;
    let de = fed["DE"].credentials();
    let cert = url_encode(&de.auth_cert_pem);
    let (spec, unknown) = stranger(fed, "DE", "stranger");
    let client = Client::presenting_cert(fed, &unknown, &spec.dn_header());
    let headers = &[
        ("X-SSL-Client-SHA256", de.auth_thumbprint.as_str()),
        ("X-SSL-Client-DN", de.auth_dn.as_str()),
        ("X-SSL-Client-Cert", cert.as_str()),
    ];
    let client = &client;
    let (replies, _) = scene
        .under_attack("spoofed identity headers", move || {
            every_route(scene, client, "DE", headers)
        })
        .await;
    assert_every_route_refused("mtls spoofed headers", &replies, 403, &["not-authorized"]);
}

async fn unknown_certificate_403(b: Backend, mode: Mode) {
    let scene = &Scene::new(&b, mode, |f| f).await;
    let fed = &scene.fed;
    let (spec, unknown) = stranger(fed, "DE", "stranger");
    let de = fed["DE"].credentials();
    let clients = vec![
        (
            "self-signed, not on the list",
            Client::presenting_cert(fed, &unknown, &spec.dn_header()),
        ),
        (
            "DE's SIGNING certificate",
            Client::presenting(
                fed,
                &pem_to_der(&de.sign_cert_pem),
                &pem_to_der(&de.sign_key_pem),
                &de.auth_dn.replace("national backend", "batch signing"),
            ),
        ),
    ];
    let clients = &clients;
    let ((), _) = scene
        .under_attack("unknown certificates", move || async move {
            for (what, client) in clients {
                let replies = every_route(scene, client, "DE", &[]).await;
                assert_every_route_refused(what, &replies, 403, &["not-authorized"]);
            }
        })
        .await;
}

async fn unknown_certificate_403_proxy(b: Backend) {
    unknown_certificate_403(b, Mode::Proxy).await;
}

async fn unknown_certificate_403_mtls(b: Backend) {
    unknown_certificate_403(b, Mode::Mtls).await;
}

/// NL's AUTHENTICATION certificate is revoked; NL then tries every route: 403
/// `certificate-revoked`.
async fn revoked_certificate_403(b: Backend, mode: Mode) {
    let scene = &Scene::new(&b, mode, |f| f).await;
    let fed = &scene.fed;
    fed.revoke(&fed["NL"].credentials().auth_thumbprint)
        .await
        .unwrap();
    let client = &Client::country(fed, "NL");
    let (replies, _) = scene
        .under_attack("revoked certificate", move || {
            every_route(scene, client, "NL", &[])
        })
        .await;
    assert_every_route_refused("revoked", &replies, 403, &["certificate-revoked"]);
}

async fn revoked_certificate_403_proxy(b: Backend) {
    revoked_certificate_403(b, Mode::Proxy).await;
}

async fn revoked_certificate_403_mtls(b: Backend) {
    revoked_certificate_403(b, Mode::Mtls).await;
}

/// AUTHENTICATION certificates of NL on the trust list but outside their validity (expired a
/// day ago; valid only from tomorrow): every route 403.
async fn expired_certificate_403(b: Backend, mode: Mode) {
    let scene = &Scene::new(&b, mode, |f| f).await;
    let fed = &scene.fed;
    let now = fed.now();
    let mut clients = Vec::new();
    for (what, from, to) in [
        (
            "expired",
            now - Duration::days(400),
            now - Duration::days(1),
        ),
        (
            "not yet valid",
            now + Duration::days(1),
            now + Duration::days(400),
        ),
    ] {
        let spec = CertSpec {
            client_auth: true,
            ..CertSpec::new(Some("NL"), &format!("NL {what}"), now)
        }
        .validity(from, to);
        let cert = spec.generate().unwrap();
        onboard(fed, &cert, "NL").await;
        clients.push((what, Client::presenting_cert(fed, &cert, &spec.dn_header())));
    }
    let clients = &clients;
    let ((), _) = scene
        .under_attack("certificates outside their validity", move || async move {
            for (what, client) in clients {
                let replies = every_route(scene, client, "NL", &[]).await;
                assert_every_route_refused(what, &replies, 403, &[]);
            }
        })
        .await;
}

async fn expired_certificate_403_proxy(b: Backend) {
    expired_certificate_403(b, Mode::Proxy).await;
}

async fn expired_certificate_403_mtls(b: Backend) {
    expired_certificate_403(b, Mode::Mtls).await;
}

/// A certificate whose subject country is not its trust-list country: an NL certificate whose
/// AUTHENTICATION row names FR (the operator signature covers the PEM, not the country), and,
/// in proxy mode, DE's certificate forwarded with another country's DN. Every route 403.
async fn other_country_certificate_403(b: Backend, mode: Mode) {
    let scene = &Scene::new(&b, mode, |f| f).await;
    let fed = &scene.fed;
    let (spec, cert) = stranger(fed, "NL", "NL listed as FR");
    let mut entry = fed
        .pki()
        .sign_entry(&cert.cert_pem, "NL", CertificateType::Authentication)
        .unwrap();
    entry.country = "FR".to_owned();
    let _ = fed
        .store()
        .upsert_trust_entry(trust_entry(&entry, fed.now()))
        .await
        .unwrap();
    let mut clients = vec![(
        "NL certificate listed as FR".to_owned(),
        Client::presenting_cert(fed, &cert, &spec.dn_header()),
    )];
    if mode == Mode::Proxy {
        let de = fed["DE"].credentials();
        for dn in [
            "C=FR",
            "C=NL,O=efgs-testkit DE,CN=DE national backend",
            "c = fr",
        ] {
            clients.push((
                format!("DE thumbprint with DN {dn}"),
                Client::anonymous(fed).with_headers(&[
                    ("X-SSL-Client-SHA256", de.auth_thumbprint.as_str()),
                    ("X-SSL-Client-DN", dn),
                ]),
            ));
        }
    }
    let clients = &clients;
    let ((), _) = scene
        .under_attack("other-country certificates", move || async move {
            for (what, client) in clients {
                let replies = every_route(scene, client, "NL", &[]).await;
                assert_every_route_refused(what, &replies, 403, &["not-authorized"]);
            }
        })
        .await;
}

async fn other_country_certificate_403_proxy(b: Backend) {
    other_country_certificate_403(b, Mode::Proxy).await;
}

async fn other_country_certificate_403_mtls(b: Backend) {
    other_country_certificate_403(b, Mode::Mtls).await;
}

/// Issue 9 point 3: without a setting turning it on, `X-SSL-Client-Cert` is not honoured. A
/// caller whose proxy forwards the thumbprint and DN of an unknown certificate adds FR's
/// certificate (which the audit hands out) as `X-SSL-Client-Cert`; another sends only the
/// certificate header. Every route 403.
async fn cert_header_not_honoured_without_setting_403(b: Backend) {
    let scene = &Scene::new(&b, Mode::Proxy, |f| f).await;
    let fed = &scene.fed;
    let fr_cert = url_encode(&fed["FR"].credentials().auth_cert_pem);
    let (spec, unknown) = stranger(fed, "NL", "stranger");
    let with_proxy_headers = &Client::presenting_cert(fed, &unknown, &spec.dn_header());
    let only_cert = &Client::anonymous(fed);
    let extra = &[("X-SSL-Client-Cert", fr_cert.as_str())];
    let ((), _) = scene
        .under_attack("certificate header", move || async move {
            let replies = every_route(scene, with_proxy_headers, "NL", extra).await;
            assert_every_route_refused("unknown thumbprint + FR cert header", &replies, 403, &[]);
            let replies = every_route(scene, only_cert, "NL", extra).await;
            assert_every_route_refused("FR cert header alone", &replies, 403, &[]);
        })
        .await;
}

/// Issue 9 point 3: an identity header sent twice gets 403, whichever value comes first (a
/// client's own header before the one its proxy appends), and also when both are equal.
async fn duplicated_identity_headers_403(b: Backend) {
    let scene = &Scene::new(&b, Mode::Proxy, |f| f).await;
    let fed = &scene.fed;
    let de = fed["DE"].credentials();
    let nl = fed["NL"].credentials();
    let (de_t, de_dn) = (de.auth_thumbprint.as_str(), de.auth_dn.as_str());
    let (nl_t, nl_dn) = (nl.auth_thumbprint.as_str(), nl.auth_dn.as_str());
    let variants: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "DE's headers before the proxy's NL headers",
            vec![
                ("X-SSL-Client-SHA256", de_t),
                ("X-SSL-Client-DN", de_dn),
                ("X-SSL-Client-SHA256", nl_t),
                ("X-SSL-Client-DN", nl_dn),
            ],
        ),
        (
            "thumbprint twice",
            vec![
                ("X-SSL-Client-SHA256", de_t),
                ("X-SSL-Client-SHA256", nl_t),
                ("X-SSL-Client-DN", nl_dn),
            ],
        ),
        (
            "DN twice",
            vec![
                ("X-SSL-Client-SHA256", nl_t),
                ("X-SSL-Client-DN", nl_dn),
                ("X-SSL-Client-DN", de_dn),
            ],
        ),
        (
            "the same thumbprint twice",
            vec![
                ("X-SSL-Client-SHA256", nl_t),
                ("X-SSL-Client-SHA256", nl_t),
                ("X-SSL-Client-DN", nl_dn),
            ],
        ),
    ];
    let variants = &variants;
    let ((), _) = scene
        .under_attack("duplicated identity headers", move || async move {
            for (what, headers) in variants {
                let client = Client::anonymous(fed).with_headers(headers);
                let replies = every_route(scene, &client, "NL", &[]).await;
                assert_every_route_refused(what, &replies, 403, &[]);
            }
        })
        .await;
}

/// Issue 9 point 1: NL's AUTHENTICATION certificate is revoked; a second instance then starts
/// on the same store and imports the same `trust.import_dir` (entries with `revoked: false`),
/// as a rolling restart does. NL stays refused on both instances and the stored entry stays
/// revoked.
async fn revocation_survives_restart(b: Backend) {
    let scene = &Scene::new(&b, Mode::Proxy, |f| f).await;
    let fed = &scene.fed;
    let nl = fed["NL"].credentials().auth_thumbprint.clone();
    fed.revoke(&nl).await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let anchor = files.path().join("anchor.pem");
    std::fs::write(&anchor, &fed.pki().anchor_pem).unwrap();
    let dir = files.path().join("trust-list");
    std::fs::create_dir(&dir).unwrap();
    for (i, entry) in fed.pki().entries().enumerate() {
        std::fs::write(dir.join(format!("{i:04}.json")), entry.to_json()).unwrap();
    }
    let secret = files.path().join("dup.secret");
    std::fs::write(&secret, b"efgs-testkit duplicate hash secret").unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let env = [
        ("EFGS_LISTEN", "127.0.0.1:0".to_owned()),
        ("EFGS_TRUST_ANCHORS", anchor.display().to_string()),
        ("EFGS_TRUST_IMPORT_DIR", dir.display().to_string()),
        ("EFGS_AUTH_TRUSTED_PROXIES", "127.0.0.0/8".to_owned()),
        (
            "EFGS_DUPLICATE_HASH_SECRET_FILE",
            secret.display().to_string(),
        ),
        ("EFGS_BATCHING_CHECK_SECS", "86400".to_owned()),
        ("EFGS_RETENTION_INTERVAL_SECS", "86400".to_owned()),
    ];
    let settings = efgs_server::Settings::load(None, env).unwrap();
    let before = fed.store().list_trust_entries().await.unwrap();
    let good = support::attack::GoodLoop::start(scene);
    let server = efgs_server::Server::builder(settings)
        .clock(fed.clock().as_fn())
        .store(fed.store().clone() as Arc<efgs_core::store::DynStore>)
        .build()
        .await
        .unwrap();
    let listener = server.bind().await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    let stats = good.finish(3).await;
    stats.assert_served(&scene.label("restart"));
    let entry = fed.store().trust_entry(&nl).await.unwrap().unwrap();
    let path = format!("/diagnosiskeys/download/{}", fed.today());
    let on_old = Client::country(fed, "NL")
        .must(
            "GET",
            &path,
            &[("accept", support::attack::PB_V1)],
            Vec::new(),
        )
        .await;
    let restarted = reqwest::Client::builder()
        .no_proxy()
        .local_address(GOOD_IP)
        .build()
        .unwrap();
    let creds = fed["NL"].credentials();
    let on_new = restarted
        .get(format!("http://{addr}{path}"))
        .header("X-SSL-Client-SHA256", creds.auth_thumbprint.as_str())
        .header("X-SSL-Client-DN", &creds.auth_dn)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    assert!(entry.revoked, "the restart's import cleared the revocation");
    on_old.assert_problem("NL on the running instance", 403, &["certificate-revoked"]);
    assert_eq!(on_new, 403, "NL on the restarted instance");
    let after = fed.store().list_trust_entries().await.unwrap();
    assert_eq!(after, before, "the restart changed the trust list");
}
