"""PostgreSQL 15 as a test peer: a throw-away cluster under the test's work folder, run as the
`postgres` user (the server refuses to run as root) on a free loopback port.

    with PostgresPeer(workdir) as pg:              # or .start() / .stop()
        pg.uri                                      # postgresql://postgres@127.0.0.1:<port>/ferry
        pg.query("SELECT count(*) FROM tasks")      # rows as lists of strings, via psql
        pg.stop(); pg.start()                       # an outage: same data folder, same port

start() runs initdb once (trust authentication, data folder chowned to postgres), starts the
postmaster in the foreground (own process group, Unix socket in the work folder, TCP on
127.0.0.1 only), waits with pg_isready (bounded) and creates the database `ferry` if it does not
exist. stop() is a fast shutdown (pg_ctl stop -m fast); leaving the `with` block stops it and
kills whatever is left of its process group. The server log stays in the work folder.
"""
import contextlib
import os
import pwd
import subprocess

from ferrytest import PeerProcess, free_port, stop_process_group, wait_for

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
PG_USER = "postgres"


def postgres_available():
    """True when the PostgreSQL server binaries and the postgres user exist (tests skip otherwise)."""
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return False
    return all(os.access(os.path.join(PG_BIN, b), os.X_OK)
               for b in ("initdb", "postgres", "pg_ctl", "pg_isready", "psql"))


def _as_postgres(args):
    """The command line running `args` as the postgres user (we run as root in the test box)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *args]
    return list(args)


def _open_path_for_others(path):
    """Lets the postgres user traverse to `path`: adds o+x to it and to every ancestor that lacks
    it (mkdtemp makes 0700 folders)."""
    path = os.path.abspath(path)
    while True:
        mode = os.stat(path).st_mode
        if not mode & 0o001:
            os.chmod(path, (mode & 0o7777) | 0o001)
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


class PostgresPeer(PeerProcess):
    """One PostgreSQL cluster in workdir/postgres-<port>/ (data/, socket/, postgres.log)."""

    stop_timeout = 30
    database = "ferry"

    def __init__(self, workdir, fsync=False, extra_settings=None):
        """fsync=False (the default) keeps tests fast; a killed server process loses nothing
        either way, only an OS crash would. extra_settings: {"name": "value"} for `-c`."""
        self.port = free_port()
        self.dir = os.path.join(os.path.abspath(workdir), f"postgres-{self.port}")
        self.data_dir = os.path.join(self.dir, "data")
        self.socket_dir = os.path.join(self.dir, "socket")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.settings = {"fsync": "on" if fsync else "off", "listen_addresses": "127.0.0.1"}
        self.settings.update(extra_settings or {})
        self.proc = None
        self._log = None
        self._initialised = False

    @property
    def uri(self):
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{self.database}"

    # -- lifecycle ---------------------------------------------------------------------------

    def _init_cluster(self):
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(self.socket_dir, exist_ok=True)
        _open_path_for_others(self.dir)
        ent = pwd.getpwnam(PG_USER)
        for d in (self.dir, self.data_dir, self.socket_dir):
            os.chown(d, ent.pw_uid, ent.pw_gid)
        os.chmod(self.data_dir, 0o700)
        p = subprocess.run(_as_postgres([os.path.join(PG_BIN, "initdb"), "-D", self.data_dir,
                                         "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                                         "--no-sync", "--no-instructions"]),
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise AssertionError(f"initdb failed with {p.returncode}:\n{p.stdout}\n{p.stderr}")
        self._initialised = True

    def start(self, timeout=60):
        """Starts the server (initdb on the first call) and waits until it accepts connections
        and the database `ferry` exists. Raises AssertionError with the log's end otherwise."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        if not self._initialised:
            self._init_cluster()
        cmd = [os.path.join(PG_BIN, "postgres"), "-D", self.data_dir, "-p", str(self.port),
               "-k", self.socket_dir, "-h", "127.0.0.1"]
        for name, value in self.settings.items():
            if name != "listen_addresses":
                cmd += ["-c", f"{name}={value}"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(_as_postgres(cmd), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir,
                                     start_new_session=True)
        self.wait_started(self._ready, f"PostgreSQL on port {self.port}", timeout)
        self._create_database()
        return self

    def _ready(self):
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            p = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-h", "127.0.0.1", "-p",
                                str(self.port), "-U", PG_USER, "-d", "postgres", "-t", "2"],
                               capture_output=True, timeout=10)
            return p.returncode == 0
        return False

    def _create_database(self):
        exists = self.query("SELECT 1 FROM pg_database WHERE datname = 'ferry'", db="postgres")
        if not exists:
            self.query(f"CREATE DATABASE {self.database}", db="postgres")

    def stop(self, timeout=None):
        """Fast shutdown (open transactions are rolled back, clients disconnected); SIGKILL to
        the process group if it does not finish within the stop timeout."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(_as_postgres([os.path.join(PG_BIN, "pg_ctl"), "stop", "-D",
                                             self.data_dir, "-m", "fast", "-w", "-t",
                                             str(int(timeout or self.stop_timeout))]),
                               capture_output=True, timeout=(timeout or self.stop_timeout) + 10)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        stop_process_group(self.proc, 5)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- queries -----------------------------------------------------------------------------

    def psql_command(self, db=None):
        return [os.path.join(PG_BIN, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
                "-F", "\t", "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER,
                "-d", db or self.database]

    def query(self, sql, db=None, timeout=60):
        """Runs `sql` with psql; returns the rows as lists of strings (NULL is ''). Raises
        AssertionError with psql's message when it fails."""
        p = subprocess.run(self.psql_command(db) + ["-c", sql], capture_output=True, text=True,
                           timeout=timeout)
        if p.returncode != 0:
            raise AssertionError(f"psql {sql!r} failed with {p.returncode}: {p.stderr.strip()}")
        return [line.split("\t") for line in p.stdout.splitlines()]

    def scalar(self, sql, db=None):
        """The single value of a one-row, one-column query, as a string."""
        rows = self.query(sql, db)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise AssertionError(f"{sql!r}: expected one value, got {rows!r}")
        return rows[0][0]
