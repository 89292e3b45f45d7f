//! efgs-core stays a pure library: no async runtime, no HTTP stack, no SQL client and no OpenSSL
//! anywhere in its normal dependency graph (`cargo tree -p efgs-core -e normal`).
//!
//! The tree is that of the host platform: `--target all` would make cargo fetch crates that
//! only other platforms build (e.g. `r-efi`), which an offline CI run after `cargo test` does
//! not have. `--locked` keeps the check on the committed Cargo.lock.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;

/// Crates efgs-core must never depend on, directly or transitively.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "warp",
    "hyper",
    "tokio-postgres",
    "postgres",
    "sqlx",
    "diesel",
    "openssl",
    "openssl-sys",
    "native-tls",
];

/// The crate names of efgs-core's normal dependency tree, efgs-core included.
fn dependency_names() -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "-p",
            "efgs-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--locked",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo tree failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn no_runtime_http_sql_or_openssl_dependency() {
    let names = dependency_names();
    // The listing is what we think it is: the crate itself and its known direct dependencies.
    for expected in ["efgs-core", "prost", "p256", "cms", "sha2", "time"] {
        assert!(
            names.contains(expected),
            "{expected} missing from cargo tree output: {names:?}"
        );
    }
    let found: Vec<&str> = FORBIDDEN
        .iter()
        .copied()
        .filter(|f| names.contains(*f))
        .collect();
    assert!(
        found.is_empty(),
        "efgs-core depends on {found:?}; it must stay free of runtimes, HTTP, SQL and OpenSSL"
    );
}
