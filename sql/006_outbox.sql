-- 006_outbox.sql: what the sender of the outbox needs: escalation and
-- repeats of unacknowledged alarms, the recovery email to everyone who was
-- told, acknowledgement, hook rows, and the claim of due rows.
--
-- Run by "vialwatchctl migrate" in one transaction, like 001_init.sql.

-- Who the acknowledge link that was used had been sent to (null when the
-- acknowledgement came from vialwatchctl).
alter table vialwatch.excursion
	add column acked_contact text;

-- The hooks a daemon runs, set by it on each of its connections as
--   set vialwatch.hooks = '{"sms": ["excursion.alarm"], "log": null}'
-- (null: every event).  Rows for hook NAME have channel "hook:NAME".
create function vialwatch.hook_notify(p_event text, p_key text,
    p_excursion bigint, p_payload jsonb)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	hooks	jsonb;
begin
	hooks := nullif(current_setting('vialwatch.hooks', true), '')::jsonb;
	if hooks is null or jsonb_typeof(hooks) <> 'object' then
		return;
	end if;
	insert into vialwatch.notification (channel, recipient, subject, body,
	    dedupe_key, excursion_id)
	select 'hook:' || h.key, h.key, p_event,
	    (p_payload || jsonb_build_object('event', p_event))::text,
	    format('%s:hook:%s', p_key, h.key), p_excursion
	from jsonb_each(hooks) h
	where jsonb_typeof(h.value) = 'null' or h.value ? p_event
	order by h.key
	on conflict (dedupe_key) do nothing;
end;
$$;

-- The event as hooks get it: JSON on standard input, and each top-level
-- value as VIALWATCH_<KEY> in the environment.
create function vialwatch.excursion_payload(e vialwatch.excursion)
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
	    'temp_c', lr.temp_c,
	    'minutes_out', round(e.minutes_out::numeric, 1),
	    'degree_minutes', round(e.degree_minutes::numeric, 1),
	    'acked_at', e.acked_at,
	    'acked_by', e.acked_by,
	    'action_note', e.action_note)
	from vialwatch.fridge f
	join vialwatch.clinic c on c.id = f.clinic_id
	left join vialwatch.sensor s on s.id = e.sensor_id
	left join lateral (
		select r.temp_c from vialwatch.reading r
		where r.sensor_id = e.sensor_id
		order by r.ts desc
		limit 1
	) lr on true
	where f.id = e.fridge_id
$$;

-- Hook rows for every change of an excursion, in its transaction.
create function vialwatch.excursion_hooks()
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
	    or old.alarmed_at is null) then
		ev := case new.kind when 'offline' then 'sensor.offline'
		    when 'battery' then 'battery.low' else 'excursion.alarm' end;
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

create trigger excursion_hooks
	after insert or update on vialwatch.excursion
	for each row execute function vialwatch.excursion_hooks();

-- An email about excursion e: excursion_message() and, for what is still
-- to be acknowledged, how to.  The sender puts the link signed for each
-- recipient in place of {{ack_url}}.
create function vialwatch.excursion_mail(what text, e vialwatch.excursion,
    temp_c double precision, battery_pct double precision,
    out subject text, out body text)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
	m	record;
begin
	m := vialwatch.excursion_message(what, e, temp_c, battery_pct);
	subject := m.subject;
	body := m.body;
	if what in ('alarm', 'offline') then
		body := body || format(e'\nAcknowledge it, with the corrective '
		    'action taken, on this page:\n  {{ack_url}}\n'
		    'or with: vialwatchctl ack %s --by NAME --note TEXT\n'
		    'Until then this message is repeated, and sent on to '
		    'more people.\n', e.id);
	end if;
end;
$$;

-- Queue the email "what" about excursion e.  Alarms, offline sensors and
-- battery warnings go to the clinic's active tier-1 contacts (the outbox
-- escalates to the others); "recovered" and "online" go to everyone who
-- was told of the excursion, and to tier 1.  Once per excursion, message
-- and contact however often this runs.
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

