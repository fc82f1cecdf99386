"""Re-treatment reminders end to end, with the real SMTP catcher: a due
reminder is sent once with two daemons scanning and across a restart; no
consent, unsubscribed, a newer treatment and a booked appointment each
stop it with the reason; the clinic-local send window, also across the DST
changes of two zones (the daemon's clock set by libfaketime); the
unsubscribe link (GET shows, POST unsubscribes, forged links refused).

Botox's seeded rule reminds at 90 and 104 days: a treatment 95 days ago
has step 1 due.
"""

import datetime
import hashlib
import hmac
import os
import re
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from servers import http_get, wait_for
from test_excursions import insert, now, rows
from test_outbox import (KEY, b64url, http, secret,  # noqa: F401 (fixture)
                         wait_sent)

UTC = datetime.timezone.utc
FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def zone_at(hour):
    """An Etc/GMT zone whose local time now is about hour:MM."""
    off = (hour - now().hour) % 24
    if off > 14:
        off -= 24
    if off == 0:
        return "Etc/UTC"
    # Etc/GMT-5 is five hours ahead of UTC (POSIX signs).
    return f"Etc/GMT{'-' if off > 0 else '+'}{abs(off)}"


def clinic(db, name="Lakeview Aesthetics", tz=None, **cols):
    return insert(db, "clinic", name=name, timezone=tz or zone_at(12), **cols)


def patient(db, clinic_id, ref, first="Ana", email=None, consent=True,
            **cols):
    return insert(db, "patient", clinic_id=clinic_id, external_ref=ref,
                  first_name=first, last_name="Doe",
                  email=email or f"{ref.lower()}@patients.example",
                  email_consent=consent, **cols)


def treatment(db, patient_id, days_ago=95, product="Botox", at=None, **cols):
    return insert(db, "treatment", patient_id=patient_id, product=product,
                  area=cols.pop("area", "glabella"),
                  treated_at=at or now() - datetime.timedelta(days=days_ago),
                  **cols)


def reminders(db):
    return rows(db, "select r.*, t.patient_id from vialwatch.reminder r "
                "join vialwatch.treatment t on t.id = r.treatment_id "
                "order by r.id")


def decided_and_sent(db, smtp, d, count):
    """Waits until count reminders are decided and the one email among
    them is sent, once; returns the messages."""
    wait_for(lambda: (lambda rs: len(rs) == count and all(
        r["status"] != "pending" for r in rs))(reminders(db)), 15,
        f"{count} reminders decided")
    return wait_sent(db, smtp, [d], 1)


def reminder_daemon(daemon, secret, window="09:00-18:00", **kw):
    return daemon(http={"secret_file": secret},
                  reminders={"scan_interval": "1s", "send_window": window},
                  **kw)


def text_of(m):
    return m.get_body(preferencelist=("plain",)).get_content()


def html_of(m):
    part = m.get_body(preferencelist=("html",))
    return part.get_content() if part is not None else None


def unsubscribe_url(m):
    return re.fullmatch(r"<(http://[^>]+)>", m["List-Unsubscribe"]).group(1)


def quiet(smtp, seconds):
    """No email arrives for seconds."""
    time.sleep(seconds)
    return smtp.messages() == []


# --- sending -----------------------------------------------------------------


