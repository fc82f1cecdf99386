/* Counters and gauges of the daemon, rendered in Prometheus text format. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "db.h"
#include "excursion.h"
#include "metrics.h"
#include "mqtt.h"
#include "outbox.h"
#include "reminder.h"
#include "spool.h"
#include "state.h"
#include "vialwatchd.h"

struct metrics metrics;

/* Upper bounds of the batch latency histogram, in seconds. */
static const double metrics_bounds[METRICS_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
};

/* The counter slot of a source, by name; kept across reloads. */
int
metrics_source_id(const char *name)
{
	int	i;

	for (i = 0; i < metrics.nsources; i++) {
		if (strcmp(metrics.sources[i].name, name) == 0)
			return (i);
	}
	if (metrics.nsources == METRICS_SOURCES_MAX)
		return (METRICS_SOURCES_MAX - 1);
	snprintf(metrics.sources[i].name, sizeof metrics.sources[i].name, "%s",
	    name);
	return (metrics.nsources++);
}

static void
metrics_observe(struct metrics_histogram *h, double v)
{
	int	i;

	h->count++;
	h->sum += v;
	for (i = 0; i < METRICS_BUCKETS; i++) {
		if (v <= metrics_bounds[i])
			h->bucket[i]++;
	}
}

/* Record one committed batch. */
void
metrics_batch(int rows, double seconds)
{
	metrics.batches++;
	metrics.batch_rows_sum += rows;
	metrics_observe(&metrics.batch_seconds, seconds);
}

void
metrics_delivery(double seconds)
{
	metrics_observe(&metrics.delivery_seconds, seconds);
}

/* Label values: escape backslash, quote and newline. */
static void
metrics_label(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(b, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, s, 1);
	}
}

static void
metrics_header(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* A metric with one value and no labels. */
static void
metrics_one(struct evbuffer *b, const char *name, const char *type,
    const char *help, unsigned long long value)
{
	metrics_header(b, name, type, help);
	evbuffer_add_printf(b, "%s %llu\n", name, value);
}

static void
metrics_histogram(struct evbuffer *b, const char *name, const char *help,
    const struct metrics_histogram *h)
{
	int	i;

	metrics_header(b, name, "histogram", help);
	for (i = 0; i < METRICS_BUCKETS; i++) {
		evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
		    metrics_bounds[i], (unsigned long long)h->bucket[i]);
	}
	evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n"
	    "%s_count %llu\n", name, (unsigned long long)h->count, name, h->sum,
	    name, (unsigned long long)h->count);
}

static void
metrics_render_ingest(struct evbuffer *b)
{
	int	i;

	metrics_header(b, "vialwatch_mqtt_messages_received_total", "counter",
	    "MQTT messages received, by source.");
	for (i = 0; i < metrics.nsources; i++) {
		evbuffer_add_printf(b,
		    "vialwatch_mqtt_messages_received_total{source=\"");
		metrics_label(b, metrics.sources[i].name);
		evbuffer_add_printf(b, "\"} %llu\n",
		    (unsigned long long)metrics.sources[i].received);
	}
	evbuffer_add_printf(b, "vialwatch_mqtt_messages_received_total"
	    "{source=\"\"} %llu\n",
	    (unsigned long long)metrics.received_unmatched);

	metrics_header(b, "vialwatch_messages_rejected_total", "counter",
	    "Messages refused and kept in vialwatch.rejected_message, by reason.");
	for (i = 1; i < REASON_COUNT; i++) {
		evbuffer_add_printf(b, "vialwatch_messages_rejected_total"
		    "{reason=\"%s\"} %llu\n", payload_reason_label(i),
		    (unsigned long long)metrics.rejected[i]);
	}

	metrics_one(b, "vialwatch_readings_stored_total", "counter",
	    "Readings committed to vialwatch.reading.",
	    metrics.readings_stored);
	metrics_one(b, "vialwatch_readings_duplicate_total", "counter",
	    "Readings already stored (redeliveries), skipped.",
	    metrics.readings_duplicate);
}

