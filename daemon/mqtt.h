/* mqtt.c: libmosquitto driven by the libevent loop, with reconnects. */
#ifndef MQTT_H
#define MQTT_H

struct vialwatchd;
struct mqtt;

enum mqtt_state {
	MQTT_DISCONNECTED,
	MQTT_CONNECTING,
	MQTT_CONNECTED,
};

struct mqtt	*mqtt_new(struct vialwatchd *);
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
/* Backpressure: stop or resume reading from the broker. */
void		 mqtt_pause(struct mqtt *, int);

#endif
