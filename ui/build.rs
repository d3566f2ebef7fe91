//! Builds the web UI with npm and Vite into `$OUT_DIR/ui`, where `embed.rs`
//! picks it up. Runs again only when the UI's sources change.

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCES: [&str; 6] =
    ["src", "index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts"];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("ui");
    for source in SOURCES {
        println!("cargo::rerun-if-changed={}", root.join(source).display());
    }
    if stale_modules(&root) {
        run(&root, &["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
    }
    let out_dir = out.to_str().expect("OUT_DIR is UTF-8");
    run(&root, &["run", "build", "--", "--outDir", out_dir, "--emptyOutDir", "--logLevel", "warn"]);
}

/// `node_modules` is missing or older than the lock file.
fn stale_modules(root: &Path) -> bool {
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(root.join("node_modules/.package-lock.json")), modified(root.join("package-lock.json"))) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    }
}

fn run(dir: &Path, args: &[&str]) {
    let status = Command::new("npm").args(args).current_dir(dir).status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("`npm {}` in {} failed ({s})", args.join(" "), dir.display()),
        Err(e) => panic!(
            "building the web UI needs Node.js 20 and npm on the PATH (`npm {}` could not start: {e})",
            args.join(" ")
        ),
    }
}
