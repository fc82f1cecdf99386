/*
 * Host names resolved on the loop: a blocking getaddrinfo() in libpq or
 * libmosquitto would stall the readings and the watchdog for as long as
 * a slow resolver takes. Connections ask libevent's evdns, then connect
 * to the address it gave.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/socket.h>

#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "log.h"
#include "resolve.h"

static struct evdns_base	*resolve_base;

struct evdns_base *
resolve_dns(struct event_base *base)
{
	const char	*path = getenv("VIALWATCHD_RESOLV_CONF");
	int		 rc;

	if (resolve_base != NULL)
		return (resolve_base);
	if ((resolve_base = evdns_base_new(base, 0)) == NULL)
		fatalx("evdns_base_new");
	if (path == NULL || *path == '\0')
		path = "/etc/resolv.conf";
	rc = evdns_base_resolv_conf_parse(resolve_base, DNS_OPTIONS_ALL, path);
	if (rc != 0)
		log_warnx("resolver: cannot read %s (error %d); asking a name "
		    "server on this host", path, rc);
	return (resolve_base);
}

void
resolve_free(void)
{
	if (resolve_base != NULL)
		evdns_base_free(resolve_base, 0);
	resolve_base = NULL;
}

/* Not an address, a socket path or empty: a name. */
int
resolve_needed(const char *host)
{
	unsigned char	addr[sizeof(struct in6_addr)];

	if (host == NULL || *host == '\0' || *host == '/' || *host == '@')
		return (0);
	return (evutil_inet_pton(AF_INET, host, addr) != 1 &&
	    evutil_inet_pton(AF_INET6, host, addr) != 1);
}

const char *
resolve_numeric(const struct sockaddr *sa, char *buf, size_t len)
{
	const void	*addr;

	if (sa->sa_family == AF_INET6)
		addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	else
		addr = &((const struct sockaddr_in *)sa)->sin_addr;
	if (evutil_inet_ntop(sa->sa_family, addr, buf, len) == NULL)
		return (NULL);
	return (buf);
}
