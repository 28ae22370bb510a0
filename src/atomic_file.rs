//! Crash-safe output files: every file gq writes goes through [`AtomicFile`].
//!
//! Use, from the simplest:
//! - built in memory: `write_bytes_atomic(path, &bytes)?`;
//! - streamed: `write_atomic(path, |w| { write!(w, ...)?; Ok(()) })?` (`w` is buffered);
//! - long or positioned writes: `let mut f = AtomicFile::create(path)?;` write to `f` (or
//!   `BufWriter::new(&mut f)`, `f.file()` for `write_at`), poll [`check_interrupted`] in long
//!   loops, then `f.commit()?`. Returning early (`?`) drops `f`, which removes the temp file.
//!
//! The bytes go to a temporary file in the target's own directory (so the final rename never
//! crosses a filesystem), named `.<target name>.gq-tmp-<pid>-<random>`. [`AtomicFile::commit`]
//! flushes, `fsync`s the file, renames it over the target and `fsync`s the directory; until then
//! the target is untouched (an existing file keeps its old contents). Dropping an uncommitted
//! `AtomicFile` (an error, a panic that unwinds) removes the temporary file.
//!
//! Signals: [`install_signal_handler`] (called once by `main`) turns SIGINT, SIGTERM and SIGHUP
//! into [`interrupted`] = true, removes every live temporary file at once, and, when the running
//! command does not stop on its own within [`GRACE`] (long loops poll [`check_interrupted`]),
//! exits with status 130. A second signal exits at once.
//!
//! `kill -9` cannot be caught: its temporary file stays. The name says which process made it, so
//! the next [`AtomicFile::create`] in that directory removes temporary files whose process is gone
//! and says so on stderr ([`clean_stale`]; files of running processes are left alone).
//!
//! The temporary file is created with mode 0666 filtered by the process umask, exactly as any
//! tool creates a new file, so the finished file gets the usual permissions (0644 under umask
//! 022), not a private temp file's 0600.

use anyhow::{anyhow, bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Marker between the target's name and the owner's pid in a temporary file's name.
pub const TEMP_MARKER: &str = ".gq-tmp-";

/// How long a command has after the first SIGINT/SIGTERM to stop by itself before the handler
/// exits the process.
pub const GRACE: Duration = Duration::from_secs(3);

/// Set when SIGINT, SIGTERM or SIGHUP arrived (see [`install_signal_handler`]).
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Temporary files being written by this process (removed by the signal handler).
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Whether an interrupt signal arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// `Err("interrupted")` once an interrupt signal arrived: for long loops to poll.
pub fn check_interrupted() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes every live temporary file of this process (the signal handler's first act).
fn remove_live() {
    for p in live().drain(..) {
        let _ = std::fs::remove_file(&p);
    }
}

/// Installs the SIGINT/SIGTERM/SIGHUP handler described in the module docs. Call once, early in
/// `main`. Returns an error when a handler was already installed.
pub fn install_signal_handler() -> Result<()> {
    ctrlc::set_handler(|| {
        let again = INTERRUPTED.swap(true, Ordering::SeqCst);
        remove_live();
        if again {
            eprintln!("error: interrupted");
            std::process::exit(130);
        }
        std::thread::spawn(|| {
            std::thread::sleep(GRACE);
            remove_live();
            eprintln!("error: interrupted");
            std::process::exit(130);
        });
    })
    .map_err(|e| anyhow!("cannot install the interrupt handler: {e}"))
}

/// A file being written to a temporary name beside `target`, renamed over it by
/// [`AtomicFile::commit`]. Writes go straight to the file (wrap it in a `BufWriter`, or use
/// [`write_atomic`]).
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
}

fn random_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// The file the output really goes to: `target`, or where a symbolic link `target` points.
fn resolve_target(target: &Path) -> Result<PathBuf> {
    let shown = target.display();
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.file_type().is_symlink() => {
            // Write through the link, as a shell redirection does; a loop or a dangling link
            // is an error naming the link.
            let real = std::fs::canonicalize(target)
                .with_context(|| format!("{shown}: cannot follow the symbolic link"))?;
            resolve_target(&real)
        }
        Ok(m) if m.is_dir() => bail!("{shown}: is a directory"),
        Ok(m) if m.permissions().readonly() => {
            bail!("{shown}: the file is read-only; not replacing it")
        }
        Ok(m) if !m.is_file() => bail!("{shown}: not a regular file; not replacing it"),
        _ => Ok(target.to_path_buf()),
    }
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The pid in a temporary file name made by [`AtomicFile`] (`.<name>.gq-tmp-<pid>-<hex>`).
pub fn temp_owner(file_name: &str) -> Option<u32> {
    let (head, rest) = file_name.rsplit_once(TEMP_MARKER)?;
    if !head.starts_with('.') {
        return None;
    }
    let (pid, rand) = rest.split_once('-')?;
    if rand.is_empty() || !rand.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true // no cheap check: never remove another process's file
    }
}

