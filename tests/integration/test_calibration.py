"""Sensors an inspector trusts: calibration certificates (vialwatchctl
calibration add|list, import calibrations), the warnings to the clinic's
admins 90, 30 and 7 days before a certificate lapses and daily after it
(through the daemon, its clock set by libfaketime), what status, the
monthly report and the alarm email say of an uncalibrated probe; and the
offsets of probes (vialwatchctl offset), which correct the readings from
then on and keep what the probe sent in temp_raw_c.
"""

import csv
import datetime
import hashlib
import io
import json
import os
import time
import zlib
from pathlib import Path

import pytest

from servers import publish, wait_for
from test_ingest import GATEWAY, count_readings, gateway_readings
from test_spool import HDR, KEY, SPOOL_MAGIC, kill9, spool_dir, spool_records
from test_excursions import (MINUTE, SOURCES, ctl, ctl_conf,  # noqa: F401
                             excursions, insert, message, now, rows,
                             setup_fridge, wait_loaded)

FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
DAY = datetime.timedelta(days=1)


@pytest.fixture
def fridge(db, clean_db):
    f = setup_fridge(db)
    f["admin"] = insert(db, "contact", clinic_id=f["clinic"], name="Ann Admin",
                        email="ann@lakeview.example", roles=["admin"])
    f["owner"] = insert(db, "contact", clinic_id=f["clinic"], name="Olu Owner",
                        email="olu@lakeview.example",
                        roles=["alerts", "admin"], tier=2)
    insert(db, "contact", clinic_id=f["clinic"], name="Gone Admin",
           email="gone@lakeview.example", roles=["admin"], active=False)
    return f


def calibrations(db):
    return rows(db, "select * from vialwatch.calibration order by id")


def add(ctl_conf, key, *extra, by="ann@lakeview.example",
        certificate="CAL-2026-001", on="2026-01-15", until="2028-01-15"):
    args = ["calibration", "add", key, "--serial", "SN-77", "--certificate",
            certificate, "--calibrated-on", on, "--valid-until", until]
    if by is not None:
        args += ["--by", by]
    return ctl(ctl_conf, *args, *extra)


# --- calibration add and list ---------------------------------------------


def test_calibration_add_and_list(db, fridge, ctl_conf, tmp_path):
    key = fridge["key"]
    r = ctl(ctl_conf, "calibration", "list")
    assert r.returncode == 0, r.stderr
    assert key in r.stdout and "no calibration certificate" in r.stdout

    pdf = tmp_path / "certificate.pdf"
    pdf.write_bytes(b"%PDF-1.4 certificate of calibration\n" * 1000)
    r = add(ctl_conf, key, "--model", "TempTale 4", "--laboratory",
            "Acme Metrology", "--uncertainty", "0.3", "--document", pdf)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"calibration 1 recorded for sensor {key}: ok\n"
    (c,) = calibrations(db)
    assert c["sensor_id"] == fridge["sensor"]
    assert (c["serial"], c["model"], c["certificate_no"], c["laboratory"]) \
        == ("SN-77", "TempTale 4", "CAL-2026-001", "Acme Metrology")
    assert c["calibrated_on"] == datetime.date(2026, 1, 15)
    assert c["valid_until"] == datetime.date(2028, 1, 15)
    assert c["uncertainty_c"] == 0.3 and c["passed"] is True
    assert c["document_sha256"] == hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert c["recorded_by"] == fridge["admin"]

    # Refused, with nothing written: nobody named, an unknown person, an
    # unknown probe, a certificate valid before it was made, a missing
    # document, the same certificate twice.
    for args, err in [
            ((key,), "--by is required"),
            ((key, "--by", "who@nowhere.example"), "nobody known as"),
            (("no/such/probe", "--by", "ann@lakeview.example"),
             "no sensor with key or id"),
            ((key, "--by", "ann@lakeview.example", "--document",
              tmp_path / "missing.pdf"), "missing.pdf"),
    ]:
        r = add(ctl_conf, args[0], *args[1:], by=None, certificate="X-1")
        assert r.returncode == 1 and err in r.stderr, (args, r.stderr)
    r = add(ctl_conf, key, certificate="X-2", until="2025-01-01")
    assert r.returncode == 1 and "calibration_check" in r.stderr, r.stderr
    r = add(ctl_conf, key)
    assert r.returncode == 1 and "calibration_sensor_id_certificate_no_key" \
        in r.stderr, r.stderr
    r = add(ctl_conf, key, "--bogus")
    assert r.returncode == 2
    assert len(calibrations(db)) == 1

    r = ctl(ctl_conf, "calibration", "list")
    assert r.returncode == 0, r.stderr
    assert "CAL-2026-001" in r.stdout and "2028-01-15" in r.stdout
    assert "no calibration certificate" not in r.stdout

    # A failed re-test, with too large an uncertainty: the newest counts.
    r = add(ctl_conf, key, "--failed", "--uncertainty", "0.8",
            certificate="CAL-2027-002", on="2027-01-10", until="2029-01-10")
    assert r.returncode == 0, r.stderr
    assert "failed calibration (certificate CAL-2027-002)" in r.stdout
    r = ctl(ctl_conf, "calibration", "list", "--due", "30", "--json")
    assert r.returncode == 0, r.stderr
    (probe,) = json.loads(r.stdout)
    assert probe["sensor"] == key and probe["passed"] is False
    assert probe["certificate_no"] == "CAL-2027-002"
    assert probe["problem"] == "failed calibration (certificate CAL-2027-002)"
    r = ctl(ctl_conf, "calibration", "list", "--due", "soon")
    assert r.returncode == 2 and "--due takes a number" in r.stderr


