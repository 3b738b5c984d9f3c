/* try.h -- TRY(expr): returns expr's non-zero code from the calling
 * function, for sequences of steps that each return 0 or a CSTACK_E* code
 * and own nothing that needs freeing on the way out. */
#ifndef CS_UTIL_TRY_H
#define CS_UTIL_TRY_H

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0)                                                                              \
            return rc_;                                                                            \
    } while (0)

#endif