def test_due_reminder_sent_once_by_two_daemons_and_a_restart(
        daemon, db, smtp, secret):
    c = clinic(db, locale="en-US", phone="+1 312 555 0100",
               booking_url="https://lakeview.example/book")
    people = [patient(db, c, f"P-{i:03}", first=f"Ana{i}") for i in range(30)]
    for p in people:
        treatment(db, p)
    d1 = reminder_daemon(daemon, secret)
    d2 = reminder_daemon(daemon, secret)
    msgs = wait_sent(db, smtp, [d1, d2], 30)
    assert sorted(m.envelope_to[0] for m in msgs) == sorted(
        f"p-{i:03}@patients.example" for i in range(30))
    # Both daemons down while a step falls due (here: a new treatment),
    # then one restarted: it is sent once, and nothing sent before again.
    # A stop waits for the sends under way: none was.
    d1.stop()
    d2.stop()
    assert len(smtp.messages()) == 30
    late = patient(db, c, "LATE-1", first="Lou")
    treatment(db, late)
    d1.start()
    d1.wait_healthy()
    msgs = wait_sent(db, smtp, [d1], 31, before=30)
    assert len(msgs) == 31
    assert msgs[-1].envelope_to == ["late-1@patients.example"]
    msgs = msgs[:30]

    rs = reminders(db)
    assert len(rs) == 31
    assert {(r["step"], r["status"]) for r in rs} == {(1, "sent")}
    assert all(r["sent_at"] is not None for r in rs)
    ns = rows(db, "select * from vialwatch.notification order by id")
    assert len(ns) == 31 and {n["status"] for n in ns} == {"sent"}
    # Each was decided once, by one daemon or the other.
    decided = [re.findall(r"reminder \d+ sent", d.log_text()) for d in (d1, d2)]
    assert sum(len(x) for x in decided) == 31

    # The email itself, rendered from conf/templates.
    m = next(m for m in msgs if m.envelope_to == ["p-007@patients.example"])
    t = [r for r in rs if r["patient_id"] == people[7]][0]
    tr = rows(db, "select * from vialwatch.treatment where id = %s",
              [t["treatment_id"]])[0]
    tz = ZoneInfo(rows(db, "select timezone from vialwatch.clinic")[0][
        "timezone"])
    due = tr["treated_at"].astimezone(tz).date() + datetime.timedelta(days=90)
    assert "Ana7" in m["Subject"] or "Lakeview Aesthetics" in m["Subject"]
    assert "{{" not in m["Subject"]
    # From the clinic, at the address of [smtp] from.
    assert re.fullmatch(r'"?Lakeview Aesthetics"? <[^@<>]+@[^@<>]+>',
                        m["From"]), m["From"]
    body = text_of(m)
    assert "Ana7" in body and "Lakeview Aesthetics" in body
    assert "Botox" in body
    assert due.strftime("%B ") + str(due.day) + due.strftime(", %Y") in body
    assert "https://lakeview.example/book" in body
    assert "+1 312 555 0100" in body
    assert "{{" not in body
    html = html_of(m)
    assert html is not None and "Ana7" in html and "{{" not in html
    url = unsubscribe_url(m)
    assert url in body
    assert any(url.startswith(d.config["http"]["public_url"] + "/unsubscribe/")
               for d in (d1, d2))
    assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # /metrics: reminders by status.
    port = int(d1.config["http"]["listen"].rsplit(":", 1)[1])

    def sent_metric():
        _, _, text = http_get(port, "/metrics")
        mm = re.search(rb'^vialwatch_reminders\{status="sent"\} (\d+)$',
                       text, re.M)
        return mm and int(mm.group(1)) == 31

    wait_for(sent_metric, 15, "vialwatch_reminders{status=sent} 31")