-- Escalate and repeat what is alarmed and not acknowledged, from the
-- time its first email was queued: tier k of the clinic's
-- contacts is told once (k - 1) * p_escalate has gone by, and everyone
-- told so far again each p_repeat (except who was told within the last
-- half of p_repeat).  Offline sensors are escalated like alarms; battery
-- warnings are not.  Several daemons may run this at once: each row is
-- queued once by its dedupe_key.  Returns the number of rows queued.
create function vialwatch.escalate(p_escalate interval, p_repeat interval)
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
	for e in
		select x.* from vialwatch.excursion x
		where x.ended_at is null and x.alarmed_at is not null
		    and x.acked_at is null and x.kind in ('high', 'low', 'offline')
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

-- Acknowledge excursion p_id: by whom, the corrective action, and the
-- address the link was sent to (null from vialwatchctl).  The first
-- acknowledgement is kept; later ones change nothing.  Returns the
-- excursion as it is now and whether this call acknowledged it.
create function vialwatch.excursion_ack(p_id bigint, p_by text, p_note text,
    p_contact text, out acked_now boolean, out acked_at timestamptz,
    out acked_by text, out action_note text)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	e	vialwatch.excursion;
begin
	if nullif(btrim(p_by), '') is null then
		raise exception 'the name of who acknowledges is required'
		    using errcode = 'null_value_not_allowed';
	end if;
	select * into e from vialwatch.excursion where id = p_id for update;
	if not found then
		raise exception 'no excursion %', p_id
		    using errcode = 'no_data_found';
	end if;
	if e.alarmed_at is null then
		raise exception 'excursion % has not alarmed', p_id
		    using errcode = 'object_not_in_prerequisite_state';
	end if;
	acked_now := e.acked_at is null;
	if acked_now then
		update vialwatch.excursion x
		set acked_at = now(), acked_by = btrim(p_by),
		    action_note = nullif(btrim(p_note), ''),
		    acked_contact = p_contact
		where x.id = p_id
		returning * into e;
	end if;
	acked_at := e.acked_at;
	acked_by := e.acked_by;
	action_note := e.action_note;
end;
$$;

-- What the acknowledge page shows of an excursion.
create function vialwatch.excursion_ack_page(p_id bigint)
returns table (
	id		bigint,
	kind		text,
	clinic		text,
	fridge		text,
	timezone	text,
	started_at	text,
	ended_at	text,
	peak_c		numeric,
	acked_at	text,
	acked_by	text,
	action_note	text
)
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	select e.id, e.kind, c.name, f.name, c.timezone,
	    to_char(e.started_at at time zone c.timezone, 'YYYY-MM-DD HH24:MI'),
	    to_char(e.ended_at at time zone c.timezone, 'YYYY-MM-DD HH24:MI'),
	    round(e.peak_c::numeric, 1),
	    to_char(e.acked_at at time zone c.timezone, 'YYYY-MM-DD HH24:MI'),
	    e.acked_by, e.action_note
	from vialwatch.excursion e
	join vialwatch.fridge f on f.id = e.fridge_id
	join vialwatch.clinic c on c.id = f.clinic_id
	where e.id = p_id
$$;

-- Excursion events of one sensor, one at a time ----------------------------
--
-- Two daemons reading the same feed apply the same events.  Unserialised,
-- the second could miss the excursion the first has just inserted (its
-- lookup ran before that commit), then see it committed when it ends
-- "open rows that lost their closing event", and insert a second one:
-- two alarms.  A transaction-level advisory lock per sensor makes the
-- second wait, then find the first's row.
alter function vialwatch.excursion_event(text, bigint, bigint, text,
    timestamptz, timestamptz, timestamptz, double precision,
    double precision, double precision, double precision, double precision)
    rename to excursion_event_apply;

create function vialwatch.excursion_event(p_event text, p_fridge bigint,
    p_sensor bigint, p_kind text, p_started timestamptz,
    p_alarmed timestamptz, p_ended timestamptz, p_peak double precision,
    p_minutes double precision, p_degree_minutes double precision,
    p_temp double precision, p_battery double precision)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
	perform pg_advisory_xact_lock(hashtext('vialwatch.excursion_event'),
	    (coalesce(p_sensor, 0) % 2147483647)::integer);
	return vialwatch.excursion_event_apply(p_event, p_fridge, p_sensor,
	    p_kind, p_started, p_alarmed, p_ended, p_peak, p_minutes,
	    p_degree_minutes, p_temp, p_battery);
