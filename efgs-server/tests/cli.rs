//! The binary's command line: `--help`, exit codes, `serve --check`.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

/// The binary, without the `EFGS_*` variables of the test environment (CI sets some).
fn efgs_server() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_efgs-server"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("EFGS_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn run(args: &[&str]) -> Output {
    efgs_server().args(args).output().unwrap()
}

/// Every (TOML key, environment variable) of docs/CONFIGURATION.md's table.
fn documented_settings() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/CONFIGURATION.md"
    ))
    .unwrap();
    let rows: Vec<(String, String)> = doc
        .lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let key = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let var = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            var.starts_with("EFGS_")
                .then(|| (key.to_owned(), var.to_owned()))
        })
        .collect();
    assert!(
        rows.len() > 30,
        "docs/CONFIGURATION.md lists {} settings",
        rows.len()
    );
    rows
}

#[test]
fn help_lists_every_documented_setting() {
    let settings = documented_settings();
    for args in [&["--help"][..], &["serve", "--help"][..]] {
        let out = run(args);
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        for (key, var) in &settings {
            assert!(help.contains(var.as_str()), "{args:?} lacks {var}");
            assert!(help.contains(key.as_str()), "{args:?} lacks {key}");
        }
        assert!(help.contains("EFGS_CONFIG"));
    }
}

#[test]
fn every_documented_variable_is_accepted_by_the_binary() {
    // An unknown EFGS_* variable is refused (exit 78, naming it); a documented one is not.
    let out = efgs_server()
        .args(["serve", "--check"])
        .env("EFGS_NO_SUCH_SETTING", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("EFGS_NO_SUCH_SETTING"));
    for (key, var) in documented_settings() {
        let out = efgs_server()
            .args(["serve", "--check"])
            .env(&var, "")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("no such setting"),
            "{var} ({key}) is documented but unknown to the binary: {stderr}"
        );
    }
}

#[test]
fn commands_needing_configuration_exit_78_without_it() {
    for args in [&["migrate"][..], &["trust-list", "list"][..]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("trust.anchors"),
            "{args:?}"
        );
    }
    let out = efgs_server()
        .args(["serve", "--check"])
        .env("EFGS_CONFIG", "/nonexistent/efgs.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/efgs.toml"));
}

fn anchor_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("anchor.pem"), cert.pem()).unwrap();
    dir
}

#[test]
fn serve_check_prints_redacted_effective_settings() {
    let d = anchor_dir();
    let file = d.path().join("efgs.toml");
    std::fs::write(
        &file,
        r#"
storage = "postgres"
[database]
url = "postgres://efgs:pw@localhost/efgs"
[encryption]
active_key = "1"
keys = { 1 = "0000000000000000000000000000000000000000000000000000000000000000" }
[duplicate_hash]
secret = "0123456789abcdef0123456789abcdef"
[trust]
anchors = ["anchor.pem"]
"#,
    )
    .unwrap();
    let out = run(&["--config", file.to_str().unwrap(), "serve", "--check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("storage = postgres"));
    assert!(text.contains("duplicate_hash.secret = [redacted]"));
    assert!(!text.contains("0123456789abcdef0123456789abcdef"));
    assert!(!text.contains(":pw@"));
}

#[test]
fn trust_list_changes_on_the_memory_store_are_refused() {
    let d = anchor_dir();
    let anchor = d.path().join("anchor.pem");
    let out = efgs_server()
        .args(["trust-list", "revoke", &"ab".repeat(32)])
        .env("EFGS_TRUST_ANCHORS", &anchor)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("storage = memory"));
}

#[test]
fn version_shows_the_version_and_the_git_revision() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim_end(),
        format!(
            "efgs-server {} (git {})",
            efgs_server::VERSION,
            efgs_server::GIT_REVISION
        )
    );
    assert_eq!(efgs_server::VERSION, env!("CARGO_PKG_VERSION"));
    let rev = efgs_server::GIT_REVISION;
    assert!(
        rev == "unknown" || (rev.len() == 12 && rev.chars().all(|c| c.is_ascii_hexdigit())),
        "revision {rev:?}"
    );
}