def test_calibration_states(db, fridge):
    s = fridge["sensor"]

    def problem(day):
        return db.execute("select vialwatch.calibration_problem(%s, %s)",
                          [s, day]).fetchone()[0]

    assert problem(datetime.date(2026, 1, 1)) == "no calibration certificate"
    insert(db, "calibration", sensor_id=s, serial="S", certificate_no="A",
           calibrated_on=datetime.date(2026, 1, 1),
           valid_until=datetime.date(2027, 1, 1), uncertainty_c=0.5,
           recorded_by=fridge["admin"])
    assert problem(datetime.date(2027, 1, 1)) is None
    assert problem(datetime.date(2027, 1, 2)) == \
        "calibration lapsed on 2027-01-01 (certificate A)"
    insert(db, "calibration", sensor_id=s, serial="S", certificate_no="B",
           calibrated_on=datetime.date(2026, 6, 1),
           valid_until=datetime.date(2028, 6, 1), uncertainty_c=0.6,
           recorded_by=fridge["admin"])
    assert problem(datetime.date(2027, 1, 2)) == \
        "uncertainty ±0.6 °C above ±0.5 °C (certificate B)"
    insert(db, "calibration", sensor_id=s, serial="S", certificate_no="C",
           calibrated_on=datetime.date(2026, 7, 1),
           valid_until=datetime.date(2028, 7, 1), recorded_by=fridge["admin"])
    assert problem(datetime.date(2027, 1, 2)) == \
        "uncertainty not stated (certificate C)"


# --- import ---------------------------------------------------------------


def write_csv(path, header, *lines):
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(header)
    w.writerows(lines)
    path.write_text(out.getvalue())
    return path


CAL_HEADER = ["sensor", "serial", "certificate_no", "calibrated_on",
              "valid_until", "recorded_by", "laboratory", "uncertainty_c",
              "passed", "document_sha256"]


