"""History that does not slow anything down: the newest reading of each
sensor kept on its row (vialwatch.sensor last_ts, last_temp_c, first_ts),
and what the status view, the summaries and the notifications read from
it, over a history of many month partitions.  Readings are inserted with
SQL; the expected figures come from the readings themselves.
"""

import datetime

import pytest

UTC = datetime.timezone.utc

# The newest reading of each fridge straight from the readings, as
# fridge_status found it before the sensor rows held it.
NEWEST = """
select f.id, r.ts, r.temp_c, r.key
from vialwatch.fridge f
left join lateral (
    select r1.ts, r1.temp_c, s.key
    from vialwatch.sensor s
    join vialwatch.reading r1 on r1.sensor_id = s.id
    where s.fridge_id = f.id
    order by r1.ts desc
    limit 1
) r on true
order by f.id
"""

STATUS = """
select fridge_id, last_reading_at, last_temp_c, last_sensor_key
from vialwatch.fridge_status order by fridge_id
"""


def months_ago(n):
    """The first day of the month n months before this one (UTC)."""
    d = datetime.datetime.now(UTC).date().replace(day=1)
    y, m = divmod(d.year * 12 + d.month - 1 - n, 12)
    return datetime.date(y, m + 1, 1)


@pytest.fixture
def history(db, clean_db):
    """Two clinics, three fridges, five sensors (one unassigned), readings
    every 6 hours over 14 month partitions, the newest of each fridge on a
    different sensor."""
    for n in range(14):
        db.execute("select vialwatch.reading_partition_create(%s)",
                   [months_ago(n)])
    parts = db.execute(
        "select count(*) from vialwatch.reading_partition "
        "where lower_bound is not null").fetchone()[0]
    assert parts >= 14
    c1 = db.execute("insert into vialwatch.clinic (name, timezone) values "
                    "('North', 'Europe/Berlin') returning id").fetchone()[0]
    c2 = db.execute("insert into vialwatch.clinic (name, timezone) values "
                    "('South', 'America/Chicago') returning id").fetchone()[0]
    fridges = [db.execute(
        "insert into vialwatch.fridge (clinic_id, name) values (%s, %s) "
        "returning id", [c, name]).fetchone()[0]
        for c, name in ((c1, "A"), (c1, "B"), (c2, "C"))]
    # An empty fridge: "no data".
    db.execute("insert into vialwatch.fridge (clinic_id, name) "
               "values (%s, 'empty')", [c2])
    sensors = []
    for i, f in enumerate([fridges[0], fridges[0], fridges[1], fridges[2],
                           None]):
        sensors.append(db.execute(
            "insert into vialwatch.sensor (key, fridge_id) values (%s, %s) "
            "returning id", [f"s{i}", f]).fetchone()[0])
    start = datetime.datetime.combine(months_ago(13), datetime.time(),
                                      UTC)
    for i, s in enumerate(sensors):
        db.execute(
            "insert into vialwatch.reading (sensor_id, ts, temp_c) "
            "select %s, g, 4 + sin(extract(epoch from g) / 7200) + %s "
            "from generate_series(%s::timestamptz + %s * interval '1 min', "
            "now() - %s * interval '1 min', interval '6 hours') g",
            [s, i / 10, start, i, 10 - i])
    return fridges, sensors


def test_fridge_status_over_14_partitions(db, history):
    """fridge_status gives, for every fridge, the same newest reading as
    the readings themselves; a late reading older than the newest changes
    nothing; a newer one on another sensor takes over."""
    fridges, sensors = history
    want = db.execute(NEWEST).fetchall()
    got = db.execute(STATUS).fetchall()
    assert got == want
    assert [r[1] is None for r in got] == [False, False, False, True]
    assert db.execute("select state from vialwatch.fridge_status "
                      "where last_reading_at is null").fetchall() == [
                          ("no data",)]

    # A logger uploads its buffer: a reading from 3 months ago.
    db.execute("insert into vialwatch.reading (sensor_id, ts, temp_c) "
               "values (%s, now() - interval '90 days', 20)", [sensors[1]])
    assert db.execute(STATUS).fetchall() == want

    # The other probe of fridge A reports: it is the newest now.
    db.execute("insert into vialwatch.reading (sensor_id, ts, temp_c) "
               "values (%s, now(), 6.25)", [sensors[0]])
    got = db.execute(STATUS).fetchall()
    assert got == db.execute(NEWEST).fetchall()
    assert got[0][2:] == (6.25, "s0")


def test_sensor_first_and_last(db, history):
    """sensor.first_ts and last_ts are the oldest and newest reading's
    times, last_temp_c the newest's temperature, for every sensor."""
    rows = db.execute(
        "select s.id, s.first_ts, s.last_ts, s.last_temp_c, "
        "(select min(ts) from vialwatch.reading r where r.sensor_id = s.id), "
        "(select ts from vialwatch.reading r where r.sensor_id = s.id "
        " order by ts desc limit 1), "
        "(select temp_c from vialwatch.reading r where r.sensor_id = s.id "
        " order by ts desc limit 1) "
        "from vialwatch.sensor s order by s.id").fetchall()
    assert len(rows) == 5
    for r in rows:
        assert r[1:4] == r[4:7]


def test_daily_summary_first_day(db, history):
    """daily_summary starts at the fridge's first reading or its creation,
    whichever is earlier, and counts the same readings as the table."""
    fridges, _ = history
    f = fridges[0]
    db.execute("update vialwatch.fridge set created_at = now() where id = %s",
               [f])
    first = db.execute(
        "select min(day), sum(readings) from vialwatch.daily_summary "
        "where fridge_id = %s", [f]).fetchone()
    want = db.execute(
        "select min((r.ts at time zone 'Europe/Berlin')::date), count(*) "
        "from vialwatch.reading r join vialwatch.sensor s "
        "on s.id = r.sensor_id where s.fridge_id = %s", [f]).fetchone()
    assert first == want


def test_excursion_sensors_newest_reading(db, history):
    """What the daemon rebuilds its state from at start: each watched
    sensor's newest reading received before the cut-off, the same as an
    unbounded search finds, also when the newest readings arrived after
    the cut-off (one sensor's whole last week did)."""
    _, sensors = history
    db.execute("update vialwatch.reading set received_at = ts")
    db.execute("update vialwatch.reading set received_at = now() "
               "where sensor_id = %s and ts > now() - interval '7 days'",
               [sensors[2]])
    want_sql = """
        select s.id, vialwatch.epoch_us(r.ts), r.temp_c,
            vialwatch.epoch_us(r.received_at)
        from vialwatch.sensor s
        left join lateral (
            select r.ts, r.temp_c, r.received_at from vialwatch.reading r
            where r.sensor_id = s.id
                and (%(b)s::timestamptz is null or r.received_at < %(b)s)
            order by r.ts desc limit 1) r on true
        where s.fridge_id is not null order by s.id"""
    got_sql = ("select sensor_id, last_ts_us, last_temp_c, last_arrival_us "
               "from vialwatch.excursion_sensors(%(b)s) order by sensor_id")
    cut = db.execute("select now() - interval '1 minute'").fetchone()[0]
    for b in (None, cut):
        want = db.execute(want_sql, {"b": b}).fetchall()
        assert db.execute(got_sql, {"b": b}).fetchall() == want
    got = dict((r[0], r[1]) for r in db.execute(got_sql, {"b": cut}))
    newest = db.execute("select vialwatch.epoch_us(last_ts) from "
                        "vialwatch.sensor where id = %s", [sensors[2]]
                        ).fetchone()[0]
    assert got[sensors[2]] < newest - 6 * 86400 * 10**6
