// libFuzzer harness: the encoders of native/core (response head, FastCGI records and pairs,
// SCGI and uwsgi request heads), for latin-1 bytes and UTF-16 units.
//
// Each encoder's output is sized by the core itself (HeadSize, FcgiResponseSize, ...) into an
// exact heap buffer (ASan sees any overrun), compared with a plain reference written from
// docs/codec.md (head), or parsed back with the core's own parsers (records, pairs, SCGI,
// uwsgi), and the error (code, variant, index) is compared with the one the contract
// predicts. Violations end in __builtin_trap().
//
// Input: byte 0 picks the operation and the character type, byte 1 its options, then a list
// of strings: a length byte L < 250 followed by L characters (1 byte each, or 2 bytes
// little-endian each for UTF-16); L >= 250 is a long synthetic string: 2 more bytes give
// n + ((L - 250) & 1) * 65536 characters, all equal to the next character (70000 such
// characters at most per input).
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/fastcgi.h"
#include "core/head.h"
#include "core/params.h"
#include "core/scgi.h"
#include "core/uwsgi.h"
#include "parser_harness.h"

namespace {

using tsgi::Err;
using tsgi::Error;
using tsgi_fuzz::NormEvent;
using U32s = std::vector<uint32_t>;

struct Reader {
  const uint8_t* p;
  size_t n;
  uint8_t Byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
};

// Strings as UTF-32-ish units (enough for both character types).
std::vector<U32s> ReadStrings(Reader* r, bool wide, size_t max_count) {
  std::vector<U32s> out;
  size_t budget = 70000;  // characters of synthetic strings per input, to keep runs fast
  while (r->n > 0 && out.size() < max_count) {
    uint8_t l = r->Byte();
    U32s s;
    auto unit = [&]() -> uint32_t {
      uint32_t lo = r->Byte();
      return wide ? lo | (static_cast<uint32_t>(r->Byte()) << 8) : lo;
    };
    if (l < 250) {
      for (size_t i = 0; i < l && r->n > 0; ++i) s.push_back(unit());
    } else {
      size_t count = r->Byte();
      count |= static_cast<size_t>(r->Byte()) << 8;
      count += static_cast<size_t>((l - 250) & 1) * 65536;
      if (count > budget) count = budget;
      budget -= count;
      s.assign(count, unit());
    }
    out.push_back(std::move(s));
  }
  return out;
}

// A StrList over owned storage.
template <typename Ch>
struct Owned {
  std::vector<Ch> chars;
  std::vector<uint32_t> lens;
  tsgi::StrList<Ch> list{nullptr, nullptr, 0};

