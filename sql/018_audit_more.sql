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
