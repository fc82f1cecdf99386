-- 021_scale.sql: nothing grows with the years of history kept.
--
-- Each sensor row holds its newest reading (last_ts, last_temp_c) and the
-- time of its oldest (first_ts), kept by a statement trigger on
-- vialwatch.reading from the rows each insert stored: what the status,
-- the payloads of notifications and the summaries need is one row away,
-- and the queries left on readings carry a time bound that lets the
-- planner open only the partitions it needs.

alter table vialwatch.sensor
	add column last_ts timestamptz,
	add column last_temp_c double precision,
	add column first_ts timestamptz;

-- Sets last_ts, last_temp_c and first_ts of every sensor from its
-- readings (once here; again after a bulk load with the trigger off).
create function vialwatch.sensor_last_rebuild()
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
	update vialwatch.sensor s
	set last_ts = l.ts, last_temp_c = l.temp_c, first_ts = f.ts
	from vialwatch.sensor s2
	left join lateral (
		select r.ts, r.temp_c from vialwatch.reading r
		where r.sensor_id = s2.id order by r.ts desc limit 1
	) l on true
	left join lateral (
		select r.ts from vialwatch.reading r
		where r.sensor_id = s2.id order by r.ts limit 1
	) f on true
	where s.id = s2.id
$$;

select vialwatch.sensor_last_rebuild();

-- The newest and oldest reading of each sensor the statement stored.  A
-- late reading (older than the newest) leaves last_* alone.
create function vialwatch.reading_sensor_last()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
	update vialwatch.sensor s
	set last_ts = case when s.last_ts is null or n.last_ts > s.last_ts
		then n.last_ts else s.last_ts end,
	    last_temp_c = case when s.last_ts is null or n.last_ts > s.last_ts
		then n.last_temp_c else s.last_temp_c end,
	    first_ts = least(s.first_ts, n.first_ts)
	from (
		select distinct on (sensor_id) sensor_id, ts as last_ts,
		    temp_c as last_temp_c,
		    min(ts) over (partition by sensor_id) as first_ts
		from new_rows
		order by sensor_id, ts desc
	) n
	where s.id = n.sensor_id
	    and (s.last_ts is null or n.last_ts > s.last_ts
		or s.first_ts is null or n.first_ts < s.first_ts);
	return null;
end;
$$;

create trigger reading_sensor_last
	after insert on vialwatch.reading
	referencing new table as new_rows
	for each statement execute function vialwatch.reading_sensor_last();

-- The newest reading of a sensor, or null.
create function vialwatch.sensor_last_temp(p_sensor bigint)
returns double precision
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	select s.last_temp_c from vialwatch.sensor s where s.id = p_sensor
$$;

-- The trail of 013 leaves what ingest rewrites out; these columns change
-- with every batch too, and an update that changes only such columns
-- does not call the trail's trigger at all.
drop trigger sensor_audit on vialwatch.sensor;
create trigger sensor_audit
	after insert or delete on vialwatch.sensor
	for each row execute function vialwatch.audit_trigger('*',
	    '-last_seen', '-battery', '-battery_at', '-offline_since',
	    '-last_ts', '-last_temp_c', '-first_ts', 'fridge_id!');
create trigger sensor_audit_update
	after update on vialwatch.sensor
	for each row
	when ((to_jsonb(old) - '{last_seen,battery,battery_at,offline_since,last_ts,last_temp_c,first_ts}'::text[])
	    is distinct from (to_jsonb(new) - '{last_seen,battery,battery_at,offline_since,last_ts,last_temp_c,first_ts}'::text[]))
	execute function vialwatch.audit_trigger('*',
	    '-last_seen', '-battery', '-battery_at', '-offline_since',
	    '-last_ts', '-last_temp_c', '-first_ts', 'fridge_id!');

