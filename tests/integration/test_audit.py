"""The audit trail and the seals of the readings: changes of limits refused
without a reason and recorded with a person, the OS user, the role and the
reason; the trail append-only, hash chained (also under concurrent
writers) and its canonical encoding; the daemon sealing each sensor-day,
a late reading sealed again as generation 2, and "audit verify" finding a
reading changed behind the seal's back.
"""

import datetime
import json
import pwd
import os
import threading

import psycopg
import pytest

from test_excursions import (SOURCES, add_contacts, ctl, ctl_conf, insert,
                             message, now, rows, setup_fridge)
from servers import publish, wait_for

UTC = datetime.timezone.utc
OS_USER = pwd.getpwuid(os.getuid()).pw_name


def audit_rows(db, table=None):
    return rows(db, "select * from vialwatch.audit where %s::text is null "
                "or table_name = %s order by id", (table, table))


# --- who and why ------------------------------------------------------------


def test_limit_change_needs_a_reason(db, clean_db, ctl_conf):
    f = setup_fridge(db)
    before = len(audit_rows(db))

    # Without a reason: refused, nothing changed, nothing recorded.
    r = ctl(ctl_conf, "fridge", "set", f["fridge"], "high_c=7.5",
            "--by", "dana@lakeview.example")
    assert r.returncode == 1
    assert "a reason is required to change high_c of fridge" in r.stderr
    assert db.execute("select high_c from vialwatch.fridge where id = %s",
                      [f["fridge"]]).fetchone()[0] == 8
    assert len(audit_rows(db)) == before

    # Nobody known by that name: refused too.
    r = ctl(ctl_conf, "fridge", "set", f["fridge"], "high_c=7.5",
            "--by", "Dana Lee", "--reason", "x")
    assert r.returncode == 1 and 'nobody known as "Dana Lee"' in r.stderr

    # With one: done, and the trail says who, as whom, and why.
    r = ctl(ctl_conf, "fridge", "set", f["fridge"], "high_c=7.5",
            "high_delay=20 minutes", "--by", "dana@lakeview.example",
            "--reason", "Varivax needs a tighter range")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f"fridge {f['fridge']} (Lakeview Aesthetics / Botox "
                        "fridge): high_c 8 -> 7.5, high_delay 00:30:00 -> "
                        "00:20:00\n")
    (a,) = audit_rows(db)[before:]
    assert a["table_name"] == "fridge" and a["action"] == "update"
    assert a["row_id"] == str(f["fridge"])
    assert a["actor_contact_id"] == f["contacts"]["dana"]
    assert a["actor_os_user"] == OS_USER
    assert a["actor_role"] == "postgres"
    assert a["reason"] == "Varivax needs a tighter range"
    assert (a["old"]["high_c"], a["new"]["high_c"]) == (8, 7.5)
    assert (a["old"]["high_delay"], a["new"]["high_delay"]) == (
        "00:30:00", "00:20:00")

    # In words, and as JSON.
    r = ctl(ctl_conf, "audit", "--fridge", f["fridge"], "--table", "fridge")
    assert r.returncode == 0, r.stderr
    last = r.stdout.splitlines()[-2:]
    assert "Dana Lee <dana@lakeview.example> (role postgres, OS user " \
           f"{OS_USER}) changed fridge {f['fridge']}: high_c: 8 -> 7.5; " \
           "high_delay: 00:30:00 -> 00:20:00" in last[0], r.stdout
    assert last[1] == "    why: Varivax needs a tighter range"
    r = ctl(ctl_conf, "audit", "--table", "fridge", "--json")
    got = json.loads(r.stdout)
    assert got[-1]["who"] == "Dana Lee <dana@lakeview.example>"
    assert got[-1]["old"]["high_c"] == 8 and got[-1]["new"]["high_c"] == 7.5
    r = ctl(ctl_conf, "audit", "--fridge", "999999")
    assert (r.returncode, r.stdout) == (0, "no audit entries\n")
    tomorrow = (now() + datetime.timedelta(days=2)).date()
    r = ctl(ctl_conf, "audit", "--since", str(tomorrow))
    assert (r.returncode, r.stdout) == (0, "no audit entries\n")
    r = ctl(ctl_conf, "audit", "--since", str(now().date() - datetime.timedelta(days=1)))
    assert "why: Varivax needs a tighter range" in r.stdout

    # From psql, a reason is a session setting; a name change needs none.
    with pytest.raises(psycopg.errors.InvalidParameterValue,
                       match="reason is required to change low_delay"):
        db.execute("update vialwatch.fridge set low_delay = '5 minutes'")
    db.execute("set vialwatch.reason = 'per SOP 12'")
    db.execute("update vialwatch.fridge set low_delay = '5 minutes'")
    assert audit_rows(db, "fridge")[-1]["reason"] == "per SOP 12"
    r = ctl(ctl_conf, "fridge", "set", f["fridge"], "name=Botox",
            "--by", str(f["contacts"]["sam"]))
    assert r.returncode == 0, r.stderr
    assert audit_rows(db, "fridge")[-1]["actor_contact_id"] == \
        f["contacts"]["sam"]

    for args, err in [
            (["colour=red"], 'a fridge has no setting "colour"'),
            (["high_c=warm"], "invalid input syntax"),
            (["high_c"], '"high_c" is not KEY=VALUE'),
    ]:
        r = ctl(ctl_conf, "fridge", "set", f["fridge"], *args, "--by",
                "dana@lakeview.example", "--reason", "x")
        assert r.returncode == 1 and err in r.stderr, (args, r.stderr)


