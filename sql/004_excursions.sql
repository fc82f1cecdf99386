-- 004_excursions.sql: what the daemon reads to run the excursion rules, and
-- what it writes when they fire: excursion rows, quarantined lots and the
-- outbox rows of the notifications, each event in one transaction.
--
-- Run by "vialwatchctl migrate" in one transaction, like 001_init.sql.

-- Lots: who released or discarded a quarantined lot, when, and why
-- ("vialwatchctl lots release|discard").
alter table vialwatch.lot
	add column decided_by text,
	add column decided_at timestamptz,
	add column decision_note text;

-- A sensor has at most one open excursion of each kind.
create unique index excursion_one_open
	on vialwatch.excursion (sensor_id, kind)
	where ended_at is null and kind in ('high', 'low', 'offline');

-- The daemon names an excursion by its sensor, kind and started_at.
create index excursion_sensor_started
	on vialwatch.excursion (sensor_id, kind, started_at);

-- Microseconds since the epoch, exactly (extract(epoch) is a float8 on 13).
create function vialwatch.epoch_us(t timestamptz)
returns bigint
language sql
stable strict
set search_path = pg_catalog, pg_temp
as $$
	select extract(epoch from date_trunc('second', t))::bigint * 1000000
	    + extract(microseconds from t)::bigint % 1000000
$$;

-- What the daemon reads to run the rules: every sensor assigned to a fridge
-- or with an open excursion, with its fridge's limits (null when it is not
-- assigned any more) and what rebuilds its state at start: its open
-- excursions, its newest reading received before p_before (all of them
-- when null) and its latest battery warning.  Times in microseconds since
-- the epoch.
create function vialwatch.excursion_sensors(p_before timestamptz)
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
		-- Newest first along the primary key; readings received after
		-- p_before are few (the daemon feeds those itself).
		select r.ts, r.temp_c, r.received_at
		from vialwatch.reading r
		where r.sensor_id = s.id
		    and (p_before is null or r.received_at < p_before)
		order by r.ts desc
		limit 1
	) lr on true
	left join lateral (
		select e.started_at
		from vialwatch.excursion e
		where e.sensor_id = s.id and e.kind = 'battery'
		order by e.started_at desc
		limit 1
	) bt on true
	order by s.id
$$;

-- "1 h 15 min", "40 min" or "3 s": a duration in minutes, for people.
create function vialwatch.excursion_duration_text(minutes double precision)
returns text
language sql
immutable
set search_path = pg_catalog, pg_temp
as $$
	select case
		when minutes is null then 'unknown'
		when minutes < 1 then format('%s s', round(minutes * 60))
		when minutes < 60 then format('%s min', round(minutes))
		else format('%s h %s min', floor(round(minutes) / 60),
		    round(minutes)::bigint % 60)
	end
$$;

-- The subject and plain-text body of a notification about excursion e:
-- what is "alarm", "recovered", "offline", "online" or "battery".
-- temp_c is the latest reading, battery_pct the battery level reported.
create function vialwatch.excursion_message(what text,
    e vialwatch.excursion, temp_c double precision,
    battery_pct double precision, out subject text, out body text)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
	f		vialwatch.fridge;
	c		vialwatch.clinic;
	skey		text;
	tz		text;
	place		text;
	lots		text;
	nlots		integer;
	span		text;
	bound		double precision;
	critical	double precision;
	side		text;
	extreme		text;
	delay		interval;
