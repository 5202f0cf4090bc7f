//! Boots Debian's stock kernel under QEMU with a tiny initramfs (busybox,
//! `ip`/`bridge` and their libraries, the bridge/8021q/veth modules and the
//! `xbridge-probe` binary) to run conformance scenarios on the real Linux
//! bridge. KVM is tried first; TCG (software emulation) is the fallback.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::conformance::{Outcome, Scenario};
use crate::topo::find_on_path;

/// Modules to load, in dependency order.
const MODULES: [&str; 7] = [
    "drivers/net/veth.ko",
    "net/llc/llc.ko",
    "net/802/stp.ko",
    "net/802/garp.ko",
    "net/802/mrp.ko",
    "net/8021q/8021q.ko",
    "net/bridge/bridge.ko",
];
/// Boot and set-up budget, plus a per-frame budget (TCG is slow).
const VM_BASE_TIMEOUT: Duration = Duration::from_secs(60);
const VM_FRAME_TIMEOUT: Duration = Duration::from_millis(40);

/// Why the VM could not answer.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("the conformance VM needs {what} ({hint})")]
    Missing { what: String, hint: &'static str },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the VM did not report (console tail: {0})")]
    NoReport(String),
    #[error("the probe failed in the VM: {0}")]
    Probe(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VmError {
    let what = what.into();
    move |source| VmError::Io { what, source }
}

/// What the VM needs from the host.
#[derive(Debug, Clone)]
pub struct VmParts {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub modules: PathBuf,
    pub busybox: PathBuf,
    pub probe: PathBuf,
}

const INSTALL_HINT: &str =
    "apt-get install qemu-system-x86 linux-image-amd64 busybox-static, or run ./setup";

impl VmParts {
    /// Finds qemu, a kernel with its modules, busybox and the probe.
    pub fn find(probe: &Path) -> Result<VmParts, VmError> {
        let missing = |what: &str| VmError::Missing {
            what: what.to_string(),
            hint: INSTALL_HINT,
        };
        let qemu =
            find_on_path("qemu-system-x86_64").ok_or_else(|| missing("qemu-system-x86_64"))?;
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| missing("busybox (static)"))?;
        let mut kernels: Vec<(PathBuf, PathBuf)> = std::fs::read_dir("/boot")
            .map_err(io("/boot"))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                let release = name.strip_prefix("vmlinuz-")?.to_string();
                let modules = Path::new("/lib/modules").join(&release).join("kernel");
                modules
                    .join(MODULES[6])
                    .is_file()
                    .then(|| (e.path(), modules))
            })
            .collect();
        kernels.sort();
        let (kernel, modules) = kernels
            .pop()
            .ok_or_else(|| missing("a kernel in /boot with bridge, 8021q and veth modules"))?;
        if !probe.is_file() {
            return Err(missing(&format!("the probe binary {}", probe.display())));
        }
        Ok(VmParts {
            qemu,
            kernel,
            modules,
            busybox,
            probe: probe.to_path_buf(),
        })
    }
}

/// A cpio archive in the "newc" format the kernel unpacks as initramfs.
#[derive(Default)]
struct Cpio {
    bytes: Vec<u8>,
    inode: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.inode += 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.inode,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[]);
    }

    fn file(&mut self, name: &str, data: &[u8], executable: bool) {
        self.entry(name, if executable { 0o100755 } else { 0o100644 }, data);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, target.as_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.bytes
    }
}

/// Shared libraries `ldd` lists for `binaries`.
fn libraries(binaries: &[&Path]) -> Result<Vec<PathBuf>, VmError> {
    let mut found: Vec<PathBuf> = Vec::new();
    for binary in binaries {
        let out = Command::new("ldd")
            .arg(binary)
            .output()
            .map_err(io(format!("ldd {}", binary.display())))?;
        for word in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let path = PathBuf::from(word);
            if word.starts_with('/') && path.is_file() && !found.contains(&path) {
                found.push(path);
            }
        }
    }
    Ok(found)
}

fn read(path: &Path) -> Result<Vec<u8>, VmError> {
    std::fs::read(path).map_err(io(path.display().to_string()))
}