def test_assignment_needs_a_reason_daemon_changes_do_not(db, clean_db):
    f = setup_fridge(db)
    # The daemon registers sensors and rewrites last_seen: no reason.
    db.execute("insert into vialwatch.sensor (key) values ('json/new')")
    db.execute("update vialwatch.sensor set last_seen = now(), battery = 80,"
               " battery_at = now()")
    assert [a["row_id"] for a in audit_rows(db, "sensor")] == [
        str(f["sensor"]), str(f["sensor"] + 1)]
    with pytest.raises(psycopg.errors.InvalidParameterValue,
                       match="reason is required to change fridge_id"):
        db.execute("update vialwatch.sensor set fridge_id = %s "
                   "where key = 'json/new'", [f["fridge"]])
    # Consent of patients: only the consent columns go in the trail.
    p = insert(db, "patient", clinic_id=f["clinic"], first_name="Ann",
               email="ann@example.com", email_consent=True)
    db.execute("update vialwatch.patient set unsubscribed_at = now() "
               "where id = %s", [p])
    got = audit_rows(db, "patient")
    assert [a["action"] for a in got] == ["insert", "update"]
    assert "first_name" not in got[1]["new"] and "email" not in got[1]["new"]
    assert got[1]["old"]["unsubscribed_at"] is None
    assert got[1]["new"]["unsubscribed_at"] is not None


@pytest.mark.parametrize("sql", [
    "update vialwatch.audit set reason = 'nothing to see'",
    "delete from vialwatch.audit",
    "truncate vialwatch.audit",
    "update vialwatch.reading_seal set n = 0",
    "delete from vialwatch.reading_seal",
    "truncate vialwatch.reading_seal",
])
def test_append_only_even_for_superusers(db, clean_db, sql):
    f = setup_fridge(db)
    db.execute("insert into vialwatch.reading (sensor_id, ts, temp_c) "
               "values (%s, now() - interval '3 days', 4.5)", [f["sensor"]])
    db.execute("select * from vialwatch.reading_seal_run()")
    assert db.execute("select count(*) from vialwatch.reading_seal"
                      ).fetchone()[0] > 0
    n = len(audit_rows(db))
    with pytest.raises(psycopg.errors.InsufficientPrivilege,
                       match="append-only"):
        db.execute(sql)
    assert len(audit_rows(db)) == n


def test_roles_cannot_write_the_trail(db, clean_db):
    for role in ("vialwatch_admin", "vialwatch_daemon"):
        for priv in ("insert", "update", "delete", "truncate"):
            assert not db.execute(
                "select has_table_privilege(%s, 'vialwatch.audit', %s)",
                (role, priv)).fetchone()[0], (role, priv)


