/*
 * payload-int.h: what the decoders of payload.c and payload-input.c share.
 * Not for other files: they use payload.h.
 */
#ifndef PAYLOAD_INT_H
#define PAYLOAD_INT_H

#include <stddef.h>
#include <stdint.h>

#include "payload.h"

struct json_object;

/* One message on its way through a decoder. */
struct payload_msg {
	const struct source	*src;
	const char		*topic;
	size_t			 topiclen;
	const char		*data;
	size_t			 len;
	int64_t			 now_us;
	struct payload_result	*out;
	char			 key[PAYLOAD_KEY_MAX]; /* from the topic */
};

/* payload.c */
int		 payload_fail(struct payload_msg *, enum payload_reason,
		     const char *, ...) __attribute__((format(printf, 3, 4)));
void		 payload_what(char *, size_t, const char *, ...)
		     __attribute__((format(printf, 3, 4)));
int		 payload_key(struct payload_msg *, char *, const char *, ...)
		     __attribute__((format(printf, 3, 4)));
int		 payload_eq(const char *, size_t, const char *);
size_t		 payload_strip(const char *, size_t, const char *);
size_t		 payload_last(const char *, size_t);
int		 payload_with_json(struct payload_msg *,
		     int (*)(struct payload_msg *, struct json_object *));
int		 payload_plain(struct payload_msg *, double *);
struct json_object *payload_member(struct json_object *, const char *);
const char	*payload_string(struct json_object *);
int		 payload_double(struct json_object *, double *);
double		 payload_percent(struct json_object *);
int		 payload_time(struct payload_msg *, struct json_object *,
		     const char *, int64_t *);
struct reading	*payload_next(struct payload_msg *);
int		 payload_finish(struct payload_msg *);
int		 payload_availability_word(const char *, size_t);

/* payload-input.c: door contacts and mains power. */
int		 payload_input_zigbee2mqtt(struct payload_msg *,
		     struct json_object *);
int		 payload_input_tasmota(struct payload_msg *,
		     struct json_object *, int64_t);
int		 payload_input_shelly(struct payload_msg *, size_t);
int		 payload_input_component(const char *, size_t);
int		 payload_input_shelly_gen2_status(struct payload_msg *, size_t,
		     const char *);
void		 payload_input_shelly_gen2_rpc(struct payload_msg *,
		     struct json_object *, int64_t);
int		 payload_input_json(struct payload_msg *, struct json_object *,
		     int64_t);

#endif
