/* clock.c: the wall and monotonic clocks, and the wait before a retry. */
#ifndef CLOCK_H
#define CLOCK_H

#include <stdint.h>

struct timeval;

/* Wall clock in microseconds since the epoch, monotonic clock in ms. */
int64_t		 clock_now_us(void);
int64_t		 clock_mono_ms(void);
/* Next wait of a retry: *ms doubles from 500 ms to 30 s; jittered. */
int64_t		 clock_backoff(int64_t *, struct timeval *);

#endif
