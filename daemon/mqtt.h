/* mqtt.c: libmosquitto driven by the libevent loop, with reconnects. */
#ifndef MQTT_H
#define MQTT_H

struct conf;
struct db;
struct event_base;
struct excursion;
struct mqtt;

enum mqtt_state {
	MQTT_DISCONNECTED,
	MQTT_CONNECTING,
	MQTT_CONNECTED,
};

/* A client whose messages go to db and excursion. */
struct mqtt	*mqtt_new(struct event_base *, struct conf **, struct db *,
		     struct excursion *);
void		 mqtt_start(struct mqtt *);
void		 mqtt_reconfigure(struct mqtt *, const struct conf *);
void		 mqtt_stop(struct mqtt *);
void		 mqtt_free(struct mqtt *);
enum mqtt_state	 mqtt_state(struct mqtt *);
const char	*mqtt_state_name(enum mqtt_state);
/* Queue a QoS 1 message (retained or not); -1 when not connected. */
int		 mqtt_publish(struct mqtt *, const char *, const char *, int);
/* A number that changes at each new connection; 0 while disconnected. */
unsigned int	 mqtt_session(struct mqtt *);
/* Backpressure: stop reading from the broker, saying why; NULL resumes. */
void		 mqtt_pause(struct mqtt *, const char *);

#endif
