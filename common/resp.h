/* Writing Redis commands (RESP arrays of bulk strings) into a caller's buffer, for a hot
 * path that sends the same command shape again and again: the constant head is encoded
 * once, the changing arguments are appended per command, and the result goes to hiredis
 * as an already formatted command (no format-string parsing, no allocation). */
#ifndef TALLY_RESP_H
#define TALLY_RESP_H

#include <stddef.h>
#include <stdint.h>

/* Room one unsigned 64-bit argument can take: "$20\r\n" + 20 digits + "\r\n". */
#define TALLY_RESP_U64_MAX 27

/** Writes "*<n>\r\n" into @p buf; returns its length. @p buf needs 24 bytes. */
size_t tally_resp_array(char *buf, size_t n);
/** Writes "$<len>\r\n<s>\r\n"; returns its length. @p buf needs len + 24 bytes. */
size_t tally_resp_bulk(char *buf, const char *s, size_t len);
/** Writes @p v in decimal as a bulk string; returns its length (at most TALLY_RESP_U64_MAX). */
size_t tally_resp_bulk_u64(char *buf, uint64_t v);

#endif
