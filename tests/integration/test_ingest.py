"""Ingest as an admin sees it with psql: MQTT messages of every payload
format go in over the real broker; rows in vialwatch.reading,
vialwatch.sensor and vialwatch.rejected_message come out.  Also bad
input, duplicates, and the broker or the database going away mid-stream.

The payloads are the examples of SPEC.md "Payload formats"; the sensor keys
asserted are exactly those the SPEC's table gives.
"""

import collections
import datetime
import json
import os
import random
import signal
import socket
import struct
import time

import pytest
from psycopg.rows import dict_row

from servers import metric_total, publish, wait_for

UTC = datetime.timezone.utc
SLACK = datetime.timedelta(seconds=2)

# One [source] per payload format, on topics that do not overlap (a message
# matching two subscriptions would be delivered twice).
SOURCES = {
    "source z2m": {"topic": "zigbee2mqtt/#", "format": "zigbee2mqtt"},
    "source tasmota": {"topic": "tele/#", "format": "tasmota"},
    "source shelly": {"topic": "shellies/#", "format": "shelly"},
    "source shelly2": {"topic": "gen2/#", "format": "shelly-gen2"},
    "source esp": {"topic": "clinic-esp/#", "format": "esphome"},
    "source ha": {"topic": "homeassistant/#", "format": "homeassistant"},
    "source num": {"topic": "lab/#", "format": "number"},
    "source ttn": {"topic": "v3/clinic-app/devices/+/up", "format": "ttn"},
    "source ttn-tenant": {"topic": "v3/clinic-app@ttn/devices/+/up",
                          "format": "ttn"},
    "source lht65": {"topic": "v3/cold-app/devices/+/up", "format": "ttn",
                     "temperature": "TempC_SHT"},
    "source json": {"topic": "json/#", "format": "json",
                    "temperature": "/data/temp", "timestamp": "/data/time"},
    "source usa": {"topic": "usa/#", "format": "number", "unit": "F"},
}


@pytest.fixture
def ingest(daemon):
    """A healthy daemon with one [source] per payload format."""
    return daemon(overrides=SOURCES)


# --- helpers --------------------------------------------------------------


def now():
    return datetime.datetime.now(UTC)


def rfc3339(dt, offset_hours=0):
    """dt as RFC 3339 with milliseconds, in a zone offset_hours east."""
    tz = datetime.timezone(datetime.timedelta(hours=offset_hours))
    return dt.astimezone(tz).isoformat(timespec="milliseconds")


def rows(db, query, params=()):
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def readings(db, key):
    """The readings of sensor key, oldest first."""
    return rows(db, "select r.ts, r.temp_c, r.humidity, r.battery, "
                "r.received_at from vialwatch.reading r "
                "join vialwatch.sensor s on s.id = r.sensor_id "
                "where s.key = %s order by r.ts", (key,))


def sensor(db, key):
    found = rows(db, "select * from vialwatch.sensor where key = %s", (key,))
    return found[0] if found else None


def sensor_keys(db):
    return {r["key"] for r in rows(db, "select key from vialwatch.sensor")}


def rejected(db):
    return rows(db, "select * from vialwatch.rejected_message order by id")


def wait_readings(db, expected, timeout=10):
    """Waits until each key of {key: n} has n readings; returns
    {key: rows}.  More rows than expected fail at once."""
    def enough():
        got = {k: readings(db, k) for k in expected}
        for k, n in expected.items():
            assert len(got[k]) <= n, f"{k}: {len(got[k])} readings: {got[k]}"
        done = all(len(got[k]) == n for k, n in expected.items())
        return got if done else None

    try:
        return wait_for(enough, timeout, f"readings {expected}")
    except TimeoutError as e:
        found = rows(db, "select s.key, count(r.ts) as n, min(r.ts) as first "
                     "from vialwatch.sensor s left join vialwatch.reading r "
                     "on r.sensor_id = s.id group by s.key order by s.key")
        raise TimeoutError(f"{e}; readings per sensor: {found}; rejected: "
                           f"{rejected(db)}") from None


def assert_temp(row, celsius):
    assert row["temp_c"] == pytest.approx(celsius, abs=0.005), row


def assert_arrival_time(row, t0, t1):
    """A payload without a time (or one without a zone): the arrival time."""
    assert abs(row["ts"] - row["received_at"]) < datetime.timedelta(
        seconds=1), row
    assert t0 - SLACK <= row["ts"] <= t1 + SLACK, (t0, row, t1)


def assert_registered(db, keys, source, t0):
    """Each key is a sensor of source, claimed by no fridge, seen just now."""
    t1 = now()
    for key in keys:
        s = sensor(db, key)
        assert s is not None, f"sensor {key!r} not registered"
        assert s["fridge_id"] is None, s
        assert s["source"] == source, s
        assert t0 - SLACK <= s["last_seen"] <= t1 + SLACK, (t0, s, t1)
        assert s["first_seen"] <= s["last_seen"], s


