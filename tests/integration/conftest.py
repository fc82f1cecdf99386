"""Fixtures: one PostgreSQL, one Mosquitto and one SMTP catcher per session,
and vialwatchd daemons per test, all real and all on 127.0.0.1.

make check sets VIALWATCHD, VIALWATCHCTL, VIALWATCH_SQLDIR, VIALWATCH_SRCDIR
and PYTHON3; run by hand, the built programs are looked for in the current
directory.
"""

import copy
import itertools
import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from servers import Daemon, Mosquitto, Postgres, SmtpCatcher, free_port, run_ctl
from servers import render_config

SRCDIR = Path(os.environ.get("VIALWATCH_SRCDIR") or Path(__file__).parents[2])
SQLDIR = Path(os.environ.get("VIALWATCH_SQLDIR") or SRCDIR / "sql")
VIALWATCHD = os.environ.get("VIALWATCHD") or os.path.abspath("vialwatchd")
VIALWATCHCTL = os.environ.get("VIALWATCHCTL") or os.path.abspath("vialwatchctl")
os.environ.setdefault("VIALWATCH_SQLDIR", str(SQLDIR))
os.environ.setdefault("VIALWATCHD", VIALWATCHD)
os.environ.setdefault("VIALWATCHCTL", VIALWATCHCTL)

_serial = itertools.count(1)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: a long test, run only when VIALWATCH_SLOW_TESTS=1 "
        "(contrib/test --slow)")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("VIALWATCH_SLOW_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="slow: VIALWATCH_SLOW_TESTS=1 runs it "
                            "(contrib/test --slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    return [f"vialwatchd: {VIALWATCHD}", f"vialwatchctl: {VIALWATCHCTL}",
            f"sql: {SQLDIR}"]


@pytest.fixture(scope="session")
def basedir():
    """A directory for the session's servers, removed at the end."""
    d = Path(tempfile.mkdtemp(prefix="vialwatch-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def ctl_config(path, conninfo, state_dir):
    """Writes a config that vialwatchctl needs: where the database is."""
    path.write_text(render_config({
        "daemon": {"state_dir": state_dir},
        "database": {"conninfo": conninfo},
        "reminders": {"template_dir": SRCDIR / "conf" / "templates"},
    }))
    return path


def migrate(pg, dbname, workdir, sqldir=None):
    """Runs vialwatchctl migrate on dbname; returns the CompletedProcess."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = ctl_config(workdir / f"ctl-{dbname}.conf", pg.conninfo(dbname), workdir)
    env = {"VIALWATCH_SQLDIR": str(sqldir or SQLDIR)}
    return run_ctl(["migrate"], conf, env=env, binary=VIALWATCHCTL)


@pytest.fixture(scope="session")
def pg(basedir):
    """PostgreSQL with database vialwatch, migrated by vialwatchctl."""
    server = Postgres(basedir / "pg")
    try:
        server.start()
        server.createdb("vialwatch")
        r = migrate(server, "vialwatch", basedir / "ctl")
        assert r.returncode == 0, f"migrate failed:\n{r.stdout}{r.stderr}"
        # Tables filled by the migration itself (seed data) are kept
        # between tests; all others are emptied.
        with server.connect("vialwatch") as conn:
            tables = [row[0] for row in conn.execute(
                "select format('%I.%I', n.nspname, c.relname) "
                "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = 'vialwatch' and c.relkind in ('r', 'p') "
                "and not c.relispartition and c.relname <> 'schema_migration'")]
            server.data_tables = [
                t for t in tables
                if conn.execute(f"select not exists (select from {t})").fetchone()[0]
            ]
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def mqtt_broker(basedir):
    server = Mosquitto(basedir / "mqtt")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smtp_server(basedir):
    server = SmtpCatcher(basedir / "smtp")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def smtp(smtp_server):
    """The SMTP catcher, empty and accepting mail."""
    smtp_server.accept()
    smtp_server.clear()
    if not smtp_server.running:
        smtp_server.start()
    yield smtp_server
    smtp_server.accept()


@pytest.fixture
def db(pg):
    """An autocommit psycopg connection to database vialwatch."""
    with psycopg.connect(pg.conninfo("vialwatch"), autocommit=True) as conn:
        yield conn


@pytest.fixture
def clean_db(pg):
    """Empties the data tables, so that each test sees only its own rows."""
    if not pg.running:
        pg.start()
    if pg.data_tables:
        pg.sql(f"truncate {', '.join(pg.data_tables)} restart identity cascade",
               dbname="vialwatch")


@pytest.fixture
def base_config(pg, mqtt_broker, smtp_server, tmp_path):
    """Returns a function making a complete config for a new daemon."""

    def make(n=None):
        n = n or next(_serial)
        http_port = free_port()
        state_dir = tmp_path / f"state-{n}"
        state_dir.mkdir(exist_ok=True)
        return {
            "daemon": {"state_dir": state_dir, "log_level": "debug"},
            "mqtt": {
                "host": "127.0.0.1",
                "port": mqtt_broker.port,
                "client_id": f"test-{n}",
                "qos": 1,
            },
            "database": {"conninfo": pg.conninfo("vialwatch")},
            "source z2m": {"topic": "zigbee2mqtt/#", "format": "zigbee2mqtt"},
            "http": {
                "listen": f"127.0.0.1:{http_port}",
                "public_url": f"http://127.0.0.1:{http_port}",
            },
            "smtp": {"url": f"smtp://127.0.0.1:{smtp_server.port}", "tls": "none"},
            "reminders": {"template_dir": SRCDIR / "conf" / "templates"},
        }

    return make


def merge_config(config, overrides):
    """Overrides per section and key; None removes a key or a section."""
    config = copy.deepcopy(config)
    for section, keys in (overrides or {}).items():
        if keys is None:
            config.pop(section, None)
            continue
        config.setdefault(section, {})
        for key, value in keys.items():
            if value is None:
                config[section].pop(key, None)
            else:
                config[section][key] = value
    return config


@pytest.fixture
def daemon(base_config, clean_db, tmp_path, request):
    """Factory: make_daemon(overrides=None, wait=True, env=None, args=(),
    binary=None, **section_overrides) starts vialwatchd (or binary, a
    program that runs it) with the session's servers.

    Sections with a blank in their name ("source esp") go in overrides.
    With wait=True it returns once /healthz says 200.  Every daemon is
    stopped at teardown; its log is printed, shown when the test failed.
    """
    started = []

    def make_daemon(overrides=None, wait=True, env=None, args=(),
                    binary=None, **sections):
        n = next(_serial)
        config = merge_config(base_config(n), {**(overrides or {}), **sections})
        d = Daemon(tmp_path / f"daemon-{n}", config,
                   binary=binary or VIALWATCHD, env=env, args=args)
        started.append(d)
        d.start()
        if wait:
            d.wait_healthy()
        return d

    try:
        yield make_daemon
    finally:
        for d in started:
            try:
                d.stop(timeout=10)
            except TimeoutError as e:
                print(e)
            print(f"\n--- {d.log_path} ---\n{d.log_text()}")


@pytest.fixture
def spare_broker(tmp_path):
    """A Mosquitto with a reserved port that the test starts when it wants."""
    server = Mosquitto(tmp_path / "spare-mqtt")
    try:
        yield server
    finally:
        server.stop()
