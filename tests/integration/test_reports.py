"""The admin views vialwatch.daily_summary and vialwatch.excursion_report,
and "vialwatchctl report", the monthly temperature log an inspector asks
for.  Clinics, fridges, sensors, readings and excursions are inserted with
SQL; the expected figures are worked out here, independently of the view.
"""

import csv
import datetime
import io
import math
from zoneinfo import ZoneInfo

import pytest

from conftest import ctl_config
from servers import run_ctl

UTC = datetime.timezone.utc
CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")
MINUTE = datetime.timedelta(minutes=1)
DAY = datetime.timedelta(days=1)


def nth_sunday(year, month, n):
    first = datetime.date(year, month, 1)
    return first + datetime.timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


# The days used are over and in the view (which ends today): those of the
# latest year whose November clock change is a week past.
_today = datetime.date.today()
YEAR = _today.year if _today >= datetime.date(_today.year, 11, 12) else _today.year - 1
SPRING = nth_sunday(YEAR, 3, 2)     # 23 hours in Chicago (2026-03-08)
FALL = nth_sunday(YEAR, 11, 1)      # 25 hours in Chicago (2026-11-01)
MARCH = f"{YEAR}-03"

HEADER = ["clinic", "fridge", "timezone", "low_c", "high_c", "date",
          "min_c", "max_c", "mean_c", "mkt_c", "minutes_out", "readings",
          "longest_gap_min", "excursions", "excursion_kind",
          "excursion_started", "excursion_ended", "excursion_peak_c",
          "affected_lots", "acknowledged_by", "acknowledged_at", "action",
          "excursion_closed_out", "check", "checked_by", "checked_at",
          "check_current_c", "check_min_c", "check_max_c", "check_note",
          "calibration", "door_openings", "door_longest_min", "power_cuts",
          "power_off_min", "maintenance_min", "maintenance"]


# --- helpers --------------------------------------------------------------


def local(tz, day, hour=0, minute=0):
    """An aware datetime: the wall-clock time on day in zone tz."""
    return datetime.datetime(day.year, day.month, day.day, hour, minute,
                             tzinfo=tz)


def day_length(tz, day):
    """Hours from local midnight to the next."""
    return (local(tz, day + DAY).astimezone(UTC)
            - local(tz, day).astimezone(UTC)) / datetime.timedelta(hours=1)


def add_clinic(db, name, timezone):
    return db.execute("insert into vialwatch.clinic (name, timezone) "
                      "values (%s, %s) returning id", [name, timezone]
                      ).fetchone()[0]


def add_fridge(db, clinic_id, name, **columns):
    cols = ["clinic_id", "name", *columns]
    return db.execute(
        f"insert into vialwatch.fridge ({', '.join(cols)}) "
        f"values ({', '.join(['%s'] * len(cols))}) returning id",
        [clinic_id, name, *columns.values()]).fetchone()[0]


def add_sensor(db, key, fridge_id):
    return db.execute("insert into vialwatch.sensor (key, fridge_id) "
                      "values (%s, %s) returning id", [key, fridge_id]
                      ).fetchone()[0]


def add_readings(db, sensor_id, readings):
    """readings: (aware datetime, temp_c) pairs."""
    with db.cursor() as cur:
        cur.executemany("insert into vialwatch.reading (sensor_id, ts, temp_c) "
                        "values (%s, %s, %s)",
                        [(sensor_id, ts, t) for ts, t in readings])


def every(start, end, step, temp):
    """Readings of temp from start (included) to end (excluded)."""
    out, ts = [], start.astimezone(UTC)
    while ts < end:
        out.append((ts, temp(ts) if callable(temp) else temp))
        ts += step
    return out


def summary(db, fridge_id, day):
    """The daily_summary row of fridge_id and day as a dict, or None."""
    cur = db.execute("select * from vialwatch.daily_summary "
                     "where fridge_id = %s and day = %s", [fridge_id, day])
    row = cur.fetchone()
    return dict(zip([c.name for c in cur.description], row)) if row else None


def mkt(weighted):
    """Mean kinetic temperature (USP <1160>) of (minutes, temp_c) pairs."""
    total = sum(w for w, _ in weighted)
    s = sum(w * math.exp(-10000.0 / (t + 273.15)) for w, t in weighted)
    return 10000.0 / -math.log(s / total) - 273.15


