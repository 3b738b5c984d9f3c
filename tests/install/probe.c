/*
 * probe.c -- a program that knows libcstack only as installed: built by
 * install_test.sh with nothing but `pkg-config --cflags --libs cstack`.
 * It opens an in-memory database of a tiny schema, creates a row, reads it
 * back and prints the library's version.  Exit status 0 when all of it works.
 */
#include <stdio.h>
#include <string.h>

#include <cstack.h>

static const char SCHEMA[] = "model Note {\n"
                             "  id    Uuid   @id @default(uuid())\n"
                             "  title String\n"
                             "}\n";

static int fail(const char *what, cstack *db)
{
    fprintf(stderr, "probe: %s: %s\n", what, db ? cstack_errmsg(db) : "failed");
    cstack_close(db);
    return 1;
}

int main(void)
{
    if (strcmp(cstack_version(), CSTACK_VERSION) != 0) {
        fprintf(stderr, "probe: headers %s, library %s\n", CSTACK_VERSION, cstack_version());
        return 1;
    }
    cstack_schema *schema = NULL;
    if (cstack_schema_parse("probe.cstack", SCHEMA, strlen(SCHEMA), &schema, NULL) != 0)
        return fail("schema", NULL);
    cstack *db = NULL;
    int rc = cstack_open_in_memory(schema, &db);
    cstack_schema_free(schema);
    if (rc != 0)
        return fail("open", db);
    if (cstack_bootstrap(db, NULL) != 0)
        return fail("bootstrap", db);
    cstack_field_value f[] = {{"title", cstack_v_text("installed")}};
    cstack_data data = {f, 1};
    cstack_row *row = NULL;
    if (cstack_create(db, "Note", &data, &row) != 0)
        return fail("create", db);
    char *json = cstack_row_json(row);
    cstack_row_free(row);
    int64_t count = 0;
    if (cstack_count(db, "Note", NULL, &count) != 0 || count != 1) {
        cstack_free(json);
        return fail("count", db);
    }
    printf("created %s\n", json ? json : "?");
    printf("cstack %s (CSTACK_VERSION_NUMBER %d)\n", cstack_version(), CSTACK_VERSION_NUMBER);
    cstack_free(json);
    cstack_close(db);
    return 0;
}
