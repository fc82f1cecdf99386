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