def mean(weighted):
    return sum(w * t for w, t in weighted) / sum(w for w, _ in weighted)


@pytest.fixture
def ctl_conf(pg, tmp_path):
    return ctl_config(tmp_path / "ctl.conf", pg.conninfo("vialwatch"), tmp_path)


def report(ctl_conf, *args):
    return run_ctl(["report", *args], ctl_conf)


def parse_csv(text):
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows and rows[0] == HEADER, rows[:1]
    return [dict(zip(HEADER, r)) for r in rows[1:]]


# --- daily_summary --------------------------------------------------------


def test_daily_summary_figures(db, clean_db):
    """A Berlin fridge (2-8 C, offline_after 30 min) on 10 June, with
    out-of-range readings, a silence longer than offline_after and a last
    reading close to midnight."""
    fridge = add_fridge(db, add_clinic(db, "Praxis Mitte", "Europe/Berlin"),
                        "Impfstoffe")
    sensor = add_sensor(db, "zigbee2mqtt/praxis-fridge", fridge)
    day = datetime.date(YEAR, 6, 10)
    at = lambda h, m, d=day: local(BERLIN, d, h, m)
    add_readings(db, sensor, [
        (at(0, 0), 4.0), (at(0, 10), 5.0), (at(0, 20), 9.0), (at(0, 30), 10.0),
        (at(0, 40), 6.0),               # then silent until 03:00
        (at(3, 0), 1.0), (at(3, 5), 3.0),
        (at(23, 55), 5.0),              # cut at midnight
        (at(0, 5, day + DAY), 5.0),
        # The evening before, local time, though 10 June in UTC.
        (at(23, 0, day - DAY), 20.0),
    ])
    # The minutes each reading of the day stands for: until the next one,
    # at most offline_after (30), cut at the end of the day.
    weighted = [(10, 4.0), (10, 5.0), (10, 9.0), (10, 10.0), (30, 6.0),
                (5, 1.0), (30, 3.0), (5, 5.0)]

    s = summary(db, fridge, day)
    assert s is not None, f"no row for {day}"
    assert s["readings"] == 8
    assert s["min_c"] == 1.0 and s["max_c"] == 10.0
    assert s["mean_c"] == pytest.approx(580 / 110)
    assert s["mean_c"] == pytest.approx(mean(weighted))
    assert s["mkt_c"] == pytest.approx(mkt(weighted), abs=1e-9)
    # MKT weighs warm readings more than the mean does.
    assert s["mkt_c"] > s["mean_c"] + 0.1
    # 9.0 and 10.0 for 10 min each, 1.0 for 5 min.
    assert s["minutes_out"] == pytest.approx(25)
    # 03:05 to 23:55.
    assert s["longest_gap"] == datetime.timedelta(hours=20, minutes=50)

    # The 20 C reading at 23:00 belongs to the 9th, local time; alone on
    # its day, it stands for offline_after.
    prev = summary(db, fridge, day - DAY)
    assert prev["readings"] == 1 and prev["max_c"] == 20.0
    assert prev["minutes_out"] == pytest.approx(30)
    assert prev["longest_gap"] == datetime.timedelta(hours=23)
    nxt = summary(db, fridge, day + DAY)
    assert nxt["readings"] == 1 and nxt["mean_c"] == 5.0


def test_daily_summary_dst_days(db, clean_db):
    """The spring change day lasts 23 hours in Chicago and the fall one 25:
    with a reading every 15 minutes, all out of range, each local day gets
    its own readings, and they fill it."""
    fridge = add_fridge(db, add_clinic(db, "Lakeview", "America/Chicago"),
                        "Botox fridge")
    sensor = add_sensor(db, "zigbee2mqtt/lakeview", fridge)
    step = datetime.timedelta(minutes=15)
    for change in (SPRING, FALL):
        add_readings(db, sensor, every(local(CHICAGO, change - DAY),
                                       local(CHICAGO, change + 2 * DAY),
                                       step, 9.5))

    assert day_length(CHICAGO, SPRING) == 23
    assert day_length(CHICAGO, FALL) == 25
    for change in (SPRING, FALL):
        for day in (change - DAY, change, change + DAY):
            hours = day_length(CHICAGO, day)
            s = summary(db, fridge, day)
            assert s["readings"] == hours * 4, day
            assert s["minutes_out"] == pytest.approx(hours * 60), day
            assert s["longest_gap"] == step, day
            assert s["mean_c"] == pytest.approx(9.5), day
            assert s["mkt_c"] == pytest.approx(9.5), day

    # Between the two stretches the days are there, without readings.
    s = summary(db, fridge, datetime.date(YEAR, 7, 1))
    assert s["readings"] == 0
    assert s["min_c"] is None and s["mean_c"] is None and s["mkt_c"] is None
    assert s["minutes_out"] is None
    assert s["longest_gap"] == datetime.timedelta(hours=24)