def test_each_reason_stops_a_reminder(daemon, db, smtp, secret):
    c = clinic(db)
    ok = patient(db, c, "OK")
    no_consent = patient(db, c, "NOCONSENT", consent=False)
    gone = patient(db, c, "GONE", unsubscribed_at=now() - datetime.timedelta(
        days=3))
    again = patient(db, c, "AGAIN")
    booked = patient(db, c, "BOOKED")
    noemail = insert(db, "patient", clinic_id=c, external_ref="NOEMAIL",
                     first_name="Noe", email_consent=True)
    for p in (ok, no_consent, gone, again, booked, noemail):
        treatment(db, p)
    treatment(db, again, days_ago=10, product="botox", area="forehead")
    insert(db, "appointment", patient_id=booked,
           starts_at=now() + datetime.timedelta(days=6))
    # A cancelled appointment and a past one do not count.
    insert(db, "appointment", patient_id=ok,
           starts_at=now() + datetime.timedelta(days=6), status="cancelled")
    insert(db, "appointment", patient_id=ok,
           starts_at=now() - datetime.timedelta(days=6))

    d = reminder_daemon(daemon, secret)
    msgs = decided_and_sent(db, smtp, d, 6)
    assert [m.envelope_to for m in msgs] == [["ok@patients.example"]]
    got = {r["patient_id"]: (r["status"], r["reason"]) for r in reminders(db)}
    assert got[ok] == ("sent", None)
    assert got[no_consent] == ("skipped", "no email consent")
    assert got[noemail] == ("skipped", "no email address")
    assert got[gone][0] == "cancelled"
    assert got[gone][1].startswith("unsubscribed on ")
    assert got[again][0] == "cancelled"
    assert got[again][1].startswith("treated again with botox on ")
    assert got[booked][0] == "cancelled"
    assert got[booked][1].startswith("appointment booked for ")


def test_old_and_superseded_steps_are_not_sent(daemon, db, smtp, secret):
    c = clinic(db)
    late = patient(db, c, "LATE")
    both = patient(db, c, "BOTH")
    treatment(db, late, days_ago=400)     # imported years late
    treatment(db, both, days_ago=110)     # steps 90 and 104 both due
    d = reminder_daemon(daemon, secret)
    msgs = decided_and_sent(db, smtp, d, 2)
    assert [m.envelope_to for m in msgs] == [["both@patients.example"]]
    got = {(r["patient_id"], r["step"]): (r["status"], r["reason"])
           for r in reminders(db)}
    # The treatment 400 days ago has no rows: beyond every rule's reach.
    assert got == {(both, 1): ("skipped", "step 2 is due as well"),
                   (both, 2): ("sent", None)}


# --- the send window ---------------------------------------------------------

