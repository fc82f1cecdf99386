/*
 * vialwatchctl import calibrations: the certificates of many probes from a
 * laboratory's or a spreadsheet's CSV, checked like the other imports
 * (ctl-import.c) and written all or nothing.  A certificate is never
 * changed: one already recorded for the probe is left as it is when the
 * row says the same, and refused when it says something else.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stddef.h>

#include <libpq-fe.h>

#include "ctl.h"

static const struct import_column calibration_columns[] = {
	{ "sensor", IMPORT_TEXT, 1, NULL },
	{ "serial", IMPORT_TEXT, 1, NULL },
	{ "certificate_no", IMPORT_TEXT, 1, NULL },
	{ "calibrated_on", IMPORT_DATE, 1, NULL },
	{ "valid_until", IMPORT_DATE, 1, NULL },
	{ "recorded_by", IMPORT_TEXT, 1, NULL },
	{ "model", IMPORT_TEXT, 0, NULL },
	{ "laboratory", IMPORT_TEXT, 0, NULL },
	{ "uncertainty_c", IMPORT_NUMBER, 0, NULL },
	{ "passed", IMPORT_YESNO, 0, "t" },
	{ "document_sha256", IMPORT_TEXT, 0, NULL },
};

/* The sensor a row names (key or id) and its clinic, if any. */
#define CALIBRATION_SENSOR						\
    " left join lateral (select s.id, f.clinic_id"			\
    "  from vialwatch.sensor s"						\
    "  left join vialwatch.fridge f on f.id = s.fridge_id"		\
    "  where s.key = r.sensor or s.id = case when r.sensor"		\
    "  ~ '^[0-9]{1,18}$' then r.sensor::bigint end"		\
    "  order by s.key = r.sensor desc limit 1) s on true"

static const char calibration_check[] =
    "select r.line, 'sensor', 'sensor', r.sensor, null"
    " from pg_temp.import_row r" CALIBRATION_SENSOR
    " where r.sensor is not null and s.id is null"
    " union all select r.line, 'recorded_by', 'contact', r.recorded_by, null"
    " from pg_temp.import_row r" CALIBRATION_SENSOR
    " where r.recorded_by is not null"
    " and vialwatch.contact_find(r.recorded_by, s.clinic_id) is null"
    " union all select line, 'valid_until', 'bad',"
    " 'not after calibrated_on ' || calibrated_on, null"
    " from pg_temp.import_row where valid_until <= calibrated_on"
    " union all select line, 'uncertainty_c', 'bad',"
    " 'not below 100: ' || uncertainty_c, null"
    " from pg_temp.import_row where uncertainty_c >= 100"
    " union all select line, 'document_sha256', 'bad',"
    " 'not a SHA-256 (64 hexadecimal digits)', null"
    " from pg_temp.import_row where document_sha256 !~ '^[0-9a-fA-F]{64}$'"
    " union all select r.line, 'certificate_no', 'bad', 'certificate '"
    " || k.certificate_no || ' of this sensor is recorded already with"
    " other values (certificates are not changed: record a new one)', null"
    " from pg_temp.import_row r" CALIBRATION_SENSOR
    " join vialwatch.calibration k on k.sensor_id = s.id"
    "  and k.certificate_no = r.certificate_no"
    " where (k.serial, k.calibrated_on, k.valid_until, k.passed)"
    "  is distinct from (r.serial, r.calibrated_on, r.valid_until, r.passed)"
    " or k.model is distinct from coalesce(r.model, k.model)"
    " or k.laboratory is distinct from coalesce(r.laboratory, k.laboratory)"
    " or k.uncertainty_c is distinct from"
    "  coalesce(r.uncertainty_c::float8, k.uncertainty_c)"
    CHECK_SAME("certificate_no", "sensor, certificate_no");

static const char calibration_upsert[] =
    "with src as (select s.id as sensor_id, r.*,"
    " vialwatch.contact_find(r.recorded_by, s.clinic_id) as contact_id,"
    " true as fresh"
    " from pg_temp.import_row r" CALIBRATION_SENSOR
    " where $1::text[] is not null and not exists (select"
    "  from vialwatch.calibration k where k.sensor_id = s.id"
    "  and k.certificate_no = r.certificate_no)"
    "), up as (insert into vialwatch.calibration (sensor_id, serial, model,"
    " certificate_no, laboratory, calibrated_on, valid_until, uncertainty_c,"
    " passed, document_sha256, recorded_by)"
    " select sensor_id, serial, model, certificate_no, laboratory,"
    " calibrated_on, valid_until, uncertainty_c, passed,"
    " lower(document_sha256), contact_id from src order by line"
    " returning 1)" UPSERT_COUNT;

const struct import_kind import_calibrations = {
	"calibrations", calibration_columns,
	sizeof calibration_columns / sizeof calibration_columns[0],
	IMPORT_TABLE("sensor text, serial text, certificate_no text,"
	    " calibrated_on date, valid_until date, recorded_by text,"
	    " model text, laboratory text, uncertainty_c numeric,"
	    " passed boolean, document_sha256 text"),
	calibration_check, calibration_upsert
};
