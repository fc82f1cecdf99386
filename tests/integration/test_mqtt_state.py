"""What vialwatchd publishes back to MQTT, seen by a subscriber on the
test broker: its retained status and last will ([mqtt] status_topic), the
fridges' retained state ([mqtt] publish_state) and the Home Assistant
discovery configs ([mqtt] homeassistant_discovery)."""

import datetime
import json
import os
import subprocess
import threading

import pytest

from servers import publish, wait_for
from test_excursions import insert, setup_fridge

UTC = datetime.timezone.utc


class Subscriber:
    """A paho client that keeps the last message of each topic it sees."""

    def __init__(self, port, topics):
        import paho.mqtt.client as mqtt

        self.last = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(client_id="", clean_session=True)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc: [
            c.subscribe(t, qos=1) for t in topics]
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.last[msg.topic] = msg.payload.decode()

    def get(self, topic):
        with self.lock:
            return self.last.get(topic)

    def wait(self, topic, predicate, what, timeout=20):
        def ok():
            v = self.get(topic)
            return v is not None and predicate(v)
        try:
            wait_for(ok, timeout, what)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; {topic} = {self.get(topic)!r}") from None
        return self.get(topic)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(mqtt_broker):
    made = []

    def make(*topics):
        s = Subscriber(mqtt_broker.port, topics)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_status_online_then_offline_on_sigterm(daemon, subscriber):
    topic = "vialwatch/status/test-sigterm"
    sub = subscriber(topic)
    d = daemon(mqtt={"status_topic": topic})
    sub.wait(topic, lambda v: v == "online", "retained online")
    assert d.stop() == 0
    sub.wait(topic, lambda v: v == "offline", "offline after SIGTERM")
    # Retained: a client that subscribes later is told too.
    late = subscriber(topic)
    late.wait(topic, lambda v: v == "offline", "retained offline")


def test_status_last_will_after_kill9(daemon, subscriber):
    topic = "vialwatch/status/test-kill"
    sub = subscriber(topic)
    d = daemon(mqtt={"status_topic": topic, "keepalive": "5s"})
    sub.wait(topic, lambda v: v == "online", "retained online")
    d.kill()
    sub.wait(topic, lambda v: v == "offline", "the last will after kill -9",
             timeout=15)


def test_status_back_online_after_restart(daemon, subscriber):
    topic = "vialwatch/status/test-restart"
    sub = subscriber(topic)
    d = daemon(mqtt={"status_topic": topic})
    sub.wait(topic, lambda v: v == "online", "retained online")
    d.kill()
    sub.wait(topic, lambda v: v == "offline", "the last will")
    d.start()
    sub.wait(topic, lambda v: v == "online", "online again")


def reading(key, temp):
    ts = datetime.datetime.now(UTC).isoformat()
    return (key, {"temp": temp, "ts": ts})


SOURCES = {"source json": {"topic": "json/#", "format": "json",
                           "temperature": "/temp", "timestamp": "/ts"}}


