/*
 * quickstart.c -- cstack in one page: an in-memory database with one model,
 * and create / read / update / delete through the typed API that
 * `cstack gen` wrote from quickstart.cstack (see README.md).
 *
 * Every generated function returns 0 or a negative CSTACK_E* code; a struct
 * it fills owns its memory until the matching _free().
 */
#include <inttypes.h>
#include <stdio.h>

#include "quickstart.h"

/* Reports a failed call and returns the exit status for main(). */
static int fail(cstack *db, const char *what, int rc)
{
    fprintf(stderr, "quickstart: %s failed: %s: %s\n", what, cstack_errname(rc),
            db ? cstack_errmsg(db) : cstack_errstr(rc));
    return 1;
}

static void show(const char *label, const task *t)
{
    printf("  %-8s %-24s done=%-5s priority=%" PRId64 " note=%s\n", label, t->title,
           t->done ? "true" : "false", t->priority, t->note ? t->note : "(null)");
}

/* Creates three tasks; the runtime fills id, done, priority and createdAt. */
static int create_tasks(cstack *db, char first_id[37])
{
    static const char *const titles[] = {"write the schema", "run cstack gen", "ship it"};
    puts("create:");
    for (int i = 0; i < 3; i++) {
        task_create_input in = {.title = titles[i], .has_priority = true, .priority = 3 - i};
        task t;
        int rc = task_create(db, &in, &t);
        if (rc)
            return fail(db, "task_create", rc);
        show("created", &t);
        if (i == 0)
            snprintf(first_id, 37, "%s", t.id);
        task_free(&t);
    }
    return 0;
}

/* Lists the open tasks, most important first. */
static int list_open(cstack *db)
{
    cstack_filter *open = task_done_is_false();
    cstack_order order = task_priority_desc();
    cstack_query q = {.where = open, .order_by = &order, .n_order = 1};
    task_list list;
    int rc = task_find_many(db, &q, &list);
    cstack_filter_free(open);
    if (rc)
        return fail(db, "task_find_many", rc);
    printf("read: %zu open tasks, by priority\n", list.count);
    for (size_t i = 0; i < list.count; i++)
        show("open", &list.items[i]);
    task_list_free(&list);
    return 0;
}

/* Marks a task done and adds a note: only those two fields change. */
static int finish(cstack *db, const char *id)
{
    task_update_input up = {.set_done = true, .done = true, .set_note = true, .note = "done!"};
    task t;
    int rc = task_update_by_id(db, id, &up, &t);
    if (rc)
        return fail(db, "task_update_by_id", rc);
    puts("update:");
    show("updated", &t);
    task_free(&t);
    return 0;
}

static int remove_and_count(cstack *db)
{
    task gone;
    int rc = task_delete_by_title(db, "ship it", &gone);
    if (rc)
        return fail(db, "task_delete_by_title", rc);
    puts("delete:");
    show("deleted", &gone);
    task_free(&gone);
    bool found = true;
    if ((rc = task_find_unique_by_title(db, "ship it", NULL, &found)))
        return fail(db, "task_find_unique_by_title", rc);
    int64_t left = 0;
    if ((rc = task_count(db, NULL, &left)))
        return fail(db, "task_count", rc);
    printf("count: %" PRId64 " tasks left; \"ship it\" %s\n", left, found ? "still there" : "gone");
    return found || left != 2;
}

int main(void)
{
    cstack_schema *schema = NULL;
    cstack *db = NULL;
    char id[37] = "";
    /* The schema is embedded in the generated code, so the database always
     * matches the typed API. */
    int rc = quickstart_schema_parse(&schema);
    if (rc)
        return fail(NULL, "quickstart_schema_parse", rc);
    rc = cstack_open_in_memory(schema, &db);
    cstack_schema_free(schema);
    if (rc == 0)
        rc = cstack_bootstrap(db, NULL);
    if (rc) {
        rc = fail(db, "open", rc);
        cstack_close(db);
        return rc;
    }
    printf("quickstart: in-memory database, model Task\n");
    rc = create_tasks(db, id);
    if (!rc)
        rc = list_open(db);
    if (!rc)
        rc = finish(db, id);
    if (!rc)
        rc = list_open(db);
    if (!rc)
        rc = remove_and_count(db);
    cstack_close(db);
    puts(rc ? "quickstart: FAILED" : "quickstart: ok");
    return rc;
}
