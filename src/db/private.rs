//! The private PostgreSQL: when no `DATABASE_URL` is set, taskapi runs the installed
//! server binaries itself on a cluster under the data directory, reachable only through
//! a Unix socket (no TCP port to collide with), and stops it when taskapi stops.
//!
//! The server runs under a small `sh` watchdog whose standard input is a pipe from this
//! process: when taskapi exits for any reason, even `kill -9`, the pipe closes and the
//! watchdog asks PostgreSQL for a fast, clean shutdown. No orphan server is left behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The database taskapi uses inside its private cluster.
pub const DATABASE_NAME: &str = "taskapi";
const SUPERUSER: &str = "postgres";
const PORT: u16 = 5432;
/// Unix socket paths are limited to 108 bytes (`sun_path`), terminator included.
const MAX_SOCKET_PATH: usize = 107;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How to run the private server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Holds the cluster (`postgres/`), its log, the socket and the lock file.
    pub data_dir: PathBuf,
    /// For test clusters: durability off (fsync, full-page writes) and the whole data
    /// directory removed when the server stops. Never for user data.
    pub ephemeral: bool,
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
    _lock: File,
}

/// The OS account the server runs as when we are root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
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
        let lock = lock_data_dir(&data_dir)?;
        let run_as = run_as()?;
        if let Some(run_as) = run_as {
            check_traversable(&data_dir, run_as)?;
            chown_to(&data_dir, run_as)?;
        }

        let cluster = data_dir.join("postgres");
        init_cluster_once(&bin_dir, &cluster, run_as, options.ephemeral)?;
        let socket_dir = socket_dir(&data_dir, run_as)?;
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
            options.ephemeral.then_some(data_dir.as_path()),
            log,
            run_as,
        )?;
        let watchdog_stdin = watchdog.stdin.take();
        let mut server = Self {
            watchdog,
            watchdog_stdin,
            socket_dir,
            _lock: lock,
        };
        if let Err(error) = server.wait_until_ready(&cluster, &log_path, log_start) {
            server.stop();
            return Err(error);
        }
        Ok(server)
    }

    /// Superuser connection settings for `database` in this cluster, through the socket.
    pub fn config(&self, database: &str) -> tokio_postgres::Config {
        self.config_as(SUPERUSER, database)
    }

    /// Connection settings for `user` on `database` (the socket is trusted: only this
    /// server's OS user and root can reach it).
    pub fn config_as(&self, user: &str, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(PORT)
            .user(user)
            .dbname(database);
        config
    }

    /// Asks the server for a fast shutdown and waits until it has stopped.
    pub fn stop(&mut self) {
        drop(self.watchdog_stdin.take());
        let _ = self.watchdog.wait();
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
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(StartError::AlreadyRunning(data_dir.to_owned())),
        Err(fs::TryLockError::Error(error)) => {
            Err(io_error(format!("cannot lock {}", path.display()))(error))
        }
    }
}

/// PostgreSQL refuses to run as root: then it runs as the `postgres` OS user.
fn run_as() -> Result<Option<RunAs>, StartError> {
    // The owner of /proc/self is this process's effective uid (no unsafe geteuid needed).
    let euid = fs::metadata("/proc/self")
        .map_err(io_error("cannot read /proc/self"))?
        .uid();
    if euid != 0 {
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

fn chown_to(path: &Path, run_as: RunAs) -> Result<(), StartError> {
    chown(path, Some(run_as.uid), Some(run_as.gid)).map_err(io_error(format!(
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
    fs::create_dir_all(cluster)
        .map_err(io_error(format!("cannot create {}", cluster.display())))?;
    fs::set_permissions(cluster, fs::Permissions::from_mode(0o700))
        .map_err(io_error(format!("cannot restrict {}", cluster.display())))?;
    if let Some(run_as) = run_as {
        chown_to(cluster, run_as)?;
    }
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

/// `<data>/run`, or a directory under the system temp dir when that path would be too
/// long for a Unix socket.
fn socket_dir(data_dir: &Path, run_as: Option<RunAs>) -> Result<PathBuf, StartError> {
    let preferred = data_dir.join("run");
    let socket_name = format!(".s.PGSQL.{PORT}");
    let dir = if preferred.join(&socket_name).as_os_str().len() <= MAX_SOCKET_PATH {
        preferred
    } else {
        let short = std::env::temp_dir().join(format!("taskapi-{:016x}", path_hash(data_dir)));
        tracing::warn!(
            socket_dir = %short.display(),
            "the data directory's path is too long for a Unix socket; using a short one"
        );
        short
    };
    fs::create_dir_all(&dir).map_err(io_error(format!("cannot create {}", dir.display())))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(io_error(format!("cannot restrict {}", dir.display())))?;
    if let Some(run_as) = run_as {
        chown_to(&dir, run_as)?;
    }
    Ok(dir)
}

fn path_hash(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    hasher.finish()
}

/// The watchdog: starts the server, and asks it for a fast shutdown (SIGINT) when its
/// standard input closes; exits when the server does. Optionally removes a directory
/// afterwards (ephemeral test clusters).
const WATCHDOG: &str = r#"
exec 3<&0
bin=$1; shift
"$bin" "$@" </dev/null &
pg=$!
{ read -r _ <&3; kill -INT "$pg" 2>/dev/null; } &
wait "$pg"
code=$?
if [ -n "${TASKAPI_REMOVE_AFTER:-}" ]; then rm -rf -- "$TASKAPI_REMOVE_AFTER"; fi
exit "$code"
"#;

fn spawn_watchdog(
    bin_dir: &Path,
    cluster: &Path,
    socket_dir: &Path,
    remove_after: Option<&Path>,
    log: File,
    run_as: Option<RunAs>,
) -> Result<Child, StartError> {
    let mut command = command_as(Path::new("/bin/sh"), run_as);
    command
        .arg("-c")
        .arg(WATCHDOG)
        .arg("taskapi-postgres")
        .arg(bin_dir.join("postgres"))
        .arg("-D")
        .arg(cluster)
        .arg("-k")
        .arg(socket_dir)
        .args(["-p", &PORT.to_string()])
        .args([
            "-c",
            "listen_addresses=",
            "-c",
            "unix_socket_permissions=0700",
        ])
        .args(["-c", "max_connections=200"]);
    if remove_after.is_some() {
        command.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        command.args(["-c", "synchronous_commit=off"]);
    }
    if let Some(dir) = remove_after {
        command.env("TASKAPI_REMOVE_AFTER", dir);
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
