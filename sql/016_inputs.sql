-- 016_inputs.sql: door contacts and mains power beside the thermometers,
-- warnings before alarms, and maintenance windows and scheduled defrosts
-- during which nobody is paged for what they are expected to cause.
--
-- Run by "vialwatchctl migrate" in one transaction, like 001_init.sql.

-- Sensors and fridges ------------------------------------------------------

-- What a sensor measures.  Ingest sets it from the readings it stores: a
-- sensor that sends a door state is a door contact, one that sends watts
-- or on/off a plug.
alter table vialwatch.sensor
	add column kind text not null default 'temperature'
	    check (kind in ('temperature', 'door', 'power'));

-- Per fridge:
--   door_alarm_after   a door open this long is an alarm (kind door)
--   power_min_w        its plug drawing less is a fridge without power
--   power_alarm_after  ... for this long: an alarm (kind power)
--   warn_low_c/high_c  optional thresholds inside the range: a warning
--   warn_delay         ... once out of them this long (one email)
--   defrost_every/for  a scheduled defrost, counted from local midnight
--                      (e.g. every 6 h for 20 min: at 00:00, 06:00, ...),
--                      during which high temperatures page nobody
alter table vialwatch.fridge
	add column door_alarm_after interval not null default '5 minutes'
	    check (door_alarm_after >= interval '0'),
	add column power_min_w double precision not null default 5
	    check (power_min_w >= 0),
	add column power_alarm_after interval not null default '2 minutes'
	    check (power_alarm_after >= interval '0'),
	add column warn_low_c double precision,
	add column warn_high_c double precision,
	add column warn_delay interval not null default '15 minutes'
	    check (warn_delay >= interval '0'),
	add column defrost_every interval
	    check (defrost_every > interval '0'),
	add column defrost_for interval
	    check (defrost_for > interval '0'),
	add constraint fridge_warn_inside check (
	    (warn_high_c is null or warn_high_c <= high_c)
	    and (warn_low_c is null or warn_low_c >= low_c)
	    and (warn_low_c is null or warn_high_c is null
		or warn_low_c < warn_high_c)),
	add constraint fridge_defrost_both check (
	    (defrost_every is null) = (defrost_for is null)
	    and (defrost_for is null or defrost_for < defrost_every));

-- Setting one of the new columns to null puts it back to its default, as
-- fridge_defaults() does for the others.
create function vialwatch.fridge_input_defaults()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
	new.door_alarm_after := coalesce(new.door_alarm_after,
	    interval '5 minutes');
	new.power_min_w := coalesce(new.power_min_w, 5);
	new.power_alarm_after := coalesce(new.power_alarm_after,
	    interval '2 minutes');
	new.warn_delay := coalesce(new.warn_delay, interval '15 minutes');
	return new;
end;
$$;

create trigger fridge_input_defaults
	before insert or update on vialwatch.fridge
	for each row execute function vialwatch.fridge_input_defaults();

-- A sensor that turns out to be a door contact or a plug is judged by
-- other rules: the daemon loads the sensors again.
create trigger sensor_reference_kind
	after update of kind on vialwatch.sensor
	for each row
	when (old.kind is distinct from new.kind and new.fridge_id is not null)
	execute function vialwatch.reference_notify();

-- Excursions: door, power and warning.
alter table vialwatch.excursion
	drop constraint excursion_kind_check,
	add constraint excursion_kind_check check (kind in ('high', 'low',
	    'offline', 'battery', 'door', 'power', 'warning'));

create index excursion_open_input
	on vialwatch.excursion (sensor_id, kind)
	where ended_at is null and kind in ('door', 'power', 'warning');

-- Door and power readings ---------------------------------------------------
--
-- Kept apart from vialwatch.reading, whose temp_c is a temperature: one
-- row per door state or power report, exactly one of door_open, power_w
-- (watts) and power_on (a plug that only says on or off).  Few rows (a
-- contact reports on change, a plug every few minutes), so one table.
create table vialwatch.input_reading (
	sensor_id	bigint not null,
	ts		timestamptz not null,
	door_open	boolean,
	power_w		double precision check (power_w >= 0),
	power_on	boolean,
	received_at	timestamptz not null default now(),
	primary key (sensor_id, ts),
	check (num_nonnulls(door_open, power_w, power_on) = 1)
);

