"""Alerts end to end, with the real SMTP catcher: the alarm email, its
escalation and repeats, the acknowledge page (GET shows, POST acknowledges,
forged and expired links refused), vialwatchctl ack, the recovery email to
everyone told, retries while the mail server is down, permanent failures,
two daemons on one database, and hook programs.

An alarm is made at once by a reading beyond the fridge's critical bound
(12 C), and ended by one back in range.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import ctl_config
from servers import publish, run_ctl, wait_for
from test_excursions import (SOURCES, excursions, insert, message, now, rows,
                             setup_fridge, wait_excursion, wait_loaded)

KEY = b"a-link-key-for-the-tests-0123456789"
ACK_RE = re.compile(r"http://127\.0\.0\.1:\d+/ack/[0-9]+\.[0-9]+\.[A-Za-z0-9_-]+"
                    r"\.[A-Za-z0-9_-]+")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(xid, who, expires, key=KEY):
    """A token as token.c makes it, for forging in the tests."""
    msg = f"vialwatch ack\n{xid}\n{who}\n{expires}".encode()
    mac = hmac.new(key, msg, hashlib.sha256).digest()
    return f"{xid}.{expires}.{b64url(who.encode())}.{b64url(mac)}"


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "link.key"
    path.write_bytes(KEY + b"\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def ctl_conf(pg, tmp_path):
    return ctl_config(tmp_path / "ctl.conf", pg.conninfo("vialwatch"), tmp_path)


def alerts_daemon(daemon, secret, escalate="1h", repeat="2h", **sections):
    return daemon(overrides={**SOURCES, **sections.pop("overrides", {})},
                  http={"secret_file": secret},
                  alerts={"escalate_after": escalate, "repeat_every": repeat},
                  **sections)


def alarm(mqtt_broker, f, temp=13.0, ts=None):
    publish(mqtt_broker.port, [message(f["key"], ts or now(), temp)])


def recover(mqtt_broker, f, temp=5.0):
    publish(mqtt_broker.port, [message(f["key"], now(), temp)])


def by_subject(msgs, prefix):
    return [m for m in msgs if m["Subject"].startswith(prefix)]


def recipients(msgs):
    return sorted(r for m in msgs for r in m.envelope_to)


def http(url, data=None, method=None):
    """(status, body) of a request; errors are answers too."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def acked(db, xid):
    return rows(db, "select acked_at, acked_by, action_note, acked_contact, "
                "acked_contact_id from vialwatch.excursion where id = %s",
                [xid])[0]


def outbox(db):
    return rows(db, "select * from vialwatch.notification order by id")


SENT = 'vialwatch_notifications_total{channel="email",status="sent"}'


def wait_sent(db, smtp, daemons, count=None, timeout=30, before=0):
    """Waits until count emails (None: those queued) are queued and sent:
    count email rows, all sent, count sends counted by the daemons (with
    before, those sent by daemons not running now), count messages at the
    catcher; returns the messages.  An email sent twice makes more
    messages than rows, or more sends than rows: it raises then."""
    def settled():
        # In this order: a message or a send counted before its row is
        # read cannot be, so more of them than rows is a duplicate.
        msgs = smtp.messages()
        sent = before + sum(d.metrics().get(SENT, 0) for d in daemons)
        ns = [n for n in outbox(db) if n["channel"] == "email"]
        assert len(msgs) <= len(ns) and sent <= len(ns), (
            f"{len(msgs)} messages and {sent} sends for {len(ns)} rows")
        want = len(ns) if count is None else count
        if len(ns) == want and all(n["status"] == "sent" for n in ns) \
                and sent == want and len(msgs) == want:
            return msgs
        return None
    return wait_for(settled, timeout, f"{count} emails sent once")


# --- the alarm email ---------------------------------------------------------


