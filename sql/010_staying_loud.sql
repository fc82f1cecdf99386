-- 010_staying_loud.sql: alarms that nothing can silence.
--
--  * The outbox stays cheap as it grows: indexes for what escalate(), the
--    claim and the cascading foreign keys look up, and sent or dead rows
--    older than [alerts] keep_notifications moved to
--    vialwatch.notification_archive, where their dedupe_key still stops a
--    second send.
--  * Alarms first: each row has a priority (0 alarms, escalations, offline,
--    recoveries, the daemons' own silence; 1 warnings such as low
--    batteries; 2 patient reminders), and the claim takes the most urgent
--    due rows first.
--  * Inspection records are not dropped by a typo: the daemon no longer
--    drops reading partitions nor updates readings; vialwatchctl
--    partitions --apply, run by an admin, drops a partition only a day
--    after it was first found past the retention.
--  * Someone hears when vialwatch itself is gone: every daemon writes a
--    heartbeat; any other daemon, or vialwatchctl watchdog, emails the
--    clinics' admin contacts when one falls silent, and when it is back.
--
-- Run by "vialwatchctl migrate" in one transaction, like 001_init.sql.

-- Indexes ---------------------------------------------------------------------

-- escalate() and excursion_notify(): who was told of an excursion, when.
create index notification_excursion
	on vialwatch.notification (excursion_id, channel, recipient);
-- The cascade from vialwatch.reminder and the reminders' triggers.
create index notification_reminder_id on vialwatch.notification (reminder_id)
	where reminder_id is not null;
-- The cascade from vialwatch.patient (appointment_booked is partial).
create index appointment_patient_id on vialwatch.appointment (patient_id);
-- The outbox counts of /metrics and status: what is not sent.
create index notification_unsent on vialwatch.notification (channel, status)
	where status <> 'sent';
-- What the archive moves: done rows, oldest first.
create index notification_done_at on vialwatch.notification (created_at)
	where status in ('sent', 'dead');

-- Alarms first ----------------------------------------------------------------

alter table vialwatch.notification
	add column priority smallint not null default 1
	    constraint notification_priority_check check (priority between 0 and 9);

comment on column vialwatch.notification.priority is
	'0 alarms, escalations, offline, recoveries and daemons gone silent; '
	'1 warnings (low battery); 2 patient reminders. Lower is claimed first.';

-- The priority of a row about an excursion or a reminder, from what it is
-- about; other rows keep the one they were inserted with (default 1).
create function vialwatch.notification_priority(p_excursion bigint,
    p_reminder bigint, p_given smallint)
returns smallint
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	select case
	    when p_reminder is not null then 2::smallint
	    when p_excursion is not null then coalesce((
		select case when x.kind in ('battery', 'warning') then 1
		    else 0 end::smallint
		from vialwatch.excursion x where x.id = p_excursion),
		p_given)
	    else p_given end
$$;

update vialwatch.notification n
set priority = vialwatch.notification_priority(n.excursion_id,
    n.reminder_id, n.priority)
where n.status in ('pending', 'failed');

drop index vialwatch.notification_due;
create index notification_due
	on vialwatch.notification (priority, next_attempt_at, id)
	where status in ('pending', 'failed');

-- Archive ---------------------------------------------------------------------

-- Sent and dead notifications older than [alerts] keep_notifications, as
-- they were in vialwatch.notification (without the foreign keys: the
-- excursion or reminder they were about may be deleted later).
create table vialwatch.notification_archive (
	like vialwatch.notification including defaults including constraints,
	archived_at	timestamptz not null default now(),
	primary key (id),
	unique (dedupe_key)
);

create index notification_archive_excursion
	on vialwatch.notification_archive (excursion_id)
	where excursion_id is not null;
create index notification_archive_created_at
	on vialwatch.notification_archive using brin (created_at);

