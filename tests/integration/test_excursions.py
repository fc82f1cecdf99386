"""Excursions end to end: readings go in over MQTT for a sensor assigned to a
fridge; excursion rows, quarantined lots, outbox rows, the daily summary
and the monthly report come out.  Also restarts of the daemon in the middle
of an excursion or of a silence, the reference data changing under a
running daemon, the SQL function the daemon calls, and the vialwatchctl
commands fridges, assign, unassign and lots.

The expected figures are worked out here from the readings, by the rules
the SPEC and rules.c state, not by the daemon's code.
"""

import csv
import datetime
import io
import math
import re
import time
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from conftest import ctl_config
from servers import publish, run_ctl, wait_for

UTC = datetime.timezone.utc
CHICAGO = ZoneInfo("America/Chicago")
MINUTE = datetime.timedelta(minutes=1)
DAY = datetime.timedelta(days=1)
# Who assigns sensors in these tests, and why.
BY = ("--by", "dana@lakeview.example", "--reason", "probe placed")
SOURCES = {"source json": {"topic": "json/#", "format": "json",
                           "temperature": "/temp", "timestamp": "/ts"}}


# --- helpers --------------------------------------------------------------


def now():
    return datetime.datetime.now(UTC)


def rows(db, query, params=()):
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def insert(db, table, **columns):
    cols = list(columns)
    return db.execute(
        f"insert into vialwatch.{table} ({', '.join(cols)}) "
        f"values ({', '.join(['%s'] * len(cols))}) returning id",
        list(columns.values())).fetchone()[0]


def add_contacts(db, clinic):
    """Two active tier-1 contacts, an inactive one, and a tier-2 one."""
    return {
        "dana": insert(db, "contact", clinic_id=clinic, name="Dana Lee",
                       email="dana@lakeview.example", tier=1),
        "sam": insert(db, "contact", clinic_id=clinic, name="Sam Ortiz",
                      email="sam@lakeview.example", tier=1),
        "away": insert(db, "contact", clinic_id=clinic, name="Al Away",
                       email="al@lakeview.example", tier=1, active=False),
        "boss": insert(db, "contact", clinic_id=clinic, name="Kim Boss",
                       email="kim@lakeview.example", tier=2),
    }


def setup_fridge(db, key="json/lakeview/botox", **fridge_columns):
    """A Chicago clinic with contacts, a fridge, its sensor and two lots."""
    clinic = insert(db, "clinic", name="Lakeview Aesthetics",
                    timezone="America/Chicago")
    fridge = insert(db, "fridge", clinic_id=clinic, name="Botox fridge",
                    **fridge_columns)
    sensor = insert(db, "sensor", key=key, fridge_id=fridge)
    lots = [insert(db, "lot", fridge_id=fridge, product="Botox",
                   lot_number="C1234", expires_on=datetime.date(2030, 1, 31)),
            insert(db, "lot", fridge_id=fridge, product="Juvederm",
                   lot_number="J5")]
    return {"clinic": clinic, "fridge": fridge, "sensor": sensor,
            "key": key, "lots": lots, "contacts": add_contacts(db, clinic)}


def message(key, ts, temp):
    return (key, {"temp": temp, "ts": ts.astimezone(UTC).isoformat()})


def excursions(db, sensor, kind=None):
    return rows(db, "select * from vialwatch.excursion where sensor_id = %s "
                "and (%s::text is null or kind = %s) order by started_at, id",
                (sensor, kind, kind))


def wait_excursion(db, sensor, predicate, what, timeout=20, kind=None):
    def found():
        xs = excursions(db, sensor, kind)
        return xs if xs and predicate(xs) else None
    try:
        return wait_for(found, timeout, what)
    except TimeoutError as e:
        raise TimeoutError(f"{e}; rows: {excursions(db, sensor)}") from None


def notifications(db):
    return rows(db, "select * from vialwatch.notification order by id")


def keys_of(db):
    return {n["dedupe_key"] for n in notifications(db)}


def lot_status(db, lot):
    return db.execute("select status from vialwatch.lot where id = %s",
                      [lot]).fetchone()[0]


def linked_lots(db, excursion):
    return {r[0] for r in db.execute(
        "select lot_id from vialwatch.excursion_lot where excursion_id = %s",
        [excursion])}


def reading_count(db, sensor):
    return db.execute("select count(*) from vialwatch.reading "
                      "where sensor_id = %s", [sensor]).fetchone()[0]


def wait_loaded(d, sensors=None, loads=1):
    """Waits until the daemon loaded the sensors (loads times, or more)."""
    def ok():
        m = d.metrics()
        return (m.get("vialwatch_reference_loads_total", 0) >= loads and
                (sensors is None or
                 m.get("vialwatch_excursion_sensors") == sensors))
    return wait_for(ok, 20, f"{sensors} sensors loaded")


