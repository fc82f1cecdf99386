-- The public pages' own role: vialwatch_web.
--
-- The acknowledge and unsubscribe pages answer anyone on the network.  The
-- daemon gives them a database connection of their own (not the outbox's,
-- not the ingest's), which works as role vialwatch_web: it connects with
-- [http] conninfo (by default the [database] conninfo) and then sets role
-- vialwatch_web.  That role may run the page functions and nothing else:
-- no table, no other function.  The page functions run with the rights of
-- their owner (security definer), with a fixed search_path, and only the
-- daemon, the admins and vialwatch_web may execute them.
--
-- A login may take the role when it is a member of vialwatch_web: members
-- of vialwatch_daemon are (granted below), and so is a login made for the
-- pages alone:
--   create role vialwatch_pages login password '...' in role vialwatch_web;
-- named in [http] conninfo.
--
-- A new page function is granted to the role in its migration with:
--   alter function vialwatch.f(argtypes) security definer;
--   revoke all on function vialwatch.f(argtypes) from public;
--   grant execute on function vialwatch.f(argtypes)
--       to vialwatch_web, vialwatch_daemon, vialwatch_admin;

do $$
begin
	if not exists (select from pg_catalog.pg_roles
	    where rolname = 'vialwatch_web') then
		create role vialwatch_web nologin;
	end if;
end;
$$;

grant usage on schema vialwatch to vialwatch_web;
grant vialwatch_web to vialwatch_daemon;

alter function vialwatch.excursion_ack(bigint, text, text, text)
	security definer;
alter function vialwatch.excursion_ack_page(bigint) security definer;
alter function vialwatch.patient_unsubscribe(bigint) security definer;
alter function vialwatch.patient_unsubscribe_page(bigint) security definer;

revoke all on function vialwatch.excursion_ack(bigint, text, text, text),
    vialwatch.excursion_ack_page(bigint),
    vialwatch.patient_unsubscribe(bigint),
    vialwatch.patient_unsubscribe_page(bigint)
    from public;
grant execute on function vialwatch.excursion_ack(bigint, text, text, text),
    vialwatch.excursion_ack_page(bigint),
    vialwatch.patient_unsubscribe(bigint),
    vialwatch.patient_unsubscribe_page(bigint)
    to vialwatch_web, vialwatch_daemon, vialwatch_admin;