/// Removes temporary files in `dir` left by gq processes that no longer run (after `kill -9`
/// or a power cut) and returns their paths. Files of running processes are left alone.
pub fn clean_stale(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        if !process_alive(pid) && e.file_type().is_ok_and(|t| t.is_file()) {
            let p = e.path();
            if std::fs::remove_file(&p).is_ok() {
                removed.push(p);
            }
        }
    }
    removed
}

impl AtomicFile {
    /// Starts writing `target`: checks it can be replaced (not a directory, not read-only; a
    /// symbolic link is followed), removes stale temporary files in its directory (reported on
    /// stderr), and creates the temporary file.
    pub fn create(target: impl AsRef<Path>) -> Result<AtomicFile> {
        let given = target.as_ref();
        if given.as_os_str().is_empty() {
            bail!("empty output path");
        }
        let target = resolve_target(given)?;
        let dir = parent_dir(&target);
        let name = target
            .file_name()
            .ok_or_else(|| anyhow!("{}: not a file name", given.display()))?
            .to_string_lossy()
            .into_owned();
        for p in clean_stale(&dir) {
            eprintln!("gq: removed {}, left by an interrupted gq run", p.display());
        }
        // Keep the whole name within NAME_MAX (255 bytes).
        let mut short: String = name.clone();
        while short.len() > 200 {
            short.pop();
        }
        let mut tries = 0;
        loop {
            let temp = dir.join(format!(
                ".{short}{TEMP_MARKER}{}-{:016x}",
                std::process::id(),
                random_suffix()
            ));
            let mut open = OpenOptions::new();
            open.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o666);
            // Register before creating, so that a signal between the two cannot miss the file.
            live().push(temp.clone());
            match open.open(&temp) {
                Ok(file) => {
                    return Ok(AtomicFile {
                        target,
                        temp,
                        file: Some(file),
                    })
                }
                Err(e) => {
                    live().retain(|p| *p != temp);
                    tries += 1;
                    if e.kind() != io::ErrorKind::AlreadyExists || tries > 16 {
                        return Err(e).with_context(|| {
                            format!("{}: cannot create the output file there", dir.display())
                        });
                    }
                }
            }
        }
    }

    /// The path the finished file will have (a symbolic link given to [`AtomicFile::create`]
    /// resolved).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temporary file's path.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The open temporary file (for `try_clone`, `metadata`, positioned writes).
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("file present until commit")
    }

    /// Flushes and `fsync`s the file, renames it over the target, and `fsync`s the directory.
    /// On error the temporary file is removed and the target is untouched.
    pub fn commit(mut self) -> Result<()> {
        let shown = self.target.display().to_string();
        let file = self.file.take().expect("file present until commit");
        file.sync_all()
            .with_context(|| format!("{shown}: write failed"))?;
        drop(file);
        {
            // Holding the registry while renaming: a signal either removes the temporary file
            // first (the rename then fails) or finds it already renamed.
            let mut reg = live();
            if !reg.contains(&self.temp) {
                bail!("interrupted");
            }
            std::fs::rename(&self.temp, &self.target)
                .with_context(|| format!("{shown}: cannot rename the finished file into place"))?;
            reg.retain(|p| *p != self.temp);
        }
        if let Ok(d) = File::open(parent_dir(&self.target)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_ref().expect("file present").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_ref().expect("file present").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        let mut reg = live();
        if let Some(i) = reg.iter().position(|p| *p == self.temp) {
            reg.remove(i);
            self.file.take();
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `target` crash-safely in one go: `write` fills a buffered writer, then the file is
/// committed. Any error (from `write`, the disk, or an interrupt) leaves no file behind and
/// names the target.
pub fn write_atomic(
    target: impl AsRef<Path>,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let target = target.as_ref();
    let mut f = AtomicFile::create(target)?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, &mut f);
        write(&mut w)?;
        w.flush()
            .with_context(|| format!("{}: write failed", target.display()))?;
    }
    check_interrupted()?;
    f.commit()
}

/// Writes `bytes` to `target` crash-safely (see [`write_atomic`]): the one call for an output
/// that is built in memory (reports, Modelfiles, small JSON/CSV files).
pub fn write_bytes_atomic(target: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let target = target.as_ref();
    write_atomic(target, |w| {
        w.write_all(bytes)
            .with_context(|| format!("{}: write failed", target.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn commit_replaces_and_error_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("out.bin");
        write_atomic(&t, |w| Ok(w.write_all(b"one")?)).unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"one");
        let e = write_atomic(&t, |w| {
            w.write_all(b"two")?;
            bail!("boom")
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "boom");
        assert_eq!(std::fs::read(&t).unwrap(), b"one", "old contents kept");
        assert_eq!(listing(d.path()), ["out.bin"]);
    }

    #[test]
    #[cfg(unix)]
    fn finished_file_gets_umask_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("p.bin");
        write_atomic(&t, |w| Ok(w.write_all(b"x")?)).unwrap();
        let mode = std::fs::metadata(&t).unwrap().permissions().mode() & 0o777;
        // The umask, as the kernel reports it (Linux ≥ 4.7), else what a fresh file gets.
        let umask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let l = s.lines().find(|l| l.starts_with("Umask:"))?.to_string();
                u32::from_str_radix(l.split_whitespace().nth(1)?, 8).ok()
            });
        if let Some(u) = umask {
            assert_eq!(mode, 0o666 & !u, "mode {mode:o} under umask {u:o}");
        }
        assert_ne!(mode, 0o600, "not the temp file's private mode");
    }

    #[test]
    fn stale_temp_files_are_recognised_and_cleaned() {
        let d = tempfile::tempdir().unwrap();
        // A pid that is not running (pid_max is at most 2^22 on Linux).
        let dead = d.path().join(format!(".x.gguf{TEMP_MARKER}99999999-00ab"));
        let mine = d
            .path()
            .join(format!(".y.gguf{TEMP_MARKER}{}-00cd", std::process::id()));
        let other = d.path().join("x.gguf.tmp");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, b"partial").unwrap();
        }
        assert_eq!(temp_owner(&format!(".a{TEMP_MARKER}12-ff")), Some(12));
        assert_eq!(temp_owner(&format!("a{TEMP_MARKER}12-ff")), None);
        assert_eq!(temp_owner(&format!(".a{TEMP_MARKER}12-zz")), None);
        let removed = clean_stale(d.path());
        assert_eq!(removed, vec![dead.clone()]);
        assert!(!dead.exists() && mine.exists() && other.exists());
    }

    #[test]
    fn refuses_directories_read_only_files_and_symlink_loops() {
        let d = tempfile::tempdir().unwrap();
        let e = AtomicFile::create(d.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let ro = d.path().join("ro.bin");
        std::fs::write(&ro, b"keep").unwrap();
        let mut p = std::fs::metadata(&ro).unwrap().permissions();
        p.set_readonly(true);
        std::fs::set_permissions(&ro, p).unwrap();
        let e = AtomicFile::create(&ro).unwrap_err().to_string();
        assert!(e.contains("read-only") && e.contains("ro.bin"), "{e}");
        #[cfg(unix)]
        {
            let a = d.path().join("a");
            let b = d.path().join("b");
            std::os::unix::fs::symlink(&b, &a).unwrap();
            std::os::unix::fs::symlink(&a, &b).unwrap();
            let e = format!("{:#}", AtomicFile::create(&a).unwrap_err());
            assert!(e.contains("symbolic link") && e.contains("/a"), "{e}");
            // A link to a file is written through.
            let real = d.path().join("real.bin");
            std::fs::write(&real, b"old").unwrap();
            let link = d.path().join("link.bin");
            std::os::unix::fs::symlink(&real, &link).unwrap();
            write_atomic(&link, |w| Ok(w.write_all(b"new")?)).unwrap();
            assert_eq!(std::fs::read(&real).unwrap(), b"new");
            assert!(std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink());
        }
    }

    #[test]
    fn drop_removes_the_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let mut f = AtomicFile::create(d.path().join("z")).unwrap();
        f.write_all(b"abc").unwrap();
        let tmp = f.temp_path().to_path_buf();
        assert!(tmp.exists());
        drop(f);
        assert!(!tmp.exists());
        assert!(listing(d.path()).is_empty());
    }
}