def test_alarm_email_content_and_ack_page(daemon, db, mqtt_broker, smtp,
                                          secret):
    f = setup_fridge(db)
    d = alerts_daemon(daemon, secret)
    wait_loaded(d, sensors=1)
    t0 = now().replace(microsecond=0)
    alarm(mqtt_broker, f, 13.4, t0)
    msgs = wait_sent(db, smtp, [d], 2)
    assert recipients(msgs) == ["dana@lakeview.example", "sam@lakeview.example"]
    (x,) = excursions(db, f["sensor"])

    m = msgs[0]
    assert m["Subject"] == ("ALARM: Botox fridge (Lakeview Aesthetics) above "
                            "8.0 °C, now 13.4 °C")
    assert m["From"] == "vialwatch <alerts@clinic.example>"
    assert m["To"] == m.envelope_to[0]
    assert m["Date"] is not None and m["Message-ID"].startswith("<")
    assert m.get_content_type() == "text/plain"
    body = m.get_content()
    for text in ["Botox fridge at Lakeview Aesthetics is above its range of "
                 "2.0 to 8.0 °C", "Now:           13.4 °C",
                 "Highest:       13.4 °C", "America/Chicago",
                 "beyond the critical bound of 12.0 °C",
                 "Botox lot C1234", "DO NOT USE",
                 "Call the manufacturer",
                 f"vialwatchctl ack {x['id']} --by EMAIL --note TEXT"]:
        assert text in body, text

    # Each recipient has a link of their own.
    links = {mm.envelope_to[0]: ACK_RE.search(mm.get_content()).group(0)
             for mm in msgs}
    assert links["dana@lakeview.example"] != links["sam@lakeview.example"]
    link = links["dana@lakeview.example"]

    # GET shows the excursion and a form; it acknowledges nothing, however
    # often a mail scanner fetches it.
    for _ in range(3):
        status, page = http(link)
        assert status == 200
        assert "Lakeview Aesthetics" in page and "<form" in page
        assert 'method="post"' in page
    assert acked(db, x["id"])["acked_at"] is None

    # A POST without a name is refused and changes nothing.
    status, page = http(link, {"name": " ", "action": "x"})
    assert status == 400
    assert acked(db, x["id"])["acked_at"] is None

    # The POST acknowledges as the contact the link was sent to (their
    # name, not what was typed), with the action; HTML is escaped.
    db.execute("update vialwatch.contact set name = 'Dana <b>Lee</b>' "
               "where id = %s", [f["contacts"]["dana"]])
    status, page = http(link, {"name": "D. Lee",
                               "action": "Moved stock to the spare fridge"})
    assert status == 200, page
    assert "Dana &lt;b&gt;Lee&lt;/b&gt;" in page and "<b>Lee" not in page
    a = acked(db, x["id"])
    assert a["acked_at"] is not None and a["acked_by"] == "Dana <b>Lee</b>"
    assert a["action_note"] == "Moved stock to the spare fridge"
    assert a["acked_contact"] == "dana@lakeview.example"
    assert a["acked_contact_id"] == f["contacts"]["dana"]
    # The audit trail names her too, as the person who acted.
    (au,) = rows(db, "select * from vialwatch.audit where table_name = "
                 "'excursion' and row_id = %s", [str(x["id"])])
    assert au["actor_contact_id"] == f["contacts"]["dana"]
    assert au["actor_os_user"] is None and au["action"] == "update"
    assert au["new"]["acked_by"] == "Dana <b>Lee</b>"
    assert au["old"]["acked_at"] is None

    # A second POST (Sam's link) changes nothing and says who it was.
    status, page = http(links["sam@lakeview.example"],
                        {"name": "Sam", "action": "also"})
    assert status == 200 and "Already acknowledged" in page
    assert acked(db, x["id"])["acked_by"] == "Dana <b>Lee</b>"
    # The page now shows the acknowledgement instead of the form.
    status, page = http(link)
    assert status == 200 and "<form" not in page and "Dana" in page
    wait_for(lambda: d.metrics().get("vialwatch_acknowledgements_total") == 1,
             10, "the acknowledgement counted")
    m = d.metrics()
    assert m['vialwatch_notifications_total{channel="email",status="sent"}'] == 2
    assert m["vialwatch_notification_delivery_seconds_count"] == 2