# vialwatch.send_window_open(zone, at, start, end), the pure function that
# decides the window, at instants around the DST changes of 2026 in Berlin,
# New York and Sydney: (name, zone, now UTC, start and end minutes, open at
# now, the day's window opening and closing in UTC).  In the hour repeated
# when clocks fall back the window is open both times.
WINDOWS = [
    ("Berlin day before spring", "Europe/Berlin", "2026-03-27 23:30", 540, 1080, 0, "2026-03-28 08:00", "2026-03-28 17:00"),
    ("Berlin spring day, 00:30 CET", "Europe/Berlin", "2026-03-28 23:30", 540, 1080, 0, "2026-03-29 07:00", "2026-03-29 16:00"),
    ("Berlin day after spring", "Europe/Berlin", "2026-03-29 22:30", 540, 1080, 0, "2026-03-30 07:00", "2026-03-30 16:00"),
    ("Berlin after the window: tomorrow's", "Europe/Berlin", "2026-03-28 17:30", 540, 1080, 0, "2026-03-29 07:00", "2026-03-29 16:00"),
    ("Berlin spring day, 1s before open", "Europe/Berlin", "2026-03-29 06:59:59", 540, 1080, 0, "2026-03-29 07:00", "2026-03-29 16:00"),
    ("Berlin spring day, at open", "Europe/Berlin", "2026-03-29 07:00", 540, 1080, 1, "2026-03-29 07:00", "2026-03-29 16:00"),
    ("Berlin spring day, 1s after open", "Europe/Berlin", "2026-03-29 07:00:01", 540, 1080, 1, "2026-03-29 07:00", "2026-03-29 16:00"),
    ("Berlin spring day, 1s before close", "Europe/Berlin", "2026-03-29 15:59:59", 540, 1080, 1, "2026-03-29 07:00", "2026-03-29 16:00"),
    ("Berlin spring day, at close", "Europe/Berlin", "2026-03-29 16:00", 540, 1080, 0, "2026-03-30 07:00", "2026-03-30 16:00"),
    ("Berlin spring day, 1s after close", "Europe/Berlin", "2026-03-29 16:00:01", 540, 1080, 0, "2026-03-30 07:00", "2026-03-30 16:00"),
    ("Berlin 02:30-04:00 starts in the gap", "Europe/Berlin", "2026-03-28 23:30", 150, 240, 0, "2026-03-29 01:00", "2026-03-29 02:00"),
    ("Berlin 02:00-02:59 wholly in the gap: next day", "Europe/Berlin", "2026-03-28 23:30", 120, 179, 0, "2026-03-30 00:00", "2026-03-30 00:59"),
    ("Berlin 00:00-09:00 across the gap", "Europe/Berlin", "2026-03-28 23:00", 0, 540, 1, "2026-03-28 23:00", "2026-03-29 07:00"),
    ("Berlin 18:00-24:00 before the gap", "Europe/Berlin", "2026-03-28 12:00", 1080, 1440, 0, "2026-03-28 17:00", "2026-03-28 23:00"),
    ("Berlin day before fall", "Europe/Berlin", "2026-10-23 22:30", 540, 1080, 0, "2026-10-24 07:00", "2026-10-24 16:00"),
    ("Berlin fall day, 00:30 CEST", "Europe/Berlin", "2026-10-24 22:30", 540, 1080, 0, "2026-10-25 08:00", "2026-10-25 17:00"),
    ("Berlin day after fall", "Europe/Berlin", "2026-10-25 23:30", 540, 1080, 0, "2026-10-26 08:00", "2026-10-26 17:00"),
    ("Berlin fall day, at close", "Europe/Berlin", "2026-10-25 17:00", 540, 1080, 0, "2026-10-26 08:00", "2026-10-26 17:00"),
    ("Berlin fall day, 1s before close", "Europe/Berlin", "2026-10-25 16:59:59", 540, 1080, 1, "2026-10-25 08:00", "2026-10-25 17:00"),
    ("Berlin 02:00-02:30 in the repeated hour", "Europe/Berlin", "2026-10-24 22:30", 120, 150, 0, "2026-10-25 00:00", "2026-10-25 00:30"),
    ("Berlin repeated hour, first 02:10", "Europe/Berlin", "2026-10-25 00:10", 120, 150, 1, "2026-10-25 00:00", "2026-10-25 00:30"),
    ("Berlin repeated hour, second 02:10: open again", "Europe/Berlin", "2026-10-25 01:10", 120, 150, 1, "2026-10-26 01:00", "2026-10-26 01:30"),
    ("Berlin 02:30-03:00 spans both 02:30s", "Europe/Berlin", "2026-10-24 22:30", 150, 180, 0, "2026-10-25 00:30", "2026-10-25 02:00"),
    ("Berlin 18:00-24:00 before fall", "Europe/Berlin", "2026-10-24 12:00", 1080, 1440, 0, "2026-10-24 16:00", "2026-10-24 22:00"),
    ("New York day before spring", "America/New_York", "2026-03-07 12:00", 540, 1080, 0, "2026-03-07 14:00", "2026-03-07 23:00"),
    ("New York spring day, 00:30 EST", "America/New_York", "2026-03-08 05:30", 540, 1080, 0, "2026-03-08 13:00", "2026-03-08 22:00"),
    ("New York day after spring", "America/New_York", "2026-03-09 12:00", 540, 1080, 0, "2026-03-09 13:00", "2026-03-09 22:00"),
    ("New York spring day, at open", "America/New_York", "2026-03-08 13:00", 540, 1080, 1, "2026-03-08 13:00", "2026-03-08 22:00"),
    ("New York spring day, 1s before open", "America/New_York", "2026-03-08 12:59:59", 540, 1080, 0, "2026-03-08 13:00", "2026-03-08 22:00"),
    ("New York spring day, 1s before close", "America/New_York", "2026-03-08 21:59:59", 540, 1080, 1, "2026-03-08 13:00", "2026-03-08 22:00"),
    ("New York spring day, at close", "America/New_York", "2026-03-08 22:00", 540, 1080, 0, "2026-03-09 13:00", "2026-03-09 22:00"),
    ("New York 18:00-23:00, UTC date ahead", "America/New_York", "2026-03-08 01:00", 1080, 1380, 1, "2026-03-07 23:00", "2026-03-08 04:00"),
    ("New York 02:30-04:00 starts in the gap", "America/New_York", "2026-03-08 05:30", 150, 240, 0, "2026-03-08 07:00", "2026-03-08 08:00"),
    ("New York day before fall", "America/New_York", "2026-10-31 12:00", 540, 1080, 0, "2026-10-31 13:00", "2026-10-31 22:00"),
    ("New York fall day", "America/New_York", "2026-11-01 04:30", 540, 1080, 0, "2026-11-01 14:00", "2026-11-01 23:00"),
    ("New York day after fall", "America/New_York", "2026-11-02 12:00", 540, 1080, 0, "2026-11-02 14:00", "2026-11-02 23:00"),
    ("New York fall day, 1s after open", "America/New_York", "2026-11-01 14:00:01", 540, 1080, 1, "2026-11-01 14:00", "2026-11-01 23:00"),
    ("New York fall day, 1s after close", "America/New_York", "2026-11-01 23:00:01", 540, 1080, 0, "2026-11-02 14:00", "2026-11-02 23:00"),
    ("New York 01:00-01:30 in the repeated hour", "America/New_York", "2026-11-01 04:30", 60, 90, 0, "2026-11-01 05:00", "2026-11-01 05:30"),
    ("Sydney day before autumn", "Australia/Sydney", "2026-04-03 14:00", 540, 1080, 0, "2026-04-03 22:00", "2026-04-04 07:00"),
    ("Sydney autumn day, 00:30 AEDT", "Australia/Sydney", "2026-04-04 13:30", 540, 1080, 0, "2026-04-04 23:00", "2026-04-05 08:00"),
    ("Sydney day after autumn", "Australia/Sydney", "2026-04-05 14:30", 540, 1080, 0, "2026-04-05 23:00", "2026-04-06 08:00"),
    ("Sydney autumn day, at open", "Australia/Sydney", "2026-04-04 23:00", 540, 1080, 1, "2026-04-04 23:00", "2026-04-05 08:00"),
    ("Sydney autumn day, at close", "Australia/Sydney", "2026-04-05 08:00", 540, 1080, 0, "2026-04-05 23:00", "2026-04-06 08:00"),
    ("Sydney day before spring", "Australia/Sydney", "2026-10-02 14:30", 540, 1080, 0, "2026-10-02 23:00", "2026-10-03 08:00"),
    ("Sydney spring day, 00:30 AEST", "Australia/Sydney", "2026-10-03 14:30", 540, 1080, 0, "2026-10-03 22:00", "2026-10-04 07:00"),
    ("Sydney day after spring", "Australia/Sydney", "2026-10-04 13:30", 540, 1080, 0, "2026-10-04 22:00", "2026-10-05 07:00"),
    ("Sydney spring day, 1s before close", "Australia/Sydney", "2026-10-04 06:59:59", 540, 1080, 1, "2026-10-03 22:00", "2026-10-04 07:00"),
    ("Sydney 02:30-04:00 starts in the gap", "Australia/Sydney", "2026-10-03 14:30", 150, 240, 0, "2026-10-03 16:00", "2026-10-03 17:00"),
]


