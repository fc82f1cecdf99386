"""vialwatchctl migrate: creates the schema, is idempotent, and a failing
migration leaves the database as it was.  Each test uses a database of its
own, so the shared "vialwatch" database is not disturbed."""

import itertools
import re
import shutil

import psycopg
import pytest

from conftest import SQLDIR, SRCDIR, migrate
from servers import free_port, run_ctl

_dbs = itertools.count(1)
MIGRATIONS = sorted(SQLDIR.glob("[0-9]*.sql"))


@pytest.fixture
def fresh_db(pg):
    """Returns the name of a new, empty database; dropped afterwards."""
    name = f"migrate_{next(_dbs)}"
    pg.createdb(name)
    yield name
    pg.dropdb(name)


def connect(pg, dbname):
    return psycopg.connect(pg.conninfo(dbname), autocommit=True)


def applied(pg, dbname):
    """The rows of vialwatch.schema_migration, in order."""
    with connect(pg, dbname) as conn:
        return conn.execute("select * from vialwatch.schema_migration "
                            "order by 1").fetchall()


def relations(pg, dbname):
    """Every relation of schema vialwatch with its kind."""
    with connect(pg, dbname) as conn:
        return conn.execute(
            "select c.relname, c.relkind from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'vialwatch' order by 1").fetchall()