def assert_clean_run(d, db, stored, sources):
    """Nothing rejected, nothing counted twice, every message counted."""
    assert rejected(db) == []
    m = d.metrics()
    assert metric_total(m, "vialwatch_messages_rejected_total") == 0
    assert m["vialwatch_readings_stored_total"] == stored
    assert m["vialwatch_readings_duplicate_total"] == 0, \
        "readings counted as duplicates although none was sent twice"
    for source, n in sources.items():
        key = f'vialwatch_mqtt_messages_received_total{{source="{source}"}}'
        assert m.get(key) == n, (key, m.get(key))


def _mqtt_str(b):
    return struct.pack(">H", len(b)) + b


class RawMqtt:
    """A bare MQTT 3.1.1 publisher on a socket, for what paho will not
    send: a QoS 1 PUBLISH repeated with the DUP flag (a gateway that missed
    the PUBACK) and a topic that is not UTF-8."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        client_id = f"vw-raw-{os.getpid()}-{time.monotonic_ns()}".encode()
        self._send(0x10, _mqtt_str(b"MQTT") + bytes([4, 0x02]) +
                   struct.pack(">H", 30) + _mqtt_str(client_id))
        kind, body = self.recv()
        assert kind == 0x20 and body[1] == 0, f"CONNACK {kind} {body!r}"

    def _send(self, header, body):
        n, length = len(body), b""
        while True:
            n, digit = divmod(n, 128)
            length += bytes([digit | (0x80 if n else 0)])
            if not n:
                break
        self.sock.sendall(bytes([header]) + length + body)

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data += chunk
        return data

    def recv(self):
        """(packet type byte, body) of the next packet from the broker."""
        header = self._read(1)[0]
        length, shift = 0, 0
        while True:
            digit = self._read(1)[0]
            length += (digit & 0x7F) << shift
            shift += 7
            if not digit & 0x80:
                break
        return header & 0xF0, self._read(length)

    def publish(self, topic, payload, packet_id, dup=False):
        """QoS 1 PUBLISH; the PUBACK is read by puback()."""
        self._send(0x32 | (0x08 if dup else 0),
                   _mqtt_str(topic) + struct.pack(">H", packet_id) + payload)

    def puback(self):
        kind, body = self.recv()
        assert kind == 0x40, f"expected PUBACK, got {kind:#x}"
        return struct.unpack(">H", body[:2])[0]

    def close(self):
        try:
            self._send(0xE0, b"")
        except OSError:
            pass
        self.sock.close()


# --- 1. one test per format ------------------------------------------------


UNUSUAL_NAME = "zigbee2mqtt/Kühlschrank \\ Praxis \"Süd\" 2"


def test_zigbee2mqtt(ingest, db, mqtt_broker):
    t0 = now()
    publish(mqtt_broker.port, [
        ("zigbee2mqtt/vaccine-fridge", {"temperature": 4.31, "humidity": 44.7,
                                        "battery": 86, "linkquality": 97}),
        # The bridge's own topics and commands to devices carry no reading.
        ("zigbee2mqtt/bridge/state", {"state": "online"}),
        ("zigbee2mqtt/vaccine-fridge/set", {"state": "ON"}),
        # A friendly name with a slash.
        ("zigbee2mqtt/clinic-2/botox-fridge", {"temperature": -0.5,
                                               "linkquality": 60}),
        # One with spaces, a backslash and letters beyond ASCII.
        (UNUSUAL_NAME, {"temperature": 5.5}),
    ])
    got = wait_readings(db, {"zigbee2mqtt/vaccine-fridge": 1,
                             "zigbee2mqtt/clinic-2/botox-fridge": 1,
                             UNUSUAL_NAME: 1})
    t1 = now()
    r = got["zigbee2mqtt/vaccine-fridge"][0]
    assert_temp(r, 4.31)
    assert r["humidity"] == pytest.approx(44.7)
    assert r["battery"] == pytest.approx(86)
    assert_arrival_time(r, t0, t1)
    r = got["zigbee2mqtt/clinic-2/botox-fridge"][0]
    assert_temp(r, -0.5)
    assert r["humidity"] is None and r["battery"] is None
    assert_arrival_time(r, t0, t1)
    assert_temp(got[UNUSUAL_NAME][0], 5.5)
    keys = {"zigbee2mqtt/vaccine-fridge", "zigbee2mqtt/clinic-2/botox-fridge",
            UNUSUAL_NAME}
    assert sensor_keys(db) == keys
    assert_registered(db, keys, "z2m", t0)
    assert_clean_run(ingest, db, 3, {"z2m": 5})


def test_zigbee2mqtt_availability(ingest, db, mqtt_broker):
    """<name>/availability, as JSON or a plain word, sets and clears
    sensor.offline_since; it is not a reading."""
    key = "zigbee2mqtt/vaccine-fridge"
    publish(mqtt_broker.port, [(key, {"temperature": 4.2})])
    wait_readings(db, {key: 1})

    def offline_since():
        return sensor(db, key)["offline_since"]

    for payload, offline in [({"state": "offline"}, True), ("online", False),
                             ("offline", True), ({"state": "online"}, False)]:
        t0 = now()
        publish(mqtt_broker.port, [(f"{key}/availability", payload)])
        if offline:
            since = wait_for(offline_since, 10, f"offline_since after {payload}")
            assert t0 - SLACK <= since <= now() + SLACK
        else:
            wait_for(lambda: offline_since() is None, 10,
                     f"offline_since cleared by {payload}")
    assert len(readings(db, key)) == 1
    assert sensor_keys(db) == {key}
    assert_clean_run(ingest, db, 1, {"z2m": 5})


def test_tasmota(ingest, db, mqtt_broker):
    t0 = now()
    publish(mqtt_broker.port, [
        ("tele/fridge1/SENSOR", {"Time": "2021-04-26T10:01:34",
                                 "DS18B20": {"Id": "020692454681",
                                             "Temperature": 4.1},
                                 "TempUnit": "C"}),
        # The device's other telemetry carries no reading.
        ("tele/fridge1/STATE", {"Time": "2021-04-26T10:01:34",
                                "Uptime": "0T00:10:00"}),
        ("tele/fridge1/LWT", "Online"),
        ("tele/fridge2/SENSOR", {"Time": "2021-04-26T10:01:35",
                                 "DS18B20-1": {"Id": "0316A27992FF",
                                               "Temperature": 3.9},
                                 "DS18B20-2": {"Id": "0416A2A4B1FF",
                                               "Temperature": -18.4},
                                 "TempUnit": "C"}),
        ("tele/fridge3/SENSOR", {"Time": "2021-04-26T10:01:36",
                                 "SHT3X": {"Temperature": 39.2,
                                           "Humidity": 45.1,
                                           "DewPoint": 19.0},
                                 "TempUnit": "F"}),
    ])
    expected = {
        "tele/fridge1/SENSOR/DS18B20": (4.1, None),
        "tele/fridge2/SENSOR/DS18B20-1": (3.9, None),
        "tele/fridge2/SENSOR/DS18B20-2": (-18.4, None),
        "tele/fridge3/SENSOR/SHT3X": (4.0, 45.1),  # 39.2 °F
    }
    got = wait_readings(db, {k: 1 for k in expected})
    t1 = now()
    for key, (celsius, humidity) in expected.items():
        r = got[key][0]
        assert_temp(r, celsius)
        assert r["humidity"] == (humidity and pytest.approx(humidity))
        # "Time" has no zone: the arrival time is used.
        assert_arrival_time(r, t0, t1)
    assert sensor_keys(db) == set(expected)
    assert_registered(db, expected, "tasmota", t0)
    assert_clean_run(ingest, db, 4, {"tasmota": 5})


def test_shelly(ingest, db, mqtt_broker):
    t0 = now()
    publish(mqtt_broker.port, [
        ("shellies/shellyht-AB12CD/sensor/humidity", "48.5"),  # not used
        ("shellies/shellyht-AB12CD/sensor/temperature", "4.25"),
    ])
    got = wait_readings(db, {"shellies/shellyht-AB12CD": 1})
    r = got["shellies/shellyht-AB12CD"][0]
    assert_temp(r, 4.25)
    assert_arrival_time(r, t0, now())
    assert sensor_keys(db) == {"shellies/shellyht-AB12CD"}
    assert_registered(db, ["shellies/shellyht-AB12CD"], "shelly", t0)
    assert_clean_run(ingest, db, 1, {"shelly": 2})


def test_shelly_battery(ingest, db, mqtt_broker):
    """.../sensor/battery goes to vialwatch.sensor.battery, not a reading."""
    key = "shellies/shellyht-AB12CD"
    publish(mqtt_broker.port, [(f"{key}/sensor/temperature", "4.25")])
    wait_readings(db, {key: 1})
    t0 = now()
    publish(mqtt_broker.port, [(f"{key}/sensor/battery", "87")])
    s = wait_for(lambda: (sensor(db, key) or {}).get("battery") is not None
                 and sensor(db, key), 10, "sensor.battery set")
    assert s["battery"] == pytest.approx(87)
    assert t0 - SLACK <= s["battery_at"] <= now() + SLACK
    assert len(readings(db, key)) == 1
    assert_clean_run(ingest, db, 1, {"shelly": 2})


def test_shelly_gen2(ingest, db, mqtt_broker):
    t0 = now()
    publish(mqtt_broker.port, [
        ("gen2/shellyplusht-a1/status/temperature:0",
         {"id": 0, "tC": 4.2, "tF": 39.6}),
        ("gen2/shellyplusht-a1/events/rpc",
         {"src": "shellyplusht-a1", "dst": "shellyplusht-a1/events",
          "method": "NotifyStatus",
          "params": {"ts": 1700000000.12,
                     "temperature:0": {"id": 0, "tC": 4.2}}}),
        # A Plus H&T waking up: temperature, humidity and battery at once.
        ("gen2/shellyplusht-b2/events/rpc",
         {"src": "shellyplusht-b2", "method": "NotifyStatus",
          "params": {"ts": 1700000300.5,
                     "temperature:0": {"id": 0, "tC": 5.1, "tF": 41.2},
                     "humidity:0": {"id": 0, "rh": 51.3},
                     "devicepower:0": {"id": 0, "battery": {"V": 5.9,
                                                            "percent": 74}}}}),
        # Other notifications carry no reading.
        ("gen2/shellyplusht-b2/events/rpc",
         {"src": "shellyplusht-b2", "method": "NotifyEvent",
          "params": {"ts": 1700000300.6, "events": []}}),
    ])
    got = wait_readings(db, {"gen2/shellyplusht-a1/temperature:0": 2,
                             "gen2/shellyplusht-b2/temperature:0": 1})
    t1 = now()
    a = got["gen2/shellyplusht-a1/temperature:0"]
    # Oldest first: the NotifyStatus with its ts, then the status message.
    assert_temp(a[0], 4.2)
    assert a[0]["ts"] == datetime.datetime(2023, 11, 14, 22, 13, 20, 120000,
                                           tzinfo=UTC)
    assert_temp(a[1], 4.2)
    assert_arrival_time(a[1], t0, t1)
    b = got["gen2/shellyplusht-b2/temperature:0"][0]
    assert_temp(b, 5.1)
    assert b["ts"] == datetime.datetime(2023, 11, 14, 22, 18, 20, 500000,
                                        tzinfo=UTC)
    assert b["humidity"] == pytest.approx(51.3)
    assert b["battery"] == pytest.approx(74)
    keys = {"gen2/shellyplusht-a1/temperature:0",
            "gen2/shellyplusht-b2/temperature:0"}
    assert sensor_keys(db) == keys
    assert_registered(db, keys, "shelly2", t0)
    assert_clean_run(ingest, db, 3, {"shelly2": 4})


def test_esphome_homeassistant_number(ingest, db, mqtt_broker):
    t0 = now()
    publish(mqtt_broker.port, [
        ("clinic-esp/sensor/vaccine_fridge/state", "4.6"),
        ("homeassistant/sensor/botox_fridge/state", '"4.2"'),
        ("lab/freezer3/temperature", "-19.75"),
        ("lab/fridge4/state", " 7.99\n"),
    ])
    expected = {
        "clinic-esp/sensor/vaccine_fridge": (4.6, "esp"),
        "homeassistant/sensor/botox_fridge": (4.2, "ha"),
        "lab/freezer3/temperature": (-19.75, "num"),
        "lab/fridge4": (7.99, "num"),
    }
    got = wait_readings(db, {k: 1 for k in expected})
    t1 = now()
    for key, (celsius, source) in expected.items():
        r = got[key][0]
        assert_temp(r, celsius)
        assert r["humidity"] is None and r["battery"] is None
        assert_arrival_time(r, t0, t1)
        assert_registered(db, [key], source, t0)
    assert sensor_keys(db) == set(expected)
    assert_clean_run(ingest, db, 4, {"esp": 1, "ha": 1, "num": 2})


def ttn_uplink(app, dev, received_at, decoded):
    """A The Things Stack v3 uplink message as its MQTT integration sends it."""
    return {
        "end_device_ids": {"device_id": dev,
                           "application_ids": {"application_id": app},
                           "dev_eui": "A84041000181C61F",
                           "dev_addr": "260B1234"},
        "correlation_ids": ["as:up:01HXYZ", "rpc:/ttn.lorawan.v3.GsNs/01HXYZ"],
        "received_at": received_at,
        "uplink_message": {
            "session_key_id": "AYa0qUw4mjgP3L4bV8k9Zw==",
            "f_port": 2, "f_cnt": 1432, "frm_payload": "y8QBmQHfAX//f/8=",
            "decoded_payload": decoded,
            "rx_metadata": [{"gateway_ids": {"gateway_id": "clinic-gw"},
                             "rssi": -71, "snr": 9.5}],
            "received_at": received_at,
        },
    }


def test_ttn(ingest, db, mqtt_broker):
    base = now().replace(microsecond=0) - datetime.timedelta(minutes=3)
    times = [base + datetime.timedelta(seconds=i, microseconds=123456)
             for i in range(3)]
    # TTS writes nanoseconds; microseconds are kept.
    stamp = [t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "789Z" for t in times]
    t0 = now()
    publish(mqtt_broker.port, [
        ("v3/clinic-app/devices/fridge-probe-1/up",
         ttn_uplink("clinic-app", "fridge-probe-1", stamp[0],
                    {"temperature": 4.14, "battery": 3.6})),
        ("v3/clinic-app@ttn/devices/fridge-probe-2/up",
         ttn_uplink("clinic-app", "fridge-probe-2", stamp[1],
                    {"temperature": -20.3})),
        # Dragino LHT65: the field is named by "temperature = TempC_SHT".
        ("v3/cold-app/devices/lht65-1/up",
         ttn_uplink("cold-app", "lht65-1", stamp[2],
                    {"BatV": 3.05, "TempC_SHT": 5.37, "Hum_SHT": 48.1,
                     "TempC_DS": 327.67})),
        # Join accepts and other events carry no reading.
        ("v3/clinic-app/devices/fridge-probe-1/join",
         {"end_device_ids": {"device_id": "fridge-probe-1"}}),
    ])
    expected = {
        "v3/clinic-app/devices/fridge-probe-1": (4.14, times[0], "ttn"),
        "v3/clinic-app/devices/fridge-probe-2": (-20.3, times[1],
                                                 "ttn-tenant"),
        "v3/cold-app/devices/lht65-1": (5.37, times[2], "lht65"),
    }
    got = wait_readings(db, {k: 1 for k in expected})
    for key, (celsius, ts, source) in expected.items():
        r = got[key][0]
        assert_temp(r, celsius)
        assert r["ts"] == ts, (key, r["ts"], ts)
        assert_registered(db, [key], source, t0)
    assert sensor_keys(db) == set(expected)
    assert_clean_run(ingest, db, 3, {"ttn": 1, "ttn-tenant": 1, "lht65": 1})


def test_json(ingest, db, mqtt_broker):
    """format json: temperature = /data/temp, timestamp = /data/time."""
    base = now().replace(microsecond=0) - datetime.timedelta(minutes=10)
    t_s = base
    t_ms = base + datetime.timedelta(seconds=1, milliseconds=250)
    t_rfc = base + datetime.timedelta(seconds=2, milliseconds=500)
    t0 = now()
    publish(mqtt_broker.port, [
        ("json/epoch-s", {"data": {"temp": 4.11, "time": int(t_s.timestamp())}}),
        ("json/epoch-ms", {"data": {"temp": 4.22,
                                    "time": int(t_ms.timestamp() * 1000)}}),
        ("json/rfc3339", {"data": {"temp": 4.33, "time": rfc3339(t_rfc, 2)}}),
        ("json/rfc3339-utc", {"data": {"temp": "4.44",
                                       "time": rfc3339(t_rfc, 0)}}),
        # No zone, or no time at all: the arrival time.
        ("json/local", {"data": {"temp": 4.55, "time": "2021-04-26T10:01:34"}}),
        ("json/clinic-7/no-time", {"data": {"temp": -80.5}, "rssi": -60}),
    ])
    expected = {
        "json/epoch-s": (4.11, t_s),
        "json/epoch-ms": (4.22, t_ms),
        "json/rfc3339": (4.33, t_rfc),
        "json/rfc3339-utc": (4.44, t_rfc),
        "json/local": (4.55, None),
        "json/clinic-7/no-time": (-80.5, None),
    }
    got = wait_readings(db, {k: 1 for k in expected})
    t1 = now()
    for key, (celsius, ts) in expected.items():
        r = got[key][0]
        assert_temp(r, celsius)
        if ts is None:
            assert_arrival_time(r, t0, t1)
        else:
            assert r["ts"] == ts, (key, r["ts"], ts)
    assert sensor_keys(db) == set(expected)
    assert_registered(db, expected, "json", t0)
    assert_clean_run(ingest, db, 6, {"json": 6})


def test_unit_fahrenheit(ingest, db, mqtt_broker):
    """[source] unit = F: the table holds °C."""
    t0 = now()
    publish(mqtt_broker.port, [("usa/fridge", "39.2"), ("usa/freezer", "-4"),
                               ("usa/pharmacy/state", '"46.4"')])
    expected = {"usa/fridge": 4.0, "usa/freezer": -20.0, "usa/pharmacy": 8.0}
    got = wait_readings(db, {k: 1 for k in expected})
    for key, celsius in expected.items():
        assert_temp(got[key][0], celsius)
        assert_arrival_time(got[key][0], t0, now())
    assert_registered(db, expected, "usa", t0)
    assert_clean_run(ingest, db, 3, {"usa": 3})


# --- 2. bad input ------------------------------------------------------------


def padded(size, **fields):
    """A valid JSON object of exactly size bytes."""
    head = json.dumps(fields)[:-1] + ', "pad": "'
    return (head + "x" * (size - len(head) - 2) + '"}').encode()


def bad_cases():
    """(name, topic, payload bytes, code) of every kind of bad input."""
    future = int(time.time()) + 600
    rnd = random.Random(20260421)
    garbage = bytes(rnd.randrange(256) for _ in range(512))
    tasmota_time = datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    return [
        ("not JSON", "json/bad-not-json", b"fridge says hello", "not_json"),
        ("truncated JSON", "zigbee2mqtt/bad-truncated",
         b'{"temperature":4.31,"humi', "not_json"),
        ("JSON nested 10,000 deep", "json/bad-deep",
         b"[" * 10000 + b"]" * 10000, "not_json"),
        ("random bytes", "json/bad-random", garbage, "not_json"),
        ("empty payload", "zigbee2mqtt/bad-empty", b"", "empty"),
        ("no temperature", "zigbee2mqtt/bad-no-temperature",
         b'{"humidity":44.7,"battery":86,"linkquality":97}', "no_temperature"),
        ("tasmota without a probe", "tele/bad-no-probe/SENSOR",
         json.dumps({"Time": tasmota_time, "ANALOG": {"A0": 512},
                     "TempUnit": "C"}).encode(), "no_temperature"),
        ("not a number", "clinic-esp/sensor/bad_unavailable/state",
         b"unavailable", "not_number"),
        ("1e999", "clinic-esp/sensor/bad_inf/state", b"1e999", "not_finite"),
        ("1e999 in JSON", "zigbee2mqtt/bad-1e999",
         b'{"temperature":1e999}', "not_finite"),
        ("NaN", "homeassistant/sensor/bad_nan/state", b"NaN", "not_finite"),
        ("NaN in JSON", "zigbee2mqtt/bad-nan", b'{"temperature":NaN}',
         "not_finite"),
        ("327.67 sentinel", "zigbee2mqtt/bad-sentinel",
         b'{"temperature":327.67,"linkquality":80}', "out_of_range"),
        ("DS18B20 -127", "tele/bad-ds18b20/SENSOR",
         json.dumps({"Time": tasmota_time,
                     "DS18B20": {"Id": "020692454681", "Temperature": -127.0},
                     "TempUnit": "C"}).encode(), "out_of_range"),
        ("a time 10 min in the future", "json/bad-future",
         json.dumps({"data": {"temp": 4.4, "time": future}}).encode(),
         "future_timestamp"),
        ("a time that is no time", "json/bad-time",
         b'{"data":{"temp":4.4,"time":"yesterday"}}', "bad_timestamp"),
        ("64 KiB + 1 payload", "json/bad-64k",
         padded(64 * 1024 + 1, data={"temp": 4.4}), "too_large"),
        ("65 KiB + 1 payload", "zigbee2mqtt/bad-65k",
         padded(65 * 1024 + 1, temperature=4.4), "too_large"),
        ("invalid UTF-8 in a key (tasmota object name)",
         "tele/bad-utf8/SENSOR",
         b'{"Time":"' + tasmota_time.encode() +
         b'","DS18B20-\xff\xfe":{"Id":"020692454681","Temperature":4.2},'
         b'"TempUnit":"C"}', "bad_key"),
        ("a key of 300 bytes", "zigbee2mqtt/" + "f" * 300,
         b'{"temperature":4.2}', "bad_key"),
        ("a topic matching no source", "legacy/fridge",
         b'{"temperature":4.2}', "no_source"),
    ]


def test_bad_input(daemon, db, mqtt_broker):
    """Each bad message: one rejected_message row with its code, a sentence
    and its bytes; the good ones of the same burst are stored; the daemon
    stays healthy and /metrics counts each reason."""
    # A topic matching no source reaches the daemon the way it does in real
    # life: a [source] was removed while the broker kept the session, and
    # with it the subscription.
    client_id = f"ingest-legacy-{os.getpid()}-{time.monotonic_ns()}"
    old = daemon(overrides={**SOURCES, "source legacy": {
        "topic": "legacy/#", "format": "json"}}, mqtt={"client_id": client_id})
    assert old.stop() == 0
    d = daemon(overrides=SOURCES, mqtt={"client_id": client_id})

    cases = bad_cases()
    good = {f"zigbee2mqtt/burst-{i}": round(2.5 + i * 0.11, 2)
            for i in range(len(cases) + 1)}
    good_keys = list(good)
    messages = [(good_keys[0], {"temperature": good[good_keys[0]]})]
    for i, (_, topic, payload, _) in enumerate(cases, 1):
        messages.append((topic, payload))
        messages.append((good_keys[i], {"temperature": good[good_keys[i]]}))
    # Exactly 64 KiB is still fine.
    messages.append(("json/ok-64k", padded(64 * 1024, data={"temp": 5.5})))
    t0 = now()
    publish(mqtt_broker.port, messages)

    got = wait_readings(db, {**{k: 1 for k in good}, "json/ok-64k": 1})
    for key, celsius in good.items():
        assert_temp(got[key][0], celsius)
    assert_temp(got["json/ok-64k"][0], 5.5)
    wait_for(lambda: len(rejected(db)) >= len(cases), 10,
             f"{len(cases)} rejected messages")
    t1 = now()

    by_topic = collections.defaultdict(list)
    for r in rejected(db):
        by_topic[r["topic"]].append(r)
    problems = []
    for name, topic, payload, code in cases:
        found = by_topic.pop(topic, [])
        if len(found) != 1:
            problems.append(f"{name}: {len(found)} rejected rows")
            continue
        r = found[0]
        if r["code"] != code:
            problems.append(f"{name}: code {r['code']!r}, want {code!r} "
                            f"(reason {r['reason']!r})")
        # Oversized payloads keep their first 64 KiB, enough to see
        # what they were without letting one message fill the memory.
        kept = payload[:64 * 1024]
        if bytes(r["payload"]) != kept:
            problems.append(f"{name}: payload not kept as sent "
                            f"({len(bytes(r['payload']))} of {len(kept)} "
                            "bytes)")
        reason = r["reason"] or ""
        if not (len(reason) >= 10 and " " in reason and reason.isprintable()
                and reason != code):
            problems.append(f"{name}: reason {reason!r} is not a sentence")
        if not t0 - SLACK <= r["received_at"] <= t1 + SLACK:
            problems.append(f"{name}: received_at {r['received_at']}")
    if by_topic:
        problems.append(f"unexpected rejected rows: {dict(by_topic)}")
    assert not problems, "\n".join(problems)

    # Nothing of a rejected message became a sensor.
    assert sensor_keys(db) == set(good) | {"json/ok-64k"}
    status, health = d.healthz()
    assert status == 200, health
    counts = collections.Counter(code for _, _, _, code in cases)
    m = d.metrics()
    for label in ("too_large", "empty", "not_json", "not_number",
                  "no_temperature", "not_finite", "out_of_range",
                  "future_timestamp", "bad_timestamp", "bad_key", "bad_topic",
                  "no_source"):
        key = f'vialwatch_messages_rejected_total{{reason="{label}"}}'
        assert m.get(key) == counts[label], (key, m.get(key), counts[label])
    assert m["vialwatch_readings_stored_total"] == len(good) + 1


def test_invalid_utf8_topic(ingest, db, mqtt_broker):
    """A topic that is not UTF-8, should the broker pass one on: one
    rejected row (bad_key), and the daemon carries on."""
    topic = b"zigbee2mqtt/fridge-\xff\xfe"
    payload = b'{"temperature":4.2}'
    raw = RawMqtt(mqtt_broker.port)
    try:
        raw.publish(topic, payload, packet_id=1)
        try:
            raw.puback()
        except ConnectionError:
            pytest.skip("Mosquitto refuses a PUBLISH whose topic is not "
                        "UTF-8 (MQTT-1.5.3-1) and drops the publisher, so it "
                        "never reaches the daemon; test_bad_input covers "
                        "invalid UTF-8 in a key via a tasmota object name")
    finally:
        raw.close()
    found = wait_for(lambda: rejected(db), 10, "a rejected row")
    assert len(found) == 1 and found[0]["code"] == "bad_key", found
    assert bytes(found[0]["payload"]) == payload
    assert ingest.healthz()[0] == 200


# --- 3. duplicates -----------------------------------------------------------


def test_duplicate_stored_once(ingest, db, mqtt_broker):
    """The same reading twice in a burst, replayed later, and resent as a
    QoS 1 redelivery (DUP flag, same packet id): one row."""
    key = "zigbee2mqtt/vaccine-fridge"
    last_seen = now().replace(microsecond=345000) - datetime.timedelta(
        minutes=1)
    message = json.dumps({"temperature": 4.6, "humidity": 40.2, "battery": 90,
                          "linkquality": 120,
                          "last_seen": rfc3339(last_seen, 1)}).encode()
    publish(mqtt_broker.port, [(key, message), (key, message)])
    wait_readings(db, {key: 1})
    publish(mqtt_broker.port, [(key, message)])
    raw = RawMqtt(mqtt_broker.port)
    try:
        raw.publish(key.encode(), message, packet_id=7)
        raw.publish(key.encode(), message, packet_id=7, dup=True)
        assert [raw.puback(), raw.puback()] == [7, 7]
    finally:
        raw.close()

    wait_for(lambda: ingest.metric("vialwatch_readings_duplicate_total") >= 4,
             10, "4 duplicates counted")
    m = ingest.metrics()
    assert m["vialwatch_readings_duplicate_total"] == 4
    assert m["vialwatch_readings_stored_total"] == 1
    assert m['vialwatch_mqtt_messages_received_total{source="z2m"}'] == 5
    got = readings(db, key)
    assert len(got) == 1, got
    assert got[0]["ts"] == last_seen
    assert_temp(got[0], 4.6)
    assert rejected(db) == []
    assert ingest.healthz()[0] == 200


# --- 4. rate-limited log -----------------------------------------------------


def test_rejections_log_rate_limited(ingest, db, mqtt_broker):
    """50 bad messages from one source: a row each, at most 5 log lines."""
    mark = ingest.log_size()
    publish(mqtt_broker.port, [(f"zigbee2mqtt/broken-{i}",
                                {"temperature": 327.67}) for i in range(50)])
    wait_for(lambda: len(rejected(db)) >= 50, 10, "50 rejected rows")
    # Another source keeps its own allowance.
    publish(mqtt_broker.port, [("clinic-esp/sensor/broken/state", "n/a")])
    ingest.wait_log(r'rejected message on "clinic-esp/sensor/broken/state"',
                    after=mark)
    wait_for(lambda: len(rejected(db)) >= 51, 10, "51 rejected rows")
    found = rejected(db)
    assert len(found) == 51
    assert collections.Counter(r["code"] for r in found) == {
        "out_of_range": 50, "not_number": 1}
    lines = [line for line in ingest.log_text()[mark:].splitlines()
             if "rejected message" in line]
    z2m = [line for line in lines if "zigbee2mqtt/broken-" in line]
    assert 1 <= len(z2m) <= 5, z2m
    assert all(line.startswith("warning:") for line in lines), lines
    assert "327.67" in z2m[0], z2m[0]
    assert ingest.metric(
        'vialwatch_messages_rejected_total{reason="out_of_range"}') == 50


# --- 5. broker restart --------------------------------------------------------


GATEWAY = {"source gw": {"topic": "gw/#", "format": "json",
                         "temperature": "/t", "timestamp": "/ts"}}


def gateway_readings(first, count, base_ms):
    """count readings of a gateway, 10 ms apart from base_ms (epoch ms)."""
    return [("gw/fridge-1", {"t": round(3.0 + (i % 400) / 100, 2),
                             "ts": base_ms + i * 10})
            for i in range(first, first + count)]


def count_readings(db, key):
    return db.execute("select count(*) from vialwatch.reading r "
                      "join vialwatch.sensor s on s.id = r.sensor_id "
                      "where s.key = %s", (key,)).fetchone()[0]


def assert_each_once(db, key, sent, d=None, source="gw"):
    """Every message of sent is one row of key, with its time and value.
    With d, the daemon that received these and nothing else since it
    started, also: it inserted each once, the rows it added being as many
    as the messages, and every message it received (the broker may deliver
    one again) made a row or was counted a duplicate, no more.  The
    primary key would hide a second insert of a row; these counts do not
    (without d, only the rows are checked)."""
    received = f'vialwatch_mqtt_messages_received_total{{source="{source}"}}'

    def accounted():
        m = d.metrics()
        return (m["vialwatch_readings_pending"] == 0 and m[received] ==
                m["vialwatch_readings_stored_total"] +
                m["vialwatch_readings_duplicate_total"]) and m
    if d is not None:
        m = wait_for(accounted, 20, "every message received stored or "
                     "counted a duplicate")
        assert m["vialwatch_readings_stored_total"] == len(sent), m
    got = readings(db, key)
    want = sorted((m["ts"], m["t"]) for _, m in sent)
    have = [(int(round(r["ts"].timestamp() * 1000)), r["temp_c"]) for r in got]
    assert len(have) == len(want), f"{len(have)} rows for {len(want)} sent"
    for (ts, t), (hts, ht) in zip(want, have):
        assert hts == ts and ht == pytest.approx(t, abs=0.005), (ts, t, hts, ht)


def test_broker_restart_loses_nothing(spare_broker, daemon, db):
    """Mosquitto (with persistence) restarted mid-stream: every reading
    published before, during and after is stored exactly once."""
    broker = spare_broker.start()
    d = daemon(mqtt={"port": broker.port}, overrides=GATEWAY)
    base_ms = int(time.time() * 1000) - 600_000
    before = gateway_readings(0, 220, base_ms)
    during = gateway_readings(220, 40, base_ms)
    after = gateway_readings(260, 40, base_ms)

    publish(broker.port, before[:20])
    wait_for(lambda: count_readings(db, "gw/fridge-1") == 20, 10,
             "20 readings")
    # The daemon stalls for a moment, so that the broker goes down with
    # messages for it in flight (sent, not acknowledged) and queued (more
    # than max_inflight_messages): all must come back after the restart,
    # and be stored once.
    d.signal(signal.SIGSTOP)
    try:
        publish(broker.port, before[20:])
        broker.stop()
    finally:
        d.signal(signal.SIGCONT)
    health = d.wait_health(503)
    assert health["mqtt"] != "connected"
    broker.start()
    # The gateway sends what it buffered as soon as the broker is back,
    # maybe before the daemon has reconnected.
    publish(broker.port, during)
    d.wait_healthy(timeout=45)
    publish(broker.port, after)

    sent = before + during + after
    wait_for(lambda: count_readings(db, "gw/fridge-1") >= len(sent), 20,
             f"{len(sent)} readings")
    assert_each_once(db, "gw/fridge-1", sent, d)
    status, health = d.healthz()
    assert status == 200, health
    assert rejected(db) == []


# --- 6. database outage ------------------------------------------------------


def test_database_outage_loses_nothing(daemon, db, pg, mqtt_broker):
    """PostgreSQL stopped for 10 s while a gateway keeps sending: /healthz
    says 503 and readings are pending meanwhile; afterwards every reading
    is in vialwatch.reading exactly once."""
    d = daemon(overrides=GATEWAY)
    base_ms = int(time.time() * 1000) - 3_600_000
    sent = gateway_readings(0, 20, base_ms)
    publish(mqtt_broker.port, sent)
    wait_for(lambda: count_readings(db, "gw/fridge-1") == 20, 10,
             "20 readings")
    db.close()

    statuses, pending = set(), []

    def gateway_step():
        """/healthz and /metrics are read, then the gateway sends 10 more
        readings.  True once the database was down for 10 s."""
        statuses.add(d.healthz()[0])
        pending.append(d.metric("vialwatch_readings_pending"))
        batch = gateway_readings(len(sent), 10, base_ms)
        publish(mqtt_broker.port, batch)
        sent.extend(batch)
        return time.monotonic() >= down_until

    pg.stop()
    try:
        d.wait_health(503)
        down_until = time.monotonic() + 10
        wait_for(gateway_step, 20, "10 s of readings", interval=0.05)
        # The daemon holds every reading sent during the outage.
        wait_for(lambda: d.metric("vialwatch_readings_pending")
                 >= len(sent) - 20, 10, f"{len(sent) - 20} readings pending")
        assert d.healthz()[0] == 503
    finally:
        pg.start()
    assert statuses == {503}
    # Read before each send: from the second on, readings were held.
    assert min(pending[1:]) > 0, pending

    d.wait_healthy(timeout=45)
    with pg.connect("vialwatch") as conn:
        wait_for(lambda: count_readings(conn, "gw/fridge-1") >= len(sent),
                 30, f"{len(sent)} readings after the outage")
        assert_each_once(conn, "gw/fridge-1", sent, d)
    wait_for(lambda: d.metric("vialwatch_readings_pending") == 0, 10,
             "nothing pending")
    assert d.metric("vialwatch_readings_stored_total") == len(sent)