def test_import_calibrations(db, fridge, ctl_conf, tmp_path):
    key = fridge["key"]
    other = insert(db, "sensor", key="json/lakeview/spare", fridge_id=None)
    sha = "ab" * 32
    good = write_csv(tmp_path / "good.csv", CAL_HEADER,
                     [key, "SN-1", "C-1", "2026-01-10", "2028-01-10",
                      "ann@lakeview.example", "Acme", "0.25", "yes", sha],
                     [str(other), "SN-2", "C-2", "2026-02-10", "2028-02-10",
                      str(fridge["admin"]), "", "", "", ""])
    r = ctl(ctl_conf, "import", "calibrations", good)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{good}: 2 rows: 2 new, 0 updated, 0 unchanged\n"
    got = calibrations(db)
    assert [(c["sensor_id"], c["certificate_no"], c["passed"],
             c["uncertainty_c"], c["document_sha256"], c["recorded_by"])
            for c in got] == [
        (fridge["sensor"], "C-1", True, 0.25, sha, fridge["admin"]),
        (other, "C-2", True, None, None, fridge["admin"])]
    # The same file again changes nothing.
    r = ctl(ctl_conf, "import", "calibrations", good)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{good}: 2 rows: 0 new, 0 updated, 2 unchanged\n"

    bad = write_csv(tmp_path / "bad.csv", CAL_HEADER,
                    [key, "SN-3", "C-3", "2026-03-10", "2028-03-10",
                     "ann@lakeview.example", "", "", "", ""],
                    ["no/such", "SN-4", "C-4", "2026-13-01", "2026-01-01",
                     "nobody@x.example", "", "-1", "maybe", "xyz"],
                    [key, "SN-9", "C-1", "2026-01-10", "2028-01-10",
                     "ann@lakeview.example", "", "", "", ""],
                    [key, "SN-5", "C-5", "2026-05-10", "2026-05-10",
                     "ann@lakeview.example", "", "", "", ""])
    r = ctl(ctl_conf, "import", "calibrations", bad)
    assert r.returncode == 1
    err = r.stderr.splitlines()
    assert f"{bad}:3: sensor: unknown sensor \"no/such\"" in err, err
    assert f"{bad}:3: calibrated_on: not a date \"2026-13-01\"" in err, err
    assert f"{bad}:3: recorded_by: unknown contact \"nobody@x.example\"" \
        in err, err
    assert f"{bad}:3: uncertainty_c: not a number >= 0 \"-1\"" in err, err
    assert f"{bad}:3: passed: not yes or no \"maybe\"" in err, err
    assert f"{bad}:3: document_sha256: not a SHA-256 (64 hexadecimal " \
        "digits)" in err, err
    assert any(e.startswith(f"{bad}:4: certificate_no: certificate C-1 of "
                            "this sensor is recorded already") for e in err), err
    assert f"{bad}:5: valid_until: not after calibrated_on 2026-05-10" \
        in err, err
    assert err[-1] == f"{bad}: 3 bad rows, nothing imported"
    assert len(calibrations(db)) == 2


# --- warnings through the daemon ------------------------------------------


def warnings_run(daemon, at, env_extra=None):
    """Runs a daemon whose clock says at until it has queued the calibration
    warnings due then; returns it."""
    env = {"LD_PRELOAD": str(FAKETIME),
           "FAKETIME": "@" + at.strftime("%Y-%m-%d %H:%M:%S"),
           "FAKETIME_DONT_FAKE_MONOTONIC": "1",
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
           ":verify_asan_link_order=0"}
    d = daemon(env=env)
    wait_for(lambda: "calibration: " in d.log_text() and
             ("queued" in d.log_text() or "nothing to warn of" in
              d.log_text()), 20, "the calibration warnings")
    d.stop(timeout=10)
    return d


def calibration_mail(db):
    return rows(db, "select recipient, subject, body, dedupe_key "
                "from vialwatch.notification "
                "where dedupe_key like 'calibration:%%' order by id")


