/*
 * topic.c: which sensors a [source] can deliver. A sensor key is made
 * from the topic by the source's format (payload.c); this goes back from
 * the key to the topics that would give it, and asks the source's filter.
 */
#ifndef TOPIC_H
#define TOPIC_H

#include "conf.h"

/* Whether a message matching the source's filter can carry this key. */
int		 topic_source_reaches(const struct source *, const char *);

/* Whether any [source] of the config can: the daemon's own sensors. */
int		 topic_conf_reaches(const struct conf *, const char *);

#endif
