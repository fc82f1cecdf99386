/*
 * vwbench: the load generator and the bare subscriber of contrib/bench.
 *
 *	vwbench pub -p port -n count [-H host] [-q qos] [-r rate]
 *	    [-s sensors] [-t prefix] [-w window]
 *	vwbench sub -p port -n count [-H host] [-i idle] [-m receive-max]
 *	    [-q qos] [-t filter]
 *
 * pub sends count readings round-robin to the topics prefix/0 ...
 * prefix/<sensors-1> as {"temperature":4.37,"ts":<epoch microseconds>}.
 * ts is the publish time, made strictly increasing, so that every
 * (sensor, ts) pair is unique and the latency of each row can be read from
 * the row itself. sub counts what arrives and does nothing else: it is the
 * limit vialwatchd is measured against. It drives libmosquitto the way
 * vialwatchd does (MQTT v5, no library thread, reads while the socket has
 * data), so that the two differ only in what is done with a message.
 *
 * Each prints one line of key=value pairs on stdout at the end; sub first
 * prints "subscribed" once the broker acknowledged the subscription. Times
 * are CLOCK_REALTIME microseconds, to compare with PostgreSQL's commit
 * timestamps. Exit status 0 when count messages went or came, 1 otherwise.
 *
 * Built by contrib/bench, not by make:
 *	cc -O2 -o vwbench vwbench.c $(pkg-config --cflags --libs libmosquitto)
 */
#include <sys/ioctl.h>

#include <err.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#define BENCH_READS_PER_POLL	1024
#define BENCH_TICK_NS		1000000LL	/* pacing: publish each 1 ms */
#define BENCH_CONNECT_MS	10000

struct bench {
	struct mosquitto	*mosq;
	int			 connected;
	int			 subscribed;
	int			 lost;
	long long		 sent;		/* pub: given to libmosquitto */
	long long		 done;		/* pub: acked; QoS 0: written */
	long long		 count;		/* sub: received */
	int64_t			 first_us;
	int64_t			 last_us;
	int64_t			 misc_ms;
};

static void	usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr, "usage: vwbench pub -p port -n count [-H host] "
	    "[-q qos] [-r rate] [-s sensors]\n"
	    "\t[-t prefix] [-w window]\n"
	    "       vwbench sub -p port -n count [-H host] [-i idle] "
	    "[-m receive-max]\n"
	    "\t[-q qos] [-t filter]\n");
	exit(2);
}

/* Wall-clock time, as PostgreSQL's commit timestamps have it. */
static int64_t
now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

/* Time for intervals: pacing, deadlines, keepalives. */
static int64_t
mono_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

/* A number option within [min, max], or usage. */
static long long
number(const char *s, long long min, long long max, const char *what)
{
	const char	*errstr;
	long long	 v;
	char		*end;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		errstr = "not a number";
	else if (v < min)
		errstr = "too small";
	else if (v > max)
		errstr = "too large";
	else
		return (v);
	errx(2, "%s %s: %s", what, s, errstr);
}

/* CONNACK: a refusal ends the run, there is nothing to measure. */
static void
on_connect(struct mosquitto *mosq, void *arg, int rc)
{
	struct bench	*b = arg;

	if (rc != 0)
		errx(1, "broker refused the connection: %s",
		    mosquitto_connack_string(rc));
	b->connected = 1;
}

/* The connection went: bench_io reports it. */
static void
on_disconnect(struct mosquitto *mosq, void *arg, int rc)
{
	struct bench	*b = arg;

	b->lost = 1;
}

/* SUBACK: from now on the broker delivers to us. */
static void
on_subscribe(struct mosquitto *mosq, void *arg, int mid, int n,
    const int *granted)
{
	struct bench	*b = arg;

	if (n < 1 || granted[0] >= 0x80)
		errx(1, "broker refused the subscription");
	b->subscribed = 1;
}

/* A PUBACK at QoS 1; at QoS 0, the PUBLISH went to the socket. */
static void
on_publish(struct mosquitto *mosq, void *arg, int mid)
{
	struct bench	*b = arg;

	b->done++;
}

/* The bare subscriber's whole work: count and note the time. */
static void
on_message(struct mosquitto *mosq, void *arg,
    const struct mosquitto_message *msg)
{
	struct bench	*b = arg;

	b->last_us = now_us();
	if (b->count++ == 0)
		b->first_us = b->last_us;
}

/*
 * Wait up to timeout_ms for the socket, then read every packet it holds
 * (libmosquitto reads one per call), write what is queued, and once a
 * second let libmosquitto send keepalives. -1 when the connection is gone.
 */
