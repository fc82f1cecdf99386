#!/usr/bin/python3
"""The Python half of contrib/bench: the ingest benchmark of vialwatchd.

On one machine, with a private Mosquitto and PostgreSQL (fresh broker and
fresh database for every run), it measures:

  qos0, qos1  the rate at which a bare subscriber (vwbench sub, counts only)
              receives N readings from --sensors sensors, and the rate at
              which the same N readings become committed rows through
              vialwatchd; rate = N / (last receive or last commit - first
              publish), so both include the same publish start-up;
  latency     publish -> committed row at a fixed 2,000 readings/s, QoS 1,
              read from the rows: pg_xact_commit_timestamp(xmin) - ts;
  rss         the daemon's peak RSS (VmHWM) after 10,000 sensors sent
              200,000 readings as fast as they could, QoS 1;
  alerts      100 fridges each get a reading past their critical bound,
              10 a second: the time from each publish to its alarm email
              accepted by a private SMTP catcher, p50/p99; then the same
              again while 8 hook runs hang (timeout 1 h) and a burst of
              5,000 due reminder emails is being sent.

It prints figures and whether each target was met; it never fails on a
figure (exit 1 means the benchmark itself could not run).

    bench.py --srcdir SRC --builddir BUILD --vwbench PROG [-n N]
        [--sensors S] [--quick] [--phase P[,P...]] [--keep] [--unsafe-pg]
"""

import argparse
import http.client
import os
import platform
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = ("qos0", "qos1", "latency", "rss", "alerts", "scale")
# What a run without --phase measures (scale takes its own quarter hour).
DEFAULT_PHASES = ("qos0", "qos1", "latency", "rss", "alerts")
SENSORS = 1000
# The default size of the scale phase: about 22 million readings.
SCALE_SENSORS = 200
SCALE_MONTHS = 13
SCALE_EVERY = 300
TARGET_RATIO = 0.9
TARGET_RATIO_MIN_N = 500000
TARGET_P99_MS = 250
TARGET_RSS_MIB = 64
TARGET_ALERT_P99_S = 2.0
ALERTS = 100
ALERTS_RATE = 10
ALERTS_HUNG_HOOKS = 8
ALERTS_REMINDERS = 5000
LATENCY_RATE = 2000
LATENCY_SECONDS = 30
RSS_SENSORS = 10000
RSS_READINGS = 200000
# After the publisher is done, how long the count may stand still before
# the run is declared incomplete.
IDLE_TIMEOUT_S = 30
# How often the daemon is asked how many rows it committed (its /metrics
# are cheap; a count(*) every 0.2 s would take CPU from the run itself).
POLL_S = 0.2


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def kv(line):
    """ "a=1 b=2" -> {"a": 1, "b": 2}."""
    return {k: int(v) for k, v in (w.split("=", 1) for w in line.split())}


def cpu_seconds(pid):
    """User + system CPU time of pid so far, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_kib(pid, key):
    """A "kB" line of /proc/PID/status (VmHWM, VmRSS), or None."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


def children_cpu():
    """CPU seconds of the children waited for so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_ticks():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)


def busy_between(t0, t1):
    """Percent of the machine's CPU time that was busy from t0 to t1."""
    total = t1[1] - t0[1]
    return 100 * (t1[0] - t0[0]) / total if total else 0


def family(pid):
    """pid and its children (a PostgreSQL cluster: postmaster and backends)."""
    out = [pid]
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(d.name))
    return out


class CpuMeter:
    """CPU seconds of groups of processes, of our waited-for children and
    the machine's busy share, from creation to stop().  Processes that
    start and end in between are missed (PostgreSQL's autovacuum workers)."""

    def __init__(self, groups):
        self.groups = groups  # {"name": function returning pids}
        self.before = self._sample()
        self.ticks0 = cpu_ticks()
        self.children0 = children_cpu()

    def _sample(self):
        return {name: {pid: cpu_seconds(pid) for pid in f()}
                for name, f in self.groups.items()}

    def stop(self, ticks=None):
        after = self._sample()
        self.busy = busy_between(self.ticks0, ticks or cpu_ticks())
        self.children1 = children_cpu()
        self.seconds = {
            name: sum(c - (self.before[name].get(pid) or 0)
                      for pid, c in after[name].items() if c is not None)
            for name in self.groups}
        return self