-- Like readings, door and power readings are the record and outlive any
-- cleanup of the sensors.
create function vialwatch.sensor_keep_inputs()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
	if exists (select from vialwatch.input_reading
	    where sensor_id = old.id) then
		raise exception 'sensor % (%) has door or power readings, '
		    'which must be kept', old.id, old.key
		    using errcode = 'foreign_key_violation';
	end if;
	return old;
end
$$;

create trigger sensor_keep_inputs
	before delete on vialwatch.sensor
	for each row execute function vialwatch.sensor_keep_inputs();

-- Maintenance windows ----------------------------------------------------
--
-- "vialwatchctl maintenance FRIDGE --for 45m --by WHO --reason TEXT".
-- A window is never rewritten: ending it early sets ended_at/ended_by;
-- notified_at is when its end was seen to (an email to whoever started
-- it if the fridge was still out of range).
create table vialwatch.maintenance (
	id		bigint generated by default as identity primary key,
	fridge_id	bigint not null references vialwatch.fridge,
	starts_at	timestamptz not null default now(),
	ends_at		timestamptz not null,
	reason		text not null check (btrim(reason) <> ''),
	started_by	bigint not null references vialwatch.contact,
	ended_at	timestamptz,
	ended_by	bigint references vialwatch.contact,
	notified_at	timestamptz,
	created_at	timestamptz not null default now(),
	check (ends_at > starts_at),
	check (ended_at is null or ended_at >= starts_at)
);

create index maintenance_fridge on vialwatch.maintenance (fridge_id, ends_at);
create index maintenance_due on vialwatch.maintenance (ends_at)
	where notified_at is null;

-- When window m is over: ends_at, or earlier when ended by hand.
create function vialwatch.maintenance_until(m vialwatch.maintenance)
returns timestamptz
language sql
immutable
set search_path = pg_catalog, pg_temp
as $$
	select least(m.ends_at, coalesce(m.ended_at, m.ends_at))
$$;

-- Whether fridge p_fridge is in a scheduled defrost at p_at.
create function vialwatch.fridge_in_defrost(p_fridge bigint,
    p_at timestamptz)
returns boolean
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	select coalesce(bool_or(mod(extract(epoch from
	    (p_at at time zone c.timezone) - timestamp '2000-01-01')::numeric,
	    extract(epoch from f.defrost_every)::numeric)
	    < extract(epoch from f.defrost_for)::numeric), false)
	from vialwatch.fridge f
	join vialwatch.clinic c on c.id = f.clinic_id
	where f.id = p_fridge and f.defrost_every is not null
$$;

-- Why fridge p_fridge pages nobody at p_at: 'maintenance', 'defrost', or
-- null when it pages as usual.
create function vialwatch.fridge_hold(p_fridge bigint, p_at timestamptz)
returns text
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	select case
		when exists (select from vialwatch.maintenance m
		    where m.fridge_id = p_fridge and m.starts_at <= p_at
			and p_at < vialwatch.maintenance_until(m))
		    then 'maintenance'
		when vialwatch.fridge_in_defrost(p_fridge, p_at)
		    then 'defrost'
	end
$$;

-- Whether excursion e pages nobody now: a high, low, door or warning
-- while its fridge is held, unless beyond a critical bound, which always
-- pages.  Power and offline always page.
create function vialwatch.excursion_held(e vialwatch.excursion)
returns boolean
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	select e.kind in ('high', 'low', 'door', 'warning')
	    and vialwatch.fridge_hold(e.fridge_id, now()) is not null
	    and not exists (select from vialwatch.fridge f
		where f.id = e.fridge_id
		    and ((e.kind = 'high' and e.peak_c > f.critical_high_c)
		    or (e.kind = 'low' and e.peak_c < f.critical_low_c)))
$$;

-- Messages -----------------------------------------------------------------

-- The subject and body of a message about a door, power or warning
-- excursion e: what is "alarm" or "recovered".
create function vialwatch.input_message(what text, e vialwatch.excursion,
    temp_c double precision, out subject text, out body text)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
	f	vialwatch.fridge;
	c	vialwatch.clinic;
	skey	text;
	place	text;
	since	text;
	span	text;
	now_c	text;
