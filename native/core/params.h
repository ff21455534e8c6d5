// FastCGI name-value pairs: decoding (PARAMS streams, GET_VALUES, GET_VALUES_RESULT) and
// encoding.
#ifndef TSGI_CORE_PARAMS_H_
#define TSGI_CORE_PARAMS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common.h"
#include "errors.h"

namespace tsgi {

// Decodes the whole block p[0..n) into *out (cleared first). At most max_pairs pairs
// (FCGI_TOO_MANY_PARAMS when one more would begin); FCGI_BAD_PARAMS when a length or a
// name/value runs past the end.
Error DecodeFcgiPairs(const uint8_t* p, size_t n, double max_pairs, std::vector<Pair>* out);

// Bytes of one encoded length.
inline size_t FcgiLengthSize(size_t len) { return len < 0x80 ? 1 : 4; }

// Checks `list` for FastCGI pair encoding (names_only: every string is a name with an empty
// value; else the count must be even, which the caller has checked) and sets *size to the
// encoded size. ENCODE_NOT_LATIN1 for the first string that is not latin-1.
template <typename Ch>
Error FcgiPairsSize(const StrList<Ch>& list, bool names_only, size_t* size);

// Writes the pairs of `list` (checked by FcgiPairsSize) at out; returns the end.
template <typename Ch>
uint8_t* FcgiWritePairs(uint8_t* out, const StrList<Ch>& list, bool names_only);

}  // namespace tsgi

#endif  // TSGI_CORE_PARAMS_H_
