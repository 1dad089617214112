"""A throwaway PostgreSQL cluster for tests and benchmarks: ``with TemporaryPostgres() as pg: pg.new_database()``.

One cluster per test session (initdb is the slow part, about a second); each test takes a fresh
database from it, so tests never see each other's rows, advisory locks or notifications. Tests that
exercise outages stop and start it on the same port and data directory.

It needs the server binaries (initdb, pg_ctl) of one PostgreSQL install: those next to the
``pg_ctl`` on PATH (symlinks resolved), else Debian's /usr/lib/postgresql/N/bin, which a plain
``apt-get install postgresql`` leaves off PATH. Missing binaries raise `PostgresError` (tests fail,
never skip: CI must not pass without the PostgreSQL store tested).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from tests.processes import free_port

StopMode = Literal["smart", "fast", "immediate"]

# Durability against power loss is pointless for a cluster deleted after the run: no fsync is most of
# the speed. synchronous_commit stays on, so a crash-like stop (immediate) keeps committed work as a
# real server would. wal_level=minimal also needs max_wal_senders=0. Values go into postgresql.conf
# verbatim, so string values carry their own quotes.
_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    # Small containers give /dev/shm 64 MiB; mmap'd DSM in the data dir never runs out.
    "dynamic_shared_memory_type": "mmap",
}
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
"""Where Debian's packages put each version's binaries, off PATH."""
MISSING_BINARIES = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin: "
    "the PostgreSQL store tests start their own throwaway cluster and need them "
    "(Debian/Ubuntu: apt-get install -y postgresql)"
)


class PostgresError(RuntimeError):
    """The cluster could not be set up, started or stopped; the message says why."""


class TemporaryPostgres:
    """Owns one cluster in a temp dir; ``stop()``/``start()`` keep its port and data."""

    def __init__(self, *, user: str = "test", database: str = "test", settings: dict[str, str] | None = None) -> None:
        self.user = user
        self.database = database
        self.password = secrets.token_urlsafe(18)  # URL-safe: no quoting needed in the URL
        self.port = 0
        self.settings = {**_SETTINGS, **(settings or {})}
        self.timings: dict[str, float] = {}  # seconds per phase; the latest start/stop wins
        self.root: Path | None = None
        self._bindir = _find_bindir()
        # initdb and postgres refuse uid 0; as root we drop to the postgres account.
        self._os_user = _postgres_account() if os.geteuid() == 0 else None
        self._names = itertools.count(1)

    # -- public API ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The admin database's URL, password included."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; its URL (with the password)."""
        import psycopg  # a test dependency; the cluster itself needs only the stdlib
        from psycopg import sql

        name = f"t{next(self._names)}_{secrets.token_hex(3)}"
        started = time.perf_counter()
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.timings["createdb"] = time.perf_counter() - started
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by `new_database`, closing whatever is still connected to it."""
        import psycopg
        from psycopg import sql

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    @property
    def log_path(self) -> Path:
        return self._root / "server.log"

    def setup(self) -> str:
        """initdb, start, create the admin database; returns its URL."""
        try:
            self._initdb()
            for attempt in range(3):
                self.port = free_port()
                self._write_conf()
                try:
                    self.start()
                    break
                except PostgresError:
                    # Another process may have taken the port between free_port() and bind().
                    if attempt == 2 or "could not bind" not in self.read_log():
                        raise
            self._timed("createdb", [self._bin("createdb"), *self._socket_args(), self.database])
        except BaseException:
            self.cleanup()
            raise
        return self.url

    def start(self, timeout: float = 30) -> None:
        """Start (or restart after stop()) on the same port and data dir; waits until it accepts."""
        cmd = [self._bin("pg_ctl"), "start", "-w", "-s", "-t", str(int(timeout))]
        self._timed("start", [*cmd, "-D", str(self._data), "-l", str(self.log_path)])

    def stop(self, mode: StopMode = "fast") -> None:
        """fast = clean shutdown; immediate = crash-like, the next start() runs recovery."""
        self._timed("stop", [self._bin("pg_ctl"), "stop", "-w", "-s", "-m", mode, "-D", str(self._data)])

    def is_running(self) -> bool:
        if self.root is None:
            return False
        return (self._data / "postmaster.pid").exists()

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def cleanup(self) -> None:
        """Idempotent: kill the server (data is discarded, so immediate) and remove the dir."""
        if self.root is None:
            return
        if self.is_running():
            with contextlib.suppress(PostgresError):  # already gone; rmtree below is what matters
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> TemporaryPostgres:
        self.setup()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"TemporaryPostgres(port={self.port}, root={self.root})"

    # -- internals -------------------------------------------------------------------------------

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise PostgresError("cluster not set up (or already cleaned up)")
        return self.root

    @property
    def _data(self) -> Path:
        return self._root / "data"

    def _bin(self, name: str) -> str:
        return str(self._bindir / name)

    def _socket_args(self) -> list[str]:
        # Local admin work goes over the socket (trust auth, dir is 0700) so the password is never
        # on a command line or in the environment.
        return ["-h", str(self._root), "-p", str(self.port), "-U", self.user]

    def _initdb(self) -> None:
        # Short path under /tmp: the socket path must fit in sockaddr_un (107 bytes), and the
        # postgres account cannot enter /root when we run as root.
        self.root = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp" if self._os_user else None))
        if self._os_user is not None:
            _check_traversable(self.root.parent, self._os_user)
            os.chown(self.root, self._os_user.pw_uid, self._os_user.pw_gid)
        pwfile = self._root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._os_user is not None:
            os.chown(pwfile, self._os_user.pw_uid, self._os_user.pw_gid)
        try:
            self._timed(
                "initdb",
                [
                    self._bin("initdb"),
                    "-D", str(self._data),
                    "-U", self.user,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",  # socket lives in our 0700 dir: only we can reach it
                    "--auth-host=scram-sha-256",  # TCP, i.e. the URL, must present the password
                    "-E", "UTF8",
                    "--locale=C",  # no dependence on which locales the machine has
                    "--no-sync",  # skips ~1 s of fsync on a dir we delete anyway
                    "--no-instructions",
                ],
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)

    def _write_conf(self) -> None:
        conf = {**self.settings, "port": str(self.port), "unix_socket_directories": f"'{self._root}'"}
        # Later lines win in postgresql.conf, so appending overrides initdb's values.
        with (self._data / "postgresql.conf").open("a") as f:
            f.write("\n# TemporaryPostgres\n")
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())

    def _timed(self, phase: str, cmd: list[str]) -> None:
        started = time.perf_counter()
        self._run(cmd)
        self.timings[phase] = time.perf_counter() - started

    def _run(self, cmd: list[str]) -> None:
        kwargs: dict[str, Any] = {}
        if self._os_user is not None:
            u = self._os_user
            kwargs = {"user": u.pw_uid, "group": u.pw_gid, "extra_groups": []}
        proc = subprocess.run(
            cmd,
            env=self._env(),
            cwd=self._root,  # the postgres account usually cannot enter the caller's cwd (/root/...)
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            **kwargs,
        )
        if proc.returncode != 0:
            log = self.read_log()[-2000:]
            raise PostgresError(
                f"{Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''} failed ({proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}" + (f"\n--- server log tail ---\n{log}" if log else "")
            )

    def _env(self) -> dict[str, str]:
        # Drop PG* so a developer's PGHOST/PGDATA/PGPASSWORD cannot redirect our tools, and pin the
        # locale: an LC_ALL naming a locale the machine lacks breaks initdb.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", HOME=str(self._root))  # HOME: ignore ~/.pgpass, ~/.psqlrc
        return env


def _find_bindir() -> Path:
    if found := shutil.which("pg_ctl"):
        bindir = Path(os.path.realpath(found)).parent
        if (bindir / "initdb").exists():
            return bindir
    debian = sorted(DEBIAN_BINARIES.glob("*/bin/initdb"), key=lambda p: float(p.parts[-3]))
    if debian:
        return debian[-1].parent
    raise PostgresError(MISSING_BINARIES)


def _postgres_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresError("running as root needs a 'postgres' OS account (the Debian package creates it)") from None


def _check_traversable(directory: Path, user: pwd.struct_passwd) -> None:
    # As root everything is reachable, so a 0700 ancestor only shows up later as a baffling initdb
    # error; name it here instead.
    for d in [directory, *directory.parents]:
        st = d.stat()
        if st.st_uid != user.pw_uid and not st.st_mode & stat.S_IXOTH:
            raise PostgresError(f"{d} is not searchable by {user.pw_name}; set TMPDIR=/tmp")