  explicit Owned(const std::vector<U32s>& strs) {
    for (const U32s& s : strs) {
      for (uint32_t u : s) chars.push_back(static_cast<Ch>(u));
      lens.push_back(static_cast<uint32_t>(s.size()));
    }
    list = {chars.data(), lens.data(), lens.size()};
  }
};

bool IsLatin1(const U32s& s) {
  for (uint32_t u : s) {
    if (u > 0xFF) return false;
  }
  return true;
}
std::vector<uint8_t> Bytes(const U32s& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::vector<uint8_t> Bytes(const char* s) { return std::vector<uint8_t>(s, s + std::strlen(s)); }

bool SameError(const Error& e, Err code, int32_t variant = 0, double a = 0) {
  return e.code == code && e.variant == variant && e.a == a;
}

template <typename Parser>
tsgi_fuzz::RunResult Parse(const std::vector<uint8_t>& bytes, const tsgi_fuzz::Traits& t) {
  tsgi::Limits l;
  l.max_params_bytes = std::numeric_limits<double>::infinity();
  l.max_pairs = std::numeric_limits<double>::infinity();
  return tsgi_fuzz::Feed<Parser>(l, bytes.data(), {bytes.size()}, 8, t);
}

// ---- response head -------------------------------------------------------------------

bool IsText(uint32_t c) {
  return c == '\t' || (c >= 0x20 && c <= 0x7E) || (c >= 0x80 && c <= 0xFF);
}
bool IsToken(uint32_t c) {
  if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) return true;
  return c < 0x80 && c != 0 && std::strchr("!#$%&'*+-.^_`|~", static_cast<int>(c)) != nullptr;
}

// The reference: the error the contract predicts (code, index), else the bytes.
Error RefHead(const std::vector<U32s>& list, bool http, std::vector<uint8_t>* out) {
  const U32s& st = list[0];
  bool ok = st.size() >= 3 && st[0] >= '1' && st[0] <= '9' && st[1] >= '0' && st[1] <= '9' &&
            st[2] >= '0' && st[2] <= '9' && (st.size() == 3 || st[3] == ' ');
  for (uint32_t c : st) ok = ok && IsText(c);
  if (!ok) return tsgi::MakeError(Err::kHeadBadStatus);
  *out = Bytes(http ? "HTTP/1.1 " : "Status: ");
  out->insert(out->end(), st.begin(), st.end());
  out->push_back('\r');
  out->push_back('\n');
  for (size_t i = 1; i + 1 < list.size(); i += 2) {
    const U32s& name = list[i];
    const U32s& value = list[i + 1];
    bool name_ok = !name.empty();
    for (uint32_t c : name) name_ok = name_ok && IsToken(c);
    if (!name_ok) return tsgi::MakeError(Err::kHeadBadName, static_cast<double>(i - 1));
    for (uint32_t c : value) {
      if (!IsText(c)) return tsgi::MakeError(Err::kHeadBadValue, static_cast<double>(i - 1));
    }
    out->insert(out->end(), name.begin(), name.end());
    out->push_back(':');
    out->push_back(' ');
    out->insert(out->end(), value.begin(), value.end());
    out->push_back('\r');
    out->push_back('\n');
  }
  out->push_back('\r');
  out->push_back('\n');
  return Error();
}

template <typename Ch>
void FuzzHead(std::vector<U32s> strs, uint8_t opt) {
  if (strs.empty()) strs.emplace_back();
  if (strs.size() % 2 == 0) strs.pop_back();  // status + name/value pairs
  bool http = opt & 1;
  Owned<Ch> owned(strs);
  size_t size = tsgi::HeadSize(owned.list, http ? tsgi::HeadStyle::kHttp : tsgi::HeadStyle::kCgi);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[size]);
  Error e =
      tsgi::WriteHead(buf.get(), owned.list, http ? tsgi::HeadStyle::kHttp : tsgi::HeadStyle::kCgi);
  std::vector<uint8_t> want;
  Error ref = RefHead(strs, http, &want);
  FUZZ_CHECK(e.code == ref.code && e.variant == ref.variant && e.a == ref.a);
  if (e.ok()) {
    FUZZ_CHECK(want.size() == size && std::memcmp(want.data(), buf.get(), size) == 0);
  }
}

// ---- FastCGI -------------------------------------------------------------------------

// Records in bytes -> checks the framing rules of the encoders (version 1, padding to 8,
// content <= 65528 for streams) while walking.
void CheckFraming(const std::vector<uint8_t>& b) {
  size_t pos = 0;
  while (pos < b.size()) {
    FUZZ_CHECK(b.size() - pos >= 8);
    FUZZ_CHECK(b[pos] == 1 && b[pos + 7] == 0);
    size_t len = (static_cast<size_t>(b[pos + 4]) << 8) | b[pos + 5];
    size_t pad = b[pos + 6];
    FUZZ_CHECK(pad == tsgi::FcgiPad(len));
    if (b[pos + 1] >= 4 && b[pos + 1] <= 8) FUZZ_CHECK(len <= tsgi::kFcgiMaxChunk);
    FUZZ_CHECK(b.size() - pos - 8 >= len + pad);
    for (size_t i = 0; i < pad; ++i) FUZZ_CHECK(b[pos + 8 + len + i] == 0);
    pos += 8 + len + pad;
  }
}

std::vector<std::vector<uint8_t>> PairsOf(const std::vector<U32s>& strs, bool names_only) {
  std::vector<std::vector<uint8_t>> out;
  for (size_t i = 0; i < strs.size(); ++i) {
    out.push_back(Bytes(strs[i]));
    if (names_only) out.emplace_back();
  }
  return out;
}