def expected_high(readings, high=8.0, hysteresis=0.5, delay=30):
    """The high excursions of time-ordered (ts, temp) readings, as the SPEC
    and rules.c define them: opened by the first reading above high, closed
    by the first at or below high - hysteresis, alarmed by the first reading
    delay minutes or more after the start; each reading's excess held until
    the next one."""
    out, start = [], None
    for i, (ts, t) in enumerate(readings):
        if start is None:
            if t > high:
                start = i
            continue
        if t > high - hysteresis:
            continue
        span = readings[start:i + 1]
        alarm = [r[0] for r in span[:-1]
                 if r[0] - span[0][0] >= delay * MINUTE]
        out.append({
            "started_at": span[0][0], "ended_at": ts,
            "alarmed_at": alarm[0] if alarm else None,
            "peak_c": max(r[1] for r in span[:-1]),
            "minutes_out": (ts - span[0][0]) / MINUTE,
            "degree_minutes": sum(max(0.0, a[1] - high) * ((b[0] - a[0]) / MINUTE)
                                  for a, b in zip(span, span[1:])),
        })
        start = None
    return out


def mkt(weighted):
    """Mean kinetic temperature (USP <1160>) of (minutes, temp_c) pairs."""
    total = sum(w for w, _ in weighted)
    s = sum(w * math.exp(-10000.0 / (t + 273.15)) for w, t in weighted)
    return 10000.0 / -math.log(s / total) - 273.15


@pytest.fixture
def ctl_conf(pg, tmp_path):
    return ctl_config(tmp_path / "ctl.conf", pg.conninfo("vialwatch"), tmp_path)


def ctl(ctl_conf, *args):
    return run_ctl(list(args), ctl_conf)


# --- a day of readings ----------------------------------------------------


# Yesterday's profile, by clinic-local wall time: a slow drift inside the
# range, a door opening (9.5 C for 10 minutes) and a real excursion whose
# tail stays inside the hysteresis band before it closes.
EXCURSION = [8.6, 9.2, 9.8, 10.4, 10.9, 11.2, 11.0, 10.5, 9.9, 9.3, 8.7, 8.3,
             7.9, 7.7]


