"""Several daemons on one broker and one database (docs/SCALING.md): two
sharded by clinic topic filters (zigbee2mqtt/clinic-a/# and
zigbee2mqtt/clinic-b/#) and a pool of two sharing an MQTT v5 shared
subscription ($share/vw/zigbee2mqtt/pool/#).  Every reading is received by
one daemon and stored once, each alarm email and the due reminder are sent
once.
"""

import datetime
import time

from servers import publish, wait_for
from test_excursions import insert, now, rows
from test_outbox import secret, wait_sent  # noqa: F401 (fixture)

FEEDS = ("clinic-a", "clinic-b", "pool")
RECEIVED = 'vialwatch_mqtt_messages_received_total{source="z2m"}'
SENSORS = 3             # per feed; the first is in the clinic's fridge
READINGS = 20           # per sensor


def z2m(feed, sensor, ts, temp):
    return (f"zigbee2mqtt/{feed}/sensor-{sensor}",
            {"temperature": temp, "humidity": 40.0,
             "last_seen": ts.isoformat()})


def setup_clinic(db, feed, offline_after="30 minutes"):
    """A clinic with two contacts and a fridge watched by its first
    sensor; the other sensors are unassigned."""
    clinic = insert(db, "clinic", name=f"Clinic {feed}",
                    timezone="America/Chicago")
    for who in ("dana", "sam"):
        insert(db, "contact", clinic_id=clinic, name=f"{who} {feed}",
               email=f"{who}@{feed}.example", tier=1)
    fridge = insert(db, "fridge", clinic_id=clinic, name=f"Fridge {feed}",
                    offline_after=offline_after)
    insert(db, "sensor", key=f"zigbee2mqtt/{feed}/sensor-0", fridge_id=fridge)
    return clinic


def offline_keys(db):
    return [r["key"] for r in rows(
        db, "select s.key from vialwatch.excursion e join vialwatch.sensor s"
        " on s.id = e.sensor_id where e.kind = 'offline' order by s.key")]


def heartbeat_until(mqtt_broker, feeds, done, timeout=30, offline_after=4):
    """Every second, a reading of sensor-0 of each feed, until done() and
    then for two offline_after periods more, in which an offline alarm
    that should not be would be raised too; the deadline is timeout."""
    deadline = time.monotonic() + timeout
    until = None
    while until is None or time.monotonic() < until:
        publish(mqtt_broker.port, [z2m(feed, 0, now(), 5.0)
                                   for feed in feeds])
        if until is None and done():
            until = time.monotonic() + 2 * offline_after
        if until is None and time.monotonic() > deadline:
            raise TimeoutError(f"nothing done after {timeout} s")
        time.sleep(1)           # the feed's pace, not a wait


def start(daemon, secret, topic, watch="own", **sections):
    return daemon(overrides={"source z2m": {"topic": topic,
                                            "format": "zigbee2mqtt"}},
                  http={"secret_file": secret},
                  alerts={"escalate_after": "1h", "repeat_every": "2h",
                          "watch": watch},
                  reminders={"scan_interval": "1s",
                             "send_window": "00:00-24:00"},
                  **sections)


def shards(daemon, secret):
    """{feed: [daemons]}: a and b sharded by clinic, a pool of two."""
    return {
        "clinic-a": [start(daemon, secret, "zigbee2mqtt/clinic-a/#")],
        "clinic-b": [start(daemon, secret, "zigbee2mqtt/clinic-b/#")],
        "pool": [start(daemon, secret, "$share/vw/zigbee2mqtt/pool/#"),
                 start(daemon, secret, "$share/vw/zigbee2mqtt/pool/#")],
    }


def subscribed(mqtt_broker, groups):
    """Publishes probe readings until every daemon has received one (the
    pool's shared subscription gives each message to one member); returns
    the number of probes published per feed."""
    probes = dict.fromkeys(groups, 0)

    def all_received():
        for feed, ds in groups.items():
            if any((d.metric(RECEIVED) or 0) == 0 for d in ds):
                probes[feed] += 1
                publish(mqtt_broker.port,
                        [z2m(feed, "probe", now(), 5.0)])
        return all((d.metric(RECEIVED) or 0) > 0
                   for ds in groups.values() for d in ds)

    wait_for(all_received, 30, "every daemon subscribed", interval=0.2)
    return probes


def stored(db, key):
    return db.execute("select count(*), count(distinct ts) from "
                      "vialwatch.reading r join vialwatch.sensor s "
                      "on s.id = r.sensor_id where s.key = %s",
                      [key]).fetchone()


