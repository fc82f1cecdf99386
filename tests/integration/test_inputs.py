"""Door contacts, mains power, maintenance windows and warnings, end to end:
messages over MQTT into the real daemon, rows in PostgreSQL, emails at the
SMTP catcher.  The delays are shortened in each test's fridge row so that
a door "left open" pages in seconds, not minutes.
"""

import csv
import datetime
import io
import json

import pytest

from servers import publish, run_ctl, wait_for
from test_excursions import (SOURCES, excursions, message, now, rows,
                             setup_fridge, wait_excursion, wait_loaded)

TASMOTA = {"source plugs": {"topic": "tele/#", "format": "tasmota"}}


def by_subject(msgs, prefix):
    return [m for m in msgs if m["Subject"].startswith(prefix)]


def recipients(msgs):
    return sorted(r for m in msgs for r in m.envelope_to)


def add_sensor(db, f, key):
    return db.execute("insert into vialwatch.sensor (key, fridge_id) "
                      "values (%s, %s) returning id",
                      [key, f["fridge"]]).fetchone()[0]


def emails_of(db, xid):
    return rows(db, "select recipient, dedupe_key from vialwatch.notification"
                " where excursion_id = %s and channel = 'email' order by id",
                [xid])


def door(mqtt_broker, key, contact):
    publish(mqtt_broker.port, [(key, {"contact": contact, "battery": 90})])


def test_zigbee_door_left_open_pages_tier1_escalates_and_closes(
        daemon, db, mqtt_broker, smtp):
    """A door open longer than door_alarm_after: a door excursion, the
    email to tier 1 at once, escalated to tier 2 like an alarm, no lot
    quarantined; the closing message ends it with an all-clear."""
    f = setup_fridge(db, door_alarm_after="4 seconds")
    key = "zigbee2mqtt/lakeview-botox-door"
    sensor = add_sensor(db, f, key)
    d = daemon(alerts={"escalate_after": "8s", "repeat_every": "1h"})
    wait_loaded(d, sensors=2)

    door(mqtt_broker, key, True)          # shut: nothing happens
    door(mqtt_broker, key, False)         # open
    [x] = wait_excursion(db, sensor, lambda xs: xs[0]["alarmed_at"],
                         "door alarmed", kind="door")
    assert x["ended_at"] is None
    assert x["alarmed_at"] - x["started_at"] >= datetime.timedelta(seconds=4)
    msgs = smtp.wait_messages(2)
    assert recipients(by_subject(msgs, "DOOR OPEN")) == [
        "dana@lakeview.example", "sam@lakeview.example"]
    body = by_subject(msgs, "DOOR OPEN")[0].get_content()
    assert "Botox fridge" in body and "vialwatchctl ack" in body

    # Escalated like an alarm: tier 2 after escalate_after.
    msgs = wait_for(lambda: by_subject(smtp.messages(), "ESCALATED") or None,
                    30, "the door alarm escalated to tier 2")
    assert recipients(msgs) == ["kim@lakeview.example"]
    # No quarantine for a door by itself.
    assert {r["status"] for r in rows(
        db, "select status from vialwatch.lot where fridge_id = %s",
        [f["fridge"]])} == {"ok"}

    door(mqtt_broker, key, True)
    [x] = wait_excursion(db, sensor, lambda xs: xs[0]["ended_at"],
                         "door closed", kind="door")
    assert x["minutes_out"] > 4 / 60
    closed = wait_for(lambda: len(by_subject(smtp.messages(), "Door closed"))
                      >= 3 and by_subject(smtp.messages(), "Door closed"), 20,
                      "the door-closed emails")
    assert recipients(closed) == ["dana@lakeview.example",
                                  "kim@lakeview.example",
                                  "sam@lakeview.example"]
    # Stored as door states, not temperatures; the sensor is a door now.
    states = [r["door_open"] for r in rows(
        db, "select door_open from vialwatch.input_reading where sensor_id"
        " = %s order by ts", [sensor])]
    assert states == [False, True, False]
    assert rows(db, "select count(*) as n from vialwatch.reading "
                "where sensor_id = %s", [sensor])[0]["n"] == 0
    assert rows(db, "select kind from vialwatch.sensor where id = %s",
                [sensor])[0]["kind"] == "door"
    assert rows(db, "select * from vialwatch.rejected_message") == []
    daily = rows(db, "select * from vialwatch.daily_inputs where "
                 "fridge_id = %s and day = (now() at time zone "
                 "'America/Chicago')::date", [f["fridge"]])[0]
    assert daily["door_openings"] == 1
    assert daily["door_longest_min"] == x["minutes_out"]


