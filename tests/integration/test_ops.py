"""Production under systemd: the watchdog stops when the loop stalls,
vialwatchctl status, warnings about files others may read, no password
anywhere it could leak, and the hardening of the shipped unit."""

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import SRCDIR, VIALWATCHD, migrate
from servers import Mosquitto, render_config, run_ctl, wait_for

from test_daemon import NotifySocket, needs_systemd
from test_excursions import insert


class NotifyRecorder(NotifySocket):
    """A notify socket read by a thread, so that each datagram's arrival
    time is exact even while the test does something else."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.done:
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, OSError):
                continue
            msg = dict(line.split("=", 1) for line in
                       data.decode().splitlines() if "=" in line)
            msg["_at"] = time.monotonic()
            with self.lock:
                self.received.append(msg)

    def times(self, key, value="1"):
        with self.lock:
            return [m["_at"] for m in self.received if m.get(key) == value]

    def close(self):
        self.done = True
        self.thread.join(2)
        super().close()


@pytest.fixture
def recorder():
    r = NotifyRecorder()
    yield r
    r.close()


def gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


# --- watchdog -----------------------------------------------------------

WATCHDOG_USEC = 400_000        # pings every 0.2 s; a stall of 1.2 s


@needs_systemd
def test_watchdog_stops_while_the_loop_stalls(daemon, recorder):
    d = daemon(env=recorder.env(watchdog_usec=WATCHDOG_USEC), args=["-d"])
    wait_for(lambda: recorder.times("READY"), 10, "READY=1")
    wait_for(lambda: len(recorder.times("WATCHDOG")) >= 5, 10, "5 pings")
    before = recorder.times("WATCHDOG")
    assert max(gaps(before[-5:])) < 0.45, gaps(before)

    mark = d.log_size()
    sent = time.monotonic()
    d.signal(signal.SIGUSR2)
    d.wait_log(r"stalling the event loop for 1200 ms", after=mark)
    wait_for(lambda: len([t for t in recorder.times("WATCHDOG")
                          if t > sent + 1.2]) >= 5, 10,
             "pings again after the stall")
    pings = recorder.times("WATCHDOG")
    around = [t for t in pings if t > sent - 0.5]
    stall = max(gaps(around))
    assert 1.1 <= stall <= 2.0, f"longest gap {stall:.2f}s, gaps {gaps(around)}"
    # No ping during the stall itself.
    assert not [t for t in pings if sent + 0.1 < t < sent + 1.1], gaps(around)
    after = [t for t in pings if t > sent + 1.3]
    assert max(gaps(after)) < 0.45, gaps(after)
    assert d.running
    assert d.healthz()[0] == 200

    d.signal(signal.SIGTERM)
    wait_for(lambda: recorder.times("STOPPING"), 10, "STOPPING=1")
    assert d.wait_exit(10) == 0


@needs_systemd
def test_sigusr2_without_debug_is_ignored(daemon, recorder):
    d = daemon(env=recorder.env(watchdog_usec=WATCHDOG_USEC))
    wait_for(lambda: len(recorder.times("WATCHDOG")) >= 3, 10, "3 pings")
    sent = time.monotonic()
    d.signal(signal.SIGUSR2)
    wait_for(lambda: len([t for t in recorder.times("WATCHDOG")
                          if t > sent]) >= 8, 10, "8 pings after SIGUSR2")
    around = [t for t in recorder.times("WATCHDOG") if t > sent - 0.5]
    assert max(gaps(around)) < 0.45, gaps(around)
    assert d.running
    assert "stalling" not in d.log_since_start()


@needs_systemd
def test_watchdog_pid_of_another_process_means_no_pings(daemon, recorder):
    env = recorder.env(watchdog_usec=WATCHDOG_USEC)
    env["WATCHDOG_PID"] = str(os.getpid())
    d = daemon(env=env)
    wait_for(lambda: recorder.times("READY"), 10, "READY=1")
    # Pings would come every 0.2 s: wait for 5 of their intervals.
    d.wait_healthy()
    time.sleep(1.0)
    assert recorder.times("WATCHDOG") == []


@needs_systemd
def test_watchdog_pid_of_the_daemon_means_pings(daemon, recorder, tmp_path):
    # The shell's pid is the daemon's once it execs it.
    wrapper = tmp_path / "with-watchdog-pid"
    wrapper.write_text(f'#!/bin/sh\nWATCHDOG_PID=$$ exec {VIALWATCHD} "$@"\n')
    wrapper.chmod(0o755)
    d = daemon(env=recorder.env(watchdog_usec=WATCHDOG_USEC),
               binary=str(wrapper))
    wait_for(lambda: len(recorder.times("WATCHDOG")) >= 3, 10, "3 pings")
    assert d.running


# --- vialwatchctl status ------------------------------------------------


def status_fixture(db):
    """Two clinics: an alarm nobody acknowledged, an acknowledged one, an
    ok fridge, an offline one and one without sensors."""
    lake = insert(db, "clinic", name="Lakeview Aesthetics",
               timezone="America/Chicago")
    harbor = insert(db, "clinic", name="Harbor Dermatology",
                 timezone="Europe/Berlin")
    f = {
        "vaccines": insert(db, "fridge", clinic_id=lake, name="Vaccines",
                        kind="fridge"),
        "botox": insert(db, "fridge", clinic_id=lake, name="Botox",
                     kind="fridge"),
        "fillers": insert(db, "fridge", clinic_id=harbor, name="Fillers",
                       kind="fridge"),
        "spare": insert(db, "fridge", clinic_id=harbor, name="Spare",
                     kind="fridge"),
        "empty": insert(db, "fridge", clinic_id=harbor, name="Empty",
                     kind="freezer"),
    }
    s = {k: insert(db, "sensor", key=f"zigbee2mqtt/{k}", fridge_id=f[k])
         for k in ("vaccines", "botox", "fillers", "spare")}
    for key, temps, minutes_ago in (("vaccines", [4.1, 4.3], 2),
                                    ("botox", [9.0, 9.4], 3),
                                    ("fillers", [1.5, 1.2], 4),
                                    ("spare", [5.0, 5.5], 120)):
        for i, t in enumerate(temps):
            db.execute("insert into vialwatch.reading (sensor_id, ts, temp_c) "
                       "values (%s, now() - %s * interval '1 minute', %s)",
                       [s[key], minutes_ago + len(temps) - 1 - i, t])
    db.execute("update vialwatch.sensor set last_seen = now()")
    high = insert(db, "excursion", fridge_id=f["botox"], sensor_id=s["botox"],
               kind="high", started_at="2026-01-01 00:00Z", peak_c=9.4)
    db.execute("update vialwatch.excursion set started_at = now() - "
               "interval '50 minutes', alarmed_at = now() - interval "
               "'20 minutes' where id = %s", [high])
    low = insert(db, "excursion", fridge_id=f["fillers"], sensor_id=s["fillers"],
              kind="low", started_at="2026-01-01 00:00Z", peak_c=1.2)
    db.execute("update vialwatch.excursion set started_at = now() - "
               "interval '40 minutes', alarmed_at = now() - interval "
               "'20 minutes', acked_at = now() - interval '5 minutes', "
               "acked_by = 'Dr. Ada Byrne' where id = %s", [low])
    for i, status in enumerate(["pending", "failed", "failed", "dead"]):
        db.execute("insert into vialwatch.notification "
                   "(channel, recipient, dedupe_key, status, next_attempt_at) "
                   "values ('hook:nobody', 'x', %s, %s, "
                   "now() + interval '1 day')", [f"status-test-{i}", status])
    return f, high, low


def test_status_text(daemon, db, pg):
    f, high, low = status_fixture(db)
    d = daemon()
    r = run_ctl(["status"], d.conf_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    rows = {}
    for line in out.splitlines():
        m = re.match(r"(Lakeview Aesthetics|Harbor Dermatology)\s+(\S+)\s+"
                     r"(\S+)\s+(.+?ago|-)\s+(ok|pending|alarm|acknowledged|"
                     r"no data|offline)\s+(.*)$", line)
        if m:
            rows[m.group(2)] = m.groups()
    assert set(rows) == {"Vaccines", "Botox", "Fillers", "Spare", "Empty"}, out
    assert rows["Vaccines"][2:5] == ("4.3", "2m ago", "ok"), rows["Vaccines"]
    assert rows["Botox"][2] == "9.4" and rows["Botox"][4] == "alarm"
    assert "1 NOT ACKNOWLEDGED" in rows["Botox"][5]
    assert rows["Fillers"][2] == "1.2" and rows["Fillers"][4] == "acknowledged"
    assert rows["Fillers"][5] == "1 open, acknowledged"
    assert rows["Spare"][4] == "offline" and rows["Spare"][3] == "2h 0m ago"
    assert rows["Empty"][2:5] == ("-", "-", "no data")
    # The columns line up under their heads.
    head = next(line for line in out.splitlines() if line.startswith("CLINIC"))
    vac = next(line for line in out.splitlines() if " Vaccines " in line)
    assert vac.index("4.3") == head.index("TEMP_C")
    assert re.search(rf"(?m)^{high}\s+Lakeview Aesthetics\s+Botox\s+high\s.*"
                     r"NOT ACKNOWLEDGED$", out), out
    assert re.search(rf"(?m)^{low}\s+Harbor Dermatology\s+Fillers\s+low\s.*"
                     r"Dr\. Ada Byrne, \d{4}-\d\d-\d\d \d\d:\d\d$", out), out
    assert "outbox: 1 pending, 2 failed, 1 dead" in out
    assert "reminders: 0 pending, 0 sent, 0 cancelled, 0 skipped" in out
    assert re.search(r"(?m)^vialwatchd\b.*\b(idle|active)", out), out
    assert re.search(rf"http://127\.0\.0\.1:{d.http_port}/healthz: ok "
                     r"\(HTTP 200\): mqtt connected, database connected", out), out


def test_status_json(daemon, db):
    f, high, low = status_fixture(db)
    d = daemon()
    r = run_ctl(["status", "--json"], d.conf_path)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    fridges = {x["fridge"]: x for x in st["fridges"]}
    assert fridges["Vaccines"]["temp_c"] == 4.3
    assert fridges["Vaccines"]["state"] == "ok"
    assert fridges["Vaccines"]["clinic"] == "Lakeview Aesthetics"
    assert 110 <= fridges["Vaccines"]["last_reading_age_s"] <= 200
    assert fridges["Botox"]["temp_c"] == 9.4
    assert fridges["Botox"]["state"] == "alarm"
    assert fridges["Botox"]["open_excursions"] == 1
    assert fridges["Botox"]["unacknowledged"] == 1
    assert fridges["Fillers"]["state"] == "acknowledged"
    assert fridges["Fillers"]["unacknowledged"] == 0
    assert fridges["Spare"]["state"] == "offline"
    assert fridges["Empty"]["state"] == "no data"
    assert fridges["Empty"]["temp_c"] is None
    ex = {x["id"]: x for x in st["excursions"]}
    assert set(ex) == {high, low}
    assert ex[high]["acknowledged"] is False and ex[high]["kind"] == "high"
    assert ex[high]["peak_c"] == 9.4 and ex[high]["fridge_id"] == f["botox"]
    assert ex[low]["acknowledged"] is True
    assert ex[low]["acked_by"] == "Dr. Ada Byrne"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", ex[low]["acked_at"])
    assert st["outbox"] == {"pending": 1, "failed": 2, "dead": 1,
                            "oldest_unsent_at": st["outbox"]["oldest_unsent_at"]}
    assert st["reminders"] == {"pending": 0, "sent": 0, "cancelled": 0,
                               "skipped": 0}
    assert st["sensors"]["total"] == 4
    names = [x["application_name"] for x in st["daemons"]]
    assert "vialwatchd" in names, names
    assert all(n.startswith("vialwatchd") for n in names)
    assert all(x["connected_since"] for x in st["daemons"])
    assert st["http"]["reachable"] is True
    assert st["http"]["status_code"] == 200
    assert st["http"]["health"]["status"] == "ok"
    assert st["database"]["schema_version"] >= 1


def test_status_without_daemon(clean_db, pg, db, tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    conf = tmp_path / "ctl.conf"
    conf.write_text(render_config({
        "daemon": {"state_dir": tmp_path},
        "database": {"conninfo": pg.conninfo("vialwatch")},
        "http": {"listen": f"127.0.0.1:{port}"},
        "reminders": {"template_dir": SRCDIR / "conf" / "templates"},
    }))
    try:
        r = run_ctl(["status"], conf)
        assert r.returncode == 0, r.stderr
        assert "no fridges" in r.stdout
        assert "no open excursions" in r.stdout
        assert "no vialwatchd connected to this database" in r.stdout
        assert f"http://127.0.0.1:{port}/healthz: Connection refused" in r.stdout
        r = run_ctl(["status", "--json"], conf)
        st = json.loads(r.stdout)
        assert st["fridges"] == [] and st["daemons"] == []
        assert st["http"]["reachable"] is False
        assert st["http"]["error"] == "Connection refused"
        r = run_ctl(["status", "--yaml"], conf)
        assert r.returncode == 2 and "usage:" in r.stderr
    finally:
        closed.close()


# --- files others may read ----------------------------------------------


def checked(path):
    return subprocess.run([VIALWATCHD, "-t", "-c", str(path)],
                          capture_output=True, text=True, timeout=30)


def minimal(tmp_path, **sections):
    conf = {
        "daemon": {"state_dir": tmp_path},
        "reminders": {"template_dir": SRCDIR / "conf" / "templates"},
        **sections,
    }
    path = tmp_path / "vialwatch.conf"
    path.write_text(render_config(conf))
    return path


def secret(path, text, mode):
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_private_files_give_no_warning(tmp_path):
    key = secret(tmp_path / "link.key", "k" * 32, 0o600)
    pw = secret(tmp_path / "mqtt.pw", "pw", 0o640)
    path = minimal(tmp_path, http={"secret_file": key},
                   mqtt={"password_file": pw})
    path.chmod(0o640)
    r = checked(path)
    assert r.returncode == 0
    assert r.stderr.splitlines() == [f"{path}: configuration ok"]


def test_world_readable_config_and_secrets_warn(tmp_path):
    key = secret(tmp_path / "link.key", "k" * 32, 0o644)
    pw = secret(tmp_path / "smtp.pw", "pw", 0o620)
    path = minimal(tmp_path, http={"secret_file": key},
                   smtp={"password_file": pw})
    path.chmod(0o664)
    r = checked(path)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines[-1] == f"{path}: configuration ok"
    assert sorted(lines[:-1]) == sorted([
        f"warning: configuration file {path} is readable by others "
        f"(mode 0664); fix: chmod 0640 {path}",
        # Its group is the daemon's: it may read it.
        f"warning: secret file {key} is readable by others (mode 0644); "
        f"fix: chmod 0640 {key}",
        f"warning: secret file {pw} is writable by others than its owner "
        f"(mode 0620); fix: chmod 0600 {pw}",
    ])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chgrp")
def test_secret_readable_by_another_group_warns(tmp_path):
    pw = secret(tmp_path / "mqtt.pw", "pw", 0o640)
    os.chown(pw, -1, 65534 if os.getegid() != 65534 else 0)
    path = minimal(tmp_path, mqtt={"password_file": pw})
    path.chmod(0o600)
    r = checked(path)
    assert r.returncode == 0
    assert (f"warning: secret file {pw} is readable by a group that is not "
            f"vialwatchd's (mode 0640); fix: chmod 0600 {pw}") in r.stderr


def test_warnings_at_start_and_reload(daemon, tmp_path):
    key = secret(tmp_path / "link.key", "k" * 32, 0o644)
    d = daemon(http={"secret_file": key})
    d.wait_log(rf"warning: secret file {re.escape(str(key))} is readable by "
               r"others \(mode 0644\)")
    assert "configuration file" not in d.log_since_start()
    mark = d.log_size()
    key.chmod(0o600)
    d.conf_path.chmod(0o644)
    d.reload()
    d.wait_log("configuration reloaded", after=mark)
    log = d.log_text()[mark:]
    assert f"configuration file {d.conf_path} is readable by others" in log
    assert "secret file" not in log


# --- secrets stay secret ------------------------------------------------


def test_passwords_never_shown(daemon, tmp_path):
    mqtt_pw = "mqtt-Pw-7f3a9c1e"
    smtp_pw = "smtp-Pw-2b8d4e6f"
    link_key = "link-Key-5c0e9a7d3b1f"
    pwfile = tmp_path / "mosquitto.passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "vialwatch",
                    mqtt_pw], check=True)
    broker = Mosquitto(tmp_path / "auth-mqtt", persistence=False,
                       anonymous=False, extra_lines=[f"password_file {pwfile}"])
    broker.start()
    try:
        d = daemon(args=["-d"], mqtt={
            "port": broker.port, "username": "vialwatch",
            "password_file": secret(tmp_path / "mqtt.pw", mqtt_pw, 0o600),
        }, smtp={
            "username": "alerts",
            "password_file": secret(tmp_path / "smtp.pw", smtp_pw, 0o600),
        }, http={"secret_file": secret(tmp_path / "link.key", link_key,
                                       0o600)})
        shown = {
            "log": d.log_since_start(),
            "/metrics": d.request("/metrics")[2].decode(),
            "/healthz": d.request("/healthz")[2].decode(),
            "cmdline": Path(f"/proc/{d.pid}/cmdline").read_bytes().decode(),
        }
        d.reload()
        d.wait_log("configuration reloaded")
        shown["log"] = d.log_since_start()
        for where, text in shown.items():
            for pw in (mqtt_pw, smtp_pw, link_key):
                assert pw not in text, f"{pw} in {where}"
        assert d.stop() == 0
        assert all(pw not in d.log_text()
                   for pw in (mqtt_pw, smtp_pw, link_key))
    finally:
        broker.stop()


# --- the systemd unit ---------------------------------------------------


def render_unit(tmp_path):
    text = (Path(SRCDIR) / "contrib" / "vialwatchd.service.in").read_text()
    text = text.replace("@sbindir@", "/usr/local/sbin").replace(
        "@sysconfdir@", "/usr/local/etc")
    unit = tmp_path / "vialwatchd.service"
    unit.write_text(text)
    return unit


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not installed")


@needs_analyze
def test_unit_exposure(tmp_path):
    unit = render_unit(tmp_path)
    r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                        "--no-pager", str(unit)],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout


@needs_analyze
def test_unit_verifies(tmp_path):
    unit = render_unit(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=120)
    allowed = re.compile(
        r"^(vialwatchd\.service: Command /usr/local/sbin/vialwatchd is not "
        r"executable: No such file or directory|vialwatchd\.service: Command "
        r"'man vialwatch[a-z.]*\(\d\)' failed with code \d+|\s*)$")
    # What the unit says is fine; the binary is not installed here.
    other = [line for line in (r.stdout + r.stderr).splitlines()
             if not allowed.search(line)]
    assert other == [], r.stdout + r.stderr
