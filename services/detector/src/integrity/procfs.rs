//! Reading `/proc` for the process of an instance on this node. Every function blocks on the
//! file system: call them from a blocking thread.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// How much earlier than the registry's `started_at` a process may have started and still be
/// the instance's process: the boot time in `/proc/stat` has whole seconds.
const START_TOLERANCE: Duration = Duration::from_secs(2);

/// Reasons a pid is not taken as the process of an instance.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcessError {
    #[error("no process {pid} on this node")]
    NotFound { pid: u32 },
    #[error(
        "process {pid} started {early:?} before the instance, so the pid belongs to another process"
    )]
    Older { pid: u32, early: Duration },
    #[error("process {pid} has exited and is not reaped yet")]
    Zombie { pid: u32 },
    #[error("reading /proc/{pid} failed: {source}")]
    Read { pid: u32, source: io::Error },
}

/// The process of an instance on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Process {
    pid: u32,
}

/// A script that an interpreter runs, as found in a process's arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Script {
    /// Path for people to read: the argument, made absolute with the process's working
    /// directory.
    pub(crate) display_path: String,
    /// Path to open, through `/proc/<pid>/cwd` for a relative argument.
    pub(crate) path: PathBuf,
}

impl Process {
    /// Finds process `pid` and checks that it started no earlier than `started_at`, less a
    /// small tolerance, so a pid that now belongs to another process is not taken for the
    /// instance's.
    ///
    /// # Errors
    ///
    /// Returns why the pid is not the instance's process.
    pub(crate) fn find(pid: u32, started_at: Option<SystemTime>) -> Result<Self, ProcessError> {
        let stat = match std::fs::read_to_string(proc_path(pid, "stat")) {
            Ok(stat) => stat,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(ProcessError::NotFound { pid });
            }
            Err(source) => return Err(ProcessError::Read { pid, source }),
        };
        let invalid = || ProcessError::Read {
            pid,
            source: io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/<pid>/stat"),
        };
        let (state, start_ticks) = parse_stat(&stat).ok_or_else(invalid)?;
        if state == 'Z' {
            return Err(ProcessError::Zombie { pid });
        }
        if let (Some(expected), Some(started)) = (started_at, start_time(start_ticks)) {
            let early = expected.duration_since(started).unwrap_or_default();
            if early > START_TOLERANCE {
                return Err(ProcessError::Older { pid, early });
            }
        }
        Ok(Self { pid })
    }

    pub(crate) fn pid(self) -> u32 {
        self.pid
    }

    /// Returns the resident memory in bytes (`VmRSS`), or `None` when the kernel reports none,
    /// as for a process that is exiting.
    pub(crate) fn rss_bytes(self) -> io::Result<Option<u64>> {
        let status = std::fs::read_to_string(proc_path(self.pid, "status"))?;
        Ok(parse_vm_rss(&status))
    }

    /// Returns true when the process runs in another mount namespace than this one, as in a
    /// container, so that its paths do not name files of this host.
    pub(crate) fn in_container(self) -> io::Result<bool> {
        let own = std::fs::read_link("/proc/self/ns/mnt")?;
        let target = std::fs::read_link(proc_path(self.pid, "ns/mnt"))?;
        Ok(own != target)
    }

    /// Returns true while the process exists and has not exited.
    pub(crate) fn is_alive(self) -> bool {
        std::fs::read_to_string(proc_path(self.pid, "stat"))
            .ok()
            .and_then(|stat| parse_stat(&stat))
            .is_some_and(|(state, _)| state != 'Z')
    }

    /// Returns the path under the process's root directory that opens `path` of the process,
    /// which is the container's file for a process in a container.
    pub(crate) fn file(self, path: &Path) -> PathBuf {
        let relative = path.strip_prefix("/").unwrap_or(path);
        proc_path(self.pid, "root").join(relative)
    }

    /// Returns the path that opens the process's executable, even when the file was deleted or
    /// replaced on disk since the process started.
    pub(crate) fn executable(self) -> PathBuf {
        proc_path(self.pid, "exe")
    }

    /// Returns where the executable link points, for people to read.
    pub(crate) fn executable_target(self) -> String {
        std::fs::read_link(self.executable()).map_or_else(
            |_| self.executable().display().to_string(),
            |target| target.display().to_string(),
        )
    }

    /// Returns the script that the process runs when its executable is an interpreter: the
    /// first or second argument, when it names a regular file that starts with `#!`. The
    /// kernel runs a script `/srv/run.sh` with the shebang `#!/bin/sh -e` as
    /// `/bin/sh -e /srv/run.sh`, so the script is one of those two arguments.
    pub(crate) fn script(self) -> Option<Script> {
        let cmdline = std::fs::read(proc_path(self.pid, "cmdline")).ok()?;
        let arguments: Vec<&OsStr> = cmdline
            .split(|byte| *byte == 0)
            .filter(|argument| !argument.is_empty())
            .map(OsStr::from_bytes)
            .collect();
        arguments
            .iter()
            .skip(1)
            .take(2)
            .find_map(|argument| self.script_at(Path::new(argument)))
    }

    fn script_at(self, argument: &Path) -> Option<Script> {
        let (display_path, path) = if argument.is_absolute() {
            (argument.display().to_string(), argument.to_owned())
        } else {
            let cwd = proc_path(self.pid, "cwd");
            let absolute = std::fs::read_link(&cwd)
                .map_or_else(|_| cwd.join(argument), |dir| dir.join(argument));
            (absolute.display().to_string(), cwd.join(argument))
        };
        let mut file = std::fs::File::open(&path).ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let mut magic = [0u8; 2];
        file.read_exact(&mut magic).ok()?;
        (&magic == b"#!").then_some(Script { display_path, path })
    }
}