begin
	select * into f from vialwatch.fridge where id = e.fridge_id;
	select * into c from vialwatch.clinic where id = f.clinic_id;
	select s.key into skey from vialwatch.sensor s where s.id = e.sensor_id;
	place := format('%s (%s)', f.name, c.name);
	since := format('%s (%s)', to_char(e.started_at at time zone c.timezone,
	    'YYYY-MM-DD HH24:MI'), c.timezone);
	span := vialwatch.excursion_duration_text(coalesce(e.minutes_out, 0));
	if temp_c is null then
		select r.temp_c into temp_c from vialwatch.reading r
		where r.sensor_id = e.sensor_id
		order by r.ts desc
		limit 1;
	end if;
	now_c := coalesce(round(temp_c::numeric, 1) || ' °C', 'unknown');
	if e.kind = 'door' and what = 'alarm' then
		subject := format('DOOR OPEN: %s for %s', place, span);
		body := format(e'The door of %s at %s has been open since %s, '
		    '%s.\n\nClose it now and check that it seals.  Warm air '
		    'takes the fridge out\nof its range within minutes; an '
		    'alarm follows if it does.\n\nSensor:    %s\n'
		    'Excursion: %s\n', f.name, c.name, since, span, skey, e.id);
	elsif e.kind = 'door' then
		subject := format('Door closed: %s after %s', place, span);
		body := format(e'The door of %s at %s is closed again after %s '
		    '(open since %s).\n\nSensor:    %s\nExcursion: %s\n',
		    f.name, c.name, span, since, skey, e.id);
	elsif e.kind = 'power' and what = 'alarm' then
		subject := format('POWER LOST: %s', place);
		body := format(e'%s at %s has no mains power since %s: its plug '
		    '%s.\n\nA fridge without power warms slowly: this is the '
		    'hour to save the stock.\nCheck the plug, the socket and '
		    'the fuse; if power does not come back,\nmove the stock '
		    'to a working %s or a qualified cooler, and keep\nit '
		    'at %s to %s °C.\n\nSensor:    %s\nExcursion: %s\n',
		    f.name, c.name, since, case when e.peak_c is null then
		    'is off or has gone offline' else format('draws %s W, '
		    'under %s W', round(e.peak_c::numeric, 1)::float8,
		    round(f.power_min_w::numeric, 1)::float8) end, f.kind,
		    round(f.low_c::numeric, 1), round(f.high_c::numeric, 1),
		    skey, e.id);
	elsif e.kind = 'power' then
		subject := format('Power back: %s after %s', place, span);
		body := format(e'%s at %s has mains power again after %s '
		    '(lost since %s).\n\nLook at its temperatures over that '
		    'time before using its stock.\n\nSensor:    %s\n'
		    'Excursion: %s\n', f.name, c.name, span, since, skey, e.id);
	elsif e.kind = 'warning' then
		subject := format('Warning: %s at %s, near the edge of its range',
		    place, now_c);
		body := format(e'%s at %s is at %s, %s its warning threshold of '
		    '%s °C since %s.\nIts range is %s to %s °C: nothing is out '
		    'of range yet.\n\nAct now, before the stock is exposed: '
		    'check the door, the thermostat\nand what was put in '
		    'lately.  This is the only message about this warning;\n'
		    'an alarm follows if the range is left.\n\nSensor:    %s\n'
		    'Excursion: %s\n', f.name, c.name, now_c,
		    case when e.peak_c > f.warn_high_c then 'above' else 'below'
		    end, round((case when e.peak_c > f.warn_high_c
		    then f.warn_high_c else f.warn_low_c end)::numeric, 1),
		    since, round(f.low_c::numeric, 1),
		    round(f.high_c::numeric, 1), skey, e.id);
	else
		raise exception 'input_message: no "%" message for kind %',
		    what, e.kind using errcode = 'invalid_parameter_value';
	end if;
	subject := regexp_replace(subject, '[[:cntrl:]]+', ' ', 'g');
end;
$$;

-- Replaces 006's excursion_mail: door, power and warning excursions have
-- messages of their own (input_message); warnings are not acknowledged.
create or replace function vialwatch.excursion_mail(what text,
    e vialwatch.excursion, temp_c double precision,
    battery_pct double precision, out subject text, out body text)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
	m	record;
begin
	if e.kind in ('door', 'power', 'warning') then
		m := vialwatch.input_message(what, e, temp_c);
	else
		m := vialwatch.excursion_message(what, e, temp_c, battery_pct);
	end if;
	subject := m.subject;
	body := m.body;
	if what in ('alarm', 'offline') and e.kind <> 'warning' then
		body := body || format(e'\nAcknowledge it, with the corrective '
		    'action taken, on this page:\n  {{ack_url}}\n'
		    'or with: vialwatchctl ack %s --by NAME --note TEXT\n'
		    'Until then this message is repeated, and sent on to '
		    'more people.\n', e.id);
	end if;
end;
$$;