-- A row coming into the outbox: one whose dedupe_key was sent long ago and
-- archived is not queued again (it is dropped here, as a conflict on the
-- hot table's key would be by "on conflict (dedupe_key) do nothing"); the
-- others get their priority.
create function vialwatch.notification_admit()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
	if exists (select from vialwatch.notification_archive a
	    where a.dedupe_key = new.dedupe_key) then
		return null;
	end if;
	new.priority := vialwatch.notification_priority(new.excursion_id,
	    new.reminder_id, new.priority);
	return new;
end
$$;

create trigger notification_admit
	before insert on vialwatch.notification
	for each row execute function vialwatch.notification_admit();

-- Move up to p_limit sent or dead rows created more than p_keep ago into
-- the archive, oldest first; rows of an excursion still open stay (the
-- escalation counts from its first email).  Several daemons may run it at
-- once.  Returns the number of rows moved.  Security definer: the daemon
-- may not delete notifications itself.
create function vialwatch.notification_archive_move(p_keep interval,
    p_limit integer)
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
	n	integer;
begin
	if p_keep is null or p_keep < interval '1 day' then
		raise exception 'notification_archive_move: keep % is under '
		    '1 day', p_keep using errcode = 'invalid_parameter_value';
	end if;
	with moved as (
		delete from vialwatch.notification n
		where n.id in (
			select d.id from vialwatch.notification d
			where d.status in ('sent', 'dead')
			    and d.created_at < now() - p_keep
			    and not exists (select from vialwatch.excursion x
				where x.id = d.excursion_id
				    and x.ended_at is null)
			order by d.created_at
			limit greatest(p_limit, 1)
			for update skip locked)
		returning n.*
	)
	insert into vialwatch.notification_archive
	select (jsonb_populate_record(null::vialwatch.notification_archive,
	    to_jsonb(m) || jsonb_build_object('archived_at', now()))).*
	from moved m;
	get diagnostics n = row_count;
	return n;
end
$$;

-- Every notification, the hot ones and the archived.
create view vialwatch.notification_history as
select n.id, n.channel, n.recipient, n.subject, n.body, n.dedupe_key,
    n.status, n.attempts, n.next_attempt_at, n.last_error, n.created_at,
    n.sent_at, n.excursion_id, n.reminder_id, n.priority,
    null::timestamptz as archived_at
from vialwatch.notification n
union all
select a.id, a.channel, a.recipient, a.subject, a.body, a.dedupe_key,
    a.status, a.attempts, a.next_attempt_at, a.last_error, a.created_at,
    a.sent_at, a.excursion_id, a.reminder_id, a.priority, a.archived_at
from vialwatch.notification_archive a;

-- The claim of 007, most urgent first: the 6-argument form that the
-- daemon calls (the 3-argument one of 006 calls it).
create or replace function vialwatch.notification_claim(p_limit integer,
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
		order by d.priority, d.next_attempt_at, d.id
		limit p_limit
		for update skip locked)
	returning n.id, n.channel, n.recipient, n.subject, n.body, n.attempts,
	    n.excursion_id, n.reminder_id, n.dedupe_key,
	    extract(epoch from clock_timestamp() - n.created_at)::float8
$$;

-- Retention: drops wait a day, and only an admin drops ------------------------

-- The month partitions of vialwatch.reading found past the retention, and
-- when first: vialwatchctl partitions --apply drops one only a day after.
create table vialwatch.reading_partition_expiry (
	partition	text primary key,
	month		text not null,
	noticed_at	timestamptz not null default now(),
	retention	interval not null
);

-- The maintenance of 008 with p_drop: made ahead as before; every month
-- partition past the retention (and holding no younger row) is noticed
-- first, then dropped when p_drop is set and it was noticed more than a
-- day ago.  A partition no longer past it (the retention was raised) is
-- forgotten.  action is "created", "dropped" or "expiring" (noticed, with
-- drop_after the earliest time it may be dropped).
create function vialwatch.reading_partitions_maintain(p_retention interval,
    p_ahead integer, p_drop boolean)
returns table (action text, partition text, month text,
    drop_after timestamptz)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
set lock_timeout = '20s'
as $$
declare
	v_boundary	timestamptz;
	v_this		date;
	v_part		record;
	v_young		boolean;
	v_noticed	timestamptz;
	m		integer;
begin
	if p_retention is null or p_retention < interval '1 day' then
		raise exception 'reading_partitions_maintain: retention % is '
		    'under 1 day', p_retention
		    using errcode = 'invalid_parameter_value';
	end if;
	if p_ahead is null or p_ahead < 0 or p_ahead > 120 then
		raise exception 'reading_partitions_maintain: ahead % is not '
		    '0 to 120 months', p_ahead
		    using errcode = 'invalid_parameter_value';
	end if;
	perform pg_advisory_xact_lock(
	    hashtext('vialwatch.reading_partition_create'));
	v_boundary := now() - p_retention;
	v_this := date_trunc('month', now() at time zone 'UTC')::date;

	-- See 008: with catalogue work to do, the whole table first.
	if exists (select from generate_series(0, p_ahead) g
	    where to_regclass(format('vialwatch.reading_y%s',
	    to_char(v_this + make_interval(months => g), 'YYYY"m"MM')))
	    is null) or (p_drop and exists (
	    select from vialwatch.reading_partition p
	    join vialwatch.reading_partition_expiry x on x.partition = p.name
	    where not p.is_default and p.upper_bound <= v_boundary
		and x.noticed_at <= now() - interval '1 day')) then
		lock table vialwatch.reading in access exclusive mode;
	end if;

	drop_after := null;
	for m in 0 .. p_ahead loop
		if vialwatch.reading_partition_create(
		    (v_this + make_interval(months => m))::date) then
			action := 'created';
			month := to_char(v_this + make_interval(months => m),
			    'YYYY-MM');
			partition := format('reading_y%sm%s',
			    substr(month, 1, 4), substr(month, 6, 2));
			return next;
		end if;
	end loop;

	delete from vialwatch.reading_partition_expiry x
	where not exists (select from vialwatch.reading_partition p
	    where p.name = x.partition and not p.is_default
		and p.upper_bound <= v_boundary);

	for v_part in select p.name, p.lower_bound
	    from vialwatch.reading_partition p
	    where not p.is_default and p.upper_bound <= v_boundary
	    order by p.lower_bound loop
		-- The bounds say no row can be young; a look costs little.
		execute format('select exists (select from vialwatch.%I '
		    'where ts >= $1)', v_part.name) into v_young
		    using v_boundary;
		continue when v_young;
		month := to_char(v_part.lower_bound at time zone 'UTC',
		    'YYYY-MM');
		partition := v_part.name;
		insert into vialwatch.reading_partition_expiry as x
		    (partition, month, retention)
		values (v_part.name, month, p_retention)
		on conflict on constraint reading_partition_expiry_pkey
		do update set retention = excluded.retention
		returning x.noticed_at into v_noticed;
		if p_drop and v_noticed <= now() - interval '1 day' then
			execute format('alter table vialwatch.reading detach '
			    'partition vialwatch.%I', v_part.name);
			execute format('drop table vialwatch.%I', v_part.name);
			delete from vialwatch.reading_partition_expiry x
			where x.partition = v_part.name;
			action := 'dropped';
			drop_after := null;
		else
			action := 'expiring';
			drop_after := v_noticed + interval '1 day';
		end if;
		return next;
	end loop;
end
$$;

-- The 2-argument form of 008 (vialwatchctl partitions --apply of earlier
-- versions): the same, dropping only what waited its day.
create or replace function vialwatch.reading_partitions_maintain(
    p_retention interval, p_ahead integer)
returns table (action text, partition text, month text)
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
	select m.action, m.partition, m.month
	from vialwatch.reading_partitions_maintain(p_retention, p_ahead, true) m
	where m.action <> 'expiring'
$$;

-- The daemon's part: make partitions ahead and notice expiring ones.
create function vialwatch.reading_partitions_ahead(p_retention interval,
    p_ahead integer)
returns table (action text, partition text, month text,
    drop_after timestamptz)
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
	select * from vialwatch.reading_partitions_maintain(p_retention,
	    p_ahead, false)
$$;

revoke all on function vialwatch.reading_partitions_maintain(interval,
    integer), vialwatch.reading_partitions_maintain(interval, integer,
    boolean), vialwatch.reading_partitions_ahead(interval, integer)
    from public, vialwatch_daemon;
grant execute on function vialwatch.reading_partitions_maintain(interval,
    integer), vialwatch.reading_partitions_maintain(interval, integer,
    boolean) to vialwatch_admin;
grant execute on function vialwatch.reading_partitions_ahead(interval,
    integer) to vialwatch_daemon, vialwatch_admin;

-- Readings are evidence: the daemon inserts them, never changes them.
revoke update on vialwatch.reading from vialwatch_daemon;

-- Daemons' heartbeats ---------------------------------------------------------

-- One row per daemon (named by its [mqtt] client_id), beaten every few
-- seconds.  silent_since is set to the last beat once the daemon was
-- reported silent to the admins, and cleared when it was reported back.
create table vialwatch.daemon_heartbeat (
	name		text primary key,
	host		text not null,
	pid		integer not null,
	version		text,
	started_at	timestamptz not null,
	beat_at		timestamptz not null default now(),
	silent_since	timestamptz
);

grant insert, update (host, pid, version, started_at, beat_at, silent_since)
	on vialwatch.daemon_heartbeat to vialwatch_daemon;

-- A beat of daemon p_name.
create function vialwatch.daemon_beat(p_name text, p_host text,
    p_pid integer, p_version text, p_started timestamptz)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
	insert into vialwatch.daemon_heartbeat as h (name, host, pid, version,
	    started_at, beat_at)
	values (p_name, p_host, p_pid, p_version, p_started, now())
	on conflict (name) do update
	set host = excluded.host, pid = excluded.pid,
	    version = excluded.version, started_at = excluded.started_at,
	    beat_at = excluded.beat_at
$$;

-- Queue the email "what" ('silent' or 'back') about daemon h to every
-- active admin contact (contact.roles holds 'admin') of every clinic, once
-- per address and event (p_since names the event: the last beat heard).
create function vialwatch.daemon_tell(what text, h vialwatch.daemon_heartbeat,
    p_since timestamptz)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	v_subject	text;
	v_body		text;
	v_gone		text;
	n		integer;
begin
	v_gone := vialwatch.excursion_duration_text(
	    extract(epoch from now() - p_since) / 60);
	if what = 'silent' then
		v_subject := format('vialwatch daemon %s on %s is silent',
		    h.name, h.host);
		v_body := format(e'The vialwatch daemon %s (host %s, pid %s) '
		    'has written no heartbeat since %s UTC (%s ago).\n\n'
		    'While it is away, the readings of its sensors may not be '
		    'stored, and their alarms may not be raised or sent.\n'
		    'Check it on %s, for instance with: '
		    'systemctl status vialwatchd\n\n'
		    'Another email follows when it is back.\n',
		    h.name, h.host, h.pid,
		    to_char(p_since at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
		    v_gone, h.host);
	elsif what = 'back' then
		v_subject := format('vialwatch daemon %s on %s is back',
		    h.name, h.host);
		v_body := format(e'The vialwatch daemon %s (host %s, pid %s) '
		    'is writing heartbeats again, after silence from %s UTC '
		    '(%s in all).\n',
		    h.name, h.host, h.pid,
		    to_char(p_since at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
		    vialwatch.excursion_duration_text(
		    extract(epoch from h.beat_at - p_since) / 60));
	else
		raise exception 'daemon_tell: unknown message "%"', what
		    using errcode = 'invalid_parameter_value';
	end if;
	v_subject := regexp_replace(v_subject, '[[:cntrl:]]+', ' ', 'g');
	insert into vialwatch.notification (channel, recipient, subject, body,
	    dedupe_key, priority)
	select 'email', a.email, v_subject, v_body,
	    format('daemon:%s:%s:%s:to:%s', h.name, what,
	    extract(epoch from p_since), a.email), 0
	from (select distinct lower(ct.email) as email
	    from vialwatch.contact ct
	    where ct.active and 'admin' = any (ct.roles)) a
	order by a.email
	on conflict (dedupe_key) do nothing;
	get diagnostics n = row_count;
	return n;
end
$$;

-- Every daemon's heartbeat, as seen now with p_silent the time after which
-- it counts as gone.  Daemons newly silent (other than p_self, the caller)
-- and newly back are reported to the admins once (daemon_tell); reported
-- says which this call reported.  Run by every daemon, and by
-- vialwatchctl watchdog (p_self null).
create function vialwatch.daemon_watch(p_silent interval, p_self text)
returns table (name text, host text, pid integer, version text,
    started_at timestamptz, beat_at timestamptz, silent boolean,
    reported text, queued integer)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	h	vialwatch.daemon_heartbeat;
	r	record;
	v_told	jsonb := '{}';
begin
	if p_silent is null or p_silent <= interval '0' then
		raise exception 'daemon_watch: silence % is not positive',
		    p_silent using errcode = 'invalid_parameter_value';
	end if;
	for h in
		update vialwatch.daemon_heartbeat d set silent_since = d.beat_at
		where d.name in (select s.name
		    from vialwatch.daemon_heartbeat s
		    where s.silent_since is null
			and s.beat_at < now() - p_silent
			and s.name is distinct from p_self
		    for update skip locked)
		returning d.*
	loop
		v_told := v_told || jsonb_build_object(h.name, jsonb_build_array(
		    'silent', vialwatch.daemon_tell('silent', h, h.beat_at)));
	end loop;
	for r in
		with b as (
			select s.name, s.silent_since
			from vialwatch.daemon_heartbeat s
			where s.silent_since is not null
			    and s.beat_at > s.silent_since
			for update skip locked)
		update vialwatch.daemon_heartbeat d set silent_since = null
		from b where d.name = b.name
		returning d.name, b.silent_since
	loop
		select * into h from vialwatch.daemon_heartbeat d
		where d.name = r.name;
		v_told := v_told || jsonb_build_object(h.name, jsonb_build_array(
		    'back', vialwatch.daemon_tell('back', h, r.silent_since)));
	end loop;
	return query
	select d.name, d.host, d.pid, d.version, d.started_at, d.beat_at,
	    d.beat_at < now() - p_silent, v_told -> d.name ->> 0,
	    (v_told -> d.name ->> 1)::integer
	from vialwatch.daemon_heartbeat d
	order by d.name;
end
$$;

-- A daemon taken out of service for good: its heartbeat is forgotten, and
-- nobody is told of its silence any more.
create function vialwatch.daemon_forget(p_name text)
returns boolean
language sql
set search_path = pg_catalog, pg_temp
as $$
	with d as (
		delete from vialwatch.daemon_heartbeat h where h.name = p_name
		returning 1
	)
	select exists (select from d)
$$;

revoke all on function vialwatch.daemon_beat(text, text, integer, text,
    timestamptz), vialwatch.daemon_tell(text, vialwatch.daemon_heartbeat,
    timestamptz), vialwatch.daemon_watch(interval, text),
    vialwatch.daemon_forget(text), vialwatch.notification_archive_move(
    interval, integer)
    from public;
revoke execute on function vialwatch.daemon_forget(text) from vialwatch_daemon;
grant execute on function vialwatch.daemon_forget(text) to vialwatch_admin;
grant execute on function vialwatch.daemon_beat(text, text, integer, text,
    timestamptz), vialwatch.daemon_tell(text, vialwatch.daemon_heartbeat,
    timestamptz), vialwatch.daemon_watch(interval, text),
    vialwatch.notification_archive_move(interval, integer)
    to vialwatch_daemon, vialwatch_admin;