@pytest.mark.parametrize("name,zone,at,start,end,inside,opens,closes", WINDOWS,
                         ids=[w[0] for w in WINDOWS])
def test_send_window_open(db, name, zone, at, start, end, inside, opens,
                          closes):
    def is_open(t, delta=0):
        t = datetime.datetime.fromisoformat(t).replace(tzinfo=UTC) + \
            datetime.timedelta(seconds=delta)
        return db.execute("select vialwatch.send_window_open(%s, %s, %s, %s)",
                          [zone, t, start, end]).fetchone()[0]

    assert is_open(at) == bool(inside)
    assert is_open(opens) and not is_open(opens, -1)
    assert is_open(closes, -1) and not is_open(closes)


def test_window_is_clinic_local(daemon, db, smtp, secret):
    c = clinic(db, tz=zone_at(3))         # 3 in the morning there
    treatment(db, patient(db, c, "NIGHT"))
    d = reminder_daemon(daemon, secret)
    assert quiet(smtp, 4)
    assert reminders(db) == []
    db.execute("update vialwatch.clinic set timezone = %s where id = %s",
               [zone_at(12), c])
    (m,) = smtp.wait_messages(1)
    assert m.envelope_to == ["night@patients.example"]


# The day of each DST change of two zones; at fake_utc the window
# 09:00-18:00 is closed and opens 15 s later, one hour off what the
# offset before the change would say.
DST = [
    # Berlin springs forward on 2027-03-28: 09:00 CEST is 07:00 UTC.
    ("Europe/Berlin", "2027-03-28 06:59:48"),
    # Berlin falls back on 2026-10-25: 09:00 CET is 08:00 UTC.
    ("Europe/Berlin", "2026-10-25 07:59:48"),
    # New York springs forward on 2027-03-14: 09:00 EDT is 13:00 UTC.
    ("America/New_York", "2027-03-14 12:59:48"),
    # New York falls back on 2026-11-01: 09:00 EST is 14:00 UTC.
    ("America/New_York", "2026-11-01 13:59:48"),
]


