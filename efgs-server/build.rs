//! Records the git revision the binary is built from, for `efgs-server --version` and the
//! start-up event. A source tree without git (a release tarball) or without a `.git`
//! directory builds too: the revision is then `BUILD_GIT_REVISION` from the environment when
//! set (a packager can pass it), else `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=BUILD_GIT_REVISION");
    let revision = std::env::var("BUILD_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    if revision.is_some() {
        // Rebuild when HEAD moves: HEAD itself, the branch it points at, and packed refs.
        // (Only files that exist: a missing one would make cargo rerun this script every build.)
        let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(branch);
        }
        for name in watched {
            if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name])
                && Path::new(&path).exists()
            {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!(
        "cargo:rustc-env=BUILD_GIT_REVISION={}",
        revision.as_deref().unwrap_or("unknown")
    );
}