/// The initramfs for `scenarios`.
pub fn initramfs(parts: &VmParts, scenarios: &[Scenario]) -> Result<Vec<u8>, VmError> {
    let ip = find_on_path("ip").ok_or(VmError::Missing {
        what: "iproute2's ip".into(),
        hint: INSTALL_HINT,
    })?;
    let bridge = find_on_path("bridge").ok_or(VmError::Missing {
        what: "iproute2's bridge".into(),
        hint: INSTALL_HINT,
    })?;
    let mut cpio = Cpio::default();
    for dir in [
        "bin",
        "sbin",
        "lib",
        "lib64",
        "lib/x86_64-linux-gnu",
        "mods",
        "proc",
        "sys",
        "dev",
        "tmp",
    ] {
        cpio.dir(dir);
    }
    cpio.file("bin/busybox", &read(&parts.busybox)?, true);
    for applet in ["sh", "mount", "insmod", "poweroff", "echo", "cat"] {
        cpio.symlink(&format!("bin/{applet}"), "busybox");
    }
    cpio.file("sbin/ip", &read(&ip)?, true);
    cpio.file("sbin/bridge", &read(&bridge)?, true);
    cpio.file("probe", &read(&parts.probe)?, true);
    for library in libraries(&[&ip, &bridge, &parts.probe])? {
        let name = library
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        // /lib64 and /lib/x86_64-linux-gnu exist as directories above.
        cpio.file(&name, &read(&library)?, true);
    }
    let mut init = String::from(
        "#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n",
    );
    for module in MODULES {
        let name = Path::new(module)
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .to_string();
        cpio.file(
            &format!("mods/{name}"),
            &read(&parts.modules.join(module))?,
            false,
        );
        init.push_str(&format!("insmod /mods/{name}\n"));
    }
    init.push_str("/probe /scenario.json\npoweroff -f\n");
    cpio.file("init", init.as_bytes(), true);
    let scenarios = serde_json::to_vec(scenarios).expect("serialisable");
    cpio.file("scenario.json", &scenarios, false);
    Ok(cpio.finish())
}

/// Boots the VM on `scenarios` and returns the probe's outcomes, with the
/// accelerator used ("kvm" or "tcg") and the seconds it took.
pub fn run(
    parts: &VmParts,
    scenarios: &[Scenario],
) -> Result<(Vec<Outcome>, &'static str, f64), VmError> {
    let image = initramfs(parts, scenarios)?;
    // Unique per run: one process may boot several VMs at once.
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "xbridge-conformance-{}-{run}.cpio",
        std::process::id()
    ));
    std::fs::write(&path, &image).map_err(io(path.display().to_string()))?;
    let result = (|| {
        let accelerators: &[(&'static str, &[&str])] = if Path::new("/dev/kvm").exists() {
            &[
                ("kvm", &["-enable-kvm", "-cpu", "host"]),
                ("tcg", &["-accel", "tcg", "-cpu", "max"]),
            ]
        } else {
            &[("tcg", &["-accel", "tcg", "-cpu", "max"])]
        };
        let mut last_error = None;
        for (name, flags) in accelerators {
            let started = Instant::now();
            let frames = scenarios.iter().map(|s| s.frames.len()).sum();
            match boot(parts, &path, flags, frames) {
                Ok(console) => {
                    return parse(&console).map(|o| (o, *name, started.elapsed().as_secs_f64()))
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.expect("at least one accelerator"))
    })();
    let _ = std::fs::remove_file(&path);
    result
}

fn boot(
    parts: &VmParts,
    initrd: &Path,
    accelerator: &[&str],
    frames: usize,
) -> Result<String, VmError> {
    let timeout = VM_BASE_TIMEOUT + VM_FRAME_TIMEOUT * frames as u32;
    let mut child = Command::new(&parts.qemu)
        .args(accelerator)
        .args([
            "-m",
            "256",
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
            "-kernel",
        ])
        .arg(&parts.kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("starting qemu"))?;
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(io("waiting for qemu"))? {
            let console = reader.join().unwrap_or_default();
            if !status.success() && !console.contains("XBRIDGE-PROBE") {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
                }
                return Err(VmError::NoReport(format!(
                    "qemu {status}: {}",
                    stderr.trim()
                )));
            }
            return Ok(console);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(VmError::NoReport(format!(
                "no answer within {} s",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn parse(console: &str) -> Result<Vec<Outcome>, VmError> {
    let clean = console.replace('\r', "");
    if let Some((_, rest)) = clean.split_once("XBRIDGE-PROBE-ERROR") {
        let message: String = rest
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .chars()
            .take(400)
            .collect();
        return Err(VmError::Probe(message));
    }
    let body = clean
        .split("XBRIDGE-PROBE-BEGIN")
        .nth(1)
        .and_then(|rest| rest.split("XBRIDGE-PROBE-END").next())
        .ok_or_else(|| {
            let tail: String = clean
                .chars()
                .rev()
                .take(300)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            VmError::NoReport(tail)
        })?;
    serde_json::from_str(body.trim()).map_err(|e| VmError::Probe(format!("unreadable report: {e}")))
}

/// Writes a replayable reproducer for a mismatch.
pub fn write_reproducer(dir: &Path, scenario: &Scenario) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.json", scenario.name));
    let mut file = std::fs::File::create(&path)?;
    file.write_all(&serde_json::to_vec_pretty(&[scenario]).expect("serialisable"))?;
    Ok(path)
}