-- Whether the message "what" about excursion e is to be held back: an
-- alarm while its fridge is held (excursion_held), or an all-clear about
-- an excursion nobody was told of.
create function vialwatch.excursion_silenced(what text,
    e vialwatch.excursion)
returns boolean
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	select (what = 'alarm' and vialwatch.excursion_held(e))
	    or (what = 'recovered' and not exists (
		select from vialwatch.notification n
		where n.excursion_id = e.id and n.channel = 'email'))
$$;

-- Replaces 006's excursion_notify, adding its first two statements:
-- excursion_event_apply() queues "battery" (without the temperature,
-- which excursion_event() left in vialwatch.event_temp) for the kinds it
-- does not know, which for door, power and warning is their alarm; and alarms
-- held by a maintenance window or defrost wait (excursion_page_held).
create or replace function vialwatch.excursion_notify(what text,
    e vialwatch.excursion, temp_c double precision,
    battery_pct double precision)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	m	record;
begin
	if e.kind in ('door', 'power', 'warning') and what = 'battery' then
		what := 'alarm';
		temp_c := nullif(current_setting('vialwatch.event_temp', true),
		    '')::double precision;
	end if;
	if vialwatch.excursion_silenced(what, e) then
		return;
	end if;
	m := vialwatch.excursion_mail(what, e, temp_c, battery_pct);
	insert into vialwatch.notification (channel, recipient, subject, body,
	    dedupe_key, excursion_id)
	select 'email', ct.email, m.subject, m.body,
	    format('excursion:%s:%s:contact:%s', e.id, what, ct.id), e.id
	from vialwatch.contact ct
	join vialwatch.fridge f on f.clinic_id = ct.clinic_id
	where f.id = e.fridge_id and ct.active and (ct.tier = 1
	    or (what in ('recovered', 'online') and exists (
		select from vialwatch.notification n
		where n.excursion_id = e.id and n.channel = 'email'
		    and n.recipient = ct.email)))
	order by ct.id
	on conflict (dedupe_key) do nothing;
end;
$$;

-- Page the alarm of excursion e that was held back and is no longer held
-- (its window ended, or it went beyond a critical bound).  Returns
-- whether it did.
create function vialwatch.excursion_page_held(e vialwatch.excursion,
    temp_c double precision)
returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
	if e.alarmed_at is null or e.ended_at is not null
	    or e.acked_at is not null
	    or e.kind not in ('high', 'low', 'door', 'warning')
	    or exists (select from vialwatch.notification n
		where n.excursion_id = e.id and n.channel = 'email')
	    or vialwatch.excursion_held(e) then
		return false;
	end if;
	perform vialwatch.excursion_notify('alarm', e, temp_c, null);
	perform vialwatch.hook_notify(case e.kind when 'warning'
	    then 'excursion.warning' else 'excursion.alarm' end,
	    format('excursion:%s:alarm', e.id), e.id,
	    vialwatch.excursion_payload(e));
	return exists (select from vialwatch.notification n
	    where n.excursion_id = e.id and n.channel = 'email');
end;
$$;

-- Replaces 006's excursion_hooks trigger function, changing one
-- statement: the alarm hook of an excursion held by a window or defrost
-- waits (excursion_page_held runs it later), and a warning's is
-- "excursion.warning".
create or replace function vialwatch.excursion_hooks()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	ev	text;
	key	text;
begin
	if tg_op = 'INSERT' then
		if new.kind in ('high', 'low') then
			perform vialwatch.hook_notify('excursion.open',
			    format('excursion:%s:open', new.id), new.id,
			    vialwatch.excursion_payload(new));
		end if;
		if new.alarmed_at is null then
			return null;
		end if;
	end if;
	if new.alarmed_at is not null and (tg_op = 'INSERT'
	    or old.alarmed_at is null)
	    and not vialwatch.excursion_held(new) then
		ev := case new.kind when 'offline' then 'sensor.offline'
		    when 'battery' then 'battery.low'
		    when 'warning' then 'excursion.warning'
		    else 'excursion.alarm' end;
		perform vialwatch.hook_notify(ev, format('excursion:%s:alarm',
		    new.id), new.id, vialwatch.excursion_payload(new));
	end if;
	if tg_op = 'UPDATE' and old.ended_at is null
	    and new.ended_at is not null then
		ev := null;
		if new.kind in ('high', 'low') then
			ev := 'excursion.close';
		elsif new.kind = 'offline' and new.alarmed_at is not null then
			ev := 'sensor.online';
		end if;
		if ev is not null then
			key := format('excursion:%s:close', new.id);
			perform vialwatch.hook_notify(ev, key, new.id,
			    vialwatch.excursion_payload(new));
		end if;
	end if;
	if tg_op = 'UPDATE' and old.acked_at is null
	    and new.acked_at is not null then
		perform vialwatch.hook_notify('excursion.ack',
		    format('excursion:%s:ack', new.id), new.id,
		    vialwatch.excursion_payload(new));
	end if;
	return null;