# --- the chain -------------------------------------------------------------


def test_chain_under_concurrent_writers(pg, db, clean_db, ctl_conf):
    f = setup_fridge(db)
    errors = []

    def writer(i):
        try:
            with psycopg.connect(pg.conninfo("vialwatch"),
                                 autocommit=True) as c:
                c.execute("set vialwatch.reason = 'load'")
                for j in range(25):
                    c.execute("update vialwatch.contact set tier = %s "
                              "where id = %s", [1 + (j % 3), i])
                    c.execute("update vialwatch.fridge set high_c = %s",
                              [8 + (j % 2) / 10])
        except Exception as e:  # shown below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(c,))
               for c in f["contacts"].values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    got = audit_rows(db)
    assert len(got) > 50
    for prev, row in zip(got, got[1:]):
        assert row["prev_hash"] == prev["hash"]
    r = ctl(ctl_conf, "audit", "verify")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"audit trail verified: {len(got)} rows "
                               "chained")

    # Rows removed or altered behind the triggers' back (by a superuser
    # who turned them off) are found, by number.
    db.execute("alter table vialwatch.audit disable trigger "
               "audit_append_only")
    db.execute("delete from vialwatch.audit where id = %s", [got[-1]["id"]])
    r = ctl(ctl_conf, "audit", "verify")
    assert r.returncode == 1
    assert f"the newest audit rows (after row {got[-2]['id']}) were " \
        "removed" in r.stderr
    db.execute("delete from vialwatch.audit where id = %s", [got[-10]["id"]])
    r = ctl(ctl_conf, "audit", "verify")
    assert r.returncode == 1
    assert f"audit row {got[-9]['id']} does not follow the row before it" \
        in r.stderr
    assert got[20]["action"] == "update"
    victim = got[20]["id"]
    db.execute("update vialwatch.audit set reason = 'nothing' where id = %s",
               [victim])
    db.execute("alter table vialwatch.audit enable trigger "
               "audit_append_only")
    r = ctl(ctl_conf, "audit", "verify")
    assert r.returncode == 1
    assert f"audit row {victim} (update of" in r.stderr
    assert "changed after it was written" in r.stderr


@pytest.mark.parametrize("value,text", [
    (None, "null"),
    ({}, "{}"),
    ([], "[]"),
    (True, "true"),
    (0, "0"),
    (-0.25, "-0.25"),
    (7.5, "7.5"),
    (100000000000000000000, "100000000000000000000"),
    ("", '""'),
    ("a\"b\\c", '"a\\"b\\\\c"'),
    ("tab\there\nnl\u0001", '"tab\\there\\nnl\\u0001"'),
    ("Müller 温度 🧊", '"Müller 温度 🧊"'),
    ({"b": 1, "a": 2, "B": 3, "é": 4, "aa": 5},
     '{"B":3,"a":2,"aa":5,"b":1,"é":4}'),
    ({"z": [1, None, {"y": "x", "x": [True, False]}]},
     '{"z":[1,null,{"x":[true,false],"y":"x"}]}'),
])
def test_canonical_encoding(db, value, text):
    got = db.execute("select vialwatch.audit_json(%s::jsonb)",
                     [json.dumps(value)]).fetchone()[0]
    assert got == text
    # Key order and spacing of the input do not matter.
    if isinstance(value, dict):
        spaced = json.dumps(dict(reversed(list(value.items()))), indent=2)
        assert db.execute("select vialwatch.audit_json(%s::jsonb)",
                          [spaced]).fetchone()[0] == text


def test_canonical_row_and_hash(db, clean_db):
    """The hash of a row is sha256(prev_hash || canonical text), as the
    manual says, recomputed here without the database's help."""
    import hashlib
    insert(db, "clinic", name="Lakeview", timezone="America/Chicago")
    db.execute("set vialwatch.reason = 'opening'")
    db.execute("update vialwatch.clinic set name = 'Lakeview Aesthetics'")
    for a in audit_rows(db):
        canonical = {
            "id": a["id"],
            "at": a["at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor_contact_id": a["actor_contact_id"],
            "actor_role": a["actor_role"],
            "actor_os_user": a["actor_os_user"],
            "action": a["action"], "table_name": a["table_name"],
            "row_id": a["row_id"], "old": a["old"], "new": a["new"],
            "reason": a["reason"]}
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)
        want = hashlib.sha256((a["prev_hash"] or b"") + text.encode())
        assert bytes(a["hash"]) == want.digest(), text


