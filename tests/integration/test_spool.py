"""Nothing lost: the spool, crash recovery and backpressure, as an operator
would provoke them.  Each test publishes a known set of readings, breaks
something on the way (the daemon killed, PostgreSQL or Mosquitto stopped,
a spool record corrupted, the disk full) and then asserts every reading is
in vialwatch.reading exactly once.
"""

import os
import shutil
import signal
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import psycopg
import pytest

from servers import IS_ROOT, metric_total, publish, wait_for
from test_ingest import (GATEWAY, assert_each_once, count_readings,
                         gateway_readings, rejected)

KEY = "gw/fridge-1"
SPOOL_MAGIC = 0x31535756
HDR = struct.Struct("<III")


class Gateway:
    """A sensor gateway publishing readings one by one (QoS 1) in a
    thread, until stopped; sent holds every message the broker took."""

    def __init__(self, port, base_ms, first=0, interval=0.005):
        self.port = port
        self.base_ms = base_ms
        self.next = first
        self.interval = interval
        self.sent = []
        self.error = None
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        try:
            while not self._stop.is_set():
                batch = gateway_readings(self.next, 5, self.base_ms)
                publish(self.port, batch)
                self.sent.extend(batch)
                self.next += len(batch)
                time.sleep(self.interval)
        except Exception as e:  # reported by stop()
            self.error = e

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        if self.error:
            raise self.error
        return self.sent

    def wait_sent(self, n, timeout=30):
        wait_for(lambda: len(self.sent) >= n or self.error, timeout,
                 f"{n} readings published")
        if self.error:
            raise self.error


def spool_dir(d):
    return Path(d.config["daemon"]["state_dir"]) / "spool"


def spool_records(path):
    """(offset, body) of each record of a segment file."""
    data = path.read_bytes()
    out, off = [], 0
    while off + HDR.size <= len(data):
        magic, n, crc = HDR.unpack_from(data, off)
        assert magic == SPOOL_MAGIC, f"no record at {off} of {path}"
        body = data[off + HDR.size:off + HDR.size + n]
        assert zlib.crc32(body, zlib.crc32(data[off + 4:off + 8])) == crc
        out.append((off, body))
        off += HDR.size + n
    assert off == len(data), f"{len(data) - off} stray bytes in {path}"
    return out


def kill9(d):
    d.signal(signal.SIGKILL)
    d.proc.wait(10)
    assert d.proc.returncode == -signal.SIGKILL


def test_kill9_mid_stream(daemon, db, pg, mqtt_broker):
    """The daemon is killed with SIGKILL while readings stream in and the
    database holds the last batches back, then started again: the
    readings it had acknowledged to the broker but not committed come back
    from the spool, and every reading is stored exactly once."""
    d = daemon(overrides=GATEWAY)
    gw = Gateway(mqtt_broker.port, int(time.time() * 1000) - 3_600_000)
    gw.start()
    try:
        wait_for(lambda: count_readings(db, KEY) >= 100, 20, "100 stored")
        # A long report query on the table: the daemon's inserts wait.
        with pg.connect("vialwatch", autocommit=False) as lock:
            lock.execute("lock table vialwatch.reading in share mode")
            held = len(gw.sent)
            gw.wait_sent(held + 200)
            wait_for(lambda: d.metric("vialwatch_readings_pending") >= 100,
                     10, "readings held for the database")
            assert d.metric("vialwatch_spool_bytes") > 0
            kill9(d)
            lock.rollback()
        gw.wait_sent(len(gw.sent) + 100)
        d.start()
        d.wait_healthy(timeout=30)
        gw.wait_sent(len(gw.sent) + 100)
    finally:
        sent = gw.stop()
    wait_for(lambda: count_readings(db, KEY) >= len(sent), 30,
             f"{len(sent)} readings")
    assert_each_once(db, KEY, sent)
    assert d.metric("vialwatch_spool_replayed_total") >= 100
    assert "queued again" in d.log_text()
    wait_for(lambda: d.metric("vialwatch_spool_bytes") == 0, 10,
             "the spool trimmed")


