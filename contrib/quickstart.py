#!/usr/bin/python3
"""The Python half of contrib/quickstart: runs a complete vialwatch.

Starts PostgreSQL, Mosquitto and an SMTP catcher under one directory,
creates and migrates the database, loads two demo clinics, starts the
freshly built vialwatchd and feeds it with contrib/demo-feed, whose freezer
thaws for a while: the alarm and recovery emails the daemon sends, and a
patient's re-treatment reminder, are caught and printed.  Ctrl-C stops everything.  With --exit-after it stops
by itself and exits 0 only if every demo probe's readings reached
vialwatch.reading and the alarm, recovery and reminder emails were caught.

    quickstart.py --srcdir SRC [--builddir BUILD] [--dir DIR] [--exit-after S]
"""

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

MARKER = ".vialwatch-quickstart"

# The demo feed's probes (see contrib/demo-feed), the source that reads
# each, and the fridge it sits in (None: a new probe for an admin to assign).
DEMO_SENSORS = [
    ("zigbee2mqtt/chicago-botox-fridge", "zigbee2mqtt", "Botox fridge"),
    ("tele/chicago-botox-fridge/SENSOR/DS18B20-1", "tasmota", "Botox fridge"),
    ("tele/chicago-botox-fridge/SENSOR/DS18B20-2", "tasmota", "Botox fridge"),
    ("shelly/berlin-fridge/temperature:0", "shelly", "Medikamentenkühlschrank"),
    ("v3/vialwatch-demo/devices/berlin-fridge-lora", "ttn",
     "Medikamentenkühlschrank"),
    ("esphome/berlin-freezer/sensor/temperature", "esphome", "Gefrierschrank"),
    ("zigbee2mqtt/hallway-spare", "zigbee2mqtt", None),
]

DEMO_SQL = """
insert into vialwatch.clinic (name, timezone, locale, phone, booking_url)
values
	('Lakeside Aesthetics', 'America/Chicago', 'en-US', '+1 312 555 0142',
	    'https://lakeside-aesthetics.example/book'),
	('Praxis am Stadtpark', 'Europe/Berlin', 'de-DE', '+49 30 5550 1234',
	    null);

insert into vialwatch.fridge (clinic_id, name, kind)
select c.id, f.name, f.kind
from (values
	('Lakeside Aesthetics', 'Botox fridge', 'fridge'),
	('Praxis am Stadtpark', 'Medikamentenkühlschrank', 'fridge'),
	('Praxis am Stadtpark', 'Gefrierschrank', 'freezer')
) as f(clinic, name, kind)
join vialwatch.clinic c on c.name = f.clinic;

insert into vialwatch.contact (clinic_id, name, email, tier)
select c.id, x.name, x.email, x.tier
from (values
	('Lakeside Aesthetics', 'Dana Whitfield, RN',
	    'dana.whitfield@lakeside-aesthetics.example', 1),
	('Lakeside Aesthetics', 'Marcus Reyes (practice manager)',
	    'marcus.reyes@lakeside-aesthetics.example', 2),
	('Praxis am Stadtpark', 'Jonas Becker (MFA)',
	    'j.becker@praxis-stadtpark.example', 1),
	('Praxis am Stadtpark', 'Dr. Katrin Vogel',
	    'k.vogel@praxis-stadtpark.example', 2)
) as x(clinic, name, email, tier)
join vialwatch.clinic c on c.name = x.clinic;

insert into vialwatch.lot (fridge_id, product, lot_number, expires_on, quantity)
select f.id, l.product, l.lot, (current_date + l.months * interval '1 month')::date,
    l.quantity
from (values
	('Botox fridge', 'Botox 100 U', 'C3709AC3', 14, 6),
	('Botox fridge', 'Dysport 300 U', '2L0457', 9, 4),
	('Medikamentenkühlschrank', 'Botox 100 U', 'C4120BC4', 16, 3),
	('Medikamentenkühlschrank', 'Influvac Tetra', 'W3L461V', 7, 20),
	('Gefrierschrank', 'Varivax', 'Y012345', 11, 10)
) as l(fridge, product, lot, months, quantity)
join vialwatch.fridge f on f.name = l.fridge;

insert into vialwatch.patient (clinic_id, external_ref, first_name, last_name,
    email, email_consent)
select c.id, p.ref, p.first, p.last, p.email, p.consent
from (values
	('Lakeside Aesthetics', 'P-1001', 'Emily', 'Carter',
	    'emily.carter@mail.example', true),
	('Lakeside Aesthetics', 'P-1002', 'Michael', 'Nguyen',
	    'm.nguyen@mail.example', false),
	('Lakeside Aesthetics', 'P-1003', 'Sarah', 'Johnson',
	    'sarah.j@mail.example', true),
	('Praxis am Stadtpark', 'B-2001', 'Lena', 'Schmidt',
	    'lena.schmidt@mail.example', true),
	('Praxis am Stadtpark', 'B-2002', 'Thomas', 'Müller', null, false)
) as p(clinic, ref, first, last, email, consent)
join vialwatch.clinic c on c.name = p.clinic;

-- Emily's reminder is due now (95 days); Michael's would be, but he gave no
-- consent; Lena has her next appointment booked already; Sarah and Thomas
-- are not due yet.
insert into vialwatch.treatment (patient_id, product, area, units, lot_number,
    treated_at)
select p.id, t.product, t.area, t.units, t.lot, now() - t.days * interval '1 day'
from (values
	('P-1001', 'Botox', 'glabella', 20, 'C3709AC3', 95),
	('P-1002', 'Botox', 'forehead', 12, 'C3709AC3', 100),
	('P-1003', 'Dysport', 'crow''s feet', 40, '2L0457', 40),
	('B-2001', 'Botox', 'glabella', 20, 'C4120BC4', 92),
	('B-2002', 'Xeomin', 'forehead', 16, null, 30)
) as t(ref, product, area, units, lot, days)
join vialwatch.patient p on p.external_ref = t.ref;

insert into vialwatch.appointment (patient_id, starts_at)
select id, date_trunc('hour', now()) + interval '7 days 2 hours'
from vialwatch.patient where external_ref = 'B-2001';
"""


