"""The [mqtt] options a real deployment needs, against a real Mosquitto:
shared subscriptions, a username with a password file, and TLS."""

import subprocess

import pytest

from servers import Mosquitto, free_port, publish, wait_for


def stored(db, key):
    """Temperatures stored for a sensor key."""
    return [r[0] for r in db.execute(
        "select r.temp_c from vialwatch.reading r join vialwatch.sensor s "
        "on s.id = r.sensor_id where s.key = %s order by r.ts", (key,))]


@pytest.fixture
def broker(tmp_path):
    """A factory for a private broker with extra settings, stopped after."""
    made = []

    def make(**kw):
        b = Mosquitto(tmp_path / f"mqtt-{len(made)}", persistence=False, **kw)
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.stop()


def test_shared_subscription(daemon, db, mqtt_broker):
    d = daemon(overrides={"source z2m": {
        "topic": "$share/vialwatch/zigbee2mqtt/+"}})
    publish(mqtt_broker.port, [("zigbee2mqtt/shared-fridge",
                                {"temperature": 4.75})])
    wait_for(lambda: stored(db, "zigbee2mqtt/shared-fridge") == [4.75], 10,
             "the reading through the shared subscription")
    assert d.healthz()[0] == 200


def auth_broker(broker, tmp_path, given):
    """A broker that knows user vialwatch with password "s3cret pass", and
    the daemon's [mqtt] settings with the password `given` in a file."""
    pwfile = tmp_path / "mosquitto.passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "vialwatch",
                    "s3cret pass"], check=True)
    b = broker(anonymous=False, extra_lines=[f"password_file {pwfile}"])
    secret = tmp_path / "mqtt.password"
    secret.write_text(given + "\n")
    secret.chmod(0o600)
    return b, {"port": b.port, "username": "vialwatch",
               "password_file": secret}


def test_username_and_password_file(daemon, db, broker, tmp_path):
    b, mqtt = auth_broker(broker, tmp_path, "s3cret pass")
    d = daemon(mqtt=mqtt)
    publish(b.port, [("zigbee2mqtt/locked-fridge", {"temperature": 3.5})],
            auth=("vialwatch", "s3cret pass"))
    wait_for(lambda: stored(db, "zigbee2mqtt/locked-fridge") == [3.5], 10,
             "the reading through an authenticated connection")
    assert "s3cret" not in d.log_text()


def test_wrong_password_is_unhealthy_not_fatal(daemon, broker, tmp_path):
    _, mqtt = auth_broker(broker, tmp_path, "Zq9-not-the-password")
    d = daemon(wait=False, mqtt=mqtt)
    d.wait_log(r"broker refused the connection", timeout=10)
    status, body = d.healthz()
    assert status == 503 and body["mqtt"] != "connected"
    assert d.running
    assert "Zq9-not-the-password" not in d.log_text()


def make_certs(tmp_path):
    """A CA and a server certificate for 127.0.0.1, made with openssl."""
    def ssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True,
                       cwd=tmp_path)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=vialwatch test CA", "-keyout", "ca.key", "-out", "ca.crt")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey",
        "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
        "-out", "server.crt")
    return tmp_path / "ca.crt", tmp_path / "server.crt", tmp_path / "server.key"


def test_tls(daemon, db, broker, tmp_path):
    ca, crt, key = make_certs(tmp_path)
    plain = free_port()
    b = broker(listener_lines=[f"cafile {ca}", f"certfile {crt}",
                               f"keyfile {key}"],
               extra_lines=[f"listener {plain} 127.0.0.1"])
    d = daemon(mqtt={"port": b.port, "tls_ca_file": ca})
    publish(plain, [("zigbee2mqtt/tls-fridge", {"temperature": 6.25})])
    wait_for(lambda: stored(db, "zigbee2mqtt/tls-fridge") == [6.25], 10,
             "the reading over TLS")
    assert d.healthz()[0] == 200
