"""Someone hears when vialwatch itself is gone (sql/010_staying_loud.sql,
daemon/heartbeat.c, vialwatchctl watchdog): every daemon writes a heartbeat
row; when one falls silent for [alerts] daemon_silent_after, another daemon
or vialwatchctl watchdog emails the admin contacts of the clinics, once,
and again once it is back.
"""

import datetime
import json
import os
import signal
import time

from conftest import ctl_config
from servers import run_ctl, wait_for
from test_excursions import insert, rows

SILENT = "5s"


def setup_admins(db):
    """A clinic with one admin (also paged for alarms), one contact who is
    not an admin, and an inactive admin."""
    clinic = insert(db, "clinic", name="Lakeview Aesthetics",
                    timezone="America/Chicago")
    insert(db, "contact", clinic_id=clinic, name="Ada Admin",
           email="ada@lakeview.example", tier=1, roles=["alerts", "admin"])
    insert(db, "contact", clinic_id=clinic, name="Sam Ortiz",
           email="sam@lakeview.example", tier=1)
    insert(db, "contact", clinic_id=clinic, name="Old Admin",
           email="old@lakeview.example", tier=1, roles=["admin"],
           active=False)


def beats(db):
    return {r["name"]: r for r in rows(
        db, "select * from vialwatch.daemon_heartbeat")}


def about(smtp, name, what):
    return [m for m in smtp.messages()
            if m["Subject"].startswith(f"vialwatch daemon {name} on ")
            and m["Subject"].endswith(f" is {what}")]


def wait_about(smtp, name, what, timeout):
    return wait_for(lambda: about(smtp, name, what) or None, timeout,
                    f"the email that {name} is {what}")


def test_silent_daemon_reported_by_another(daemon, db, smtp):
    setup_admins(db)
    a = daemon(alerts={"daemon_silent_after": SILENT})
    b = daemon(alerts={"daemon_silent_after": SILENT})
    name_a = a.config["mqtt"]["client_id"]
    name_b = b.config["mqtt"]["client_id"]
    wait_for(lambda: {name_a, name_b} <= set(beats(db)) or None, 10,
             "both heartbeats")
    hb = beats(db)[name_b]
    assert hb["pid"] == b.pid and hb["silent_since"] is None

    os.kill(b.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        (m,) = wait_about(smtp, name_b, "silent", 30)
        took = time.monotonic() - stopped
        print(f"silent email {took:.1f} s after SIGSTOP "
              f"(daemon_silent_after {SILENT})")
        assert m.envelope_to == ["ada@lakeview.example"]
        body = m.get_content()
        assert f"(host {hb['host']}, pid {b.pid})" in body
        assert "has written no heartbeat since" in body
        # Within the limit and a few beats: 5 s, beats every second.
        assert took < 5 + 10
        a.wait_log(rf"heartbeat: daemon {name_b} on \S+ is silent since "
                   r".*; 1 admin emails queued")
        # Once: later watches find it already reported.
        assert beats(db)[name_b]["silent_since"] is not None
        wait_for(lambda: rows(db, "select count(*) as n from "
                              "vialwatch.notification where status = 'sent' "
                              "and dedupe_key like %s",
                              [f"daemon:{name_b}:silent:%"])[0]["n"] == 1
                 or None, 10, "the silent email recorded as sent")
    finally:
        os.kill(b.pid, signal.SIGCONT)
    (back,) = wait_about(smtp, name_b, "back", 20)
    assert back.envelope_to == ["ada@lakeview.example"]
    assert "is writing heartbeats again" in back.get_content()
    wait_for(lambda: beats(db)[name_b]["silent_since"] is None or None, 10,
             "silent_since cleared")
    # Neither email twice, nor one about the daemon that stayed up.
    assert len(about(smtp, name_b, "silent")) == 1
    assert len(about(smtp, name_b, "back")) == 1
    assert about(smtp, name_a, "silent") == []


def test_ctl_watchdog_sends_when_no_daemon_is_left(pg, db, smtp, tmp_path,
                                                    clean_db):
    setup_admins(db)
    conf = ctl_config(tmp_path / "ctl.conf", pg.conninfo("vialwatch"),
                      tmp_path)
    text = conf.read_text() + (
        f"\n[alerts]\ndaemon_silent_after = 1m\n"
        f"[smtp]\nurl = smtp://127.0.0.1:{smtp.port}\ntls = none\n")
    conf.write_text(text)
    long_ago = datetime.datetime.now(datetime.timezone.utc) - \
        datetime.timedelta(minutes=7)
    db.execute("insert into vialwatch.daemon_heartbeat (name, host, pid, "
               "started_at, beat_at) values ('vialwatchd-1', 'fridgehost', "
               "4242, %s, %s), ('vialwatchd-2', 'otherhost', 77, now(), "
               "now())", [long_ago, long_ago])

    r = run_ctl(["watchdog"], conf)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "HOST", "PID", "LAST_BEAT", "STATE",
                                "REPORTED"]
    assert lines[1].split()[:3] == ["vialwatchd-1", "fridgehost", "4242"]
    assert lines[1].split()[-2:] == ["silent", "silent"]
    assert lines[2].split()[-2:] == ["ok", "-"]
    assert lines[-1] == "2 daemons, 1 silent; 1 admin email sent"
    (m,) = smtp.wait_messages(1)
    assert m["Subject"] == "vialwatch daemon vialwatchd-1 on fridgehost is silent"
    assert m.envelope_to == ["ada@lakeview.example"]
    assert "7 min ago" in m.get_content()

    # Run again by the timer: still silent, nobody told twice.
    r = run_ctl(["watchdog", "--json"], conf)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["silent"] == 1 and out["emails_sent"] == 0
    assert [d["reported"] for d in out["daemons"]] == [None, None]
    assert len(smtp.messages()) == 1

    db.execute("update vialwatch.daemon_heartbeat set beat_at = now() "
               "where name = 'vialwatchd-1'")
    r = run_ctl(["watchdog"], conf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "2 daemons, 0 silent; 1 admin email sent"
    msgs = smtp.wait_messages(2)
    assert msgs[1]["Subject"] == "vialwatch daemon vialwatchd-1 on fridgehost is back"

    # A daemon retired for good is forgotten.
    r = run_ctl(["watchdog", "--forget", "vialwatchd-2"], conf)
    assert r.returncode == 0 and "forgotten" in r.stdout
    assert set(beats(db)) == {"vialwatchd-1"}
    r = run_ctl(["watchdog", "--forget", "nobody"], conf)
    assert r.returncode == 1 and 'no daemon named "nobody"' in r.stderr
