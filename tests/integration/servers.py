"""Real servers on 127.0.0.1 for the integration tests and the quickstart.

Each class starts one program (PostgreSQL, Mosquitto, an SMTP catcher or
vialwatchd) on a free port inside a base directory, waits until it answers,
and stops it again.  Every process runs in its own process group, is stopped
by stop() and, as a backstop, at interpreter exit and when this process dies.
Readiness is always polled (pg_isready, a TCP connect, an HTTP request),
never guessed with a fixed sleep.

This module needs only the standard library; psycopg is imported where a
method talks SQL.
"""

import atexit
import ctypes
import email
import email.policy
import glob
import http.client
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON3 = os.environ.get("PYTHON3") or "/usr/bin/python3"
IS_ROOT = os.geteuid() == 0

# Processes started here and not yet stopped, stopped again at exit.
_live = set()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """Returns a TCP port on 127.0.0.1 that nothing listens on right now.

    It is taken below the kernel's ephemeral range: a server restarted on
    its port (a daemon after kill -9) must not find it taken by the source
    port of some client's outgoing connection meanwhile."""
    low = _ephemeral_low()
    for _ in range(1000):
        port = random.randrange(10000, low) if low > 11000 else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise ServerError("no free TCP port below the ephemeral range")


def wait_for(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it returns a true value, which is returned.

    Raises TimeoutError naming what was awaited.  An exception raised by
    the predicate ends the wait at once (use it for "the process died").
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def tcp_open(port, host="127.0.0.1"):
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _set_pdeathsig(sig):
    """Returns a preexec_fn that makes the child get sig when we die."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1

    def preexec():
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec


def _tail(path, lines=30):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ServerError(RuntimeError):
    pass


class Process:
    """One child process in its own process group, output in a log file."""

    # The signal that stops the program cleanly, and the one sent to it
    # should the test runner die first.
    stop_signal = signal.SIGTERM
    death_signal = signal.SIGTERM
    name = "process"

    def __init__(self, log_path):
        self.log_path = Path(log_path)
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def spawn(self, argv, env=None, cwd=None, user=None):
        argv = [str(a) for a in argv]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        log.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        kwargs = {}
        if user is not None:
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_set_pdeathsig(self.death_signal),
                **kwargs,
            )
        finally:
            log.close()
        _live.add(self)
        return self.proc

    def log_text(self):
        """Everything the program wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=30):
        return _tail(self.log_path, lines)

    def check_alive(self):
        """Raises ServerError, with the end of the log, if the process exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerError(
                f"{self.name} exited with status {self.proc.returncode}; "
                f"last lines of {self.log_path}:\n{self.log_tail()}"
            )

    def signal(self, sig):
        if self.running:
            self.proc.send_signal(sig)

    def terminate(self, sig=None, timeout=15):
        """Stops the process (then its group) and returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig or self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
        self._kill_group()
        _live.discard(self)
        return self.proc.returncode

    def _kill_group(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


def _stop_all():
    for p in list(_live):
        try:
            p.terminate(timeout=5)
        except Exception:
            pass


atexit.register(_stop_all)


def _pg_bindir():
    """Where initdb, postgres and pg_isready are: PG_BINDIR, else the newest."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])

    def version(d):
        m = re.search(r"/postgresql/(\d+)/bin$", d)
        return int(m.group(1)) if m else 0

    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for d in dirs:
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return Path(d)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    try:
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        )
        return Path(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        raise ServerError("PostgreSQL server binaries not found (set PG_BINDIR)")


def _others_can_enter(path, uid):
    """True when user uid may traverse every directory down to path."""
    p = Path(path).resolve()
    for d in [p, *p.parents]:
        try:
            st = d.stat()
        except FileNotFoundError:
            continue
        if st.st_uid == uid:
            if not st.st_mode & stat.S_IXUSR:
                return False
        elif not st.st_mode & stat.S_IXOTH:
            return False
    return True


class Postgres(Process):
    """A private PostgreSQL cluster, superuser postgres, trust auth.

    initdb refuses to run as root, so as root the cluster belongs to the
    user "nobody" (PG_USER overrides) and its data directory is placed
    where that user can reach it: inside basedir when possible, else in a
    fresh temporary directory, with a symlink basedir/data pointing to it.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown
    death_signal = signal.SIGQUIT  # immediate shutdown

    def __init__(self, basedir, port=None, fast=True, settings=()):
        """settings: extra postgresql.conf lines (e.g. for contrib/bench)."""
        self.basedir = Path(basedir).resolve()
        self.basedir.mkdir(parents=True, exist_ok=True)
        super().__init__(self.basedir / "postgres.log")
        self.port = port or free_port()
        self.fast = fast
        self.settings = list(settings)
        self.bindir = _pg_bindir()
        self.user = None
        self._tmpdir = None
        if IS_ROOT:
            self.user = pwd.getpwnam(os.environ.get("PG_USER", "nobody"))
        self.datadir = self._place_datadir()
        self.sockdir = self.datadir
        if len(str(self.sockdir / f".s.PGSQL.{self.port}")) > 100:
            self.sockdir = self._make_owned_dir(tempfile.mkdtemp(prefix="vw-pgs-"))

    def _make_owned_dir(self, d):
        d = Path(d)
        d.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            os.chown(d, self.user.pw_uid, self.user.pw_gid)
        os.chmod(d, 0o700)
        return d

    def _place_datadir(self):
        link = self.basedir / "data"
        if link.is_symlink() and link.resolve().is_dir():
            return link.resolve()
        if self.user is None or _others_can_enter(self.basedir, self.user.pw_uid):
            return self._make_owned_dir(link)
        for tmp in (None, "/tmp"):
            d = Path(tempfile.mkdtemp(prefix="vialwatch-pg-", dir=tmp))
            if _others_can_enter(d.parent, self.user.pw_uid):
                break
            shutil.rmtree(d)
        os.chmod(d, 0o755)
        self._tmpdir = d
        data = self._make_owned_dir(d / "data")
        if not link.exists():
            link.symlink_to(data)
        return data

    def _env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env["TZ"] = "UTC"
        return env

    def _run(self, argv, check=True):
        user = self.user
        kwargs = {}
        if user is not None:
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        return subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            env=self._env(),
            cwd=str(self.datadir),
            check=check,
            **kwargs,
        )

    @property
    def initialized(self):
        return (self.datadir / "PG_VERSION").exists()

    def initdb(self):
        argv = [self.bindir / "initdb", "-D", self.datadir, "-U", "postgres",
                "-A", "trust", "-E", "UTF8", "--no-locale"]
        if self.fast:
            argv.append("--no-sync")
        r = self._run(argv, check=False)
        if r.returncode != 0:
            raise ServerError(f"initdb failed:\n{r.stdout}{r.stderr}")
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\n# for vialwatch tests\n")
            f.write("listen_addresses = '127.0.0.1'\n")
            f.write(f"port = {self.port}\n")
            f.write(f"unix_socket_directories = '{self.sockdir}'\n")
            f.write("max_connections = 100\n")
            f.write("timezone = 'UTC'\n")
            f.write("log_timezone = 'UTC'\n")
            if self.fast:
                f.write("fsync = off\nsynchronous_commit = off\n")
                f.write("full_page_writes = off\n")
            for line in self.settings:
                f.write(f"{line}\n")

    def start(self, timeout=30):
        """Starts the cluster (initdb first if needed) and waits for it."""
        if self.running:
            return self
        if not self.initialized:
            self.initdb()
        user = self.user
        self.spawn(
            # Port and sockets on the command line win over a data
            # directory initialised by an earlier run.
            [self.bindir / "postgres", "-D", self.datadir, "-p", self.port,
             "-k", self.sockdir, "-c", "listen_addresses=127.0.0.1"],
            env=self._env(),
            cwd=str(self.datadir),
            user=user,
        )
        wait_for(self._ready, timeout, f"PostgreSQL on port {self.port}")
        return self

    def _ready(self):
        self.check_alive()
        r = subprocess.run(
            [
                str(self.bindir / "pg_isready"),
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ],
            env=self._env(),
        )
        return r.returncode == 0

    def stop(self, timeout=30):
        """Fast shutdown; the data stays for a later start() on the same port."""
        return self.terminate(timeout=timeout)

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        """Stops the cluster and removes a temporary data directory."""
        self.stop()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            link = self.basedir / "data"
            if link.is_symlink():
                link.unlink()
            self._tmpdir = None

    def conninfo(self, dbname="postgres", user="postgres"):
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"

    def connect(self, dbname="postgres", user="postgres", autocommit=True):
        import psycopg

        return psycopg.connect(self.conninfo(dbname, user), autocommit=autocommit)

    def sql(self, query, params=None, dbname="postgres"):
        """Runs one statement; returns its rows, or None when it has none."""
        with self.connect(dbname) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    def createdb(self, name, template=None):
        from psycopg import sql

        q = sql.SQL("create database {}").format(sql.Identifier(name))
        if template:
            q += sql.SQL(" template {}").format(sql.Identifier(template))
        self.sql(q)
        return self.conninfo(name)

    def dropdb(self, name):
        from psycopg import sql

        self.sql(
            sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(name)
            )
        )


