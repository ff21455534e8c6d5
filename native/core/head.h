// The response header block: status line, `Name: value` lines, empty line (CRLF).
#ifndef TSGI_CORE_HEAD_H_
#define TSGI_CORE_HEAD_H_

#include <cstddef>
#include <cstdint>

#include "common.h"
#include "errors.h"

namespace tsgi {

enum class HeadStyle : uint8_t { kCgi, kHttp };

// `list` holds the status then the flat headers (name, value, ...); its count is odd
// (the caller checks that the headers are pairs).
// Bytes of the head, assuming every character is one byte.
template <typename Ch>
size_t HeadSize(const StrList<Ch>& list, HeadStyle style);

// Validates (status, then each header name before its value) and writes the head at out
// (HeadSize bytes). On HEAD_BAD_NAME / HEAD_BAD_VALUE, `a` is the index of the header name
// in the flat headers array. The output is unspecified on error.
template <typename Ch>
Error WriteHead(uint8_t* out, const StrList<Ch>& list, HeadStyle style);

}  // namespace tsgi

#endif  // TSGI_CORE_HEAD_H_
