"""The public HTTP listener under abuse: idle connections past
[http] max_connections, no file descriptor left, floods of forged links;
and the pages' own database connection as role vialwatch_web.

Every connection here is on 127.0.0.1, and every loop is bounded.
"""

import os
import resource
import select
import socket
import threading
import time
import urllib.parse

import psycopg
import pytest

from servers import publish, wait_for
from test_excursions import SOURCES, setup_fridge, wait_loaded
from test_outbox import (ACK_RE, alarm, alerts_daemon, http, recipients,
                         secret, token)  # noqa: F401 (secret: a fixture)
from test_reminders import clinic, patient, unsub_token

MAX = 20


def open_idle(port, count):
    """count TCP connections to port that send nothing."""
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


def closed_by_peer(socks):
    """The connections the daemon closed: readable, and at EOF."""
    poll = select.poll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poll.register(fd, select.POLLIN)
    gone = []
    for fd, _ in poll.poll(0):
        try:
            if by_fd[fd].recv(1) == b"":
                gone.append(by_fd[fd])
        except OSError:
            gone.append(by_fd[fd])
    return gone


def close_all(socks):
    for s in socks:
        s.close()


def cpu_seconds(pid):
    """User and system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lines(d, mark, text):
    return [line for line in d.log_text()[mark:].splitlines() if text in line]


def healthz_answers(d):
    answer = d.health_now()
    return answer if answer and answer[0] == 200 else None


def test_idle_connections_make_room(daemon):
    """Five times max_connections idle connections: the oldest idle ones
    are closed, /healthz answers, and the log says so once."""
    d = daemon(daemon={"log_level": "info"},
               http={"max_connections": MAX, "idle_timeout": "1h"})
    mark = d.log_size()
    socks = open_idle(d.http_port, 5 * MAX)
    try:
        gone = wait_for(lambda: (lambda g: g if len(g) >= 4 * MAX else None)(
            closed_by_peer(socks)), 20, "the oldest connections closed")
        status, health = wait_for(lambda: healthz_answers(d), 10,
                                  "/healthz under the flood")
        assert status == 200
        assert health["http_connections"] <= MAX, health
        # The newest stay open: at most MAX, this one included.
        assert len(gone) >= 4 * MAX, len(gone)
        assert len(lines(d, mark, "max_connections")) == 1, \
            d.log_text()[mark:]
    finally:
        close_all(socks)


def test_idle_timeout_closes(daemon):
    d = daemon(http={"idle_timeout": "1s"})
    socks = open_idle(d.http_port, 3)
    try:
        wait_for(lambda: len(closed_by_peer(socks)) == 3, 10,
                 "idle connections closed after 1 s")
        assert d.healthz()[0] == 200
    finally:
        close_all(socks)


def test_no_descriptor_left_pauses_the_listener(daemon, db, mqtt_broker):
    """The daemon's descriptors run out (a soft limit just above what it
    uses, and a cap far above it): accept() fails, and the listener
    rests instead of spinning; idle connections make room, /healthz
    answers, readings are stored, and the log has one line about it."""
    d = daemon(daemon={"log_level": "info"},
               http={"max_connections": 5000, "idle_timeout": "1h"})
    used = len(os.listdir(f"/proc/{d.pid}/fd"))
    _, hard = resource.prlimit(d.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (used + 20, hard))
    mark = d.log_size()
    cpu0, t0 = cpu_seconds(d.pid), time.monotonic()
    socks = open_idle(d.http_port, 300)
    try:
        d.wait_log(r"http: cannot accept a connection", after=mark)
        wait_for(lambda: healthz_answers(d), 20, "/healthz without descriptors")
        stored = d.metric("vialwatch_readings_stored_total")
        publish(mqtt_broker.port, [("zigbee2mqtt/fridge-fd",
                                    {"temperature": 4.2})])
        wait_for(lambda: d.metric("vialwatch_readings_stored_total") > stored,
                 20, "a reading stored meanwhile")
        cpu = (cpu_seconds(d.pid) - cpu0) / (time.monotonic() - t0)
        print(f"daemon CPU while out of descriptors: {cpu:.0%}")
        assert cpu < 0.5, f"{cpu:.0%} CPU"
        assert len(lines(d, mark, "cannot accept")) == 1, d.log_text()[mark:]
    finally:
        close_all(socks)


def test_all_busy_stops_accepting_until_one_closes(daemon, db, pg, secret):
    """max_connections = 1, its connection a page waiting for the database
    (a row lock held here): the second connection finds no idle one to
    close and the listener stops; a third is answered only once the page
    has answered and closed its connection, not before, and the daemon
    does not spin meanwhile."""
    c = clinic(db)
    p = patient(db, c, "BUSY")
    d = daemon(daemon={"log_level": "info"},
               http={"secret_file": secret, "max_connections": 1})
    link = (f"http://127.0.0.1:{d.http_port}/unsubscribe/" +
            unsub_token(p, "busy@patients.example", int(time.time()) + 3600))
    mark = d.log_size()
    posts = [threading.Thread(target=http, args=(link, {}), daemon=True)
             for _ in range(2)]
    with psycopg.connect(pg.conninfo("vialwatch")) as lock:
        lock.execute("select 1 from vialwatch.patient where id = %s "
                     "for update", [p])
        posts[0].start()
        wait_for(lambda: db.execute(
            "select count(*) from pg_stat_activity where wait_event_type = "
            "'Lock' and application_name = 'vialwatchd pages'").fetchone()[0],
            20, "the page waiting for the lock")
        posts[1].start()
        d.wait_log(r"http: more than 1 connections", after=mark)
        third = socket.create_connection(("127.0.0.1", d.http_port))
        third.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
        cpu0, t0 = cpu_seconds(d.pid), time.monotonic()
        third.settimeout(1)
        with pytest.raises(socket.timeout):
            third.recv(4096)        # not answered while the lock is held
        cpu = (cpu_seconds(d.pid) - cpu0) / (time.monotonic() - t0)
        assert cpu < 0.5, f"{cpu:.0%} CPU"
    # The lock is gone: the pages answer and close, and the third gets in.
    third.settimeout(60)
    answer = third.recv(4096)
    unsubscribed = db.execute("select unsubscribed_at from vialwatch.patient "
                              "where id = %s", [p]).fetchone()[0]
    third.close()
    for t in posts:
        t.join(30)
    assert answer.startswith(b"HTTP/1.1 ")
    assert unsubscribed is not None


# --- the pages' database connection -----------------------------------------


def pages_daemon(daemon, secret, conninfo, **kw):
    return daemon(overrides=SOURCES, alerts={"escalate_after": "1h"},
                  http={"secret_file": secret, "conninfo": conninfo}, **kw)


@pytest.fixture
def web_login(pg, db):
    """A login of the pages alone, member of vialwatch_web, no password
    (the test server trusts local connections)."""
    db.execute("do $$ begin if not exists (select from pg_roles where "
               "rolname = 'vw_pages_test') then create role vw_pages_test "
               "login in role vialwatch_web; end if; end $$")
    return pg.conninfo("vialwatch") + " user=vw_pages_test"


def test_pages_work_as_vialwatch_web_only(daemon, db, mqtt_broker, smtp,
                                          secret, web_login):
    """With [http] conninfo naming a login of vialwatch_web, the
    acknowledge page works; that role can read no table and run no other
    function, and the pages' connection is not the outbox's."""
    f = setup_fridge(db)
    d = pages_daemon(daemon, secret, web_login)
    wait_loaded(d, sensors=1)
    alarm(mqtt_broker, f, 13.0)
    msg = smtp.wait_messages(2)[0]
    link = ACK_RE.search(msg.get_content()).group(0)
    # The acknowledgement is the link's contact's (test_audit.py).
    (who,) = db.execute("select name from vialwatch.contact where email = %s",
                        (msg.envelope_to[0],)).fetchone()
    status, body = http(link)
    assert status == 200 and "Acknowledge" in body
    status, body = http(link, {"name": "Robin", "action": "moved the vials"})
    assert status == 200 and who in body
    assert db.execute("select acked_by from vialwatch.excursion").fetchone()[
        0] == who

    apps = {r[0]: r[1] for r in db.execute(
        "select application_name, usename from pg_stat_activity "
        "where application_name like 'vialwatchd %'")}
    assert apps["vialwatchd pages"] == "vw_pages_test", apps
    assert apps["vialwatchd outbox"] != "vw_pages_test", apps
    with psycopg.connect(web_login, autocommit=True) as web:
        web.execute("set role vialwatch_web")
        for sql in ["select * from vialwatch.excursion",
                    "select * from vialwatch.contact",
                    "update vialwatch.patient set unsubscribed_at = now()",
                    "select vialwatch.escalate('1h', '1h')"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                web.execute(sql)
        assert web.execute("select count(*) from "
                           "vialwatch.excursion_ack_page(1)").fetchone()[0] \
            in (0, 1)


def test_pages_login_outside_vialwatch_web_is_refused(daemon, db, pg, secret,
                                                      tmp_path):
    """A pages' login that may not become vialwatch_web gets no connection:
    the pages answer 503 and the log says why; the rest runs."""
    db.execute("do $$ begin if not exists (select from pg_roles where "
               "rolname = 'vw_not_web') then create role vw_not_web login; "
               "end if; end $$")
    d = pages_daemon(daemon, secret,
                     pg.conninfo("vialwatch") + " user=vw_not_web")
    d.wait_log(r"pages: database: cannot work as role vialwatch_web")
    status, health = d.healthz()
    assert status == 200 and health["pages_database"] == "disconnected"
    expires = int(time.time()) + 3600
    status, _ = http(f"http://127.0.0.1:{d.http_port}/ack/"
                     + token(1, "x@example.org", expires))
    assert status == 503


# --- under abuse, for a minute ----------------------------------------------


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Flood:
    """count idle connections kept open (those the daemon closes are made
    again, at most 500 a second), and rate forged-link requests a second,
    for seconds; on threads, stopped by stop() or the time."""

    def __init__(self, port, count, rate, seconds):
        self.port, self.count, self.rate = port, count, rate
        self.deadline = time.monotonic() + seconds
        self.stopping = threading.Event()
        self.sent = self.answered = self.reopened = 0
        self.threads = [threading.Thread(target=self.idle, daemon=True)] + [
            threading.Thread(target=self.forge, args=(i, 4), daemon=True)
            for i in range(4)]

    def running(self):
        return not self.stopping.is_set() and time.monotonic() < self.deadline

    def idle(self):
        socks = open_idle(self.port, self.count)
        try:
            while self.running():
                gone = closed_by_peer(socks)
                for s in gone:
                    socks.remove(s)
                    s.close()
                # A bounded attacker: at most 100 new ones a tick.
                more = min(self.count - len(socks), 100)
                socks += open_idle(self.port, more)
                self.reopened += more
                self.stopping.wait(0.2)
        finally:
            close_all(socks)

    def forge(self, i, threads):
        n = 0
        started = time.monotonic()
        while self.running():
            expires = int(time.time()) + 3600
            link = token(1000 + n, f"mallory{i}@example.org", expires,
                         key=b"not-the-key-0123456789abcdef")
            path = "/ack/" + urllib.parse.quote(link)
            self.sent += 1
            try:
                s = socket.create_connection(("127.0.0.1", self.port), 5)
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                          "Connection: close\r\n\r\n".encode())
                s.settimeout(5)
                if s.recv(12).startswith(b"HTTP/1.1 403"):
                    self.answered += 1
                s.close()
            except OSError:
                pass
            n += 1
            # Paced: n requests by n / (rate / threads) seconds.
            wait = started + n * threads / self.rate - time.monotonic()
            if wait > 0:
                self.stopping.wait(wait)

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)


@pytest.mark.slow
def test_two_thousand_idle_and_forged_links_for_a_minute(
        daemon, db, mqtt_broker, smtp, secret):
    """2,000 idle connections and 200 forged links a second for 60 s,
    against the default max_connections and a soft limit of 1024
    descriptors: /healthz keeps answering, the log stays short, and an
    alarm raised meanwhile is emailed within 2 s."""
    if raise_nofile() < 2300:
        pytest.skip("this test's own descriptor limit is below 2,300")
    f = setup_fridge(db)
    d = alerts_daemon(daemon, secret,
                      overrides={"daemon": {"log_level": "info"}})
    _, hard = resource.prlimit(d.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (1024, hard))
    wait_loaded(d, sensors=1)
    mark = d.log_size()
    flood = Flood(d.http_port, 2000, 200, 60)
    flood.start()
    latencies, alarm_delay = [], None
    try:
        while flood.running():
            t = time.monotonic()
            status, health = wait_for(lambda: healthz_answers(d), 10,
                                      "/healthz under the flood")
            latencies.append(time.monotonic() - t)
            if alarm_delay is None and time.monotonic() > \
                    flood.deadline - 30:
                t = time.monotonic()
                alarm(mqtt_broker, f, 13.0)
                smtp.wait_messages(2, timeout=30)
                alarm_delay = time.monotonic() - t
            flood.stopping.wait(1)
    finally:
        flood.stop()
    log = lines(d, mark, "")
    latencies.sort()
    print(f"forged requests sent {flood.sent}, answered 403 {flood.answered}; "
          f"idle connections reopened {flood.reopened}; /healthz "
          f"{len(latencies)} times, median {latencies[len(latencies) // 2]:.3f}"
          f" s, max {latencies[-1]:.3f} s; alarm email after "
          f"{alarm_delay:.3f} s; {len(log)} log lines")
    assert alarm_delay is not None and alarm_delay <= 2.0, alarm_delay
    assert recipients(smtp.messages()) == ["dana@lakeview.example",
                                           "sam@lakeview.example"]
    assert len(log) < 100, "\n".join(log[-20:])
    assert flood.sent >= 200 * 60 * 0.8, flood.sent
    assert d.healthz()[0] == 200
