"""Alarms that nothing can silence (sql/010_staying_loud.sql,
daemon/outbox.c, daemon/archive.c): alarms are claimed before reminders
and warnings, hooks have in-flight slots of their own, old sent
notifications move to vialwatch.notification_archive (and are never sent
again), and the outbox stays quick with a million rows in it.
"""

import datetime
import os
import signal
import time

import pytest

from servers import publish, wait_for
from test_excursions import (SOURCES, insert, message, now, rows, setup_fridge,
                             wait_loaded)
from test_outbox import secret  # noqa: F401 (fixture)
from test_reminders import zone_at

slow = pytest.mark.slow


def arrived_at(m):
    """When the SMTP catcher accepted message m (epoch seconds)."""
    return m.path.stat().st_mtime


def alarms(smtp):
    return [m for m in smtp.messages() if m["Subject"].startswith("ALARM")]


def hung_hook(tmp_path):
    """A hook program that says it started, then hangs for an hour."""
    started = tmp_path / "started"
    started.mkdir()
    prog = tmp_path / "hang"
    prog.write_text(f"#!/bin/sh\ntouch {started}/$$.tmp\n"
                    f"mv {started}/$$.tmp {started}/$$\nexec sleep 3600\n")
    prog.chmod(0o755)
    return prog, started


def reminder_burst(db, clinic, n):
    """n consenting patients treated 95 days ago, their reminders made due
    and queued at once, as a 09:00 scan finds them."""
    db.execute("insert into vialwatch.patient (clinic_id, external_ref, "
               "first_name, last_name, email, email_consent) "
               "select %s, 'P-' || g, 'Ana', 'Doe', "
               "'p' || g || '@patients.example', true "
               "from generate_series(1, %s) g", [clinic, n])
    db.execute("insert into vialwatch.treatment (patient_id, product, area, "
               "treated_at) select id, 'Botox', 'glabella', "
               "now() - interval '95 days' from vialwatch.patient "
               "where clinic_id = %s", [clinic])
    db.execute("select count(*) from vialwatch.reminder_scan(540, 1080, "
               "now(), %s, true)", [n * 2])