def test_sharded_and_pooled_daemons_store_and_send_once(
        daemon, db, mqtt_broker, smtp, secret):
    for feed in FEEDS:
        setup_clinic(db, feed)
    # A due reminder: Botox 95 days ago, with consent.
    clinic = insert(db, "clinic", name="Reminder clinic",
                    timezone="Europe/Berlin")
    patient = insert(db, "patient", clinic_id=clinic, external_ref="P-1",
                     first_name="Ana", last_name="Doe",
                     email="ana@patients.example", email_consent=True)
    insert(db, "treatment", patient_id=patient, product="Botox",
           area="glabella",
           treated_at=now() - datetime.timedelta(days=95))

    groups = shards(daemon, secret)
    everyone = [d for ds in groups.values() for d in ds]
    probes = subscribed(mqtt_broker, groups)
    before = {id(d): d.metric(RECEIVED) for d in everyone}

    t0 = now().replace(microsecond=0) - datetime.timedelta(minutes=30)
    for feed in FEEDS:
        msgs = [z2m(feed, s, t0 + datetime.timedelta(seconds=60 * i + s), 5.0)
                for i in range(READINGS) for s in range(SENSORS)]
        msgs.append(z2m(feed, 0, now(), 14.0))      # critical: alarm now
        publish(mqtt_broker.port, msgs)
    want = {f"zigbee2mqtt/{feed}/sensor-{s}":
            READINGS + (1 if s == 0 else 0)
            for feed in FEEDS for s in range(SENSORS)}

    def all_stored():
        return all(stored(db, k) == (n, n) for k, n in want.items())
    wait_for(all_stored, 30, "every reading stored")

    # Each message reached exactly one daemon, of its feed's group.
    for feed, ds in groups.items():
        got = [d.metric(RECEIVED) - before[id(d)] for d in ds]
        assert sum(got) == READINGS * SENSORS + 1, (feed, got)
        assert all(n > 0 for n in got), (feed, got)   # the pool shares
        assert stored(db, f"zigbee2mqtt/{feed}/sensor-probe")[0] == \
            probes[feed]
    assert sum(d.metric("vialwatch_readings_duplicate_total") or 0
               for d in everyone) == 0

    # Six alarm emails (two contacts of three clinics) and the reminder,
    # each sent once.
    msgs = wait_sent(db, smtp, everyone, 7)
    assert sorted(r for m in msgs for r in m.envelope_to) == sorted(
        [f"{who}@{feed}.example" for feed in FEEDS
         for who in ("dana", "sam")] + ["ana@patients.example"])
    assert len(rows(db, "select * from vialwatch.excursion "
                    "where alarmed_at is not null")) == 3
    (r,) = rows(db, "select status from vialwatch.reminder")
    assert r["status"] == "sent"
    sent = sum(d.metric('vialwatch_notifications_total{channel="email",'
                        'status="sent"}') or 0 for d in everyone)
    assert sent == 7


def test_sharded_daemon_judges_only_its_own_sensors(
        daemon, db, mqtt_broker, secret):
    """With watch = own, each shard watches the sensors its filter can
    deliver: clinic b's
    sensor, heard only by daemon b, is not offline to daemon a, while a
    silent sensor of clinic a goes offline once, raised by daemon a."""
    clinics = {feed: setup_clinic(db, feed, offline_after="4 seconds")
               for feed in ("clinic-a", "clinic-b")}
    silent = insert(db, "fridge", clinic_id=clinics["clinic-a"],
                    name="Silent fridge", offline_after="4 seconds")
    insert(db, "sensor", key="zigbee2mqtt/clinic-a/silent",
           fridge_id=silent)
    groups = {feed: [start(daemon, secret, f"zigbee2mqtt/{feed}/#")]
              for feed in ("clinic-a", "clinic-b")}
    subscribed(mqtt_broker, groups)
    heartbeat_until(mqtt_broker, list(groups),
                    lambda: "zigbee2mqtt/clinic-a/silent" in offline_keys(db))
    assert offline_keys(db) == ["zigbee2mqtt/clinic-a/silent"]
    (a,), (b,) = groups["clinic-a"], groups["clinic-b"]
    assert "watch = own: 1 assigned sensor (such as " \
        "zigbee2mqtt/clinic-b/sensor-0) matches no [source] filter of " \
        "this daemon" in a.log_text()
    assert "2 assigned sensors (such as zigbee2mqtt/clinic-a/" in b.log_text()


def test_default_watch_alarms_a_sensor_no_filter_delivers(
        daemon, db, mqtt_broker, secret):
    """With watch = all (the default), a daemon also watches an assigned
    sensor none of its filters can deliver: a key typed wrong, or a filter
    narrowed, still ends in an offline alarm, not in silence."""
    for feed in ("clinic-a", "clinic-b"):
        setup_clinic(db, feed, offline_after="4 seconds")
    groups = {"clinic-a": [start(daemon, secret, "zigbee2mqtt/clinic-a/#",
                                 watch="all")]}
    subscribed(mqtt_broker, groups)
    heartbeat_until(mqtt_broker, ["clinic-a"],
                    lambda: "zigbee2mqtt/clinic-b/sensor-0" in offline_keys(db))
    assert offline_keys(db) == ["zigbee2mqtt/clinic-b/sensor-0"]
    assert "watch = own" not in groups["clinic-a"][0].log_text()