def profile(local_ts):
    m = local_ts.hour * 60 + local_ts.minute
    if 9 * 60 <= m < 9 * 60 + 10:
        return 9.5
    if 14 * 60 <= m < 14 * 60 + 5 * len(EXCURSION):
        return EXCURSION[(m - 14 * 60) // 5]
    return round(4.5 + 0.8 * math.sin(2 * math.pi * m / 1440), 2)


def test_day_with_door_opening_and_excursion(daemon, db, mqtt_broker,
                                              ctl_conf):
    f = setup_fridge(db)
    other = insert(db, "fridge", clinic_id=f["clinic"], name="Vaccines")
    elsewhere = insert(db, "lot", fridge_id=other, product="Botox",
                       lot_number="C9999")
    gone = insert(db, "lot", fridge_id=f["fridge"], product="Botox",
                  lot_number="C0001", status="discarded")
    far = insert(db, "clinic", name="Praxis Mitte", timezone="Europe/Berlin")
    insert(db, "contact", clinic_id=far, name="Eva", email="eva@mitte.example")

    day = now().astimezone(CHICAGO).date() - DAY
    start = datetime.datetime(day.year, day.month, day.day, tzinfo=CHICAGO)
    end = datetime.datetime.combine(day + DAY, datetime.time(), CHICAGO)
    readings, ts = [], start.astimezone(UTC)
    while ts < end:
        readings.append((ts, profile(ts.astimezone(CHICAGO))))
        ts += 5 * MINUTE
    want = expected_high(readings)
    assert [w["alarmed_at"] is None for w in want] == [True, False]

    d = daemon(overrides=SOURCES)
    msgs = [message(f["key"], ts, t) for ts, t in readings]
    # A pause of more than a clock tick in the middle of the door opening:
    # its readings are a day old, and a tick must not take that for 30
    # minutes out of range (the broker delivering a backlog looks the same).
    door = [ts.astimezone(CHICAGO).time() for ts, _ in readings].index(
        datetime.time(9, 5)) + 1
    publish(mqtt_broker.port, msgs[:door])
    time.sleep(1.5)
    publish(mqtt_broker.port, msgs[door:])
    xs = wait_excursion(db, f["sensor"], lambda xs: len(xs) == 2 and all(
        x["ended_at"] for x in xs), "two closed excursions")
    wait_for(lambda: reading_count(db, f["sensor"]) == len(readings), 20,
             "the readings stored")

    door, real = xs
    for x, w in zip(xs, want):
        assert x["kind"] == "high" and x["fridge_id"] == f["fridge"]
        for col in ("started_at", "alarmed_at", "ended_at"):
            assert x[col] == w[col], (col, x, w)
        assert x["peak_c"] == w["peak_c"]
        assert x["minutes_out"] == pytest.approx(w["minutes_out"])
        assert x["degree_minutes"] == pytest.approx(w["degree_minutes"])
    # The door opening: 9.5 C from 09:00 to 09:10, recorded, not alarmed.
    assert door["started_at"].astimezone(CHICAGO).time() == datetime.time(9)
    assert door["minutes_out"] == 10 and door["degree_minutes"] == 15
    assert linked_lots(db, door["id"]) == set()
    # The excursion alarmed 30 minutes after it began, at 14:30.
    assert real["alarmed_at"] - real["started_at"] == 30 * MINUTE
    assert real["peak_c"] == 11.2

    # Its fridge's ok lots are quarantined and linked; no others.
    assert linked_lots(db, real["id"]) == set(f["lots"])
    assert [lot_status(db, lot) for lot in f["lots"]] == ["quarantined"] * 2
    assert lot_status(db, gone) == "discarded"
    assert lot_status(db, elsewhere) == "ok"

    # Alarm and recovery to the two active tier-1 contacts, nobody else.
    c = f["contacts"]
    expect = {f"excursion:{real['id']}:{what}:contact:{c[who]}"
              for what in ("alarm", "recovered") for who in ("dana", "sam")}
    wait_for(lambda: keys_of(db) == expect, 10, "4 notifications")
    # The outbox sends each once (test_outbox.py checks the emails).
    wait_for(lambda: all(n["status"] == "sent" for n in notifications(db)),
             20, "the 4 notifications sent")
    sent = {n["dedupe_key"]: n for n in notifications(db)}
    for n in sent.values():
        assert n["channel"] == "email" and n["attempts"] == 1
        assert n["excursion_id"] == real["id"]
        assert n["recipient"] in ("dana@lakeview.example",
                                  "sam@lakeview.example")
        assert "\n" not in n["subject"] and "\r" not in n["subject"]
    alarm = sent[f"excursion:{real['id']}:alarm:contact:{c['dana']}"]
    assert alarm["subject"].startswith("ALARM: Botox fridge "
                                       "(Lakeview Aesthetics) above 8.0")
    for text in ("Lakeview Aesthetics", "Botox fridge", "11.2 °C",
                 f"since {day} 14:00 (America/Chicago)", f"{day} 14:30",
                 "DO NOT USE", "Do not discard", "Call the manufacturer",
                 "Botox lot C1234, expires 2030-01-31",
                 "Juvederm lot J5", f["key"]):
        assert text in alarm["body"], text
    rec = sent[f"excursion:{real['id']}:recovered:contact:{c['sam']}"]
    assert rec["subject"] == ("Recovered: Botox fridge (Lakeview Aesthetics) "
                              "back in range after 1 h 10 min")
    assert f"Degree-minutes: {want[1]['degree_minutes']:.1f}" in rec["body"]
    assert "Botox lot C1234" in rec["body"] and "vialwatchctl lots" in rec["body"]

    # The day's summary, MKT computed here from the readings' durations.
    s = rows(db, "select * from vialwatch.daily_summary where fridge_id = %s "
             "and day = %s", (f["fridge"], day))[0]
    # Each reading stands for the time until the next one, at most
    # offline_after (30 min), cut at the end of the day.
    nexts = [ts for ts, _ in readings[1:]] + [end]
    weighted = [((min(b, end, a + 30 * MINUTE) - a) / MINUTE, t)
                for (a, t), b in zip(readings, nexts)]
    assert all(w == 5 for w, _ in weighted)
    assert s["readings"] == len(readings)
    assert s["max_c"] == 11.2 and s["min_c"] == min(t for _, t in readings)
    assert s["mkt_c"] == pytest.approx(mkt(weighted), abs=1e-9)
    assert s["minutes_out"] == pytest.approx(
        5 * sum(1 for _, t in readings if t > 8 or t < 2))

    # The month's report shows the day with both excursions.
    r = ctl(ctl_conf, "report", "--fridge", f["fridge"], "--month",
            day.strftime("%Y-%m"))
    assert r.returncode == 0, r.stderr
    row = [x for x in csv.DictReader(io.StringIO(r.stdout, newline=""))
           if x["date"] == str(day)][0]
    assert row["readings"] == str(len(readings))
    assert float(row["mkt_c"]) == pytest.approx(mkt(weighted), abs=0.0051)
    assert row["excursions"] == "2"
    assert row["excursion_kind"] == "high\nhigh"
    assert row["excursion_started"] == f"{day} 09:00\n{day} 14:00"
    assert row["excursion_ended"] == f"{day} 09:10\n{day} 15:10"
    assert row["excursion_peak_c"] == "9.50\n11.20"
    assert row["affected_lots"] == ("\nBotox C1234 (quarantined), "
                                    "Juvederm J5 (quarantined)")

    m = d.metrics()
    ev = 'vialwatch_excursion_events_total{event="%s"}'
    assert m[ev % "excursion.open"] == 2
    assert m[ev % "excursion.alarm"] == 1
    assert m[ev % "excursion.close"] == 2
    assert m[ev % "sensor.offline"] == 0
    assert m['vialwatch_excursions_open{kind="high"}'] == 0
    assert m["vialwatch_excursion_sensors"] == 1
    assert m["vialwatch_excursion_events_failed_total"] == 0
    wait_for(lambda: d.metric("vialwatch_excursion_events_pending") == 0, 10,
             "no event waiting")


# --- restarts -------------------------------------------------------------


def test_restart_during_excursion(daemon, db, mqtt_broker):
    """A pending excursion survives a restart and alarms when its readings
    reach the delay; an alarmed one survives another and closes: one row,
    one alarm, one recovery."""
    f = setup_fridge(db, high_delay=datetime.timedelta(minutes=10))
    t0 = now().replace(microsecond=0) - datetime.timedelta(hours=1)
    at = lambda m: t0 + m * MINUTE
    d = daemon(overrides=SOURCES)
    publish(mqtt_broker.port, [message(f["key"], at(0), 5.0),
                               message(f["key"], at(5), 9.0),
                               message(f["key"], at(10), 9.2)])
    wait_excursion(db, f["sensor"], lambda xs: xs[0]["minutes_out"] == 5,
                   "the pending excursion, 5 minutes out")
    assert d.stop() == 0
    (x,) = excursions(db, f["sensor"])
    assert x["alarmed_at"] is None and x["ended_at"] is None

    d.start()
    d.wait_healthy()
    publish(mqtt_broker.port, [message(f["key"], at(15), 9.4)])
    xs = wait_excursion(db, f["sensor"], lambda xs: xs[0]["alarmed_at"],
                        "the alarm after the restart")
    assert len(xs) == 1 and xs[0]["id"] == x["id"]
    assert xs[0]["alarmed_at"] == at(15)            # started + high_delay
    assert xs[0]["degree_minutes"] == pytest.approx(1.0 * 5 + 1.2 * 5)
    assert xs[0]["peak_c"] == 9.4
    assert linked_lots(db, x["id"]) == set(f["lots"])
    assert d.stop() == 0

    d.start()
    d.wait_healthy()
    publish(mqtt_broker.port, [message(f["key"], at(20), 9.6),
                               message(f["key"], at(25), 6.0)])
    xs = wait_excursion(db, f["sensor"], lambda xs: xs[-1]["ended_at"],
                        "the excursion closed")
    assert len(xs) == 1, "an excursion was opened twice"
    (x,) = xs
    assert x["ended_at"] == at(25) and x["alarmed_at"] == at(15)
    assert x["minutes_out"] == 20 and x["peak_c"] == 9.6
    # 9.0, 9.2, 9.4 and 9.6 each held for 5 minutes.
    assert x["degree_minutes"] == pytest.approx(5 * (1.0 + 1.2 + 1.4 + 1.6))
    c = f["contacts"]
    expect = {f"excursion:{x['id']}:{what}:contact:{c[who]}"
              for what in ("alarm", "recovered") for who in ("dana", "sam")}
    wait_for(lambda: keys_of(db) == expect, 10, "alarm and recovery, once")


def test_restart_pending_excursion_alarms_on_time(daemon, db, mqtt_broker):
    """With no further reading, the clock alarms a pending excursion at
    started_at + high_delay, although the daemon restarted meanwhile."""
    delay = datetime.timedelta(seconds=15)
    f = setup_fridge(db, high_delay=delay)
    d = daemon(overrides=SOURCES)
    wait_loaded(d, sensors=1)
    publish(mqtt_broker.port, [message(f["key"], now(), 9.0)])
    (x,) = wait_excursion(db, f["sensor"], lambda xs: True, "the excursion")
    assert d.stop() == 0
    restarted = now()
    assert restarted < x["started_at"] + delay, "too slow to test this"
    assert excursions(db, f["sensor"])[0]["alarmed_at"] is None

    d.start()
    d.wait_healthy()
    (x,) = wait_excursion(db, f["sensor"], lambda xs: xs[0]["alarmed_at"],
                          "the alarm", timeout=30)
    late = x["alarmed_at"] - (x["started_at"] + delay)
    assert datetime.timedelta(0) <= late < datetime.timedelta(seconds=4), x
    assert x["alarmed_at"] > restarted and x["ended_at"] is None
    assert linked_lots(db, x["id"]) == set(f["lots"])


def test_no_offline_alarm_for_the_daemons_downtime(daemon, db, mqtt_broker):
    """Stopped for longer than offline_after, the daemon raises no offline
    alarm at start, but does when the sensor stays silent offline_after
    after it; the next reading ends it."""
    f = setup_fridge(db, offline_after=datetime.timedelta(hours=1))
    d = daemon(overrides=SOURCES)
    publish(mqtt_broker.port, [message(f["key"], now(), 4.5)])
    wait_for(lambda: reading_count(db, f["sensor"]) == 1, 10, "the reading")
    assert d.stop() == 0
    last = db.execute("select received_at from vialwatch.reading "
                      "where sensor_id = %s", [f["sensor"]]).fetchone()[0]
    db.execute("set vialwatch.reason = 'a shorter offline_after'")
    db.execute("update vialwatch.fridge set offline_after = '5 seconds'")
    # Down for longer than offline_after: that is what is tested.
    time.sleep(max(0.0, 7 - (now() - last).total_seconds()))

    restarted = now()
    d.start()
    d.wait_healthy()
    (x,) = wait_excursion(db, f["sensor"], lambda xs: True,
                          "the offline excursion", kind="offline")
    assert x["started_at"] == last
    assert x["alarmed_at"] >= restarted + datetime.timedelta(seconds=4.5), (
        "offline raised for the daemon's own downtime")
    assert x["ended_at"] is None
    assert excursions(db, f["sensor"], "high") == []

    publish(mqtt_broker.port, [message(f["key"], now(), 4.6)])
    wait_excursion(db, f["sensor"], lambda xs: xs[0]["ended_at"],
                   "back online", kind="offline")
    c = f["contacts"]
    expect = {f"excursion:{x['id']}:{what}:contact:{c[who]}"
              for what in ("offline", "online") for who in ("dana", "sam")}
    wait_for(lambda: expect <= keys_of(db), 10, "offline and online notices")
    n = [n for n in notifications(db)
         if n["dedupe_key"] == f"excursion:{x['id']}:offline:contact:{c['dana']}"]
    assert n[0]["subject"] == ("OFFLINE: the sensor of Botox fridge "
                               "(Lakeview Aesthetics) is silent")
    assert f["key"] in n[0]["body"]


def test_database_down_at_start_judges_every_reading(daemon, db, pg,
                                                    mqtt_broker, smtp):
    """PostgreSQL is down when the daemon starts while 10,000 sensors
    report, more readings than the rules hold before their first load, and
    then one fridge goes beyond its critical bound: the daemon stops taking
    messages rather than leave readings unjudged, and once PostgreSQL is
    back that excursion exists, started at that reading, and its alarm
    email goes out once to each contact.  The outage lasts as long as the
    publishing takes (tens of seconds rather than 3 minutes): what matters
    is that the readings held for the rules outgrow their bound in it."""
    f = setup_fridge(db)
    t0 = now().replace(microsecond=0) - datetime.timedelta(minutes=30)
    # Long keys: 40,000 readings are more than the rules hold (8 MiB).
    pad = "x" * 180
    crowd = [message(f"json/clinic-{i % 50}/{pad}/{i:05d}",
                     t0 + datetime.timedelta(seconds=r), 4.0)
             for r in range(4) for i in range(10000)]
    hot = t0 + datetime.timedelta(minutes=5)
    db.close()
    pg.stop()
    try:
        d = daemon(overrides=SOURCES, wait=False)
        d.wait_http()
        publish(mqtt_broker.port, crowd + [message(f["key"], hot, 13.0)])
        d.wait_log("not reading from the broker until they are", timeout=30)
        assert d.metric("vialwatch_excursion_events_dropped_total") == 0
    finally:
        pg.start()
    with pg.connect("vialwatch") as conn:
        (x,) = wait_excursion(conn, f["sensor"], lambda xs: xs[0]["alarmed_at"],
                              "the critical excursion", timeout=90)
        assert x["started_at"] == hot and x["alarmed_at"] == hot
        assert x["kind"] == "high" and x["peak_c"] == 13.0
        c = f["contacts"]
        alarms = {f"excursion:{x['id']}:alarm:contact:{c[who]}"
                  for who in ("dana", "sam")}
        wait_for(lambda: alarms <= keys_of(conn) and all(
            n["status"] == "sent" for n in notifications(conn)), 30,
            "the alarm emails sent")
        assert len(notifications(conn)) == 2
    msgs = smtp.wait_messages(2)
    assert sorted(r for m in msgs for r in m.envelope_to) == [
        "dana@lakeview.example", "sam@lakeview.example"]
    assert all(m["Subject"].startswith("ALARM") for m in msgs), [
        m["Subject"] for m in msgs]
    d.check_alive()


def test_spooled_reading_judged_after_sigkill(daemon, db, pg, mqtt_broker):
    """A critical reading is taken from the broker, but the daemon is
    killed with SIGKILL before the database has the reading or its
    excursion: started again, it stores the reading from the spool and
    judges it too, so the excursion exists, started at that reading."""
    f = setup_fridge(db)
    d = daemon(overrides=SOURCES)
    wait_loaded(d, sensors=1)
    hot = now().replace(microsecond=0) - datetime.timedelta(minutes=2)
    with pg.connect("vialwatch", autocommit=False) as lock:
        lock.execute("lock table vialwatch.reading, vialwatch.excursion "
                     "in share mode")
        publish(mqtt_broker.port, [message(f["key"], hot, 13.0)])
        wait_for(lambda: d.metric("vialwatch_excursion_events_pending") >= 1
                 and d.metric("vialwatch_readings_pending") >= 1, 10,
                 "the reading and its events waiting for the database")
        d.kill()
        # Its connections go with it, before they can do what they waited
        # to do.
        db.execute("select pg_terminate_backend(pid) from "
                   "pg_stat_activity where application_name like "
                   "'vialwatchd%'")
        wait_for(lambda: db.execute(
            "select count(*) from pg_stat_activity where application_name "
            "like 'vialwatchd%'").fetchone()[0] == 0, 10,
            "the daemon's connections gone")
        lock.rollback()
    assert excursions(db, f["sensor"]) == []
    assert reading_count(db, f["sensor"]) == 0

    d.start()
    d.wait_healthy()
    (x,) = wait_excursion(db, f["sensor"], lambda xs: xs[0]["alarmed_at"],
                          "the excursion of the spooled reading")
    assert x["started_at"] == hot and x["peak_c"] == 13.0
    wait_for(lambda: reading_count(db, f["sensor"]) == 1, 10,
             "the spooled reading stored once")
    c = f["contacts"]
    alarms = {f"excursion:{x['id']}:alarm:contact:{c[who]}"
              for who in ("dana", "sam")}
    wait_for(lambda: alarms <= keys_of(db), 10, "the alarm notifications")


def test_events_kept_over_a_stop(daemon, db, pg, mqtt_broker):
    """The database takes the readings but not the excursion events, and
    the daemon is stopped: after its 10 s it exits saying so, keeps the
    events, and writes them at the next start, before loading the sensors:
    the excursion exists, alarmed, started at its reading."""
    f = setup_fridge(db)
    d = daemon(overrides=SOURCES)
    wait_loaded(d, sensors=1)
    hot = now().replace(microsecond=0) - datetime.timedelta(minutes=2)
    with pg.connect("vialwatch", autocommit=False) as lock:
        lock.execute("lock table vialwatch.excursion in share mode")
        publish(mqtt_broker.port, [message(f["key"], hot, 13.0)])
        wait_for(lambda: reading_count(db, f["sensor"]) == 1
                 and d.metric("vialwatch_excursion_events_pending") >= 1, 10,
                 "the reading stored, its events waiting")
        assert d.stop(timeout=30) == 1
        # The statement its connection waited on goes with it.
        db.execute("select pg_terminate_backend(pid) from "
                   "pg_stat_activity where application_name like "
                   "'vialwatchd%'")
        lock.rollback()
    assert "they are sent at the next start" in d.log_text()
    assert excursions(db, f["sensor"]) == []

    d.start()
    d.wait_healthy()
    (x,) = wait_excursion(db, f["sensor"], lambda xs: xs[0]["alarmed_at"],
                          "the excursion kept over the stop")
    assert x["started_at"] == hot and x["alarmed_at"] == hot
    assert "events of the last run are queued again" in d.log_text()
    c = f["contacts"]
    alarms = {f"excursion:{x['id']}:alarm:contact:{c[who]}"
              for who in ("dana", "sam")}
    wait_for(lambda: alarms <= keys_of(db), 10, "the alarm notifications")


# --- reference data -------------------------------------------------------


def test_assign_and_unassign_without_restart(daemon, db, mqtt_broker,
                                             ctl_conf):
    f = setup_fridge(db)
    key = "json/lakeview/new-probe"
    d = daemon(overrides=SOURCES)
    wait_loaded(d, sensors=1)
    loads = d.metric("vialwatch_reference_loads_total")
    t0 = now().replace(microsecond=0) - 10 * MINUTE
    # Beyond the critical bound, but the probe is on no fridge yet.
    publish(mqtt_broker.port, [message(key, t0, 13.0)])
    wait_for(lambda: db.execute("select count(*) from vialwatch.reading r "
                                "join vialwatch.sensor s on s.id = r.sensor_id "
                                "where s.key = %s", [key]).fetchone()[0] == 1,
             10, "the reading of the new probe")
    probe = db.execute("select id from vialwatch.sensor where key = %s",
                       [key]).fetchone()[0]
    assert excursions(db, probe) == []

    r = ctl(ctl_conf, "assign", key, f["fridge"], *BY)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f"sensor {probe} ({key}) assigned to fridge "
                        f"{f['fridge']} (Lakeview Aesthetics / Botox fridge)\n")
    wait_loaded(d, sensors=2, loads=loads + 1)
    # Registering the probe and storing its readings reloaded nothing.
    assert d.metric("vialwatch_reference_loads_total") == loads + 1

    publish(mqtt_broker.port, [message(key, t0 + MINUTE, 13.0)])
    (x,) = wait_excursion(db, probe, lambda xs: xs[0]["alarmed_at"],
                          "the critical alarm")
    assert x["started_at"] == x["alarmed_at"] == t0 + MINUTE
    assert x["fridge_id"] == f["fridge"]
    assert linked_lots(db, x["id"]) == set(f["lots"])

    # Taken off the fridge: its open excursion ends at its last reading.
    r = ctl(ctl_conf, "unassign", key, *BY)
    assert r.returncode == 0, r.stderr
    assert "taken off fridge" in r.stdout
    (x,) = wait_excursion(db, probe, lambda xs: xs[0]["ended_at"],
                          "the excursion closed by the unassignment")
    assert x["ended_at"] == t0 + MINUTE
    wait_loaded(d, sensors=1)
    assert d.metrics()['vialwatch_excursions_open{kind="high"}'] == 0

    # SIGHUP loads them again too.
    loads = d.metric("vialwatch_reference_loads_total")
    d.reload()
    wait_loaded(d, sensors=1, loads=loads + 1)


