/* token.c: signed links for emails (HMAC-SHA256), pure. */
#ifndef TOKEN_H
#define TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_OK	0
#define TOKEN_BAD	(-1)	/* malformed, forged or altered */
#define TOKEN_EXPIRED	(-2)

/*
 * A token for one purpose ("ack", "unsubscribe"), an id (excursion,
 * patient) and who it was sent to, valid until expires (epoch seconds):
 * "ID.EXPIRES.WHO.MAC" with WHO and MAC in base64url, safe in a URL path.
 * Returns a string to free.
 */
char	*token_make(const unsigned char *, size_t, const char *, int64_t,
	    const char *, int64_t);
/*
 * Check a token for a purpose at now (epoch seconds), comparing the MAC
 * in constant time.  On TOKEN_OK, *id and *who (to free) are set; the
 * expiry is checked only once the MAC matched.
 */
int	token_check(const unsigned char *, size_t, const char *, const char *,
	    int64_t, int64_t *, char **);

#endif