end;
$$;

revoke all on function vialwatch.excursion_event(text, bigint, bigint, text,
    timestamptz, timestamptz, timestamptz, double precision,
    double precision, double precision, double precision, double precision)
    from public;
grant execute on function vialwatch.excursion_event(text, bigint, bigint,
    text, timestamptz, timestamptz, timestamptz, double precision,
    double precision, double precision, double precision, double precision)
    to vialwatch_daemon, vialwatch_admin;

-- The outbox ------------------------------------------------------------

-- Wake the senders as soon as a row is queued.
create function vialwatch.notification_wake()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
	perform pg_notify('vialwatch_outbox', '');
	return null;
end;
$$;

create trigger notification_wake
	after insert on vialwatch.notification
	for each statement execute function vialwatch.notification_wake();

-- Claim up to p_limit due rows of the channels given ("email",
-- "hook:NAME") for p_lease: nobody else claims them until then.  Rows
-- locked by another sender are skipped, not waited for.
create function vialwatch.notification_claim(p_limit integer,
    p_lease interval, p_channels text[])
returns table (
	id		bigint,
	channel		text,
	recipient	text,
	subject		text,
	body		text,
	attempts	integer,
	excursion_id	bigint,
	reminder_id	bigint,
	dedupe_key	text,
	age_s		double precision
)
language sql
set search_path = pg_catalog, pg_temp
as $$
	update vialwatch.notification n
	set attempts = n.attempts + 1, next_attempt_at = now() + p_lease
	where n.id in (
		select d.id from vialwatch.notification d
		where d.status in ('pending', 'failed')
		    and d.next_attempt_at <= now()
		    and d.channel = any (p_channels)
		order by d.next_attempt_at, d.id
		limit p_limit
		for update skip locked)
	returning n.id, n.channel, n.recipient, n.subject, n.body, n.attempts,
	    n.excursion_id, n.reminder_id, n.dedupe_key,
	    extract(epoch from clock_timestamp() - n.created_at)::float8
$$;

-- The outcome of a claimed row: sent, or failed with the error, to be
-- tried again in p_retry or, with p_dead, never.  Nothing happens when
-- the row was claimed again since (its lease ran out).
create function vialwatch.notification_done(p_id bigint, p_attempts integer,
    p_error text, p_retry interval, p_dead boolean)
returns boolean
language sql
set search_path = pg_catalog, pg_temp
as $$
	with u as (
		update vialwatch.notification n
		set status = case when p_error is null then 'sent'
			when p_dead then 'dead' else 'failed' end,
		    sent_at = case when p_error is null then now() end,
		    last_error = left(p_error, 1000),
		    next_attempt_at = case when p_error is null or p_dead
			then n.next_attempt_at else now() + p_retry end
		where n.id = p_id and n.attempts = p_attempts
		    and n.status in ('pending', 'failed')
		returning 1
	)
	select exists (select from u)
$$;

-- Privileges --------------------------------------------------------------

grant update (acked_at, acked_by, action_note, acked_contact)
	on vialwatch.excursion to vialwatch_daemon;
revoke all on function vialwatch.hook_notify(text, text, bigint, jsonb),
    vialwatch.escalate(interval, interval),
    vialwatch.excursion_ack(bigint, text, text, text),
    vialwatch.notification_claim(integer, interval, text[]),
    vialwatch.notification_done(bigint, integer, text, interval, boolean)
    from public;
grant execute on function vialwatch.hook_notify(text, text, bigint, jsonb),
    vialwatch.escalate(interval, interval),
    vialwatch.excursion_ack(bigint, text, text, text),
    vialwatch.notification_claim(integer, interval, text[]),
    vialwatch.notification_done(bigint, integer, text, interval, boolean)
    to vialwatch_daemon, vialwatch_admin;
grant execute on function vialwatch.excursion_payload(vialwatch.excursion),
    vialwatch.excursion_mail(text, vialwatch.excursion, double precision,
    double precision),
    vialwatch.excursion_ack_page(bigint)
    to vialwatch_daemon, vialwatch_admin, vialwatch_readonly;
