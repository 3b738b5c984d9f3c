/*
 * auth.h -- bearer tokens (JWT, HS256) and the auth() value of policies.
 *
 * A request's `Authorization: Bearer <jwt>` header becomes a cs_auth: who is
 * signed in (`sub`, which is auth().id) and one canonical value per field of
 * the schema's `auth` block, taken from the claim of the same name.  The
 * policy renderer (policy.h) binds these values into SQL.
 *
 * The schema's auth *block* (the shape of auth()) is cs_auth_block in
 * schema.h; a cs_auth is one signed-in (or anonymous) user of that shape.
 */
#ifndef CS_SERVER_AUTH_H
#define CS_SERVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema/schema.h"

/* Tokens longer than this are refused before any parsing. */
#define CS_AUTH_MAX_TOKEN 8192

typedef struct cs_auth {
    bool signed_in;       /* false: anonymous (auth() is null) */
    char *sub;            /* auth().id as given in the token (NULL when anonymous) */
    bool sub_hidden;      /* auth().id is @pii/@sensitive: never shown (cs_auth_shown) */
    size_t n;             /* = schema->auth.nfields */
    cstack_value *values; /* per auth field, canonical (CSTACK_NULL when the claim is absent and the
                             field optional) */
    /* private storage follows */
    char **owned; /* text the canonical values point into */
    size_t nowned;
} cs_auth;

/*
 * Verifies an HTTP Authorization header value "Bearer <jwt>" (HS256, secret),
 * honours exp (and nbf) against `now` (unix seconds); maps claims to auth():
 * `sub` is auth().id (converted to the type of the auth block's `id` field if
 * it has one, e.g. Uuid canonical lowercase), every other auth field comes
 * from the claim of the same name converted to the field's type (string
 * claims for String/Uuid/Cuid/DateTime/Decimal/Enum/Json with validation via
 * cs_value_canon; integer claims for Int; numbers for Float; booleans for
 * Boolean; Bytes from base64 strings; a required field whose claim is
 * missing, or a claim of the wrong type, is an error naming it).
 * Returns 0 and *out (free with cs_auth_free), or CSTACK_EINVAL with a
 * readable reason in err ("missing bearer token", "token expired at ...",
 * "bad signature", "claim 'role' must be a string", ...) that the server
 * sends in its 401.  CSTACK_ENOMEM on allocation failure.  *out is NULL on
 * any error.  Thread-safe.
 */
int cs_auth_verify(const cstack_schema *s, const char *authorization, const char *secret,
                   int64_t now, cs_auth **out, char *err, size_t errlen);

/* The anonymous user (for requests without a token where allowed): every
 * value null.  Free with cs_auth_free.  CSTACK_ENOMEM only. */
int cs_auth_anonymous(const cstack_schema *s, cs_auth **out);

/* The user as logs and messages may show it: the token's sub, "" when
 * anonymous, or "[redacted]" when the auth block's id is @pii/@sensitive. */
const char *cs_auth_shown(const cs_auth *a);

/* Frees a user; NULL is fine. */
void cs_auth_free(cs_auth *a);

/* The value of auth field `name` (NULL when the block has no such field).
 * Borrowed from `a`. */
const cstack_value *cs_auth_value(const cstack_schema *s, const cs_auth *a, const char *name);

#endif
