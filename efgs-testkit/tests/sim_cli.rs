//! The `efgs-sim` command line: `--help` documents every subcommand's options; `pki` writes a
//! directory `run --gateway` and `readiness` can read; a bad option is refused with status 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_efgs-sim"))
}

#[test]
fn help_documents_every_option() {
    let out = sim().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for option in [
        "--countries",
        "--keys-per-day",
        "--days",
        "--seed",
        "--visited",
        "--serve",
        "--instances",
        "--database-url",
        "--gateway",
        "--pki",
        "--duration-secs",
        "--restart-after-secs",
        "--store-fail-rate",
        "--drop-rate",
        "--replay-rate",
        "--duplicate-rate",
        "--clock-jump",
        "--faults",
        "--candidate",
        "--peer",
        "--keep-running",
        "--on-callback",
        "--callback-log",
        "efgs-sim growth",
    ] {
        assert!(text.contains(option), "--help does not mention {option}");
    }
}

#[test]
fn pki_writes_an_importable_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = sim()
        .args(["pki", "--country", "DE,FR", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pki = efgs_testkit::sim::pkidir::read(dir.path()).unwrap();
    assert_eq!(pki.countries.len(), 2);
    let anchors = pki.anchors().unwrap();
    for code in ["DE", "FR"] {
        for kind in ["auth", "sign"] {
            let text =
                std::fs::read_to_string(dir.path().join(format!("trust-list/{code}-{kind}.json")))
                    .unwrap();
            let entries = efgs_core::trust::TrustListEntry::parse_json(&text).unwrap();
            assert_eq!(
                entries[0].verify_for_import(&anchors).unwrap().country(),
                code
            );
        }
    }
}

#[test]
fn bad_options_are_refused() {
    let out = sim().args(["run", "--countries", "501"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = sim()
        .args(["run", "--gateway", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--gateway needs --pki");
}
