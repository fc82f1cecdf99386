/*
 * Signed links: the acknowledge link of an alarm email and the unsubscribe
 * link of a reminder carry who they were sent to and until when they are
 * valid, with an HMAC-SHA256 over both under the key of [http] secret_file.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "log.h"
#include "token.h"
#include "xmalloc.h"

#define TOKEN_MAC_LEN	32
#define TOKEN_WHO_MAX	320	/* an email address at most */

/* base64url without padding of len bytes: a string to free. */
static char *
token_b64(const unsigned char *in, size_t len)
{
	char	*out, *p;
	int	 n;

	out = xmalloc(4 * ((len + 2) / 3) + 1);
	n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (p = out; *p != '\0'; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	}
	return (out);
}

/* Decode base64url without padding into out (of max bytes); -1 if bad. */
static int
token_unb64(const char *in, size_t len, unsigned char *out, size_t max)
{
	unsigned char	*tmp, *buf;
	size_t		 i, pad;
	int		 n;

	if (len == 0 || len % 4 == 1 || len > 4 * ((max + 2) / 3))
		return (-1);
	pad = (4 - len % 4) % 4;
	tmp = xmalloc(len + pad + 1);
	buf = xmalloc((len + pad) / 4 * 3 + 1);
	for (i = 0; i < len; i++) {
		if (in[i] == '+' || in[i] == '/' || in[i] == '=')
			break;
		tmp[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	}
	memset(tmp + len, '=', pad);
	n = -1;
	if (i == len)
		n = EVP_DecodeBlock(buf, tmp, (int)(len + pad));
	if (n >= 0)
		n -= (int)pad;
	if (n < 0 || (size_t)n > max)
		n = -1;
	else
		memcpy(out, buf, n);
	free(buf);
	free(tmp);
	return (n);
}

/* The MAC of purpose, id, who and expiry; -1 if it cannot be made. */
static int
token_mac(const unsigned char *key, size_t keylen, const char *purpose,
    int64_t id, const char *who, int64_t expires,
    unsigned char mac[TOKEN_MAC_LEN])
{
	char		*msg;
	unsigned int	 len = TOKEN_MAC_LEN;
	int		 n;

	n = xasprintf(&msg, "vialwatch %s\n%" PRId64 "\n%s\n%" PRId64, purpose,
	    id, who, expires);
	if (HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)msg, n, mac,
	    &len) == NULL || len != TOKEN_MAC_LEN) {
		free(msg);
		return (-1);
	}
	free(msg);
	return (0);
}

char *
token_make(const unsigned char *key, size_t keylen, const char *purpose,
    int64_t id, const char *who, int64_t expires)
{
	unsigned char	 mac[TOKEN_MAC_LEN];
	char		*w, *m, *out;

	if (token_mac(key, keylen, purpose, id, who, expires, mac) != 0)
		fatalx("token: HMAC-SHA256 failed");
	w = token_b64((const unsigned char *)who, strlen(who));
	m = token_b64(mac, sizeof mac);
	xasprintf(&out, "%" PRId64 ".%" PRId64 ".%s.%s", id, expires, w, m);
	free(w);
	free(m);
	return (out);
}

/* A decimal field ending at a dot: its value, or -1 if it is not one. */
static int
token_number(const char **s, int64_t *v)
{
	const char	*p = *s;
	int64_t		 n = 0;

	if (*p < '0' || *p > '9' || (*p == '0' && p[1] != '.'))
		return (-1);
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (INT64_MAX - 9) / 10)
			return (-1);
		n = n * 10 + (*p - '0');
	}
	if (*p != '.')
		return (-1);
	*v = n;
	*s = p + 1;
	return (0);
}

int
token_check(const unsigned char *key, size_t keylen, const char *purpose,
    const char *token, int64_t now, int64_t *id, char **who)
{
	unsigned char	 mac[TOKEN_MAC_LEN], want[TOKEN_MAC_LEN];
	unsigned char	 wbuf[TOKEN_WHO_MAX + 1];
	const char	*p = token, *dot;
	int64_t		 tid, expires;
	int		 n;

	if (token_number(&p, &tid) != 0 || token_number(&p, &expires) != 0)
		return (TOKEN_BAD);
	if ((dot = strchr(p, '.')) == NULL)
		return (TOKEN_BAD);
	n = token_unb64(p, dot - p, wbuf, TOKEN_WHO_MAX);
	if (n <= 0 || memchr(wbuf, '\0', n) != NULL)
		return (TOKEN_BAD);
	wbuf[n] = '\0';
	if (token_unb64(dot + 1, strlen(dot + 1), mac, sizeof mac) !=
	    TOKEN_MAC_LEN)
		return (TOKEN_BAD);
	if (token_mac(key, keylen, purpose, tid, (char *)wbuf, expires,
	    want) != 0)
		return (TOKEN_BAD);
	if (CRYPTO_memcmp(mac, want, TOKEN_MAC_LEN) != 0)
		return (TOKEN_BAD);
	if (expires < now)
		return (TOKEN_EXPIRED);
	*id = tid;
	*who = xstrdup((char *)wbuf);
	return (TOKEN_OK);
}