def test_daily_summary_empty_dst_day(db, clean_db):
    """A day without readings: its longest gap is the whole local day."""
    fridge = add_fridge(db, add_clinic(db, "Lakeview", "America/Chicago"),
                        "Backup fridge")
    sensor = add_sensor(db, "shellies/backup", fridge)
    add_readings(db, sensor, [(local(CHICAGO, SPRING - DAY, 12), 5.0),
                              (local(CHICAGO, SPRING + DAY, 12), 5.0)])
    s = summary(db, fridge, SPRING)
    assert s["readings"] == 0
    assert s["longest_gap"] == datetime.timedelta(hours=23)
    s = summary(db, fridge, SPRING - DAY)
    assert s["readings"] == 1
    assert s["longest_gap"] == datetime.timedelta(hours=12)
    assert s["minutes_out"] == 0


def test_daily_summary_last_reading(db, clean_db):
    """A sensor's last reading stands for offline_after at most, and for
    no longer than until now."""
    clinic = add_clinic(db, "Praxis Mitte", "Europe/Berlin")
    fridge = add_fridge(db, clinic, "Freezer", kind="freezer",
                        offline_after=datetime.timedelta(hours=1))
    sensor = add_sensor(db, "tele/freezer/SENSOR/DS18B20", fridge)
    day = datetime.date(YEAR, 5, 4)
    add_readings(db, sensor, [(local(BERLIN, day, 9), -10.0)])
    s = summary(db, fridge, day)
    assert s["minutes_out"] == pytest.approx(60)    # above high_c, -15

    ts = db.execute("select date_trunc('second', now()) "
                    "- interval '10 minutes'").fetchone()[0]
    add_readings(db, sensor, [(ts, -12.0)])
    today = ts.astimezone(BERLIN).date()
    minutes_out, now = db.execute(
        "select minutes_out, now() from vialwatch.daily_summary "
        "where fridge_id = %s and day = %s", [fridge, today]).fetchone()
    expect = (min(now, local(BERLIN, today + DAY)) - ts) / MINUTE
    assert 0 < expect < 11
    assert minutes_out == pytest.approx(expect, abs=1e-6)


def test_daily_summary_two_sensors(db, clean_db):
    """Two probes in one fridge: minutes_out is the time at least one of
    them was out, not the sum; the other figures cover both."""
    fridge = add_fridge(db, add_clinic(db, "Lakeview", "America/Chicago"),
                        "Vaccines")
    top = add_sensor(db, "zigbee2mqtt/top", fridge)
    bottom = add_sensor(db, "zigbee2mqtt/bottom", fridge)
    day = datetime.date(YEAR, 4, 2)
    at = lambda h, m: local(CHICAGO, day, h, m)
    step = datetime.timedelta(minutes=10)
    # top: out 10:00-11:00; bottom, 5 minutes behind: out 10:35-11:35.
    add_readings(db, top, every(at(8, 0), at(14, 0), step,
                                lambda ts: 9.0 if at(10, 0) <= ts < at(11, 0)
                                else 5.0))
    add_readings(db, bottom, every(at(8, 5), at(14, 5), step,
                                   lambda ts: 1.5 if at(10, 35) <= ts < at(11, 35)
                                   else 4.0))
    s = summary(db, fridge, day)
    assert s["readings"] == 72
    assert s["min_c"] == 1.5 and s["max_c"] == 9.0
    assert s["minutes_out"] == pytest.approx(95)    # 10:00 to 11:35
    # Together they read every 5 minutes; the evening is the longest gap.
    assert s["longest_gap"] == datetime.timedelta(hours=10, minutes=5)
    # Each sensor's last reading stands for offline_after, 30 minutes.
    weighted = ([(10, 9.0)] * 6 + [(10, 5.0)] * 29 + [(30, 5.0)]
                + [(10, 1.5)] * 6 + [(10, 4.0)] * 29 + [(30, 4.0)])
    assert s["mean_c"] == pytest.approx(mean(weighted))
    assert s["mkt_c"] == pytest.approx(mkt(weighted), abs=1e-9)


