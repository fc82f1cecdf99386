"""The Grafana dashboards of contrib/grafana: every panel's SQL, every
annotation and variable query, with Grafana's PostgreSQL macros expanded as
Grafana expands them, runs against the test database as the datasource's
role (vialwatch_readonly) and returns the columns its panel type needs."""

import datetime
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from test_excursions import insert, setup_fridge

SRCDIR = Path(__file__).resolve().parents[2]
GRAFANA = SRCDIR / "contrib" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC).replace(microsecond=0)
FROM, TO = NOW - datetime.timedelta(days=3), NOW

# PostgreSQL type oids
NUMERIC = {20, 21, 23, 700, 701, 1700}
TIME = {1082, 1114, 1184}
TEXT = {25, 1043, 19}


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds(interval):
    n, unit = re.fullmatch(r"(\d+)([smhd])", interval).groups()
    return int(n) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def expand(sql, variables):
    """Grafana's PostgreSQL macros and template variables, expanded as its
    datasource does for the time range FROM..TO."""
    def group(m, alias):
        col, interval = m.group(1).strip(), m.group(2).strip().strip("'\"")
        n = seconds(interval)
        s = f"floor(extract(epoch from {col})/{n})*{n}"
        return s + (' AS "time"' if alias else "")

    sql = re.sub(r"\$__timeGroupAlias\(([^,]+),([^)]+)\)",
                 lambda m: group(m, True), sql)
    sql = re.sub(r"\$__timeGroup\(([^,]+),([^)]+)\)",
                 lambda m: group(m, False), sql)
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)",
                 lambda m: f"{m.group(1).strip()} BETWEEN "
                 f"'{rfc3339(FROM)}' AND '{rfc3339(TO)}'", sql)
    sql = re.sub(r"\$__time\(([^)]+)\)",
                 lambda m: f'{m.group(1).strip()} AS "time"', sql)
    sql = sql.replace("$__timeFrom()", f"'{rfc3339(FROM)}'")
    sql = sql.replace("$__timeTo()", f"'{rfc3339(TO)}'")
    for name, value in variables.items():
        sql = re.sub(r"\$\{%s\}|\$%s\b|\[\[%s\]\]" % (name, name, name),
                     str(value), sql)
    assert "$" not in sql.replace("$$", ""), f"unexpanded macro in:\n{sql}"
    return sql


def run_readonly(db, sql):
    """(column names, type oids, rows, ms) of sql run as vialwatch_readonly."""
    with db.transaction():
        db.execute("set local role vialwatch_readonly")
        t = time.monotonic()
        cur = db.execute(sql)
        rows = cur.fetchall()
        ms = (time.monotonic() - t) * 1000
        names = [d.name for d in cur.description]
        types = [d.type_code for d in cur.description]
    return names, types, rows, ms


def queries(dash):
    """(what, kind, format, sql) of every panel target, annotation and
    template variable of a dashboard."""
    for p in dash["panels"]:
        for t in p.get("targets", []):
            yield (f"panel {p['title']!r}", p["type"], t["format"],
                   t["rawSql"])
    for a in dash["annotations"]["list"]:
        yield (f"annotation {a['name']!r}", "annotation", "table",
               a["target"]["rawSql"])
    for v in dash["templating"]["list"]:
        yield (f"variable {v['name']!r}", "variable", "table", v["query"])


def check_columns(what, kind, fmt, names, types, rows):
    cols = dict(zip(names, types))
    assert rows, f"{what}: no rows on the test data"
    if kind == "annotation":
        assert "time" in cols and "text" in cols, f"{what}: {names}"
        assert cols["time"] in TIME | NUMERIC
        assert cols.get("timeend", 1184) in TIME | NUMERIC
        return
    if kind == "variable":
        assert {"__text", "__value"} <= set(cols), f"{what}: {names}"
        return
    if fmt == "time_series":
        assert names[0] == "time" or "time" in cols, f"{what}: {names}"
        assert cols["time"] in TIME | NUMERIC, f"{what}: time type"
        values = [n for n, t in cols.items()
                  if n not in ("time", "metric") and t in NUMERIC]
        assert values, f"{what}: no numeric column in {names}"
        if "metric" in cols:
            assert cols["metric"] in TEXT, f"{what}: metric is not text"
        others = set(names) - {"time", "metric"} - set(values)
        assert not others, f"{what}: columns Grafana cannot plot: {others}"
        ts = [r[names.index("time")] for r in rows]
        assert ts == sorted(ts), f"{what}: rows not ordered by time"
        return
    assert fmt == "table", f"{what}: format {fmt}"
    assert len(set(names)) == len(names), f"{what}: repeated column names"
    if kind in ("bargauge", "stat", "gauge"):
        assert any(t in NUMERIC for t in types), f"{what}: nothing numeric"


