/* offset.c: per-probe offsets; temp_c = temp_raw_c + offset_c. */
#ifndef OFFSET_H
#define OFFSET_H

#include <stddef.h>
#include <stdint.h>

struct reading;
struct offset_table;

struct offset_table *offset_table_new(void);
void		 offset_table_free(struct offset_table *);
/* Probe key's offset from from_us (epoch microseconds) on. */
void		 offset_table_add(struct offset_table *, const char *, int64_t,
		     double);
size_t		 offset_table_count(const struct offset_table *);
/* The offset of key at ts_us: the last one from at or before it, else 0. */
double		 offset_at(const struct offset_table *, const char *, int64_t);
/*
 * Correct a temperature reading: temp_raw_c becomes what the probe sent,
 * temp_c that plus its offset.  -1, with why (a sentence), when the
 * corrected value would leave PAYLOAD_MIN_C..PAYLOAD_MAX_C; 0 otherwise.
 * Other kinds of readings are left as they are.
 */
int		 offset_apply(const struct offset_table *, struct reading *,
		     char *, size_t);

#endif