def test_views_readable_by_roles(db, clean_db):
    """The views run for the read-only role, on an empty database too."""
    for view in ("daily_summary", "excursion_report"):
        for role in ("vialwatch_readonly", "vialwatch_admin"):
            assert db.execute("select has_table_privilege(%s, %s, 'SELECT')",
                              [role, f"vialwatch.{view}"]).fetchone()[0]
    db.execute("set role vialwatch_readonly")
    try:
        assert db.execute("select * from vialwatch.daily_summary").fetchall() == []
        assert db.execute("select * from vialwatch.excursion_report").fetchall() == []
    finally:
        db.execute("reset role")


# --- excursion_report -----------------------------------------------------


def add_excursion(db, fridge_id, sensor_id, kind, started_at, **columns):
    cols = ["fridge_id", "sensor_id", "kind", "started_at", *columns]
    return db.execute(
        f"insert into vialwatch.excursion ({', '.join(cols)}) "
        f"values ({', '.join(['%s'] * len(cols))}) returning id",
        [fridge_id, sensor_id, kind, started_at, *columns.values()]
    ).fetchone()[0]


def add_lot(db, fridge_id, product, lot_number, status="quarantined"):
    return db.execute("insert into vialwatch.lot (fridge_id, product, "
                      "lot_number, status) values (%s, %s, %s, %s) "
                      "returning id", [fridge_id, product, lot_number, status]
                      ).fetchone()[0]


def link_lots(db, excursion_id, *lot_ids):
    for lot in lot_ids:
        db.execute("insert into vialwatch.excursion_lot (excursion_id, lot_id) "
                   "values (%s, %s)", [excursion_id, lot])


@pytest.fixture
def chicago_march(db, clean_db):
    """A Chicago fridge with a reading every 30 minutes around the spring
    clock change, and two excursions: a high one over local midnight,
    acknowledged, with two lots, and a short low one on the change day."""
    clinic = add_clinic(db, "Lakeview Aesthetics", "America/Chicago")
    fridge = add_fridge(db, clinic, "Botox fridge, back room")
    sensor = add_sensor(db, "zigbee2mqtt/lakeview-botox", fridge)
    add_readings(db, sensor, every(local(CHICAGO, SPRING - DAY),
                                   local(CHICAGO, SPRING + 2 * DAY),
                                   datetime.timedelta(minutes=30),
                                   lambda ts: 4.0 + (ts.minute == 30)))
    high = add_excursion(
        db, fridge, sensor, "high", local(CHICAGO, SPRING - DAY, 23, 40),
        alarmed_at=local(CHICAGO, SPRING, 0, 10),
        ended_at=local(CHICAGO, SPRING, 0, 50), peak_c=9.8,
        minutes_out=70, degree_minutes=84,
        acked_at=local(CHICAGO, SPRING, 0, 20), acked_by="Dana Lee",
        action_note="=moved stock to the backup fridge;\ncalled Allergan")
    link_lots(db, high, add_lot(db, fridge, "Botox", "C5678"),
              add_lot(db, fridge, "Botox", "C1234"))
    low = add_excursion(
        db, fridge, sensor, "low", local(CHICAGO, SPRING, 10, 0),
        ended_at=local(CHICAGO, SPRING, 10, 20), peak_c=1.2,
        minutes_out=20, degree_minutes=10)
    return {"clinic": clinic, "fridge": fridge, "sensor": sensor,
            "high": high, "low": low}


