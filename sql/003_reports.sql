-- 003_reports.sql: the admin views behind "vialwatchctl report": a daily
-- summary per fridge and clinic-local day, and the excursion report.
--
-- Run by "vialwatchctl migrate" in one transaction, like 001_init.sql.

-- One row per fridge and clinic-local day, from the day of the fridge's
-- first reading (or its creation, if earlier) to today, days without a
-- reading included: a missing day is evidence too.
--
-- day is the date in the clinic's time zone; the day runs from its local
-- midnight to the next, so a DST change day lasts 23 or 25 hours.  The
-- readings are those of the sensors assigned to the fridge now
-- (sensor.fridge_id), all of them together.
--
-- Each reading stands for the time from its ts until the next reading of
-- the same sensor, cut at the end of its local day, at now(), and at the
-- fridge's offline_after: a longer silence is a gap, not the last value
-- held for ever.  So the newest reading of a sensor counts until now (at
-- most offline_after), and the stretch between local midnight and a day's
-- first reading counts for neither day: each day's figures come from its
-- own readings only.
--
--   min_c, max_c   lowest and highest reading of the day
--   mean_c         time-weighted mean
--   mkt_c          mean kinetic temperature (USP <1160>), ΔH/R = 10 000 K:
--                  (ΔH/R) / -ln(Σ tᵢ·exp(-(ΔH/R)/Tᵢ) / Σ tᵢ), Tᵢ in kelvin
--   minutes_out    minutes outside [low_c, high_c]; with several sensors,
--                  the time during which at least one of them was out
--   readings       number of readings of the day, all sensors
--   longest_gap    longest time without any reading of the fridge within
--                  the day, its start and end (or now, today) included;
--                  the whole day when it has no reading
--
-- Without readings, the temperatures and minutes_out are null and readings
-- is 0.  Filter on fridge_id and day: only the days asked for are computed,
-- each from an index range scan of its readings.  (Unfiltered, every day
-- of every fridge is; "set jit = off" then spares a second of compiling.)
create view vialwatch.daily_summary as
select
	f.id as fridge_id,
	g.d::date as day,
	s.min_c,
	s.max_c,
	s.mean_c,
	s.mkt_c,
	s.minutes_out,
	s.readings,
	s.longest_gap
from vialwatch.fridge f
join vialwatch.clinic c on c.id = f.clinic_id
cross join lateral (
	select least(f.created_at, min(fr.ts)) as since
	from vialwatch.sensor fs
	cross join lateral (
		select r.ts
		from vialwatch.reading r
		where r.sensor_id = fs.id
		order by r.ts
		limit 1
	) fr
	where fs.fridge_id = f.id
) since
-- Local dates as timestamps without time zone: adding a day is exact.
cross join lateral generate_series(
	(since.since at time zone c.timezone)::date::timestamp,
	(now() at time zone c.timezone)::date::timestamp,
	interval '1 day') as g(d)
cross join lateral (
	select g.d at time zone c.timezone as day_start,
	    (g.d + interval '1 day') at time zone c.timezone as day_end
) b
cross join lateral (
	with r0 as (
		select r.sensor_id, r.ts, r.temp_c,
		    greatest(r.ts, least(
			lead(r.ts) over (partition by r.sensor_id
			    order by r.ts),
			r.ts + f.offline_after, b.day_end, now())) as until
		from vialwatch.sensor fs
		join vialwatch.reading r on r.sensor_id = fs.id
		where fs.fridge_id = f.id
		    and r.ts >= b.day_start and r.ts < b.day_end
	),
	r as (
		select r0.*,
		    extract(epoch from r0.until - r0.ts)::double precision as w
		from r0
	),
	-- The stretches [ts, until) out of range, merged across sensors:
	-- a stretch starts an island when it begins after all earlier ones.
	out_marked as (
		select r.ts, r.until,
		    coalesce(r.ts > max(r.until) over (order by r.ts, r.until
			rows between unbounded preceding and 1 preceding),
			true) as starts
		from r
		where (r.temp_c < f.low_c or r.temp_c > f.high_c)
		    and r.until > r.ts
	),
	out_merged as (
		select min(o.ts) as lo, max(o.until) as hi
		from (
			select ts, until, sum(starts::integer) over (
			    order by ts, until) as island
			from out_marked
		) o
		group by o.island
	),
	gaps as (
		select t.ts - coalesce(lag(t.ts) over (order by t.ts),
		    b.day_start) as gap
		from (select distinct ts from r) t
		union all
		select least(b.day_end, now()) - coalesce(max(r.ts), b.day_start)
		from r
	)
	select
		min(r.temp_c) as min_c,
		max(r.temp_c) as max_c,
		sum(r.w * r.temp_c) / nullif(sum(r.w), 0) as mean_c,
		10000 / -ln(sum(r.w * exp(-10000 / (r.temp_c + 273.15))) /
		    nullif(sum(r.w), 0)) - 273.15 as mkt_c,
		case when count(*) > 0 then coalesce((
			select extract(epoch from sum(hi - lo))::double precision
			    / 60
			from out_merged), 0)
		end as minutes_out,
		count(*)::integer as readings,
		(select max(gap) from gaps) as longest_gap
	from r
) s;

-- One row per excursion, with its fridge, sensor, affected lots and
-- acknowledgement.  duration runs until now while the excursion is open.
-- lots reads "product lot_number (status)", status as it is now.
create view vialwatch.excursion_report as
select
	e.id as excursion_id,
	c.id as clinic_id,
	c.name as clinic,
	c.timezone,
	f.id as fridge_id,
	f.name as fridge,
	s.key as sensor_key,
	e.kind,
	e.started_at,
	e.alarmed_at,
	e.ended_at,
	coalesce(e.ended_at, greatest(now(), e.started_at)) - e.started_at
	    as duration,
	e.peak_c,
	e.minutes_out,
	e.degree_minutes,
	coalesce(l.lots, '{}') as lots,
	coalesce(l.lot_count, 0) as lot_count,
	e.acked_at,
	e.acked_by,
	e.action_note
from vialwatch.excursion e
join vialwatch.fridge f on f.id = e.fridge_id
join vialwatch.clinic c on c.id = f.clinic_id
left join vialwatch.sensor s on s.id = e.sensor_id
left join lateral (
	select array_agg(format('%s %s (%s)', lo.product, lo.lot_number,
	    lo.status) order by lo.product, lo.lot_number) as lots,
	    count(*)::integer as lot_count
	from vialwatch.excursion_lot el
	join vialwatch.lot lo on lo.id = el.lot_id
	where el.excursion_id = e.id
) l on true;

-- Default privileges of 001 cover only objects created by the role that
-- ran it; say it here in case another one runs this file.
grant select on vialwatch.daily_summary, vialwatch.excursion_report
	to vialwatch_readonly, vialwatch_admin, vialwatch_daemon;