-- The fridge_status view of 015 (calibration last), its last reading
-- from the sensor rows and the calibration notes of all fridges in one
-- pass (calibration_note() called per fridge plans its query each time).
create or replace view vialwatch.fridge_status as
select
	c.id as clinic_id,
	c.name as clinic,
	f.id as fridge_id,
	f.name as fridge,
	f.kind,
	f.low_c,
	f.high_c,
	lr.ts as last_reading_at,
	lr.temp_c as last_temp_c,
	lr.sensor_key as last_sensor_key,
	case
		when ex.id is not null and ex.acked_at is not null
		    then 'acknowledged'
		when ex.id is not null and ex.alarmed_at is not null
		    then 'alarm'
		when ex.id is not null then 'pending'
		when lr.ts is null then 'no data'
		else 'ok'
	end as state,
	ex.id as excursion_id,
	ex.kind as excursion_kind,
	ex.started_at as excursion_started_at,
	ex.alarmed_at as excursion_alarmed_at,
	ex.acked_at is not null as excursion_acked,
	ex.acked_by as excursion_acked_by,
	cal.note as calibration
from vialwatch.fridge f
join vialwatch.clinic c on c.id = f.clinic_id
left join lateral (
	select s.last_ts as ts, s.last_temp_c as temp_c, s.key as sensor_key
	from vialwatch.sensor s
	where s.fridge_id = f.id and s.last_ts is not null
	order by s.last_ts desc
	limit 1
) lr on true
left join lateral (
	select e.id, e.kind, e.started_at, e.alarmed_at, e.acked_at,
	    e.acked_by
	from vialwatch.excursion e
	where e.fridge_id = f.id and e.ended_at is null
	order by e.alarmed_at is null, e.kind not in ('high', 'low'),
	    e.started_at
	limit 1
) ex on true
-- calibration_note(f.id), for all fridges at once: its probes'
-- calibration_problem on the clinic's current day.
left join lateral (
	select string_agg(format('probe %s: %s', s.key, p.problem), '; '
	    order by s.key) as note
	from vialwatch.sensor s
	cross join lateral (select vialwatch.calibration_problem(s.id,
	    (now() at time zone c.timezone)::date) as problem) p
	where s.fridge_id = f.id and p.problem is not null
) cal on true;

-- excursion_payload of 006 with the latest reading from the sensor row.
create or replace function vialwatch.excursion_payload(e vialwatch.excursion)
returns jsonb
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	select jsonb_build_object(
	    'excursion_id', e.id,
	    'kind', e.kind,
	    'clinic_id', c.id,
	    'clinic', c.name,
	    'timezone', c.timezone,
	    'fridge_id', f.id,
	    'fridge', f.name,
	    'sensor', s.key,
	    'low_c', f.low_c,
	    'high_c', f.high_c,
	    'started_at', e.started_at,
	    'alarmed_at', e.alarmed_at,
	    'ended_at', e.ended_at,
	    'peak_c', e.peak_c,
	    'temp_c', s.last_temp_c,
	    'minutes_out', round(e.minutes_out::numeric, 1),
	    'degree_minutes', round(e.degree_minutes::numeric, 1),
	    'acked_at', e.acked_at,
	    'acked_by', e.acked_by,
	    'action_note', e.action_note)
	from vialwatch.fridge f
	join vialwatch.clinic c on c.id = f.clinic_id
	left join vialwatch.sensor s on s.id = e.sensor_id
	where f.id = e.fridge_id
$$;


-- escalate of 006: the alarms due found in one query, and the latest
-- reading from the sensor row.
create or replace function vialwatch.escalate(p_escalate interval, p_repeat interval)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	r	record;
	e	vialwatch.excursion;
	m	record;
	base	timestamptz;
	tiers	integer;
	step	integer;
	temp	double precision;
	n	integer;
	total	integer := 0;
