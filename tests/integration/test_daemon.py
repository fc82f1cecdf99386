"""vialwatchd as systemd, an operator and a monitoring system see it:
notify messages, signals, reload, /healthz and /metrics."""

import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time

import pytest

from conftest import VIALWATCHD
from servers import metric_total, publish, render_config, wait_for


def have_systemd():
    """False only when the build says it was configured --without-systemd."""
    config_h = os.path.join(os.path.dirname(VIALWATCHD), "config.h")
    try:
        with open(config_h) as f:
            return "#define HAVE_SYSTEMD 1" in f.read()
    except OSError:
        return True


needs_systemd = pytest.mark.skipif(not have_systemd(),
                                   reason="built --without-systemd")


class NotifySocket:
    """The AF_UNIX datagram socket systemd gives a Type=notify service."""

    def __init__(self):
        # Socket paths are limited to 108 bytes: keep it short.
        self.dir = tempfile.mkdtemp(prefix="vw-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.received = []

    def env(self, watchdog_usec=None):
        env = {"NOTIFY_SOCKET": self.path}
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def recv(self, timeout):
        """One datagram as {key: value}, with the arrival time under "_at"."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        msg = dict(line.split("=", 1) for line in
                   data.decode().splitlines() if "=" in line)
        msg["_at"] = time.monotonic()
        self.received.append(msg)
        return msg

    def wait(self, key, value=None, timeout=10):
        """Reads datagrams until one carries key (=value); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                msg = self.recv(left)
            except socket.timeout:
                break
            if key in msg and (value is None or msg[key] == value):
                return msg
        seen = [{k: v for k, v in m.items() if k != "_at"} for m in self.received]
        raise TimeoutError(f"no {key}={value or '*'} within {timeout}s; got {seen}")

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    s = NotifySocket()
    yield s
    s.close()


def config_text_with(d, section, line):
    """The daemon's config as text with line inserted after [section];
    returns (text, number of the inserted line)."""
    lines = render_config(d.config).splitlines()
    i = lines.index(f"[{section}]") + 1
    lines.insert(i, line)
    return "\n".join(lines) + "\n", i + 1


# --- HTTP ---------------------------------------------------------------


def test_healthz_ok(daemon):
    d = daemon()
    status, headers, body = d.request("/healthz")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["mqtt"] == "connected"
    assert health["database"] == "connected"


def test_metrics(daemon):
    d = daemon()
    status, headers, body = d.request("/metrics")
    assert status == 200
    ctype = headers["content-type"].replace(" ", "")
    assert ctype.startswith("text/plain;version=0.0.4"), ctype
    text = body.decode()
    for name in ("vialwatch_mqtt_messages_received_total",
                 "vialwatch_readings_stored_total",
                 "vialwatch_messages_rejected_total"):
        assert re.search(rf"^{name}(\{{.*\}})? \d", text, re.M), name
    samples = d.metrics()
    assert samples.get("vialwatch_mqtt_connected") == 1
    assert samples.get("vialwatch_db_connected") == 1


def test_metrics_count_received_messages(daemon, mqtt_broker):
    d = daemon()
    before = metric_total(d.metrics(), "vialwatch_mqtt_messages_received_total")
    publish(mqtt_broker.port, [
        ("zigbee2mqtt/kitchen-fridge", {"temperature": 4.3, "battery": 90}),
        ("zigbee2mqtt/lab-freezer", {"temperature": -19.5}),
    ])
    wait_for(lambda: metric_total(d.metrics(),
                                  "vialwatch_mqtt_messages_received_total")
             >= before + 2, 10, "2 messages counted in /metrics")


def test_unknown_path_is_404(daemon):
    d = daemon()
    status, _, _ = d.request("/no-such-page")
    assert status == 404
    status, _, _ = d.request("/healthz/extra")
    assert status == 404


def test_healthz_503_until_broker_comes_up(daemon, spare_broker):
    d = daemon(mqtt={"port": spare_broker.port}, wait=False)

    def down_with_db():
        answer = d.health_now()
        if answer and answer[0] == 503 and answer[1]["database"] == "connected":
            return answer[1]
        return None

    health = wait_for(down_with_db, 15, "503 with database connected")
    assert health["mqtt"] in ("disconnected", "connecting")
    assert health["status"] != "ok"
    assert d.running

    spare_broker.start()
    health = d.wait_healthy(timeout=45)
    assert health["mqtt"] == "connected"


def test_healthz_503_while_broker_down(daemon, mqtt_broker):
    d = daemon()
    mqtt_broker.stop()
    try:
        health = d.wait_health(503)
        assert health["mqtt"] in ("disconnected", "connecting")
        assert d.metrics().get("vialwatch_mqtt_connected") == 0
    finally:
        mqtt_broker.start()
    d.wait_healthy(timeout=45)


def test_healthz_503_while_database_down(daemon, pg):
    d = daemon()
    pg.stop()
    try:
        health = d.wait_health(503)
        assert health["database"] != "connected"
        assert health["mqtt"] == "connected"
        assert d.metrics().get("vialwatch_db_connected") == 0
    finally:
        pg.start()
    health = d.wait_healthy(timeout=45)
    assert health["database"] == "connected"


def test_http_port_in_use(daemon):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        d = daemon(http={"listen": f"127.0.0.1:{port}"}, wait=False)
        assert d.wait_exit(15) != 0
        assert re.search(rf"\b{port}\b", d.log_since_start())


def test_quiet_log_in_normal_operation(daemon, mqtt_broker):
    """Start, one reading, stop: nothing an operator would take for trouble."""
    d = daemon(daemon={"log_level": "info"})
    publish(mqtt_broker.port, [("zigbee2mqtt/kitchen-fridge",
                                {"temperature": 4.4})])
    wait_for(lambda: metric_total(d.metrics(),
                                  "vialwatch_mqtt_messages_received_total") >= 1,
             10, "the message counted")
    assert d.stop() == 0
    trouble = [line for line in d.log_since_start().splitlines()
               if re.match(r"(\[(warn|err)\]|warning:|error:|fatal)", line)]
    assert trouble == []


# --- Signals and reload -------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_stop_signal_exits_0(daemon, sig):
    d = daemon()
    started = time.monotonic()
    assert d.stop(sig, timeout=10) == 0
    assert time.monotonic() - started < 5, "took too long to stop"
    with pytest.raises(OSError):
        d.request("/healthz", timeout=1)


def test_reload_with_broken_config_keeps_running(daemon):
    d = daemon()
    text, n = config_text_with(d, "mqtt", "colour = blue")
    mark = d.log_size()
    d.reload(text)
    d.wait_log(re.escape(f'{d.conf_path}:{n}: unknown key "colour"'), after=mark)
    assert d.running
    status, health = d.healthz()
    assert status == 200, health


def test_reload_applies_new_config(daemon, mqtt_broker):
    d = daemon(daemon={"log_level": "info"})
    assert not re.search(r"^debug: ", d.log_since_start(), re.M)

    config = dict(d.config)
    config["daemon"] = dict(config["daemon"], log_level="debug")
    config["source esp"] = {"topic": "esphome/#", "format": "esphome"}
    mark = d.log_size()
    d.reload(config)
    d.wait_log(r"(?m)^debug: ", after=mark)
    d.wait_healthy()

    # The new [source] is subscribed: its messages are received.
    def received():
        return metric_total(d.metrics(), "vialwatch_mqtt_messages_received_total")

    before = received()
    publish(mqtt_broker.port, [("esphome/sensor/vaccine_fridge/state", "4.6")])
    wait_for(lambda: received() > before, 10, "the esphome message counted")


def test_debug_flag(daemon):
    quiet = daemon(daemon={"log_level": "error"})
    loud = daemon(daemon={"log_level": "error"}, args=["-d"])
    loud.wait_log(r"(?m)^debug: ")
    assert not re.search(r"^(debug|info): ", quiet.log_since_start(), re.M)


# --- systemd notify -----------------------------------------------------


@needs_systemd
def test_notify_ready_with_status(daemon, notify):
    d = daemon(env=notify.env(), wait=False)
    notify.wait("READY", "1")
    statuses = [m["STATUS"] for m in notify.received if "STATUS" in m]
    if not statuses:
        statuses = [notify.wait("STATUS", timeout=5)["STATUS"]]
    assert statuses[-1].strip()
    d.wait_healthy()


@needs_systemd
def test_notify_watchdog_at_half_the_interval(daemon, notify):
    daemon(env=notify.env(watchdog_usec=2_000_000), wait=False)
    notify.wait("READY", "1")
    pings = [notify.wait("WATCHDOG", "1", timeout=3)["_at"] for _ in range(4)]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert all(0.5 <= g <= 1.5 for g in gaps), f"watchdog gaps {gaps}"


@needs_systemd
def test_notify_reload(daemon, notify):
    d = daemon(env=notify.env())
    notify.wait("READY", "1")
    before = time.monotonic()
    d.signal(signal.SIGHUP)
    reloading = notify.wait("RELOADING", "1")
    after = time.monotonic()
    assert "MONOTONIC_USEC" in reloading, reloading
    usec = int(reloading["MONOTONIC_USEC"])
    # CLOCK_MONOTONIC, as time.monotonic() reads it on Linux.
    assert before * 1e6 - 1e6 <= usec <= after * 1e6 + 1e6
    notify.wait("READY", "1")
    d.wait_healthy()


@needs_systemd
def test_notify_stopping(daemon, notify):
    d = daemon(env=notify.env())
    notify.wait("READY", "1")
    d.signal(signal.SIGTERM)
    notify.wait("STOPPING", "1")
    assert d.wait_exit(10) == 0