template <typename Ch>
void FuzzFcgiParams(std::vector<U32s> strs, uint8_t opt, uint16_t id) {
  if (strs.size() % 2 == 1) strs.pop_back();
  if (id == 0) id = 1;
  Owned<Ch> owned(strs);
  std::vector<uint8_t> scratch;
  std::vector<uint8_t> out;
  Error e = tsgi::EncodeFcgiParams(id, owned.list, &scratch, &out);
  bool latin1 = true;
  for (const U32s& s : strs) latin1 = latin1 && IsLatin1(s);
  if (!latin1) {
    FUZZ_CHECK(SameError(e, Err::kEncodeNotLatin1));
    return;
  }
  FUZZ_CHECK(e.ok());
  CheckFraming(out);
  // A BEGIN_REQUEST first exercises the stream-dropping path of the parser too.
  std::vector<uint8_t> wire(16);
  tsgi::FcgiWriteBeginRequest(wire.data(), id, opt, 1);
  wire.insert(wire.end(), out.begin(), out.end());
  tsgi_fuzz::RunResult r = Parse<tsgi::FcgiParser>(wire, tsgi_fuzz::kFcgiTraits);
  FUZZ_CHECK(!r.dead && r.events.size() == 2);
  FUZZ_CHECK(r.events[0].w0 == (tsgi::kEvBegin | (uint32_t{id} << 8)) && r.events[0].w1 == opt);
  FUZZ_CHECK(r.events[1].w0 == (tsgi::kEvParams | (uint32_t{id} << 8)));
  FUZZ_CHECK(r.events[1].strs == PairsOf(strs, false));
}

template <typename Ch>
void FuzzFcgiValues(std::vector<U32s> strs, bool names_only) {
  if (!names_only && strs.size() % 2 == 1) strs.pop_back();
  Owned<Ch> owned(strs);
  std::vector<uint8_t> out;
  Error e = tsgi::EncodeFcgiValues(owned.list, names_only, &out);
  size_t size = 0;
  for (const U32s& s : strs) {
    if (!IsLatin1(s)) {
      FUZZ_CHECK(SameError(e, Err::kEncodeNotLatin1));
      return;
    }
    size += tsgi::FcgiLengthSize(s.size()) + s.size() + (names_only ? 1 : 0);
  }
  if (size > 0xFFFF) {
    FUZZ_CHECK(SameError(e, Err::kEncodeTooLarge, tsgi::kVariantRecordTooLarge));
    return;
  }
  FUZZ_CHECK(e.ok());
  CheckFraming(out);
  tsgi_fuzz::RunResult r = Parse<tsgi::FcgiParser>(out, tsgi_fuzz::kFcgiTraits);
  FUZZ_CHECK(!r.dead && r.events.size() == 1);
  FUZZ_CHECK(r.events[0].w0 == (names_only ? tsgi::kEvGetValues : tsgi::kEvGetValuesResult));
  FUZZ_CHECK(r.events[0].strs == PairsOf(strs, names_only));
}

// A response: status + headers from the strings, a synthetic body of body_len bytes.
template <typename Ch>
void FuzzFcgiResponse(std::vector<U32s> strs, uint8_t opt, uint16_t id, size_t body_len) {
  if (strs.empty()) strs.push_back({'2', '0', '0'});
  if (strs.size() % 2 == 0) strs.pop_back();
  if (id == 0) id = 1;
  bool end = opt & 1;
  std::vector<uint8_t> body(body_len);
  for (size_t i = 0; i < body_len; ++i) body[i] = static_cast<uint8_t>(i * 7 + opt);
  Owned<Ch> owned(strs);
  size_t head = tsgi::HeadSize(owned.list, tsgi::HeadStyle::kCgi);
  size_t size = tsgi::FcgiResponseSize(head, body_len, end);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[size]);
  std::vector<uint8_t> scratch;
  Error e =
      tsgi::WriteFcgiResponse(buf.get(), id, owned.list, body.data(), body_len, end, &scratch);
  std::vector<uint8_t> want_head;
  Error ref = RefHead(strs, false, &want_head);
  FUZZ_CHECK(e.code == ref.code && e.variant == ref.variant && e.a == ref.a);
  if (!e.ok()) return;
  std::vector<uint8_t> wire(buf.get(), buf.get() + size);
  CheckFraming(wire);
  tsgi_fuzz::RunResult r = Parse<tsgi::FcgiParser>(wire, tsgi_fuzz::kFcgiTraits);
  FUZZ_CHECK(!r.dead);
  std::vector<uint8_t> want = want_head;
  want.insert(want.end(), body.begin(), body.end());
  size_t i = 0;
  if (!want.empty()) {
    FUZZ_CHECK(r.events.size() > i && r.events[i].w0 == (tsgi::kEvStdout | (uint32_t{id} << 8)));
    FUZZ_CHECK(r.events[i].data == want);
    ++i;
  }
  if (end) {
    FUZZ_CHECK(r.events.size() == i + 2);
    FUZZ_CHECK(r.events[i].w0 == ((tsgi::kEvEndBase + tsgi::kEvStdout) | (uint32_t{id} << 8)));
    FUZZ_CHECK(r.events[i + 1].w0 == (tsgi::kEvEnd | (uint32_t{id} << 8)));
    FUZZ_CHECK(r.events[i + 1].w1 == 0 && r.events[i + 1].w2 == 0);
  } else {
    FUZZ_CHECK(r.events.size() == i);
  }
}

