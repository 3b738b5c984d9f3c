/* test_errmsg.c -- cstack_errmsg is per handle (and per thread), as
 * include/cstack.h documents. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "support.h"

static const char *SCHEMA = "model Note {\n"
                            "  id    Int    @id\n"
                            "  title String\n"
                            "}\n";

/* Fails a call on `db` with a message that names `model`. */
static void fail_on(cstack *db, const char *model)
{
    cr_assert_eq(cstack_create(db, model, DATA(FV("title", T("x"))), NULL), CSTACK_EINVAL);
}

static void expect_names(cstack *db, const char *what)
{
    cr_expect(strstr(cstack_errmsg(db), what) != NULL, "expected '%s' in: %s", what,
              cstack_errmsg(db));
}

Test(errmsg, a_failure_on_one_handle_does_not_change_another_handles_message)
{
    cstack *a = t_open_mem(SCHEMA), *b = t_open_mem(SCHEMA);
    cr_expect_str_eq(cstack_errmsg(a), "no error");
    fail_on(a, "FirstMissing");
    expect_names(a, "FirstMissing");
    cr_expect_str_eq(cstack_errmsg(b), "no error");
    fail_on(b, "SecondMissing");
    expect_names(b, "SecondMissing");
    expect_names(a, "FirstMissing");
    /* NULL: the thread's last failure, whatever the handle. */
    cr_expect(strstr(cstack_errmsg(NULL), "SecondMissing") != NULL);
    /* A success does not erase the last failure. */
    cr_expect_eq(cstack_create(a, "Note", DATA(FV("id", I(1)), FV("title", T("x"))), NULL), 0);
    expect_names(a, "FirstMissing");
    cstack_close(a);
    cstack_close(b);
}

typedef struct other_thread {
    cstack *db, *other;
    char seen_before[256]; /* its message on db before failing */
    char seen_after[256];  /* and after failing on db, then on other */
} other_thread;

static void *fail_in_thread(void *arg)
{
    other_thread *t = arg;
    snprintf(t->seen_before, sizeof t->seen_before, "%s", cstack_errmsg(t->db));
    fail_on(t->db, "ThreadMissing");
    fail_on(t->other, "OtherMissing");
    snprintf(t->seen_after, sizeof t->seen_after, "%s", cstack_errmsg(t->db));
    return NULL;
}

Test(errmsg, messages_are_per_handle_in_each_thread_and_never_cross_threads)
{
    cstack *db = t_open_mem(SCHEMA), *other = t_open_mem(SCHEMA);
    fail_on(db, "MainMissing");
    other_thread t = {.db = db, .other = other};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fail_in_thread, &t), 0);
    pthread_join(th, NULL);
    /* The other thread saw neither this thread's failure before its own... */
    cr_expect_str_eq(t.seen_before, "no error");
    cr_expect(strstr(t.seen_after, "ThreadMissing") != NULL, "%s", t.seen_after);
    /* ...nor did its failure reach this thread's message on the same handle,
     * or this thread's message on the other handle. */
    expect_names(db, "MainMissing");
    cr_expect_str_eq(cstack_errmsg(other), "no error");
    cstack_close(db);
    cstack_close(other);
}

Test(errmsg, a_handle_opened_after_another_closed_starts_without_a_message)
{
    cstack *a = t_open_mem(SCHEMA);
    fail_on(a, "Gone");
    cstack_close(a);
    /* The allocator may well hand the new handle the old one's address. */
    cstack *b = t_open_mem(SCHEMA);
    cr_expect_str_eq(cstack_errmsg(b), "no error");
    cstack_close(b);
}

Test(errmsg, messages_of_many_handles_are_kept_apart)
{
    enum { N = 8 };
    cstack *dbs[N];
    char name[N][32];
    for (int i = 0; i < N; i++) {
        dbs[i] = t_open_mem(SCHEMA);
        snprintf(name[i], sizeof name[i], "Missing%d", i);
        fail_on(dbs[i], name[i]);
    }
    for (int i = 0; i < N; i++) {
        expect_names(dbs[i], name[i]);
        cstack_close(dbs[i]);
    }
}