@pytest.mark.skipif(not FAKETIME.exists(), reason="libfaketime is missing")
@pytest.mark.parametrize("zone,fake_utc", DST)
def test_window_across_dst_change(daemon, db, smtp, secret, zone, fake_utc):
    start = datetime.datetime.fromisoformat(fake_utc).replace(tzinfo=UTC)
    opens = start + datetime.timedelta(seconds=12)
    c = clinic(db, tz=zone)
    treatment(db, patient(db, c, "DST"), at=start - datetime.timedelta(
        days=100))
    env = {"LD_PRELOAD": str(FAKETIME), "FAKETIME": "@" + fake_utc,
           "FAKETIME_DONT_FAKE_MONOTONIC": "1",
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
           ":verify_asan_link_order=0"}
    spawned = time.monotonic()
    reminder_daemon(daemon, secret, env=env)
    # Until the window opens nothing is sent, though the daemon scans.
    remaining = 12 - (time.monotonic() - spawned) - 1
    assert remaining > 3, "the daemon took too long to start"
    assert quiet(smtp, remaining)
    assert reminders(db) == []
    (m,) = smtp.wait_messages(1, timeout=20)
    sent_fake = start + datetime.timedelta(
        seconds=time.monotonic() - spawned)
    assert sent_fake >= opens
    assert m.envelope_to == ["dst@patients.example"]
    (r,) = reminders(db)
    assert r["status"] == "sent"


# --- unsubscribe -------------------------------------------------------------


def unsub_token(pid, who, expires, key=KEY):
    msg = f"vialwatch unsubscribe\n{pid}\n{who}\n{expires}".encode()
    mac = hmac.new(key, msg, hashlib.sha256).digest()
    return f"{pid}.{expires}.{b64url(who.encode())}.{b64url(mac)}"