def config_text(run, pg, broker, smtp, http_port, secret):
    return f"""\
# vialwatch.conf written by contrib/quickstart for the demo in {run}.

[daemon]
state_dir = {run}/state
log_level = info

[mqtt]
host = 127.0.0.1
port = {broker.port}
client_id = vialwatchd-quickstart
qos = 1

[database]
conninfo = {pg.conninfo("vialwatch")}

[source zigbee2mqtt]
topic = zigbee2mqtt/#
format = zigbee2mqtt

[source tasmota]
topic = tele/+/SENSOR
format = tasmota

[source shelly]
topic = shelly/+/events/rpc
format = shelly-gen2

[source ttn]
topic = v3/+/devices/+/up
format = ttn

[source esphome]
topic = esphome/+/sensor/+/state
format = esphome

[smtp]
url = smtp://127.0.0.1:{smtp.port}
tls = none
from = vialwatch demo <alerts@clinic.example>

[http]
listen = 127.0.0.1:{http_port}
public_url = http://127.0.0.1:{http_port}
secret_file = {secret}

[alerts]
escalate_after = 15m
repeat_every = 30m

[reminders]
scan_interval = 1m
# Wide open so that the demo reminder goes out at any hour; a clinic would
# use its opening hours, e.g. 09:00-18:00.
send_window = 00:00-24:00
template_dir = {Path(__file__).resolve().parents[1] / "conf" / "templates"}
"""


def prepare_dir(run):
    """Creates run, or empties it when an earlier quickstart made it."""
    if run.exists() and any(run.iterdir()):
        if not (run / MARKER).exists():
            sys.exit(f"quickstart: {run} is not empty and was not made by "
                     "quickstart; choose another --dir")
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    (run / MARKER).write_text("made by contrib/quickstart; removed on its next run\n")