begin
	if p_escalate <= interval '0' or p_repeat <= interval '0' then
		raise exception 'escalate: intervals must be positive'
		    using errcode = 'invalid_parameter_value';
	end if;
	-- Maintenance windows that ran out say so first (016).
	total := vialwatch.maintenance_expire();
	-- The alarms due for an escalation or a repeat, in one query; not
	-- those with nobody left to tell (the usual case at any moment), nor
	-- those a maintenance window or defrost holds (016).
	for r in
		select x as e, t.base
		from vialwatch.excursion x
		cross join lateral (
			select coalesce(min(n.created_at), x.alarmed_at) as base
			from vialwatch.notification n
			where n.excursion_id = x.id and n.channel = 'email'
		) t
		cross join lateral (
			select 1 + floor(extract(epoch from now() - t.base)
			    / extract(epoch from p_escalate))::integer as tiers,
			    floor(extract(epoch from now() - t.base)
			    / extract(epoch from p_repeat))::integer as step
		) k
		where x.ended_at is null and x.alarmed_at is not null
		    and x.acked_at is null
		    and x.kind in ('high', 'low', 'offline', 'door', 'power')
		    and not vialwatch.excursion_held(x)
		    and now() - t.base >= least(p_escalate, p_repeat)
		    and (k.step >= 1 or exists (
			select from vialwatch.contact ct
			join vialwatch.fridge f on f.clinic_id = ct.clinic_id
			where f.id = x.fridge_id and ct.active
			    and ct.tier between 2 and k.tiers
			    and not exists (select from vialwatch.notification n
				where n.dedupe_key = format(
				    'excursion:%s:escalate:contact:%s', x.id,
				    ct.id))))
		order by x.id
	loop
		e := r.e;
		base := r.base;
		tiers := 1 + floor(extract(epoch from now() - base)
		    / extract(epoch from p_escalate))::integer;
		step := floor(extract(epoch from now() - base)
		    / extract(epoch from p_repeat))::integer;
		temp := vialwatch.sensor_last_temp(e.sensor_id);
		m := vialwatch.excursion_mail(case e.kind when 'offline'
		    then 'offline' else 'alarm' end, e, temp, null);

		insert into vialwatch.notification (channel, recipient,
		    subject, body, dedupe_key, excursion_id)
		select 'email', ct.email,
		    format('ESCALATED to tier %s: %s', ct.tier, m.subject),
		    format(e'This alarm was not acknowledged in %s: it now '
		    'goes to tier %s.\n\n%s',
		    vialwatch.excursion_duration_text(extract(epoch from
		    now() - base) / 60), ct.tier, m.body),
		    format('excursion:%s:escalate:contact:%s', e.id, ct.id), e.id
		from vialwatch.contact ct
		join vialwatch.fridge f on f.clinic_id = ct.clinic_id
		where f.id = e.fridge_id and ct.active
		    and ct.tier between 2 and tiers
		order by ct.tier, ct.id
		on conflict (dedupe_key) do nothing;
		get diagnostics n = row_count;
		total := total + n;
		if n > 0 then
			perform vialwatch.hook_notify('excursion.escalate',
			    format('excursion:%s:escalate:%s', e.id, tiers),
			    e.id, vialwatch.excursion_payload(e)
			    || jsonb_build_object('tier', tiers));
		end if;

		if step >= 1 then
			insert into vialwatch.notification (channel, recipient,
			    subject, body, dedupe_key, excursion_id)
			select 'email', ct.email,
			    format('REPEAT %s: %s', step, m.subject),
			    format(e'Still not acknowledged after %s.\n\n%s',
			    vialwatch.excursion_duration_text(extract(epoch
			    from now() - base) / 60), m.body),
			    format('excursion:%s:repeat:%s:contact:%s', e.id,
			    step, ct.id), e.id
			from vialwatch.contact ct
			join vialwatch.fridge f on f.clinic_id = ct.clinic_id
			where f.id = e.fridge_id and ct.active
			    and ct.tier between 1 and tiers
			    and not exists (
				select from vialwatch.notification n
				where n.excursion_id = e.id
				    and n.channel = 'email'
				    and n.recipient = ct.email
				    and n.created_at > now() - p_repeat / 2)
			order by ct.tier, ct.id
			on conflict (dedupe_key) do nothing;
			get diagnostics n = row_count;
			total := total + n;
		end if;
	end loop;
	return total;
end;
$$;