def test_reference_changes_notify(pg, db, clean_db):
    """The triggers notify changes of what the daemon holds, and not the
    updates that ingest makes to vialwatch.sensor all the time."""
    got = []
    with psycopg.connect(pg.conninfo("vialwatch"), autocommit=True) as listener:
        listener.add_notify_handler(lambda n: got.append(n.payload))
        listener.execute("listen vialwatch_reference")

        def next_notices():
            wait_for(lambda: listener.execute("select 1") and got, 5,
                     "a notification")
            out = list(got)
            got.clear()
            return out

        clinic = insert(db, "clinic", name="C", timezone="UTC")
        fridge = insert(db, "fridge", clinic_id=clinic, name="F")
        assert next_notices() == ["fridge"]
        # What ingest does: register unassigned sensors, update them.
        db.execute("insert into vialwatch.sensor as s (key, source) "
                   "values ('a', 'json'), ('b', 'json') on conflict (key) "
                   "do update set last_seen = excluded.last_seen")
        db.execute("insert into vialwatch.sensor as s (key, source) "
                   "values ('a', 'json') on conflict (key) "
                   "do update set last_seen = now()")
        db.execute("update vialwatch.sensor set battery = 50, battery_at = "
                   "now(), offline_since = null, last_seen = now()")
        # Assignments and limits need a reason.
        db.execute("set vialwatch.reason = 'moved'")
        db.execute("update vialwatch.sensor set fridge_id = null")
        # Then an admin assigns one: only that is heard.
        db.execute("update vialwatch.sensor set fridge_id = %s where key = 'a'",
                   [fridge])
        assert next_notices() == ["sensor"]
        db.execute("update vialwatch.fridge set high_c = 7.5")
        assert next_notices() == ["fridge"]
        db.execute("insert into vialwatch.sensor (key, fridge_id) "
                   "values ('c', %s)", [fridge])
        assert next_notices() == ["sensor"]
        db.execute("delete from vialwatch.sensor where key = 'b'")
        db.execute("delete from vialwatch.sensor where key = 'c'")
        assert next_notices() == ["sensor"]


