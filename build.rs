//! Link order of the release binary: the functions that run at start-up and on the hot path are
//! laid out together, first in `.text`, from `link/symbol-order.txt` (written by
//! `scripts/symbol-order` from a callgrind run). The kernel maps a binary's code in 64 KiB (and
//! larger-folio) neighbourhoods around each page first run, so where those functions lie spread
//! through 10 MiB of code, most of it ends up resident (83 %); packed, under a third does (idle RSS:
//! BENCHMARKS.md, "Which code is resident at idle"). Nothing else changes: a name the file lists
//! that the binary lacks is skipped, a function it does not list keeps its place after the listed
//! ones.
//!
//! Only where the linker is LLD, which reads `--symbol-ordering-file`: the release profile for
//! `x86_64-unknown-linux-gnu`, whose default linker is LLD since Rust 1.90, unless a linker is
//! configured (`RUSTC_LINKER`, `-C linker…` in RUSTFLAGS) or `KENGATE_SYMBOL_ORDER=off`.
//!
//! The linker is given a copy in `OUT_DIR`, not the checkout's own file: a build script's output
//! is kept in the target directory, and a cached target directory shared by two checkouts (CI's
//! and a developer's, `~/.cache/kengate/target`) would otherwise hand one checkout's linker the
//! other's path, which need not exist.

use std::env;
use std::path::Path;

fn main() {
    const ORDER: &str = "link/symbol-order.txt";
    println!("cargo:rerun-if-changed={ORDER}");
    println!("cargo:rerun-if-env-changed=KENGATE_SYMBOL_ORDER");
    let wanted = env::var("KENGATE_SYMBOL_ORDER").as_deref() != Ok("off");
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let lld_by_default = env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    let own_linker = env::var_os("RUSTC_LINKER").is_some()
        || env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|f| f.contains("linker"));
    let Ok(dir) = env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let (Ok(order), Some(out)) = (std::fs::read(Path::new(&dir).join(ORDER)), env::var_os("OUT_DIR")) else {
        return;
    };
    let copy = Path::new(&out).join("symbol-order.txt");
    if wanted && release && lld_by_default && !own_linker && std::fs::write(&copy, order).is_ok() {
        println!(
            "cargo:rustc-link-arg-bin=kengate=-Wl,--symbol-ordering-file={}",
            copy.display()
        );
        // Names from another build (a function renamed, inlined away) are expected: no warning each.
        println!("cargo:rustc-link-arg-bin=kengate=-Wl,--no-warn-symbol-ordering");
    }
}
