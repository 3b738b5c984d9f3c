/* clocksql.c -- the SQL of a synced model's clock table (clocksql.h). */
#include "sql/clocksql.h"

static int key_list(cs_buf *b, const cs_model *m)
{
    int rc = 0;
    for (size_t i = 0; i < m->npk && !rc; i++) {
        rc = i ? cs_buf_puts(b, ", ") : 0;
        rc = rc ? rc : cs_buf_ident(b, m->fields[m->pk[i]].column);
    }
    return rc;
}

int cs_clock_sql_ddl(cs_buf *b, const cs_model *m, const char *table)
{
    int rc = cs_buf_puts(b, "CREATE TABLE IF NOT EXISTS ");
    rc = rc ? rc : cs_buf_ident(b, table);
    rc = rc ? rc : cs_buf_puts(b, "(");
    for (size_t i = 0; i < m->npk && !rc; i++) {
        rc = cs_buf_ident(b, m->fields[m->pk[i]].column);
        rc = rc ? rc : cs_buf_puts(b, " BLOB NOT NULL, ");
    }
    rc = rc ? rc : cs_buf_puts(b, "_cstack_cl INTEGER NOT NULL, _cstack_ver INTEGER NOT NULL, "
                                  "_cstack_clk BLOB NOT NULL, PRIMARY KEY(");
    rc = rc ? rc : key_list(b, m);
    rc = rc ? rc : cs_buf_puts(b, ")) WITHOUT ROWID;\nCREATE INDEX IF NOT EXISTS ");
    rc = rc ? rc : cs_buf_printf(b, "\"%s_ver\" ON ", table);
    rc = rc ? rc : cs_buf_ident(b, table);
    return rc ? rc : cs_buf_puts(b, "(_cstack_ver);\n");
}

int cs_clock_sql_load(cs_buf *b, const cs_model *m, const char *table)
{
    int rc = cs_buf_puts(b, "SELECT _cstack_cl, _cstack_clk FROM ");
    rc = rc ? rc : cs_buf_ident(b, table);
    for (size_t i = 0; i < m->npk && !rc; i++) {
        rc = cs_buf_puts(b, i ? " AND " : " WHERE ");
        rc = rc ? rc : cs_buf_ident(b, m->fields[m->pk[i]].column);
        rc = rc ? rc : cs_buf_printf(b, " = ?%zu", i + 1);
    }
    return rc;
}

static int insert_head(cs_buf *b, const cs_model *m, const char *table)
{
    int rc = cs_buf_puts(b, "INSERT INTO ");
    rc = rc ? rc : cs_buf_ident(b, table);
    rc = rc ? rc : cs_buf_puts(b, "(");
    rc = rc ? rc : key_list(b, m);
    return rc ? rc : cs_buf_puts(b, ", _cstack_cl, _cstack_ver, _cstack_clk) VALUES ");
}

int cs_clock_sql_store(cs_buf *b, const cs_model *m, const char *table)
{
    int rc = insert_head(b, m, table);
    rc = rc ? rc : cs_buf_puts(b, "(");
    for (size_t i = 0; i < m->npk && !rc; i++)
        rc = cs_buf_printf(b, "?%zu, ", i + 4);
    return rc ? rc : cs_buf_puts(b, "?1, ?2, ?3) ON CONFLICT DO UPDATE SET _cstack_cl = ?1, "
                                    "_cstack_ver = ?2, _cstack_clk = ?3");
}

int cs_clock_sql_latest(cs_buf *b, const char *table)
{
    int rc = cs_buf_puts(b, "SELECT _cstack_ver, _cstack_clk FROM ");
    rc = rc ? rc : cs_buf_ident(b, table);
    return rc ? rc : cs_buf_puts(b, " ORDER BY _cstack_ver DESC LIMIT 1");
}

int cs_clock_sql_insert(cs_buf *b, const cs_model *m, const char *table, size_t nrows)
{
    int rc = insert_head(b, m, table);
    size_t arg = 3;
    for (size_t r = 0; r < nrows && !rc; r++) {
        rc = cs_buf_puts(b, r ? ", (" : "(");
        for (size_t i = 0; i < m->npk && !rc; i++)
            rc = cs_buf_printf(b, "?%zu, ", arg++);
        rc = rc ? rc : cs_buf_puts(b, "1, ?1, ?2)");
    }
    return rc ? rc : cs_buf_puts(b, " ON CONFLICT DO UPDATE SET _cstack_cl = "
                                    "_cstack_cl + 1 - _cstack_cl % 2, _cstack_ver = ?1, "
                                    "_cstack_clk = ?2");
}

int cs_clock_sql_insert_new(cs_buf *b, const cs_model *m, const char *table, size_t nrows)
{
    int rc = insert_head(b, m, table);
    size_t arg = 2;
    for (size_t r = 0; r < nrows && !rc; r++) {
        rc = cs_buf_puts(b, r ? ", (" : "(");
        for (size_t i = 0; i < m->npk && !rc; i++)
            rc = cs_buf_printf(b, "?%zu, ", arg++);
        rc = rc ? rc : cs_buf_printf(b, "?%zu, ?1, ?%zu)", arg, arg + 1);
        arg += 2;
    }
    return rc;
}