def test_database_down_60s(daemon, db, pg, mqtt_broker):
    """PostgreSQL stopped for 60 s while a gateway keeps sending: /healthz
    says 503, the spool grows and /metrics shows it; once PostgreSQL is
    back every reading is stored exactly once and the spool is trimmed."""
    d = daemon(overrides=GATEWAY)
    gw = Gateway(mqtt_broker.port, int(time.time() * 1000) - 7_200_000,
                 interval=0.05)
    gw.start()
    spool_bytes, statuses = [], set()
    try:
        wait_for(lambda: count_readings(db, KEY) >= 20, 20, "20 stored")
        db.close()
        pg.stop()
        try:
            d.wait_health(503)
            until = time.monotonic() + 60
            while time.monotonic() < until:
                status, health = d.healthz()
                statuses.add((status, health["database"]))
                spool_bytes.append(d.metric("vialwatch_spool_bytes"))
                time.sleep(1)
        finally:
            pg.start()
        d.wait_healthy(timeout=45)
        gw.wait_sent(len(gw.sent) + 20)
    finally:
        sent = gw.stop()
    assert all(s == 503 and db_state != "connected"
               for s, db_state in statuses), statuses
    # The spool held what the database could not take, more and more.
    assert spool_bytes[-1] > spool_bytes[0] > 0, spool_bytes
    assert spool_bytes == sorted(spool_bytes)
    with pg.connect("vialwatch") as conn:
        wait_for(lambda: count_readings(conn, KEY) >= len(sent), 30,
                 f"{len(sent)} readings after the outage")
        assert_each_once(conn, KEY, sent)
    wait_for(lambda: d.metric("vialwatch_spool_bytes") == 0, 10,
             "the spool trimmed")
    assert d.metric("vialwatch_readings_stored_total") == len(sent)


def test_broker_restart_while_daemon_down(spare_broker, daemon, db):
    """The daemon is stopped; sensors keep publishing; Mosquitto (with
    persistence) restarts meanwhile.  The persistent session kept what
    came for the daemon, which stores all of it once it is back."""
    broker = spare_broker.start()
    d = daemon(mqtt={"port": broker.port}, overrides=GATEWAY)
    base_ms = int(time.time() * 1000) - 600_000
    sent = gateway_readings(0, 50, base_ms)
    publish(broker.port, sent)
    wait_for(lambda: count_readings(db, KEY) == 50, 10, "50 readings")
    assert d.terminate() == 0

    away = gateway_readings(50, 150, base_ms)
    publish(broker.port, away[:100])
    broker.restart()
    publish(broker.port, away[100:])
    d.start()
    d.wait_healthy(timeout=30)
    after = gateway_readings(200, 50, base_ms)
    publish(broker.port, after)
    sent += away + after
    wait_for(lambda: count_readings(db, KEY) >= len(sent), 20,
             f"{len(sent)} readings")
    assert_each_once(db, KEY, sent)


def test_corrupt_spool_record(daemon, db, pg, mqtt_broker):
    """A record in the middle of the spool is damaged while the daemon is
    down: at start it is skipped, counted and logged, and the records
    after it are replayed and stored."""
    dead_db = {"conninfo": pg.conninfo("vialwatch").replace(
        f"port={pg.port}", "port=1")}
    assert dead_db["conninfo"] != pg.conninfo("vialwatch")
    d = daemon(overrides=GATEWAY, database=dead_db, wait=False)
    d.wait_health(503)
    sent = gateway_readings(0, 30, int(time.time() * 1000) - 600_000)
    publish(mqtt_broker.port, sent)
    wait_for(lambda: d.metric("vialwatch_readings_pending") == 30, 10,
             "30 readings held")
    kill9(d)

    segments = sorted(spool_dir(d).glob("*.seg"))
    records = [r for seg in segments for r in
               ((seg, off, body) for off, body in spool_records(seg))]
    assert len(records) == 30
    seg, off, body = records[14]
    assert body.startswith(b"r" + KEY.encode() + b"\t")
    with open(seg, "r+b") as f:  # one flipped bit in the body
        f.seek(off + HDR.size + 5)
        byte = f.read(1)
        f.seek(off + HDR.size + 5)
        f.write(bytes([byte[0] ^ 0x10]))

    d.config["database"]["conninfo"] = pg.conninfo("vialwatch")
    d.start()
    d.wait_healthy(timeout=30)
    lost = sent[14]
    kept = sent[:14] + sent[15:]
    wait_for(lambda: count_readings(db, KEY) >= 29, 20, "29 readings")
    assert_each_once(db, KEY, kept)
    assert d.metric("vialwatch_spool_corrupt_total") == 1
    assert d.metric("vialwatch_spool_replayed_total") == 29
    assert f"corrupt record at offset {off}" in d.log_text()
    assert lost[1]["ts"] not in {ts for ts, in db.execute(
        "select (extract(epoch from ts) * 1000)::bigint "
        "from vialwatch.reading")}