end;
$$;

-- What excursion_event() adds for the new kinds, after the event is
-- applied to row p_id: the lowest watts and the farthest warning
-- temperature (the rules keep them), the all-clear of a door closed or
-- power back after its alarm, and a held alarm now due.
create function vialwatch.excursion_event_inputs(p_id bigint, p_event text,
    p_peak double precision, p_temp double precision)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	e	vialwatch.excursion;
begin
	select * into e from vialwatch.excursion where id = p_id;
	if e.kind in ('power', 'warning') and p_peak is not null
	    and e.peak_c is distinct from p_peak then
		update vialwatch.excursion x set peak_c = p_peak
		where x.id = p_id
		returning * into e;
	end if;
	if e.kind in ('door', 'power') and e.ended_at is not null
	    and e.alarmed_at is not null then
		perform vialwatch.excursion_notify('recovered', e, p_temp, null);
	end if;
	if e.ended_at is null then
		perform vialwatch.excursion_page_held(e, p_temp);
	end if;
end;
$$;

-- Replaces 006's excursion_event (the advisory-lock wrapper) to call
-- excursion_event_inputs() after excursion_event_apply(), and to leave
-- the latest temperature for excursion_notify().
create or replace function vialwatch.excursion_event(p_event text,
    p_fridge bigint, p_sensor bigint, p_kind text, p_started timestamptz,
    p_alarmed timestamptz, p_ended timestamptz, p_peak double precision,
    p_minutes double precision, p_degree_minutes double precision,
    p_temp double precision, p_battery double precision)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	v_id	bigint;
begin
	perform pg_advisory_xact_lock(hashtext('vialwatch.excursion_event'),
	    (coalesce(p_sensor, 0) % 2147483647)::integer);
	perform set_config('vialwatch.event_temp', coalesce(p_temp::text, ''),
	    true);
	v_id := vialwatch.excursion_event_apply(p_event, p_fridge, p_sensor,
	    p_kind, p_started, p_alarmed, p_ended, p_peak, p_minutes,
	    p_degree_minutes, p_temp, p_battery);
	perform vialwatch.excursion_event_inputs(v_id, p_event, p_peak,
	    p_temp);
	return v_id;
end;
$$;

-- Windows that ended: email whoever started one if its fridge is still
-- out of range (an open high or low excursion, or the door open), and
-- page the alarms held back that are not held any more (the window or
-- defrost is over).  Run by escalate(), so by every daemon's outbox.
-- Returns the number of notifications queued.
create function vialwatch.maintenance_expire()
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	m	vialwatch.maintenance;
	e	vialwatch.excursion;
	n	integer;
	total	integer := 0;
begin
	for m in
		select * from vialwatch.maintenance x
		where x.notified_at is null
		    and vialwatch.maintenance_until(x) <= now()
		order by x.id
		for update skip locked
	loop
		insert into vialwatch.notification (channel, recipient,
		    subject, body, dedupe_key)
		select 'email', ct.email, msg.subject, msg.body,
		    format('maintenance:%s:end', m.id)
		from vialwatch.contact ct
		cross join vialwatch.maintenance_message(m) msg
		where ct.id = m.started_by and msg.subject is not null
		on conflict (dedupe_key) do nothing;
		get diagnostics n = row_count;
		total := total + n;
		update vialwatch.maintenance set notified_at = now()
		where id = m.id;
	end loop;
	for e in
		select x.* from vialwatch.excursion x
		where x.ended_at is null and x.alarmed_at is not null
		    and x.acked_at is null
		    and x.kind in ('high', 'low', 'door', 'warning')
		    and not exists (select from vialwatch.notification n
			where n.excursion_id = x.id and n.channel = 'email')
		order by x.id
	loop
		if vialwatch.excursion_page_held(e, (select r.temp_c
		    from vialwatch.reading r where r.sensor_id = e.sensor_id
		    order by r.ts desc limit 1)) then
			total := total + 1;
		end if;
	end loop;
	return total;
end;
$$;

