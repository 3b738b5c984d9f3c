/*
 * codegen.h -- the typed C API generator behind `cstack gen` (SPEC section 5).
 *
 * From a validated schema IR the generator writes one header and one source
 * file that wrap the generic runtime of include/cstack.h with a struct per
 * model, create / update input structs, typed delegates, field helpers that
 * build filters and orderings, and the model descriptors.  The naming and
 * ownership rules the generated code follows are documented in
 * docs/codegen.md and repeated at the top of every generated header.
 *
 * The generated files include only <cstack.h>, each other and the C standard
 * library, and compile warning-free with -std=c11 -Wall -Wextra -pedantic
 * (also -Wshadow -Wconversion) under gcc and clang.  Output is deterministic:
 * the same schema and basename always give the same bytes.
 */
#ifndef CS_CODEGEN_H
#define CS_CODEGEN_H

#include <stddef.h>

#include "cstack.h"
#include "util/buf.h"

/* Generates the typed API of schema `s`.  `basename` names the pair of files
 * (`<basename>.h`, `<basename>.c`; the source includes "<basename>.h"); it
 * must be non-empty and made of [A-Za-z0-9_.-].  The header text is appended
 * to `header`, the source text to `source` (both owned by the caller).
 *
 * Returns 0, or CSTACK_EINVAL (bad basename, or two generated names collide
 * inside one model in a way renaming cannot fix -- `err` says which),
 * CSTACK_ENOMEM / CSTACK_ETOOBIG (a buffer limit).  On failure `err`
 * (`errlen` bytes, may be NULL) holds a one-line message and the buffers may
 * hold partial text. */
int cs_codegen(const cstack_schema *s, const char *basename, cs_buf *header, cs_buf *source,
               char *err, size_t errlen);

#endif
