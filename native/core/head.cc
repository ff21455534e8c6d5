#include "head.h"

#include <array>
#include <cstring>

namespace tsgi {
namespace {

// Character classes: bit 1 = RFC 9110 tchar, bit 2 = field-value / reason character.
constexpr uint8_t kToken = 1;
constexpr uint8_t kText = 2;

constexpr std::array<uint8_t, 256> BuildClasses() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    bool text = c == '\t' || (c >= 0x20 && c <= 0x7E) || c >= 0x80;
    bool token = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    for (const char* p = "!#$%&'*+-.^_`|~"; *p != '\0'; ++p) {
      if (c == *p) token = true;
    }
    t[c] = static_cast<uint8_t>((token ? kToken : 0) | (text ? kText : 0));
  }
  return t;
}

constexpr std::array<uint8_t, 256> kClasses = BuildClasses();

// Copies n characters of class `cls` to out; false at the first other character (a UTF-16
// unit above 0xFF is in no class).
template <typename Ch>
inline bool CopyClass(uint8_t* out, const Ch* s, size_t n, uint8_t cls) {
  uint8_t ok = cls;
  for (size_t i = 0; i < n; ++i) {
    uint32_t c = static_cast<uint32_t>(s[i]);
    uint8_t k = c <= 0xFF ? kClasses[c] : 0;
    ok &= k;
    out[i] = static_cast<uint8_t>(c);
  }
  return ok != 0;
}

template <typename Ch>
inline bool IsDigit(Ch c, uint32_t lo) {
  return static_cast<uint32_t>(c) >= lo && static_cast<uint32_t>(c) <= '9';
}

constexpr char kCgiPrefix[] = "Status: ";
constexpr char kHttpPrefix[] = "HTTP/1.1 ";

}  // namespace

template <typename Ch>
size_t HeadSize(const StrList<Ch>& list, HeadStyle style) {
  size_t n = (style == HeadStyle::kCgi ? sizeof(kCgiPrefix) : sizeof(kHttpPrefix)) - 1 + 2 + 2;
  for (size_t i = 0; i < list.count; ++i) n += list.lens[i];
  n += (list.count / 2) * 4;
  return n;
}

template <typename Ch>
Error WriteHead(uint8_t* out, const StrList<Ch>& list, HeadStyle style) {
  StrCursor<Ch> cursor(list);
  size_t n = 0;
  const Ch* status = cursor.Next(&n);
  bool status_ok = n >= 3 && IsDigit(status[0], '1') && IsDigit(status[1], '0') &&
                   IsDigit(status[2], '0') && (n == 3 || static_cast<uint32_t>(status[3]) == ' ');
  const char* prefix = style == HeadStyle::kCgi ? kCgiPrefix : kHttpPrefix;
  size_t prefix_len = std::strlen(prefix);
  std::memcpy(out, prefix, prefix_len);
  out += prefix_len;
  if (!status_ok || !CopyClass(out, status, n, kText)) return MakeError(Err::kHeadBadStatus);
  out += n;
  *out++ = '\r';
  *out++ = '\n';
  for (size_t i = 1; i + 1 < list.count; i += 2) {
    size_t name_len = 0;
    const Ch* name = cursor.Next(&name_len);
    if (name_len == 0 || !CopyClass(out, name, name_len, kToken)) {
      return MakeError(Err::kHeadBadName, static_cast<double>(i - 1));
    }
    out += name_len;
    *out++ = ':';
    *out++ = ' ';
    size_t val_len = 0;
    const Ch* val = cursor.Next(&val_len);
    if (!CopyClass(out, val, val_len, kText)) {
      return MakeError(Err::kHeadBadValue, static_cast<double>(i - 1));
    }
    out += val_len;
    *out++ = '\r';
    *out++ = '\n';
  }
  *out++ = '\r';
  *out++ = '\n';
  return Error();
}

template size_t HeadSize<uint8_t>(const StrList<uint8_t>&, HeadStyle);
template size_t HeadSize<char16_t>(const StrList<char16_t>&, HeadStyle);
template Error WriteHead<uint8_t>(uint8_t*, const StrList<uint8_t>&, HeadStyle);
template Error WriteHead<char16_t>(uint8_t*, const StrList<char16_t>&, HeadStyle);

}  // namespace tsgi
