// Types shared by the parsers and encoders of the native codec core (pure C++17).
#ifndef TSGI_CORE_COMMON_H_
#define TSGI_CORE_COMMON_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "boundary.h"

namespace tsgi {

// Limits given by the caller (see Limits in lib/codec/types.ts). Doubles, so that any JS
// number (Infinity included) compares exactly as it does in the TypeScript codec.
struct Limits {
  double max_params_bytes = 131072;
  double max_pairs = 1000;
  double max_record_body = 65535;
};

// The number of pairs at which the limit `max_pairs` refuses one more: for any count,
// count >= PairCap(max_pairs) exactly when static_cast<double>(count) >= max_pairs, so the
// parsers compare integers per pair and refuse at the same pair as the TypeScript codec.
inline size_t PairCap(double max_pairs) {
  if (max_pairs != max_pairs) return SIZE_MAX;  // NaN: no count compares >= it
  if (max_pairs <= 0) return 0;
  if (max_pairs >= 9007199254740992.0) return SIZE_MAX;  // 2^53 and above, Infinity
  size_t cap = static_cast<size_t>(max_pairs);
  return static_cast<double>(cap) < max_pairs ? cap + 1 : cap;
}

// Event kinds written by the parsers. FastCGI kinds 1-11 are the record types; the empty
// stream records get kEndBase + type.
enum EventKind : uint32_t {
  kEvBegin = 1,
  kEvAbort = 2,
  kEvEnd = 3,
  kEvParams = 4,
  kEvStdin = 5,
  kEvStdout = 6,
  kEvStderr = 7,
  kEvData = 8,
  kEvGetValues = 9,
  kEvGetValuesResult = 10,
  kEvUnknownType = 11,
  kEvUnknown = 12,
  kEvEndBase = 8,       // 13 stdinEnd, 14 stdoutEnd, 15 stderrEnd, 16 dataEnd
  kEvBlockParams = 20,  // SCGI/uwsgi params
  kEvBody = 21,
  kEvBodyEnd = 22,
  kEvError = 31,
};

// One event: four 32-bit words, the layout the binding hands to TypeScript unchanged.
//   w[0] = kind | requestId << 8
//   stream data / body: w[1] = offset in the chunk, w[2] = length
//   begin: w[1] = role, w[2] = flags        end: w[1] = appStatus, w[2] = protocolStatus
//   params/getValues/getValuesResult: w[1] = number of pairs (descriptors in Parser pairs())
//   SCGI/uwsgi params: w[1] = pairs, w[2]/w[3] = contentLength low/high 32 bits
//     (uwsgi: modifier1 | modifier2 << 8 in the requestId bits of w[0])
//   unknownType/unknown: w[1] = record type          error: see Parser error()
struct Event {
  uint32_t w[4];
};

// A decoded name-value pair: offsets into the params block, and the id of a well-known
// name (0 when the name is not in the table of names.h).
struct Pair {
  uint32_t name_id;
  uint32_t name_off;
  uint32_t name_len;
  uint32_t val_off;
  uint32_t val_len;
};
using boundary::kPairWords;  // native/core/boundary.h

// Where a push() stopped: the bytes consumed from the chunk, the events written and whether
// the parser stopped early (event space full, or a second params block pending) with work
// left for another call on the same chunk from `pos`.
struct PushResult {
  size_t pos;
  size_t events;
  bool more;
};

// Where a parser stands between pushes.
enum class Standing : int32_t {
  kBusy = 0,      // holds state that the next push() needs
  kIdle = 1,      // the same as a new parser (its limits aside)
  kFinished = 2,  // ignores all further input (SCGI after its request)
  kDead = 3,      // after an error event
};

// Releases the memory of a reused buffer when it grew past `keep` bytes.
template <typename V>
inline void Trim(V* v, size_t keep = 65536) {
  v->clear();
  if (v->capacity() * sizeof(typename V::value_type) > keep) V().swap(*v);
}

// A list of strings given as one run of characters and the length of each string, in order.
// Ch is uint8_t (latin-1 bytes) or char16_t (UTF-16 code units straight from JavaScript; a
// unit above 0xFF is not latin-1).
template <typename Ch>
struct StrList {
  const Ch* chars;
  const uint32_t* lens;
  size_t count;
};

// Walks a StrList string by string.
template <typename Ch>
class StrCursor {
 public:
  explicit StrCursor(const StrList<Ch>& list) : list_(list) {}
  // The next string; returns its characters and sets *n to its length.
  const Ch* Next(size_t* n) {
    const Ch* p = list_.chars + off_;
    *n = list_.lens[index_];
    off_ += *n;
    ++index_;
    return p;
  }

 private:
  const StrList<Ch>& list_;
  size_t index_ = 0;
  size_t off_ = 0;
};

template <typename Ch>
inline bool AllLatin1(const Ch* p, size_t n) {
  if (sizeof(Ch) == 1) return true;
  uint32_t acc = 0;
  for (size_t i = 0; i < n; ++i) acc |= static_cast<uint32_t>(p[i]);
  return acc <= 0xFF;
}

// Whether the n bytes at a and b are equal: for the short strings of params (names, values
// of a few dozen bytes), where a call to memcmp costs more than the comparison. Words are
// compared, the last one overlapping the one before when n is not a multiple of the size.
inline uint64_t Load8(const unsigned char* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}

inline uint32_t Load4(const unsigned char* p) {
  uint32_t x;
  std::memcpy(&x, p, 4);
  return x;
}

inline bool SameBytes(const void* a, const void* b, size_t n) {
  const unsigned char* p = static_cast<const unsigned char*>(a);
  const unsigned char* q = static_cast<const unsigned char*>(b);
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) {
      if (Load8(p + i) != Load8(q + i)) return false;
    }
    return Load8(p + n - 8) == Load8(q + n - 8);
  }
  if (n >= 4) return Load4(p) == Load4(q) && Load4(p + n - 4) == Load4(q + n - 4);
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != q[i]) return false;
  }
  return true;
}

}  // namespace tsgi

#endif  // TSGI_CORE_COMMON_H_