static int
bench_io(struct bench *b, int timeout_ms)
{
	struct pollfd	pfd;
	int		i, avail, rc = MOSQ_ERR_SUCCESS;

	if ((pfd.fd = mosquitto_socket(b->mosq)) == -1 || b->lost)
		return (-1);
	pfd.events = POLLIN | (mosquitto_want_write(b->mosq) ? POLLOUT : 0);
	if (poll(&pfd, 1, timeout_ms) == -1 && errno != EINTR)
		err(1, "poll");
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
		for (i = 0; i < BENCH_READS_PER_POLL; i++) {
			if ((rc = mosquitto_loop_read(b->mosq, 1)) != 0)
				break;
			if (ioctl(pfd.fd, FIONREAD, &avail) == -1 ||
			    avail == 0)
				break;
		}
	}
	if (rc == MOSQ_ERR_SUCCESS && mosquitto_want_write(b->mosq))
		rc = mosquitto_loop_write(b->mosq, 1);
	if (rc == MOSQ_ERR_SUCCESS && mono_ns() / 1000000 - b->misc_ms >=
	    1000) {
		b->misc_ms = mono_ns() / 1000000;
		rc = mosquitto_loop_misc(b->mosq);
	}
	if (rc != MOSQ_ERR_SUCCESS || b->lost) {
		warnx("connection lost: %s", rc == MOSQ_ERR_ERRNO ?
		    strerror(errno) : mosquitto_strerror(rc));
		b->lost = 1;
		return (-1);
	}
	return (0);
}

/* Connect with MQTT v5 and a clean start; wait for the CONNACK. */
static void
bench_connect(struct bench *b, const char *host, int port, int recvmax,
    int sendmax)
{
	int64_t	deadline = mono_ns() + BENCH_CONNECT_MS * 1000000LL;
	int	rc;

	mosquitto_lib_init();
	if ((b->mosq = mosquitto_new(NULL, true, b)) == NULL)
		err(1, "mosquitto_new");
	mosquitto_int_option(b->mosq, MOSQ_OPT_PROTOCOL_VERSION,
	    MQTT_PROTOCOL_V5);
	if (recvmax > 0)
		mosquitto_int_option(b->mosq, MOSQ_OPT_RECEIVE_MAXIMUM,
		    recvmax);
	if (sendmax > 0)
		mosquitto_int_option(b->mosq, MOSQ_OPT_SEND_MAXIMUM, sendmax);
	mosquitto_connect_callback_set(b->mosq, on_connect);
	mosquitto_disconnect_callback_set(b->mosq, on_disconnect);
	mosquitto_subscribe_callback_set(b->mosq, on_subscribe);
	mosquitto_publish_callback_set(b->mosq, on_publish);
	mosquitto_message_callback_set(b->mosq, on_message);
	if ((rc = mosquitto_connect(b->mosq, host, port, 60)) != 0)
		errx(1, "connect to %s:%d: %s", host, port, rc ==
		    MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	while (!b->connected) {
		if (mono_ns() > deadline)
			errx(1, "no CONNACK from %s:%d", host, port);
		if (bench_io(b, 100) == -1)
			errx(1, "connect to %s:%d failed", host, port);
	}
}

/* Publish the next reading: its time is now, but after the last one's. */
static void
pub_one(struct bench *b, const char *prefix, long long nsensors, int qos)
{
	char		topic[256], payload[128];
	int64_t		ts = now_us();
	int		tlen, plen, rc;

	if (ts <= b->last_us)
		ts = b->last_us + 1;
	b->last_us = ts;
	if (b->sent == 0)
		b->first_us = ts;
	tlen = snprintf(topic, sizeof topic, "%s/%lld", prefix,
	    b->sent % nsensors);
	if (tlen < 0 || (size_t)tlen >= sizeof topic)
		errx(2, "topic prefix too long");
	/* 2.00 to 7.99 °C: in range for a fridge, varied for the COPY text. */
	plen = snprintf(payload, sizeof payload,
	    "{\"temperature\":%.2f,\"ts\":%lld}",
	    2.0 + (double)(b->sent % 600) / 100, (long long)ts);
	rc = mosquitto_publish(b->mosq, NULL, topic, plen, payload, qos, false);
	if (rc != MOSQ_ERR_SUCCESS)
		errx(1, "publish: %s", mosquitto_strerror(rc));
	b->sent++;
}

/*
 * How many readings should have gone by now at rate per second: bursts
 * of a tick's worth, so that the pace holds with any scheduler.
 */
static long long
pub_due(int64_t start_ns, long long rate, long long n)
{
	long long	due;

	due = (long long)((double)(mono_ns() - start_ns) * rate / 1e9) + 1;
	return (due < n ? due : n);
}

/* Sleep until the next pacing tick. */
static void
pub_tick(int64_t *next_ns)
{
	struct timespec	ts;

	*next_ns += BENCH_TICK_NS;
	if (*next_ns < mono_ns())
		*next_ns = mono_ns();	/* behind: do not try to catch up */
	ts.tv_sec = *next_ns / 1000000000;
	ts.tv_nsec = *next_ns % 1000000000;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	    EINTR)
		;
}

