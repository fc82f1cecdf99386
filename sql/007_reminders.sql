-- Re-treatment reminders: the keys of the practice software's exports,
-- the clinic's locale, the scan that decides each reminder, and the
-- unsubscribe link.

-- Clinics ------------------------------------------------------------------

-- locale: BCP 47 (en-US, de-DE, fr-CA), for dates in patients' emails.
-- phone and booking_url are offered in the reminder when set.
alter table vialwatch.clinic
	add column locale text not null default 'en-US'
	    check (locale ~ '^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$'),
	add column phone text,
	add column booking_url text;

-- Imports --------------------------------------------------------------------

-- The practice software's own id of a treatment or an appointment, so that
-- importing the same export twice changes nothing.
alter table vialwatch.treatment add column external_ref text;
create unique index treatment_external_ref
	on vialwatch.treatment (patient_id, external_ref);

alter table vialwatch.appointment add column external_ref text;
create unique index appointment_external_ref
	on vialwatch.appointment (patient_id, external_ref);

-- Reminders ------------------------------------------------------------------

-- When the scan decided the row (its clock: p_now).
alter table vialwatch.reminder add column decided_at timestamptz;

-- A reminder deleted (with its patient or treatment: an erasure) takes its
-- emails with it, sent or not: they hold the patient's name and treatment.
alter table vialwatch.notification
	drop constraint notification_reminder_id_fkey,
	add constraint notification_reminder_id_fkey
	    foreign key (reminder_id) references vialwatch.reminder
	    on delete cascade;

-- The scan -------------------------------------------------------------------

-- Whether the send window [p_start, p_end), in minutes after local
-- midnight (p_end up to 1440), is open at p_at in zone p_zone: whether the
-- local time of day is inside it, with the system's zone data.  A start in
-- the gap of a spring-forward day opens at the first instant after it; in
-- the hour repeated on a fall-back day the window is open both times (a
-- reminder is decided once all the same).
create function vialwatch.send_window_open(p_zone text, p_at timestamptz,
    p_start integer, p_end integer)
returns boolean
language sql
stable
strict
set search_path = pg_catalog, pg_temp
as $$
	select l >= make_interval(mins => p_start)
	    and l < make_interval(mins => p_end)
	from (select (p_at at time zone p_zone)::time::interval as l) x
$$;

-- A step becomes due at the clinic's local midnight starting its day; a
-- step first seen more than this long after that is too late to send.
create function vialwatch.reminder_late()
returns interval
language sql
immutable
as $$ select interval '30 days' $$;

-- One scan of the reminders of the clinics whose send window [p_start,
-- p_end) is open at p_now in their own zone, in one transaction:
--
--  1. each step that is due and has no row yet gets one: pending, or
--     skipped when a later step of the treatment is due as well or it is
--     more than reminder_late() overdue (a treatment imported years late);
--  2. up to p_limit pending due rows are claimed, FOR UPDATE SKIP LOCKED,
--     so that several daemons scanning at once decide each row once;
--  3. each claimed row is decided: cancelled (the patient unsubscribed,
--     was treated again with the product, or has an appointment booked),
--     skipped (no consent, no email address), or sent: the email is queued
--     in the outbox with the template's variables as its body, once per
--     reminder (dedupe_key reminder:ID).
--
-- Returns the rows decided, with their status and reason.
create function vialwatch.reminder_scan(p_start integer, p_end integer,
    p_now timestamptz, p_limit integer, p_create boolean)
returns table (reminder_id bigint, status text, reason text)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	v_horizon integer;
	v_first integer;
	v_clinics bigint[];