def test_unsubscribe_link(daemon, db, smtp, secret):
    c = clinic(db, name="Praxis am Stadtpark")
    p = patient(db, c, "UNSUB", first="Lena")
    other = patient(db, c, "OTHER")
    treatment(db, p)
    d = reminder_daemon(daemon, secret)
    (m,) = smtp.wait_messages(1)
    url = unsubscribe_url(m)
    base = d.config["http"]["public_url"]

    def unsubscribed(pid):
        return rows(db, "select unsubscribed_at from vialwatch.patient "
                    "where id = %s", [pid])[0]["unsubscribed_at"]

    # A GET (a link scanner, a preview) only shows the page.
    for _ in range(3):
        code, page = http(url)
        assert code == 200
        assert "Praxis am Stadtpark" in page and "Lena" in page
        assert 'method="post"' in page
    assert unsubscribed(p) is None

    # Forged, altered, for someone else, or an ack token: refused.
    expires = int(time.time()) + 3600
    path = url[len(base):]
    tok = path.rsplit("/", 1)[1]
    bad = [unsub_token(p, "unsub@patients.example", expires, key=b"guess"),
           tok[:-2] + ("AA" if not tok.endswith("AA") else "BB"),
           tok.replace(f"{p}.", f"{other}.", 1),
           unsub_token(p, "unsub@patients.example", int(time.time()) - 10)]
    ack = f"vialwatch ack\n{p}\nunsub@patients.example\n{expires}".encode()
    bad.append(f"{p}.{expires}.{b64url(b'unsub@patients.example')}."
               f"{b64url(hmac.new(KEY, ack, hashlib.sha256).digest())}")
    for t in bad:
        code, _ = http(f"{base}/unsubscribe/{t}", data={}, method="POST")
        assert code == 403, t
    assert unsubscribed(p) is None and unsubscribed(other) is None

    # The one-click POST of RFC 8058.
    code, page = http(url, data={"List-Unsubscribe": "One-Click"})
    assert code == 200 and "no more treatment reminders" in page
    first = unsubscribed(p)
    assert first is not None
    code, page = http(url)          # the GET now says so
    assert code == 200 and "since" in page
    code, _ = http(url, data={})    # again: nothing changes
    assert code == 200 and unsubscribed(p) == first
    assert unsubscribed(other) is None
    assert "unsubscribe: patient %d unsubscribed" % p in d.log_text()

    # A later due step is cancelled, not sent.
    treatment(db, p, product="Dysport")
    wait_for(lambda: any(r["status"] == "cancelled" for r in reminders(db)),
             10, "the Dysport reminder cancelled")
    assert len(smtp.messages()) == 1


# --- the scan and the claim, in SQL ------------------------------------------


def scan(conn, at, start=0, end=1440, limit=500, create=True):
    return conn.execute(
        "select * from vialwatch.reminder_scan(%s, %s, %s, %s, %s)",
        [start, end, at, limit, create]).fetchall()


def claim(conn, at, start=540, end=1080):
    return conn.execute(
        "select id, reminder_id from vialwatch.notification_claim(10, "
        "'1 minute', '{email}', %s, %s, %s)", [start, end, at]).fetchall()


def test_two_scans_at_once_decide_each_row_once(clean_db, pg, db):
    c = clinic(db, tz="Etc/UTC")
    for i in range(20):
        treatment(db, patient(db, c, f"S-{i}"))
    at = now()
    assert scan(db, at, limit=0) == []          # the rows, none decided
    assert len(reminders(db)) == 20
    with pg.connect("vialwatch", autocommit=False) as a, \
            pg.connect("vialwatch", autocommit=False) as b:
        got_a = scan(a, at, limit=12, create=False)   # holds its 12 rows
        got_b = scan(b, at, create=False)       # skips them, takes the rest
        a.commit()
        b.commit()
    assert len(got_a) == 12 and len(got_b) == 8
    assert not {r[0] for r in got_a} & {r[0] for r in got_b}
    assert scan(db, at) == []
    n = rows(db, "select count(*) as n, count(distinct reminder_id) as r "
             "from vialwatch.notification")[0]
    assert n == {"n": 20, "r": 20}