/* vwbench pub: N readings, paced at rate per second or as fast as it goes. */
static int
cmd_pub(int argc, char **argv)
{
	struct bench	 b;
	const char	*host = "127.0.0.1", *prefix = "bench";
	long long	 n = -1, nsensors = 1000, rate = 0, window = 1000;
	long long	 limit;
	int64_t		 start_ns, next_ns;
	int		 ch, port = -1, qos = 0;

	while ((ch = getopt(argc, argv, "H:n:p:q:r:s:t:w:")) != -1) {
		switch (ch) {
		case 'H':
			host = optarg;
			break;
		case 'n':
			n = number(optarg, 1, LLONG_MAX / 2, "count");
			break;
		case 'p':
			port = number(optarg, 1, 65535, "port");
			break;
		case 'q':
			qos = number(optarg, 0, 1, "qos");
			break;
		case 'r':
			rate = number(optarg, 0, 100000000, "rate");
			break;
		case 's':
			nsensors = number(optarg, 1, 100000000, "sensors");
			break;
		case 't':
			prefix = optarg;
			break;
		case 'w':
			window = number(optarg, 1, 65535, "window");
			break;
		default:
			usage();
		}
	}
	if (n == -1 || port == -1 || optind != argc)
		usage();

	memset(&b, 0, sizeof b);
	bench_connect(&b, host, port, 0, (int)window);
	start_ns = next_ns = mono_ns();
	while (b.done < n) {
		limit = rate > 0 ? pub_due(start_ns, rate, n) : n;
		/* At most window messages unacknowledged (or unwritten). */
		while (b.sent < limit && b.sent - b.done < window)
			pub_one(&b, prefix, nsensors, qos);
		if (rate > 0 && b.sent < n && b.sent - b.done < window) {
			if (bench_io(&b, 0) == -1)
				break;
			pub_tick(&next_ns);
		} else if (bench_io(&b, 100) == -1)
			break;
	}
	printf("first_us=%lld last_us=%lld done_us=%lld count=%lld "
	    "acked=%lld\n", (long long)b.first_us, (long long)b.last_us,
	    (long long)now_us(), b.sent, b.done);
	fflush(stdout);
	if (!b.lost) {
		mosquitto_disconnect(b.mosq);
		bench_io(&b, 0);
	}
	mosquitto_destroy(b.mosq);
	mosquitto_lib_cleanup();
	return (b.done == n ? 0 : 1);
}

/* vwbench sub: count until N arrived or none came for idle seconds. */
static int
cmd_sub(int argc, char **argv)
{
	struct bench	 b;
	const char	*host = "127.0.0.1", *filter = "bench/#";
	long long	 n = -1;
	int64_t		 idle_us = 10000000, since;
	int		 ch, port = -1, qos = 0, recvmax = 0, rc;

	while ((ch = getopt(argc, argv, "H:i:m:n:p:q:t:")) != -1) {
		switch (ch) {
		case 'H':
			host = optarg;
			break;
		case 'i':
			idle_us = number(optarg, 1, 86400, "idle") * 1000000;
			break;
		case 'm':
			recvmax = number(optarg, 1, 65535, "receive-max");
			break;
		case 'n':
			n = number(optarg, 1, LLONG_MAX, "count");
			break;
		case 'p':
			port = number(optarg, 1, 65535, "port");
			break;
		case 'q':
			qos = number(optarg, 0, 1, "qos");
			break;
		case 't':
			filter = optarg;
			break;
		default:
			usage();
		}
	}
	if (n == -1 || port == -1 || optind != argc)
		usage();

	memset(&b, 0, sizeof b);
	bench_connect(&b, host, port, recvmax, 0);
	if ((rc = mosquitto_subscribe(b.mosq, NULL, filter, qos)) != 0)
		errx(1, "subscribe %s: %s", filter, mosquitto_strerror(rc));
	while (!b.subscribed) {
		if (bench_io(&b, 100) == -1)
			errx(1, "no SUBACK");
	}
	printf("subscribed\n");
	fflush(stdout);

	/* Until all came, or nothing came for idle seconds. */
	since = now_us();
	while (b.count < n) {
		if (bench_io(&b, 100) == -1)
			break;
		if (now_us() - (b.count > 0 ? b.last_us : since) > idle_us)
			break;
	}
	printf("first_us=%lld last_us=%lld count=%lld\n",
	    (long long)b.first_us, (long long)b.last_us, b.count);
	fflush(stdout);
	if (!b.lost) {
		mosquitto_disconnect(b.mosq);
		bench_io(&b, 0);
	}
	mosquitto_destroy(b.mosq);
	mosquitto_lib_cleanup();
	return (b.count >= n ? 0 : 1);
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "pub") == 0)
		return (cmd_pub(argc - 1, argv + 1));
	if (strcmp(argv[1], "sub") == 0)
		return (cmd_sub(argc - 1, argv + 1));
	usage();
}