begin
	select coalesce(max(d), 0), coalesce(min(d), 1)
	into v_horizon, v_first
	from vialwatch.retreatment_rule r, unnest(r.remind_after_days) d;
	select coalesce(array_agg(c.id), '{}') into v_clinics
	from vialwatch.clinic c
	where vialwatch.send_window_open(c.timezone, p_now, p_start, p_end);
	if cardinality(v_clinics) = 0 then
		return;
	end if;

	-- 1. New rows for the steps that fell due, in a fixed order (two
	-- daemons inserting the same rows must not deadlock); those created
	-- skipped are returned.
	if p_create then
		return query
		with ins as (
			insert into vialwatch.reminder as r (treatment_id, step,
			    due_at, status, reason, decided_at)
			select s.treatment_id, s.step, s.due_at,
			    case when s.later_due or s.too_late
				then 'skipped' else 'pending' end,
			    case when s.later_due
				then 'step ' || s.last_due || ' is due as well'
				when s.too_late
				then 'too late: due on ' || s.due_day
				    || ', first seen on '
				    || (p_now at time zone s.timezone)::date
			    end,
			    case when s.later_due or s.too_late then p_now end
			from (
				select t.id as treatment_id,
				    u.step::integer as step, d.due_day,
				    c.timezone, d.due_at,
				    d.due_at < p_now - vialwatch.reminder_late()
					as too_late,
				    max(u.step) over w > u.step as later_due,
				    max(u.step) over w as last_due
				from vialwatch.treatment t
				join vialwatch.patient p on p.id = t.patient_id
				join vialwatch.clinic c on c.id = p.clinic_id
				cross join lateral (
					select rr.remind_after_days
					from vialwatch.retreatment_rule rr
					where lower(rr.product) = lower(t.product)
					    and (rr.area is null or
						lower(rr.area) = lower(t.area))
					order by rr.area is null
					limit 1) rule
				cross join lateral unnest(rule.remind_after_days)
				    with ordinality as u(days, step)
				cross join lateral (
					select (t.treated_at at time zone
					    c.timezone)::date + u.days as due_day)
				    dd
				cross join lateral (
					select dd.due_day, dd.due_day::timestamp
					    at time zone c.timezone as due_at) d
				where p.clinic_id = any (v_clinics)
				    and t.treated_at > p_now - make_interval(
					days => v_horizon + 1)
					- vialwatch.reminder_late()
				    and t.treated_at <= p_now - make_interval(
					days => v_first - 1)
				    and d.due_at <= p_now
				window w as (partition by t.id)
			) s
			where not exists (select from vialwatch.reminder x
			    where x.treatment_id = s.treatment_id
				and x.step = s.step)
			order by s.treatment_id, s.step
			on conflict (treatment_id, step) do nothing
			returning r.id, r.status, r.reason
		)
		select i.id, i.status, i.reason from ins i
		where i.status <> 'pending';
	end if;

	-- 2 and 3.
	return query
	with claimed as (
		select r.id, r.treatment_id, r.step, r.due_at
		from vialwatch.reminder r
		join vialwatch.treatment t on t.id = r.treatment_id
		join vialwatch.patient p on p.id = t.patient_id
		where r.status = 'pending' and r.due_at <= p_now
		    and p.clinic_id = any (v_clinics)
		order by r.due_at, r.id
		limit p_limit
		-- The patient too: an unsubscribe under way waits for this
		-- scan, or this scan leaves the patient's rows for the next.
		for update of r skip locked
		for share of p skip locked
	), decided as (
		select cl.id, p.email, x.prio, x.status, x.reason,
		    jsonb_build_object(
			'patient.id', p.id::text,
			'patient.first_name', coalesce(p.first_name, ''),
			'patient.last_name', coalesce(p.last_name, ''),
			'clinic.name', c.name,
			'clinic.phone', coalesce(c.phone, ''),
			'clinic.booking_url', coalesce(c.booking_url, ''),
			'clinic.locale', c.locale,
			'treatment.product', t.product,
			'treatment.area', coalesce(t.area, ''),
			'treatment.date', (t.treated_at at time zone
			    c.timezone)::date::text,
			'due_date', (cl.due_at at time zone c.timezone)::date::text,
			'step', cl.step::text) as vars
		from claimed cl
		join vialwatch.treatment t on t.id = cl.treatment_id
		join vialwatch.patient p on p.id = t.patient_id
		join vialwatch.clinic c on c.id = p.clinic_id
		cross join lateral (
			select 1 as prio, 'cancelled' as status,
			    'unsubscribed on ' || (p.unsubscribed_at at time zone
			    c.timezone)::date as reason
			where p.unsubscribed_at is not null
			union all
			select 2, 'skipped', 'no email consent'
			where not p.email_consent
			union all
			select 3, 'skipped', 'no email address'
			where p.email is null or p.email = ''
			union all
			select 4, 'cancelled', (select case when (n.treated_at
			    at time zone c.timezone)::date = (t.treated_at
			    at time zone c.timezone)::date
				then 'reminded with treatment ' || n.id || ' ('
				    || n.product || ', the same day)'
				else 'treated again with ' || n.product || ' on '
				    || (n.treated_at at time zone c.timezone)::date
				    || ' (treatment ' || n.id || ')' end
			    from vialwatch.treatment n
			    where n.patient_id = t.patient_id
				and (n.treated_at, n.id) > (t.treated_at, t.id)
				and exists (select from vialwatch.retreatment_rule
				    rr where lower(rr.product) = lower(n.product))
			    order by n.treated_at desc, n.id desc limit 1)
			union all
			select 5, 'cancelled', (select 'appointment booked for '
			    || (a.starts_at at time zone c.timezone)::date
			    from vialwatch.appointment a
			    where a.patient_id = t.patient_id
				and a.status = 'booked' and a.starts_at > p_now
			    order by a.starts_at limit 1)
			union all
			select 6, 'skipped', (select 'step ' || max(l.step)
			    || ' is due as well'
			    from vialwatch.reminder l
			    where l.treatment_id = cl.treatment_id
				and l.step > cl.step and l.due_at <= p_now
			    having count(*) > 0)
			union all
			select 7, 'skipped', 'too late: due on ' || (cl.due_at
			    at time zone c.timezone)::date || ', decided on '
			    || (p_now at time zone c.timezone)::date
			where cl.due_at < p_now - vialwatch.reminder_late()
			union all
			select 8, 'sent', null
		) x
		where x.status = 'sent' or x.reason is not null
	), verdict as (
		-- The first reason that applies, in the order above.
		select distinct on (d.id) d.*
		from decided d
		order by d.id, d.prio
	), queued as (
		insert into vialwatch.notification (channel, recipient,
		    subject, body, dedupe_key, reminder_id)
		select 'email', f.email, null, f.vars::text,
		    'reminder:' || f.id, f.id
		from verdict f
		where f.status = 'sent'
		on conflict (dedupe_key) do nothing
	), updated as (
		update vialwatch.reminder r
		set status = f.status, reason = f.reason, decided_at = p_now
		from verdict f
		where r.id = f.id
		returning r.id, r.status, r.reason
	)
	select u.id, u.status, u.reason from updated u;
