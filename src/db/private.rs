//! The private PostgreSQL: when no `DATABASE_URL` is set, taskapi runs the installed
//! server binaries itself on a cluster under the data directory, reachable only through
//! a Unix socket (no TCP port to collide with), and stops it when taskapi stops.
//!
//! The server runs under a small `sh` watchdog whose standard input is a pipe from this
//! process: when taskapi exits for any reason, even `kill -9`, the pipe closes and the
//! watchdog asks PostgreSQL for a fast, clean shutdown. No orphan server is left behind.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt, lchown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::Endpoint;

/// The database taskapi uses inside its private cluster.
pub const DATABASE_NAME: &str = "taskapi";
const SUPERUSER: &str = "postgres";
/// The port number in the socket's name (and the TCP port, when there is one).
const PORT: u16 = 5432;
/// Unix socket paths are limited to 108 bytes (`sun_path`), terminator included.
const MAX_SOCKET_PATH: usize = 107;
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Where the cluster is kept instead when taskapi runs as root and the `postgres` OS user
/// cannot reach the data directory (e.g. a checkout under a 0700 `/root`).
pub const DEFAULT_FALLBACK_BASE: &str = "/var/lib/taskapi";

/// How to run the private server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Holds the lock file, the server log and (normally) the cluster (`postgres/`) and
    /// its socket directory (`run/`).
    pub data_dir: PathBuf,
    /// For test clusters: durability off (fsync, full-page writes) and everything created
    /// for the cluster (data directory, fallback directory, socket directory) removed when
    /// the server stops. Never for user data.
    pub ephemeral: bool,
    /// When root and the `postgres` OS user cannot reach `data_dir`: the cluster and its
    /// socket live in `<fallback_base>/<name>-<hash of data_dir's canonical path>`
    /// instead. Root-owned and not writable by others, or taskapi refuses to use it.
    pub fallback_base: PathBuf,
    /// Tests only: also listen on 127.0.0.1 at this port (the socket is then named after
    /// it too). TCP connections stay refused until the caller's `pg_hba.conf` lets them
    /// in (see `PrivatePostgres::cluster_dir`). Never for user data.
    pub loopback_port: Option<u16>,
}

impl Options {
    /// A cluster under `data_dir`, with the default fallback base.
    pub fn new(data_dir: impl Into<PathBuf>, ephemeral: bool) -> Self {
        Self {
            data_dir: data_dir.into(),
            ephemeral,
            fallback_base: PathBuf::from(DEFAULT_FALLBACK_BASE),
            loopback_port: None,
        }
    }
}