begin
	select * into f from vialwatch.fridge where id = e.fridge_id;
	select * into c from vialwatch.clinic where id = f.clinic_id;
	select s.key into skey from vialwatch.sensor s where s.id = e.sensor_id;
	tz := c.timezone;
	place := format('%s (%s)', f.name, c.name);
	span := format('%s to %s °C', round(f.low_c::numeric, 1),
	    round(f.high_c::numeric, 1));
	select count(*), coalesce(string_agg(format('  %s lot %s%s, now %s',
	    l.product, l.lot_number, coalesce(', expires ' || l.expires_on, ''),
	    l.status), e'\n' order by l.product, l.lot_number), '  (none)')
	    into nlots, lots
	from vialwatch.excursion_lot el
	join vialwatch.lot l on l.id = el.lot_id
	where el.excursion_id = e.id;
	if e.kind = 'high' then
		bound := f.high_c;
		critical := f.critical_high_c;
		side := 'above';
		extreme := 'Highest';
		delay := f.high_delay;
	else
		bound := f.low_c;
		critical := f.critical_low_c;
		side := 'below';
		extreme := 'Lowest';
		delay := f.low_delay;
	end if;

	if what = 'alarm' then
		subject := format('ALARM: %s %s %s °C, now %s', place, side,
		    round(bound::numeric, 1), coalesce(round(temp_c::numeric,
		    1) || ' °C', 'unknown'));
		body := format(e'%s at %s is %s its range of %s.\n\n'
		    'Now:           %s\n'
		    '%s:       %s °C\n'
		    'Out of range:  since %s (%s)\n'
		    'Alarm:         %s, %s\n'
		    'Sensor:        %s\n'
		    'Excursion:     %s\n\n'
		    'Lots put in quarantine (%s):\n%s\n\n'
		    'What to do now:\n'
		    '1. Label the stock of this %s "DO NOT USE" and keep it '
		    'apart,\n   at %s (in a %s that works). Do not discard '
		    'it.\n'
		    '2. Record the date and time, the lowest and highest '
		    'temperature,\n   how long it was out of range, the stock '
		    'affected, who reported\n   it and what you did.\n'
		    '3. Find and fix the cause: a door left open, power, the '
		    'thermostat.\n'
		    '4. Call the manufacturer of each product about the lots '
		    'above\n   before you use or discard any of it.\n\n'
		    'Another message follows when the temperature is back in '
		    'range.\n',
		    f.name, c.name, side, span,
		    coalesce(round(temp_c::numeric, 1) || ' °C', 'unknown'),
		    extreme, round(e.peak_c::numeric, 1),
		    to_char(e.started_at at time zone tz, 'YYYY-MM-DD HH24:MI'), tz,
		    to_char(e.alarmed_at at time zone tz, 'YYYY-MM-DD HH24:MI'),
		    case when (e.kind = 'high' and e.peak_c > critical)
			or (e.kind = 'low' and e.peak_c < critical)
			then format('at once: beyond the critical bound of '
			    '%s °C', round(critical::numeric, 1))
			else format('the %s delay ran out',
			    vialwatch.excursion_duration_text(
			    extract(epoch from delay) / 60))
		    end,
		    skey, e.id, nlots, lots, f.kind, span, f.kind);
	elsif what = 'recovered' then
		subject := format('Recovered: %s back in range after %s', place,
		    vialwatch.excursion_duration_text(e.minutes_out));
		body := format(e'%s at %s is back in its range of %s.\n\n'
		    'Out of range:   %s to %s (%s), %s\n'
		    '%s:        %s °C\n'
		    'Degree-minutes: %s (°C %s %s °C, times minutes)\n'
		    'Alarm:          %s\n'
		    'Sensor:         %s\n'
		    'Excursion:      %s\n\n'
		    'Lots put in quarantine (%s):\n%s\n\n'
		    'They stay in quarantine until someone who has checked with '
		    'the\nmanufacturer releases or discards them:\n'
		    '  vialwatchctl lots release|discard ID --by NAME --note '
		    'TEXT\n'
		    'Record the corrective action taken for excursion %s.\n',
		    f.name, c.name, span,
		    to_char(e.started_at at time zone tz, 'YYYY-MM-DD HH24:MI'),
		    to_char(e.ended_at at time zone tz, 'YYYY-MM-DD HH24:MI'), tz,
		    vialwatch.excursion_duration_text(e.minutes_out),
		    extreme, round(e.peak_c::numeric, 1),
		    round(e.degree_minutes::numeric, 1), side,
		    round(bound::numeric, 1),
		    to_char(e.alarmed_at at time zone tz, 'YYYY-MM-DD HH24:MI'),
		    skey, e.id, nlots, lots, e.id);
	elsif what = 'offline' then
		subject := format('OFFLINE: the sensor of %s is silent', place);
		body := format(e'The sensor %s of %s at %s has sent no reading '
		    'since\n%s (%s), %s ago.\n\n'
		    'The temperature of this fridge is not watched until it '
		    'reports again.\nCheck the sensor (battery, power, radio '
		    'range, gateway) and read the\nfridge''s own thermometer '
		    'meanwhile.\n\n'
		    'Excursion: %s\n',
		    skey, f.name, c.name,
		    to_char(e.started_at at time zone tz, 'YYYY-MM-DD HH24:MI'), tz,
		    vialwatch.excursion_duration_text(e.minutes_out), e.id);
	elsif what = 'online' then
		subject := format('Back online: the sensor of %s after %s',
		    place, vialwatch.excursion_duration_text(e.minutes_out));
		body := format(e'The sensor %s of %s at %s reports again since '
		    '%s (%s),\nafter %s without a reading.\n\n'
		    'Look at the fridge''s temperatures over that time before '
		    'using its stock.\n\n'
		    'Excursion: %s\n',
		    skey, f.name, c.name,
		    to_char(e.ended_at at time zone tz, 'YYYY-MM-DD HH24:MI'), tz,
		    vialwatch.excursion_duration_text(e.minutes_out), e.id);
	elsif what = 'battery' then
		subject := format('Battery low: the sensor of %s at %s %%', place,
		    round(battery_pct::numeric));
		body := format(e'The battery of sensor %s of %s at %s is at %s %% '
		    '(%s, %s).\nReplace it soon: a sensor without power raises '
		    'no alarm.\n\nExcursion: %s\n',
		    skey, f.name, c.name, round(battery_pct::numeric),
		    to_char(e.started_at at time zone tz, 'YYYY-MM-DD HH24:MI'), tz,
		    e.id);
	else
		raise exception 'excursion_message: unknown message "%"', what
		    using errcode = 'invalid_parameter_value';
	end if;
	-- Header values never hold a line break.
	subject := regexp_replace(subject, '[[:cntrl:]]+', ' ', 'g');
