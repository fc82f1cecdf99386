"""Retention of vialwatch.reading (sql/008_retention.sql,
sql/010_staying_loud.sql): month partitions made ahead by the daemon and by
vialwatchctl partitions --apply; those wholly older than [database]
retention are first noted as expiring (and logged), and detached and
dropped only by --apply, an admin's command, a day after.  The month
straddling the boundary is kept, the rows of kept months are intact and
reading_default is never dropped.  A retention under 3 years needs
retention_below_cdc_minimum = yes.

Each test works on a database of its own, migrated by vialwatchctl, so that
the shared "vialwatch" database keeps its partitions.
"""

import datetime
import itertools
import os
import re
import subprocess

import psycopg
import pytest
from psycopg import sql

from conftest import SRCDIR, migrate
from servers import render_config, run_ctl, wait_for

UTC = datetime.timezone.utc
RETENTION = datetime.timedelta(days=400)
_dbs = itertools.count(1)


def month_start(d, delta=0):
    """The first instant (UTC) of the month delta months after d's."""
    n = d.year * 12 + d.month - 1 + delta
    return datetime.datetime(n // 12, n % 12 + 1, 1, tzinfo=UTC)


def part_name(t):
    return f"reading_y{t.year:04}m{t.month:02}"


def partitions(conn):
    return {r[0] for r in conn.execute(
        "select c.relname from pg_inherits i join pg_class c "
        "on c.oid = i.inhrelid "
        "where i.inhparent = 'vialwatch.reading'::regclass")}


@pytest.fixture
def retention_db(pg, tmp_path):
    """A migrated database with partitions back to 20 months ago, one
    reading mid-month in each month from 20 months ago to 3 ahead, one
    reading 30 months ago (in reading_default: that month has no
    partition) and no partition 3 months ahead (its reading is in
    reading_default until there is one).  Returns (name, facts)."""
    name = f"retention_{next(_dbs)}"
    pg.createdb(name)
    r = migrate(pg, name, tmp_path / "migrate")
    assert r.returncode == 0, r.stdout + r.stderr
    now = datetime.datetime.now(UTC)
    with pg.connect(name) as conn:
        for m in range(-20, -12):
            conn.execute("select vialwatch.reading_partition_create(%s)",
                         [month_start(now, m).date()])
        ahead = part_name(month_start(now, 3))
        conn.execute(sql.SQL("drop table vialwatch.{}").format(
            sql.Identifier(ahead)))
        sensor = conn.execute("insert into vialwatch.sensor (key) "
                              "values ('zigbee2mqtt/fridge') returning id"
                              ).fetchone()[0]
        stamps = [month_start(now, m) + datetime.timedelta(days=14)
                  for m in range(-20, 4)]
        old = month_start(now, -30) + datetime.timedelta(days=3)
        for ts in stamps + [old]:
            conn.execute("insert into vialwatch.reading (sensor_id, ts, "
                         "temp_c) values (%s, %s, 4.5)", [sensor, ts])
        conn.execute("analyze vialwatch.reading")
        # That of 30 months ago, and that of the month that has no
        # partition yet: creating it moves the row out.
        assert conn.execute("select count(*) from vialwatch.reading_default"
                            ).fetchone()[0] == 2
        before = partitions(conn)
    boundary = now - RETENTION
    months = [month_start(now, m) for m in range(-20, 4)]
    expired = {part_name(m) for m in months if month_start(m, 1) <= boundary}
    straddling = part_name(month_start(boundary))
    assert len(expired) >= 6 and straddling not in expired
    assert ahead not in before and straddling in before
    yield name, {"before": before, "expired": expired, "ahead": ahead,
                 "straddling": straddling, "stamps": stamps, "old": old,
                 "sensor": sensor}
    pg.dropdb(name)


def check_after(pg, name, facts):
    """The partitions and rows once the maintenance ran with 400 days."""
    with pg.connect(name) as conn:
        after = partitions(conn)
        assert after == (facts["before"] - facts["expired"]) | {facts["ahead"]}
        assert "reading_default" in after and facts["straddling"] in after
        kept = {r[0] for r in conn.execute(
            "select ts from vialwatch.reading where ts >= %s",
            [month_start(datetime.datetime.now(UTC) - RETENTION)])}
        assert kept == {ts for ts in facts["stamps"]
                        if part_name(ts) not in facts["expired"]}
        assert len(kept) >= 17
        # The row in reading_default, older than the retention, is there.
        assert conn.execute("select ts from vialwatch.reading_default"
                            ).fetchall() == [(facts["old"],)]
        # Nothing else of the expired months is left anywhere.
        assert conn.execute(
            "select count(*) from vialwatch.reading where ts < %s",
            [month_start(datetime.datetime.now(UTC) - RETENTION)]
        ).fetchone()[0] == 1


def ctl_conf(pg, name, path, retention="400d", below="yes"):
    path.write_text(render_config({
        "daemon": {"state_dir": path.parent},
        "database": {"conninfo": pg.conninfo(name), "retention": retention,
                     "retention_below_cdc_minimum": below},
        "reminders": {"template_dir": SRCDIR / "conf" / "templates"},
    }))
    return path


def test_ctl_partitions_list_and_apply(pg, retention_db, tmp_path):
    name, facts = retention_db
    conf = ctl_conf(pg, name, tmp_path / "ctl.conf")

    r = run_ctl(["partitions"], conf)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["PARTITION", "MONTH", "ROWS_ESTIMATE",
                                "KEPT_UNTIL"]
    listed = {ln.split()[0]: ln.split() for ln in lines[1:-1]}
    assert set(listed) == facts["before"]
    first = sorted(facts["expired"])[0]
    month = f"{first[9:13]}-{first[14:16]}"
    kept_until = (month_start(datetime.datetime.fromisoformat(
        month + "-01T00:00:00+00:00"), 1) + RETENTION)
    assert listed[first][1:] == [month, "1",
                                 kept_until.strftime("%Y-%m-%d"), "00:00",
                                 "UTC"]
    assert listed["reading_default"][1:4] == ["other", "2", "always"]
    assert re.fullmatch(rf"{len(facts['before'])} partitions; \[database\] "
                        r"retention 400 days, below the CDC's minimum of 3 "
                        r"years", lines[-1]), lines[-1]
    # Listing changes nothing.
    with pg.connect(name) as conn:
        assert partitions(conn) == facts["before"]

    # The first --apply makes the month ahead and notes the expired ones:
    # nothing is dropped before a day has passed.
    r = run_ctl(["partitions", "--apply"], conf)
    assert r.returncode == 0, r.stderr
    done = re.findall(r"^(created|expiring) partition (reading_y\d{4}m\d\d) "
                      r"\(\d{4}-\d\d\)", r.stdout, re.M)
    assert sorted(done) == sorted(
        [("created", facts["ahead"])] +
        [("expiring", p) for p in facts["expired"]]), r.stdout
    assert re.search(r"dropped by --apply from \d{4}-\d\d-\d\d \d\d:\d\d UTC",
                     r.stdout), r.stdout
    with pg.connect(name) as conn:
        assert partitions(conn) == facts["before"] | {facts["ahead"]}
    # A day later (the notes made older), --apply drops them.
    pass_a_day(pg, name)
    r = run_ctl(["partitions", "--apply"], conf)
    assert r.returncode == 0, r.stderr
    done = re.findall(r"^(dropped) partition (reading_y\d{4}m\d\d) "
                      r"\(\d{4}-\d\d\)$", r.stdout, re.M)
    assert sorted(done) == sorted(
        [("dropped", p) for p in facts["expired"]]), r.stdout
    check_after(pg, name, facts)

    # A second run has nothing to do.
    r = run_ctl(["partitions", "--apply"], conf)
    assert r.returncode == 0, r.stderr
    assert "partitions up to date" in r.stdout
    check_after(pg, name, facts)


def pass_a_day(pg, name):
    """What waits a day is made to have waited it."""
    with pg.connect(name) as conn:
        conn.execute("update vialwatch.reading_partition_expiry "
                     "set noticed_at = noticed_at - interval '1 day 1 minute'")


def test_ctl_partitions_refuses_bad_retention(pg, retention_db, tmp_path):
    name, facts = retention_db
    conf = ctl_conf(pg, name, tmp_path / "ctl.conf", retention="12h")
    r = run_ctl(["partitions", "--apply"], conf)
    assert r.returncode == 1
    assert re.search(r"retention: duration \"12h\" out of range", r.stderr), \
        r.stderr
    with pg.connect(name) as conn:
        assert partitions(conn) == facts["before"]


def daemon_role(pg):
    pg.sql("do $$ begin if not exists (select from pg_roles where "
           "rolname = 'vw_retention_test') then create role "
           "vw_retention_test login in role vialwatch_daemon; end if; "
           "end $$")
    return "vw_retention_test"


def test_daemon_maintains_partitions(pg, daemon, retention_db, tmp_path):
    """The daemon, logged in as a member of vialwatch_daemon (no DDL),
    makes the partitions ahead at start and logs those past the
    retention, but never drops one, even a day later: an admin's
    vialwatchctl partitions --apply does."""
    name, facts = retention_db
    role = daemon_role(pg)
    d = daemon(database={"conninfo": pg.conninfo(name, role),
                         "retention": "400d",
                         "retention_below_cdc_minimum": "yes"})
    for p in facts["expired"]:
        d.wait_log(rf"retention: partition {p} \(\d{{4}}-\d\d\) is past "
                   r"\[database\] retention; vialwatchctl partitions --apply "
                   r"drops it from \d{4}-\d\d-\d\d \d\d:\d\d UTC")
    with pg.connect(name) as conn:
        assert facts["before"] <= partitions(conn)
    # A day later, a reload (the same retention) still drops nothing.
    pass_a_day(pg, name)
    off = len(d.log_text())
    d.config["database"]["retention"] = "401d"
    d.reload(d.config)
    d.wait_log(r"configuration reloaded", after=off)
    for p in facts["expired"]:
        d.wait_log(rf"retention: partition {p} .* is past", after=off)
    assert "dropped partition" not in d.log_text()
    with pg.connect(name) as conn:
        assert facts["before"] <= partitions(conn)
    r = run_ctl(["partitions", "--apply"],
                ctl_conf(pg, name, tmp_path / "ctl.conf"))
    assert r.returncode == 0, r.stderr
    assert sorted(re.findall(r"^dropped partition (\S+)", r.stdout, re.M)) \
        == sorted(facts["expired"]), r.stdout
    # The month ahead: made by this or by db.c, which makes the next three
    # months' partitions when it connects.
    def made():
        with pg.connect(name) as conn:
            return facts["ahead"] in partitions(conn)
    wait_for(made, 10, "the partition ahead")
    assert re.search(r"retention: \[database\] retention is 400 days, below "
                     r"the CDC's minimum of 3 years", d.log_text())
    check_after(pg, name, facts)

    # The role the daemon logs in as may not do it by hand, nor through
    # the maintenance, nor change a reading.
    with psycopg.connect(pg.conninfo(name, role), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("drop table vialwatch.{}").format(
                sql.Identifier(facts["straddling"])))
        for q in ["select vialwatch.reading_partitions_maintain("
                  "interval '1 day', 0)",
                  "select vialwatch.reading_partitions_maintain("
                  "interval '1 day', 0, true)",
                  "update vialwatch.reading set temp_c = 99"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(q)


def test_short_retention_must_be_asked_twice(pg, daemon, tmp_path):
    """[database] retention under 3 years is refused by vialwatchd -t and
    by vialwatchctl unless retention_below_cdc_minimum = yes."""
    conf = ctl_conf(pg, "vialwatch", tmp_path / "short.conf", below="no")
    text = conf.read_text()
    line = text.splitlines().index("[database]") + 1
    for args in (["partitions"], ["status"]):
        r = run_ctl(args, conf)
        assert r.returncode == 1
        assert re.search(rf"short\.conf:{line}: \[database\] retention of "
                         r"400 days is below the CDC's minimum of 3 years "
                         r"for temperature logs: set "
                         r"retention_below_cdc_minimum = yes", r.stderr), \
            r.stderr
    r = subprocess.run([os.environ["VIALWATCHD"], "-t", "-c", str(conf)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "retention_below_cdc_minimum" in r.stderr
    conf = ctl_conf(pg, "vialwatch", tmp_path / "ok.conf", retention="1096d",
                    below="no")
    r = subprocess.run([os.environ["VIALWATCHD"], "-t", "-c", str(conf)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    conf = ctl_conf(pg, "vialwatch", tmp_path / "bad.conf", retention="1096d",
                    below="maybe")
    r = run_ctl(["partitions"], conf)
    assert r.returncode == 1 and "must be yes or no" in r.stderr


def test_reload_to_short_retention_is_refused(pg, daemon, retention_db):
    """A reload whose retention is a typo is refused: nothing is noted,
    the running retention stays."""
    name, facts = retention_db
    d = daemon(database={"conninfo": pg.conninfo(name)})
    d.wait_log(r"retention: (created partition|reading partitions up to date)")
    d.config["database"]["retention"] = "40d"
    d.config["database"]["retention_below_cdc_minimum"] = "no"
    d.reload(d.config)
    d.wait_log(r"reload refused, keeping the running configuration: .*"
               r"retention of 40 days is below the CDC's minimum")
    with pg.connect(name) as conn:
        assert conn.execute("select count(*) from "
                            "vialwatch.reading_partition_expiry"
                            ).fetchone()[0] == 0
        assert facts["before"] <= partitions(conn)


def test_default_retention_keeps_three_years(pg, daemon, retention_db):
    """With the default retention nothing of the last 20 months goes."""
    name, facts = retention_db
    d = daemon(database={"conninfo": pg.conninfo(name)})
    d.wait_log(rf"retention: (created partition {facts['ahead']} "
               r"|reading partitions up to date)")
    assert "dropped partition" not in d.log_text()
    assert "below the CDC's minimum" not in d.log_text()
    with pg.connect(name) as conn:
        assert partitions(conn) == facts["before"] | {facts["ahead"]}
        assert conn.execute("select count(*) from vialwatch.reading"
                            ).fetchone()[0] == len(facts["stamps"]) + 1
