//! The repository stands on its own: no tracked file refers to the directory beside the
//! repository that once held the protocol description and the test vectors. Both live inside
//! the repository now (`docs/protocol.md`, `docs/decisions.md`, `docs/clients.md`,
//! `efgs-core/tests/data/vectors/`), and a reference to the old place would break in a fresh
//! clone.
//!
//! The files are those `git ls-files` lists; without Git (e.g. an unpacked source archive) the
//! directory tree is walked instead, leaving out `.git` and build output.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The forbidden references, assembled so that this file does not contain them itself.
fn forbidden() -> [String; 2] {
    [["..", "/shared"].concat(), ["shared", "/spec"].concat()]
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Tracked files, relative to the root; `None` when Git cannot tell (no Git, no repository).
fn git_files(root: &Path) -> Option<Vec<PathBuf>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let list = String::from_utf8(out.stdout).expect("file names are UTF-8");
    Some(
        list.split('\0')
            .filter(|name| !name.is_empty())
            .map(PathBuf::from)
            .collect(),
    )
}

/// Build output and VCS metadata, which are never part of the sources.
fn skipped_dir(relative: &Path) -> bool {
    let name = relative.file_name().unwrap().to_string_lossy();
    name == ".git"
        || name == "target"
        || name.starts_with("target-")
        || relative == Path::new("fuzz/artifacts")
}

fn walk(root: &Path, relative: &Path, out: &mut Vec<PathBuf>) {
    let dir = root.join(relative);
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.unwrap();
        let rel = relative.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            if !skipped_dir(&rel) {
                walk(root, &rel, out);
            }
        } else if kind.is_file() {
            out.push(rel);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn no_file_refers_outside_the_repository() {
    let root = workspace_root();
    let files = git_files(&root).unwrap_or_else(|| {
        let mut files = Vec::new();
        walk(&root, Path::new(""), &mut files);
        files
    });
    assert!(
        files.iter().any(|f| f == Path::new("Cargo.toml")),
        "the file list of {} does not look like this repository",
        root.display()
    );

    let mut offences = Vec::new();
    for file in &files {
        let data = match std::fs::read(root.join(file)) {
            Ok(data) => data,
            // Tracked but deleted in the working tree: nothing to check.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", file.display()),
        };
        for needle in forbidden() {
            if let Some(at) = find(&data, needle.as_bytes()) {
                let line = data[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                offences.push(format!("{}:{line}: {needle}", file.display()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "files refer to a path outside the repository (use docs/protocol.md, docs/decisions.md, \
         docs/clients.md or efgs-core/tests/data/vectors/ instead):\n{}",
        offences.join("\n")
    );
}

/// The check itself finds what it looks for.
#[test]
fn the_check_sees_a_reference() {
    let text = format!("see `{}/protocol.md` §4.1", forbidden()[0]);
    assert!(find(text.as_bytes(), forbidden()[0].as_bytes()).is_some());
    assert!(find(b"docs/protocol.md", forbidden()[1].as_bytes()).is_none());
}