static void
metrics_render_batches(struct evbuffer *b)
{
	metrics_header(b, "vialwatch_batch_rows", "summary",
	    "Rows per committed batch.");
	evbuffer_add_printf(b, "vialwatch_batch_rows_sum %llu\n"
	    "vialwatch_batch_rows_count %llu\n",
	    (unsigned long long)metrics.batch_rows_sum,
	    (unsigned long long)metrics.batches);
	metrics_histogram(b, "vialwatch_batch_seconds",
	    "Time from sending a batch to its commit.",
	    &metrics.batch_seconds);
	metrics_one(b, "vialwatch_batch_errors_total", "counter",
	    "Batches that failed and were retried.",
	    metrics.batch_errors);
}

static void
metrics_render_spool(struct vialwatchd *vw, struct evbuffer *b)
{
	metrics_one(b, "vialwatch_spool_bytes", "gauge",
	    "Bytes in the spool that the database does not have yet.",
	    spool_bytes(vw->spool));
	metrics_one(b, "vialwatch_spool_replayed_total", "counter",
	    "Records read back from the spool at start.",
	    metrics.spool_replayed);
	metrics_one(b, "vialwatch_spool_corrupt_total", "counter",
	    "Corrupt spool records skipped at start.",
	    metrics.spool_corrupt);
	metrics_one(b, "vialwatch_spool_write_errors_total", "counter",
	    "Failed writes to the spool (e.g. disk full).",
	    metrics.spool_write_errors);
	metrics_one(b, "vialwatch_spool_unwritten_total", "counter",
	    "Records kept in memory only because the spool could not be "
	    "written.",
	    metrics.spool_unwritten);
}

static void
metrics_render_excursions(struct vialwatchd *vw, struct evbuffer *b)
{
	static const enum rules_kind	 kinds[] = { RULES_HIGH, RULES_LOW,
					    RULES_OFFLINE, RULES_DOOR,
					    RULES_POWER, RULES_WARNING };
	size_t				 open[EXCURSION_KINDS], i;

	excursion_open_counts(vw->excursion, open);
	metrics_header(b, "vialwatch_excursions_open", "gauge",
	    "Open excursions of the sensors watched, by kind.");
	for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		evbuffer_add_printf(b, "vialwatch_excursions_open{kind=\"%s\"} "
		    "%zu\n", rules_kind_name(kinds[i]), open[kinds[i]]);
	}
	metrics_header(b, "vialwatch_excursion_events_total", "counter",
	    "Events of the excursion rules, by event.");
	for (i = 0; i < RULES_EV_COUNT; i++) {
		evbuffer_add_printf(b, "vialwatch_excursion_events_total"
		    "{event=\"%s\"} %llu\n", rules_event_name(i),
		    (unsigned long long)metrics.excursion_events[i]);
	}
	metrics_one(b, "vialwatch_excursion_events_pending", "gauge",
	    "Excursion events waiting for the database.",
	    excursion_pending(vw->excursion));
	metrics_one(b, "vialwatch_excursion_events_failed_total", "counter",
	    "Excursion events the database refused (logged, not retried).",
	    metrics.excursion_events_failed);
	metrics_one(b, "vialwatch_excursion_events_dropped_total", "counter",
	    "Excursion events dropped because too many were waiting.",
	    metrics.excursion_events_dropped);
	metrics_one(b, "vialwatch_excursion_sensors", "gauge",
	    "Sensors assigned to a fridge, watched by the excursion rules.",
	    excursion_sensors(vw->excursion));
	metrics_one(b, "vialwatch_reference_loads_total", "counter",
	    "Loads of the sensors, fridges and limits from the database.",
	    metrics.reference_loads);
}

static void
metrics_render_outbox(struct vialwatchd *vw, struct evbuffer *b)
{
	static const char	*channels[] = { "email", "hook" };
	static const char	*outcomes[] = { "sent", "failed", "dead" };
	static const char	*states[] = { "pending", "failed", "dead" };
	int64_t			 n;
	int			 k, st;

	metrics_header(b, "vialwatch_notifications_total", "counter",
	    "Deliveries of notifications by this daemon, by channel and "
	    "outcome.");
	for (k = 0; k < METRICS_CHANNELS; k++) {
		for (st = 0; st < METRICS_OUTCOMES; st++)
			evbuffer_add_printf(b, "vialwatch_notifications_total"
			    "{channel=\"%s\",status=\"%s\"} %llu\n",
			    channels[k], outcomes[st],
			    (unsigned long long)metrics.notifications[k][st]);
	}
	metrics_header(b, "vialwatch_notifications", "gauge",
	    "Notifications not sent in vialwatch.notification (all daemons), "
	    "by channel and status, counted every 10 s.");
	for (k = 0; k < OUTBOX_CHANNELS; k++) {
		for (st = 0; st < OUTBOX_STATES; st++) {
			if ((n = outbox_backlog(vw->outbox, k, st)) < 0)
				continue;
			evbuffer_add_printf(b, "vialwatch_notifications"
			    "{channel=\"%s\",status=\"%s\"} %lld\n",
			    channels[k], states[st], (long long)n);
		}
	}
	metrics_histogram(b, "vialwatch_notification_delivery_seconds",
	    "Time from queueing a notification to its delivery.",
	    &metrics.delivery_seconds);
	metrics_header(b, "vialwatch_acknowledgements_total", "counter",
	    "Excursions acknowledged on the page of a signed link.");
	evbuffer_add_printf(b, "vialwatch_acknowledgements_total %llu\n",
	    (unsigned long long)metrics.acks);
}

