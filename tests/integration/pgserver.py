"""A throwaway PostgreSQL 15 for integration tests: initdb in a temp folder, a server on
127.0.0.1 and a free port (run as the postgres user when the tests run as root: the server refuses
root), database "sluice". stop()/start() keep the folder and the port, for fault tests.

    pg = PgServer()            # raises harness.Skip without PostgreSQL
    try:
        agent = Agent(env={"SLUICE_METADATA_URL": pg.url})
        ...
        pg.stop(); ...; pg.start()
    finally:
        pg.cleanup()
"""
import atexit
import os
import pwd
import shutil
import signal
import subprocess
import tempfile

import harness

PG_BIN = os.environ.get("SLUICE_PG_BIN", "/usr/lib/postgresql/15/bin")


class PgServer:
    """netns: run the server inside that network namespace (/run/netns/NAME), listening on host."""

    def __init__(self, dbname="sluice", fsync=False, host="127.0.0.1", netns=None):
        for prog in ("initdb", "pg_ctl", "postgres", "psql"):
            if not os.access(os.path.join(PG_BIN, prog), os.X_OK):
                raise harness.Skip("no PostgreSQL: %s/%s not found (set SLUICE_PG_BIN)" % (PG_BIN, prog))
        self._user = None
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam("postgres")
            except KeyError:
                raise harness.Skip("running as root and there is no postgres user to run the server as")
        self.dbname = dbname
        self.fsync = fsync
        self.host = host
        self.netns = netns
        self.dir = tempfile.mkdtemp(prefix="sluice-pg-")
        atexit.register(self.cleanup)  # a test that forgets cleanup() leaves no server behind
        if self._user:
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        self.datadir = os.path.join(self.dir, "data")
        self.port = harness.free_port()
        self.running = False
        try:
            self._run("initdb", "-D", self.datadir, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--locale=C", "-N")
            if self.host != "127.0.0.1":  # initdb trusts only loopback clients
                with open(os.path.join(self.datadir, "pg_hba.conf"), "a") as f:
                    f.write("host all all %s/32 trust\nhost all all 198.18.0.0/15 trust\n" % self.host)
            self.start()
            self.psql("postgres", "CREATE DATABASE %s" % dbname)
        except Exception:
            self.cleanup()
            raise

    @property
    def url(self):
        return "postgres://postgres@%s:%d/%s" % (self.host, self.port, self.dbname)

    def _prefix(self, as_server_user=False):
        if not self.netns:
            return []
        # nsenter needs root to enter the namespace; it drops to the server's user itself.
        prefix = ["nsenter", "--net=/run/netns/" + self.netns]
        if as_server_user and self._user:
            prefix += ["-S", str(self._user.pw_uid), "-G", str(self._user.pw_gid)]
        return prefix

    def _demote(self):
        if self._user:
            os.setgroups([])
            os.setgid(self._user.pw_gid)
            os.setuid(self._user.pw_uid)

    def _run(self, prog, *args, timeout=60):
        # The server's user may not read our working folder: run from the temp folder.
        p = subprocess.run(self._prefix(as_server_user=True) + [os.path.join(PG_BIN, prog)] + list(args),
                           cwd=self.dir, preexec_fn=None if self.netns else self._demote,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        if p.returncode != 0:
            raise AssertionError("%s failed (%d): %s" % (prog, p.returncode, p.stdout.decode(errors="replace")))
        return p.stdout.decode(errors="replace")

    def start(self):
        """Starts the server, again on the same folder and port after stop()."""
        opts = "-k %s -p %d -c listen_addresses=%s -c fsync=%s -c max_connections=200" % (
            self.dir, self.port, self.host, "on" if self.fsync else "off")
        self._run("pg_ctl", "-D", self.datadir, "-l", os.path.join(self.dir, "server.log"), "-w", "-t", "30",
                  "-o", opts, "start")
        self.running = True

    def stop(self, mode="fast"):
        """Stops the server (connections are cut); start() brings it back."""
        if self.running:
            self._run("pg_ctl", "-D", self.datadir, "-m", mode, "-w", "stop")
            self.running = False

    def _pids(self):
        """The postmaster and every process under it (backends, background workers)."""
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            root = int(f.readline())
        pids, todo = [], [root]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
        return pids

    def freeze(self):
        """SIGSTOP on the whole server: connections stay open and the kernel still ACKs, but nothing
        answers (a blackholed store, the hardest case for a client: no error, only silence)."""
        self._frozen = self._pids()
        for pid in self._frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self):
        for pid in getattr(self, "_frozen", []):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self._frozen = []

    def psql(self, db, sql):
        """Runs SQL as the superuser; returns psql's unaligned, tuples-only output."""
        p = subprocess.run(self._prefix() + [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v",
                                             "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port), "-U", "postgres",
                                             "-d", db, "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = p.stdout.decode(errors="replace")
        if p.returncode != 0:
            raise AssertionError("psql failed: %s" % out)
        return out.strip()

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def cleanup(self):
        self.thaw()
        try:
            self.stop("immediate")
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
        atexit.unregister(self.cleanup)


if __name__ == "__main__":
    # Self-check: start, query, stop, start again on the same port, clean up.
    pg = PgServer()
    try:
        assert pg.psql("sluice", "SELECT 1") == "1"
        pg.stop()
        pg.start()
        assert pg.psql("sluice", "SELECT current_database()") == "sluice"
        print("ok", pg.url)
    finally:
        pg.cleanup()
    assert not os.path.exists(pg.dir)