def test_tasmota_plug_power_drop_pages(daemon, db, mqtt_broker, smtp):
    """A Tasmota plug's ENERGY.Power dropping to 0 W: a power excursion
    alarmed within power_alarm_after plus one reading, emailed at once;
    power back ends it."""
    f = setup_fridge(db, power_alarm_after="3 seconds")
    key = "tele/botox-plug/SENSOR/ENERGY"
    sensor = add_sensor(db, f, key)
    d = daemon(overrides=TASMOTA)
    wait_loaded(d, sensors=2)

    def plug(watts):
        publish(mqtt_broker.port, [("tele/botox-plug/SENSOR", {
            "Time": "2024-01-01T00:00:00", "ENERGY": {"Power": watts}})])

    plug(82)
    plug(0)
    # A reading each second until the alarm, as a plug on teleperiod 1 would.
    wait_for(lambda: plug(0) or [x for x in excursions(db, sensor, "power")
                                 if x["alarmed_at"]],
             30, "power alarmed")
    [x] = excursions(db, sensor, "power")
    assert x["peak_c"] == 0
    took = (x["alarmed_at"] - x["started_at"]).total_seconds()
    assert 3 <= took <= 3 + 2, took
    msgs = smtp.wait_messages(2)
    lost = by_subject(msgs, "POWER LOST")
    assert recipients(lost) == ["dana@lakeview.example", "sam@lakeview.example"]
    assert "draws 0 W, under 5 W" in lost[0].get_content()

    plug(75)
    wait_excursion(db, sensor, lambda xs: xs[0]["ended_at"], "power back",
                   kind="power")
    wait_for(lambda: by_subject(smtp.messages(), "Power back") or None, 20,
             "the power-back email")
    watts = [r["power_w"] for r in rows(
        db, "select power_w from vialwatch.input_reading where sensor_id = %s"
        " order by ts", [sensor])]
    assert watts[0] == 82 and watts[-1] == 75 and 0 in watts


def test_maintenance_holds_high_alarm_but_critical_pages(
        daemon, db, mqtt_broker, smtp, tmp_path):
    """During a window a high alarm is recorded (and quarantines) but pages
    nobody; a reading beyond the critical bound still pages."""
    f = setup_fridge(db, high_delay="1 second")
    d = daemon(overrides=SOURCES)
    wait_loaded(d, sensors=1)
    r = run_ctl(["maintenance", f["fridge"], "--for", "1h", "--by",
                 "dana@lakeview.example", "--reason", "restocking"],
                d.conf_path)
    assert r.returncode == 0, r.stderr
    assert "page nobody" in r.stdout

    t0 = now()
    publish(mqtt_broker.port, [message(f["key"], t0, 9.0),
                               message(f["key"], t0 + datetime.timedelta(
                                   seconds=2), 9.2)])
    [x] = wait_excursion(db, f["sensor"], lambda xs: xs[0]["alarmed_at"],
                         "high alarm recorded", kind="high")
    # Recorded as usual (the same transaction): lots quarantined, no email.
    assert {r["status"] for r in rows(
        db, "select status from vialwatch.lot where fridge_id = %s",
        [f["fridge"]])} == {"quarantined"}
    assert emails_of(db, x["id"]) == []

    publish(mqtt_broker.port, [message(f["key"], t0 + datetime.timedelta(
        seconds=3), 12.6)])
    msgs = smtp.wait_messages(2)
    assert recipients(by_subject(msgs, "ALARM")) == [
        "dana@lakeview.example", "sam@lakeview.example"]
    assert "12.6" in by_subject(msgs, "ALARM")[0]["Subject"]

    listed = json.loads(run_ctl(["maintenance", "list", "--json"],
                                d.conf_path).stdout)
    assert [(m["fridge_id"], m["active"], m["started_by"], m["reason"])
            for m in listed] == [(f["fridge"], True, "dana@lakeview.example",
                                  "restocking")]
    status = run_ctl(["status"], d.conf_path)
    assert "maintenance" in status.stdout