static void
metrics_render_reminders(struct vialwatchd *vw, struct evbuffer *b)
{
	int64_t	n;
	int	st;

	metrics_header(b, "vialwatch_reminders_total", "counter",
	    "Reminders decided by this daemon's scans, by the status given.");
	for (st = REMINDER_SENT; st < REMINDER_STATES; st++)
		evbuffer_add_printf(b, "vialwatch_reminders_total"
		    "{status=\"%s\"} %llu\n", reminder_state_name(st),
		    (unsigned long long)metrics.reminders[st]);
	metrics_header(b, "vialwatch_reminders", "gauge",
	    "Rows of vialwatch.reminder (all clinics, all daemons) by status, "
	    "counted each scan_interval.");
	for (st = 0; st < REMINDER_STATES; st++) {
		if ((n = reminder_count_of(vw->reminder, st)) < 0)
			continue;
		evbuffer_add_printf(b, "vialwatch_reminders{status=\"%s\"} "
		    "%lld\n", reminder_state_name(st), (long long)n);
	}
	metrics_one(b, "vialwatch_unsubscribes_total", "counter",
	    "Patients unsubscribed from reminders through their link.",
	    metrics.unsubscribes);
}

static void
metrics_render_fridges(struct vialwatchd *vw, struct evbuffer *b)
{
	int64_t	n;
	int	k;

	metrics_header(b, "vialwatch_fridges", "gauge",
	    "Fridges by state (all clinics), counted every 5 to 15 s.");
	for (k = 0; k < STATE_KINDS; k++) {
		if ((n = state_count(vw->state, k)) < 0)
			continue;
		evbuffer_add_printf(b, "vialwatch_fridges{state=\"%s\"} %lld\n",
		    state_kind_name(k), (long long)n);
	}
	if ((n = state_unacknowledged(vw->state)) >= 0)
		metrics_one(b, "vialwatch_alarms_unacknowledged", "gauge",
		    "Fridges with an open alarm nobody acknowledged.", n);
}

/* Write every metric into b. */
void
metrics_render(struct vialwatchd *vw, struct evbuffer *b)
{
	metrics_render_ingest(b);
	metrics_render_batches(b);
	metrics_render_spool(vw, b);
	metrics_render_excursions(vw, b);
	metrics_render_outbox(vw, b);
	metrics_render_reminders(vw, b);
	metrics_render_fridges(vw, b);

	metrics_one(b, "vialwatch_readings_pending", "gauge",
	    "Readings and rejected messages waiting for the database.",
	    db_pending(vw->db));
	metrics_one(b, "vialwatch_readings_pending_bytes", "gauge",
	    "Memory held by them, bounded by [database] max_pending.",
	    db_pending_bytes(vw->db));
	metrics_one(b, "vialwatch_mqtt_connected", "gauge",
	    "1 when connected to the MQTT broker.",
	    mqtt_state(vw->mqtt) == MQTT_CONNECTED);
	metrics_one(b, "vialwatch_mqtt_connects_total", "counter",
	    "Successful connections to the broker.",
	    metrics.mqtt_connects);
	metrics_one(b, "vialwatch_db_connected", "gauge",
	    "1 when connected to PostgreSQL.",
	    db_connected(vw->db));
	metrics_one(b, "vialwatch_db_connects_total", "counter",
	    "Successful connections to PostgreSQL.",
	    metrics.db_connects);
}
