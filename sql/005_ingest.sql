-- 005_ingest.sql: readings are written without a check per row against
-- vialwatch.sensor.
--
-- The daemon takes each reading's sensor_id from vialwatch.sensor in the
-- statement that inserts it, so the foreign key only re-checked what the
-- join had just found, at a third of the database's time per reading
-- (contrib/bench).  What the key also did, refusing to delete a sensor
-- that has readings, a trigger on vialwatch.sensor does now: readings are
-- the record an inspector asks for and must outlive any cleanup.

alter table vialwatch.reading drop constraint reading_sensor_id_fkey;

create function vialwatch.sensor_keep_readings()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
	if exists (select from vialwatch.reading where sensor_id = old.id) then
		raise exception 'sensor % (%) has readings, which must be kept',
		    old.id, old.key
		    using errcode = 'foreign_key_violation';
	end if;
	return old;
end
$$;

create trigger sensor_keep_readings
	before delete on vialwatch.sensor
	for each row execute function vialwatch.sensor_keep_readings();