@pytest.mark.skipif(not FAKETIME.exists(), reason="libfaketime is missing")
def test_certificate_lapsing_warns_admins_once_each(daemon, db, smtp, fridge):
    until = datetime.date(2027, 3, 31)
    insert(db, "calibration", sensor_id=fridge["sensor"], serial="SN-9",
           certificate_no="CAL-9", laboratory="Acme",
           calibrated_on=datetime.date(2025, 3, 31), valid_until=until,
           uncertainty_c=0.3, recorded_by=fridge["admin"])
    admins = ["ann@lakeview.example", "olu@lakeview.example"]

    def at(days):
        # Noon in Chicago, days before (or after) the last valid day.
        return datetime.datetime.combine(
            until - datetime.timedelta(days=days), datetime.time(18, 0))

    seen = 0
    for days, stage, subject in [
            (91, None, None),
            (90, "90", "Calibration lapses in 90 days"),
            (89, None, None),
            (30, "30", "Calibration lapses in 30 days"),
            (20, None, None),
            (7, "7", "Calibration lapses in 7 days"),
            (0, None, None),
            (-1, "lapsed:2027-04-01", "Calibration LAPSED"),
            (-1, None, None),
            (-2, "lapsed:2027-04-02", "Calibration LAPSED")]:
        warnings_run(daemon, at(days))
        got = calibration_mail(db)
        if stage is None:
            assert len(got) == seen, (days, got[seen:])
            continue
        new = got[seen:]
        seen = len(got)
        assert sorted(n["recipient"] for n in new) == admins, (days, new)
        for n in new:
            assert n["dedupe_key"].startswith(f"calibration:1:{stage}:"), n
            assert n["subject"].startswith(subject), n
            assert "Botox fridge (Lakeview Aesthetics)" in n["subject"]
            assert "CAL-9, Acme" in n["body"]
            assert "vialwatchctl calibration add" in n["body"]
    # The admins are told of missed workday checks too (test_record.py).
    def calibration_msgs():
        msgs = [m for m in smtp.messages()
                if m["Subject"].startswith("Calibration")]
        return msgs if len(msgs) >= 2 * 5 else None

    msgs = wait_for(calibration_msgs, 15, "10 calibration emails")
    assert sorted(m["To"] for m in msgs) == sorted(admins * 5)
    assert sum("LAPSED" in m["Subject"] for m in msgs) == 4
    assert any("lapsed on 2027-04-01" in m.get_content() for m in msgs)


# --- what status, the report and the alarm email say ----------------------


def test_uncalibrated_probe_shown(db, fridge, ctl_conf, tmp_path):
    key = fridge["key"]
    db.execute("insert into vialwatch.reading (sensor_id, ts, temp_c, "
               "temp_raw_c) values (%s, %s, 4.5, 4.5)",
               [fridge["sensor"], now() - MINUTE])
    note = f"probe {key}: no calibration certificate"
    (st,) = rows(db, "select calibration from vialwatch.fridge_status")
    assert st["calibration"] == note

    r = ctl(ctl_conf, "status")
    assert r.returncode == 0, r.stderr
    assert f"UNCALIBRATED: Lakeview Aesthetics / Botox fridge: {note}" \
        in r.stdout
    r = ctl(ctl_conf, "status", "--json")
    assert r.returncode == 0, r.stderr
    (f,) = json.loads(r.stdout)["fridges"]
    assert f["calibration"] == note

    month = now().astimezone(datetime.timezone(datetime.timedelta(hours=-6)))
    r = ctl(ctl_conf, "report", "--fridge", fridge["fridge"], "--month",
            month.strftime("%Y-%m"))
    assert r.returncode == 0, r.stderr
    table = list(csv.reader(io.StringIO(r.stdout)))
    col = table[0].index("calibration")
    assert {row[col] for row in table[1:]} == {note}

    # The alarm email says it too; once certified, none of it.
    e = insert(db, "excursion", fridge_id=fridge["fridge"],
               sensor_id=fridge["sensor"], kind="high",
               started_at=now() - 40 * MINUTE, alarmed_at=now(), peak_c=9.5)

    def alarm_body():
        return db.execute(
            "select m.body from vialwatch.excursion x, "
            "vialwatch.excursion_mail('alarm', x, 9.5, null) m "
            "where x.id = %s", [e]).fetchone()[0]

    assert f"Calibration: {note}." in alarm_body()
    r = add(ctl_conf, key, "--uncertainty", "0.5",
            on=(now() - 30 * DAY).strftime("%Y-%m-%d"),
            until=(now() + 700 * DAY).strftime("%Y-%m-%d"))
    assert r.returncode == 0, r.stderr
    assert "Calibration:" not in alarm_body()
    r = ctl(ctl_conf, "status")
    assert "UNCALIBRATED" not in r.stdout
    (st,) = rows(db, "select calibration from vialwatch.fridge_status")
    assert st["calibration"] is None


