#include "params.h"

#include "names.h"

namespace tsgi {
namespace {

// Reads one FastCGI length at *pos; false when it runs past n.
inline bool ReadLength(const uint8_t* p, size_t n, size_t* pos, uint32_t* len) {
  if (*pos >= n) return false;
  uint8_t b = p[*pos];
  if (b < 0x80) {
    *len = b;
    *pos += 1;
    return true;
  }
  if (n - *pos < 4) return false;
  *len = (static_cast<uint32_t>(b & 0x7F) << 24) | (static_cast<uint32_t>(p[*pos + 1]) << 16) |
         (static_cast<uint32_t>(p[*pos + 2]) << 8) | static_cast<uint32_t>(p[*pos + 3]);
  *pos += 4;
  return true;
}

template <typename Ch>
inline uint8_t* WriteLength(uint8_t* out, size_t len) {
  if (len < 0x80) {
    *out++ = static_cast<uint8_t>(len);
    return out;
  }
  out[0] = static_cast<uint8_t>(((len >> 24) & 0x7F) | 0x80);
  out[1] = static_cast<uint8_t>(len >> 16);
  out[2] = static_cast<uint8_t>(len >> 8);
  out[3] = static_cast<uint8_t>(len);
  return out + 4;
}

template <typename Ch>
inline uint8_t* WriteChars(uint8_t* out, const Ch* p, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(p[i]);
  return out + n;
}

}  // namespace

Error DecodeFcgiPairs(const uint8_t* p, size_t n, double max_pairs, std::vector<Pair>* out) {
  out->clear();
  const size_t cap = PairCap(max_pairs);
  size_t pos = 0;
  for (size_t count = 0; pos < n; ++count) {
    if (count >= cap) {
      return MakeError(Err::kFcgiTooManyParams, 0, max_pairs);
    }
    uint32_t name_len = 0;
    uint32_t val_len = 0;
    if (!ReadLength(p, n, &pos, &name_len) || !ReadLength(p, n, &pos, &val_len)) {
      return MakeError(Err::kFcgiBadParams);
    }
    if (name_len > n - pos || val_len > n - pos - name_len) return MakeError(Err::kFcgiBadParams);
    Pair pair;
    pair.name_id = InternName(p + pos, name_len);
    pair.name_off = static_cast<uint32_t>(pos);
    pair.name_len = name_len;
    pair.val_off = static_cast<uint32_t>(pos + name_len);
    pair.val_len = val_len;
    out->push_back(pair);
    pos += static_cast<size_t>(name_len) + val_len;
  }
  return Error();
}

template <typename Ch>
Error FcgiPairsSize(const StrList<Ch>& list, bool names_only, size_t* size) {
  StrCursor<Ch> cursor(list);
  size_t total = 0;
  for (size_t i = 0; i < list.count; ++i) {
    size_t n = 0;
    const Ch* s = cursor.Next(&n);
    if (!AllLatin1(s, n)) return MakeError(Err::kEncodeNotLatin1);
    total += FcgiLengthSize(n) + n;
    if (names_only) total += 1;  // the empty value's length
  }
  *size = total;
  return Error();
}

template <typename Ch>
uint8_t* FcgiWritePairs(uint8_t* out, const StrList<Ch>& list, bool names_only) {
  StrCursor<Ch> cursor(list);
  size_t step = names_only ? 1 : 2;
  for (size_t i = 0; i + step <= list.count; i += step) {
    size_t name_len = 0;
    const Ch* name = cursor.Next(&name_len);
    size_t val_len = 0;
    const Ch* val = names_only ? name : cursor.Next(&val_len);
    out = WriteLength<Ch>(out, name_len);
    out = WriteLength<Ch>(out, val_len);
    out = WriteChars(out, name, name_len);
    out = WriteChars(out, val, val_len);
  }
  return out;
}

template Error FcgiPairsSize<uint8_t>(const StrList<uint8_t>&, bool, size_t*);
template Error FcgiPairsSize<char16_t>(const StrList<char16_t>&, bool, size_t*);
template uint8_t* FcgiWritePairs<uint8_t>(uint8_t*, const StrList<uint8_t>&, bool);
template uint8_t* FcgiWritePairs<char16_t>(uint8_t*, const StrList<char16_t>&, bool);

}  // namespace tsgi