def load_demo_data(pg):
    with pg.connect("vialwatch", autocommit=False) as conn:
        conn.execute(DEMO_SQL)
        for key, source, fridge in DEMO_SENSORS:
            if fridge is None:
                continue
            conn.execute(
                "insert into vialwatch.sensor (key, source, fridge_id) "
                "select %s, %s, id from vialwatch.fridge where name = %s",
                [key, source, fridge])


def readings_per_sensor(pg):
    with pg.connect("vialwatch") as conn:
        return dict(conn.execute(
            "select s.key, count(r.sensor_id) from vialwatch.sensor s "
            "left join vialwatch.reading r on r.sensor_id = s.id "
            "group by s.key order by s.key").fetchall())


# The emails the demo must show: an alarm, its recovery, and a patient's
# re-treatment reminder.
KINDS = ("ALARM", "Recovered", "reminder")


class MailWatch:
    """Prints each email the catcher receives: a line for each, and the
    whole text of the first alarm, recovery and reminder."""

    def __init__(self, smtp):
        self.smtp = smtp
        self.seen = set()
        self.shown = set()

    def poll(self):
        for m in self.smtp.messages():
            if m.path.name in self.seen:
                continue
            self.seen.add(m.path.name)
            subject = m["Subject"]
            print(f"quickstart: email caught, {m.path}\n"
                  f"            to {', '.join(m.envelope_to)}: {subject}",
                  flush=True)
            kind = subject.split(":", 1)[0]
            if m["List-Unsubscribe"] is not None:
                kind = "reminder"
            if kind in KINDS and kind not in self.shown:
                self.shown.add(kind)
                text = m.get_body(preferencelist=("plain",)).get_content()
                head = [f"From: {m['From']}", f"To: {m['To']}",
                        f"Subject: {subject}"]
                if kind == "reminder":
                    head.append(f"List-Unsubscribe: {m['List-Unsubscribe']}")
                print("\n    " + "\n    ".join(
                    head + [""] + text.rstrip("\n").split("\n")) + "\n",
                      flush=True)

    def caught(self, kind):
        return kind in self.shown