end;
$$;

-- Queue the message "what" about excursion e for the active tier-1
-- contacts of its clinic, once per excursion, message and contact however
-- often this runs.  Escalation to the other tiers is the outbox's job.
create function vialwatch.excursion_notify(what text, e vialwatch.excursion,
    temp_c double precision, battery_pct double precision)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	m	record;
begin
	m := vialwatch.excursion_message(what, e, temp_c, battery_pct);
	insert into vialwatch.notification (channel, recipient, subject, body,
	    dedupe_key, excursion_id)
	select 'email', ct.email, m.subject, m.body,
	    format('excursion:%s:%s:contact:%s', e.id, what, ct.id), e.id
	from vialwatch.contact ct
	join vialwatch.fridge f on f.clinic_id = ct.clinic_id
	where f.id = e.fridge_id and ct.tier = 1 and ct.active
	order by ct.id
	on conflict (dedupe_key) do nothing;
end;
$$;

-- One event of the excursion rules (see rules.h), applied in the calling
-- statement's transaction: the excursion named by (p_sensor, p_kind,
-- p_started) is inserted if missing and brought to the row the event
-- carries.  When it becomes alarmed, a high or low excursion quarantines
-- the fridge's ok lots and links them; alarms, recoveries, offline,
-- online and battery warnings queue their notifications.  Applying an
-- event twice, or a later one before an earlier one was applied, gives
-- the same rows: the daemon may send an event again after losing its
-- connection.  Returns the excursion's id.
create function vialwatch.excursion_event(p_event text, p_fridge bigint,
    p_sensor bigint, p_kind text, p_started timestamptz,
    p_alarmed timestamptz, p_ended timestamptz, p_peak double precision,
    p_minutes double precision, p_degree_minutes double precision,
    p_temp double precision, p_battery double precision)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	prev	vialwatch.excursion;
	cur	vialwatch.excursion;
