-- The audit trail (013) over the tables of the record that came beside
-- it: the workday checks and holidays, the excursions' close-out and the
-- lots' dispositions (014), the probes' calibration certificates and
-- offsets (015).

create trigger daily_check_audit
	after insert or update or delete on vialwatch.daily_check
	for each row execute function vialwatch.audit_trigger('*');

create trigger holiday_audit
	after insert or update or delete on vialwatch.holiday
	for each row execute function vialwatch.audit_trigger('*');

create trigger excursion_lot_audit
	after insert or update or delete on vialwatch.excursion_lot
	for each row execute function vialwatch.audit_trigger('*');

create trigger calibration_audit
	after insert or update or delete on vialwatch.calibration
	for each row execute function vialwatch.audit_trigger('*');

create trigger sensor_offset_audit
	after insert or update or delete on vialwatch.sensor_offset
	for each row execute function vialwatch.audit_trigger('*');

-- The acknowledgement and, now, the close-out of an excursion.
drop trigger excursion_audit on vialwatch.excursion;
create trigger excursion_audit
	after update on vialwatch.excursion
	for each row execute function vialwatch.audit_trigger('acked_at',
	    'acked_by', 'action_note', 'acked_contact', 'acked_contact_id',
	    'out_minutes_est', 'room_c', 'cause', 'preventive_action',
	    'manufacturer_contacted_by', 'manufacturer_contacted_at',
	    'manufacturer_case', 'manufacturer_guidance', 'closed_out_at',
	    'closed_out_by');

-- Maintenance windows (016) are part of the record too.
create trigger maintenance_audit
	after insert or update or delete on vialwatch.maintenance
	for each row execute function vialwatch.audit_trigger('*');

-- The email about excursion e: the door, power and warning messages of
-- 016, the calibration note of 015, and how to acknowledge, naming a
-- contact (013: --by takes an email address or id).
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
	body := m.body || coalesce(vialwatch.calibration_mail_note(what,
	    e.fridge_id), '');
	if what in ('alarm', 'offline') and e.kind <> 'warning' then
		body := body || format(e'\nAcknowledge it, with the corrective '
		    'action taken, on this page:\n  {{ack_url}}\n'
		    'or with: vialwatchctl ack %s --by EMAIL --note TEXT\n'
		    'Until then this message is repeated, and sent on to '
		    'more people.\n', e.id);
	end if;
end;
$$;

-- 013 replaced the acknowledgement: like the other page functions (012)
-- it runs as its owner, for the pages' role vialwatch_web.
alter function vialwatch.excursion_ack(bigint, text, text, text)
	security definer;
