/*
 * cmd_token.c -- `cstack token`: mints a bearer token (JWT, HS256) for
 * development and tests, the kind `cstack serve` accepts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cstack_server.h"

#define MAX_CLAIMS 64

static const char TOKEN_USAGE[] =
    "usage: cstack token --secret S --sub ID [--claim KEY=VALUE ...] [--ttl SECONDS]\n"
    "\n"
    "Prints a signed bearer token (JWT, HS256) for `cstack serve --jwt-secret S`.\n"
    "The server maps its claims to auth() in policies: `sub` is auth().id, and\n"
    "each other field of the schema's auth block comes from the claim of the\n"
    "same name.  A VALUE that reads as a JSON integer or boolean becomes one,\n"
    "a VALUE starting with { or [ is JSON (the object of a composite auth field:\n"
    "--claim 'organization={\"id\":\"o1\"}'), anything else a string.  For\n"
    "development and tests: real deployments get their tokens from an identity\n"
    "provider that shares the secret.\n"
    "\n"
    "options:\n"
    "  --secret S          the HS256 secret (default: CSTACK_JWT_SECRET)\n"
    "  --sub ID            the user id (auth().id)\n"
    "  --claim KEY=VALUE   another claim; repeat for more\n"
    "  --ttl SECONDS       expire after this long (default 86400; 0: never)\n"
    "\n"
    "Exit status: 0 printed, 1 refused claims, 2 bad command line.\n";

static int parse_ttl(const char *text, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < 0 || text[0] == '+')
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* --claim repeats, which the shared parser does not do: claims are taken
 * out of argv first and the rest goes through cli_parse. */
static int take_claims(const char *cmd, int *argc, char **argv, const char **claims, size_t *n)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        if (strcmp(arg, "--") == 0) {
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        if (strcmp(arg, "--claim") == 0) {
            if (i + 1 >= *argc)
                return cli_usage_error(cmd, "option '--claim' needs a value");
            val = argv[++i];
        } else if (strncmp(arg, "--claim=", 8) == 0) {
            val = arg + 8;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        if (!strchr(val, '=') || val[0] == '=')
            return cli_usage_error(cmd, "--claim needs KEY=VALUE, not '%s'", val);
        if (*n >= MAX_CLAIMS)
            return cli_usage_error(cmd, "at most %d claims", MAX_CLAIMS);
        claims[(*n)++] = val;
    }
    *argc = out;
    return CLI_OK;
}

int cmd_token(int argc, char **argv)
{
    const char *cmd = "token";
    const char *claims[MAX_CLAIMS];
    size_t nclaims = 0;
    int rc = take_claims(cmd, &argc, argv, claims, &nclaims);
    if (rc != CLI_OK)
        return rc;
    const char *secret = NULL, *sub = NULL, *ttl_text = NULL;
    cli_opt opts[] = {
        {"--secret", &secret, NULL}, {"--sub", &sub, NULL}, {"--ttl", &ttl_text, NULL}};
    cli_args a;
    rc = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof opts[0], 0, &a);
    if (rc != CLI_OK)
        return rc;
    if (a.help) {
        fputs(TOKEN_USAGE, stdout);
        return CLI_OK;
    }
    if (!secret)
        secret = getenv("CSTACK_JWT_SECRET");
    if (!secret || !*secret)
        return cli_usage_error(cmd, "missing --secret S (or CSTACK_JWT_SECRET)");
    if (!sub)
        return cli_usage_error(cmd, "missing --sub ID");
    int64_t ttl = 86400;
    if (ttl_text && parse_ttl(ttl_text, &ttl) != 0)
        return cli_usage_error(cmd, "--ttl needs a number of seconds (>= 0), not '%s'", ttl_text);
    char *token = NULL;
    char err[256] = "";
    if (cstack_server_mint_token(secret, sub, claims, nclaims, (int64_t)time(NULL), ttl, &token,
                                 err, sizeof err) != 0) {
        fprintf(stderr, "cstack %s: %s\n", cmd, err[0] ? err : "cannot mint the token");
        return CLI_FAIL;
    }
    printf("%s\n", token);
    cstack_free(token);
    return CLI_OK;
}
