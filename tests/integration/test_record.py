"""The inspector's record: the workday min/max check and the close-out of
excursions, with the real daemon, SMTP catcher and vialwatchctl.

The check calendar of a Berlin and a Chicago clinic over the spring and
autumn changes (vialwatch.check_scan with its clock as a parameter, and
the daemon's clock set by libfaketime); a missed check escalating from the
checkers to the admins; a check recorded through the link's POST (a GET
changes nothing); a note required out of range; an excursion closed out
with two lots (one usable, one discarded) and the monthly report showing
all of it; the weekly close-out reminder.
"""

import csv
import datetime
import io
import os
import re
import time
from pathlib import Path

import psycopg
import pytest

from servers import wait_for
from test_excursions import ctl, ctl_conf, insert, now, rows  # noqa: F401
from test_outbox import http, secret, token  # noqa: F401 (fixtures)

UTC = datetime.timezone.utc
FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
CHECK_RE = re.compile(r"http://127\.0\.0\.1:\d+/check/[0-9]+\.[0-9]+\."
                      r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def utc(s):
    return datetime.datetime.fromisoformat(s).replace(tzinfo=UTC)


def clinic(db, name, tz, **cols):
    c = insert(db, "clinic", name=name, timezone=tz,
               workdays=cols.pop("workdays", [1, 2, 3, 4, 5, 6, 7]), **cols)
    tag = name.split()[0].lower()
    checker = insert(db, "contact", clinic_id=c, name=f"{name} Checker",
                     email=f"check@{tag}.example", roles=["checks"])
    admin = insert(db, "contact", clinic_id=c, name=f"{name} Admin",
                   email=f"admin@{tag}.example", roles=["admin"])
    return c, checker, admin


def fridge(db, clinic_id, name="Vaccines", key=None, created=None):
    f = insert(db, "fridge", clinic_id=clinic_id, name=name,
               created_at=created or now() - datetime.timedelta(days=40))
    s = insert(db, "sensor", key=key or f"zigbee2mqtt/{name}-{clinic_id}",
               source="z2m", fridge_id=f)
    return f, s


def readings(db, sensor, temps, step=datetime.timedelta(minutes=10),
             end=None):
    """temps, the last at end (now), step apart."""
    end = end or now()
    with db.cursor() as cur:
        cur.executemany(
            "insert into vialwatch.reading (sensor_id, ts, temp_c) "
            "values (%s, %s, %s)",
            [(sensor, end - step * (len(temps) - 1 - i), t)
             for i, t in enumerate(temps)])


def scan(db, at, grace="1 hour"):
    return [(r["clinic_id"], r["what"]) for r in rows(
        db, "select * from vialwatch.check_scan(%s, %s::interval)",
        [at, grace])]


def queued(db, clinic_id=None):
    return [(r["recipient"], r["dedupe_key"].split(":")[3])
            for r in rows(db, "select recipient, dedupe_key from "
                          "vialwatch.notification where dedupe_key like "
                          "'check:' || coalesce(%s::text, '') || '%%' "
                          "order by id", [clinic_id])]


def checks(db):
    return rows(db, "select * from vialwatch.daily_check order by id")


def text_of(m):
    return m.get_body(preferencelist=("plain",)).get_content()


# --- the calendar, DST changes ------------------------------------------------

# (zone, the local day, its check_from at 07:00 in UTC): the day clocks
# change and the day before, when the offset was the other one.
DST = [
    ("Europe/Berlin", "2026-03-28", "2026-03-28 06:00:00"),
    ("Europe/Berlin", "2026-03-29", "2026-03-29 05:00:00"),
    ("Europe/Berlin", "2026-10-24", "2026-10-24 05:00:00"),
    ("Europe/Berlin", "2026-10-25", "2026-10-25 06:00:00"),
    ("America/Chicago", "2026-03-07", "2026-03-07 13:00:00"),
    ("America/Chicago", "2026-03-08", "2026-03-08 12:00:00"),
    ("America/Chicago", "2026-10-31", "2026-10-31 12:00:00"),
    ("America/Chicago", "2026-11-01", "2026-11-01 13:00:00"),
]


@pytest.mark.parametrize("zone,day,at", DST)
def test_check_calendar_across_dst(clean_db, db, zone, day, at):
    """The email at local 07:00, the reminder at 10:00 + grace, the admins
    at 10:00 + 2 * grace, whatever the day's offset; Berlin's and
    Chicago's emails are each their own clinic's."""
    berlin, _, _ = clinic(db, "Berlin Praxis", "Europe/Berlin")
    chicago, _, _ = clinic(db, "Chicago Clinic", "America/Chicago")
    fridge(db, berlin)
    fridge(db, chicago)
    c = berlin if zone == "Europe/Berlin" else chicago
    tag = "berlin" if c == berlin else "chicago"
    t = utc(at)
    sec = datetime.timedelta(seconds=1)
    hour = datetime.timedelta(hours=1)
    assert (c, "check") not in scan(db, t - sec)
    assert queued(db, c) == []
    assert (c, "check") in scan(db, t)
    assert queued(db, c) == [(f"check@{tag}.example", "check")]
    assert (c, "check") not in scan(db, t + sec)        # once
    # check_by 10:00 local + 1 h grace, 3 h after 07:00 + 1 h: same offset.
    late = t + 3 * hour + hour
    assert (c, "late") not in scan(db, late - sec)
    assert (c, "late") in scan(db, late)
    assert (c, "admin") not in scan(db, late + hour - sec)
    assert (c, "admin") in scan(db, late + hour)
    assert queued(db, c) == [(f"check@{tag}.example", "check"),
                             (f"check@{tag}.example", "late"),
                             (f"admin@{tag}.example", "admin")]
    keys = [r["dedupe_key"] for r in rows(
        db, "select dedupe_key from vialwatch.notification where "
        "recipient like %s order by id", [f"%@{tag}.example"])]
    assert all(f":{day}:" in k for k in keys)


def test_holiday_and_weekend_need_no_check(clean_db, db, ctl_conf):
    c, _, _ = clinic(db, "Berlin Praxis", "Europe/Berlin",
                     workdays=[1, 2, 3, 4, 5])
    fridge(db, c)
    r = ctl(ctl_conf, "holiday", "add", "Berlin Praxis", "2026-12-24",
            "--name", "Heiligabend", "--by", "admin@berlin.example")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "holiday 2026-12-24 added for clinic Berlin Praxis\n"
    assert ctl(ctl_conf, "holiday", "add", str(c), "2026-12-24").stdout == (
        f"holiday 2026-12-24 of clinic {c} was there already\n")
    r = ctl(ctl_conf, "holiday", "list", "Berlin Praxis")
    assert "2026-12-24  Thursday  Heiligabend" in r.stdout
    r = ctl(ctl_conf, "holiday", "list", str(c), "--json")
    assert r.stdout.strip() == ('[{"day" : "2026-12-24", "name" : '
                                '"Heiligabend"}]')
    assert ctl(ctl_conf, "holiday", "add", "Nowhere", "2026-12-24"
               ).returncode == 1
    assert scan(db, utc("2026-12-24 12:00:00")) == []   # the holiday
    assert scan(db, utc("2026-12-26 12:00:00")) == []   # a Saturday
    assert scan(db, utc("2026-12-28 12:00:00")) == [(c, "check"),
                                                    (c, "late"),
                                                    (c, "admin")]


# --- through the daemon ---------------------------------------------------------


def check_daemon(daemon, secret, grace="3s", **kw):
    return daemon(http={"secret_file": secret},
                  checks={"grace": grace, "scan_interval": "1s"}, **kw)


def test_missed_check_escalates(daemon, db, smtp, secret):
    """Checkers first, a reminder to them after check_by + grace, then the
    admins; each email once, across scans and a second daemon."""
    c, checker, admin = clinic(db, "Lakeview Aesthetics", "Etc/UTC")
    f, s = fridge(db, c)
    readings(db, s, [4.0, 5.5, 6.5, 5.0])
    # check_by: 4 s from now, in the clinic's (UTC) wall time.
    by = (now() + datetime.timedelta(seconds=4)).time()
    if by < datetime.time(0, 0, 10):
        pytest.skip("too close to midnight")
    db.execute("update vialwatch.clinic set check_from = '00:00', "
               "check_by = %s where id = %s", [by, c])
    check_daemon(daemon, secret)
    check_daemon(daemon, secret)
    msgs = smtp.wait_messages(3, timeout=30)
    subjects = [(m["Subject"].split(":")[0], m.envelope_to) for m in msgs]
    assert subjects == [
        ("Fridge check due by %s" % by.strftime("%H"),
         ["check@lakeview.example"]),
        ("REMINDER", ["check@lakeview.example"]),
        ("MISSED", ["admin@lakeview.example"]),
    ]
    body = text_of(msgs[0])
    assert "Vaccines: now 5.0, min 4.0, max 6.5" in body
    assert CHECK_RE.search(body)
    sent = rows(db, "select dedupe_key, created_at from "
                "vialwatch.notification order by id")
    late_at = datetime.datetime.combine(now().date(), by, UTC) + \
        datetime.timedelta(seconds=3)
    assert sent[1]["created_at"] >= late_at
    assert sent[2]["created_at"] >= late_at + datetime.timedelta(seconds=3)
    time.sleep(3)     # three more scans of each daemon: nothing new
    assert len(smtp.messages()) == 3


def test_check_through_the_link(daemon, db, smtp, secret):
    c, checker, _ = clinic(db, "Lakeview Aesthetics", "Etc/UTC",
                           check_from="00:00", check_by="23:59:59")
    f, s = fridge(db, c)
    f2, s2 = fridge(db, c, "Botox")
    readings(db, s, [4.0, 5.5, 6.5, 5.0])
    readings(db, s2, [3.0, 3.5, 4.5, 4.0])
    d = check_daemon(daemon, secret, grace="1h")
    (m,) = smtp.wait_messages(1)
    url = CHECK_RE.search(text_of(m)).group(0)

    # A GET (a scanner, a preview) only shows the figures.
    for _ in range(3):
        code, page = http(url)
        assert code == 200
        assert "Vaccines" in page and "Botox" in page
        assert "<td>5.0</td><td>4.0</td><td>6.5</td>" in page
        assert 'method="post"' in page
    assert checks(db) == []

    # Forged or for another purpose: refused, nothing recorded.
    base = d.config["http"]["public_url"]
    tok = url.rsplit("/", 1)[1]
    expires = int(time.time()) + 3600
    for t in (tok[:-2] + ("AA" if not tok.endswith("AA") else "BB"),
              token(c, "check@lakeview.example", expires)):
        code, _ = http(f"{base}/check/{t}", data={})
        assert code == 403
    assert checks(db) == []

    code, page = http(url, data={f"note_{f}": "all fine"})
    assert code == 200, page
    assert "Check recorded" in page
    got = checks(db)
    assert [(r["fridge_id"], r["contact_id"], r["via"], r["note"])
            for r in got] == [(f2, checker, "link", None),
                              (f, checker, "link", "all fine")]
    vac = got[1]
    assert (vac["current_c"], vac["min_c"], vac["max_c"]) == (5.0, 4.0, 6.5)
    assert vac["day"] == now().date() and not vac["out_of_range"]
    assert "2 fridge(s) checked by check@lakeview.example" in d.log_text()
    code, page = http(url)               # the page says who checked
    assert "checked by Lakeview Aesthetics Checker" in page


def test_note_required_out_of_range(daemon, db, smtp, secret, ctl_conf):
    c, checker, _ = clinic(db, "Lakeview Aesthetics", "Etc/UTC",
                           check_from="00:00", check_by="23:59:59")
    f, s = fridge(db, c)
    readings(db, s, [5.0, 9.4, 6.0, 5.0])
    check_daemon(daemon, secret, grace="1h")
    (m,) = smtp.wait_messages(1)
    assert "OUT OF RANGE" in text_of(m)
    url = CHECK_RE.search(text_of(m)).group(0)
    code, page = http(url)
    assert "required" in page
    code, page = http(url, data={f"note_{f}": "  "})
    assert code == 400
    assert "a note is required" in page and "max 9.4" in page
    assert checks(db) == []
    code, page = http(url, data={f"note_{f}": "door left open, closed"})
    assert code == 200
    (row,) = checks(db)
    assert row["out_of_range"] and row["max_c"] == 9.4
    assert row["note"] == "door left open, closed"

    # The same from the shell: since that check, 9.0 for a moment.
    wait_for(lambda: now() > row["checked_at"] + datetime.timedelta(
        seconds=1), 5, "a second after the check")
    readings(db, s, [9.0, 5.0], step=datetime.timedelta(milliseconds=500))
    r = ctl(ctl_conf, "check", str(f), "--by", "check@lakeview.example")
    assert r.returncode == 1
    assert "a note is required" in r.stderr
    r = ctl(ctl_conf, "check", str(f), "--by", "nobody@example.org",
            "--note", "x")
    assert r.returncode == 1 and "nobody known" in r.stderr
    r = ctl(ctl_conf, "check", str(f), "--by", str(checker), "--note",
            "seen")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(
        rf"fridge {f} \(Vaccines\) checked by Lakeview Aesthetics Checker "
        r"at \d{4}-\d\d-\d\d \d\d:\d\d: now 5\.0, min 5\.0, max 9\.0 "
        "\u00b0C \\(out of range\\)\n", r.stdout), r.stdout
    assert [r["via"] for r in checks(db)] == ["link", "vialwatchctl"]


@pytest.mark.skipif(not FAKETIME.exists(), reason="libfaketime is missing")
@pytest.mark.parametrize("zone,fake_utc", [
    ("Europe/Berlin", "2026-03-29 04:59:52"),
    ("America/Chicago", "2026-11-01 12:59:52"),
])
def test_check_email_at_local_seven_on_dst_day(daemon, db, smtp, secret,
                                               zone, fake_utc):
    """The daemon's own clock at a DST change: nothing before 07:00 local,
    the email from then on."""
    start = utc(fake_utc)
    c, _, _ = clinic(db, "Lakeview Aesthetics", zone)
    fridge(db, c, created=start - datetime.timedelta(days=3))
    env = {"LD_PRELOAD": str(FAKETIME), "FAKETIME": "@" + fake_utc,
           "FAKETIME_DONT_FAKE_MONOTONIC": "1",
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
           ":verify_asan_link_order=0"}
    spawned = time.monotonic()
    check_daemon(daemon, secret, env=env)
    (m,) = smtp.wait_messages(1, timeout=30)
    assert time.monotonic() - spawned >= 8 - 1
    assert m.envelope_to == ["check@lakeview.example"]
    (n,) = rows(db, "select dedupe_key from vialwatch.notification")
    assert n["dedupe_key"].startswith(f"check:{c}:{fake_utc[:10]}:check:")


# --- close-out ------------------------------------------------------------------


def excursion_with_lots(db, c, f, s):
    """An alarmed high excursion that ended, two hours ago, with two lots."""
    t0 = now() - datetime.timedelta(hours=3)
    step = datetime.timedelta(minutes=10)
    temps = [5.0, 9.0, 10.5, 7.5, 8.6, 7.0, 5.0]
    readings(db, s, temps, end=t0 + step * (len(temps) - 1))
    x = insert(db, "excursion", fridge_id=f, sensor_id=s, kind="high",
               started_at=t0 + step, alarmed_at=t0 + 2 * step,
               ended_at=t0 + 5 * step, peak_c=10.5)
    lots = [insert(db, "lot", fridge_id=f, product="Botox",
                   lot_number="C4321", funding="private", status="quarantined"),
            insert(db, "lot", fridge_id=f, product="MMR II",
                   lot_number="V77", funding="public", status="quarantined")]
    for lot in lots:
        db.execute("insert into vialwatch.excursion_lot (excursion_id, "
                   "lot_id) values (%s, %s)", [x, lot])
    return x, lots


def test_closeout_with_two_lots_and_the_report(daemon, db, secret, pg,
                                               ctl_conf):
    c, checker, admin = clinic(db, "Lakeview Aesthetics", "Etc/UTC",
                               check_from="23:59:58", check_by="23:59:59")
    f, s = fridge(db, c, created=now() - datetime.timedelta(days=3))
    x, (botox, mmr) = excursion_with_lots(db, c, f, s)

    # Out of quarantine only through a disposition, even as superuser.
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        db.execute("update vialwatch.lot set status = 'released' "
                   "where id = %s", [botox])

    d = check_daemon(daemon, secret, grace="1h")
    base = d.config["http"]["public_url"]
    url = f"{base}/ack/{token(x, 'admin@lakeview.example', int(time.time()) + 3600)}"
    code, page = http(url)
    assert code == 200
    assert "Troubleshooting Record" in page and "Close out" in page
    assert "Botox C4321 (private)" in page and "MMR II V77 (public)" in page
    assert "time out of range (estimated)</th><td>50.0 min" in page

    form = {"closeout": "1", "cause": "door left ajar overnight",
            "preventive": "door alarm fitted", "room_c": "22.5",
            f"disp_{botox}": "usable", f"dnote_{botox}": "stable per mfr",
            f"disp_{mmr}": "discard"}
    code, page = http(url, data=form)          # no manufacturer call yet
    assert code == 400 and "who contacted the manufacturer" in page
    assert rows(db, "select status from vialwatch.lot order by id") == [
        {"status": "quarantined"}, {"status": "quarantined"}]

    form.update({"mfr_by": "Dana Lee", "mfr_at": "2026-12-01T10:15",
                 "mfr_case": "AL-99812", "mfr_guidance": "Botox usable; "
                 "discard the vaccine"})
    code, page = http(url, data=form)
    assert code == 200, page
    assert f"Excursion {x} was closed out by admin@lakeview.example" in page
    (e,) = rows(db, "select * from vialwatch.excursion")
    assert e["closed_out_by"] == admin and e["closed_out_at"] is not None
    assert e["out_minutes_est"] == 50.0
    assert (e["min_c"], e["max_c"], e["room_c"]) == (7.0, 10.5, 22.5)
    assert e["manufacturer_case"] == "AL-99812"
    assert e["manufacturer_contacted_at"] == utc("2026-12-01 10:15:00")
    assert rows(db, "select l.status, el.disposition, el.disposition_note "
                "from vialwatch.lot l join vialwatch.excursion_lot el "
                "on el.lot_id = l.id order by l.id") == [
        {"status": "released", "disposition": "usable",
         "disposition_note": "stable per mfr"},
        {"status": "discarded", "disposition": "discard",
         "disposition_note": None}]
    code, page = http(url, data=form)          # once only
    assert code == 409
    code, page = http(url)
    assert "Closed out by <strong>Lakeview Aesthetics Admin" in page
    assert "Close out</button>" not in page

    r = ctl(ctl_conf, "excursion", "show", str(x))
    assert r.returncode == 0
    assert re.search(r"closed out: +Lakeview Aesthetics Admin at ", r.stdout)
    assert re.search(rf"lot {mmr}: +MMR II V77 \(public\): discarded, "
                     "disposition discard", r.stdout)

    # A check today, and the report of the month with all of it.
    r = ctl(ctl_conf, "check", str(f), "--by", "check@lakeview.example",
            "--note", "after the excursion")
    assert r.returncode == 0, r.stderr
    month = now().strftime("%Y-%m")
    r = ctl(ctl_conf, "report", "--fridge", str(f), "--month", month)
    assert r.returncode == 0, r.stderr
    days = {row["date"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    today = days[now().strftime("%Y-%m-%d")]
    assert today["check"] == "checked"
    assert today["checked_by"] == "Lakeview Aesthetics Checker"
    assert today["check_note"] == "after the excursion"
    assert today["check_max_c"] == "10.50"
    exday = days[(now() - datetime.timedelta(hours=3)).strftime("%Y-%m-%d")]
    assert exday["excursion_closed_out"].startswith(
        "closed out by Lakeview Aesthetics Admin at ")
    assert "Botox C4321 (released)" in exday["affected_lots"]
    yesterday = (now() - datetime.timedelta(days=1)).strftime("%Y-%m-%d")
    if yesterday in days:
        assert days[yesterday]["check"] == "missed"
    assert rows(db, "select status, checked_by from vialwatch.check_log "
                "where fridge_id = %s and day = %s", [f, yesterday]) == [
        {"status": "missed", "checked_by": None}]


def test_closeout_from_the_shell_and_weekly_reminder(clean_db, db, ctl_conf):
    c, checker, admin = clinic(db, "Lakeview Aesthetics", "Etc/UTC",
                               check_from="00:00")
    f, s = fridge(db, c)
    x, (botox, mmr) = excursion_with_lots(db, c, f, s)
    db.execute("update vialwatch.excursion set alarmed_at = alarmed_at - "
               "interval '3 days', started_at = started_at - interval "
               "'3 days'")
    at = now()
    assert (c, "closeout") in scan(db, at)
    assert (c, "closeout") not in scan(db, at)           # once a week
    (n,) = rows(db, "select recipient, body from vialwatch.notification "
                "where left(dedupe_key, 9) = 'closeout:'")
    assert n["recipient"] == "admin@lakeview.example"
    assert f"excursion {x}, Vaccines: high" in n["body"]
    assert (c, "closeout") in scan(db, at + datetime.timedelta(days=7))

    r = ctl(ctl_conf, "excursion", "close-out", str(x), "--by",
            "admin@lakeview.example", "--cause", "power cut")
    assert r.returncode == 1
    assert "missing the preventive action" in r.stderr
    r = ctl(ctl_conf, "excursion", "close-out", str(x), "--by",
            "admin@lakeview.example", "--cause", "power cut",
            "--preventive", "UPS", "--manufacturer-by", "Dana Lee",
            "--manufacturer-at", "2026-12-01 09:00", "--case", "K-1",
            "--guidance", "see letter", "--lot", f"{botox}=usable",
            "--lot", f"{mmr}=discard:too warm")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"excursion {x} closed out by ")
    assert [r["status"] for r in rows(
        db, "select status from vialwatch.lot order by id")] == [
        "released", "discarded"]
    assert (c, "closeout") not in scan(db, at + datetime.timedelta(days=14))


def test_lot_funding_from_the_csv(clean_db, db, ctl_conf, tmp_path):
    c, _, _ = clinic(db, "Lakeview Aesthetics", "Etc/UTC")
    fridge(db, c)
    path = tmp_path / "lots.csv"
    path.write_text("clinic,fridge,product,lot_number,funding\n"
                    "Lakeview Aesthetics,Vaccines,MMR II,V1,public\n"
                    "Lakeview Aesthetics,Vaccines,Botox,C1,private\n"
                    "Lakeview Aesthetics,Vaccines,Dysport,D1,\n")
    r = ctl(ctl_conf, "import", "lots", str(path))
    assert r.returncode == 0, r.stderr
    assert rows(db, "select lot_number, funding from vialwatch.lot "
                "order by id") == [
        {"lot_number": "V1", "funding": "public"},
        {"lot_number": "C1", "funding": "private"},
        {"lot_number": "D1", "funding": None}]
    path.write_text("clinic,fridge,product,lot_number,funding\n"
                    "Lakeview Aesthetics,Vaccines,MMR II,V1,state\n")
    r = ctl(ctl_conf, "import", "lots", str(path))
    assert r.returncode == 1
    assert "not public or private" in r.stderr
    assert rows(db, "select funding from vialwatch.lot where "
                "lot_number = 'V1'") == [{"funding": "public"}]