def test_forged_altered_and_expired_links(daemon, db, mqtt_broker, smtp,
                                          secret):
    f = setup_fridge(db)
    d = alerts_daemon(daemon, secret)
    wait_loaded(d, sensors=1)
    alarm(mqtt_broker, f)
    (m, _) = smtp.wait_messages(2)
    link = ACK_RE.search(m.get_content()).group(0)
    (x,) = excursions(db, f["sensor"])
    base = link[:link.index("/ack/") + 5]
    who = m.envelope_to[0]
    later = int(time.time()) + 3600

    forged = [
        token(x["id"], who, later, key=b"not-the-key-0123456789"),
        token(x["id"] + 1, who, later)[:-3] + "AAA",
        # One character of the MAC changed: not its last, whose low bits
        # are padding that a base64 decoder may ignore.
        link[len(base):-5] + ("A" if link[-5] != "A" else "B") + link[-4:],
        link[len(base):].replace(f"{x['id']}.", f"{x['id'] + 1}.", 1),
        "junk", "1.2.3.4",
    ]
    for t in forged:
        for data in (None, {"name": "Mallory", "action": "none"}):
            status, page = http(base + t, data)
            assert status == 403, (t, status)
            assert "not valid" in page
    expired = token(x["id"], who, int(time.time()) - 1)
    status, page = http(base + expired, {"name": "Late", "action": "x"})
    assert status == 403 and "expired" in page
    assert acked(db, x["id"])["acked_at"] is None

    # A token made with the right key works: the test's forging is right.
    status, _ = http(base + token(x["id"], who, later),
                     {"name": "Kim", "action": "checked"})
    assert status == 200
    assert acked(db, x["id"])["acked_by"] in ("Dana Lee", "Sam Ortiz")


# --- escalation, repeats, recovery ---------------------------------------------


def test_escalation_repeat_ack_and_recovery(daemon, db, mqtt_broker, smtp,
                                            secret, ctl_conf):
    """tier 1 at once, tier 2 after escalate_after, a repeat to both after
    repeat_every; a GET of the link stops nothing; vialwatchctl ack does;
    the recovery goes to everyone told."""
    f = setup_fridge(db)
    insert(db, "contact", clinic_id=f["clinic"], name="Owner",
                   email="owner@lakeview.example", tier=3)
    d = alerts_daemon(daemon, secret, escalate="4s", repeat="7s")
    wait_loaded(d, sensors=1)
    t0 = time.monotonic()
    alarm(mqtt_broker, f)
    first = smtp.wait_messages(2)
    assert recipients(first) == ["dana@lakeview.example",
                                 "sam@lakeview.example"]
    link = ACK_RE.search(first[0].get_content()).group(0)

    msgs = smtp.wait_messages(3, timeout=20)
    esc = by_subject(msgs, "ESCALATED")
    assert recipients(esc) == ["kim@lakeview.example"]
    assert time.monotonic() - t0 >= 3.5
    assert esc[0]["Subject"].startswith("ESCALATED to tier 2: ALARM: Botox "
                                        "fridge")
    assert ACK_RE.search(esc[0].get_content())

    # A GET (a mail scanner) does not stop anything.
    assert http(link)[0] == 200

    # The repeat reaches tiers 1 and 2; tier 3 joins at 8 s.
    msgs = wait_for(lambda: (lambda ms: ms if by_subject(ms, "REPEAT") and
                             by_subject(ms, "ESCALATED to tier 3") else None)(
                                 smtp.messages()), 30, "repeat and tier 3")
    msgs = wait_sent(db, smtp, [d])
    rep = by_subject(msgs, "REPEAT 1:")
    assert set(recipients(rep)) <= {"dana@lakeview.example",
                                    "sam@lakeview.example",
                                    "kim@lakeview.example"}
    assert "dana@lakeview.example" in recipients(rep)
    assert recipients(by_subject(msgs, "ESCALATED to tier 3")) == [
        "owner@lakeview.example"]
    (x,) = excursions(db, f["sensor"])
    assert x["acked_at"] is None

    # --by names a contact (by email or id); a name is not enough.
    r = run_ctl(["ack", str(x["id"]), "--by", "Kim Boss", "--note",
                 "Door fixed, stock moved"], ctl_conf)
    assert r.returncode == 1 and 'nobody known as "Kim Boss"' in r.stderr
    assert acked(db, x["id"])["acked_at"] is None
    r = run_ctl(["ack", str(x["id"]), "--by", "kim@lakeview.example",
                 "--note", "Door fixed, stock moved"], ctl_conf)
    assert r.returncode == 0, r.stderr
    assert f"excursion {x['id']} acknowledged by Kim Boss" in r.stdout
    r = run_ctl(["ack", str(x["id"]), "--by", "sam@lakeview.example",
                 "--note", "x"], ctl_conf)
    assert r.returncode == 1 and "already acknowledged by Kim Boss" in r.stderr
    r = run_ctl(["ack", "999999", "--by", "sam@lakeview.example", "--note",
                 "x"], ctl_conf)
    assert r.returncode == 1 and "no excursion 999999" in r.stderr

    # Escalation and repeats stop: nothing new for two repeat periods.
    time.sleep(1)
    count = len(smtp.messages())
    time.sleep(15)
    assert len(smtp.messages()) == count
    a = acked(db, x["id"])
    assert a["acked_by"] == "Kim Boss" and a["acked_contact"] is None
    assert a["acked_contact_id"] == f["contacts"]["boss"]

    # The recovery goes to everyone who was told, once.
    recover(mqtt_broker, f)
    msgs = wait_for(lambda: (lambda ms: ms if len(ms) == 4 else None)(
        by_subject(smtp.messages(), "Recovered")), 20, "4 recovery emails")
    assert recipients(msgs) == ["dana@lakeview.example",
                                "kim@lakeview.example",
                                "owner@lakeview.example",
                                "sam@lakeview.example"]
    body = msgs[0].get_content()
    for text in ["back in its range", "Highest:        13.0 °C",
                 "Degree-minutes:", "Botox lot C1234, expires 2030-01-31, "
                 "now quarantined", "Juvederm lot J5, now quarantined"]:
        assert text in body, text
    assert not ACK_RE.search(body)
    msgs = wait_sent(db, smtp, [d])
    assert len(by_subject(msgs, "Recovered")) == 4