def test_excursion_report(db, chicago_march):
    open_one = add_excursion(db, chicago_march["fridge"], None, "offline",
                             datetime.datetime.now(UTC) - 5 * MINUTE)
    cur = db.execute("select * from vialwatch.excursion_report")
    names = [c.name for c in cur.description]
    rows = {r[names.index("excursion_id")]: dict(zip(names, r)) for r in cur}
    assert set(rows) == {chicago_march["high"], chicago_march["low"], open_one}

    high = rows[chicago_march["high"]]
    assert high["clinic"] == "Lakeview Aesthetics"
    assert high["timezone"] == "America/Chicago"
    assert high["fridge"] == "Botox fridge, back room"
    assert high["fridge_id"] == chicago_march["fridge"]
    assert high["sensor_key"] == "zigbee2mqtt/lakeview-botox"
    assert high["kind"] == "high"
    assert high["started_at"] == local(CHICAGO, SPRING - DAY, 23, 40)
    assert high["alarmed_at"] == local(CHICAGO, SPRING, 0, 10)
    assert high["ended_at"] == local(CHICAGO, SPRING, 0, 50)
    assert high["duration"] == datetime.timedelta(minutes=70)
    assert high["peak_c"] == 9.8
    assert high["minutes_out"] == 70 and high["degree_minutes"] == 84
    assert high["lots"] == ["Botox C1234 (quarantined)",
                            "Botox C5678 (quarantined)"]
    assert high["lot_count"] == 2
    assert high["acked_by"] == "Dana Lee"
    assert high["acked_at"] == local(CHICAGO, SPRING, 0, 20)
    assert high["action_note"].startswith("=moved stock")

    low = rows[chicago_march["low"]]
    assert low["lots"] == [] and low["lot_count"] == 0
    assert low["alarmed_at"] is None and low["acked_by"] is None

    # Still open: no end, the duration so far, no sensor.
    off = rows[open_one]
    assert off["ended_at"] is None and off["sensor_key"] is None
    assert 5 * MINUTE <= off["duration"] < 15 * MINUTE


# --- vialwatchctl report --------------------------------------------------