class Mosquitto(Process):
    """A private Mosquitto broker, anonymous, on 127.0.0.1."""

    name = "mosquitto"

    def __init__(self, basedir, persistence=True, port=None, binary=None,
                 listener_lines=(), extra_lines=(), anonymous=True):
        """listener_lines follow the main listener (e.g. TLS files);
        extra_lines go at the end (e.g. another listener)."""
        self.listener_lines = list(listener_lines)
        self.extra_lines = list(extra_lines)
        self.anonymous = anonymous
        self.basedir = Path(basedir).resolve()
        self.basedir.mkdir(parents=True, exist_ok=True)
        super().__init__(self.basedir / "mosquitto.log")
        self.port = port or free_port()
        self.persistence = persistence
        self.binary = binary or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.conf_path = self.basedir / "mosquitto.conf"

    def write_config(self):
        lines = [
            f"listener {self.port} 127.0.0.1",
            *self.listener_lines,
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            "log_dest stderr",
            "log_timestamp_format %H:%M:%S",
            "connection_messages true",
            # A daemon away for a while must find all its messages queued.
            "max_queued_messages 1000000",
            "max_inflight_messages 100",
        ]
        if IS_ROOT:
            # Otherwise it drops to user "mosquitto", who cannot write here.
            lines.append("user root")
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.basedir}/",
                "persistence_file mosquitto.db",
            ]
        else:
            lines.append("persistence false")
        lines += self.extra_lines
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout=15):
        if self.running:
            return self
        self.write_config()
        self.spawn([self.binary, "-c", self.conf_path], cwd=str(self.basedir))
        wait_for(self._ready, timeout, f"Mosquitto on port {self.port}")
        return self

    def _ready(self):
        self.check_alive()
        return tcp_open(self.port)

    def stop(self, timeout=15):
        """Stops the broker; with persistence its sessions survive a start()."""
        if self.proc is None:
            return None
        status = self.terminate(timeout=timeout)
        wait_for(lambda: not tcp_open(self.port), timeout, f"port {self.port} closed")
        return status

    def restart(self):
        self.stop()
        return self.start()

    def publish(self, topic, payload, qos=1, retain=False, timeout=10):
        """Publishes one message and waits until the broker has it."""
        return publish(self.port, [(topic, payload)], qos=qos, retain=retain,
                       timeout=timeout)