# --- the SQL function -----------------------------------------------------


def event(db, name, f, kind, started, alarmed=None, ended=None, peak=None,
          minutes=0, dm=0, temp=None, battery=None):
    return db.execute(
        "select vialwatch.excursion_event(%s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, %s, %s)", [name, f["fridge"], f["sensor"], kind, started,
                         alarmed, ended, peak, minutes, dm, temp, battery]
    ).fetchone()[0]


def test_excursion_event_replayed(db, clean_db):
    """As the daemon's role: an event sent twice, or an older one after a
    newer one, changes nothing; a new excursion ends a stale open one."""
    f = setup_fridge(db)
    t = datetime.datetime(2026, 3, 1, 14, tzinfo=UTC)
    db.execute("set role vialwatch_daemon")
    try:
        x = event(db, "excursion.open", f, "high", t, peak=9.0, temp=9.0)
        for _ in range(2):
            assert event(db, "excursion.alarm", f, "high", t, t + 30 * MINUTE,
                         peak=11.0, minutes=30, dm=60, temp=10.5) == x
        # An update older than the alarm, sent late.
        event(db, "excursion.update", f, "high", t, peak=9.5, minutes=20,
              dm=30, temp=9.5)
        for _ in range(2):
            event(db, "excursion.close", f, "high", t, t + 30 * MINUTE,
                  t + 45 * MINUTE, peak=11.0, minutes=45, dm=80, temp=6.0)
        # A battery warning is a point in time, once.
        for _ in range(2):
            b = event(db, "battery.low", f, "battery", t, t, t, battery=15)
    finally:
        db.execute("reset role")
    xs = excursions(db, f["sensor"])
    assert [(r["id"], r["kind"]) for r in xs] == [(x, "high"), (b, "battery")]
    assert xs[0]["alarmed_at"] == t + 30 * MINUTE
    assert xs[0]["ended_at"] == t + 45 * MINUTE
    assert (xs[0]["peak_c"], xs[0]["minutes_out"], xs[0]["degree_minutes"]) \
        == (11.0, 45, 80)
    c = f["contacts"]
    assert keys_of(db) == {
        f"excursion:{x}:{what}:contact:{c[who]}" for who in ("dana", "sam")
        for what in ("alarm", "recovered")} | {
        f"excursion:{b}:battery:contact:{c[who]}" for who in ("dana", "sam")}
    assert linked_lots(db, x) == set(f["lots"])
    battery = [n for n in notifications(db) if n["excursion_id"] == b][0]
    assert battery["subject"] == ("Battery low: the sensor of Botox fridge "
                                  "(Lakeview Aesthetics) at 15 %")

    # An open row whose close was lost ends where it was last seen.
    event(db, "excursion.open", f, "low", t + DAY, peak=1.5, temp=1.5)
    event(db, "excursion.update", f, "low", t + DAY, peak=1.0, minutes=10,
          dm=5, temp=1.0)
    y = event(db, "excursion.open", f, "high", t + 2 * DAY, peak=9.0)
    stale, new = excursions(db, f["sensor"])[2:]
    assert stale["kind"] == "low" and stale["ended_at"] == t + DAY + 10 * MINUTE
    assert new["id"] == y and new["ended_at"] is None

    with pytest.raises(psycopg.errors.UniqueViolation):
        insert(db, "excursion", fridge_id=f["fridge"], sensor_id=f["sensor"],
               kind="high", started_at=t + 3 * DAY)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        event(db, "excursion.explode", f, "high", t)