-- The email to whoever started window m, when it is over with its
-- fridge still out of range; null subject when it is not.
create function vialwatch.maintenance_message(m vialwatch.maintenance,
    out subject text, out body text)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
	f	vialwatch.fridge;
	c	vialwatch.clinic;
	what	text;
begin
	select * into f from vialwatch.fridge where id = m.fridge_id;
	select * into c from vialwatch.clinic where id = f.clinic_id;
	select string_agg(format('  %s since %s%s', case x.kind
	    when 'door' then 'door open' when 'high' then 'above ' ||
	    round(f.high_c::numeric, 1) || ' °C' else 'below ' ||
	    round(f.low_c::numeric, 1) || ' °C' end,
	    to_char(x.started_at at time zone c.timezone, 'HH24:MI'),
	    case when x.peak_c is not null then format(', %s °C at worst',
	    round(x.peak_c::numeric, 1)) else '' end), e'\n'
	    order by x.started_at) into what
	from vialwatch.excursion x
	where x.fridge_id = m.fridge_id and x.ended_at is null
	    and x.kind in ('high', 'low', 'door');
	if what is null then
		return;
	end if;
	subject := format('Maintenance over: %s (%s) is still out of range',
	    f.name, c.name);
	body := format(e'The maintenance window on %s at %s that you started '
	    'at %s (%s)\nfor "%s" is over, and the fridge is still out of '
	    'range:\n%s\n\nAlarms page as usual again from now on.  Close '
	    'the door and check\nthe fridge, or start another window:\n'
	    '  vialwatchctl maintenance %s --for 30m --by YOU --reason TEXT\n',
	    f.name, c.name, to_char(m.starts_at at time zone c.timezone,
	    'YYYY-MM-DD HH24:MI'), c.timezone, m.reason, what, f.id);
end;
$$;

-- Replaces 006's escalate(), changing two things: door and power alarms
-- escalate like the others and alarms held by a window or defrost do not;
-- and it first runs maintenance_expire().
create or replace function vialwatch.escalate(p_escalate interval,
    p_repeat interval)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
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
	total := vialwatch.maintenance_expire();
	for e in
		select x.* from vialwatch.excursion x
		where x.ended_at is null and x.alarmed_at is not null
		    and x.acked_at is null
		    and x.kind in ('high', 'low', 'offline', 'door', 'power')
		    and not vialwatch.excursion_held(x)
		order by x.id
	loop
		select min(created_at) into base from vialwatch.notification
		where excursion_id = e.id and channel = 'email';
		base := coalesce(base, e.alarmed_at);
		if now() - base < least(p_escalate, p_repeat) then
			continue;
		end if;
		tiers := 1 + floor(extract(epoch from now() - base)
		    / extract(epoch from p_escalate))::integer;
		step := floor(extract(epoch from now() - base)
		    / extract(epoch from p_repeat))::integer;
		select r.temp_c into temp from vialwatch.reading r
		where r.sensor_id = e.sensor_id
		order by r.ts desc
		limit 1;
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

-- Starting and ending windows (vialwatchctl) ------------------------------

-- Start a window on fridge p_fridge for p_for (at most p_max), by the
-- person named with vialwatch.actor_set().  Returns the window.
create function vialwatch.maintenance_start(p_fridge bigint, p_for interval,
    p_max interval, p_reason text)
returns vialwatch.maintenance
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	who	bigint := vialwatch.actor_contact_id();
	m	vialwatch.maintenance;
begin
	if who is null then
		raise exception 'maintenance: name who starts it (--by)'
		    using errcode = 'null_value_not_allowed';
	end if;
	if nullif(btrim(p_reason), '') is null then
		raise exception 'maintenance: a reason is required (--reason)'
		    using errcode = 'null_value_not_allowed';
	end if;
	if p_for is null or p_for <= interval '0' then
		raise exception 'maintenance: --for must be a positive duration'
		    using errcode = 'invalid_parameter_value';
	end if;
	if p_max is not null and p_for > p_max then
		raise exception 'maintenance: % is longer than [alerts] '
		    'maintenance_max (%)', p_for, p_max
		    using errcode = 'invalid_parameter_value',
		    hint = 'a window that is too long is an alarm switched off';
	end if;
	if not exists (select from vialwatch.fridge where id = p_fridge) then
		raise exception 'no fridge %', p_fridge
		    using errcode = 'no_data_found';
	end if;
	insert into vialwatch.maintenance (fridge_id, starts_at, ends_at,
	    reason, started_by)
	values (p_fridge, now(), now() + p_for, btrim(p_reason), who)
	returning * into m;
	return m;
