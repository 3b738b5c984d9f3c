/*
 * fuzz_schema.c -- libFuzzer target for the schema language: every input is
 * parsed and validated as a .cstack file; its diagnostics are formatted (the
 * source line and caret code reads the input again), and a schema that
 * validates is hashed and rendered as DDL for both dialects.  Any input must
 * end in a schema or in diagnostics; a crash, a sanitizer report or a leak is
 * a bug.
 *
 * Seeds: fuzz/corpus/schema/ (the fixture schemas of tests/ and examples/);
 * dictionary: fuzz/schema.dict.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cstack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    int rc = cstack_schema_parse("fuzz.cstack", (const char *)data, size, &s, &d);
    if (rc == CSTACK_OK && !s)
        abort();
    if (rc != CSTACK_OK && s)
        abort();
    if (rc == CSTACK_ESCHEMA && cstack_diags_count(d) == 0)
        abort(); /* a refused schema always says why */
    char *text = cstack_diags_format(d);
    cstack_free(text);
    for (size_t i = 0; i < cstack_diags_count(d); i++)
        if (!cstack_diags_get(d, i)->message)
            abort();
    if (s) {
        if (strlen(cstack_schema_hash(s)) != 64)
            abort();
        static const char *const dialects[] = {"sqlite", "postgres"};
        for (size_t i = 0; i < 2; i++) {
            char *ddl = NULL;
            if (cstack_schema_ddl(s, dialects[i], &ddl) == CSTACK_OK)
                cstack_free(ddl);
        }
    }
    cstack_schema_free(s);
    cstack_diags_free(d);
    return 0;
}
