/* http.c: health, metrics and (later) link pages on libevent's evhttp. */
#ifndef HTTP_H
#define HTTP_H

struct vialwatchd;
struct http;

/* Returns NULL with *cause set when the listen address cannot be bound. */
struct http	*http_new(struct vialwatchd *, char **);
int		 http_reconfigure(struct http *, char **);
void		 http_free(struct http *);

#endif