begin
	if p_event is null or p_event not in ('excursion.open',
	    'excursion.alarm', 'excursion.update', 'excursion.close',
	    'sensor.offline', 'sensor.online', 'battery.low') then
		raise exception 'excursion_event: unknown event "%"', p_event
		    using errcode = 'invalid_parameter_value';
	end if;
	if p_fridge is null or p_sensor is null or p_kind is null
	    or p_started is null then
		raise exception 'excursion_event: fridge, sensor, kind and '
		    'started_at are required'
		    using errcode = 'null_value_not_allowed';
	end if;

	select * into prev from vialwatch.excursion
	where sensor_id = p_sensor and kind = p_kind and started_at = p_started
	order by id desc
	limit 1
	for update;
	if not found then
		-- An open row that lost its closing event (a crash): it ended
		-- where it was last seen, at the latest when this one starts.
		update vialwatch.excursion
		set ended_at = greatest(started_at, least(p_started,
		    started_at + minutes_out * interval '1 minute'))
		where sensor_id = p_sensor and ended_at is null
		    and kind = any (case when p_kind = 'offline'
			then array['offline'] when p_kind in ('high', 'low')
			then array['high', 'low'] else array[]::text[] end);
		insert into vialwatch.excursion (fridge_id, sensor_id, kind,
		    started_at)
		values (p_fridge, p_sensor, p_kind, p_started)
		returning * into prev;
	end if;

	-- The row only moves forward: alarmed and ended stay so, the peak,
	-- minutes and degree-minutes only grow.
	update vialwatch.excursion x
	set alarmed_at = coalesce(x.alarmed_at, p_alarmed),
	    ended_at = coalesce(x.ended_at, p_ended),
	    peak_c = case x.kind
		when 'high' then greatest(x.peak_c, p_peak)
		when 'low' then least(x.peak_c, p_peak)
		else x.peak_c end,
	    minutes_out = greatest(x.minutes_out, coalesce(p_minutes, 0)),
	    degree_minutes = greatest(x.degree_minutes,
		coalesce(p_degree_minutes, 0))
	where x.id = prev.id
	returning * into cur;

	if prev.alarmed_at is null and cur.alarmed_at is not null then
		if cur.kind in ('high', 'low') then
			with q as (
				update vialwatch.lot
				set status = 'quarantined'
				where fridge_id = cur.fridge_id and status = 'ok'
				returning id
			)
			insert into vialwatch.excursion_lot (excursion_id, lot_id)
			select cur.id, q.id from q
			on conflict do nothing;
			perform vialwatch.excursion_notify('alarm', cur, p_temp,
			    null);
		elsif cur.kind = 'offline' then
			perform vialwatch.excursion_notify('offline', cur, null,
			    null);
		else
			perform vialwatch.excursion_notify('battery', cur, null,
			    p_battery);
		end if;
	end if;
	if prev.ended_at is null and cur.ended_at is not null
	    and cur.alarmed_at is not null then
		if cur.kind in ('high', 'low') then
			perform vialwatch.excursion_notify('recovered', cur,
			    p_temp, null);
		elsif cur.kind = 'offline' then
			perform vialwatch.excursion_notify('online', cur, null,
			    null);
		end if;
	end if;
	return cur.id;
end;
$$;

-- The daemon runs the rules on the sensors, fridges and limits it holds;
-- it reloads them on a notification on this channel.  The batches of
-- ingest update vialwatch.sensor all the time (last_seen, battery) and
-- register cur sensors without a fridge: those notify nothing.  Clinics,
-- contacts and lots are read by excursion_event() itself, when it runs.
create function vialwatch.reference_notify()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
	perform pg_notify('vialwatch_reference', tg_table_name);
	return null;
end;
$$;

create trigger fridge_reference_notify
	after insert or update or delete or truncate on vialwatch.fridge
	for each statement execute function vialwatch.reference_notify();

create trigger sensor_reference_assign
	after update of fridge_id, key on vialwatch.sensor
	for each row
	when (old.fridge_id is distinct from new.fridge_id
	    or old.key is distinct from new.key)
	execute function vialwatch.reference_notify();

create trigger sensor_reference_insert
	after insert on vialwatch.sensor
	for each row when (new.fridge_id is not null)
	execute function vialwatch.reference_notify();

create trigger sensor_reference_delete
	after delete on vialwatch.sensor
	for each row when (old.fridge_id is not null)
	execute function vialwatch.reference_notify();

create trigger sensor_reference_truncate
	after truncate on vialwatch.sensor
	for each statement execute function vialwatch.reference_notify();

-- Privileges --------------------------------------------------------------
--
-- The functions run with the caller's rights (no security definer): the
-- daemon already may insert and update excursions, link lots, set a lot's
-- status and queue notifications (001).

revoke all on function vialwatch.excursion_event(text, bigint, bigint, text,
    timestamptz, timestamptz, timestamptz, double precision,
    double precision, double precision, double precision, double precision)
    from public;
revoke all on function vialwatch.excursion_notify(text, vialwatch.excursion,
    double precision, double precision) from public;
grant execute on function vialwatch.excursion_event(text, bigint, bigint,
    text, timestamptz, timestamptz, timestamptz, double precision,
    double precision, double precision, double precision, double precision)
    to vialwatch_daemon, vialwatch_admin;
grant execute on function vialwatch.excursion_notify(text,
    vialwatch.excursion, double precision, double precision)
    to vialwatch_daemon, vialwatch_admin;
grant execute on function vialwatch.epoch_us(timestamptz),
    vialwatch.excursion_sensors(timestamptz),
    vialwatch.excursion_duration_text(double precision),
    vialwatch.excursion_message(text, vialwatch.excursion, double precision,
    double precision)
    to vialwatch_daemon, vialwatch_admin, vialwatch_readonly;