# --- delivery faults ---------------------------------------------------------


def test_mail_server_down_for_a_minute(daemon, db, mqtt_broker, smtp, secret):
    """Refused with 451 for 60 s: readings keep being stored, every email
    arrives once the server is back, none twice."""
    f = setup_fridge(db)
    d = alerts_daemon(daemon, secret)
    wait_loaded(d, sensors=1)
    smtp.refuse("451 4.3.0 Try again later")
    alarm(mqtt_broker, f)
    wait_for(lambda: any(n["attempts"] >= 1 and n["status"] == "failed"
                         for n in outbox(db)), 15, "a failed attempt")
    n = outbox(db)[0]
    assert "451" in n["last_error"], n
    stored = d.metric("vialwatch_readings_stored_total")
    for i in range(6):
        time.sleep(10)
        publish(mqtt_broker.port, [message(f["key"], now(), 13.0 + i / 10)])
    wait_for(lambda: d.metric("vialwatch_readings_stored_total") >= stored + 6,
             10, "readings stored while mail is down")
    assert smtp.messages() == []
    attempts = max(n["attempts"] for n in outbox(db))
    assert attempts >= 3, outbox(db)

    smtp.accept()
    msgs = wait_sent(db, smtp, [d], 2, timeout=120)
    assert recipients(msgs) == ["dana@lakeview.example", "sam@lakeview.example"]
    assert len({m["Message-ID"] for m in msgs}) == 2
    ns = outbox(db)
    assert [n["status"] for n in ns] == ["sent", "sent"]
    assert all(n["sent_at"] is not None for n in ns)
    m = d.metrics()
    assert m['vialwatch_notifications_total{channel="email",status="failed"}'] \
        >= 4


def test_permanent_failure_goes_dead(daemon, db, mqtt_broker, smtp, secret):
    f = setup_fridge(db)
    db.execute("update vialwatch.contact set active = false where email <> "
               "'dana@lakeview.example'")
    d = alerts_daemon(daemon, secret)
    wait_loaded(d, sensors=1)
    smtp.refuse("550 5.1.1 No such user")
    alarm(mqtt_broker, f)
    (n,) = wait_for(lambda: [n for n in outbox(db) if n["status"] == "dead"],
                    60, "the notification dead")
    assert n["attempts"] == 3 and "550" in n["last_error"]
    smtp.accept()
    time.sleep(8)
    assert smtp.messages() == []
    wait_for(lambda: d.metrics().get(
        'vialwatch_notifications{channel="email",status="dead"}') == 1, 15,
        "the dead row in the backlog gauge")