end;
$$;

-- End the open windows of fridge p_fridge now, by the person named with
-- vialwatch.actor_set().  Returns how many were open.
create function vialwatch.maintenance_end(p_fridge bigint)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	who	bigint := vialwatch.actor_contact_id();
	n	integer;
begin
	if who is null then
		raise exception 'maintenance end: name who ends it (--by)'
		    using errcode = 'null_value_not_allowed';
	end if;
	update vialwatch.maintenance m
	set ended_at = greatest(now(), m.starts_at), ended_by = who
	where m.fridge_id = p_fridge and m.ended_at is null
	    and m.ends_at > now();
	get diagnostics n = row_count;
	return n;
end;
$$;

-- The windows, newest first, with who started and ended them, for
-- "maintenance list", status and the reports.
create view vialwatch.maintenance_report as
select
	m.id,
	c.id as clinic_id,
	c.name as clinic,
	c.timezone,
	f.id as fridge_id,
	f.name as fridge,
	m.starts_at,
	vialwatch.maintenance_until(m) as ends_at,
	m.ends_at as planned_end,
	m.reason,
	sb.email as started_by,
	eb.email as ended_by,
	now() >= m.starts_at and now() < vialwatch.maintenance_until(m)
	    as active
from vialwatch.maintenance m
join vialwatch.fridge f on f.id = m.fridge_id
join vialwatch.clinic c on c.id = f.clinic_id
join vialwatch.contact sb on sb.id = m.started_by
left join vialwatch.contact eb on eb.id = m.ended_by;

-- The rules' load ----------------------------------------------------------

-- excursion_sensors() and what the door, power and warning rules need:
-- the sensor's kind, its fridge's new limits, its open door or power and
-- warning rows, and for door and power sensors their newest input reading
-- in place of the newest temperature.
create function vialwatch.excursion_sensors_inputs(p_before timestamptz)
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
	offline_alarmed_us	bigint,
	sensor_kind		text,
	door_alarm_after_us	bigint,
	power_min_w		double precision,
	power_alarm_after_us	bigint,
	warn_low_c		double precision,
	warn_high_c		double precision,
	warn_delay_us		bigint,
	input_kind		text,
	input_started_us	bigint,
	input_alarmed_us	bigint,
	input_peak_c		double precision,
	input_minutes_out	double precision,
	warn_started_us		bigint,
	warn_alarmed_us		bigint,
	warn_peak_c		double precision,
	warn_minutes_out	double precision
)
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	select es.sensor_id, es.key, es.fridge_id, es.kind, es.low_c,
	    es.high_c, es.critical_low_c, es.critical_high_c, es.hysteresis_c,
	    es.low_delay_us, es.high_delay_us, es.offline_after_us,
	    es.battery_low_pct,
	    case when s.kind = 'temperature' then es.last_ts_us
		else vialwatch.epoch_us(li.ts) end,
	    case when s.kind = 'temperature' then es.last_temp_c end,
	    case when s.kind = 'temperature' then es.last_arrival_us
		else vialwatch.epoch_us(li.received_at) end,
	    es.battery_at_us, es.temp_fridge_id, es.temp_kind,
	    es.temp_started_us, es.temp_alarmed_us, es.temp_peak_c,
	    es.temp_minutes_out, es.temp_degree_minutes, es.offline_fridge_id,
	    es.offline_started_us, es.offline_alarmed_us,
	    s.kind,
	    (extract(epoch from f.door_alarm_after) * 1000000)::bigint,
	    f.power_min_w,
	    (extract(epoch from f.power_alarm_after) * 1000000)::bigint,
	    f.warn_low_c, f.warn_high_c,
	    (extract(epoch from f.warn_delay) * 1000000)::bigint,
	    i.kind, vialwatch.epoch_us(i.started_at),
	    vialwatch.epoch_us(i.alarmed_at), i.peak_c, i.minutes_out,
	    vialwatch.epoch_us(w.started_at), vialwatch.epoch_us(w.alarmed_at),
	    w.peak_c, w.minutes_out
	from vialwatch.excursion_sensors(p_before) es
	join vialwatch.sensor s on s.id = es.sensor_id
	left join vialwatch.fridge f on f.id = es.fridge_id
	left join lateral (
		select e.kind, e.started_at, e.alarmed_at, e.peak_c,
		    e.minutes_out
		from vialwatch.excursion e
		where e.sensor_id = s.id and e.ended_at is null
		    and e.kind in ('door', 'power')
		    and e.fridge_id = es.fridge_id
		order by e.started_at desc
		limit 1
	) i on true
	left join lateral (
		select e.started_at, e.alarmed_at, e.peak_c, e.minutes_out
		from vialwatch.excursion e
		where e.sensor_id = s.id and e.ended_at is null
		    and e.kind = 'warning' and e.fridge_id = es.fridge_id
		order by e.started_at desc
		limit 1
	) w on true
	left join lateral (
		select r.ts, r.received_at
		from vialwatch.input_reading r
		where r.sensor_id = s.id and s.kind <> 'temperature'
		    and (p_before is null or r.received_at < p_before)
		order by r.ts desc
		limit 1
	) li on true
	order by es.sensor_id