end
$$;

-- Delivery -------------------------------------------------------------------

-- A reminder's email delivered sets the reminder's sent_at; one that can
-- never be delivered turns the reminder to skipped, with the error.
create function vialwatch.notification_reminder()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
	update vialwatch.reminder r
	set sent_at = case when new.status = 'sent' then new.sent_at
		else r.sent_at end,
	    status = case when new.status = 'dead' then 'skipped'
		else r.status end,
	    reason = case when new.status = 'dead' then
		left('undeliverable: ' || new.last_error, 1000)
		else r.reason end
	where r.id = new.reminder_id;
	return null;
end
$$;

create trigger notification_reminder
	after update of status on vialwatch.notification
	for each row
	when (new.reminder_id is not null and new.status in ('sent', 'dead')
	    and old.status is distinct from new.status)
	execute function vialwatch.notification_reminder();

-- The claim of 006, and the reminders' emails only while their clinic's
-- send window [p_start, p_end) is open at p_now, so that a retry does not
-- reach a patient at night; with p_start null (a daemon without signed
-- links) no reminder email at all.
create function vialwatch.notification_claim(p_limit integer,
    p_lease interval, p_channels text[], p_start integer, p_end integer,
    p_now timestamptz)
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
		    and (d.reminder_id is null or exists (
			select from vialwatch.reminder r
			join vialwatch.treatment t on t.id = r.treatment_id
			join vialwatch.patient p on p.id = t.patient_id
			join vialwatch.clinic c on c.id = p.clinic_id
			where r.id = d.reminder_id
			    and vialwatch.send_window_open(c.timezone, p_now,
				p_start, p_end)))
		order by d.next_attempt_at, d.id
		limit p_limit
		for update skip locked)
	returning n.id, n.channel, n.recipient, n.subject, n.body, n.attempts,
	    n.excursion_id, n.reminder_id, n.dedupe_key,
	    extract(epoch from clock_timestamp() - n.created_at)::float8
$$;