# --- seals ------------------------------------------------------------------


def day_start(d, zone):
    return datetime.datetime.combine(d, datetime.time(), zone)


def test_daemon_seals_days_late_reading_and_tampering(daemon, db,
                                                      mqtt_broker, ctl_conf):
    from zoneinfo import ZoneInfo
    chicago = ZoneInfo("America/Chicago")
    f = setup_fridge(db)
    today = now().astimezone(chicago).date()
    d3 = today - datetime.timedelta(days=3)
    d2 = today - datetime.timedelta(days=2)
    # Readings of two days already stored (as after an outage of sealing).
    for day, temps in ((d3, [4.5, 4.75, 5.0]), (d2, [3.9, 4.1])):
        for i, t in enumerate(temps):
            db.execute("insert into vialwatch.reading (sensor_id, ts, temp_c)"
                       " values (%s, %s, %s)", [f["sensor"], day_start(
                           day, chicago) + datetime.timedelta(hours=6 + i),
                           t])

    def seals():
        return rows(db, "select day, generation, n, sha256 from "
                    "vialwatch.reading_seal where sensor_id = %s "
                    "order by day, generation", [f["sensor"]])

    d = daemon(overrides=SOURCES, database={"seal_every": "1s"})
    got = wait_for(lambda: (lambda s: s if {d3, d2} <= {x["day"] for x in s}
                            else None)(seals()),
                   20, "the seals of the days that ended")
    by_day = {s["day"]: s for s in got}
    assert by_day[d3]["n"] == 3 and by_day[d2]["n"] == 2
    # Days without readings are sealed too (yesterday, once it has ended
    # plus offline_after); today is not.
    assert by_day.get(today - datetime.timedelta(days=1), {"n": 0})["n"] == 0
    assert today not in by_day
    assert all(s["generation"] == 1 for s in got)
    # The seal is the sha256 of "EPOCH_US,TEMP_C\n" lines, as documented.
    import hashlib
    lines = "".join(
        f"{int((day_start(d3, chicago) + datetime.timedelta(hours=6 + i)).timestamp()) * 1000000},{t}\n"
        for i, t in enumerate(["4.5", "4.75", "5"]))
    assert by_day[d3]["sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    # Each seal is in the trail.
    assert len(audit_rows(db, "reading_seal")) == len(got)

    # A logger uploads a reading of d3 late: a second seal, the first kept.
    late = day_start(d3, chicago) + datetime.timedelta(hours=12)
    publish(mqtt_broker.port, [message(f["key"], late, 6.25)])
    gen2 = wait_for(lambda: [s for s in seals() if s["generation"] == 2],
                    20, "the second seal of the late reading's day")
    assert [(s["day"], s["n"]) for s in gen2] == [(d3, 4)]
    assert [s for s in seals() if s["day"] == d3][0] == by_day[d3]
    d.wait_log(r"seal: sensor \d+, " + str(d3) + r" sealed again "
               r"\(generation 2, 4 readings\)")
    r = ctl(ctl_conf, "audit", "verify")
    assert r.returncode == 0, r.stderr
    r = ctl(ctl_conf, "audit", "--table", "reading_seal")
    assert f"sealed the readings of sensor {f['sensor']}, {d3}: 4 " \
           "readings" in r.stdout

    # A superuser changes a sealed reading through SQL: found.
    d.stop()
    db.execute("update vialwatch.reading set temp_c = 4.0 "
               "where sensor_id = %s and temp_c = 3.9", [f["sensor"]])
    r = ctl(ctl_conf, "audit", "verify")
    assert r.returncode == 1
    assert f"reading of sensor {f['sensor']} on {d2} changed after its " \
           "seal" in r.stderr
    # --since after that day checks only the later seals.
    r = ctl(ctl_conf, "audit", "verify", "--since", str(d2 + datetime.timedelta(days=1)))
    assert r.returncode == 0, r.stderr


def test_sealing_while_new_sensors_report(daemon, db, mqtt_broker, ctl_conf):
    """Sealing runs every second while new sensors register (an audit row
    each) and their buffered readings of past days come in: no deadlock,
    no reading lost, every day sealed, the chain and seals verify."""
    setup_fridge(db)
    d = daemon(overrides=SOURCES, database={"seal_every": "1s"})
    start = now() - datetime.timedelta(days=4)
    keys = [f"json/lakeview/logger-{i}" for i in range(12)]
    for batch in range(6):
        publish(mqtt_broker.port, [
            message(k, start + datetime.timedelta(hours=batch * 12 + j), 4.0
                    + j / 10) for k in keys for j in range(4)])
    wait_for(lambda: db.execute(
        "select count(*) from vialwatch.reading r join vialwatch.sensor s "
        "on s.id = r.sensor_id where s.key like 'json/lakeview/logger-%'"
    ).fetchone()[0] == 12 * 6 * 4, 30, "every reading stored")
    # Each logger's days up to the day before yesterday (UTC: on no fridge)
    # sealed, with all its readings.
    last = now().date() - datetime.timedelta(days=2)
    want = db.execute(
        "select count(*) from (select distinct s.id, (r.ts at time zone "
        "'UTC')::date from vialwatch.reading r join vialwatch.sensor s on "
        "s.id = r.sensor_id where s.key like 'json/lakeview/logger-%%' and "
        "(r.ts at time zone 'UTC')::date <= %s) x", [last]).fetchone()[0]

    def sealed():
        got = db.execute(
            "select count(*) from (select distinct on (rs.sensor_id, rs.day) "
            "rs.* from vialwatch.reading_seal rs join vialwatch.sensor s "
            "on s.id = rs.sensor_id where s.key like 'json/lakeview/logger-%' "
            "and rs.n > 0 order by rs.sensor_id, rs.day, rs.generation desc) "
            "x where x.n = (select count(*) from vialwatch.reading r "
            "where r.sensor_id = x.sensor_id and r.ts >= x.starts_at "
            "and r.ts < x.ends_at)").fetchone()[0]
        return got >= want

    wait_for(sealed, 30, "the loggers' days sealed with all their readings")
    assert "deadlock" not in d.log_text()
    r = ctl(ctl_conf, "audit", "verify")
    assert r.returncode == 0, r.stderr


def test_link_of_someone_no_longer_a_contact(daemon, db, clean_db, tmp_path):
    """A signed link sent to an address that is no longer a contact of the
    clinic acknowledges nothing: the person cannot be named."""
    import time
    from test_outbox import KEY, alerts_daemon, http, token
    secret = tmp_path / "link.key"
    secret.write_bytes(KEY + b"\n")
    secret.chmod(0o600)
    f = setup_fridge(db)
    x = insert(db, "excursion", fridge_id=f["fridge"], sensor_id=f["sensor"],
               kind="high", started_at=now() - datetime.timedelta(hours=1),
               alarmed_at=now() - datetime.timedelta(minutes=50))
    d = alerts_daemon(daemon, secret)
    base = f"http://127.0.0.1:{d.http_port}/ack/"
    later = int(time.time()) + 3600
    status, page = http(base + token(x, "left@lakeview.example", later),
                        {"name": "Lee", "action": "moved"})
    assert status == 403 and "no longer a contact" in page
    assert db.execute("select acked_at from vialwatch.excursion where id = %s",
                      [x]).fetchone()[0] is None
    assert audit_rows(db, "excursion") == []
    # The same link for a contact of the clinic does acknowledge.
    status, page = http(base + token(x, "sam@lakeview.example", later),
                        {"name": "Lee", "action": "moved"})
    assert status == 200 and "Sam Ortiz" in page
    (a,) = audit_rows(db, "excursion")
    assert a["actor_contact_id"] == f["contacts"]["sam"]
