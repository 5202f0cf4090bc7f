//! Compiles the XDP program in `c/` with clang so the binary can embed it.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// (source, object) pairs: the port program and the benchmark's programs.
const PROGRAMS: [(&str, &str); 2] = [
    ("c/xbridge.bpf.c", "xbridge.bpf.o"),
    ("c/xbridge_bench.bpf.c", "xbridge_bench.bpf.o"),
];

fn main() {
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = find_clang();
    for (source, object) in PROGRAMS {
        println!("cargo:rerun-if-changed={source}");
        compile(&clang, source, &out.join(object));
    }
}

fn compile(clang: &str, source: &str, object: &std::path::Path) {
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    // <asm/types.h> lives under the multiarch directory on Debian.
    let multiarch = match target_arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => panic!("xbridge-ebpf: unsupported target architecture {other}"),
    };
    let status = Command::new(clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I/usr/include/{multiarch}"))
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(object)
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("xbridge-ebpf: {clang} failed to compile {source} ({status})"),
        Err(err) => panic!(
            "xbridge-ebpf: cannot run `{clang}` to build the XDP program: {err}. \
             Install clang (Debian: `apt-get install clang-14 libbpf-dev`, or run ./setup) \
             or point the CLANG environment variable at a clang binary."
        ),
    }
}

/// `CLANG` if set, else the first of `clang`, `clang-14`... found on PATH.
fn find_clang() -> String {
    if let Ok(explicit) = env::var("CLANG") {
        return explicit;
    }
    let candidates = [
        "clang", "clang-19", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14",
    ];
    let path = env::var_os("PATH").unwrap_or_default();
    for candidate in candidates {
        if env::split_paths(&path).any(|dir| dir.join(candidate).is_file()) {
            return candidate.to_string();
        }
    }
    "clang".to_string()
}