-- The claim of 006, for a daemon that knows nothing of reminders: every
-- other row, as before.
create or replace function vialwatch.notification_claim(p_limit integer,
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
	select * from vialwatch.notification_claim(p_limit, p_lease,
	    p_channels, null, null, now())
$$;

-- Unsubscribe ----------------------------------------------------------------

-- The unsubscribe page of a patient: clinic, first name, and since when
-- unsubscribed (null while subscribed).  No row: no such patient.
create function vialwatch.patient_unsubscribe_page(p_id bigint)
returns table (clinic text, first_name text, unsubscribed_at text)
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	select c.name, p.first_name, to_char(p.unsubscribed_at at time zone
	    c.timezone, 'YYYY-MM-DD HH24:MI')
	from vialwatch.patient p
	join vialwatch.clinic c on c.id = p.clinic_id
	where p.id = p_id
$$;

-- A patient who unsubscribes, withdraws consent or changes address gets
-- none of the reminder emails queued for them: those not sent yet are
-- dropped, and their reminders, and the pending ones, say why.
create function vialwatch.patient_reminders_stop()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	v_why text;
	v_status text := 'cancelled';
	v_killed bigint[];
begin
	if new.unsubscribed_at is not null and old.unsubscribed_at is null then
		v_why := 'unsubscribed on ' || (select (new.unsubscribed_at
		    at time zone c.timezone)::date
		    from vialwatch.clinic c where c.id = new.clinic_id);
	elsif old.email_consent and not new.email_consent then
		v_why := 'email consent withdrawn';
		v_status := 'skipped';
	elsif new.email is distinct from old.email then
		v_why := 'email address changed before the reminder was sent';
		v_status := 'skipped';
	else
		return null;
	end if;

	with killed as (
		update vialwatch.notification n
		set status = 'dead', last_error = v_why
		from vialwatch.reminder r, vialwatch.treatment t
		where r.id = n.reminder_id and t.id = r.treatment_id
		    and t.patient_id = new.id
		    and n.status in ('pending', 'failed')
		returning n.reminder_id
	)
	select coalesce(array_agg(k.reminder_id), '{}') into v_killed
	from killed k;

	-- After the notification_reminder trigger of the rows just killed.
	update vialwatch.reminder r
	set status = v_status, reason = v_why
	from vialwatch.treatment t
	where t.id = r.treatment_id and t.patient_id = new.id
	    and (r.status = 'pending' or r.id = any (v_killed));
	return null;
end
$$;

create trigger patient_reminders_stop
	after update of unsubscribed_at, email_consent, email
	on vialwatch.patient
	for each row
	execute function vialwatch.patient_reminders_stop();

-- The patient asked for no more reminders: unsubscribed_at is set once
-- (the trigger above stops what is queued).
-- Returns the patient's clinic, when unsubscribed and whether just now;
-- no row for no such patient.
create function vialwatch.patient_unsubscribe(p_id bigint)
returns table (clinic text, unsubscribed_at text, unsubscribed_now boolean)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	v_now boolean;
begin
	update vialwatch.patient p
	set unsubscribed_at = now()
	where p.id = p_id and p.unsubscribed_at is null;
	v_now := found;

	return query
	select c.name, to_char(p.unsubscribed_at at time zone c.timezone,
	    'YYYY-MM-DD HH24:MI'), v_now
	from vialwatch.patient p
	join vialwatch.clinic c on c.id = p.clinic_id
	where p.id = p_id;
end
$$;

-- Privileges -----------------------------------------------------------------

revoke all on function vialwatch.reminder_scan(integer, integer, timestamptz,
    integer, boolean),
    vialwatch.notification_claim(integer, interval, text[], integer, integer,
    timestamptz),
    vialwatch.patient_unsubscribe(bigint)
    from public;
grant execute on function vialwatch.reminder_scan(integer, integer,
    timestamptz, integer, boolean), vialwatch.patient_unsubscribe(bigint),
    vialwatch.notification_claim(integer, interval, text[], integer, integer,
    timestamptz)
    to vialwatch_daemon, vialwatch_admin;
grant execute on function vialwatch.send_window_open(text, timestamptz,
    integer, integer), vialwatch.reminder_late(), vialwatch.patient_unsubscribe_page(bigint)
    to vialwatch_daemon, vialwatch_admin, vialwatch_readonly;
