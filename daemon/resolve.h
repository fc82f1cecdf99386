/* resolve.c: host names resolved on the loop, never blocking it. */
#ifndef RESOLVE_H
#define RESOLVE_H

#include <stddef.h>

struct event_base;
struct evdns_base;
struct sockaddr;

/*
 * The loop's resolver (libevent's evdns), made on first use: it reads
 * /etc/resolv.conf, or the file named by VIALWATCHD_RESOLV_CONF.
 */
struct evdns_base *resolve_dns(struct event_base *);
void		 resolve_free(void);
/* A host that names no address: to be resolved before connecting. */
int		 resolve_needed(const char *);
/* The numeric form of an address, in buf. */
const char	*resolve_numeric(const struct sockaddr *, char *, size_t);

#endif