def test_maintenance_ends_by_itself(daemon, db, mqtt_broker, smtp):
    """The window ends on its own: whoever started it is told the fridge is
    still out of range, and the held alarm now pages tier 1."""
    f = setup_fridge(db, high_delay="1 second")
    d = daemon(overrides=SOURCES, alerts={"escalate_after": "10s",
                                          "repeat_every": "1h"})
    wait_loaded(d, sensors=1)
    r = run_ctl(["maintenance", f["fridge"], "--for", "4s", "--by",
                 "sam@lakeview.example", "--reason", "defrosting by hand"],
                d.conf_path)
    assert r.returncode == 0, r.stderr
    t0 = now()
    publish(mqtt_broker.port, [message(f["key"], t0, 9.0),
                               message(f["key"], t0 + datetime.timedelta(
                                   seconds=2), 9.1)])
    [x] = wait_excursion(db, f["sensor"], lambda xs: xs[0]["alarmed_at"],
                         "high alarm recorded", kind="high")
    assert emails_of(db, x["id"]) == []

    msgs = wait_for(lambda: by_subject(smtp.messages(), "Maintenance over")
                    or None, 30, "the end-of-window email")
    assert recipients(msgs) == ["sam@lakeview.example"]
    assert "defrosting by hand" in msgs[0].get_content()
    msgs = wait_for(lambda: by_subject(smtp.messages(), "ALARM") or None, 20,
                    "the held alarm paged")
    assert sorted(m["recipient"] for m in emails_of(db, x["id"])
                  if ":alarm:" in m["dedupe_key"]) == [
        "dana@lakeview.example", "sam@lakeview.example"]
    [m] = rows(db, "select * from vialwatch.maintenance")
    assert m["notified_at"] is not None and m["ended_at"] is None
    listed = json.loads(run_ctl(["maintenance", "list", "--json"],
                                d.conf_path).stdout)
    assert listed[0]["active"] is False


def test_maintenance_command_refusals(daemon, db, clean_db):
    f = setup_fridge(db)
    d = daemon(overrides=SOURCES, alerts={"maintenance_max": "2h"})
    r = run_ctl(["maintenance", f["fridge"], "--for", "3h", "--by",
                 "dana@lakeview.example", "--reason", "restocking"],
                d.conf_path)
    assert r.returncode == 1 and "maintenance_max" in r.stderr
    r = run_ctl(["maintenance", f["fridge"], "--for", "1h", "--by",
                 "nobody@nowhere.example", "--reason", "restocking"],
                d.conf_path)
    assert r.returncode == 1 and "nobody known" in r.stderr
    r = run_ctl(["maintenance", f["fridge"], "--for", "1h", "--by",
                 "dana@lakeview.example"], d.conf_path)
    assert r.returncode == 2 and "--reason" in r.stderr
    assert rows(db, "select * from vialwatch.maintenance") == []
    r = run_ctl(["maintenance", f["fridge"], "--for", "1h", "--by",
                 "dana@lakeview.example", "--reason", "cleaning"], d.conf_path)
    assert r.returncode == 0, r.stderr
    r = run_ctl(["maintenance", "end", f["fridge"], "--by",
                 "sam@lakeview.example"], d.conf_path)
    assert r.returncode == 0, r.stderr
    [m] = rows(db, "select m.*, c.email from vialwatch.maintenance m join "
               "vialwatch.contact c on c.id = m.ended_by")
    assert m["ended_at"] is not None and m["email"] == "sam@lakeview.example"
    r = run_ctl(["maintenance", "end", f["fridge"], "--by",
                 "sam@lakeview.example"], d.conf_path)
    assert r.returncode == 1 and "no window open" in r.stderr


