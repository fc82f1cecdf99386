"""The loop never blocks on a host name: with a name server that takes its
time, the daemon resolves PostgreSQL's host name off its loop and keeps
reading from a broker it is already connected to."""

import socket
import struct
import threading
import time

from servers import publish, wait_for
from test_ingest import GATEWAY, count_readings, gateway_readings

NAME = "db.vialwatch.test"
DELAY_S = 5


class SlowNameServer:
    """A name server on 127.0.0.1 that answers NAME with 127.0.0.1 (A) and
    no address (AAAA), no sooner than DELAY_S after the first question and
    not before release(); other names do not exist."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.asked = threading.Event()
        self.released = threading.Event()
        self.answered = threading.Event()
        self.first = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def release(self):
        self.released.set()

    def close(self):
        self.released.set()
        self.sock.close()

    def _run(self):
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return
            threading.Thread(target=self._answer, args=(query, peer),
                             daemon=True).start()

    def _answer(self, query, peer):
        qid, = struct.unpack_from("!H", query)
        end, labels = 12, []
        while query[end]:
            labels.append(query[end + 1:end + 1 + query[end]].decode())
            end += 1 + query[end]
        qtype, = struct.unpack_from("!H", query, end + 1)
        question = query[12:end + 5]
        if self.first is None:
            self.first = time.monotonic()
        self.asked.set()
        self.released.wait(60)
        time.sleep(max(0.0, self.first + DELAY_S - time.monotonic()))
        found = ".".join(labels).lower() == NAME
        answers = b""
        if found and qtype == 1:
            answers = (struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) +
                       socket.inet_aton("127.0.0.1"))
        flags = 0x8180 if found else 0x8183
        reply = struct.pack("!HHHHHH", qid, flags, 1, 1 if answers else 0,
                            0, 0) + question + answers
        try:
            self.sock.sendto(reply, peer)
        except OSError:
            return
        if answers:
            self.answered.set()


def test_slow_resolver_delays_no_reading(daemon, db, pg, mqtt_broker,
                                         tmp_path):
    """PostgreSQL is named by a host name whose name server answers after
    5 s: meanwhile the daemon, connected to the broker, takes every
    reading published and answers /metrics; once the name is resolved the
    readings are stored."""
    dns = SlowNameServer()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver 127.0.0.1:{dns.port}\n"
                      "options timeout:60 attempts:1\n")
    conninfo = pg.conninfo("vialwatch").replace("host=127.0.0.1",
                                                f"host={NAME}")
    try:
        d = daemon(overrides=GATEWAY, wait=False,
                   env={"VIALWATCHD_RESOLV_CONF": resolv},
                   database={"conninfo": conninfo})
        d.wait_http()
        wait_for(dns.asked.is_set, 10, "the daemon asking for " + NAME)
        wait_for(lambda: d.metric("vialwatch_mqtt_connected") == 1, 10,
                 "the broker connected")
        sent = gateway_readings(0, 20, int(time.time() * 1000) - 60_000)
        publish(mqtt_broker.port, sent)
        wait_for(lambda: d.metric("vialwatch_readings_pending") >= 20, 10,
                 "the readings taken from the broker")
        # Taken while the name server still held its answer back.
        assert not dns.answered.is_set()
        dns.release()
        wait_for(lambda: count_readings(db, "gw/fridge-1") >= 20, 30,
                 "the readings stored once the name is resolved")
        assert dns.answered.is_set()
        assert f"database host {NAME} is 127.0.0.1" in d.log_text()
        d.check_alive()
    finally:
        dns.close()
