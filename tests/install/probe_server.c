/*
 * probe_server.c -- a program that embeds the sync server as installed:
 * built by install_test.sh with nothing but
 * `pkg-config --cflags --libs cstack-server`.  It loads a schema through
 * libcstack, starts a server on a free port of 127.0.0.1, asks GET /healthz
 * over a plain socket, mints a token, and stops the server.  Exit status 0
 * when all of it works.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstack.h>
#include <cstack_server.h>

static const char SCHEMA[] = "auth User { id String }\n"
                             "model Note {\n"
                             "  id      String @id\n"
                             "  ownerId String\n"
                             "  @@allow('all', ownerId == auth().id)\n"
                             "}\n";

/* The status line of GET /healthz, or "" when the request failed. */
static void healthz(int port, char *status, size_t len)
{
    status[0] = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    char buf[512] = "";
    size_t n = 0;
    if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
        ssize_t r;
        while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
            n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    size_t eol = strcspn(buf, "\r\n");
    snprintf(status, len, "%.*s", (int)eol, buf);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: probe_server DIR (the server's database goes there)\n");
        return 2;
    }
    cstack_schema *schema = NULL;
    if (cstack_schema_parse("probe.cstack", SCHEMA, strlen(SCHEMA), &schema, NULL) != 0) {
        fprintf(stderr, "probe_server: the schema does not parse\n");
        return 1;
    }
    char db[4096];
    snprintf(db, sizeof db, "%s/server.db", argv[1]);
    cstack_server_config cfg = {.schema = schema, .db_path = db, .jwt_secret = "probe-secret"};
    cstack_server *srv = NULL;
    char err[1024] = "";
    int rc = cstack_server_start(&cfg, &srv, err, sizeof err);
    cstack_schema_free(schema);
    if (rc != 0) {
        fprintf(stderr, "probe_server: start: %s\n", err);
        return 1;
    }
    char status[128];
    healthz(cstack_server_port(srv), status, sizeof status);
    char *token = NULL;
    rc = cstack_server_mint_token("probe-secret", "alice", NULL, 0, 0, 60, &token, err, sizeof err);
    cstack_server_stop(srv);
    if (rc != 0 || !token || strncmp(token, "ey", 2) != 0) {
        fprintf(stderr, "probe_server: token: %s\n", err);
        cstack_free(token);
        return 1;
    }
    cstack_free(token);
    if (strcmp(status, "HTTP/1.1 200 OK") != 0) {
        fprintf(stderr, "probe_server: GET /healthz answered '%s'\n", status);
        return 1;
    }
    printf("GET /healthz: %s\n", status);
    return 0;
}