def test_step_two_after_step_one(clean_db, db):
    c = clinic(db, tz="Etc/UTC")
    t = treatment(db, patient(db, c, "TWO"), days_ago=95)
    t0 = now()
    assert [r[1] for r in scan(db, t0)] == ["sent"]
    # Eleven days on, step 2 (104 days) is due: a second email.
    later = t0 + datetime.timedelta(days=11)
    assert [r[1] for r in scan(db, later)] == ["sent"]
    got = rows(db, "select step, status from vialwatch.reminder "
               "where treatment_id = %s order by step", [t])
    assert got == [{"step": 1, "status": "sent"}, {"step": 2, "status": "sent"}]
    assert scan(db, later + datetime.timedelta(days=30)) == []


def test_reminder_email_waits_for_the_window(clean_db, db):
    c = clinic(db, tz="Europe/Berlin")
    treatment(db, patient(db, c, "WIN"))
    day = now().date()
    noon = datetime.datetime(day.year, day.month, day.day, 11, tzinfo=UTC)
    assert [r[1] for r in scan(db, noon)] == ["sent"]
    # 23:00 in Berlin: the queued email (a retry, say) is not claimed.
    night = datetime.datetime(day.year, day.month, day.day, 22, tzinfo=UTC)
    assert claim(db, night) == []
    # Nor by a daemon without signed links, in the window or not.
    assert claim(db, noon, start=None) == []
    (row,) = claim(db, noon)
    assert row[1] is not None


def test_dead_email_and_deleted_patient(clean_db, db):
    c = clinic(db, tz="Etc/UTC")
    a = patient(db, c, "DEAD")
    b = patient(db, c, "ERASED")
    treatment(db, a)
    treatment(db, b)
    assert len(scan(db, now())) == 2
    (na,) = rows(db, "select n.id, n.attempts from vialwatch.notification n "
                 "join vialwatch.reminder r on r.id = n.reminder_id "
                 "join vialwatch.treatment t on t.id = r.treatment_id "
                 "where t.patient_id = %s", [a])
    db.execute("select vialwatch.notification_done(%s, %s, '550 no such "
               "user', '1 minute', true)", [na["id"], na["attempts"]])
    (r,) = [x for x in reminders(db) if x["patient_id"] == a]
    assert r["status"] == "skipped"
    assert r["reason"] == "undeliverable: 550 no such user"
    # An erasure takes the patient's queued email with it.
    db.execute("delete from vialwatch.patient where id = %s", [b])
    left = rows(db, "select recipient from vialwatch.notification")
    assert left == [{"recipient": "dead@patients.example"}]


def test_withdrawn_consent_stops_a_queued_email(clean_db, db):
    c = clinic(db, tz="Etc/UTC")
    p = patient(db, c, "WITHDRAW")
    treatment(db, p)
    assert [r[1] for r in scan(db, now())] == ["sent"]
    db.execute("update vialwatch.patient set email_consent = false "
               "where id = %s", [p])
    (n,) = rows(db, "select status, last_error from vialwatch.notification")
    assert n == {"status": "dead", "last_error": "email consent withdrawn"}
    (r,) = reminders(db)
    assert (r["status"], r["reason"]) == ("skipped", "email consent withdrawn")


def test_one_visit_one_reminder(clean_db, db):
    c = clinic(db, tz="Etc/UTC")
    p = patient(db, c, "VISIT")
    at = now() - datetime.timedelta(days=95)
    treatment(db, p, at=at, product="Botox", area="glabella")
    treatment(db, p, at=at, product="Dysport", area="crow's feet")
    got = sorted(r[1] for r in scan(db, now()))
    assert got == ["cancelled", "sent"]
    (r,) = [x for x in reminders(db) if x["status"] == "cancelled"]
    assert r["reason"].startswith("reminded with treatment ")
    assert r["reason"].endswith("(Dysport, the same day)")