// ---- SCGI / uwsgi --------------------------------------------------------------------

bool Is(const U32s& s, const char* lit) {
  size_t n = std::strlen(lit);
  if (s.size() != n) return false;
  for (size_t i = 0; i < n; ++i) {
    if (s[i] != static_cast<uint8_t>(lit[i])) return false;
  }
  return true;
}

template <typename Ch>
void FuzzScgi(std::vector<U32s> strs, uint64_t content_length) {
  if (strs.size() % 2 == 1) strs.pop_back();
  Owned<Ch> owned(strs);
  std::vector<uint8_t> out;
  Error e = tsgi::EncodeScgiRequest(owned.list, content_length, &out);
  std::vector<std::vector<uint8_t>> want;
  want.push_back(Bytes("CONTENT_LENGTH"));
  want.push_back(Bytes(std::to_string(content_length).c_str()));
  want.push_back(Bytes("SCGI"));
  want.push_back(Bytes("1"));
  for (size_t i = 0; i < strs.size(); ++i) {
    if (!IsLatin1(strs[i])) {
      FUZZ_CHECK(SameError(e, Err::kEncodeNotLatin1));
      return;
    }
    for (uint32_t c : strs[i]) {
      if (c == 0) {
        FUZZ_CHECK(SameError(e, Err::kEncodeBadArgument, tsgi::kVariantScgiNul));
        return;
      }
    }
    if (i % 2 == 0 && !Is(strs[i], "CONTENT_LENGTH") && !Is(strs[i], "SCGI")) {
      want.push_back(Bytes(strs[i]));
      want.push_back(Bytes(strs[i + 1]));
    }
  }
  FUZZ_CHECK(e.ok());
  tsgi_fuzz::RunResult r = Parse<tsgi::ScgiParser>(out, tsgi_fuzz::kBodyTraits);
  if (want[1].size() > 15) {
    // The encoder takes up to 2^53-1 (16 digits), the parser 1-15 digits (docs/codec.md).
    FUZZ_CHECK(r.dead && r.events.size() == 1 &&
               r.events[0].err.code == Err::kScgiBadContentLength);
    return;
  }
  FUZZ_CHECK(!r.dead && !r.events.empty());
  FUZZ_CHECK(r.events[0].w0 == tsgi::kEvBlockParams);
  FUZZ_CHECK(r.events[0].w2 == static_cast<uint32_t>(content_length) &&
             r.events[0].w3 == static_cast<uint32_t>(content_length >> 32));
  FUZZ_CHECK(r.events[0].strs == want);
  FUZZ_CHECK(r.events.size() == (content_length == 0 ? 2u : 1u));
}