# --- vialwatchctl ---------------------------------------------------------


def test_ctl_fridges_and_assign(db, clean_db, ctl_conf):
    f = setup_fridge(db, key="zigbee2mqtt/botox")
    freezer = insert(db, "fridge", clinic_id=f["clinic"], name="Freezer",
                     kind="freezer", offline_after=datetime.timedelta(hours=2))
    other = insert(db, "sensor", key="tele/x/SENSOR/DS18B20")
    # A key that is also the id of another sensor.
    probe = insert(db, "sensor", key=str(other))

    r = ctl(ctl_conf, "fridges")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "CLINIC", "FRIDGE", "KIND", "RANGE_C",
                                "CRITICAL_C", "DELAY_LOW/HIGH", "OFFLINE_AFTER",
                                "SENSORS", "STATE"]
    assert re.search(rf"^{f['fridge']} +Lakeview Aesthetics +Botox fridge +"
                     r"fridge +2 to 8 +0 / 12 +15m / 30m +30m +"
                     r"zigbee2mqtt/botox +no data$", r.stdout, re.M), r.stdout
    assert re.search(rf"^{freezer} +Lakeview Aesthetics +Freezer +freezer +"
                     r"-50 to -15 +-60 / -10 +15m / 30m +2h +- +no data$",
                     r.stdout, re.M), r.stdout
    assert lines[-1] == "2 fridges"

    # By key, moved, by id, already there, taken off.
    r = ctl(ctl_conf, "assign", "tele/x/SENSOR/DS18B20", freezer, *BY)
    assert (r.returncode, r.stdout) == (0, (
        f"sensor {other} (tele/x/SENSOR/DS18B20) assigned to fridge "
        f"{freezer} (Lakeview Aesthetics / Freezer)\n")), r.stderr
    r = ctl(ctl_conf, "assign", "tele/x/SENSOR/DS18B20", f["fridge"], *BY)
    assert r.stdout == (f"sensor {other} (tele/x/SENSOR/DS18B20) moved from "
                        f"fridge {freezer} (Lakeview Aesthetics / Freezer) to "
                        f"fridge {f['fridge']} (Lakeview Aesthetics / Botox "
                        "fridge)\n")
    r = ctl(ctl_conf, "assign", probe, f["fridge"], *BY)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"sensor {probe} ({other}) assigned")
    r = ctl(ctl_conf, "assign", probe, f["fridge"], *BY)
    assert r.returncode == 0 and "already" in r.stdout
    r = ctl(ctl_conf, "assign", probe, "--none", *BY)
    assert r.returncode == 0 and "taken off fridge" in r.stdout
    r = ctl(ctl_conf, "unassign", probe, *BY)
    assert r.returncode == 0 and r.stdout.endswith("has no fridge\n")
    assert db.execute("select fridge_id from vialwatch.sensor where id = %s",
                      [probe]).fetchone()[0] is None
    assert db.execute("select fridge_id from vialwatch.sensor where id = %s",
                      [other]).fetchone()[0] == f["fridge"]

    for args, err in [
            (["assign", "nope/nope", f["fridge"]], 'no sensor with key or id '
             '"nope/nope"'),
            (["assign", probe, "999999"], "no fridge with id 999999"),
            (["assign", probe, "fridge"], 'bad fridge id "fridge"'),
            (["unassign", "999999"], 'no sensor with key or id "999999"'),
            (["unassign", other], f'"{other}" is the key of one sensor and '
             'the id of another'),
    ]:
        r = ctl(ctl_conf, *args, *BY)
        assert r.returncode == 1 and err in r.stderr, (args, r.stderr)
        assert r.stdout == ""
    r = ctl(ctl_conf, "assign", "extra")
    assert r.returncode == 2 and "wrong number of arguments" in r.stderr