def banner(run, pg, broker, smtp, d):
    url = f"http://127.0.0.1:{d.http_port}"
    print(f"""
vialwatch is running, fed by contrib/demo-feed.  Everything is in
  {run}

  Health     curl -s {url}/healthz
  Metrics    curl -s {url}/metrics
  Database   psql "{pg.conninfo('vialwatch')}"
  Emails     {smtp.maildir}/  (one .eml per message)
             The demo freezer (Gefrierschrank) thaws a few rounds after the
             start: its alarm and recovery emails are printed here.
  Logs       {d.log_path}
             {run}/demo-feed.log
  Config     {d.conf_path}

Things to try in psql:
  select * from vialwatch.fridge_status;
  select s.key, r.ts, r.temp_c from vialwatch.reading r
    join vialwatch.sensor s on s.id = r.sensor_id order by r.ts desc limit 10;
  select key, source, first_seen from vialwatch.sensor where fridge_id is null;
  select received_at, topic, code, reason from vialwatch.rejected_message;

Acknowledge the alarm: open the link in the alarm email, or
  vialwatchctl -c {d.conf_path} ack ID --by EMAIL --note TEXT
  vialwatchctl -c {d.conf_path} excursions

Send a reading the daemon refuses, and find it in rejected_message:
  mosquitto_pub -p {broker.port} -q 1 -t zigbee2mqtt/chicago-botox-fridge \\
    -m '{{"temperature": 327.67}}'

Ctrl-C stops everything.
""", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--srcdir", required=True)
    ap.add_argument("--builddir")
    ap.add_argument("--dir", default="quickstart-run")
    ap.add_argument("--exit-after", type=float, metavar="SECONDS")
    args = ap.parse_args()

    src = Path(args.srcdir).resolve()
    build = Path(args.builddir or src).resolve()
    run = Path(args.dir).resolve()
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(src / "tests" / "integration"))
    from servers import Daemon, Mosquitto, Postgres, Process, SmtpCatcher
    from servers import free_port, run_ctl

    class Feed(Process):
        name = "demo-feed"

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)

    prepare_dir(run)
    pg = Postgres(run / "pg", fast=False)
    broker = Mosquitto(run / "mqtt")
    smtp = SmtpCatcher(run / "smtp")
    feed = Feed(run / "demo-feed.log")
    d = None
    try:
        print(f"quickstart: starting PostgreSQL on port {pg.port}", flush=True)
        pg.start()
        pg.createdb("vialwatch")
        print(f"quickstart: starting Mosquitto on port {broker.port}", flush=True)
        broker.start()
        print(f"quickstart: starting the SMTP catcher on port {smtp.port}",
              flush=True)
        smtp.start()

        secret = run / "link.key"
        secret.write_text(os.urandom(32).hex() + "\n")
        os.chmod(secret, 0o600)
        http_port = free_port()
        conf = run / "vialwatch.conf"
        conf.write_text(config_text(run, pg, broker, smtp, http_port, secret))
        (run / "state").mkdir(exist_ok=True)

        r = run_ctl(["migrate"], conf, binary=str(build / "vialwatchctl"),
                    env={"VIALWATCH_SQLDIR": str(src / "sql")})
        sys.stdout.write(r.stdout)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            print("quickstart: vialwatchctl migrate failed", file=sys.stderr)
            return 1
        load_demo_data(pg)
        print("quickstart: loaded 2 clinics, 3 fridges, 4 contacts, 5 lots, "
              "5 patients", flush=True)

        d = Daemon(run, conf.read_text(), binary=str(build / "vialwatchd"))
        d.start()
        print(f"quickstart: started vialwatchd (pid {d.pid}), waiting for "
              f"{'http://127.0.0.1:%d/healthz' % http_port}", flush=True)
        try:
            d.wait_healthy(timeout=30)
        except Exception as e:
            print(f"quickstart: vialwatchd is not healthy: {e}\n{d.log_tail()}",
                  file=sys.stderr)
            return 1

        interval = 5.0
        if args.exit_after:
            interval = min(5.0, max(1.0, args.exit_after / 10))
        feed.spawn([sys.executable, src / "contrib" / "demo-feed", "--host",
                     "127.0.0.1", "--port", broker.port, "--interval", interval],
                    env=dict(os.environ, PYTHONUNBUFFERED="1"))
        banner(run, pg, broker, smtp, d)

        mail = MailWatch(smtp)
        deadline = time.monotonic() + args.exit_after if args.exit_after else None
        while deadline is None or time.monotonic() < deadline:
            d.check_alive()
            feed.check_alive()
            mail.poll()
            time.sleep(0.5)

        # --exit-after: stop the feed and let the daemon flush, then count.
        feed.terminate()
        code = d.stop(timeout=30)
        mail.poll()
        counts = readings_per_sensor(pg)
        print("\nreadings per sensor:")
        missing = []
        for key, _, _ in DEMO_SENSORS:
            n = counts.get(key, 0)
            print(f"  {n:6d}  {key}")
            if n == 0:
                missing.append(key)
        for key in sorted(set(counts) - {k for k, _, _ in DEMO_SENSORS}):
            print(f"  {counts[key]:6d}  {key}")
        if code != 0:
            print(f"quickstart: vialwatchd exited with status {code}",
                  file=sys.stderr)
        if missing:
            print(f"quickstart: no readings from {', '.join(missing)}; see "
                  f"{d.log_path}", file=sys.stderr)
        emails = [k for k in KINDS if not mail.caught(k)]
        if emails:
            print(f"quickstart: no {' or '.join(emails)} email caught in "
                  f"{smtp.maildir}; see {d.log_path}", file=sys.stderr)
        return 0 if code == 0 and not missing and not emails else 1
    except KeyboardInterrupt:
        print("\nquickstart: stopping", flush=True)
        return 0
    except Exception as e:
        print(f"quickstart: {e}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not cut the shutdown short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        feed.terminate()
        if d is not None and d.running:
            try:
                d.stop(timeout=30)
            except TimeoutError as e:
                print(f"quickstart: {e}", file=sys.stderr)
        smtp.stop()
        broker.stop()
        pg.cleanup()
        print(f"quickstart: stopped; logs and caught emails stay in {run}",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