template <typename Ch>
void FuzzUwsgi(std::vector<U32s> strs, uint8_t m1, uint8_t m2) {
  if (strs.size() % 2 == 1) strs.pop_back();
  Owned<Ch> owned(strs);
  std::vector<uint8_t> out;
  Error e = tsgi::EncodeUwsgiRequest(owned.list, m1, m2, &out);
  size_t block = 0;
  for (const U32s& s : strs) {
    if (!IsLatin1(s)) {
      FUZZ_CHECK(SameError(e, Err::kEncodeNotLatin1));
      return;
    }
    if (s.size() > 0xFFFF) {
      FUZZ_CHECK(SameError(e, Err::kEncodeTooLarge, tsgi::kVariantUwsgiTooLarge));
      return;
    }
    block += 2 + s.size();
  }
  if (block > 0xFFFF) {
    FUZZ_CHECK(SameError(e, Err::kEncodeTooLarge, tsgi::kVariantUwsgiTooLarge));
    return;
  }
  FUZZ_CHECK(e.ok());
  FUZZ_CHECK(out.size() == 4 + block && out[0] == m1 && out[3] == m2);
  if (m1 != 0) return;  // the parser only takes modifier1 0
  // The parser's verdict on CONTENT_LENGTH (first one: absent, empty or 1-15 digits).
  bool cl_ok = true;
  uint64_t cl = 0;
  for (size_t i = 0; i + 1 < strs.size(); i += 2) {
    if (!Is(strs[i], "CONTENT_LENGTH")) continue;
    const U32s& v = strs[i + 1];
    cl_ok = v.size() <= 15;
    for (uint32_t c : v) {
      cl_ok = cl_ok && c >= '0' && c <= '9';
      cl = cl * 10 + (c - '0');
    }
    break;
  }
  tsgi_fuzz::RunResult r = Parse<tsgi::UwsgiParser>(out, tsgi_fuzz::kBodyTraits);
  if (!cl_ok) {
    FUZZ_CHECK(r.dead && r.events.size() == 1 &&
               r.events[0].err.code == Err::kUwsgiBadContentLength);
    return;
  }
  FUZZ_CHECK(!r.dead && !r.events.empty());
  FUZZ_CHECK(r.events[0].w0 == (tsgi::kEvBlockParams | (uint32_t{m1} << 8) | (uint32_t{m2} << 16)));
  FUZZ_CHECK(r.events[0].w2 == static_cast<uint32_t>(cl) &&
             r.events[0].w3 == static_cast<uint32_t>(cl >> 32));
  FUZZ_CHECK(r.events[0].strs == PairsOf(strs, false));
  FUZZ_CHECK(r.events.size() == (cl == 0 ? 2u : 1u));
}

template <typename Ch>
void Dispatch(unsigned op, uint8_t opt, Reader* r) {
  const bool wide = sizeof(Ch) == 2;
  switch (op) {
    case 0:
      FuzzHead<Ch>(ReadStrings(r, wide, 64), opt);
      break;
    case 1: {
      uint16_t id = r->Byte();
      id = static_cast<uint16_t>(id | r->Byte() << 8);
      FuzzFcgiParams<Ch>(ReadStrings(r, wide, 64), opt, id);
      break;
    }
    case 2:
      FuzzFcgiValues<Ch>(ReadStrings(r, wide, 64), opt & 1);
      break;
    case 3: {
      uint16_t id = r->Byte();
      id = static_cast<uint16_t>(id | r->Byte() << 8);
      size_t body = r->Byte();
      if (opt & 2) {
        body |= static_cast<size_t>(r->Byte()) << 8;
        body |= static_cast<size_t>(r->Byte() & 1) << 16;
      }
      FuzzFcgiResponse<Ch>(ReadStrings(r, wide, 64), opt, id, body);
      break;
    }
    case 4: {
      uint64_t cl = 0;
      for (int i = 0; i < 7; ++i) cl = cl << 8 | r->Byte();
      cl >>= (opt & 63);  // mostly small, up to 2^56-1 (the encoder takes up to 2^53-1)
      if (cl > (uint64_t{1} << 53) - 1) cl = (uint64_t{1} << 53) - 1;
      FuzzScgi<Ch>(ReadStrings(r, wide, 64), cl);
      break;
    }
    default: {
      uint8_t m1 = (opt & 0x80) ? r->Byte() : 0;
      uint8_t m2 = r->Byte();
      FuzzUwsgi<Ch>(ReadStrings(r, wide, 64), m1, m2);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  unsigned op = data[0] % 6;
  bool wide = (data[0] / 6) & 1;
  Reader r{data + 2, size - 2};
  if (wide) {
    Dispatch<char16_t>(op, data[1], &r);
  } else {
    Dispatch<uint8_t>(op, data[1], &r);
  }
  return 0;
}