def test_alarm_first_past_hung_hooks_and_a_reminder_burst(
        daemon, db, mqtt_broker, smtp, secret, tmp_path):
    f = setup_fridge(db)
    db.execute("update vialwatch.clinic set timezone = %s where id = %s",
               [zone_at(12), f["clinic"]])
    prog, started = hung_hook(tmp_path)
    d = daemon(overrides={**SOURCES, "hook hang": {
        "command": str(prog), "events": "excursion.open", "timeout": "1h"}},
        http={"secret_file": secret},
        alerts={"escalate_after": "1h", "repeat_every": "2h"})
    wait_loaded(d, sensors=1)
    # Eight hook runs that hang (rows as the hooks' trigger queues them).
    for i in range(8):
        insert(db, "notification", channel="hook:hang", recipient="hang",
               subject="excursion.open", body="{}",
               dedupe_key=f"test:hang:{i}")
    wait_for(lambda: len(list(started.glob("[0-9]*"))) == 8 or None, 20,
             "8 hung hooks")
    try:
        reminder_burst(db, f["clinic"], 5000)
        smtp.wait_messages(20, timeout=60)
        t0 = time.time()
        publish(mqtt_broker.port, [message(f["key"], now(), 13.0)])
        (m, *_) = wait_for(lambda: alarms(smtp) or None, 30, "the alarm email")
        took = arrived_at(m) - t0
        left = rows(db, "select count(*) as n from vialwatch.notification "
                    "where reminder_id is not null "
                    "and status in ('pending', 'failed')")[0]["n"]
        print(f"alarm email accepted {took:.3f} s after the reading, "
              f"{left} reminders still queued, 8 hooks hung")
        assert left > 1000, "the reminders were not a burst"
        assert took < 2.0
        # The hooks still hang: they held no email slot.
        assert len(list(started.glob("[0-9]*"))) == 8
    finally:
        for p in started.glob("[0-9]*"):
            try:
                os.kill(int(p.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_priority_of_what_is_queued(db, clean_db):
    """Alarms 0, battery warnings 1, reminders 2; a row about nothing keeps
    the priority it was given."""
    f = setup_fridge(db)
    x = {}
    for kind in ("high", "offline", "battery"):
        x[kind] = insert(db, "excursion", fridge_id=f["fridge"],
                         sensor_id=f["sensor"], kind=kind,
                         started_at=now() - datetime.timedelta(
                             hours=len(x) + 1), ended_at=now())
    for kind, xid in x.items():
        insert(db, "notification", channel="email", recipient="a@b.example",
               dedupe_key=f"test:{kind}", excursion_id=xid)
    insert(db, "notification", channel="email", recipient="a@b.example",
           dedupe_key="test:other", priority=0)
    got = {r["dedupe_key"]: r["priority"] for r in rows(
        db, "select dedupe_key, priority from vialwatch.notification")}
    assert got == {"test:high": 0, "test:offline": 0, "test:battery": 1,
                   "test:other": 0}


def test_archive_moves_old_done_rows_and_blocks_resends(daemon, db, smtp,
                                                        clean_db):
    """Sent and dead rows older than keep_notifications go to the archive
    when the daemon starts; pending ones, young ones and those of an open
    excursion stay; an archived dedupe_key is not queued again."""
    f = setup_fridge(db)
    ended = insert(db, "excursion", fridge_id=f["fridge"],
                   sensor_id=f["sensor"], kind="high",
                   started_at=now() - datetime.timedelta(days=30),
                   alarmed_at=now() - datetime.timedelta(days=30),
                   ended_at=now() - datetime.timedelta(days=29))
    open_ = insert(db, "excursion", fridge_id=f["fridge"],
                   sensor_id=f["sensor"], kind="offline",
                   started_at=now() - datetime.timedelta(days=20),
                   alarmed_at=now() - datetime.timedelta(days=20),
                   acked_at=now(), acked_by="Dana")
    old = now() - datetime.timedelta(days=20)

    def note(key, status, created, xid=None):
        insert(db, "notification", channel="email", recipient="a@b.example",
               subject=key, body="b", dedupe_key=key, status=status,
               created_at=created, excursion_id=xid,
               next_attempt_at=created)
    note("old:sent", "sent", old, ended)
    note("old:dead", "dead", old)
    note("old:failed", "failed", old + datetime.timedelta(days=30))
    note("old:open", "sent", old, open_)
    note("young:sent", "sent", now() - datetime.timedelta(days=2))
    db.execute("update vialwatch.notification set next_attempt_at = "
               "now() + interval '1 day' where dedupe_key = 'old:failed'")

    d = daemon(alerts={"keep_notifications": "10d"})
    d.wait_log(r"archive: 2 sent or dead notifications older than 10 days "
               r"moved to vialwatch.notification_archive")
    hot = {r["dedupe_key"] for r in rows(
        db, "select dedupe_key from vialwatch.notification")}
    assert hot == {"old:failed", "old:open", "young:sent"}
    arch = rows(db, "select * from vialwatch.notification_archive "
                "order by dedupe_key")
    assert [(a["dedupe_key"], a["status"], a["excursion_id"])
            for a in arch] == [("old:dead", "dead", None),
                               ("old:sent", "sent", ended)]
    assert arch[0]["archived_at"] is not None
    # Never lost: the history shows them all.
    assert rows(db, "select count(*) as n from "
                "vialwatch.notification_history")[0]["n"] == 5
    # The same event queued again is not sent again.
    db.execute("insert into vialwatch.notification (channel, recipient, "
               "dedupe_key) values ('email', 'a@b.example', 'old:sent') "
               "on conflict (dedupe_key) do nothing")
    assert rows(db, "select count(*) as n from vialwatch.notification "
                "where dedupe_key = 'old:sent'")[0]["n"] == 0


def explain_ms(db, query, params=()):
    """The execution time PostgreSQL reports for query, in ms."""
    plan = db.execute("explain (analyze, format json) " + query,
                      params).fetchone()[0]
    return plan[0]["Execution Time"]


@slow
def test_million_notifications_300_open_alarms(daemon, db, mqtt_broker, smtp,
                                              secret):
    """300 open alarms and 1,000,000 notification rows: the next escalation
    and a new alarm's email still leave within 2 s."""
    f = setup_fridge(db)
    other = {"key": "json/lakeview/vaccines"}
    other["fridge"] = insert(db, "fridge", clinic_id=f["clinic"],
                             name="Vaccine fridge")
    insert(db, "sensor", key=other["key"], fridge_id=other["fridge"])
    # 300 alarms open for 2 h, each told to tier 1 and escalated to tier 2
    # already, and a million older rows of excursions long over.
    db.execute(
        "insert into vialwatch.excursion (fridge_id, sensor_id, kind, "
        "started_at, alarmed_at) select %s, null, 'offline', "
        "now() - interval '2 hours' - g * interval '1 second', "
        "now() - interval '2 hours' from generate_series(1, 300) g",
        [f["fridge"]])
    db.execute("set session_replication_role = replica")
    db.execute(
        "insert into vialwatch.notification (channel, recipient, subject, "
        "body, dedupe_key, status, created_at, sent_at, excursion_id) "
        "select 'email', ct.email, 's', 'b', format("
        "'excursion:%%s:%%s:contact:%%s', x.id, case ct.tier when 1 then "
        "'offline' else 'escalate' end, ct.id), 'sent', "
        "now() - interval '2 hours', now() - interval '2 hours', x.id "
        "from vialwatch.excursion x, vialwatch.contact ct "
        "where ct.active and ct.clinic_id = %s", [f["clinic"]])
    db.execute(
        "insert into vialwatch.notification (channel, recipient, subject, "
        "body, dedupe_key, status, created_at, sent_at, excursion_id) "
        "select 'email', 'old' || (g % 500) || '@lakeview.example', 's', "
        "'b', 'old:' || g, 'sent', now() - interval '300 days' + "
        "g * interval '20 seconds', now() - interval '300 days', null "
        "from generate_series(1, 1000000 - (select count(*)::integer "
        "from vialwatch.notification)) g")
    db.execute("set session_replication_role = origin")
    db.execute("analyze vialwatch.notification")
    assert rows(db, "select count(*) as n from vialwatch.notification"
                )[0]["n"] >= 1000000

    sql = "select vialwatch.escalate(interval '1 hour', interval '1 day')"
    ms = explain_ms(db, sql)
    with db.transaction(force_rollback=True):
        db.execute("drop index vialwatch.notification_excursion")
        unindexed = explain_ms(db, sql)
    print(f"escalate() over 300 open alarms, 1M rows: {ms:.0f} ms "
          f"({unindexed:.0f} ms without notification_excursion)")
    d = daemon(overrides=SOURCES, http={"secret_file": secret},
               alerts={"escalate_after": "10s", "repeat_every": "1d"})
    wait_loaded(d, sensors=2)
    # The next escalation: an alarm whose tier-1 email went 9 s ago.
    xid = insert(db, "excursion", fridge_id=f["fridge"], kind="offline",
                 started_at=now() - datetime.timedelta(seconds=9),
                 alarmed_at=now() - datetime.timedelta(seconds=9))
    insert(db, "notification", channel="email", recipient="x@lakeview.example",
           dedupe_key=f"excursion:{xid}:offline:contact:0", status="sent",
           created_at=now() - datetime.timedelta(seconds=9), excursion_id=xid)
    due = time.time() + 1
    t0 = time.time()
    publish(mqtt_broker.port, [message(other["key"], now(), 13.0)])

    def escalated():
        return [m for m in smtp.messages()
                if m["Subject"].startswith("ESCALATED")] or None
    (esc,) = wait_for(escalated, 30, "the escalation email")
    (alarm, *_) = wait_for(lambda: alarms(smtp) or None, 30, "the alarm email")
    late = arrived_at(esc) - due
    took = arrived_at(alarm) - t0
    print(f"escalation email {late:.3f} s after it fell due (escalation "
          f"runs every 1 s); new alarm email {took:.3f} s after its reading")
    assert esc.envelope_to == ["kim@lakeview.example"]
    assert late < 2.0 + 1.0
    assert took < 2.0
