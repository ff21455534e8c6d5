// Unit tests of native/core (no Node, no framework): `ctest` runs this binary.
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/fastcgi.h"
#include "core/head.h"
#include "core/names.h"
#include "core/params.h"
#include "core/scgi.h"
#include "core/uwsgi.h"
#include "core/watchdog.h"
#include "test/check.h"

namespace {

using Bytes = std::vector<uint8_t>;
using tsgi::Err;
using tsgi::Error;
using tsgi::Event;

Bytes B(const std::string& s) { return Bytes(s.begin(), s.end()); }

// A string literal with embedded NULs.
#define LIT(s) std::string(s, sizeof(s) - 1)

// An SCGI netstring around `block`.
std::string Net(const std::string& block) {
  return std::to_string(block.size()) + ":" + block + ",";
}

Bytes Record(uint8_t type, uint16_t id, const Bytes& content, uint8_t pad = 0,
             uint8_t version = 1) {
  Bytes r = {version,
             type,
             static_cast<uint8_t>(id >> 8),
             static_cast<uint8_t>(id),
             static_cast<uint8_t>(content.size() >> 8),
             static_cast<uint8_t>(content.size()),
             pad,
             0};
  r.insert(r.end(), content.begin(), content.end());
  r.insert(r.end(), pad, 0xEE);
  return r;
}

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes Pair(const std::string& n, const std::string& v) {
  Bytes out;
  for (size_t len : {n.size(), v.size()}) {
    if (len < 128) {
      out.push_back(static_cast<uint8_t>(len));
    } else {
      out.push_back(static_cast<uint8_t>(0x80 | (len >> 24)));
      out.push_back(static_cast<uint8_t>(len >> 16));
      out.push_back(static_cast<uint8_t>(len >> 8));
      out.push_back(static_cast<uint8_t>(len));
    }
  }
  out.insert(out.end(), n.begin(), n.end());
  out.insert(out.end(), v.begin(), v.end());
  return out;
}

// A parsed event with its block materialised, for comparisons.
struct Ev {
  uint32_t kind;
  uint32_t id;
  std::vector<uint32_t> nums;
  std::vector<std::string> strs;  // pairs, or stream data
  bool operator==(const Ev& o) const {
    return kind == o.kind && id == o.id && nums == o.nums && strs == o.strs;
  }
};

// Feeds `input` in chunks of `step` bytes with room for `cap` events per call, looping on
// `more` like the binding does, and returns every event.
template <typename P>
std::vector<Ev> Run(P* parser, const Bytes& input, size_t step, size_t cap, Err* err = nullptr) {
  std::vector<Ev> out;
  std::vector<Event> events(cap);
  for (size_t off = 0; off < input.size() || (input.empty() && off == 0); off += step) {
    size_t n = std::min(step, input.size() - off);
    const uint8_t* chunk = input.data() + off;
    size_t start = 0;
    for (;;) {
      tsgi::PushResult r = parser->Push(chunk, n, start, events.data(), cap);
      CHECK(r.events <= cap);
      CHECK(r.pos <= n);
      int blocks = 0;
      for (size_t i = 0; i < r.events; ++i) {
        const Event& e = events[i];
        Ev ev{e.w[0] & 0xFF, e.w[0] >> 8, {e.w[1], e.w[2], e.w[3]}, {}};
        if (ev.kind == tsgi::kEvError) {
          if (err != nullptr) *err = parser->error().code;
          CHECK(i + 1 == r.events);
        }
        if (ev.kind == tsgi::kEvParams || ev.kind == tsgi::kEvGetValues ||
            ev.kind == tsgi::kEvGetValuesResult || ev.kind == tsgi::kEvBlockParams) {
          ++blocks;
          const Bytes& blk = parser->block();
          for (const tsgi::Pair& p : parser->pairs()) {
            CHECK(p.name_off + p.name_len <= blk.size());
            CHECK(p.val_off + p.val_len <= blk.size());
            ev.strs.emplace_back(blk.begin() + p.name_off, blk.begin() + p.name_off + p.name_len);
            ev.strs.emplace_back(blk.begin() + p.val_off, blk.begin() + p.val_off + p.val_len);
            if (p.name_id != 0) CHECK(ev.strs[ev.strs.size() - 2] == tsgi::NameAt(p.name_id));
          }
        }
        if (ev.kind == tsgi::kEvBody || (ev.kind >= 5 && ev.kind <= 8)) {
          CHECK(e.w[2] > 0);
          ev.strs.emplace_back(chunk + e.w[1], chunk + e.w[1] + e.w[2]);
          ev.nums = {};
        }
        // Merge stream pieces so that results do not depend on chunking.
        if (!out.empty() && !ev.strs.empty() && ev.nums.empty() && out.back().kind == ev.kind &&
            out.back().id == ev.id && out.back().nums.empty()) {
          out.back().strs[0] += ev.strs[0];
        } else {
          out.push_back(ev);
        }
      }
      CHECK(blocks <= 1);
      if (!r.more) break;
      start = r.pos;
    }
    if (input.empty()) break;
  }
  return out;
}

template <typename P>
void ForEachChunking(const Bytes& input, const tsgi::Limits& limits,
                     void (*check)(const std::vector<Ev>&, Err)) {
  for (size_t step : {size_t{1}, size_t{3}, size_t{7}, size_t{64}, input.size() + 1}) {
    for (size_t cap : {size_t{1}, size_t{2}, size_t{100}}) {
      P parser(limits);
      Err err = Err::kNone;
      std::vector<Ev> evs = Run(&parser, input, step == 0 ? 1 : step, cap, &err);
      check(evs, err);
    }
  }
}

void TestNames() {
  CHECK(tsgi::NameCount() > 60);
  for (size_t id = 1; id < tsgi::NameCount(); ++id) {
    const char* n = tsgi::NameAt(id);
    CHECK(tsgi::InternName(reinterpret_cast<const uint8_t*>(n), std::strlen(n)) == id);
  }
  Bytes x = B("REQUEST_METHODX");
  CHECK(tsgi::InternName(x.data(), x.size()) == 0);
  CHECK(tsgi::InternName(x.data(), 0) == 0);
  CHECK(std::string(tsgi::NameAt(100000)).empty());
  // A name that differs from a table name in any one byte, or is one byte shorter or longer
  // at either end, is not interned (the lookup hashes only the length and the last bytes).
  for (size_t id = 1; id < tsgi::NameCount(); ++id) {
    std::string name = tsgi::NameAt(id);
    for (size_t i = 0; i < name.size(); ++i) {
      Bytes changed = B(name);
      changed[i] = static_cast<uint8_t>(changed[i] ^ 0x20);
      CHECK(tsgi::InternName(changed.data(), changed.size()) == 0);
    }
    for (const std::string& other :
         {name.substr(1), name.substr(0, name.size() - 1), "X" + name, name + "X", "Y_" + name}) {
      Bytes o = B(other);
      CHECK(tsgi::InternName(o.data(), o.size()) == 0);
    }
  }
  CHECK(std::string(tsgi::NameAt(tsgi::kIdContentLength)) == "CONTENT_LENGTH");
  CHECK(std::string(tsgi::NameAt(tsgi::kIdScgi)) == "SCGI");
}

// PairCap gives the count at which a limit refuses, for any double the limit can be.
void TestPairCap() {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (double limit : {nan, -inf, -1.0, 0.0, 0.25, 1.0, 1.5, 2.0, 999.0, 999.5, 1000.0, 1e15,
                       9007199254740991.0, 9007199254740992.0, 1e300, inf}) {
    size_t cap = tsgi::PairCap(limit);
    for (size_t count : {size_t{0}, size_t{1}, size_t{2}, size_t{999}, size_t{1000}, size_t{1001},
                         size_t{1000000000000000}, size_t{9007199254740991}}) {
      CHECK((count >= cap) == (static_cast<double>(count) >= limit));
    }
  }
}

void TestPairs() {
  std::vector<tsgi::Pair> pairs;
  std::string long_value(300, 'v');
  Bytes block = Cat({Pair("REQUEST_METHOD", "GET"), Pair("X", long_value), Pair("", "")});
  CHECK(tsgi::DecodeFcgiPairs(block.data(), block.size(), 1000, &pairs).ok());
  CHECK(pairs.size() == 3);
  CHECK(pairs[0].name_id != 0 && pairs[1].name_id == 0 && pairs[1].val_len == 300);
  // A 4-byte form of a small length is legal.
  Bytes four = {0x80, 0, 0, 1, 0x80, 0, 0, 2, 'a', 'b', 'c'};
  CHECK(tsgi::DecodeFcgiPairs(four.data(), four.size(), 1000, &pairs).ok());
  CHECK(pairs.size() == 1 && pairs[0].name_len == 1 && pairs[0].val_len == 2);
  // Truncations anywhere are malformed; never read past the end.
  for (size_t cut = 1; cut < block.size(); ++cut) {
    Error e = tsgi::DecodeFcgiPairs(block.data(), cut, 1000, &pairs);
    bool boundary = cut == Pair("REQUEST_METHOD", "GET").size() || cut == block.size() - 2;
    CHECK(boundary ? e.ok() : e.code == Err::kFcgiBadParams);
  }
  Bytes huge = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  CHECK(tsgi::DecodeFcgiPairs(huge.data(), huge.size(), 1000, &pairs).code == Err::kFcgiBadParams);
  Error e = tsgi::DecodeFcgiPairs(block.data(), block.size(), 2, &pairs);
  CHECK(e.code == Err::kFcgiTooManyParams && e.b == 2);
  CHECK(tsgi::DecodeFcgiPairs(block.data(), 0, 0, &pairs).ok());  // empty block: no pair begins
}

void TestFcgiRequest() {
  Bytes params = Cat({Pair("REQUEST_METHOD", "POST"), Pair("CONTENT_LENGTH", "5"),
                      Pair("HTTP_X_CUSTOM", std::string(200, 'h'))});
  Bytes half1(params.begin(), params.begin() + 10);
  Bytes half2(params.begin() + 10, params.end());
  Bytes input = Cat(
      {Record(1, 1, {0, 1, 1, 0, 0, 0, 0, 0}, 3), Record(4, 1, half1, 6), Record(4, 1, half2, 255),
       Record(4, 1, {}), Record(5, 1, B("hel"), 5), Record(5, 1, B("lo")), Record(5, 1, {}, 2),
       Record(2, 1, B("xx")), Record(3, 1, {0xFF, 0xFF, 0xFF, 0xFE, 2, 0, 0, 0}),
       Record(9, 0, Cat({Pair("FCGI_MAX_CONNS", "")})), Record(10, 0, {}),
       Record(11, 0, {200, 0, 0, 0, 0, 0, 0, 0}), Record(12, 7, B("abc"), 1), Record(0, 0, {})});
  ForEachChunking<tsgi::FcgiParser>(input, tsgi::Limits(), [](const std::vector<Ev>& evs, Err err) {
    CHECK(err == Err::kNone);
    CHECK(evs.size() == 11);
    if (evs.size() != 11) return;
    CHECK((evs[0] == Ev{tsgi::kEvBegin, 1, {1, 1, 0}, {}}));
    CHECK(evs[1].kind == tsgi::kEvParams && evs[1].strs.size() == 6);
    CHECK(evs[1].strs[0] == "REQUEST_METHOD" && evs[1].strs[1] == "POST");
    CHECK(evs[1].strs[5] == std::string(200, 'h'));
    CHECK(evs[2].kind == tsgi::kEvStdin && evs[2].strs[0] == "hello");
    CHECK((evs[3] == Ev{tsgi::kEvEndBase + 5, 1, {0, 0, 0}, {}}));
    CHECK((evs[4] == Ev{tsgi::kEvAbort, 1, {0, 0, 0}, {}}));
    CHECK((evs[5] == Ev{tsgi::kEvEnd, 1, {0xFFFFFFFE, 2, 0}, {}}));
    CHECK(evs[6].kind == tsgi::kEvGetValues && evs[6].strs.size() == 2);
    CHECK(evs[7].kind == tsgi::kEvGetValuesResult && evs[7].strs.empty());
    CHECK((evs[8] == Ev{tsgi::kEvUnknownType, 0, {200, 0, 0}, {}}));
    CHECK((evs[9] == Ev{tsgi::kEvUnknown, 7, {12, 0, 0}, {}}));
    CHECK((evs[10] == Ev{tsgi::kEvUnknown, 0, {0, 0, 0}, {}}));
  });
}

void TestFcgiMultiplexed() {
  Bytes a = Pair("SCRIPT_NAME", "/a");
  Bytes b = Pair("SCRIPT_NAME", "/b");
  Bytes input = Cat({Record(4, 2, Bytes(a.begin(), a.begin() + 5)), Record(4, 300, b),
                     Record(4, 2, Bytes(a.begin() + 5, a.end())), Record(4, 300, {}),
                     Record(4, 2, {}), Record(4, 9, {})});
  ForEachChunking<tsgi::FcgiParser>(input, tsgi::Limits(), [](const std::vector<Ev>& evs, Err err) {
    CHECK(err == Err::kNone);
    CHECK(evs.size() == 3);
    if (evs.size() != 3) return;
    CHECK(evs[0].id == 300 && evs[0].strs[1] == "/b");
    CHECK(evs[1].id == 2 && evs[1].strs[1] == "/a");
    CHECK(evs[2].id == 9 && evs[2].strs.empty());
  });
}

Err FirstError(const Bytes& input, const tsgi::Limits& limits, Error* detail = nullptr) {
  tsgi::FcgiParser parser(limits);
  Err err = Err::kNone;
  Run(&parser, input, input.size() + 1, 16, &err);
  if (detail != nullptr) *detail = parser.error();
  // Dead afterwards.
  Event ev[4];
  CHECK(err == Err::kNone || parser.Push(input.data(), input.size(), 0, ev, 4).events == 0);
  return err;
}

void TestFcgiErrors() {
  tsgi::Limits l;
  Error d;
  CHECK(FirstError(Record(1, 1, Bytes(8), 0, 2), l, &d) == Err::kFcgiBadVersion && d.a == 2);
  l.max_record_body = 10;
  CHECK(FirstError(Record(5, 1, Bytes(11)), l, &d) == Err::kFcgiRecordTooLarge && d.a == 11 &&
        d.b == 10);
  l = tsgi::Limits();
  CHECK(FirstError(Record(5, 0, Bytes(1)), l, &d) == Err::kFcgiBadRequestId && d.a == 5 &&
        d.b == 0);
  CHECK(FirstError(Record(9, 1, {}), l, &d) == Err::kFcgiBadRequestId && d.a == 9 && d.b == 1);
  CHECK(FirstError(Record(1, 1, Bytes(7)), l, &d) == Err::kFcgiBadBegin && d.a == 7);
  CHECK(FirstError(Record(3, 1, Bytes(9)), l) == Err::kFcgiBadEnd);
  CHECK(FirstError(Record(11, 0, Bytes(0)), l) == Err::kFcgiBadUnknownType);
  l.max_params_bytes = 20;
  Bytes p = Pair("A", std::string(12, 'x'));
  CHECK(FirstError(Cat({Record(4, 1, p), Record(4, 2, p)}), l, &d) == Err::kFcgiParamsTooLarge &&
        d.b == 20);
  CHECK(FirstError(Cat({Record(4, 1, p), Record(4, 1, {}), Record(4, 2, p), Record(4, 2, {})}),
                   l) == Err::kNone);
  CHECK(FirstError(Cat({Record(4, 1, p), Record(1, 1, {0, 1, 0, 0, 0, 0, 0, 0}), Record(4, 2, p)}),
                   l) == Err::kNone);  // BEGIN drops the unfinished stream
  CHECK(FirstError(Record(9, 0, Bytes(21)), l) == Err::kFcgiParamsTooLarge);
  l = tsgi::Limits();
  l.max_pairs = 1;
  CHECK(FirstError(Cat({Record(4, 1, Cat({p, p})), Record(4, 1, {})}), l, &d) ==
            Err::kFcgiTooManyParams &&
        d.b == 1);
  CHECK(FirstError(Cat({Record(4, 1, {5, 1, 'a'}), Record(4, 1, {})}), tsgi::Limits()) ==
        Err::kFcgiBadParams);
  CHECK(FirstError(Record(10, 0, {1, 1, 'a'}), tsgi::Limits()) == Err::kFcgiBadParams);
}

void TestScgi() {
  Bytes block =
      B(LIT("CONTENT_LENGTH\0"
            "5\0"
            "REQUEST_METHOD\0"
            "POST\0"
            "SCGI\0"
            "1\0"));
  Bytes input = Cat({B(std::to_string(block.size()) + ":"), block, B(",hello trailing")});
  ForEachChunking<tsgi::ScgiParser>(input, tsgi::Limits(), [](const std::vector<Ev>& evs, Err err) {
    CHECK(err == Err::kNone);
    CHECK(evs.size() == 3);
    if (evs.size() != 3) return;
    CHECK(evs[0].kind == tsgi::kEvBlockParams && evs[0].nums[1] == 5 && evs[0].strs.size() == 6);
    CHECK(evs[1].kind == tsgi::kEvBody && evs[1].strs[0] == "hello");
    CHECK(evs[2].kind == tsgi::kEvBodyEnd);
  });
  struct Case {
    std::string in;
    Err err;
  } cases[] = {
      {":", Err::kScgiBadNetstring},
      {"12345678901", Err::kScgiBadNetstring},
      {"x", Err::kScgiBadNetstring},
      {"0:;", Err::kScgiBadNetstring},
      {"0:,", Err::kScgiNoContentLength},
      {"999999:", Err::kScgiHeadersTooLarge},
      {Net(LIT("a\0")), Err::kScgiBadHeaders},
      {Net(LIT("CONTENT_LENGTH\0"
               "1\0SCGI\0"
               "1")),
       Err::kScgiBadHeaders},
      {Net(LIT("A\0b\0")), Err::kScgiNoContentLength},
      {Net(LIT("CONTENT_LENGTH\0x1\0")), Err::kScgiBadContentLength},
      {Net(LIT("CONTENT_LENGTH\0\0")), Err::kScgiBadContentLength},
      {Net(LIT("CONTENT_LENGTH\0"
               "1234567890123456\0")),
       Err::kScgiBadContentLength},
      {Net(LIT("CONTENT_LENGTH\0"
               "1\0")),
       Err::kScgiNoScgi},
      {Net(LIT("CONTENT_LENGTH\0"
               "1\0SCGI\0"
               "2\0")),
       Err::kScgiNoScgi},
      {Net(LIT("CONTENT_LENGTH\0"
               "0\0X\0\0SCGI\0"
               "1\0")),
       Err::kNone},
      // CONTENT_LENGTH must be the first name, not merely a well-known one.
      {Net(LIT("REQUEST_METHOD\0GET\0CONTENT_LENGTH\0"
               "0\0SCGI\0"
               "1\0")),
       Err::kScgiNoContentLength},
      // SCGI must have exactly the value 1, under exactly that name.
      {Net(LIT("CONTENT_LENGTH\0"
               "0\0SCGI\0\0")),
       Err::kScgiNoScgi},
      {Net(LIT("CONTENT_LENGTH\0"
               "0\0SCGI\0"
               "11\0")),
       Err::kScgiNoScgi},
      {Net(LIT("CONTENT_LENGTH\0"
               "0\0SCGIX\0"
               "1\0XSCGI\0"
               "1\0")),
       Err::kScgiNoScgi},
      // Blocks longer than the scanner's 64-byte steps: fields across a step, a missing last NUL.
      {Net(LIT("CONTENT_LENGTH\0"
               "0\0") +
           std::string(60, 'A') + LIT("\0v\0") + std::string(70, 'B') +
           LIT("\0\0SCGI\0"
               "1\0")),
       Err::kNone},
      {Net(LIT("CONTENT_LENGTH\0"
               "0\0SCGI\0"
               "1\0") +
           std::string(100, 'C') + LIT("\0") + std::string(30, 'D')),
       Err::kScgiBadHeaders},
  };
  for (const Case& c : cases) {
    tsgi::ScgiParser parser{tsgi::Limits()};
    Err err = Err::kNone;
    Bytes in = B(c.in);
    for (size_t step : {size_t{1}, in.size()}) {
      tsgi::ScgiParser p2{tsgi::Limits()};
      err = Err::kNone;
      Run(&p2, in, step, 4, &err);
      CHECK(err == c.err);
    }
  }
  tsgi::Limits l;
  l.max_pairs = 1;
  tsgi::ScgiParser parser(l);
  Err err = Err::kNone;
  Run(&parser, input, input.size(), 4, &err);
  CHECK(err == Err::kScgiTooManyParams && parser.error().b == 1);
}

void TestUwsgi() {
  auto var = [](const std::string& k, const std::string& v) {
    Bytes out = {static_cast<uint8_t>(k.size()), static_cast<uint8_t>(k.size() >> 8)};
    out.insert(out.end(), k.begin(), k.end());
    out.push_back(static_cast<uint8_t>(v.size()));
    out.push_back(static_cast<uint8_t>(v.size() >> 8));
    out.insert(out.end(), v.begin(), v.end());
    return out;
  };
  auto request = [&](const Bytes& vars, uint8_t m1, uint8_t m2) {
    return Cat({{m1, static_cast<uint8_t>(vars.size()), static_cast<uint8_t>(vars.size() >> 8), m2},
                vars});
  };
  Bytes one = request(Cat({var("REQUEST_METHOD", "POST"), var("CONTENT_LENGTH", "3")}), 0, 7);
  Bytes two = request(Cat({var("CONTENT_LENGTH", "")}), 0, 0);
  Bytes input = Cat({one, B("abc"), two, one, B("xyz")});
  ForEachChunking<tsgi::UwsgiParser>(
      input, tsgi::Limits(), [](const std::vector<Ev>& evs, Err err) {
        CHECK(err == Err::kNone);
        CHECK(evs.size() == 8);
        if (evs.size() != 8) return;
        CHECK(evs[0].kind == tsgi::kEvBlockParams && evs[0].id == (7u << 8) && evs[0].nums[1] == 3);
        CHECK(evs[0].strs[1] == "POST");
        CHECK(evs[1].strs[0] == "abc" && evs[2].kind == tsgi::kEvBodyEnd);
        CHECK(evs[3].kind == tsgi::kEvBlockParams && evs[3].nums[1] == 0 &&
              evs[3].strs.size() == 2);
        CHECK(evs[4].kind == tsgi::kEvBodyEnd);
        CHECK(evs[5].strs[1] == "POST" && evs[6].strs[0] == "xyz");
      });
  struct Case {
    Bytes in;
    Err err;
  } cases[] = {
      {request({}, 1, 0), Err::kUwsgiBadModifier},
      {request(Bytes(300), 0, 0), Err::kUwsgiHeadersTooLarge},
      {request({1, 0, 'a'}, 0, 0), Err::kUwsgiBadVars},
      {request(var("CONTENT_LENGTH", "1x"), 0, 0), Err::kUwsgiBadContentLength},
      {request(var("CONTENT_LENGTH", "1234567890123456"), 0, 0), Err::kUwsgiBadContentLength},
      {request(Cat({var("A", ""), var("B", "")}), 0, 0), Err::kUwsgiTooManyParams},
  };
  tsgi::Limits l;
  l.max_params_bytes = 200;
  l.max_pairs = 1;
  for (const Case& c : cases) {
    tsgi::UwsgiParser parser(l);
    Err err = Err::kNone;
    Run(&parser, c.in, 1, 2, &err);
    CHECK(err == c.err);
  }
}

// A StrList over std::strings (as latin-1 bytes or as UTF-16 units).
template <typename Ch>
struct List {
  std::vector<Ch> chars;
  std::vector<uint32_t> lens;
  explicit List(std::initializer_list<std::u16string> strs) {
    for (const std::u16string& s : strs) {
      for (char16_t c : s) chars.push_back(static_cast<Ch>(c));
      lens.push_back(static_cast<uint32_t>(s.size()));
    }
  }
  tsgi::StrList<Ch> get() const { return {chars.data(), lens.data(), lens.size()}; }
};

std::string Str(const Bytes& b) { return std::string(b.begin(), b.end()); }

void TestHead() {
  List<char16_t> ok({u"200 OK", u"Content-Type", u"text/plain", u"X-A", u"\u00e9\t"});
  Bytes out(tsgi::HeadSize(ok.get(), tsgi::HeadStyle::kHttp));
  CHECK(tsgi::WriteHead(out.data(), ok.get(), tsgi::HeadStyle::kHttp).ok());
  CHECK(Str(out) == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: \xe9\t\r\n\r\n");
  List<uint8_t> bare({u"404"});
  out.assign(tsgi::HeadSize(bare.get(), tsgi::HeadStyle::kCgi), 0);
  CHECK(tsgi::WriteHead(out.data(), bare.get(), tsgi::HeadStyle::kCgi).ok());
  CHECK(Str(out) == "Status: 404\r\n\r\n");
  struct Case {
    List<char16_t> list;
    Err err;
    double index;
  } cases[] = {
      {List<char16_t>({u"200 "}), Err::kNone, 0},
      {List<char16_t>({u"099"}), Err::kHeadBadStatus, 0},
      {List<char16_t>({u"20"}), Err::kHeadBadStatus, 0},
      {List<char16_t>({u"2000"}), Err::kHeadBadStatus, 0},
      {List<char16_t>({u"200 \u0100"}), Err::kHeadBadStatus, 0},
      {List<char16_t>({u"200 a\r\n"}), Err::kHeadBadStatus, 0},
      {List<char16_t>({u"200", u"A", u"b", u"Bad Name", u"x"}), Err::kHeadBadName, 2},
      {List<char16_t>({u"200", u"", u"x"}), Err::kHeadBadName, 0},
      {List<char16_t>({u"200", u"A", u"b", u"C", u"x\ny"}), Err::kHeadBadValue, 2},
      {List<char16_t>({u"200", u"A", u"\u0101"}), Err::kHeadBadValue, 0},
      {List<char16_t>({u"200", u"\u0141", u"x"}), Err::kHeadBadName, 0},
  };
  for (const Case& c : cases) {
    Bytes buf(tsgi::HeadSize(c.list.get(), tsgi::HeadStyle::kCgi));
    Error e = tsgi::WriteHead(buf.data(), c.list.get(), tsgi::HeadStyle::kCgi);
    CHECK(e.code == c.err);
    CHECK(e.a == c.index);
  }
}

void TestFcgiEncoders() {
  // Stream framing: split at 65528, padded to 8, end record.
  Bytes data(65528 + 13, 0x41);
  Bytes out(tsgi::FcgiStreamSize(data.size()) + 8);
  tsgi::Span span{data.data(), data.size()};
  uint8_t* end = tsgi::FcgiWriteStream(out.data(), 5, 0x1234, &span, 1, true);
  CHECK(end == out.data() + out.size());
  CHECK(out.size() == 8 + 65528 + 8 + 13 + 3 + 8);
  CHECK(out[0] == 1 && out[1] == 5 && out[2] == 0x12 && out[3] == 0x34 && out[4] == 0xFF &&
        out[5] == 0xF8 && out[6] == 0);
  size_t second = 8 + 65528;
  CHECK(out[second + 5] == 13 && out[second + 6] == 3);
  CHECK(out[second + 8 + 13] == 0 && out[second + 8 + 15] == 0);
  CHECK(out[out.size() - 8] == 1 && out[out.size() - 4] == 0 && out[out.size() - 3] == 0);
  CHECK(tsgi::FcgiStreamSize(0) == 0 && tsgi::FcgiStreamSize(65528) == 65536);

  uint8_t rec[16];
  tsgi::FcgiWriteEndRequest(rec, 1, 0x01020304, 3);
  CHECK(rec[1] == 3 && rec[5] == 8 && rec[8] == 1 && rec[11] == 4 && rec[12] == 3 && rec[15] == 0);
  tsgi::FcgiWriteBeginRequest(rec, 2, 0x0102, 1);
  CHECK(rec[1] == 1 && rec[3] == 2 && rec[8] == 1 && rec[9] == 2 && rec[10] == 1 && rec[11] == 0);
  tsgi::FcgiWriteUnknownType(rec, 77);
  CHECK(rec[1] == 11 && rec[3] == 0 && rec[8] == 77 && rec[9] == 0);
  tsgi::FcgiWriteAbortRequest(rec, 5);
  CHECK(rec[1] == 2 && rec[3] == 5 && rec[5] == 0);

  // Params round-trip through the parser.
  std::u16string long_value(200, u'x');
  List<char16_t> pairs({u"REQUEST_METHOD", u"GET", u"HTTP_X", long_value});
  std::vector<uint8_t> scratch, enc;
  CHECK(tsgi::EncodeFcgiParams(1, pairs.get(), &scratch, &enc).ok());
  tsgi::FcgiParser parser{tsgi::Limits()};
  std::vector<Ev> evs = Run(&parser, enc, 5, 4);
  CHECK(evs.size() == 1 && evs[0].strs.size() == 4 && evs[0].strs[3] == std::string(200, 'x'));
  List<char16_t> wide({u"A", u"\u0100"});
  CHECK(tsgi::EncodeFcgiParams(1, wide.get(), &scratch, &enc).code == Err::kEncodeNotLatin1);

  List<uint8_t> names({u"FCGI_MAX_CONNS", u"FCGI_MPXS_CONNS"});
  CHECK(tsgi::EncodeFcgiValues(names.get(), true, &enc).ok());
  CHECK(enc.size() == 8 + 33 + 7 && enc[1] == 9 && enc[5] == 33 && enc[6] == 7);
  List<uint8_t> big({std::u16string(70000, u'a'), u""});
  CHECK(tsgi::EncodeFcgiValues(big.get(), false, &enc).code == Err::kEncodeTooLarge);

  // A whole response.
  List<uint8_t> head({u"200 OK", u"Content-Type", u"text/plain"});
  Bytes body = B("hi");
  size_t head_len = tsgi::HeadSize(head.get(), tsgi::HeadStyle::kCgi);
  Bytes resp(tsgi::FcgiResponseSize(head_len, body.size(), true));
  CHECK(
      tsgi::WriteFcgiResponse(resp.data(), 1, head.get(), body.data(), body.size(), true, &scratch)
          .ok());
  tsgi::FcgiParser app_side{tsgi::Limits()};
  evs = Run(&app_side, resp, 1, 1);
  CHECK(evs.size() == 3);
  if (evs.size() == 3) {
    CHECK(evs[0].strs[0] == "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhi");
    CHECK(evs[1].kind == tsgi::kEvEndBase + 6);
    CHECK((evs[2] == Ev{tsgi::kEvEnd, 1, {0, 0, 0}, {}}));
  }
  // Large body: the head stays first in the stream.
  Bytes large(200000, 'b');
  resp.assign(tsgi::FcgiResponseSize(head_len, large.size(), false), 0);
  CHECK(tsgi::WriteFcgiResponse(resp.data(), 1, head.get(), large.data(), large.size(), false,
                                &scratch)
            .ok());
  tsgi::FcgiParser p3{tsgi::Limits()};
  evs = Run(&p3, resp, 4096, 8);
  CHECK(evs.size() == 1 && evs[0].strs[0].size() == head_len + large.size());
}

void TestRequestEncoders() {
  List<char16_t> pairs(
      {u"REQUEST_METHOD", u"GET", u"SCGI", u"0", u"CONTENT_LENGTH", u"9", u"A", u""});
  std::vector<uint8_t> out;
  CHECK(tsgi::EncodeScgiRequest(pairs.get(), 12, &out).ok());
  CHECK(Str(out) == Net(LIT("CONTENT_LENGTH\0"
                            "12\0SCGI\0"
                            "1\0REQUEST_METHOD\0GET\0A\0\0")));
  List<char16_t> nul({u"A", std::u16string(u"b\0c", 3)});
  CHECK(tsgi::EncodeScgiRequest(nul.get(), 0, &out).variant == tsgi::kVariantScgiNul);
  List<char16_t> wide({u"\u0100", std::u16string(u"\0", 1)});
  CHECK(tsgi::EncodeScgiRequest(wide.get(), 0, &out).code == Err::kEncodeNotLatin1);

  List<uint8_t> vars({u"REQUEST_METHOD", u"GET"});
  CHECK(tsgi::EncodeUwsgiRequest(vars.get(), 0, 5, &out).ok());
  CHECK(out.size() == 4 + 2 + 14 + 2 + 3 && out[0] == 0 && out[1] == 21 && out[2] == 0 &&
        out[3] == 5 && out[4] == 14 && out[20] == 3);
  List<uint8_t> long_key({std::u16string(65536, u'k'), u""});
  CHECK(tsgi::EncodeUwsgiRequest(long_key.get(), 0, 0, &out).code == Err::kEncodeTooLarge);
  List<uint8_t> long_block({std::u16string(40000, u'k'), std::u16string(40000, u'v')});
  Error e = tsgi::EncodeUwsgiRequest(long_block.get(), 0, 0, &out);
  CHECK(e.code == Err::kEncodeTooLarge && e.variant == tsgi::kVariantUwsgiTooLarge);
}

void TestStandingAndReset() {
  Bytes params = Pair("REQUEST_METHOD", "GET");
  Bytes req = Cat({Record(1, 1, {0, 1, 0, 0, 0, 0, 0, 0}), Record(4, 1, params), Record(4, 1, {}),
                   Record(5, 1, {})});
  tsgi::FcgiParser p{tsgi::Limits()};
  CHECK(p.standing() == tsgi::Standing::kIdle);
  Event ev[16];
  p.Push(req.data(), 20, 0, ev, 16);  // inside the PARAMS record
  CHECK(p.standing() == tsgi::Standing::kBusy);
  p.Push(req.data(), req.size(), 20, ev, 16);
  CHECK(p.standing() == tsgi::Standing::kIdle);
  // Half a PARAMS stream open at a record boundary: busy.
  Bytes open = Record(4, 1, params);
  p.Push(open.data(), open.size(), 0, ev, 16);
  CHECK(p.standing() == tsgi::Standing::kBusy);
  // Reset gives a new parser: the open stream is gone.
  tsgi::Limits tight;
  tight.max_pairs = 0;
  p.Reset(tight);
  CHECK(p.standing() == tsgi::Standing::kIdle);
  Bytes empty = Record(4, 1, {});
  tsgi::PushResult r = p.Push(empty.data(), empty.size(), 0, ev, 16);
  CHECK(r.events == 1 && (ev[0].w[0] & 0xFF) == tsgi::kEvParams && ev[0].w[1] == 0);
  Bytes bad = Record(1, 1, {}, 0, 9);
  p.Push(bad.data(), bad.size(), 0, ev, 16);
  CHECK(p.standing() == tsgi::Standing::kDead);
  p.Reset(tsgi::Limits());
  CHECK(p.standing() == tsgi::Standing::kIdle && p.error().ok());

  tsgi::ScgiParser s{tsgi::Limits()};
  Bytes sreq =
      B(Net(LIT("CONTENT_LENGTH\0"
                "0\0SCGI\0"
                "1\0")));
  s.Push(sreq.data(), 2, 0, ev, 16);
  CHECK(s.standing() == tsgi::Standing::kBusy);
  s.Push(sreq.data(), sreq.size(), 2, ev, 16);
  CHECK(s.standing() == tsgi::Standing::kFinished);
  s.Reset(tsgi::Limits());
  CHECK(s.standing() == tsgi::Standing::kIdle);

  tsgi::UwsgiParser u{tsgi::Limits()};
  Bytes ureq = {0, 0, 0, 0};
  u.Push(ureq.data(), 3, 0, ev, 16);
  CHECK(u.standing() == tsgi::Standing::kBusy);
  u.Push(ureq.data(), 4, 3, ev, 16);
  CHECK(u.standing() == tsgi::Standing::kIdle);
}

}  // namespace

// The watchdog's 504 answers, byte for byte (framed here by hand), and its slot table.
void TestWatchdog() {
  using tsgi::watchdog::Answer;
  const std::string body = "Gateway Timeout\n";
  const std::string cgi =
      "Status: 504 Gateway Timeout\r\nContent-Type: text/plain; charset=us-ascii\r\n"
      "Content-Length: 16\r\n\r\n" +
      body;
  uint8_t out[tsgi::watchdog::kAnswerMax];
  size_t n = tsgi::watchdog::EncodeAnswer(Answer::kCgi, 0, out, sizeof(out));
  CHECK(std::string(reinterpret_cast<char*>(out), n) == cgi);
  n = tsgi::watchdog::EncodeAnswer(Answer::kHttp, 0, out, sizeof(out));
  CHECK(std::string(reinterpret_cast<char*>(out), n) ==
        "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=us-ascii\r\n"
        "Content-Length: 16\r\nConnection: close\r\n\r\n" +
            body);
  n = tsgi::watchdog::EncodeAnswer(Answer::kFastcgi, 0x1234, out, sizeof(out));
  const size_t pad = (8 - cgi.size() % 8) % 8;
  std::string want;
  want += std::string("\x01\x06\x12\x34", 4);
  want += static_cast<char>(cgi.size() >> 8);
  want += static_cast<char>(cgi.size() & 255);
  want += static_cast<char>(pad);
  want += '\0';
  want += cgi + std::string(pad, '\0');
  want += std::string("\x01\x06\x12\x34\0\0\0\0", 8);
  want += std::string("\x01\x03\x12\x34\0\x08\0\0", 8) + std::string(8, '\0');
  CHECK(std::string(reinterpret_cast<char*>(out), n) == want);
  // above the memory limit: a 500, the same framing
  n = tsgi::watchdog::EncodeAnswer(Answer::kCgi, 0, out, sizeof(out),
                                   tsgi::watchdog::Cause::kMemory);
  CHECK(std::string(reinterpret_cast<char*>(out), n) ==
        "Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=us-ascii\r\n"
        "Content-Length: 22\r\n\r\nInternal Server Error\n");
  n = tsgi::watchdog::EncodeAnswer(Answer::kHttp, 0, out, sizeof(out),
                                   tsgi::watchdog::Cause::kMemory);
  CHECK(std::string(reinterpret_cast<char*>(out), n) ==
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=us-ascii\r\n"
        "Content-Length: 22\r\nConnection: close\r\n\r\nInternal Server Error\n");
  CHECK(tsgi::watchdog::EncodeAnswer(Answer::kFastcgi, 1, out, 40) == 0);
  CHECK(tsgi::watchdog::EncodeAnswer(static_cast<Answer>(9), 1, out, sizeof(out)) == 0);

#ifndef _WIN32
  tsgi::watchdog::Watchdog w;
  CHECK(w.Add(3, Answer::kCgi, 0) == -1);     // not running
  CHECK(!w.Start(tsgi::watchdog::Limits{}));  // nothing to watch
  tsgi::watchdog::Limits limits;
  limits.timeout_ms = 60000;
  limits.max_rss_bytes = uint64_t{1} << 50;
  CHECK(w.Start(limits));
  CHECK(!w.Start(limits));
#ifdef __linux__
  CHECK(tsgi::watchdog::ResidentBytes() > 0);
#endif
  std::vector<int32_t> slots;
  for (int i = 0; i < 100; i++) slots.push_back(w.Add(1000 + i, Answer::kFastcgi, 1));
  for (int i = 0; i < 100; i++) CHECK(slots[static_cast<size_t>(i)] == i);
  for (int i = 0; i < 100; i += 2) w.Remove(slots[static_cast<size_t>(i)]);
  w.Remove(slots[0]);  // twice: ignored
  w.Remove(-1);
  w.Remove(1000);
  CHECK(w.Add(7, Answer::kHttp, 0) == 98);  // a freed slot is reused
  w.Beat();
  w.Stop();
  w.Stop();
#endif
}

int main() {
  TestWatchdog();
  TestNames();
  TestPairCap();
  TestPairs();
  TestFcgiRequest();
  TestFcgiMultiplexed();
  TestFcgiErrors();
  TestScgi();
  TestUwsgi();
  TestHead();
  TestFcgiEncoders();
  TestRequestEncoders();
  TestStandingAndReset();
  return CheckReport();
}
