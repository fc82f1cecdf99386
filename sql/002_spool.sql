-- 002: the spool replays what the database may already have.
--
-- After a crash the daemon sends again every record of its spool past the
-- last commit it saw; readings are unique per (sensor_id, ts) already, and
-- this makes a refused message, stored with its arrival time to the
-- microsecond, unique too, so that a replay does not store it twice.

create unique index rejected_message_once
	on vialwatch.rejected_message (received_at, topic, md5(payload));