-- excursion_sensors of 004, its newest reading searched from the
-- sensor's last one back.
create or replace function vialwatch.excursion_sensors(p_before timestamptz)
returns table (
	sensor_id		bigint,
	key			text,
	fridge_id		bigint,
	kind			text,
	low_c			double precision,
	high_c			double precision,
	critical_low_c		double precision,
	critical_high_c		double precision,
	hysteresis_c		double precision,
	low_delay_us		bigint,
	high_delay_us		bigint,
	offline_after_us	bigint,
	battery_low_pct		double precision,
	last_ts_us		bigint,
	last_temp_c		double precision,
	last_arrival_us		bigint,
	battery_at_us		bigint,
	temp_fridge_id		bigint,
	temp_kind		text,
	temp_started_us		bigint,
	temp_alarmed_us		bigint,
	temp_peak_c		double precision,
	temp_minutes_out	double precision,
	temp_degree_minutes	double precision,
	offline_fridge_id	bigint,
	offline_started_us	bigint,
	offline_alarmed_us	bigint
)
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	with ids as (
		select s0.id from vialwatch.sensor s0
		where s0.fridge_id is not null
		union
		select e0.sensor_id from vialwatch.excursion e0
		where e0.ended_at is null
		    and e0.kind in ('high', 'low', 'offline')
		    and e0.sensor_id is not null
	)
	select s.id, s.key, f.id, f.kind, f.low_c, f.high_c,
	    f.critical_low_c, f.critical_high_c, f.hysteresis_c,
	    (extract(epoch from f.low_delay) * 1000000)::bigint,
	    (extract(epoch from f.high_delay) * 1000000)::bigint,
	    (extract(epoch from f.offline_after) * 1000000)::bigint,
	    f.battery_low_pct::double precision,
	    vialwatch.epoch_us(lr.ts), lr.temp_c,
	    vialwatch.epoch_us(lr.received_at),
	    vialwatch.epoch_us(bt.started_at),
	    t.fridge_id, t.kind, vialwatch.epoch_us(t.started_at),
	    vialwatch.epoch_us(t.alarmed_at), t.peak_c, t.minutes_out,
	    t.degree_minutes,
	    o.fridge_id, vialwatch.epoch_us(o.started_at),
	    vialwatch.epoch_us(o.alarmed_at)
	from ids
	join vialwatch.sensor s on s.id = ids.id
	left join vialwatch.fridge f on f.id = s.fridge_id
	left join lateral (
		select e.fridge_id, e.kind, e.started_at, e.alarmed_at,
		    e.peak_c, e.minutes_out, e.degree_minutes
		from vialwatch.excursion e
		where e.sensor_id = s.id and e.ended_at is null
		    and e.kind in ('high', 'low')
		order by e.started_at desc
		limit 1
	) t on true
	left join lateral (
		select e.fridge_id, e.started_at, e.alarmed_at
		from vialwatch.excursion e
		where e.sensor_id = s.id and e.ended_at is null
		    and e.kind = 'offline'
		order by e.started_at desc
		limit 1
	) o on true
	left join lateral (
		-- Newest first along the primary key, from the sensor's last
		-- reading back a day (the partitions before are never opened);
		-- readings received after p_before are few (the daemon feeds
		-- those itself).  Only when that day holds none received
		-- before p_before does the search go further back.
		select r.ts, r.temp_c, r.received_at
		from vialwatch.reading r
		where r.sensor_id = s.id
		    and r.ts >= s.last_ts - interval '1 day'
		    and (p_before is null or r.received_at < p_before)
		order by r.ts desc
		limit 1
	) lr1 on true
	left join lateral (
		select r.ts, r.temp_c, r.received_at
		from vialwatch.reading r
		where lr1.ts is null and s.last_ts is not null
		    and r.sensor_id = s.id
		    and r.ts < s.last_ts - interval '1 day'
		    and (p_before is null or r.received_at < p_before)
		order by r.ts desc
		limit 1
	) lr2 on true
	cross join lateral (
		select coalesce(lr1.ts, lr2.ts) as ts,
		    coalesce(lr1.temp_c, lr2.temp_c) as temp_c,
		    coalesce(lr1.received_at, lr2.received_at) as received_at
	) lr
	left join lateral (
		select e.started_at
		from vialwatch.excursion e
		where e.sensor_id = s.id and e.kind = 'battery'
		order by e.started_at desc
		limit 1
	) bt on true
	order by s.id
$$;

-- daily_summary of 003, its first day from the sensors' first_ts.
create or replace view vialwatch.daily_summary as
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
	select least(f.created_at, min(fs.first_ts)) as since
	from vialwatch.sensor fs
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

grant execute on function vialwatch.sensor_last_temp(bigint)
    to vialwatch_daemon, vialwatch_admin, vialwatch_readonly;
revoke all on function vialwatch.sensor_last_rebuild() from public, vialwatch_daemon;
