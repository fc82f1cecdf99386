/*
 * Unit tests for token.c: the signed links of emails.  A token checks only
 * under its key and purpose, until it expires, and any change to it is
 * refused.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "token.h"

#define NOW	1700000000LL

static const unsigned char	key[] = "0123456789abcdef-link-key";
static const unsigned char	other[] = "0123456789abcdef-link-kez";

static int
check(const unsigned char *k, const char *purpose, const char *t, int64_t now,
    int64_t *id, char **who)
{
	*id = -1;
	*who = NULL;
	return (token_check(k, sizeof key - 1, purpose, t, now, id, who));
}

int
main(void)
{
	const char	*url_safe = "0123456789abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.";
	char		*t, *u, *who;
	int64_t		 id;
	size_t		 i, len;
	int		 rc, refused;

	t = token_make(key, sizeof key - 1, "ack", 42, "dana@lakeview.example",
	    NOW + 3600);
	ok(strspn(t, url_safe) == strlen(t), "token is URL-safe: %s", t);
	ok(strncmp(t, "42.", 3) == 0, "token starts with the id");

	rc = check(key, "ack", t, NOW, &id, &who);
	is_int(rc, TOKEN_OK, "a fresh token checks");
	is_int(id, 42, "its id comes back");
	ok(who != NULL && strcmp(who, "dana@lakeview.example") == 0,
	    "its recipient comes back: %s", who ? who : "(null)");
	free(who);

	is_int(check(key, "ack", t, NOW + 3600, &id, &who), TOKEN_OK,
	    "valid up to the second it expires");
	free(who);
	is_int(check(key, "ack", t, NOW + 3601, &id, &who), TOKEN_EXPIRED,
	    "expired one second later");
	ok(who == NULL && id == -1, "an expired token gives nothing back");
	is_int(check(other, "ack", t, NOW, &id, &who), TOKEN_BAD,
	    "another key refuses it");
	is_int(check(key, "unsubscribe", t, NOW, &id, &who), TOKEN_BAD,
	    "another purpose refuses it");

	/* Every single-character change is refused. */
	len = strlen(t);
	u = strdup(t);
	refused = 0;
	for (i = 0; i < len; i++) {
		u[i] = t[i] == 'A' ? 'B' : 'A';
		if (check(key, "ack", u, NOW, &id, &who) == TOKEN_BAD)
			refused++;
		else
			printf("#   accepted: %s\n", u);
		free(who);
		u[i] = t[i];
	}
	is_int(refused, len, "each of the %zu altered tokens is refused", len);
	free(u);

	/* Another id or expiry with the old MAC. */
	{
		char	*forged, *dot = strchr(t, '.');

		if (asprintf(&forged, "43%s", dot) < 0)
			return (1);
		is_int(check(key, "ack", forged, NOW, &id, &who), TOKEN_BAD,
		    "the MAC of id 42 does not pass for id 43");
		free(forged);
		dot = strchr(dot + 1, '.');
		if (asprintf(&forged, "42.%lld%s", NOW + 999999, dot) < 0)
			return (1);
		is_int(check(key, "ack", forged, NOW, &id, &who), TOKEN_BAD,
		    "a later expiry with the old MAC is refused");
		free(forged);
	}

	/* Cut short, padded, junk. */
	u = strndup(t, len - 1);
	is_int(check(key, "ack", u, NOW, &id, &who), TOKEN_BAD,
	    "a token cut short by one character is refused");
	free(u);
	if (asprintf(&u, "%s=", t) < 0)
		return (1);
	is_int(check(key, "ack", u, NOW, &id, &who), TOKEN_BAD,
	    "a token with padding added is refused");
	free(u);
	is_int(check(key, "ack", "", NOW, &id, &who), TOKEN_BAD,
	    "an empty token is refused");
	is_int(check(key, "ack", "42.1.x.y", NOW, &id, &who), TOKEN_BAD,
	    "junk is refused");
	is_int(check(key, "ack", "042.1700003600.ZA.ZA", NOW, &id, &who),
	    TOKEN_BAD, "a leading zero is refused");
	is_int(check(key, "ack", "99999999999999999999.1.ZA.ZA", NOW, &id,
	    &who), TOKEN_BAD, "an id past 64 bits is refused");
	free(t);

	/* A recipient with characters base64 turns into - and _. */
	t = token_make(key, sizeof key - 1, "unsubscribe", 7, "a~~~?>>@x.example",
	    NOW);
	ok(strspn(t, url_safe) == strlen(t), "still URL-safe: %s", t);
	rc = check(key, "unsubscribe", t, NOW, &id, &who);
	ok(rc == TOKEN_OK && who != NULL &&
	    strcmp(who, "a~~~?>>@x.example") == 0,
	    "a recipient with + and / in its base64 comes back");
	free(who);
	free(t);

	printf("1..%d\n", tap_n);
	return (tap_failed != 0);
}