def test_two_daemons_send_each_email_once(daemon, db, mqtt_broker, smtp,
                                          secret):
    """Both daemons read the same feed and run the same rules on one
    database: each email is queued once and sent once."""
    fridges = []
    for i in range(5):
        clinic = insert(db, "clinic", name=f"Clinic {i}",
                        timezone="Europe/Berlin")
        fridge = insert(db, "fridge", clinic_id=clinic, name=f"Fridge {i}")
        insert(db, "sensor", key=f"json/c{i}", fridge_id=fridge)
        for j in range(4):
            insert(db, "contact", clinic_id=clinic, name=f"C{i}{j}",
                   email=f"c{i}{j}@clinic{i}.example", tier=1)
        fridges.append(f"json/c{i}")
    a = alerts_daemon(daemon, secret)
    b = alerts_daemon(daemon, secret)
    wait_loaded(a, sensors=5)
    wait_loaded(b, sensors=5)
    publish(mqtt_broker.port, [message(k, now(), 14.0) for k in fridges])
    msgs = wait_sent(db, smtp, [a, b], 20)
    want = sorted(f"c{i}{j}@clinic{i}.example" for i in range(5)
                  for j in range(4))
    assert recipients(msgs) == want, [
        (n["dedupe_key"], n["recipient"]) for n in outbox(db)]
    sent = [d.metric('vialwatch_notifications_total{channel="email",'
                     'status="sent"}') for d in (a, b)]
    assert sum(sent) == 20, sent


# --- hooks --------------------------------------------------------------------


def test_hook_gets_json_and_env_and_a_hanging_one_is_killed(
        daemon, db, mqtt_broker, smtp, secret, tmp_path):
    out = tmp_path / "hook-out"
    out.mkdir()
    script = tmp_path / "record-hook"
    # Written under temporary names, then renamed: the .env first, the
    # .json last, so that a .json in place means both are complete.
    script.write_text("#!/bin/sh\n"
                      "set -e\n"
                      f"cat > {out}/.$VIALWATCH_EVENT.json.tmp\n"
                      f"env > {out}/.$VIALWATCH_EVENT.env.tmp\n"
                      f"mv {out}/.$VIALWATCH_EVENT.env.tmp "
                      f"{out}/$VIALWATCH_EVENT.env\n"
                      f"mv {out}/.$VIALWATCH_EVENT.json.tmp "
                      f"{out}/$VIALWATCH_EVENT.json\n")
    script.chmod(0o755)
    hang = tmp_path / "hang-hook"
    hang.write_text("#!/bin/sh\nsleep 3600\n")
    hang.chmod(0o755)
    f = setup_fridge(db)
    d = alerts_daemon(daemon, secret, overrides={
        "hook record": {"command": f"{script} --from-test",
                        "events": "excursion.open excursion.alarm "
                                  "excursion.close excursion.ack"},
        "hook hang": {"command": str(hang), "events": "excursion.alarm",
                      "timeout": "1s"}})
    wait_loaded(d, sensors=1)
    alarm(mqtt_broker, f, 12.5)
    wait_for(lambda: (out / "excursion.alarm.json").exists(), 15,
             "the alarm hook")
    (x,) = excursions(db, f["sensor"])
    data = json.loads((out / "excursion.alarm.json").read_text())
    assert data["event"] == "excursion.alarm"
    assert data["excursion_id"] == x["id"] and data["kind"] == "high"
    assert data["clinic"] == "Lakeview Aesthetics"
    assert data["fridge"] == "Botox fridge" and data["peak_c"] == 12.5
    wait_for(lambda: (out / "excursion.open.json").exists(), 15,
             "the open hook")
    env = dict(line.split("=", 1) for line in
               (out / "excursion.alarm.env").read_text().splitlines()
               if "=" in line)
    assert env["VIALWATCH_EVENT"] == "excursion.alarm"
    assert env["VIALWATCH_FRIDGE"] == "Botox fridge"
    assert env["VIALWATCH_EXCURSION_ID"] == str(x["id"])
    assert env["PATH"] == "/usr/bin:/bin"
    assert "PGPASSWORD" not in env and "HOME" not in env

    # The hanging hook is killed at its timeout and retried like email.
    hook_rows = lambda: [n for n in outbox(db) if n["channel"] == "hook:hang"]
    (n,) = wait_for(lambda: [n for n in hook_rows() if n["attempts"] >= 1
                             and n["last_error"]], 15, "the hang timed out")
    assert "timed out" in n["last_error"] and n["status"] == "failed"
    # Killed with its process group; the script is gone (its run ends
    # when it is reaped, before the row says so).
    wait_for(lambda: str(hang) not in os.popen("ps -eo args").read(), 10,
             "the hanging hook gone")

    # Acknowledge and recovery reach the recording hook.
    # (by the contact the link was sent to, whatever name is typed)
    m = smtp.wait_messages(2)[0]
    status, _ = http(ACK_RE.search(m.get_content()).group(0),
                     {"name": "D.", "action": "fixed"})
    assert status == 200
    wait_for(lambda: (out / "excursion.ack.json").exists(), 15, "ack hook")
    assert json.loads((out / "excursion.ack.json").read_text())[
        "acked_by"] == {"dana@lakeview.example": "Dana Lee",
                        "sam@lakeview.example": "Sam Ortiz"}[m.envelope_to[0]]
    recover(mqtt_broker, f)
    wait_for(lambda: (out / "excursion.close.json").exists(), 15,
             "close hook")
    assert json.loads((out / "excursion.close.json").read_text())[
        "ended_at"] is not None
    m = d.metrics()
    assert m['vialwatch_notifications_total{channel="hook",status="sent"}'] \
        >= 4
    assert m['vialwatch_notifications_total{channel="hook",status="failed"}'] \
        >= 1


