/*
 * Offsets of probes that read a known amount off: each probe key has its
 * offsets in time order (vialwatch.sensor_offset), and a reading takes
 * the one in force at its own timestamp, so a reading delivered late is
 * corrected as it would have been on time.  The table is loaded by
 * excursion.c with the sensors and replaced whole; on the hot path a
 * reading costs one hash when any probe has an offset, nothing otherwise.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offset.h"
#include "payload.h"
#include "xmalloc.h"

#define OFFSET_BUCKETS_MIN	16

struct offset_entry {
	int64_t		 from_us;
	double		 offset_c;
};

struct offset_probe {
	struct offset_probe	*next;		/* in its bucket */
	char			*key;
	struct offset_entry	*v;		/* by from_us, oldest first */
	size_t			 n;
};

struct offset_table {
	struct offset_probe	**buckets;
	size_t			 mask;
	size_t			 probes;
	size_t			 count;		/* offsets */
};

/* FNV-1a. */
static uint32_t
offset_hash(const char *s)
{
	uint32_t	h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return (h);
}

struct offset_table *
offset_table_new(void)
{
	struct offset_table	*t = xcalloc(1, sizeof *t);

	t->buckets = xcalloc(OFFSET_BUCKETS_MIN, sizeof *t->buckets);
	t->mask = OFFSET_BUCKETS_MIN - 1;
	return (t);
}

void
offset_table_free(struct offset_table *t)
{
	struct offset_probe	*p, *next;
	size_t			 i;

	if (t == NULL)
		return;
	for (i = 0; i <= t->mask; i++) {
		for (p = t->buckets[i]; p != NULL; p = next) {
			next = p->next;
			free(p->key);
			free(p->v);
			free(p);
		}
	}
	free(t->buckets);
	free(t);
}

static struct offset_probe *
offset_find(const struct offset_table *t, const char *key)
{
	struct offset_probe	*p;

	for (p = t->buckets[offset_hash(key) & t->mask]; p != NULL; p = p->next)
		if (strcmp(p->key, key) == 0)
			return (p);
	return (NULL);
}

/* Twice the buckets once there are more probes than buckets. */
static void
offset_grow(struct offset_table *t)
{
	struct offset_probe	**old = t->buckets, *p, *next;
	size_t			  i, n = t->mask + 1;

	t->buckets = xcalloc(n * 2, sizeof *t->buckets);
	t->mask = n * 2 - 1;
	for (i = 0; i < n; i++) {
		for (p = old[i]; p != NULL; p = next) {
			next = p->next;
			p->next = t->buckets[offset_hash(p->key) & t->mask];
			t->buckets[offset_hash(p->key) & t->mask] = p;
		}
	}
	free(old);
}

void
offset_table_add(struct offset_table *t, const char *key, int64_t from_us,
    double offset_c)
{
	struct offset_probe	*p;
	size_t			 i;

	if ((p = offset_find(t, key)) == NULL) {
		if (t->probes > t->mask)
			offset_grow(t);
		p = xcalloc(1, sizeof *p);
		p->key = xstrdup(key);
		p->next = t->buckets[offset_hash(key) & t->mask];
		t->buckets[offset_hash(key) & t->mask] = p;
		t->probes++;
	}
	p->v = xreallocarray(p->v, p->n + 1, sizeof *p->v);
	for (i = p->n; i > 0 && p->v[i - 1].from_us > from_us; i--)
		p->v[i] = p->v[i - 1];
	p->v[i].from_us = from_us;
	p->v[i].offset_c = offset_c;
	p->n++;
	t->count++;
}

size_t
offset_table_count(const struct offset_table *t)
{
	return (t == NULL ? 0 : t->count);
}

double
offset_at(const struct offset_table *t, const char *key, int64_t ts_us)
{
	const struct offset_probe	*p;
	size_t				 lo, hi, mid;

	if (t == NULL || t->count == 0 || (p = offset_find(t, key)) == NULL)
		return (0);
	/* The first entry after ts_us; the one before it is in force. */
	lo = 0;
	hi = p->n;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (p->v[mid].from_us <= ts_us)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo == 0 ? 0 : p->v[lo - 1].offset_c);
}

int
offset_apply(const struct offset_table *t, struct reading *r, char *why,
    size_t len)
{
	double	off, v;

	if (r->kind != READING_TEMP)
		return (0);
	r->temp_raw_c = r->temp_c;
	if ((off = offset_at(t, r->key, r->ts_us)) == 0)
		return (0);
	v = r->temp_raw_c + off;
	if (!(v >= PAYLOAD_MIN_C && v <= PAYLOAD_MAX_C)) {
		snprintf(why, len, "sensor %.100s: %g °C with its offset of "
		    "%+g °C is %g °C, outside %g to %g °C", r->key,
		    r->temp_raw_c, off, v, PAYLOAD_MIN_C, PAYLOAD_MAX_C);
		return (-1);
	}
	r->temp_c = v;
	return (0);
}