def test_fresh_database(pg, fresh_db, tmp_path):
    # The session's "vialwatch" database was migrated first: the roles,
    # which are cluster-wide, exist already and must not stop this one.
    r = migrate(pg, fresh_db, tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^applied 001_init\.sql$", r.stdout, re.M), r.stdout

    with connect(pg, fresh_db) as conn:
        kind = conn.execute("select relkind from pg_class "
                            "where oid = 'vialwatch.reading'::regclass").fetchone()
        assert kind == ("p",), "vialwatch.reading is not partitioned"
        for table in ("clinic", "fridge", "sensor", "rejected_message",
                      "excursion", "lot", "excursion_lot", "contact",
                      "notification", "patient", "treatment", "appointment",
                      "retreatment_rule", "reminder"):
            assert conn.execute("select to_regclass(%s)",
                                [f"vialwatch.{table}"]).fetchone()[0], table

        # The seeded re-treatment rule for botulinum toxin.
        assert conn.execute(
            "select count(*) from vialwatch.retreatment_rule "
            "where remind_after_days = '{90,104}'").fetchone()[0] >= 1

        # Uniqueness a user relies on: one row per sensor key, per reading
        # (sensor, ts) and per notification dedupe_key.
        conn.execute("insert into vialwatch.sensor (key) values ('zigbee2mqtt/a')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("insert into vialwatch.sensor (key) "
                         "values ('zigbee2mqtt/a')")
        sensor = conn.execute("select id from vialwatch.sensor").fetchone()[0]
        conn.execute("insert into vialwatch.reading (sensor_id, ts, temp_c) "
                     "values (%s, now(), 4.5)", [sensor])
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("insert into vialwatch.reading (sensor_id, ts, temp_c) "
                         "select sensor_id, ts, 4.6 from vialwatch.reading")
        conn.execute("insert into vialwatch.notification "
                     "(channel, recipient, dedupe_key) "
                     "values ('email', 'a@clinic.example', 'exc-1-tier-1')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("insert into vialwatch.notification "
                         "(channel, recipient, dedupe_key) "
                         "values ('email', 'b@clinic.example', 'exc-1-tier-1')")


@pytest.mark.parametrize("view", ["fridge_status", "daily_summary",
                                  "excursion_report"])
def test_admin_views(pg, view):
    with connect(pg, "vialwatch") as conn:
        assert conn.execute("select to_regclass(%s)", [f"vialwatch.{view}"]
                            ).fetchone()[0], f"no view vialwatch.{view}"
        # Admins query it with psql: it must run on an empty database too.
        conn.execute(f"select * from vialwatch.{view}").fetchall()


def test_roles(pg, fresh_db, tmp_path):
    assert migrate(pg, fresh_db, tmp_path).returncode == 0
    with connect(pg, fresh_db) as conn:
        roles = {r[0] for r in conn.execute(
            "select rolname from pg_roles where rolname like 'vialwatch%'")}
        assert {"vialwatch_daemon", "vialwatch_admin",
                "vialwatch_readonly"} <= roles

        def can(role, what, obj, priv):
            q = f"select has_{what}_privilege(%s, %s, %s)"
            return conn.execute(q, [role, obj, priv]).fetchone()[0]

        # The daemon writes readings but may not change the schema.
        assert can("vialwatch_daemon", "table", "vialwatch.reading", "INSERT")
        assert can("vialwatch_daemon", "table", "vialwatch.notification", "UPDATE")
        assert not can("vialwatch_daemon", "schema", "vialwatch", "CREATE")
        assert not can("vialwatch_daemon", "table", "vialwatch.clinic", "DELETE")
        # Read-only means read only.
        assert can("vialwatch_readonly", "table", "vialwatch.reading", "SELECT")
        assert not can("vialwatch_readonly", "table", "vialwatch.patient", "INSERT")
        assert can("vialwatch_admin", "table", "vialwatch.patient", "INSERT")


def test_second_run_changes_nothing(pg, fresh_db, tmp_path):
    assert migrate(pg, fresh_db, tmp_path).returncode == 0
    rows, rels = applied(pg, fresh_db), relations(pg, fresh_db)
    assert len(rows) == len(MIGRATIONS)

    r = migrate(pg, fresh_db, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "schema is up to date" in r.stdout
    assert "applied" not in r.stdout
    assert applied(pg, fresh_db) == rows
    assert relations(pg, fresh_db) == rels


def test_failed_migration_is_rolled_back(pg, fresh_db, tmp_path):
    assert migrate(pg, fresh_db, tmp_path).returncode == 0
    before = applied(pg, fresh_db)

    sqldir = tmp_path / "sql"
    sqldir.mkdir()
    for f in MIGRATIONS:
        shutil.copy(f, sqldir)
    broken = sqldir / "999_broken.sql"
    broken.write_text("create table vialwatch.half_done (id int);\n"
                      "select 1 / 0;\n")

    r = migrate(pg, fresh_db, tmp_path, sqldir=sqldir)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "999_broken.sql" in r.stderr
    assert "division by zero" in r.stderr
    assert "applied 999_broken.sql" not in r.stdout
    with connect(pg, fresh_db) as conn:
        assert conn.execute("select to_regclass('vialwatch.half_done')"
                            ).fetchone()[0] is None
    assert applied(pg, fresh_db) == before

    # Once fixed, only the new file is applied.
    broken.write_text("create table vialwatch.half_done (id int);\n")
    r = migrate(pg, fresh_db, tmp_path, sqldir=sqldir)
    assert r.returncode == 0, r.stderr
    assert re.findall(r"^applied .*$", r.stdout, re.M) == ["applied 999_broken.sql"]
    with connect(pg, fresh_db) as conn:
        assert conn.execute("select to_regclass('vialwatch.half_done')"
                            ).fetchone()[0] is not None
    assert len(applied(pg, fresh_db)) == len(MIGRATIONS) + 1


def test_unreachable_database(tmp_path):
    conf = tmp_path / "ctl.conf"
    conf.write_text("[database]\nconninfo = host=127.0.0.1 "
                    f"port={free_port()} dbname=vialwatch user=postgres "
                    "connect_timeout=5\n"
                    f"[reminders]\ntemplate_dir = {SRCDIR}/conf/templates\n")
    r = run_ctl(["migrate"], conf)
    assert r.returncode == 1
    assert r.stderr.strip(), "no reason given"
    assert "applied" not in r.stdout