def test_state_and_home_assistant_discovery(daemon, db, mqtt_broker,
                                            subscriber):
    f = setup_fridge(db, key="json/lakeview/botox")
    state_topic = "vialwatch/lakeview-aesthetics/botox-fridge/state"
    sub = subscriber("vialwatch/#", "homeassistant/#")
    d = daemon(overrides=SOURCES, mqtt={
        "status_topic": "vialwatch/status", "publish_state": "yes",
        "homeassistant_discovery": "yes"})

    # No reading yet: the fridge says nothing, it is offline.
    sub.wait(state_topic, lambda v: json.loads(v)["state"] == "offline",
             "offline before the first reading")

    publish(mqtt_broker.port, [reading(f["key"], 4.5)])
    v = json.loads(sub.wait(state_topic,
                            lambda v: json.loads(v)["state"] == "ok",
                            "state ok after a reading"))
    assert v["temperature"] == 4.5
    assert v["fridge_id"] == f["fridge"] and v["excursion"] is None

    # Above the critical bound (12 °C): an alarm at once.
    publish(mqtt_broker.port, [reading(f["key"], 14.0)])
    v = json.loads(sub.wait(state_topic,
                            lambda v: json.loads(v)["state"] == "alarm",
                            "state alarm after a critical reading"))
    assert v["temperature"] == 14.0
    assert v["excursion"]["kind"] == "high"
    wait_for(lambda: d.metrics().get("vialwatch_alarms_unacknowledged") == 1,
             20, "the unacknowledged alarm in /metrics")
    assert d.metrics()['vialwatch_fridges{state="alarm"}'] == 1

    node = f"vialwatch_fridge_{f['fridge']}"
    sensor = json.loads(sub.wait(
        f"homeassistant/sensor/{node}/temperature/config", bool,
        "the sensor's discovery config"))
    problem = json.loads(sub.wait(
        f"homeassistant/binary_sensor/{node}/problem/config", bool,
        "the problem binary sensor's discovery config"))
    for cfg in (sensor, problem):
        assert cfg["state_topic"] == state_topic
        assert cfg["availability_topic"] == "vialwatch/status"
        assert cfg["device"]["identifiers"] == [node]
    assert sensor["device_class"] == "temperature"
    assert sensor["unit_of_measurement"] == "°C"
    assert problem["device_class"] == "problem"
    assert sub.get("vialwatch/status") == "online"

    # A renamed fridge moves: the old topic is cleared, the configs follow.
    db.execute("update vialwatch.fridge set name = 'Toxin Fridge #1' "
               "where id = %s", [f["fridge"]])
    new_topic = "vialwatch/lakeview-aesthetics/toxin-fridge-1/state"
    sub.wait(new_topic, lambda v: json.loads(v)["state"] == "alarm",
             "the state on the new topic")
    sub.wait(state_topic, lambda v: v == "", "the old topic cleared")
    sub.wait(f"homeassistant/sensor/{node}/temperature/config",
             lambda v: json.loads(v)["state_topic"] == new_topic,
             "the discovery config follows the rename")

    # Acknowledged: still an alarm, no longer waiting for anyone.
    db.execute("update vialwatch.excursion set acked_at = now(), "
               "acked_by = 'Dana Lee' where fridge_id = %s", [f["fridge"]])
    v = json.loads(sub.wait(
        new_topic, lambda v: json.loads(v)["excursion"]["acknowledged"],
        "the acknowledgement in the state"))
    assert v["state"] == "alarm"
    wait_for(lambda: d.metrics().get("vialwatch_alarms_unacknowledged") == 0,
             20, "no unacknowledged alarm in /metrics")


def test_fridges_counted_without_publishing(daemon, db, subscriber):
    f = setup_fridge(db, key="json/lakeview/botox")
    db.execute("update vialwatch.clinic set name = 'Quiet Clinic' "
               "where id = %s", [f["clinic"]])
    sub = subscriber("vialwatch/quiet-clinic/#", "vialwatch/status")
    d = daemon(overrides=SOURCES)
    wait_for(lambda: d.metrics().get('vialwatch_fridges{state="offline"}')
             == 1, 30, "the fridge counted as offline")
    assert d.metrics()["vialwatch_alarms_unacknowledged"] == 0
    # publish_state = no (the default): only the daemon's status.
    sub.wait("vialwatch/status", lambda v: v == "online", "online")
    assert set(sub.last) == {"vialwatch/status"}


def test_same_slug_fridges_get_their_ids(daemon, db, subscriber):
    clinic = insert(db, "clinic", name="Oak Clinic", timezone="Europe/Paris")
    a = insert(db, "fridge", clinic_id=clinic, name="Fridge A")
    b = insert(db, "fridge", clinic_id=clinic, name="fridge-a")
    sub = subscriber("vialwatch/oak-clinic/#")
    daemon(mqtt={"publish_state": "yes"})
    for fid in (a, b):
        topic = f"vialwatch/oak-clinic/fridge-a-{fid}/state"
        v = json.loads(sub.wait(topic, bool, f"state of fridge {fid}"))
        assert v["fridge_id"] == fid
    # Without discovery, no Home Assistant config.
    assert not [t for t in sub.last if t.startswith("homeassistant/")]


@pytest.mark.parametrize("lines, line, error", [
    (["homeassistant_discovery = yes"], 1, "needs publish_state = yes"),
    (["publish_state = maybe"], 2, "must be yes or no"),
    (["status_topic = vialwatch/+/status"], 2, "no wildcards"),
])
def test_bad_mqtt_state_settings(tmp_path, lines, line, error):
    conf = tmp_path / "bad.conf"
    conf.write_text("[mqtt]\n" + "\n".join(lines) + "\n")
    conf.chmod(0o600)
    r = subprocess.run([os.environ.get("VIALWATCHD", "vialwatchd"), "-t",
                        "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{conf}:{line}:" in r.stderr and error in r.stderr, r.stderr