fn proc_path(pid: u32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{name}"))
}

/// Returns the state letter and the start time in clock ticks after boot from the text of
/// `/proc/<pid>/stat`. The command name in parentheses may contain spaces and parentheses, so
/// the fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of the whole line (starttime) is the 20th after the command name.
    let start_ticks = fields.get(19)?.parse().ok()?;
    Some((state, start_ticks))
}

/// Returns `VmRSS` in bytes from the text of `/proc/<pid>/status`.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// Returns the boot time in seconds since the Unix epoch from the text of `/proc/stat`.
fn parse_boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|seconds| seconds.trim().parse().ok())
}

/// Returns the wall-clock time of `ticks` clock ticks after boot.
fn start_time(ticks: u64) -> Option<SystemTime> {
    static CLOCK: OnceLock<Option<(SystemTime, u64)>> = OnceLock::new();
    let (boot, ticks_per_second) = (*CLOCK.get_or_init(|| {
        let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
        let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|ticks| u64::try_from(ticks).ok())
            .filter(|ticks| *ticks > 0)?;
        Some((
            SystemTime::UNIX_EPOCH + Duration::from_secs(boot),
            ticks_per_second,
        ))
    }))?;
    Some(boot + Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::*;

    #[test]
    fn stat_fields_count_from_last_parenthesis() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    98765 1000000 200 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(('S', 98765)));
    }

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tsleep\nVmPeak:\t    8000 kB\nVmRSS:\t     1536 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(1536 * 1024));
        assert_eq!(parse_vm_rss("Name:\tzombie\n"), None);
    }

    #[test]
    fn boot_time_is_read() {
        let stat = "cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n";
        assert_eq!(parse_boot_time(stat), Some(1_700_000_000));
    }

    #[test]
    fn own_process_is_found_with_memory() {
        let pid = std::process::id();
        let process = Process::find(pid, Some(SystemTime::UNIX_EPOCH)).expect("this process");
        let rss = process
            .rss_bytes()
            .expect("reading the status")
            .expect("VmRSS");
        assert!(rss > 0);
    }

    #[test]
    fn process_older_than_instance_is_refused() {
        let pid = std::process::id();
        let later = SystemTime::now() + Duration::from_secs(60);
        let error = Process::find(pid, Some(later)).expect_err("the test started earlier");
        assert!(matches!(error, ProcessError::Older { .. }), "{error}");
    }

    #[test]
    fn missing_process_is_not_found() {
        // Linux never hands out pids above 2^22.
        let error = Process::find(u32::MAX - 1, None).expect_err("no such pid");
        assert!(matches!(error, ProcessError::NotFound { .. }), "{error}");
    }

    #[test]
    fn shebang_script_is_found_in_arguments() {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let path = dir.path().join("run.sh");
        let mut file = std::fs::File::create(&path).expect("creating the script");
        file.write_all(b"#!/bin/sh\nsleep 30\n")
            .expect("writing the script");
        drop(file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("making the script executable");
        let mut child = Command::new(&path).spawn().expect("starting the script");
        let process = Process { pid: child.id() };
        // The shell replaces the arguments only after the kernel ran the shebang.
        let mut script = None;
        for _ in 0..100 {
            script = process.script();
            if script.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        let script = script.expect("the script is found");
        assert_eq!(script.path, path);
    }

    #[test]
    fn binary_has_no_script() {
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("starting sleep");
        let process = Process { pid: child.id() };
        let script = process.script();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(script, None);
    }
}