def publish(port, messages, qos=1, retain=False, timeout=10, host="127.0.0.1",
            auth=None):
    """Publishes (topic, payload) pairs with paho-mqtt, waiting for each ack.
    auth is (username, password) for a broker that wants them."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(client_id="", clean_session=True)
    if auth:
        client.username_pw_set(*auth)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        for topic, payload in messages:
            if isinstance(payload, (dict, list)):
                payload = json.dumps(payload)
            info = client.publish(topic, payload, qos=qos, retain=retain)
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise ServerError(f"publish to {topic} not acknowledged")
    finally:
        client.disconnect()
        client.loop_stop()


class SmtpCatcher(Process):
    """An SMTP server that keeps every message as an .eml file.

    smtp_catcher.py writes NNNNNN.eml plus NNNNNN.json (envelope) into
    maildir.  refuse() makes it answer every RCPT and DATA with an error
    until accept() is called.
    """

    name = "smtp catcher"

    def __init__(self, basedir, port=None, auth=None):
        self.basedir = Path(basedir).resolve()
        self.basedir.mkdir(parents=True, exist_ok=True)
        super().__init__(self.basedir / "smtp.log")
        self.port = port or free_port()
        self.maildir = self.basedir / "mail"
        self.refuse_file = self.basedir / "refuse"
        self.auth = auth

    def start(self, timeout=15):
        if self.running:
            return self
        self.maildir.mkdir(parents=True, exist_ok=True)
        argv = [
            PYTHON3,
            HERE / "smtp_catcher.py",
            "--port",
            self.port,
            "--maildir",
            self.maildir,
            "--refuse-file",
            self.refuse_file,
        ]
        if self.auth:
            argv += ["--auth", f"{self.auth[0]}:{self.auth[1]}"]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        self.spawn(argv, env=env, cwd=str(self.basedir))
        wait_for(self._ready, timeout, f"SMTP catcher on port {self.port}")
        return self

    def _ready(self):
        self.check_alive()
        return tcp_open(self.port)

    def stop(self, timeout=15):
        return self.terminate(timeout=timeout)

    def refuse(self, reply="550 5.7.1 Mailbox unavailable"):
        """Answers RCPT and DATA with reply (e.g. "451 4.3.0 Try later")."""
        tmp = self.refuse_file.with_suffix(".tmp")
        tmp.write_text(reply + "\n")
        tmp.rename(self.refuse_file)

    def accept(self):
        self.refuse_file.unlink(missing_ok=True)

    def clear(self):
        for f in self.maildir.glob("*"):
            f.unlink()

    def messages(self):
        """The received messages, oldest first, as email.message objects.

        Each carries .envelope_from, .envelope_to (list) and .login.
        """
        out = []
        for eml in sorted(self.maildir.glob("*.eml")):
            with open(eml, "rb") as f:
                msg = email.message_from_binary_file(f, policy=email.policy.default)
            meta = json.loads(eml.with_suffix(".json").read_text())
            msg.envelope_from = meta["mail_from"]
            msg.envelope_to = meta["rcpt_tos"]
            msg.login = meta.get("login")
            msg.path = eml
            out.append(msg)
        return out

    def wait_messages(self, count, timeout=15):
        """Waits until at least count messages arrived; returns all of them."""
        def enough():
            self.check_alive()
            msgs = self.messages()
            return msgs if len(msgs) >= count else None

        return wait_for(enough, timeout, f"{count} email(s) at the SMTP catcher")


def render_config(sections):
    """INI text from {"section": {"key": value}}; None values are left out."""
    out = []
    for name, keys in sections.items():
        if keys is None:
            continue
        out.append(f"[{name}]")
        for key, value in keys.items():
            if value is None:
                continue
            out.append(f"{key} = {value}")
        out.append("")
    return "\n".join(out)


def http_get(port, path, timeout=5, method="GET", body=None, headers=None):
    """Returns (status, headers as a lowercase-keyed dict, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


def parse_metrics(text):
    """Prometheus text to {'name' or 'name{labels}': float}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def metric_total(samples, name):
    """The sum of every sample of metric name, whatever its labels."""
    return sum(v for k, v in samples.items() if k.split("{")[0] == name)


class Daemon(Process):
    """vialwatchd with a generated config; stderr goes to a log file."""

    name = "vialwatchd"

    def __init__(self, basedir, config, binary=None, env=None, args=()):
        self.basedir = Path(basedir).resolve()
        self.basedir.mkdir(parents=True, exist_ok=True)
        super().__init__(self.basedir / "vialwatchd.log")
        self.binary = binary or os.environ.get("VIALWATCHD") or "vialwatchd"
        self.conf_path = self.basedir / "vialwatch.conf"
        self.config = config
        self.extra_env = env or {}
        self.args = list(args)
        self.http_port = self._http_port(config)
        self.returncode = None

    @staticmethod
    def _http_port(config):
        if isinstance(config, dict):
            listen = (config.get("http") or {}).get("listen", "")
        else:
            m = re.search(r"^\s*listen\s*=\s*(\S+)", config, re.M)
            listen = m.group(1) if m else ""
        m = re.search(r":(\d+)$", str(listen))
        return int(m.group(1)) if m else None

    def write_config(self, config=None):
        if config is not None:
            self.config = config
            self.http_port = self._http_port(config) or self.http_port
        text = (
            self.config if isinstance(self.config, str) else render_config(self.config)
        )
        tmp = self.conf_path.with_suffix(".tmp")
        tmp.write_text(text)
        # As installed: vialwatchd warns of a config others may read.
        tmp.chmod(0o600)
        tmp.rename(self.conf_path)

    def env(self):
        env = dict(os.environ)
        # Whatever supervises the test run is not this daemon's supervisor.
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                  "LISTEN_PID", "LISTEN_FDNAMES", "JOURNAL_STREAM",
                  "INVOCATION_ID"):
            env.pop(k, None)
        env.update({k: str(v) for k, v in self.extra_env.items()})
        return env

    def start(self):
        self.write_config()
        self.returncode = None
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.spawn(
            [self.binary, "-c", self.conf_path, *self.args],
            env=self.env(),
            cwd=str(self.basedir),
        )
        return self

    def request(self, path, method="GET", body=None, headers=None, timeout=5):
        return http_get(self.http_port, path, timeout=timeout, method=method,
                        body=body, headers=headers)

    def healthz(self):
        """(HTTP status, parsed JSON body) of GET /healthz."""
        status, _, body = self.request("/healthz")
        return status, json.loads(body)

    def health_now(self):
        """(status, JSON) of /healthz, or None when it does not answer.

        Raises ServerError when the daemon has exited.
        """
        self.check_alive()
        try:
            return self.healthz()
        except (OSError, http.client.HTTPException, ValueError):
            return None

    def _answers(self, want=None):
        answer = self.health_now()
        if answer and (want is None or answer[0] == want):
            return answer
        return None

    def wait_http(self, timeout=15):
        """Waits until /healthz answers at all; returns (status, json)."""
        return wait_for(lambda: self._answers(), timeout,
                        f"vialwatchd HTTP on port {self.http_port}")

    def wait_health(self, status, timeout=15):
        """Waits until /healthz answers with status; returns its JSON."""
        return wait_for(lambda: self._answers(status), timeout,
                        f"/healthz {status} on port {self.http_port}")[1]

    def wait_healthy(self, timeout=15):
        """Waits until /healthz says 200 (MQTT and DB connected)."""
        try:
            return self.wait_health(200, timeout)
        except TimeoutError as e:
            last = self.health_now()
            raise TimeoutError(f"{e}; last answer: {last}") from None

    def metrics(self):
        status, headers, body = self.request("/metrics")
        if status != 200:
            raise ServerError(f"/metrics answered {status}")
        return parse_metrics(body.decode())

    def metric(self, name, default=None):
        return self.metrics().get(name, default)

    def reload(self, config=None):
        """Writes config (when given) and sends SIGHUP."""
        if config is not None:
            self.write_config(config)
        self.signal(signal.SIGHUP)

    def log_since_start(self):
        return self.log_text()[getattr(self, "log_offset", 0):]

    def wait_log(self, pattern, timeout=10, after=0):
        """Waits for a log line matching pattern (regex) after offset after."""
        rx = re.compile(pattern)

        def found():
            text = self.log_text()
            m = rx.search(text, after)
            if m:
                return m
            self.check_alive()
            return None

        return wait_for(found, timeout, f"log line /{pattern}/ in {self.log_path}")

    def log_size(self):
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def wait_exit(self, timeout=10):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"vialwatchd did not exit within {timeout}s") from None
        _live.discard(self)
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig (SIGTERM) and returns the exit status.

        Raises TimeoutError (after killing it) when it does not exit in time.
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                _live.discard(self)
                raise TimeoutError(
                    f"vialwatchd ignored signal {sig} for {timeout}s; killed"
                ) from None
        self._kill_group()
        _live.discard(self)
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        """SIGKILL, as a crash would; returns the exit status."""
        return self.terminate(sig=signal.SIGKILL, timeout=10)


def run_ctl(args, config_path, env=None, binary=None, timeout=60):
    """Runs vialwatchctl -c config_path args...; returns CompletedProcess."""
    binary = binary or os.environ.get("VIALWATCHCTL") or "vialwatchctl"
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [binary, "-c", str(config_path), *[str(a) for a in args]],
        capture_output=True,
        text=True,
        env=e,
        timeout=timeout,
    )


if __name__ == "__main__":
    print(__doc__, file=sys.stderr)
    sys.exit(2)