/// Why the private server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "no PostgreSQL server binaries (initdb, postgres) were found in PATH, `pg_config --bindir` \
         or /usr/lib/postgresql/*/bin. Install PostgreSQL (e.g. `apt-get install postgresql`) \
         or set DATABASE_URL to a server of your own"
    )]
    BinariesNotFound,
    #[error(
        "another taskapi is already using the data directory {0}; stop it, or give this one \
         its own directory with TASKAPI_DATA_DIR"
    )]
    AlreadyRunning(PathBuf),
    #[error(
        "running as root, the private PostgreSQL must run as the `postgres` OS user, and there \
         is none; create it (`useradd --system postgres`) or set DATABASE_URL"
    )]
    NoPostgresUser,
    #[error(
        "the `postgres` OS user cannot reach the data directory {dir}: {blocker} is not \
         traversable by other users. Choose a data directory it can reach with \
         TASKAPI_DATA_DIR (e.g. under /var/lib or /tmp), or set DATABASE_URL"
    )]
    NotTraversable { dir: PathBuf, blocker: PathBuf },
    #[error(
        "refusing to use {path}: {reason}. Remove or fix it, choose another TASKAPI_DATA_DIR, \
         or set DATABASE_URL"
    )]
    UnsafeDirectory { path: PathBuf, reason: String },
    #[error(
        "{0} exists but is not a PostgreSQL cluster; move it away or choose another TASKAPI_DATA_DIR"
    )]
    NotACluster(PathBuf),
    #[error("initdb failed: {0}")]
    Initdb(String),
    #[error("PostgreSQL did not start: {0}")]
    Server(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> StartError {
    let context = context.into();
    move |source| StartError::Io { context, source }
}

/// A running private server. Dropping it (or the whole process ending) stops the server;
/// `stop` does so and waits.
#[derive(Debug)]
pub struct PrivatePostgres {
    watchdog: Child,
    watchdog_stdin: Option<ChildStdin>,
    socket_dir: PathBuf,
    port: u16,
    cluster: PathBuf,
    /// Ephemeral clusters: what `stop` removes once the server is down (the watchdog, as
    /// the server's user, may not be allowed to remove all of it).
    remove_after: Vec<PathBuf>,
    _lock: File,
}

/// The OS account the server runs as when we are root.
#[derive(Debug, Clone, Copy)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl PrivatePostgres {
    /// Initialises the cluster on first use, starts the server and waits until it accepts
    /// connections. Blocking: call it from `spawn_blocking` in async code.
    pub fn start(options: &Options) -> Result<Self, StartError> {
        let bin_dir = find_bin_dir().ok_or(StartError::BinariesNotFound)?;
        fs::create_dir_all(&options.data_dir).map_err(io_error(format!(
            "cannot create {}",
            options.data_dir.display()
        )))?;
        let data_dir = options.data_dir.canonicalize().map_err(io_error(format!(
            "cannot resolve {}",
            options.data_dir.display()
        )))?;
        // Taken before anything else is touched: a second taskapi on this data directory
        // stops here, whichever directory holds the cluster.
        let lock = lock_data_dir(&data_dir)?;
        let run_as = run_as()?;
        let home = cluster_home(&data_dir, run_as, &options.fallback_base)?;

        let cluster = home.join("postgres");
        let port = options.loopback_port.unwrap_or(PORT);
        let socket_dir = socket_dir(&home, port, run_as)?;
        let mut remove_after = Vec::new();
        if options.ephemeral {
            remove_after.push(data_dir.clone());
            if home != data_dir {
                remove_after.push(home.clone());
            }
            if !socket_dir.starts_with(&home) {
                remove_after.push(socket_dir.clone());
            }
        }
        if let Err(error) = init_cluster_once(&bin_dir, &cluster, run_as, options.ephemeral) {
            remove_all(&remove_after);
            return Err(error);
        }
        let log_path = data_dir.join("postgres.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(io_error(format!("cannot open {}", log_path.display())))?;
        if let Some(run_as) = run_as {
            chown_to(&log_path, run_as)?;
        }
        let log_start = log
            .metadata()
            .map_err(io_error("cannot read the server log"))?
            .len();

        let mut watchdog = spawn_watchdog(
            &bin_dir,
            &cluster,
            &socket_dir,
            options,
            &remove_after,
            log,
            run_as,
        )?;
        let watchdog_stdin = watchdog.stdin.take();
        let mut server = Self {
            watchdog,
            watchdog_stdin,
            socket_dir,
            port,
            cluster: cluster.clone(),
            remove_after,
            _lock: lock,
        };
        if let Err(error) = server.wait_until_ready(&cluster, &log_path, log_start) {
            server.stop();
            return Err(error);
        }
        Ok(server)
    }

    /// Superuser connection settings for `database` in this cluster, through the socket.
    pub fn config(&self, database: &str) -> Endpoint {
        self.config_as(SUPERUSER, database)
    }

    /// Connection settings for `user` on `database` (the socket is trusted: only this
    /// server's OS user and root can reach it; PostgreSQL has no TLS on a Unix socket).
    pub fn config_as(&self, user: &str, database: &str) -> Endpoint {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(self.port)
            .user(user)
            .dbname(database);
        Endpoint::plaintext(config, "the private PostgreSQL")
    }

    /// The cluster's directory (`postgresql.conf`, `pg_hba.conf`), owned by the server's
    /// OS user.
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster
    }

    /// Asks the server for a fast shutdown and waits until it has stopped.
    pub fn stop(&mut self) {
        drop(self.watchdog_stdin.take());
        let _ = self.watchdog.wait();
        remove_all(&self.remove_after);
    }

    fn wait_until_ready(
        &mut self,
        cluster: &Path,
        log_path: &Path,
        log_start: u64,
    ) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let pid_file = cluster.join("postmaster.pid");
        loop {
            if let Ok(Some(status)) = self.watchdog.try_wait() {
                return Err(StartError::Server(format!(
                    "the server exited ({status}); its log says:\n{}",
                    log_tail(log_path, log_start)
                )));
            }
            // PostgreSQL writes "ready" as the status line of postmaster.pid once it
            // accepts connections.
            if let Ok(contents) = fs::read_to_string(&pid_file)
                && contents.lines().nth(7).map(str::trim) == Some("ready")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartError::Server(format!(
                    "not ready after {}s; its log says:\n{}",
                    READY_TIMEOUT.as_secs(),
                    log_tail(log_path, log_start)
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Closing the pipe is the shutdown signal; waiting is `stop`'s job.
        drop(self.watchdog_stdin.take());
    }
}

/// The first directory holding both `initdb` and `postgres`.
fn find_bin_dir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let from_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let mut installed: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    installed.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    from_path
        .into_iter()
        .chain(from_pg_config)
        .chain(installed.into_iter().map(|(_, dir)| dir))
        .find(|dir| has_server(dir))
}

/// One taskapi per data directory: a second one gets a clear error instead of a fight
/// over the cluster.
fn lock_data_dir(data_dir: &Path) -> Result<File, StartError> {
    let path = data_dir.join("taskapi.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error(format!("cannot open {}", path.display())))?;
    // A lock can outlive its holder by a moment: a process forked elsewhere in this program
    // holds a copy of the descriptor until it execs. So a busy lock is asked again for a
    // second before the answer is "another taskapi is running".
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StartError::AlreadyRunning(data_dir.to_owned()));
            }
            Err(fs::TryLockError::Error(error)) => {
                return Err(io_error(format!("cannot lock {}", path.display()))(error));
            }
        }
    }
}

/// This process's effective uid: the owner of /proc/self (no unsafe `geteuid` needed).
fn effective_uid() -> Result<u32, StartError> {
    Ok(fs::metadata("/proc/self")
        .map_err(io_error("cannot read /proc/self"))?
        .uid())
}

/// PostgreSQL refuses to run as root: then it runs as the `postgres` OS user (`None`: we are
/// not root, and it runs as us). Tests start PgBouncer, which refuses root too, the same way.
pub fn run_as() -> Result<Option<RunAs>, StartError> {
    if effective_uid()? != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").map_err(io_error("cannot read /etc/passwd"))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 3 && fields[0] == "postgres").then(|| {
                Some(RunAs {
                    uid: fields[2].parse().ok()?,
                    gid: fields[3].parse().ok()?,
                })
            })?
        })
        .map(Some)
        .ok_or(StartError::NoPostgresUser)
}

/// Every parent of the data directory must be searchable by the `postgres` user.
fn check_traversable(data_dir: &Path, run_as: RunAs) -> Result<(), StartError> {
    for dir in data_dir.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(dir) else {
            continue;
        };
        let mode = meta.permissions().mode();
        let reachable = if meta.uid() == run_as.uid {
            mode & 0o100 != 0
        } else if meta.gid() == run_as.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !reachable {
            return Err(StartError::NotTraversable {
                dir: data_dir.to_owned(),
                blocker: dir.to_owned(),
            });
        }
    }
    Ok(())
}

/// Where the cluster (`postgres/`) and its socket directory (`run/`) live: the data
/// directory itself or, when we are root and the `postgres` user cannot reach it, a
/// directory of its own under the fallback base. Once that fallback directory exists it is
/// used on every start (unless the data directory holds a cluster itself), so making the
/// data directory reachable later never silently starts an empty cluster instead.
fn cluster_home(
    data_dir: &Path,
    run_as: Option<RunAs>,
    fallback_base: &Path,
) -> Result<PathBuf, StartError> {
    let Some(run_as) = run_as else {
        return Ok(data_dir.to_owned());
    };
    let reachable = check_traversable(data_dir, run_as);
    // The base's parent resolved once, and used resolved, so a link swapped later does not
    // redirect this run.
    let fallback = fallback_base
        .parent()
        .and_then(|parent| parent.canonicalize().ok())
        .zip(fallback_base.file_name())
        .map(|(parent, name)| parent.join(name));
    let home = fallback
        .as_ref()
        .map(|base| base.join(fallback_name(data_dir)));
    let in_fallback = home
        .as_deref()
        .is_some_and(|home| fs::symlink_metadata(home).is_ok());
    if holds_something(&data_dir.join("postgres")) || (reachable.is_ok() && !in_fallback) {
        reachable?;
        chown_to(data_dir, run_as)?;
        return Ok(data_dir.to_owned());
    }
    let prepared = match fallback.as_deref().zip(home.as_deref()) {
        Some((base, home)) => prepare_fallback(base, home, run_as),
        None => Err(Fallback::Impossible(format!(
            "the parent of {} does not exist",
            fallback_base.display()
        ))),
    };
    match (prepared, reachable, home) {
        (Ok(()), _, Some(home)) => {
            tracing::info!(
                cluster_dir = %home.display(),
                data_dir = %data_dir.display(),
                "the postgres OS user cannot reach the data directory: the cluster and its \
                 socket are kept in cluster_dir (the secret key, the lock and the server log \
                 stay in the data directory)"
            );
            Ok(home)
        }
        (Err(Fallback::Unsafe(error)), _, _) => Err(error),
        (Err(Fallback::Impossible(reason)), Err(unreachable), _) => {
            tracing::warn!(
                fallback_base = %fallback_base.display(),
                reason,
                "cannot keep the cluster under the fallback directory either"
            );
            Err(unreachable)
        }
        (Err(Fallback::Impossible(reason)), Ok(()), home) => Err(StartError::UnsafeDirectory {
            path: home.unwrap_or_else(|| fallback_base.to_owned()),
            reason,
        }),
        (Ok(()), _, None) => unreachable!("prepared without a fallback directory"),
    }
}

/// Why a fallback directory was not used: unsafe (refuse, never follow it) or impossible
/// (then the data directory's own error is the one to show).
enum Fallback {
    Unsafe(StartError),
    Impossible(String),
}

/// The fallback base (root-owned, 0755, created if missing) and, in it, this data
/// directory's own directory (the server's user's, 0700). The base and every directory
/// above it must be real directories that only root can change (or sticky, like /tmp), so
/// nobody else can swap what root then hands to the server's user.
fn prepare_fallback(base: &Path, home: &Path, run_as: RunAs) -> Result<(), Fallback> {
    let impossible = |what: &str, path: &Path, error: io::Error| {
        Fallback::Impossible(format!("cannot {what} {}: {error}", path.display()))
    };
    match fs::symlink_metadata(base) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .mode(0o755)
                .create(base)
                .map_err(|e| impossible("create", base, e))?;
            // The mode above is filtered by the umask.
            fs::set_permissions(base, fs::Permissions::from_mode(0o755))
                .map_err(|e| impossible("set the mode of", base, e))?;
        }
        Err(error) => return Err(impossible("read", base, error)),
        Ok(_) => {}
    }
    for dir in base.ancestors() {
        let meta = fs::symlink_metadata(dir).map_err(|e| impossible("read", dir, e))?;
        let mode = meta.mode() & 0o7777;
        let sticky = mode & 0o1000 != 0 && dir != base;
        let reason = if meta.file_type().is_symlink() {
            Some("it is a symbolic link".to_owned())
        } else if !meta.is_dir() {
            Some("it is not a directory".to_owned())
        } else if meta.uid() != 0 {
            Some(format!("it is owned by uid {}, not root", meta.uid()))
        } else if mode & 0o022 != 0 && !sticky {
            Some(format!(
                "users other than root can write to it (mode {mode:o})"
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Fallback::Unsafe(StartError::UnsafeDirectory {
                path: dir.to_owned(),
                reason,
            }));
        }
    }
    if let Err(StartError::NotTraversable { blocker, .. }) = check_traversable(home, run_as) {
        return Err(Fallback::Impossible(format!(
            "the postgres OS user cannot enter {}",
            blocker.display()
        )));
    }
    private_dir(home, Some(run_as)).map_err(Fallback::Unsafe)
}

/// `<parent>-<name>-<hash>` for a data directory: readable (which checkout it belongs to)
/// and unique (the FNV-1a hash of its canonical path).
fn fallback_name(data_dir: &Path) -> String {
    let mut parts: Vec<String> = data_dir
        .iter()
        .rev()
        .filter(|part| part.as_bytes() != b"/")
        .take(2)
        .map(|part| {
            part.to_string_lossy()
                .chars()
                .map(|c| match c {
                    'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
                    _ => '_',
                })
                .collect()
        })
        .collect();
    parts.reverse();
    let mut readable = parts.join("-");
    if readable.is_empty() {
        readable.push_str("data");
    }
    // Short enough for the socket path (see `socket_dir`) under the default base.
    readable.truncate(40);
    format!("{readable}-{:016x}", fnv1a(data_dir.as_os_str().as_bytes()))
}

/// 64-bit FNV-1a: a fixed function (unlike std's `DefaultHasher`, which may change between
/// Rust releases), so a directory named after a path is found again by every later build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether `path` exists and is anything but an empty directory.
fn holds_something(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::read_dir(path).is_ok_and(|mut e| e.next().is_some()),
        Ok(_) => true,
        Err(_) => false,
    }
}

/// Creates `dir` (mode 0700), or checks that the existing one is a real directory owned
/// by the server's user or root, and hands it to the server's user. A symbolic link is
/// refused, never followed: root must not chown or chmod wherever it points.
fn private_dir(dir: &Path, run_as: Option<RunAs>) -> Result<(), StartError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) => {
            let server_uid = match run_as {
                Some(run_as) => run_as.uid,
                None => effective_uid()?,
            };
            let reason = if meta.file_type().is_symlink() {
                Some("it is a symbolic link".to_owned())
            } else if !meta.is_dir() {
                Some("it is not a directory".to_owned())
            } else if meta.uid() != server_uid && meta.uid() != 0 {
                Some(format!(
                    "it is owned by uid {}, not by the server's user ({server_uid}) or root",
                    meta.uid()
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(StartError::UnsafeDirectory {
                    path: dir.to_owned(),
                    reason,
                });
            }
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(io_error(format!("cannot create {}", dir.display())))?;
        }
        Err(error) => return Err(io_error(format!("cannot read {}", dir.display()))(error)),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io_error(format!("cannot restrict {}", dir.display())))?;
    if let Some(run_as) = run_as {
        chown_to(dir, run_as)?;
    }
    Ok(())
}

/// Best effort: what is left of an ephemeral cluster once its server has stopped.
fn remove_all(dirs: &[PathBuf]) {
    for dir in dirs {
        let _ = fs::remove_dir_all(dir);
    }
}

fn chown_to(path: &Path, run_as: RunAs) -> Result<(), StartError> {
    lchown(path, Some(run_as.uid), Some(run_as.gid)).map_err(io_error(format!(
        "cannot hand {} to the postgres user",
        path.display()
    )))
}

fn command_as(program: &Path, run_as: Option<RunAs>) -> Command {
    let mut command = Command::new(program);
    if let Some(run_as) = run_as {
        command.uid(run_as.uid).gid(run_as.gid);
    }
    command
}

fn init_cluster_once(
    bin_dir: &Path,
    cluster: &Path,
    run_as: Option<RunAs>,
    ephemeral: bool,
) -> Result<(), StartError> {
    if cluster.join("PG_VERSION").is_file() {
        return Ok(());
    }
    if fs::read_dir(cluster).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(StartError::NotACluster(cluster.to_owned()));
    }
    private_dir(cluster, run_as)?;
    let mut initdb = command_as(&bin_dir.join("initdb"), run_as);
    initdb
        .arg("--pgdata")
        .arg(cluster)
        .args([
            "--username",
            SUPERUSER,
            "--encoding",
            "UTF8",
            "--locale",
            "C.UTF-8",
        ])
        // Only the Unix socket, in a directory only the server's OS user (and root) can
        // enter, reaches the server.
        .args(["--auth-local", "trust", "--auth-host", "reject"])
        .current_dir(cluster);
    if ephemeral {
        initdb.arg("--no-sync");
    }
    let output = initdb.output().map_err(io_error("cannot run initdb"))?;
    if !output.status.success() {
        return Err(StartError::Initdb(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

/// `<home>/run` (`home`: the data directory or its fallback), or a directory under the
/// system temp dir when that path would be too long for a Unix socket.
fn socket_dir(home: &Path, port: u16, run_as: Option<RunAs>) -> Result<PathBuf, StartError> {
    let preferred = home.join("run");
    let socket_name = format!(".s.PGSQL.{port}");
    let dir = if preferred.join(&socket_name).as_os_str().len() <= MAX_SOCKET_PATH {
        preferred
    } else {
        let short = std::env::temp_dir().join(format!(
            "taskapi-{:016x}",
            fnv1a(home.as_os_str().as_bytes())
        ));
        tracing::warn!(
            socket_dir = %short.display(),
            "the data directory's path is too long for a Unix socket; using a short one"
        );
        short
    };
    private_dir(&dir, run_as)?;
    Ok(dir)
}

/// The watchdog: starts the server, and asks it for a fast shutdown (SIGINT) when its
/// standard input closes; exits when the server does. Arguments: a count `n`, `n`
/// directories to remove afterwards (ephemeral test clusters; as far as its user may),
/// then the server binary and its arguments.
const WATCHDOG: &str = r#"
exec 3<&0
n=$1; shift
i=0
while [ "$i" -lt "$n" ]; do i=$((i + 1)); eval "remove_$i=\$1"; shift; done
bin=$1; shift
"$bin" "$@" </dev/null &
pg=$!
{ read -r _ <&3; kill -INT "$pg" 2>/dev/null; } &
wait "$pg"
code=$?
i=0
while [ "$i" -lt "$n" ]; do i=$((i + 1)); eval "rm -rf -- \"\$remove_$i\"" 2>/dev/null; done
exit "$code"
"#;

fn spawn_watchdog(
    bin_dir: &Path,
    cluster: &Path,
    socket_dir: &Path,
    options: &Options,
    remove_after: &[PathBuf],
    log: File,
    run_as: Option<RunAs>,
) -> Result<Child, StartError> {
    let mut command = command_as(Path::new("/bin/sh"), run_as);
    command
        .arg("-c")
        .arg(WATCHDOG)
        .arg("taskapi-postgres")
        .arg(remove_after.len().to_string())
        .args(remove_after)
        .arg(bin_dir.join("postgres"))
        .arg("-D")
        .arg(cluster)
        .arg("-k")
        .arg(socket_dir)
        .args(["-p", &options.loopback_port.unwrap_or(PORT).to_string()])
        .args([
            "-c",
            if options.loopback_port.is_some() {
                "listen_addresses=127.0.0.1"
            } else {
                "listen_addresses="
            },
            "-c",
            "unix_socket_permissions=0700",
        ])
        .args(["-c", "max_connections=200"]);
    if options.ephemeral {
        command.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        command.args(["-c", "synchronous_commit=off"]);
    }
    let stderr = log
        .try_clone()
        .map_err(io_error("cannot duplicate the log handle"))?;
    command
        .current_dir(cluster)
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(stderr)
        // Its own process group: a Ctrl-C in the terminal reaches taskapi, which finishes
        // its requests before it stops the server, instead of the server dying first.
        .process_group(0)
        .spawn()
        .map_err(io_error("cannot start the PostgreSQL server"))
}

fn log_tail(path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.seek(SeekFrom::Start(from));
        let _ = file.take(16 * 1024).read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_hash_is_fnv1a_and_never_changes() {
        // The published FNV-1a 64 test vectors, and a pinned name: a different value would
        // make an existing fallback cluster look lost.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            fallback_name(Path::new("/root/src/taskapi/data")),
            "taskapi-data-6898119037af57d4"
        );
    }

    #[test]
    fn fallback_names_are_readable_safe_and_short_enough_for_the_socket() {
        assert_eq!(
            &fallback_name(Path::new("/root/my checkout/data"))[..16],
            "my_checkout-data"
        );
        assert!(fallback_name(Path::new("/")).starts_with("data-"));
        let long = Path::new("/root")
            .join("x".repeat(200))
            .join("y".repeat(200));
        let name = fallback_name(&long);
        assert!(!name.contains('/'));
        let socket = Path::new(DEFAULT_FALLBACK_BASE)
            .join(name)
            .join("run")
            .join(format!(".s.PGSQL.{PORT}"));
        assert!(socket.as_os_str().len() <= MAX_SOCKET_PATH, "{socket:?}");
    }

    #[test]
    fn a_private_dir_never_follows_a_symbolic_link() {
        let root = std::env::temp_dir().join(format!("taskapi-link-{}", uuid::Uuid::new_v4()));
        fs::create_dir(&root).unwrap();
        let target = root.join("target");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        let link = root.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            private_dir(&link, None),
            Err(StartError::UnsafeDirectory { .. })
        ));
        let mode = fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "the target is untouched");
        private_dir(&root.join("fresh"), None).unwrap();
        let mode = fs::metadata(root.join("fresh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        fs::remove_dir_all(root).unwrap();
    }
}
