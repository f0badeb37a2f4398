//! Puts the git revision into `ami --version` (AMI_GIT_REVISION), "unknown" outside a checkout.

use std::process::Command;

fn main() {
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=AMI_GIT_REVISION={revision}");
    // Rebuild when HEAD moves (a commit, a checkout), not on every file change: HEAD itself, and
    // the branch it names (a commit rewrites that file, not HEAD or its directory).
    let mut watched = vec![
        ".git/HEAD".to_string(),
        ".git/refs/heads".to_string(),
        ".git/packed-refs".to_string(),
    ];
    if let Ok(head) = std::fs::read_to_string(".git/HEAD")
        && let Some(branch) = head.trim().strip_prefix("ref: ")
    {
        watched.push(format!(".git/{branch}"));
    }
    for path in watched {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
