-- People behind the record: what each contact is for, and who an action
-- is done by.
--
-- contact.roles: 'alerts' (paged for excursions, by tier), 'checks' (does
-- the workday min/max check), 'admin' (told of the clinic's own problems:
-- a silent daemon, lapsing calibrations, missed checks, open close-outs).
--
-- Whoever changes the record is named in session settings that the audit
-- trail reads: vialwatch.actor_contact_id (a contact's id),
-- vialwatch.actor_os_user (the operating-system user of vialwatchctl) and
-- vialwatch.reason (why).  vialwatchctl sets them from --by and --reason
-- (vialwatch.actor_set); the daemon's pages set them for the person whose
-- signed link was used.

alter table vialwatch.contact
	add column roles text[] not null default '{alerts}'
	    constraint contact_roles_check check (cardinality(roles) > 0
		and roles <@ array['alerts', 'checks', 'admin']::text[]);

-- The contact that p_who names: an id, or an email address (any case).
-- Null when nobody matches; an error when an email matches contacts of
-- several clinics and no clinic narrows it.
create function vialwatch.contact_find(p_who text, p_clinic_id bigint default null)
returns bigint
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
	v_ids bigint[];
begin
	p_who := btrim(coalesce(p_who, ''));
	if p_who ~ '^[0-9]{1,18}$' then
		select array_agg(id) into v_ids from vialwatch.contact
		where id = p_who::bigint
		    and (p_clinic_id is null or clinic_id = p_clinic_id);
	elsif position('@' in p_who) > 1 then
		select array_agg(id order by id) into v_ids from vialwatch.contact
		where lower(email) = lower(p_who)
		    and (p_clinic_id is null or clinic_id = p_clinic_id);
	end if;
	if v_ids is null then
		return null;
	end if;
	if cardinality(v_ids) > 1 then
		raise exception '"%" is a contact of several clinics: name the contact by id', p_who
		    using errcode = '22023';
	end if;
	return v_ids[1];
end;
$$;

-- Name the person acting for the rest of this session (p_local: this
-- transaction only): the contact p_who names, the operating-system user
-- and the reason.  An unknown p_who is refused.  Returns the contact's id.
create function vialwatch.actor_set(p_who text, p_os_user text,
    p_reason text, p_local boolean default false)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
	v_id bigint := vialwatch.contact_find(p_who);
begin
	if v_id is null then
		raise exception 'nobody known as "%": name a contact by email or id', p_who
		    using errcode = '22023',
		    hint = 'vialwatchctl contacts lists them; psql: table vialwatch.contact';
	end if;
	perform set_config('vialwatch.actor_contact_id', v_id::text, p_local);
	perform set_config('vialwatch.actor_os_user', coalesce(p_os_user, ''), p_local);
	perform set_config('vialwatch.reason', coalesce(p_reason, ''), p_local);
	return v_id;
end;
$$;

-- The acting contact named by vialwatch.actor_set, or null.
create function vialwatch.actor_contact_id()
returns bigint
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	select nullif(current_setting('vialwatch.actor_contact_id', true), '')::bigint
$$;

-- The reason given for the change being made, or null.
create function vialwatch.actor_reason()
returns text
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
	select nullif(btrim(current_setting('vialwatch.reason', true)), '')
$$;