def test_ctl_lots(db, clean_db, ctl_conf):
    f = setup_fridge(db)
    other = insert(db, "fridge", clinic_id=f["clinic"], name="Vaccines")
    fine = insert(db, "lot", fridge_id=other, product="Varivax",
                  lot_number="V1", quantity=10)
    x = event(db, "excursion.open", f, "high", now() - DAY, now() - DAY,
              peak=13)
    botox, juvederm = f["lots"]
    assert lot_status(db, botox) == "quarantined"

    r = ctl(ctl_conf, "lots")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split() == [
        "ID", "FRIDGE", "PRODUCT", "LOT", "EXPIRES", "QUANTITY", "STATUS",
        "EXCURSIONS", "DECISION"]
    assert re.search(rf"^{botox} +Lakeview Aesthetics / Botox fridge +Botox +"
                     rf"C1234 +2030-01-31 +- +quarantined +{x} +-$",
                     r.stdout, re.M), r.stdout
    r = ctl(ctl_conf, "lots", "--fridge", other)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    assert re.search(rf"^{fine} .* Varivax +V1 +- +10 +ok +- +-$", r.stdout,
                     re.M), r.stdout

    r = ctl(ctl_conf, "lots", "release", botox, "--by", "dana@lakeview.example",
            "--note",
            "Allergan: stability data cover 11 C for 1 h; OK to use")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"lot {botox} (Botox C1234) released by Dana Lee\n"
    lot = rows(db, "select * from vialwatch.lot where id = %s", (botox,))[0]
    assert lot["status"] == "released" and lot["decided_by"] == "Dana Lee"
    assert lot["decision_note"].startswith("Allergan: stability")
    assert now() - lot["decided_at"] < datetime.timedelta(minutes=1)
    r = ctl(ctl_conf, "lots", "discard", juvederm, "--note", "no data",
            "--by", "sam@lakeview.example")
    assert r.returncode == 0 and lot_status(db, juvederm) == "discarded"
    r = ctl(ctl_conf, "lots", "--fridge", f["fridge"])
    assert "Dana Lee, " in r.stdout and ": Allergan: stability" in r.stdout

    usage = ("--by WHO and --note TEXT are required", "which lot?")
    for args, err in [
            (["lots", "release", botox, "--by", "2", "--note", "again"],
             f"lot {botox} (Botox C1234) is released (by Dana Lee), not "
             "quarantined: only a quarantined lot can be released"),
            (["lots", "discard", fine, "--by", "2", "--note", "y"],
             f"lot {fine} (Varivax V1) is ok, not quarantined"),
            (["lots", "discard", "999999", "--by", "2", "--note", "y"],
             "no lot with id 999999"),
            (["lots", "discard", "abc", "--by", "2", "--note", "y"],
             'bad lot id "abc"'),
            (["lots", "release", botox, "--by", "2"],
             "--by WHO and --note TEXT are required"),
            (["lots", "release", botox, "--by", " ", "--note", "y"],
             "--by WHO and --note TEXT are required"),
            (["lots", "release"], "which lot?"),
            (["lots", "--fridge", "999999"], "no fridge with id 999999"),
    ]:
        r = ctl(ctl_conf, *args)
        assert r.returncode == (2 if err in usage else 1), (args, r.stderr)
        assert err in r.stderr, (args, r.stderr)
    assert lot_status(db, fine) == "ok"
    assert lot_status(db, botox) == "released"