def cpu_text(cpu, readings):
    """ "CPU publisher 3.0 s (6.0 us/reading), ..." """
    per = 1e6 / readings if readings else 0
    return "CPU " + ", ".join(f"{k} {v:.1f} s ({v * per:.1f} us/reading)"
                              for k, v in cpu.items())


def pub_rate(pr):
    return pr["count"] / max(1e-6, (pr["last_us"] - pr["first_us"]) / 1e6)


def first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    out = (r.stdout or r.stderr).strip().splitlines()
    return out[0] if out else "?"


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        m = re.search(r"^MemTotal:\s+(\d+) kB", open("/proc/meminfo").read(), re.M)
        mem = int(m.group(1)) / 1048576
    except (OSError, AttributeError):
        mem = 0
    return (f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), "
            f"{model}, {mem:.1f} GiB RAM, Linux {platform.release()}")


def n_(x):
    return f"{x:,.0f}"


class Bench:
    def __init__(self, args, servers):
        self.args = args
        self.s = servers
        self.src = Path(args.srcdir).resolve()
        self.build = Path(args.builddir).resolve()
        self.vwbench = Path(args.vwbench).resolve()
        self.dir = Path(tempfile.mkdtemp(prefix="vialwatch-bench-"))
        self.pg = None
        self.serial = 0
        self.details = []
        self.load = os.getloadavg()
        self.pin = getattr(args, "pin", False)

    # --- CPUs (--pin) ---------------------------------------------------

    def pinned(self, argv, cpu):
        """argv, run on CPU cpu alone with --pin."""
        return ["taskset", "-c", str(cpu), *argv] if self.pin else argv

    def pin_pids(self, pids, cpu):
        """Every thread of pids onto CPU cpu with --pin; their children
        to come inherit it."""
        for pid in pids if self.pin else ():
            subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)],
                           stdout=subprocess.DEVNULL, check=False)

    # --- servers --------------------------------------------------------

    def start_pg(self):
        self.pg = self.s.Postgres(
            self.dir / "pg", fast=self.args.unsafe_pg,
            settings=["track_commit_timestamp = on"])
        log(f"starting PostgreSQL on port {self.pg.port}")
        self.pg.start()
        self.pin_pids(family(self.pg.pid), 1)
        self.pg.createdb("vw_template")
        conf = self.dir / "ctl.conf"
        conf.write_text(self.s.render_config({
            "daemon": {"state_dir": self.dir},
            "database": {"conninfo": self.pg.conninfo("vw_template")},
            "reminders": {"template_dir": self.src / "conf" / "templates"},
        }))
        r = self.s.run_ctl(["migrate"], conf, binary=str(self.build / "vialwatchctl"),
                           env={"VIALWATCH_SQLDIR": str(self.src / "sql")})
        if r.returncode != 0:
            raise RuntimeError(f"vialwatchctl migrate failed:\n{r.stdout}{r.stderr}")

    def fresh_db(self, name):
        self.pg.dropdb(name)
        self.pg.createdb(name, template="vw_template")
        return name

    def broker(self, name):
        b = self.s.Mosquitto(self.dir / f"mqtt-{name}", persistence=False)
        b.start()
        self.pin_pids([b.pid], 0)
        return b

    def daemon(self, name, broker, dbname, qos, smtp=None, extra=None):
        config = self.daemon_config(name, broker, dbname, qos, smtp, extra)
        d = self.s.Daemon(self.dir / f"daemon-{name}", config,
                          binary=str(self.build / "vialwatchd"))
        d.dbname = dbname
        d.start()
        self.pin_pids([d.pid], 1)
        d.wait_healthy(timeout=30)
        return d

    def daemon_config(self, name, broker, dbname, qos, smtp=None, extra=None):
        self.serial += 1
        http_port = self.s.free_port()
        state = self.dir / f"state-{name}"
        state.mkdir(exist_ok=True)
        config = {
            "daemon": {"state_dir": state, "log_level": "info"},
            "mqtt": {"host": "127.0.0.1", "port": broker.port,
                     "client_id": f"vwbench-{self.serial}", "qos": qos},
            "database": {"conninfo": self.pg.conninfo(dbname)},
            "reminders": {"template_dir": self.src / "conf" / "templates"},
            "source bench": {"topic": "bench/#", "format": "json",
                             "temperature": "/temperature", "timestamp": "/ts"},
            "http": {"listen": f"127.0.0.1:{http_port}",
                     "public_url": f"http://127.0.0.1:{http_port}"},
        }
        if smtp is not None:
            config["smtp"] = {"url": f"smtp://127.0.0.1:{smtp.port}",
                              "tls": "none"}
        for section, keys in (extra or {}).items():
            config.setdefault(section, {}).update(keys)
        return config

    def subscribed(self, d, broker, dbname):
        """Waits until the daemon's subscription is in place (a probe it
        refuses, not being JSON, is in rejected_message), so that the run
        neither loses its first readings nor counts the probe's batch."""
        def seen():
            d.check_alive()
            if self.pg.sql("select count(*) from vialwatch.rejected_message",
                           dbname=dbname)[0][0] > 0:
                return True
            broker.publish("bench/probe", "probe", qos=1)
            return False
        self.s.wait_for(seen, 30, "the daemon to store a probe", interval=1)

    def pub(self, port, n, sensors, qos, rate=None):
        argv = [self.vwbench, "pub", "-p", port, "-n", n, "-s", sensors,
                "-q", qos]
        if rate:
            argv += ["-r", rate]
        return subprocess.Popen(self.pinned([str(a) for a in argv], 0),
                                stdout=subprocess.PIPE, text=True)

    def pub_result(self, p, timeout):
        out, _ = p.communicate(timeout=timeout)
        if p.returncode != 0 or not out.strip():
            raise RuntimeError(f"vwbench pub failed (status {p.returncode})")
        return kv(out.strip().splitlines()[-1])

    # --- phases ---------------------------------------------------------

    def bare(self, qos, n, sensors):
        """N readings to a bare subscriber: the limit."""
        broker = self.broker(f"bare{qos}")
        sub = subprocess.Popen(self.pinned(
            [str(self.vwbench), "sub", "-p", str(broker.port), "-n", str(n),
             "-q", str(qos), "-t", "bench/#", "-i", "10"], 1),
            stdout=subprocess.PIPE, text=True)
        try:
            ready, _, _ = select.select([sub.stdout], [], [], 15)
            if not ready or sub.stdout.readline().strip() != "subscribed":
                raise RuntimeError("vwbench sub did not subscribe")
            meter = CpuMeter({"broker": lambda: [broker.pid]})
            p = self.pub(broker.port, n, sensors, qos)
            pr = self.pub_result(p, 120 + n / 2000)
            c1 = children_cpu()
            out, _ = sub.communicate(timeout=60)
            meter.stop()
            sr = kv(out.strip().splitlines()[-1])
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
            broker.stop()
        got = sr["count"]
        secs = (sr["last_us"] - pr["first_us"]) / 1e6 if got else float("nan")
        r = {"n": n, "got": got, "secs": secs, "rate": got / secs if got else 0}
        cpu = {"publisher": c1 - meter.children0, **meter.seconds,
               "subscriber": meter.children1 - c1}
        self.details.append(
            f"bare QoS {qos}: {n_(got)} of {n_(n)} received in {secs:.2f} s; "
            f"publisher {n_(pub_rate(pr))}/s\n      {cpu_text(cpu, got)}; "
            f"machine {meter.busy:.0f}% busy")
        return r

    def through_daemon(self, name, qos, n, sensors, rate=None):
        """N readings through vialwatchd until they are committed rows."""
        broker = self.broker(name)
        dbname = self.fresh_db(f"bench_{name}")
        d = None
        try:
            d = self.daemon(name, broker, dbname, qos)
            self.subscribed(d, broker, dbname)
            probes = self.pg.sql("select count(*) from vialwatch.rejected_message",
                                 dbname=dbname)[0][0]
            backend = [pid for (pid,) in self.pg.sql(
                "select pid from pg_stat_activity "
                "where application_name = 'vialwatchd'", dbname=dbname)]
            meter = CpuMeter({"vialwatchd": lambda: [d.pid],
                              "broker": lambda: [broker.pid],
                              "postgres": lambda: family(self.pg.pid),
                              "its backend": lambda: backend})
            p = self.pub(broker.port, n, sensors, qos, rate)
            stored, ticks = self.wait_stored(d, p, n)
            meter.stop(ticks)
            pr = self.pub_result(p, 60)
            meter.seconds = {"publisher": children_cpu() - meter.children0,
                             **meter.seconds}
            r = {"n": n, "pub": pr, "stored": stored, "cpu": meter.seconds,
                 "busy": meter.busy, "hwm_kib": proc_kib(d.pid, "VmHWM")}
            try:
                r["metrics"] = d.metrics()
            except (OSError, http.client.HTTPException, self.s.ServerError):
                r["metrics"] = None
            try:
                r["status"] = d.stop(timeout=30)
            except TimeoutError:
                r["status"] = "killed: it did not stop within 30 s of SIGTERM"
        finally:
            if d is not None and d.running:
                d.kill()
            broker.stop()
        rows, last_commit_us, rejected = self.pg.sql(
            "select (select count(*) from vialwatch.reading),"
            " (select (extract(epoch from max(pg_xact_commit_timestamp(xmin)))"
            "  * 1000000)::bigint from vialwatch.reading),"
            " (select count(*) from vialwatch.rejected_message)",
            dbname=dbname)[0]
        secs = (last_commit_us - pr["first_us"]) / 1e6 if rows else float("nan")
        r.update({"got": rows, "secs": secs, "rate": rows / secs if rows else 0,
                  "db": dbname, "rejected": rejected - probes})
        self.details.append(self.daemon_line(name, qos, r) + self.warnings(d))
        return r

    @staticmethod
    def daemon_line(name, qos, r):
        """What else a run through the daemon showed, for the details."""
        m = r["metrics"] or {}
        hwm = r["hwm_kib"] / 1024 if r["hwm_kib"] else float("nan")
        line = (f"{name} through vialwatchd: {n_(r['got'])} of {n_(r['n'])} "
                f"rows in {r['secs']:.2f} s (its metrics said "
                f"{n_(r['stored'])}); publisher {n_(pub_rate(r['pub']))}/s; "
                f"{n_(m.get('vialwatch_batch_rows_count', 0))} batches; "
                f"peak RSS {hwm:.1f} MiB\n      "
                f"{cpu_text(r['cpu'], r['got'])}; machine {r['busy']:.0f}% busy")
        connects = m.get("vialwatch_mqtt_connects_total", 0)
        if connects > 1:
            line += (f"\n      it connected to the broker {connects:.0f} times: "
                     "it leaves the broker while the database is behind")
            if qos == 0:
                line += (", and at QoS 0 the broker keeps nothing for a "
                         "client that is away")
        if r["rejected"]:
            line += f"\n      {n_(r['rejected'])} readings rejected"
        if r["metrics"] is None:
            line += "\n      vialwatchd did not answer /metrics at the end"
        if r["status"] != 0:
            line += f"\n      vialwatchd exited with status {r['status']}"
        return line

    @staticmethod
    def warnings(d):
        """The daemon's warnings and errors: the first of each kind, counted."""
        kinds = {}
        for w in re.findall(r"^(?:warning|error|fatal)[^\n]*", d.log_text(), re.M):
            if "bench/probe" in w:
                continue
            key = re.sub(r"\d+", "N", w)[:80]
            kinds.setdefault(key, [w, 0])[1] += 1
        return "".join(f"\n      log x{c}: {w[:160]}" for w, c in kinds.values())

    def wait_stored(self, d, p, n):
        """Polls the daemon's committed-row counter until it reaches n, or
        stands still IDLE_TIMEOUT_S after the publisher finished. Returns
        the count and the machine's CPU ticks when it last moved."""
        stored, changed, pub_done = 0, time.monotonic(), None
        ticks = cpu_ticks()
        while True:
            d.check_alive()
            try:
                now_stored = d.metric("vialwatch_readings_stored_total")
            except (OSError, http.client.HTTPException, self.s.ServerError):
                now_stored = stored
            if now_stored is None:
                # No such metric (any more): ask the database.
                now_stored = self.pg.sql(
                    "select count(*) from vialwatch.reading",
                    dbname=d.dbname)[0][0]
            now = time.monotonic()
            if now_stored != stored:
                stored, changed, ticks = now_stored, now, cpu_ticks()
            if stored >= n:
                return stored, ticks
            if pub_done is None and p.poll() is not None:
                pub_done = now
            if pub_done is not None and now - max(changed, pub_done) > IDLE_TIMEOUT_S:
                log(f"only {n_(stored)} of {n_(n)} rows after "
                    f"{IDLE_TIMEOUT_S} s without progress")
                return stored, ticks
            time.sleep(POLL_S)

    def latency(self, n, sensors):
        r = self.through_daemon("latency", 1, n, sensors, rate=LATENCY_RATE)
        q = self.pg.sql(
            "select percentile_cont(array[0.5, 0.99]) within group (order by l),"
            " max(l), min(l)"
            " from (select extract(epoch from pg_xact_commit_timestamp(xmin)"
            " - ts) * 1000 as l from vialwatch.reading) x", dbname=r["db"])[0]
        r["p50"], r["p99"] = (float(v) for v in q[0])
        r["max"], r["min"] = float(q[1]), float(q[2])
        return r

    def alerts_load(self, dbname):
        """What the loaded run adds: a hook whose runs hang, 8 of them
        queued, and the reminders of 5,000 patients falling due at once.
        Returns the daemon's extra config and a function that starts the
        burst."""
        hang = self.dir / "hang"
        hang.write_text("#!/bin/sh\nexec sleep 3600\n")
        hang.chmod(0o755)
        key = self.dir / "link.key"
        key.write_bytes(b"a-link-key-for-the-benchmark-0123456789\n")
        key.chmod(0o600)
        self.pg.sql(
            "insert into vialwatch.notification (channel, recipient, subject,"
            " body, dedupe_key) select 'hook:hang', 'hang', 'excursion.open',"
            " '{}', 'bench:hang:' || g from generate_series(1, "
            f"{ALERTS_HUNG_HOOKS}) g;"
            "insert into vialwatch.patient (clinic_id, external_ref,"
            " first_name, last_name, email, email_consent) select 1,"
            " 'P-' || g, 'Ana', 'Doe', 'p' || g || '@patients.example', true"
            f" from generate_series(1, {ALERTS_REMINDERS}) g;"
            "insert into vialwatch.treatment (patient_id, product, area,"
            " treated_at) select id, 'Botox', 'glabella',"
            " now() - interval '95 days' from vialwatch.patient",
            dbname=dbname)
        extra = {"hook hang": {"command": str(hang), "timeout": "1h"},
                 "http": {"secret_file": key},
                 "reminders": {"send_window": "00:00-23:59"}}

        def burst():
            self.pg.sql("select count(*) from vialwatch.reminder_scan(0, "
                        f"1439, now(), {2 * ALERTS_REMINDERS}, true)",
                        dbname=dbname)
        return extra, burst

    def alerts(self, count, loaded=False):
        """count alarms, each its fridge's first reading past 12 C: the
        time from its publish to the email's arrival (the catcher's file,
        written when it accepts DATA).  loaded: while hooks hang and a
        burst of reminders is sent."""
        name = "alerts-loaded" if loaded else "alerts"
        broker = self.broker(name)
        dbname = self.fresh_db(f"bench_{name.replace('-', '_')}")
        smtp = self.s.SmtpCatcher(self.dir / f"smtp-{name}").start()
        d = None
        try:
            self.pg.sql(
                "insert into vialwatch.clinic (id, name, timezone) values "
                "(1, 'Bench clinic', 'UTC');"
                "insert into vialwatch.contact (clinic_id, name, email) "
                "values (1, 'Bench', 'bench@clinic.example');"
                "insert into vialwatch.fridge (id, clinic_id, name) select i, 1,"
                " format('Fridge %s', i) from generate_series(1, "
                f"{count}) i;"
                "insert into vialwatch.sensor (key, fridge_id) select "
                "format('bench/f%s', i), i from generate_series(1, "
                f"{count}) i", dbname=dbname)
            extra, burst = (self.alerts_load(dbname) if loaded
                            else (None, None))
            d = self.daemon(name, broker, dbname, 1, smtp=smtp, extra=extra)
            self.s.wait_for(lambda: d.metric("vialwatch_excursion_sensors")
                            == count, 30, "the sensors loaded")
            if loaded:
                burst()
                smtp.wait_messages(20, timeout=60)
            sent = {}
            t0 = time.monotonic()
            for i in range(1, count + 1):
                time.sleep(max(0.0, t0 + (i - 1) / ALERTS_RATE
                               - time.monotonic()))
                sent[f"Fridge {i}"] = time.time()
                broker.publish(f"bench/f{i}", '{"temperature": 13.0}', qos=1)
            def arrived():
                got = [m for m in smtp.messages()
                       if m["Subject"].startswith("ALARM")]
                return got if len(got) >= count else None
            lat = []
            for m in self.s.wait_for(arrived, 120, f"{count} alarm emails"):
                fridge = re.search(r"ALARM: (Fridge \d+) ", m["Subject"])
                at = m.path.with_suffix(".json").stat().st_mtime
                lat.append(at - sent.pop(fridge.group(1)))
            lat.sort()
            def pct(q):
                return lat[min(len(lat) - 1, int(q * len(lat)))]
            r = {"n": count, "got": len(lat), "p50": pct(0.5),
                 "p99": pct(0.99), "max": lat[-1]}
            if loaded:
                r["reminders_left"] = int(self.pg.sql(
                    "select count(*) from vialwatch.notification where"
                    " reminder_id is not null and status = 'pending'",
                    dbname=dbname)[0][0])
            else:
                r["loaded"] = self.alerts(count, loaded=True)
            return r
        finally:
            if d is not None:
                d.stop(timeout=30)
            smtp.stop()
            broker.stop()

    # --- report ---------------------------------------------------------

    def header(self, n, sensors):
        bindir = self.pg.bindir
        settings = dict(self.pg.sql(
            "select name, setting from pg_settings where name in "
            "('fsync', 'synchronous_commit', 'track_commit_timestamp')"))
        print("vialwatch ingest benchmark, "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        print(f"  machine   {machine()}")
        print(f"            load average {self.load[0]:.2f} when the benchmark "
              "started (other work on the machine skews every figure)")
        versions = [first_line([self.build / "vialwatchd", "-V"]),
                    first_line(["mosquitto", "-h"]),
                    "libmosquitto " + first_line(
                        ["pkg-config", "--modversion", "libmosquitto"]),
                    first_line([bindir / "postgres", "--version"])]
        print(f"  software  {', '.join(versions)}")
        print(f"  setup     N = {n_(n)} readings from {n_(sensors)} sensors per "
              "rate run; a fresh Mosquitto and database per run")
        if self.pin:
            print("            pinned: publisher and broker on CPU 0, "
                  "vialwatchd, PostgreSQL and the bare subscriber on CPU 1")
        print(f"            PostgreSQL fsync={settings.get('fsync')} "
              f"synchronous_commit={settings.get('synchronous_commit')} "
              f"track_commit_timestamp={settings.get('track_commit_timestamp')}; "
              "vialwatchd batch settings at their defaults")
        fs = first_line(["findmnt", "-no", "FSTYPE,SOURCE", "-T", str(self.pg.datadir)])
        print(f"            spool and database on {' '.join(fs.split())}")
        print()

    def report(self, res, n):
        """The table: each figure, its target and whether it was met."""
        if "qos0" in res or "qos1" in res:
            print(f"{'ingest rate, readings/s':<28}{'bare sub':>10}"
                  f"{'vialwatchd':>12}{'ratio':>8} {'target':<14} result")
        for qos in (0, 1):
            if f"qos{qos}" in res:
                report_rate(qos, res[f"qos{qos}"], n)
        if "latency" in res:
            print(f"latency, publish -> committed row, {n_(LATENCY_RATE)} "
                  "readings/s, QoS 1")
            report_latency(res["latency"])
        if "rss" in res:
            print(f"peak RSS of vialwatchd, {n_(RSS_SENSORS)} sensors, QoS 1")
            report_rss(res["rss"])
        if "scale" in res:
            if isinstance(res["scale"], str):
                print(f"scale: {res['scale']}")
            else:
                res["scale"].report()
        if "alerts" in res:
            print(f"alarm email, publish -> accepted by the SMTP server, "
                  f"{ALERTS} alarms at {ALERTS_RATE}/s")
            report_alerts(res["alerts"])
            loaded = (res["alerts"].get("loaded", "not run")
                      if isinstance(res["alerts"], dict) else None)
            if loaded is not None:
                print(f"the same, while {ALERTS_HUNG_HOOKS} hooks hang and "
                      f"{n_(ALERTS_REMINDERS)} due reminders are sent")
                report_alerts(loaded)
                if isinstance(loaded, dict):
                    row(f"reminders still queued after the last alarm: "
                        f"{n_(loaded['reminders_left'])}", "", "")
        print("\ndetails")
        for line in self.details:
            print(f"  {line}")

    def cleanup(self, keep):
        if self.pg is not None:
            self.pg.cleanup()
        if keep:
            log(f"logs and data kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def row(text, target, result):
    print(f"  {text:<56} {target:<14} {result}")


def verdict(ok, r):
    out = "met" if ok else "NOT MET"
    if r["got"] != r["n"]:
        out += f"; only {n_(r['got'])} of {n_(r['n'])} arrived"
    return out


def report_rate(qos, r, n):
    target = f"ratio >= {TARGET_RATIO}"
    if isinstance(r, str):
        row(f"QoS {qos}", target, f"FAILED: {r}")
        return
    bare, dmn = r
    ratio = dmn["rate"] / bare["rate"] if bare["rate"] else 0
    if n < TARGET_RATIO_MIN_N:
        result = f"n/a: N < {n_(TARGET_RATIO_MIN_N)}"
    else:
        result = verdict(ratio >= TARGET_RATIO and bare["got"] == n, dmn)
    if bare["got"] != n:
        result += f"; the bare subscriber got only {n_(bare['got'])}"
    row(f"QoS {qos:<22}{n_(bare['rate']):>10}{n_(dmn['rate']):>12}"
        f"{ratio:>8.2f}", target, result)


def report_latency(r):
    target = f"p99 < {TARGET_P99_MS} ms"
    if isinstance(r, str):
        row("", target, f"FAILED: {r}")
        return
    result = verdict(r["p99"] < TARGET_P99_MS, r)
    if r["min"] < 0:
        result += "; clock error: a row committed before its publish"
    row(f"p50 {r['p50']:.1f} ms   p99 {r['p99']:.1f} ms   max {r['max']:.1f} ms",
        target, result)


def report_rss(r):
    target = f"< {TARGET_RSS_MIB} MiB"
    if isinstance(r, str):
        row("", target, f"FAILED: {r}")
        return
    mib = r["hwm_kib"] / 1024 if r["hwm_kib"] else float("nan")
    row(f"VmHWM {mib:.1f} MiB", target, verdict(mib < TARGET_RSS_MIB, r))


def report_alerts(r):
    target = f"p99 < {TARGET_ALERT_P99_S:g} s"
    if isinstance(r, str):
        row("", target, f"FAILED: {r}")
        return
    row(f"p50 {r['p50'] * 1000:.0f} ms   p99 {r['p99'] * 1000:.0f} ms   "
        f"max {r['max'] * 1000:.0f} ms", target,
        verdict(r["p99"] < TARGET_ALERT_P99_S, r))


def phases(text):
    out = []
    for p in text.split(","):
        p = p.strip()
        if p not in PHASES:
            raise argparse.ArgumentTypeError(
                f"unknown phase {p!r} (choose from {', '.join(PHASES)})")
        out.append(p)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--srcdir", required=True)
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--vwbench", required=True)
    ap.add_argument("-n", type=int, help="readings per rate run (500000)")
    ap.add_argument("--sensors", type=int,
                    help=f"sensors ({SENSORS}; scale: {SCALE_SENSORS})")
    ap.add_argument("--months", type=int, default=SCALE_MONTHS,
                    help=f"scale: months of history ({SCALE_MONTHS})")
    ap.add_argument("--every", type=int, default=SCALE_EVERY,
                    help=f"scale: seconds between readings ({SCALE_EVERY})")
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    ap.add_argument("--phase", type=phases, action="extend",
                    help=f"run only these ({', '.join(PHASES)}); repeatable")
    ap.add_argument("--pin", action="store_true",
                    help="publisher and broker on CPU 0; vialwatchd, "
                    "PostgreSQL and the bare subscriber on CPU 1")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--unsafe-pg", action="store_true",
                    help="PostgreSQL with fsync and synchronous_commit off")
    args = ap.parse_args()
    want = args.phase or list(DEFAULT_PHASES)
    scale_sensors = args.sensors or SCALE_SENSORS
    args.sensors = args.sensors or SENSORS
    n = args.n or (20000 if args.quick else 500000)
    lat_n = LATENCY_RATE * LATENCY_SECONDS
    rss_n = RSS_READINGS
    if args.quick:
        lat_n = LATENCY_RATE * 5
        rss_n = RSS_SENSORS * 2
    if n < 1 or args.sensors < 1 or args.months < 1 or args.every < 1:
        ap.error("-n, --sensors, --months and --every must be positive")

    sys.dont_write_bytecode = True
    sys.path.insert(0, str(Path(args.srcdir).resolve() / "tests" / "integration"))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import servers

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)

    def rates(qos):
        log(f"QoS {qos}: {n_(n)} readings to a bare subscriber")
        bare = b.bare(qos, n, args.sensors)
        log(f"QoS {qos}: {n_(n)} readings through vialwatchd")
        return bare, b.through_daemon(f"qos{qos}", qos, n, args.sensors)

    def latency():
        log(f"latency: {n_(lat_n)} readings at {n_(LATENCY_RATE)}/s")
        return b.latency(lat_n, args.sensors)

    def rss():
        log(f"rss: {n_(rss_n)} readings from {n_(RSS_SENSORS)} sensors")
        return b.through_daemon("rss", 1, rss_n, RSS_SENSORS)

    def alerts():
        log(f"alerts: {ALERTS} alarms at {ALERTS_RATE}/s")
        return b.alerts(ALERTS)

    def scale():
        import bench_scale
        import psycopg
        log(f"scale: {n_(scale_sensors)} sensors, {args.months} months, "
            f"a reading every {args.every} s")
        try:
            return bench_scale.Scale(b, scale_sensors, args.months,
                                     args.every).run()
        except psycopg.Error as e:
            raise RuntimeError(f"scale: {e}") from None

    runs = {"qos0": lambda: rates(0), "qos1": lambda: rates(1),
            "latency": latency, "rss": rss, "alerts": alerts, "scale": scale}
    b = Bench(args, servers)
    ok = False
    try:
        b.start_pg()
        res = {}
        for phase in PHASES:
            if phase not in want:
                continue
            # One phase failing (the daemon died, say) is a result too;
            # the others still run.
            try:
                res[phase] = runs[phase]()
            except (servers.ServerError, TimeoutError, RuntimeError,
                    subprocess.SubprocessError, OSError) as e:
                log(f"{phase} failed: {e}")
                res[phase] = str(e).splitlines()[0]
        b.header(n, args.sensors)
        b.report(res, n)
        ok = not any(isinstance(r, str) for r in res.values())
    except KeyboardInterrupt:
        log("interrupted")
    except Exception as e:
        log(f"failed: {e}")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        b.cleanup(args.keep or not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