# --- the mail server's settings ---------------------------------------------


def test_smtp_auth_from_password_file_and_starttls_required(
        daemon, db, mqtt_broker, secret, tmp_path):
    """AUTH with the password of password_file (never in the log); with
    tls = required, a server without STARTTLS gets nothing in clear."""
    from servers import SmtpCatcher
    server = SmtpCatcher(tmp_path / "smtp-auth", auth=("alerts", "s3cr3t-pw"))
    server.start()
    try:
        pw = tmp_path / "smtp.password"
        pw.write_text("s3cr3t-pw\n")
        pw.chmod(0o600)
        f = setup_fridge(db)
        url = f"smtp://127.0.0.1:{server.port}"
        d = alerts_daemon(daemon, secret, smtp={
            "url": url, "tls": "none", "username": "alerts",
            "password_file": pw})
        wait_loaded(d, sensors=1)
        alarm(mqtt_broker, f)
        msgs = server.wait_messages(2)
        assert {m.login for m in msgs} == {"alerts"}
        assert "s3cr3t-pw" not in d.log_text()
        d.stop()

        db.execute("truncate vialwatch.notification")
        server.clear()
        d2 = alerts_daemon(daemon, secret, smtp={
            "url": url, "tls": "required", "username": "alerts",
            "password_file": pw})
        spare = insert(db, "fridge", clinic_id=f["clinic"], name="Spare")
        insert(db, "sensor", key="json/lakeview/spare", fridge_id=spare)
        wait_loaded(d2, sensors=2)
        publish(mqtt_broker.port, [message("json/lakeview/spare", now(), 13.5)])
        (n, _) = wait_for(lambda: (lambda ns: ns if len(ns) == 2 and all(
            x["last_error"] for x in ns) else None)(outbox(db)), 20,
            "both attempts failed")
        assert "STARTTLS" in n["last_error"] or "TLS" in n["last_error"], n
        assert n["status"] == "failed"
        time.sleep(1)
        assert server.messages() == []
        assert "s3cr3t-pw" not in d2.log_text()
    finally:
        server.stop()