def _spool_on_full_disk(tmp_path, state_dir):
    """A program that runs vialwatchd with state_dir/spool on a tmpfs of
    its own mount namespace, filled up before the daemon starts."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed for a private tmpfs")
    userns = [] if IS_ROOT else ["--map-root-user"]
    probe = subprocess.run(["unshare", "--mount", *userns, "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here: {probe.stderr.decode()}")
    spool = Path(state_dir) / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    wrapper = tmp_path / "vialwatchd-full-disk"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec unshare --mount {' '.join(userns)} sh -c '"
        'mount -t tmpfs -o size=8m tmpfs "$0" && '
        'dd if=/dev/zero of="$0/filler" bs=4k 2>/dev/null; '
        f'exec "$@"\' "{spool}" "{os.environ["VIALWATCHD"]}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, spool


def _start_on_full_disk(daemon, tmp_path):
    """A daemon that has subscribed once (so that the broker keeps a
    session for it), started again with its spool on a full disk."""
    state_dir = tmp_path / "full-state"
    wrapper, spool = _spool_on_full_disk(tmp_path, state_dir)
    d = daemon(overrides=GATEWAY, daemon={"state_dir": state_dir})
    assert d.stop() == 0
    d.binary = wrapper
    d.start()
    d.wait_http()
    status, health = d.healthz()
    assert status == 503, health
    assert health["spool"] == "No space left on device"
    d.wait_log("not reading from the broker until it can")
    return d, spool


def test_spool_disk_full(daemon, db, tmp_path, mqtt_broker):
    """The spool's disk is full: the daemon takes no message from the
    broker, which keeps them, says so in the log and /healthz, and does
    not crash; once there is room it takes and stores every one."""
    d, spool = _start_on_full_disk(daemon, tmp_path)
    sent = gateway_readings(0, 40, int(time.time() * 1000) - 600_000)
    publish(mqtt_broker.port, sent)
    assert "cannot write to" in d.log_text()
    assert "No space left on device" in d.log_text()
    assert d.metric("vialwatch_spool_write_errors_total") >= 1
    # Nothing was taken on trust: no record lives in memory only.
    assert d.metric("vialwatch_spool_unwritten_total") == 0
    assert d.metric("vialwatch_readings_pending") == 0

    # Room again (the tmpfs is seen through the daemon's own root).
    os.unlink(f"/proc/{d.pid}/root{spool}/filler")
    d.wait_healthy(timeout=10)
    wait_for(lambda: count_readings(db, KEY) >= 40, 20, "40 readings")
    assert_each_once(db, KEY, sent)
    assert "writing to" in d.log_text()
    assert "reading from the broker again" in d.log_text()
    assert d.metric("vialwatch_spool_unwritten_total") == 0
    d.check_alive()


def test_spool_disk_full_kill9(daemon, db, pg, tmp_path, mqtt_broker):
    """A full disk stops the acknowledgements, not the evidence: with the
    spool's disk full and the database holding its inserts back, 5,000
    QoS 1 readings are published and the daemon is killed with SIGKILL;
    started again with room on disk, it stores all 5,000, each once."""
    d, spool = _start_on_full_disk(daemon, tmp_path)
    sent = gateway_readings(0, 5000, int(time.time() * 1000) - 3_600_000)
    # A long report query on the table: nothing could be stored from
    # memory before the kill.
    with pg.connect("vialwatch", autocommit=False) as lock:
        lock.execute("lock table vialwatch.reading in share mode")
        publish(mqtt_broker.port, sent)
        assert d.metric("vialwatch_readings_pending") == 0
        assert d.metric("vialwatch_spool_unwritten_total") == 0
        kill9(d)
        lock.rollback()
    assert count_readings(db, KEY) == 0

    # Room again: the daemon runs with its spool on the real disk.
    d.binary = os.environ["VIALWATCHD"]
    d.start()
    d.wait_healthy(timeout=30)
    wait_for(lambda: count_readings(db, KEY) >= len(sent), 60,
             f"{len(sent)} readings")
    assert_each_once(db, KEY, sent)
    assert d.metric("vialwatch_spool_unwritten_total") == 0


def test_backpressure_stops_reading(daemon, db, pg, mqtt_broker):
    """With the database away and max_pending small, the daemon stops
    reading from the broker once it holds that much, rather than growing:
    the broker holds the rest, and all of it is stored once the database
    is back."""
    dead = pg.conninfo("vialwatch").replace(f"port={pg.port}", "port=1")
    d = daemon(overrides=GATEWAY, wait=False,
               database={"conninfo": dead, "max_pending": "64k"})
    d.wait_health(503)
    base_ms = int(time.time() * 1000) - 600_000
    sent = gateway_readings(0, 2000, base_ms)
    publish(mqtt_broker.port, sent)
    wait_for(lambda: "not reading from the broker until" in d.log_text(),
             10, "the daemon pausing MQTT")
    pending = d.metric("vialwatch_readings_pending")
    assert 0 < pending < len(sent), pending
    # It stopped at the bound, give or take the last read from the socket.
    held = d.metric("vialwatch_readings_pending_bytes")
    assert 64 * 1024 <= held < 80 * 1024, held
    time.sleep(1)  # it reads nothing more, however long it waits
    assert d.metric("vialwatch_readings_pending") == pending

    d.config["database"]["conninfo"] = pg.conninfo("vialwatch")
    d.reload(d.config)
    wait_for(lambda: count_readings(db, KEY) >= len(sent), 30,
             f"{len(sent)} readings")
    assert_each_once(db, KEY, sent)
    d.wait_healthy(timeout=20)
    assert rejected(db) == []