def test_report_month(db, chicago_march, ctl_conf, tmp_path):
    fridge = chicago_march["fridge"]
    out = tmp_path / "march.csv"
    r = report(ctl_conf, "--fridge", fridge, "--month", MARCH, "-o", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    raw = out.read_bytes()
    assert raw.split(b"\n", 1)[0].endswith(b"\r"), "lines not ended by CRLF"
    rows = parse_csv(raw.decode())

    # One row per day of the month, every one of them.
    assert [row["date"] for row in rows] == [
        f"{MARCH}-{d:02d}" for d in range(1, 32)]
    for row in rows:
        assert (row["clinic"], row["fridge"], row["timezone"]) == (
            "Lakeview Aesthetics", "Botox fridge, back room", "America/Chicago")
        assert float(row["low_c"]) == 2 and float(row["high_c"]) == 8
    by_day = {datetime.date.fromisoformat(row["date"]): row for row in rows}

    # The figures are those of daily_summary, the change day 23 hours long.
    for day, n in [(SPRING - DAY, 48), (SPRING, 46), (SPRING + DAY, 48)]:
        row = by_day[day]
        s = summary(db, fridge, day)
        assert int(row["readings"]) == s["readings"] == n
        for col in ("min_c", "max_c", "mean_c", "mkt_c"):
            assert float(row[col]) == pytest.approx(s[col], abs=0.0051), col
        assert float(row["minutes_out"]) == 0
        assert float(row["longest_gap_min"]) == 30
    eve = by_day[SPRING - DAY]
    assert (eve["min_c"], eve["max_c"], eve["mean_c"]) == ("4.00", "5.00", "4.50")

    # Before the first reading nothing is known; after it, days without
    # readings say so.
    assert {by_day[SPRING - 2 * DAY][c] for c in HEADER[6:]
            if c != "calibration"} == {""}
    empty = by_day[SPRING + 5 * DAY]
    assert empty["readings"] == "0" and empty["min_c"] == ""
    assert empty["mkt_c"] == "" and float(empty["longest_gap_min"]) == 24 * 60
    assert empty["excursions"] == "0"

    # The high excursion shows on both days it spans, in local time, its
    # note kept as text for spreadsheets.
    assert eve["excursions"] == "1"
    assert eve["excursion_kind"] == "high"
    assert eve["excursion_started"] == f"{SPRING - DAY} 23:40"
    assert eve["excursion_ended"] == f"{SPRING} 00:50"
    assert eve["excursion_peak_c"] == "9.80"
    assert eve["affected_lots"] == ("Botox C1234 (quarantined), "
                                    "Botox C5678 (quarantined)")
    assert eve["acknowledged_by"] == "Dana Lee"
    assert eve["acknowledged_at"] == f"{SPRING} 00:20"
    assert eve["action"] == ("'=moved stock to the backup fridge; "
                             "called Allergan")
    change = by_day[SPRING]
    assert change["excursions"] == "2"
    assert change["excursion_kind"].split("\n") == ["high", "low"]
    assert change["excursion_started"].split("\n") == [
        f"{SPRING - DAY} 23:40", f"{SPRING} 10:00"]
    assert change["excursion_ended"].split("\n") == [
        f"{SPRING} 00:50", f"{SPRING} 10:20"]
    assert change["excursion_peak_c"].split("\n") == ["9.80", "1.20"]
    assert change["acknowledged_by"].split("\n") == ["Dana Lee", ""]
    assert by_day[SPRING + DAY]["excursions"] == "0"

    # Standard output and short options give the same file.
    r = report(ctl_conf, "-f", fridge, "-m", MARCH)
    assert r.returncode == 0, r.stderr
    assert parse_csv(r.stdout) == rows


def test_report_fall_back_month(db, clean_db, ctl_conf):
    """November in Chicago: 30 rows, the change day with 25 readings."""
    fridge = add_fridge(db, add_clinic(db, "Lakeview", "America/Chicago"),
                        "Fillers")
    sensor = add_sensor(db, "esphome/fillers", fridge)
    add_readings(db, sensor, every(local(CHICAGO, FALL - DAY),
                                   local(CHICAGO, FALL + 2 * DAY),
                                   datetime.timedelta(hours=1), 5.0))
    r = report(ctl_conf, "--fridge", fridge, "--month", f"{YEAR}-11")
    assert r.returncode == 0, r.stderr
    rows = parse_csv(r.stdout)
    assert len(rows) == 30
    by_day = {datetime.date.fromisoformat(row["date"]): row for row in rows}
    assert [by_day[FALL + k * DAY]["readings"] for k in range(3)] == [
        "25", "24", "0"]
    assert by_day[FALL]["mkt_c"] == "5.00"


@pytest.mark.parametrize("args, message", [
    (["--fridge", "999999", "--month", "2026-03"], "no fridge with id 999999"),
    (["--fridge", "abc", "--month", "2026-03"], "bad fridge id"),
    (["--fridge", "0", "--month", "2026-03"], "bad fridge id"),
    (["--fridge", "1; drop table x", "--month", "2026-03"], "bad fridge id"),
    (["--fridge", "{fridge}", "--month", "2026-13"], "bad month"),
    (["--fridge", "{fridge}", "--month", "2026-3"], "bad month"),
    (["--fridge", "{fridge}", "--month", "03-2026"], "bad month"),
    (["--fridge", "{fridge}", "--month", "2026-03-01"], "bad month"),
    (["--fridge", "{fridge}", "--month", "March"], "bad month"),
    (["--fridge", "{fridge}"], "--fridge and --month are required"),
    (["--month", "2026-03"], "--fridge and --month are required"),
    (["--fridge", "{fridge}", "--month", "2026-03", "extra"],
     "unexpected argument: extra"),
])
def test_report_bad_arguments(db, clean_db, ctl_conf, tmp_path, args, message):
    fridge = add_fridge(db, add_clinic(db, "Lakeview", "America/Chicago"),
                        "Botox fridge")
    out = tmp_path / "out.csv"
    args = [a.format(fridge=fridge) for a in args]
    r = report(ctl_conf, "-o", out, *args)
    usage = message.startswith(("--fridge and", "unexpected"))
    assert r.returncode == (2 if usage else 1), r.stdout + r.stderr
    assert message in r.stderr
    assert r.stdout == ""
    assert not out.exists(), "output file created despite the error"


def test_report_unwritable_output(db, clean_db, ctl_conf, tmp_path):
    fridge = add_fridge(db, add_clinic(db, "Lakeview", "America/Chicago"),
                        "Botox fridge")
    out = tmp_path / "no-such-dir" / "out.csv"
    r = report(ctl_conf, "--fridge", fridge, "--month", MARCH, "-o", out)
    assert r.returncode == 1
    assert str(out) in r.stderr and "No such file" in r.stderr