@pytest.fixture
def fleet(db, clean_db):
    """A fridge with three days of readings, an open alarmed excursion and
    a stale sensor, and daily summaries to show."""
    f = setup_fridge(db, key="json/lakeview/botox")
    rows = []
    t = FROM
    while t <= NOW:
        temp = 10.5 if NOW - t < datetime.timedelta(hours=2) else 5.0
        rows.append((f["sensor"], t, temp))
        t += datetime.timedelta(minutes=15)
    with db.cursor() as cur:
        cur.executemany("insert into vialwatch.reading (sensor_id, ts, "
                        "temp_c) values (%s, %s, %s)", rows)
    db.execute("update vialwatch.sensor set last_seen = %s where id = %s",
               [NOW, f["sensor"]])
    insert(db, "excursion", fridge_id=f["fridge"], sensor_id=f["sensor"],
           kind="high", started_at=NOW - datetime.timedelta(hours=2),
           alarmed_at=NOW - datetime.timedelta(hours=1, minutes=30),
           peak_c=10.5)
    insert(db, "excursion", fridge_id=f["fridge"], sensor_id=f["sensor"],
           kind="low", started_at=NOW - datetime.timedelta(days=2),
           ended_at=NOW - datetime.timedelta(days=2) +
           datetime.timedelta(minutes=20), peak_c=1.5)
    stale = insert(db, "sensor", key="json/lakeview/door-probe",
                   fridge_id=f["fridge"])
    db.execute("update vialwatch.sensor set last_seen = now() - "
               "interval '3 hours' where id = %s", [stale])
    return f


def test_datasource_provisioning():
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" /
                          "vialwatch.yml").read_text())
    (ds,) = doc["datasources"]
    assert ds["type"] == "postgres" and ds["uid"] == "vialwatch-postgres"
    assert ds["jsonData"]["database"] == "vialwatch"
    assert ds["secureJsonData"]["password"].startswith("$")
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" /
                          "vialwatch.yml").read_text())
    assert doc["providers"][0]["type"] == "file"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_queries(db, fleet, path):
    dash = json.loads(path.read_text())
    assert dash["uid"].startswith("vialwatch-")
    seen = 0
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == "vialwatch-postgres", p["title"]
    variables = {"fridge": fleet["fridge"]}
    for what, kind, fmt, sql in queries(dash):
        names, types, rows, ms = run_readonly(db, expand(sql, variables))
        print(f"{path.stem}: {what}: {len(rows)} rows, {ms:.1f} ms")
        check_columns(what, kind, fmt, names, types, rows)
        seen += 1
    assert seen >= 5


def test_fridge_dashboard_shows_the_excursions(db, fleet):
    dash = json.loads((GRAFANA / "dashboards" / "fridge.json").read_text())
    (ann,) = dash["annotations"]["list"]
    names, _, rows, _ = run_readonly(
        db, expand(ann["target"]["rawSql"], {"fridge": fleet["fridge"]}))
    texts = [r[names.index("text")] for r in rows]
    assert len(texts) == 2
    assert texts[0].startswith("low excursion") and "peak 1.5 °C" in texts[0]
    assert texts[1].startswith("high excursion")


def test_fleet_dashboard_finds_the_stale_sensor(db, fleet):
    dash = json.loads((GRAFANA / "dashboards" / "fleet.json").read_text())
    (stale,) = [p for p in dash["panels"] if p["title"] == "Stale sensors"]
    names, _, rows, _ = run_readonly(db, expand(stale["targets"][0]["rawSql"],
                                                {}))
    assert [r[names.index("sensor_key")] for r in rows] == [
        "json/lakeview/door-probe"]