# --- offsets --------------------------------------------------------------


def readings(db, sensor):
    return rows(db, "select ts, temp_c, temp_raw_c from vialwatch.reading "
                "where sensor_id = %s order by ts", [sensor])


def test_offset_corrects_new_readings_only(daemon, db, mqtt_broker, fridge,
                                           ctl_conf):
    key, sensor = fridge["key"], fridge["sensor"]
    d = daemon(overrides=SOURCES)
    wait_loaded(d, sensors=1)
    t0 = now().replace(microsecond=0) - 5 * MINUTE
    publish(mqtt_broker.port, [message(key, t0, 8.9)])
    wait_for(lambda: len(readings(db, sensor)) == 1, 10, "the first reading")
    # 8.9 is above 8: a pending high excursion.
    wait_for(lambda: excursions(db, sensor), 10, "the pending excursion")

    # Refused: no reason, a time already past, nobody named.
    for args, err in [
            ([key, "-1.5", "--by", "ann@lakeview.example"], "--reason"),
            ([key, "-1.5", "--by", "ann@lakeview.example", "--reason", "x",
              "--from", "2020-01-01"], "applies from now on"),
            ([key, "-1.5", "--reason", "x"], "--by is required"),
            ([key, "-1.5x", "--by", "ann@lakeview.example", "--reason", "x"],
             "not a number"),
            (["no/such", "1", "--by", "ann@lakeview.example", "--reason",
              "x"], "no sensor"),
            ([key, "25", "--by", "ann@lakeview.example", "--reason", "x"],
             "sensor_offset_offset_c_check")]:
        r = ctl(ctl_conf, "offset", *args)
        # A missing option is a usage error (2); the others fail (1).
        code = 2 if err in ("--reason", "not a number") else 1
        assert r.returncode == code and err in r.stderr, (args, r.stderr)
    assert rows(db, "select * from vialwatch.sensor_offset") == []

    loads = d.metric("vialwatch_reference_loads_total")
    r = ctl(ctl_conf, "offset", key, "-1.5", "--by", "ann@lakeview.example",
            "--reason", "reads 1.5 °C high against the reference thermometer")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"sensor {key}: offset -1.5 °C from ")
    (o,) = rows(db, "select * from vialwatch.sensor_offset")
    assert (o["sensor_id"], o["offset_c"], o["set_by"]) == \
        (sensor, -1.5, fridge["admin"])
    wait_loaded(d, sensors=1, loads=loads + 1)
    wait_for(lambda: "1 sensor offset loaded" in d.log_text(), 10,
             "the offset loaded")

    # The next reading is corrected: 8.9 as sent, 7.4 stored and judged
    # (back in range, which ends the excursion); the stored one stays as
    # recorded.
    t1 = now().replace(microsecond=0) + datetime.timedelta(seconds=1)
    publish(mqtt_broker.port, [message(key, t1, 8.9)])
    wait_for(lambda: len(readings(db, sensor)) == 2, 10, "the second reading")
    first, second = readings(db, sensor)
    assert (first["ts"], first["temp_c"], first["temp_raw_c"]) == \
        (t0, 8.9, 8.9)
    assert (second["ts"], second["temp_c"], second["temp_raw_c"]) == \
        (t1, 7.4, 8.9)
    (x,) = wait_for(lambda: [e for e in excursions(db, sensor)
                             if e["ended_at"]], 10, "the excursion ended")
    assert x["started_at"] == t0 and x["ended_at"] == t1
    assert x["alarmed_at"] is None

    # An offset that would take a reading out of -100..+100 refuses it.
    r = ctl(ctl_conf, "offset", str(sensor), "+2", "--by",
            str(fridge["admin"]), "--reason", "replaced probe, warm bias")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: "2 sensor offsets loaded" in d.log_text(), 10,
             "the offsets loaded again")
    t2 = now().replace(microsecond=0) + datetime.timedelta(seconds=1)
    publish(mqtt_broker.port, [message(key, t2, 99.0),
                               message(key, t2 + MINUTE, 4.0)])
    wait_for(lambda: len(readings(db, sensor)) == 3, 10, "the last reading")
    assert readings(db, sensor)[-1]["temp_c"] == 6.0
    (rej,) = wait_for(lambda: rows(
        db, "select * from vialwatch.rejected_message"), 10, "the rejection")
    assert rej["code"] == "out_of_range"
    assert f"sensor {key}: 99 °C with its offset of +2 °C is 101 °C" \
        in rej["reason"]

    # Offsets are kept as recorded.
    with pytest.raises(Exception, match="kept as recorded"):
        db.execute("update vialwatch.sensor_offset set offset_c = 0")
    r = ctl(ctl_conf, "offset", "list", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert [(o["offset_c"], o["current"]) for o in got] == \
        [(-1.5, False), (2, True)]
    r = ctl(ctl_conf, "offset", "list")
    assert r.returncode == 0 and "current" in r.stdout and \
        "reference thermometer" in r.stdout


def spool_record(body):
    n = len(body)
    crc = zlib.crc32(body, zlib.crc32(n.to_bytes(4, "little")))
    return HDR.pack(SPOOL_MAGIC, n, crc) + body


def test_spool_of_an_older_daemon_replayed(daemon, db, pg, mqtt_broker,
                                           clean_db):
    """Readings spooled by a daemon from before temp_raw_c (one column
    less) are stored after an upgrade, with temp_raw_c null; and those a
    daemon spools before it could load the offsets (the database down)
    are corrected by the database."""
    dead_db = {"conninfo": pg.conninfo("vialwatch").replace(
        f"port={pg.port}", "port=1")}
    d = daemon(overrides=GATEWAY, database=dead_db, wait=False)
    d.wait_health(503)
    now_ms = int(time.time() * 1000)
    old_ones = gateway_readings(0, 10, now_ms - 600_000)
    new_ones = gateway_readings(10, 3, now_ms + 90_000 - 100)
    publish(mqtt_broker.port, old_ones + new_ones)
    wait_for(lambda: d.metric("vialwatch_readings_pending") == 13, 10,
             "13 readings held")
    kill9(d)

    # key source kind ts temp_c humidity battery received_at temp_raw_c:
    # temp_c is null, left to the database by a daemon that has not
    # loaded the offsets.  An older daemon wrote the value there and had
    # no temp_raw_c: the first 10 are made so.
    seen = 0
    for seg in sorted(spool_dir(d).glob("*.seg")):
        out = b""
        for _, body in spool_records(seg):
            f = body[:-1].split(b"\t")
            assert len(f) == 9 and f[4] == b"\\N", f
            if seen < 10:
                body = b"\t".join(f[:4] + [f[8]] + f[5:8]) + b"\n"
            out += spool_record(body)
            seen += 1
        seg.write_bytes(out)
    assert seen == 13

    # Meanwhile an offset was set from a minute on.
    clinic = insert(db, "clinic", name="Gateway clinic", timezone="UTC")
    who = insert(db, "contact", clinic_id=clinic, name="Ann",
                 email="ann@gw.example")
    sensor = insert(db, "sensor", key=KEY)
    db.execute("insert into vialwatch.sensor_offset (sensor_id, offset_c, "
               "effective_from, reason, set_by) values (%s, 1, now() + "
               "interval '60 seconds', 'checked', %s)", [sensor, who])

    d.config["database"]["conninfo"] = pg.conninfo("vialwatch")
    d.start()
    d.wait_healthy(timeout=30)
    wait_for(lambda: count_readings(db, KEY) == 13, 20, "13 readings")
    got = rows(db, "select temp_c, temp_raw_c from vialwatch.reading "
               "where sensor_id = %s order by ts", [sensor])
    assert [(g["temp_c"], g["temp_raw_c"]) for g in got[:10]] == \
        [(m["t"], None) for _, m in old_ones]
    assert [(g["temp_c"], g["temp_raw_c"]) for g in got[10:]] == \
        [(pytest.approx(m["t"] + 1), m["t"]) for _, m in new_ones]
    assert d.metric("vialwatch_spool_corrupt_total") == 0
