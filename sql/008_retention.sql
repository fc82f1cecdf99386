-- Retention of vialwatch.reading: month partitions made ahead, and those
-- wholly older than the retention ([database] retention, 3 years by
-- default: the CDC asks for temperature logs kept at least 3 years)
-- detached and dropped.  Run by every daemon at start and daily, and by
-- "vialwatchctl partitions --apply".

-- The partitions of vialwatch.reading with their bounds (null for
-- reading_default) and the planner's row estimate (null before the first
-- vacuum or analyze).
create view vialwatch.reading_partition as
select c.relname::text as name,
    b.bounds[1]::timestamptz as lower_bound,
    b.bounds[2]::timestamptz as upper_bound,
    case when c.reltuples >= 0 then c.reltuples::bigint end as rows_estimate,
    c.relpartbound is not null
	and pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
	as is_default
from pg_catalog.pg_inherits i
join pg_catalog.pg_class c on c.oid = i.inhrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
cross join lateral (select pg_catalog.regexp_match(
    pg_catalog.pg_get_expr(c.relpartbound, c.oid),
    '^FOR VALUES FROM \(''([^'']*)''\) TO \(''([^'']*)''\)$') as bounds) b
where i.inhparent = 'vialwatch.reading'::regclass and n.nspname = 'vialwatch';

-- Create the partitions of this month and the p_ahead next ones (UTC
-- months), then drop every month partition whose whole month ended before
-- now() - p_retention and that holds no row younger than that.
-- reading_default and partitions of other shapes are never dropped.
-- Returns one row per partition created or dropped.  Security definer:
-- the daemon has no DDL rights.  Several daemons may call it at once: it
-- waits for the lock reading_partition_create() takes too.
create function vialwatch.reading_partitions_maintain(p_retention interval,
    p_ahead integer)
returns table (action text, partition text, month text)
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

	-- Attaching locks reading_default and detaching the parent: a batch
	-- of readings holding the parent and waiting for reading_default
	-- would deadlock with us.  So when there is work, the whole table is
	-- taken first, for the few milliseconds the catalogue changes last.
	if exists (select from generate_series(0, p_ahead) g
	    where to_regclass(format('vialwatch.reading_y%s',
	    to_char(v_this + make_interval(months => g), 'YYYY"m"MM')))
	    is null) or exists (select from vialwatch.reading_partition p
	    where not p.is_default and p.upper_bound <= v_boundary) then
		lock table vialwatch.reading in access exclusive mode;
	end if;

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

	for v_part in select p.name, p.lower_bound
	    from vialwatch.reading_partition p
	    where not p.is_default and p.upper_bound <= v_boundary
	    order by p.lower_bound loop
		-- The bounds say no row can be young; a look costs little.
		execute format('select exists (select from vialwatch.%I '
		    'where ts >= $1)', v_part.name) into v_young
		    using v_boundary;
		continue when v_young;
		execute format('alter table vialwatch.reading detach '
		    'partition vialwatch.%I', v_part.name);
		execute format('drop table vialwatch.%I', v_part.name);
		action := 'dropped';
		partition := v_part.name;
		month := to_char(v_part.lower_bound at time zone 'UTC',
		    'YYYY-MM');
		return next;
	end loop;
end
$$;

revoke all on function vialwatch.reading_partitions_maintain(interval,
    integer) from public;
grant execute on function vialwatch.reading_partitions_maintain(interval,
    integer) to vialwatch_daemon, vialwatch_admin;
grant select on vialwatch.reading_partition
    to vialwatch_daemon, vialwatch_admin, vialwatch_readonly;