$$;

-- Reports ------------------------------------------------------------------

-- Beside daily_summary: per fridge and clinic-local day, the door
-- openings (each door excursion, alarmed or not) and the longest one,
-- the power cuts and their minutes, and the minutes under maintenance.
-- From the fridge's creation (or its first excursion or window, if
-- earlier) to today; filter on fridge_id and day.
create view vialwatch.daily_inputs as
select
	f.id as fridge_id,
	g.d::date as day,
	d.door_openings,
	d.door_longest_min,
	d.power_cuts,
	d.power_off_min,
	mt.maintenance_min
from vialwatch.fridge f
join vialwatch.clinic c on c.id = f.clinic_id
cross join lateral (
	select least(f.created_at, (select min(e.started_at)
	    from vialwatch.excursion e where e.fridge_id = f.id),
	    (select min(m.starts_at) from vialwatch.maintenance m
	    where m.fridge_id = f.id)) as since
) since
cross join lateral generate_series(
	(since.since at time zone c.timezone)::date::timestamp,
	(now() at time zone c.timezone)::date::timestamp,
	interval '1 day') as g(d)
cross join lateral (
	select g.d at time zone c.timezone as day_start,
	    (g.d + interval '1 day') at time zone c.timezone as day_end
) b
cross join lateral (
	select count(*) filter (where e.kind = 'door')::integer
		as door_openings,
	    max(e.minutes_out) filter (where e.kind = 'door')
		as door_longest_min,
	    count(*) filter (where e.kind = 'power')::integer as power_cuts,
	    coalesce(sum(e.minutes_out) filter (where e.kind = 'power'), 0)
		as power_off_min
	from vialwatch.excursion e
	where e.fridge_id = f.id and e.kind in ('door', 'power')
	    and e.started_at >= b.day_start and e.started_at < b.day_end
) d
cross join lateral (
	select coalesce(extract(epoch from sum(least(b.day_end,
	    vialwatch.maintenance_until(m), now()) - greatest(b.day_start,
	    m.starts_at))) / 60, 0)::double precision as maintenance_min
	from vialwatch.maintenance m
	where m.fridge_id = f.id and m.starts_at < b.day_end
	    and vialwatch.maintenance_until(m) > b.day_start
	    and m.starts_at < now()
) mt;

-- Privileges --------------------------------------------------------------

grant insert on vialwatch.input_reading to vialwatch_daemon;
grant update (kind) on vialwatch.sensor to vialwatch_daemon;
grant update (notified_at) on vialwatch.maintenance to vialwatch_daemon;
grant update (peak_c) on vialwatch.excursion to vialwatch_daemon;
grant select on vialwatch.input_reading, vialwatch.maintenance,
    vialwatch.maintenance_report, vialwatch.daily_inputs
    to vialwatch_readonly, vialwatch_admin, vialwatch_daemon;
grant select, insert, update on vialwatch.input_reading,
    vialwatch.maintenance to vialwatch_admin;
revoke all on function vialwatch.maintenance_start(bigint, interval,
    interval, text), vialwatch.maintenance_end(bigint),
    vialwatch.maintenance_expire(),
    vialwatch.excursion_event_inputs(bigint, text, double precision,
    double precision),
    vialwatch.excursion_page_held(vialwatch.excursion, double precision)
    from public;
grant execute on function vialwatch.maintenance_start(bigint, interval,
    interval, text), vialwatch.maintenance_end(bigint)
    to vialwatch_admin;
grant execute on function vialwatch.maintenance_expire(),
    vialwatch.excursion_event_inputs(bigint, text, double precision,
    double precision),
    vialwatch.excursion_page_held(vialwatch.excursion, double precision)
    to vialwatch_daemon, vialwatch_admin;
