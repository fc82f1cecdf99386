/* metrics.c: counters and gauges, rendered as Prometheus text. */
#ifndef METRICS_H
#define METRICS_H

#include <stdint.h>

#include "payload.h"
#include "reminder.h"
#include "rules.h"

struct evbuffer;
struct vialwatchd;

#define METRICS_SOURCES_MAX	256
#define METRICS_BUCKETS		12

/* A histogram over the buckets of metrics.c, from 5 ms to 30 s. */
struct metrics_histogram {
	uint64_t	 bucket[METRICS_BUCKETS];
	uint64_t	 count;
	double		 sum;
};

/* Notifications by channel (email, hook) and outcome. */
#define METRICS_CHANNELS	2
enum { METRICS_SENT, METRICS_FAILED, METRICS_DEAD, METRICS_OUTCOMES };

struct metrics {
	struct {
		char		name[64];
		uint64_t	received;
	}		 sources[METRICS_SOURCES_MAX];
	int		 nsources;
	uint64_t	 received_unmatched;
	uint64_t	 rejected[REASON_COUNT];
	uint64_t	 readings_stored;
	uint64_t	 readings_duplicate;
	uint64_t	 batches;
	uint64_t	 batch_errors;
	uint64_t	 batch_rows_sum;
	struct metrics_histogram batch_seconds;
	uint64_t	 mqtt_connects;
	uint64_t	 db_connects;
	uint64_t	 spool_replayed;
	uint64_t	 spool_corrupt;
	uint64_t	 spool_write_errors;
	uint64_t	 spool_unwritten;
	uint64_t	 excursion_events[RULES_EV_COUNT];
	uint64_t	 excursion_events_failed;
	uint64_t	 excursion_events_dropped;
	uint64_t	 reference_loads;
	uint64_t	 notifications[METRICS_CHANNELS][METRICS_OUTCOMES];
	struct metrics_histogram delivery_seconds;
	uint64_t	 acks;		/* on the acknowledge page */
	uint64_t	 reminders[REMINDER_STATES]; /* decided */
	uint64_t	 unsubscribes;	/* on the unsubscribe page */
};

extern struct metrics metrics;

int	metrics_source_id(const char *);
void	metrics_batch(int, double);
/* A notification delivered, seconds after it was queued. */
void	metrics_delivery(double);
void	metrics_render(struct vialwatchd *, struct evbuffer *);

#endif