def test_warning_sends_one_email_and_no_escalation(daemon, db, mqtt_broker,
                                                    smtp):
    """Above warn_high_c for warn_delay: one email to tier 1, never
    escalated or repeated; it ends silently.  A real alarm after it, on
    the same sensor, escalates: the proof that escalation ran meanwhile."""
    f = setup_fridge(db, warn_high_c=7.0, warn_delay="1 second")
    d = daemon(overrides=SOURCES, alerts={"escalate_after": "3s",
                                          "repeat_every": "4s"})
    wait_loaded(d, sensors=1)
    t0 = now()
    publish(mqtt_broker.port, [message(f["key"], t0, 7.3),
                               message(f["key"], t0 + datetime.timedelta(
                                   seconds=2), 7.6)])
    [w] = wait_excursion(db, f["sensor"], lambda xs: xs[0]["alarmed_at"],
                         "warning alarmed", kind="warning")
    msgs = smtp.wait_messages(2)
    warned = by_subject(msgs, "Warning")
    assert recipients(warned) == ["dana@lakeview.example",
                                  "sam@lakeview.example"]
    assert "7.6" in warned[0].get_content()
    assert "/ack/" not in warned[0].get_content()
    assert {r["status"] for r in rows(
        db, "select status from vialwatch.lot where fridge_id = %s",
        [f["fridge"]])} == {"ok"}

    publish(mqtt_broker.port, [message(f["key"], t0 + datetime.timedelta(
        seconds=3), 12.5)])
    wait_for(lambda: [m for m in by_subject(smtp.messages(), "REPEAT")
                      if "ALARM" in m["Subject"]] or None, 40,
             "the alarm repeated")
    msgs = smtp.messages()
    assert len(by_subject(msgs, "Warning")) == 2
    assert all("ALARM" in m["Subject"] for m in
               by_subject(msgs, "ESCALATED") + by_subject(msgs, "REPEAT"))
    assert [n["dedupe_key"] for n in emails_of(db, w["id"])] == [
        f"excursion:{w['id']}:alarm:contact:{f['contacts']['dana']}",
        f"excursion:{w['id']}:alarm:contact:{f['contacts']['sam']}"]

    publish(mqtt_broker.port, [message(f["key"], now(), 5.0)])
    wait_excursion(db, f["sensor"], lambda xs: xs[0]["ended_at"],
                   "warning over", kind="warning")
    wait_for(lambda: by_subject(smtp.messages(), "Recovered") or None, 20,
             "the alarm's recovery email")
    assert len(emails_of(db, w["id"])) == 2


