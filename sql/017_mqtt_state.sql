-- Fridge state for MQTT and dashboards.  What [mqtt] publish_state sends,
-- retained, to vialwatch/<clinic>/<fridge>/state, so that Home Assistant
-- or a wall display shows what vialwatch knows; the views the Grafana
-- dashboards of contrib/grafana read.
--
-- Topics use slugs of the names (lowercase ASCII letters and digits, runs
-- of anything else as one "-"), e.g. "Main Street Clinic" / "Vaccine
-- fridge 2" -> vialwatch/main-street-clinic/vaccine-fridge-2/state.  When
-- two clinics, or two fridges of one clinic, have the same slug, each gets
-- "-<id>" appended, so that no two fridges share a topic.

create function vialwatch.slug(p text)
returns text
language sql
immutable
set search_path = pg_catalog, pg_temp
as $$
	select coalesce(nullif(trim(both '-' from
	    regexp_replace(lower(p), '[^a-z0-9]+', '-', 'g')), ''), 'x');
$$;

-- One row per fridge: its topic path (clinic/fridge), its state, whether
-- its alarm waits for an acknowledgement, and the state as JSON.  state: maintenance (a window of vialwatch.maintenance covers now),
-- offline (an open offline excursion, or no reading yet), alarm (an open
-- alarmed excursion, acknowledged or not), pending (out of range, the
-- delay not over), ok.
create function vialwatch.fridge_mqtt_state()
returns table (fridge_id bigint, clinic text, fridge text, path text,
    state text, unacknowledged boolean, payload text)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
	v_maint bigint[] := '{}';
begin
	-- Maintenance windows come with their own migration; read them
	-- when the table is there.
	if to_regclass('vialwatch.maintenance') is not null then
		execute 'select coalesce(array_agg(m.fridge_id), ''{}'') '
		    'from vialwatch.maintenance m where m.starts_at <= now() '
		    'and (m.ends_at is null or m.ends_at > now())'
		    into v_maint;
	end if;
	return query
	with f as (
		select fs.*, vialwatch.slug(fs.clinic) as cslug,
		    vialwatch.slug(fs.fridge) as fslug,
		    case
			when fs.fridge_id = any (v_maint) then 'maintenance'
			when fs.excursion_kind = 'offline'
			    or fs.last_reading_at is null then 'offline'
			when fs.state in ('alarm', 'acknowledged') then 'alarm'
			when fs.state = 'pending' then 'pending'
			else 'ok'
		    end as mstate
		from vialwatch.fridge_status fs
	), named as (
		select f.*,
		    case when min(f.clinic_id) over (partition by f.cslug)
			<> max(f.clinic_id) over (partition by f.cslug)
			then f.cslug || '-' || f.clinic_id else f.cslug
		    end as cpath,
		    case when count(*) over
			(partition by f.clinic_id, f.fslug) > 1
			then f.fslug || '-' || f.fridge_id else f.fslug
		    end as fpath
		from f
	)
	select n.fridge_id, n.clinic, n.fridge, n.cpath || '/' || n.fpath,
	    n.mstate, n.state = 'alarm',
	    json_build_object(
		'state', n.mstate,
		'temperature', n.last_temp_c,
		'reading_at', n.last_reading_at,
		'clinic', n.clinic,
		'fridge', n.fridge,
		'fridge_id', n.fridge_id,
		'low_c', n.low_c,
		'high_c', n.high_c,
		'excursion', case when n.excursion_id is null then null
		    else json_build_object(
			'id', n.excursion_id,
			'kind', n.excursion_kind,
			'started_at', n.excursion_started_at,
			'alarmed_at', n.excursion_alarmed_at,
			'acknowledged', n.excursion_acked) end)::text
	from named n
	order by n.fridge_id;
end;
$$;

-- Views for dashboards (contrib/grafana), read as vialwatch_readonly.

-- Every reading with the fridge its sensor is assigned to now, and the
-- fridge's range: filter on fridge_id and ts.
create view vialwatch.fridge_reading as
select
	f.id as fridge_id,
	f.clinic_id,
	s.id as sensor_id,
	s.key as sensor_key,
	r.ts,
	r.temp_c,
	f.low_c,
	f.high_c
from vialwatch.reading r
join vialwatch.sensor s on s.id = r.sensor_id
join vialwatch.fridge f on f.id = s.fridge_id;

-- The sensors of fridges that have not reported within their fridge's
-- offline_after, or that their feed says are offline.
create view vialwatch.stale_sensor as
select
	s.id as sensor_id,
	s.key as sensor_key,
	c.id as clinic_id,
	c.name as clinic,
	f.id as fridge_id,
	f.name as fridge,
	s.last_seen,
	now() - s.last_seen as silent_for,
	s.offline_since
from vialwatch.sensor s
join vialwatch.fridge f on f.id = s.fridge_id
join vialwatch.clinic c on c.id = f.clinic_id
where s.last_seen < now() - f.offline_after or s.offline_since is not null;

grant select on vialwatch.fridge_reading, vialwatch.stale_sensor
	to vialwatch_readonly, vialwatch_admin, vialwatch_daemon;