def test_monthly_log_counts_doors_and_windows(db, clean_db, tmp_path):
    """The monthly log: door openings and the longest, power cuts, and the
    maintenance windows of each day, beside the temperatures."""
    from conftest import ctl_config
    from test_excursions import insert

    f = setup_fridge(db)
    day = datetime.datetime(2025, 3, 10, 15, 0, tzinfo=datetime.timezone.utc)
    for start, minutes in [(day, 2.5), (day + datetime.timedelta(hours=1),
                                        7.0)]:
        insert(db, "excursion", fridge_id=f["fridge"], sensor_id=f["sensor"],
               kind="door", started_at=start, minutes_out=minutes,
               ended_at=start + datetime.timedelta(minutes=minutes))
    insert(db, "maintenance", fridge_id=f["fridge"], starts_at=day,
           ends_at=day + datetime.timedelta(minutes=45), reason="restocking",
           started_by=f["contacts"]["dana"])
    conf = ctl_config(tmp_path / "ctl.conf", db.info.dsn, tmp_path)
    r = run_ctl(["report", "--fridge", f["fridge"], "--month", "2025-03"],
                conf)
    assert r.returncode == 0, r.stderr
    by_day = {row["date"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    row = by_day["2025-03-10"]
    assert (row["door_openings"], row["door_longest_min"]) == ("2", "7.0")
    assert row["power_cuts"] == "0"
    assert float(row["maintenance_min"]) == 45
    assert row["maintenance"] == "10:00-10:45 restocking (dana@lakeview.example)"
    assert by_day["2025-03-11"]["door_openings"] == "0"
    assert by_day["2025-03-11"]["maintenance"] == ""


def test_door_and_power_readings_come_back_from_the_spool(daemon, db, pg,
                                                          mqtt_broker):
    """Door states and watts go through the spool like temperatures: killed
    while the database holds them back, the daemon stores each once after
    its restart."""
    from test_spool import kill9

    d = daemon(overrides=TASMOTA)
    with pg.connect("vialwatch", autocommit=False) as lock:
        lock.execute("lock table vialwatch.input_reading in share mode")
        for i, contact in enumerate([False, True, False]):
            publish(mqtt_broker.port, [("zigbee2mqtt/spool-door", {
                "contact": contact,
                "last_seen": int(now().timestamp() * 1000) - 3 + i})])
        publish(mqtt_broker.port, [("tele/spool-plug/SENSOR", {
            "ENERGY": {"Power": w}}) for w in (60, 0.5)])
        wait_for(lambda: d.metric("vialwatch_readings_pending") >= 5, 20,
                 "five readings held for the database")
        kill9(d)
        lock.rollback()
    d.start()
    d.wait_healthy(timeout=30)
    got = wait_for(lambda: (lambda r: r if len(r) >= 5 else None)(rows(
        db, "select s.key, s.kind, i.door_open, i.power_w from "
        "vialwatch.input_reading i join vialwatch.sensor s on "
        "s.id = i.sensor_id order by s.key, i.ts")), 30, "five rows")
    assert [(r["key"], r["kind"], r["door_open"], r["power_w"])
            for r in got] == [
        ("tele/spool-plug/SENSOR/ENERGY", "power", None, 60.0),
        ("tele/spool-plug/SENSOR/ENERGY", "power", None, 0.5),
        ("zigbee2mqtt/spool-door", "door", True, None),
        ("zigbee2mqtt/spool-door", "door", False, None),
        ("zigbee2mqtt/spool-door", "door", True, None)]
    assert d.metric("vialwatch_spool_replayed_total") >= 5


def test_open_door_alarms_on_time_across_a_restart(daemon, db, mqtt_broker,
                                                   smtp):
    """An open door's excursion is rebuilt at start: it alarms at
    started_at + door_alarm_after although the daemon restarted."""
    delay = datetime.timedelta(seconds=12)
    f = setup_fridge(db, door_alarm_after=delay)
    key = "zigbee2mqtt/restart-door"
    sensor = add_sensor(db, f, key)
    d = daemon()
    wait_loaded(d, sensors=2)
    door(mqtt_broker, key, False)
    [x] = wait_excursion(db, sensor, lambda xs: True, "the door open",
                         kind="door")
    assert d.stop() == 0
    assert now() < x["started_at"] + delay, "too slow to test this"
    d.start()
    d.wait_healthy()
    [x] = wait_excursion(db, sensor, lambda xs: xs[0]["alarmed_at"],
                         "the door alarm", timeout=30, kind="door")
    late = x["alarmed_at"] - (x["started_at"] + delay)
    assert datetime.timedelta(0) <= late < datetime.timedelta(seconds=4), x
    assert len(excursions(db, sensor, "door")) == 1
    smtp.wait_messages(2)


def test_zigbee_plug_offline_is_a_power_alarm(daemon, db, mqtt_broker, smtp):
    """A plug saying it is offline (zigbee2mqtt availability): a power
    excursion alarmed at once; its next good reading ends it."""
    f = setup_fridge(db)
    key = "zigbee2mqtt/botox-plug"
    sensor = add_sensor(db, f, key)
    d = daemon()
    wait_loaded(d, sensors=2)
    publish(mqtt_broker.port, [(key, {"power": 64.0, "state": "ON"})])
    wait_for(lambda: rows(db, "select kind from vialwatch.sensor where id = "
                          "%s and kind = 'power'", [sensor]), 20,
             "the sensor known as a plug")
    wait_loaded(d, sensors=2, loads=2)
    publish(mqtt_broker.port, [(key + "/availability", {"state": "offline"})])
    [x] = wait_excursion(db, sensor, lambda xs: xs[0]["alarmed_at"],
                         "power alarmed", kind="power")
    assert x["alarmed_at"] == x["started_at"] and x["peak_c"] is None
    msgs = smtp.wait_messages(2)
    assert "is off or has gone offline" in by_subject(
        msgs, "POWER LOST")[0].get_content()
    assert excursions(db, sensor, "offline") == []
    publish(mqtt_broker.port, [(key, {"power": 61.0, "state": "ON"})])
    wait_excursion(db, sensor, lambda xs: xs[0]["ended_at"], "power back",
                   kind="power")


def test_defrost_schedule(db, clean_db):
    """defrost_every and defrost_for, counted from the clinic's local
    midnight, hold a fridge; a defrost longer than its period is refused."""
    f = setup_fridge(db, defrost_every="6 hours", defrost_for="20 minutes")

    def hold(local):
        return db.execute(
            "select vialwatch.fridge_hold(%s, (%s::timestamp at time zone "
            "'America/Chicago'))", [f["fridge"], local]).fetchone()[0]
    assert hold("2025-03-10 06:05") == "defrost"
    assert hold("2025-03-10 00:00") == "defrost"
    assert hold("2025-03-10 18:19:59") == "defrost"
    assert hold("2025-03-10 06:20") is None
    assert hold("2025-03-10 11:59") is None
    # The day clocks go forward (9 March 2025): still local wall time.
    assert hold("2025-03-09 06:10") == "defrost"
    with pytest.raises(Exception, match="fridge_defrost_both"):
        db.execute("update vialwatch.fridge set defrost_for = '7 hours' "
                   "where id = %s", [f["fridge"]])
