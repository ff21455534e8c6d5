// Shared driver of the parser fuzzers (libFuzzer, native/core only, no Node).
//
// Input layout: byte 0 chooses the chunking, byte 1 the limits, byte 2 the event capacity
// of the chunked run; the rest is the byte stream. The stream is parsed twice: once as one
// chunk with a roomy event array, once in the chosen chunks with an event array of 1-4
// slots (so that "events full, call again on the same chunk" is taken often). Both runs are
// checked call by call and must give the same events once stream/body pieces are merged.
// Any violation ends in __builtin_trap(), which libFuzzer reports as a crash.
#ifndef TSGI_FUZZ_PARSER_HARNESS_H_
#define TSGI_FUZZ_PARSER_HARNESS_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "core/common.h"
#include "core/errors.h"
#include "core/names.h"

namespace tsgi_fuzz {

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

// A small deterministic generator for the chunk sizes.
class Rng {
 public:
  explicit Rng(uint32_t seed) : s_(seed * 2654435761u + 0x9E3779B9u) {}
  uint32_t Next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 17;
    s_ ^= s_ << 5;
    return s_;
  }

 private:
  uint32_t s_;
};

inline tsgi::Limits PickLimits(uint8_t sel) {
  static const double kInf = std::numeric_limits<double>::infinity();
  static const double kParams[] = {131072, 0, 16, 64, 1024, kInf, 7, 65535};
  static const double kPairs[] = {1000, 0, 1, 3, kInf, 2, 8, 100};
  static const double kRecord[] = {65535, 0, 8, 100, kInf, 1, 16, 65536};
  tsgi::Limits l;
  // Most inputs run with the defaults; the rest try small limits.
  if ((sel & 0xC0) == 0) return l;
  l.max_params_bytes = kParams[sel & 7];
  l.max_pairs = kPairs[(sel >> 3) & 7];
  l.max_record_body = kRecord[(sel >> 5) & 7];
  return l;
}

// Chunk sizes that cover n bytes (zero-length chunks included on purpose: a push of nothing
// is a legal call).
inline std::vector<size_t> PickChunks(uint8_t sel, size_t n) {
  std::vector<size_t> sizes;
  unsigned mode = sel & 3;
  Rng rng(sel);
  size_t done = 0;
  while (done < n) {
    size_t k;
    switch (mode) {
      case 0:
        k = 1;
        break;
      case 1:
        k = static_cast<size_t>(sel >> 2) + 1;
        break;
      case 2:
        k = rng.Next() % 17;  // 0-16
        break;
      default:
        k = (rng.Next() % 4 == 0) ? rng.Next() % 300 : rng.Next() % 9;
        break;
    }
    if (k > n - done) k = n - done;
    sizes.push_back(k);
    done += k;
  }
  if (mode >= 2) sizes.push_back(0);
  return sizes;
}

// One event in comparable form: the four words with stream offsets replaced by the bytes,
// the pairs of a params-like event as strings, and the error details.
struct NormEvent {
  uint32_t w0 = 0;
  uint32_t w1 = 0;
  uint32_t w2 = 0;
  uint32_t w3 = 0;
  std::vector<uint8_t> data;               // stream/body bytes
  std::vector<std::vector<uint8_t>> strs;  // name, value, name, value, ...
  tsgi::Error err;

  bool operator==(const NormEvent& o) const {
    return w0 == o.w0 && w1 == o.w1 && w2 == o.w2 && w3 == o.w3 && data == o.data &&
           strs == o.strs && err.code == o.err.code && err.variant == o.err.variant &&
           SameNumber(err.a, o.err.a) && SameNumber(err.b, o.err.b);
  }
  static bool SameNumber(double x, double y) { return x == y || (x != x && y != y); }
};

// Which events carry chunk bytes (w[1] offset, w[2] length) and which carry a pairs block.
struct Traits {
  bool (*is_data)(uint32_t kind);
  bool (*is_block)(uint32_t kind);
  bool (*valid_kind)(uint32_t kind);
};

// FastCGI: stream records carry bytes; params, getValues, getValuesResult carry a block.
inline bool FcgiIsData(uint32_t kind) { return kind >= tsgi::kEvStdin && kind <= tsgi::kEvData; }
inline bool FcgiIsBlock(uint32_t kind) {
  return kind == tsgi::kEvParams || kind == tsgi::kEvGetValues || kind == tsgi::kEvGetValuesResult;
}
inline bool FcgiValidKind(uint32_t kind) {
  return (kind >= tsgi::kEvBegin && kind <= tsgi::kEvEndBase + tsgi::kEvData) ||
         kind == tsgi::kEvError;
}
// SCGI and uwsgi: params (block), body (bytes), bodyEnd, error.
inline bool BodyIsData(uint32_t kind) { return kind == tsgi::kEvBody; }
inline bool BodyIsBlock(uint32_t kind) { return kind == tsgi::kEvBlockParams; }
inline bool BodyValidKind(uint32_t kind) {
  return kind == tsgi::kEvBlockParams || kind == tsgi::kEvBody || kind == tsgi::kEvBodyEnd ||
         kind == tsgi::kEvError;
}
const Traits kFcgiTraits = {FcgiIsData, FcgiIsBlock, FcgiValidKind};
const Traits kBodyTraits = {BodyIsData, BodyIsBlock, BodyValidKind};

struct RunResult {
  std::vector<NormEvent> events;
  bool dead = false;
};

inline void AppendMerged(std::vector<NormEvent>* out, NormEvent&& ev, const Traits& t) {
  if (t.is_data(ev.w0 & 0xFF) && !out->empty()) {
    NormEvent& last = out->back();
    if (last.w0 == ev.w0) {
      last.data.insert(last.data.end(), ev.data.begin(), ev.data.end());
      return;
    }
  }
  out->push_back(std::move(ev));
}

// Feeds `data` to a fresh parser in `chunks` with `cap` event slots and checks each call.
template <typename Parser>
RunResult Feed(const tsgi::Limits& limits, const uint8_t* data, const std::vector<size_t>& chunks,
               size_t cap, const Traits& t) {
  RunResult res;
  Parser parser(limits);
  std::vector<tsgi::Event> events(cap + 1);
  const uint32_t kCanary = 0xA5A5A5A5u;
  size_t off = 0;
  bool errored = false;
  for (size_t len : chunks) {
    // A heap copy of exactly this chunk, so that ASan sees any read past its end.
    std::unique_ptr<uint8_t[]> chunk(new uint8_t[len == 0 ? 1 : len]);
    if (len > 0) std::memcpy(chunk.get(), data + off, len);
    off += len;
    size_t start = 0;
    size_t calls = 0;
    for (;;) {
      FUZZ_CHECK(++calls <= len + 1000);  // no endless "more"
      for (uint32_t& w : events[cap].w) w = kCanary;
      tsgi::PushResult r = parser.Push(chunk.get(), len, start, events.data(), cap);
      for (uint32_t w : events[cap].w) FUZZ_CHECK(w == kCanary);  // wrote past cap
      FUZZ_CHECK(r.events <= cap);
      FUZZ_CHECK(r.pos >= start && r.pos <= len);
      if (errored) FUZZ_CHECK(r.events == 0 && !r.more);  // dead stays silent
      size_t blocks = 0;
      for (size_t i = 0; i < r.events; ++i) {
        const tsgi::Event& e = events[i];
        uint32_t kind = e.w[0] & 0xFF;
        FUZZ_CHECK(t.valid_kind(kind));
        NormEvent ne;
        ne.w0 = e.w[0];
        ne.w1 = e.w[1];
        ne.w2 = e.w[2];
        ne.w3 = e.w[3];
        if (kind == tsgi::kEvError) {
          // The error is the last event of its call and the parser is dead afterwards.
          FUZZ_CHECK(i + 1 == r.events);
          FUZZ_CHECK(!r.more);
          FUZZ_CHECK(parser.dead());
          FUZZ_CHECK(e.w[1] == static_cast<uint32_t>(parser.error().code));
          FUZZ_CHECK(!parser.error().ok());
          ne.err = parser.error();
          errored = true;
        } else if (t.is_data(kind)) {
          // Stream bytes lie within the unread part of this chunk and are never empty.
          FUZZ_CHECK(e.w[2] > 0);
          FUZZ_CHECK(e.w[1] >= start);
          FUZZ_CHECK(static_cast<uint64_t>(e.w[1]) + e.w[2] <= r.pos);
          ne.w1 = 0;
          ne.w2 = 0;
          ne.data.assign(chunk.get() + e.w[1], chunk.get() + e.w[1] + e.w[2]);
        } else if (t.is_block(kind)) {
          // At most one block per call, read through block()/pairs() before the next call.
          FUZZ_CHECK(++blocks == 1);
          const std::vector<uint8_t>& block = parser.block();
          const std::vector<tsgi::Pair>& pairs = parser.pairs();
          FUZZ_CHECK(pairs.size() == e.w[1]);
          for (const tsgi::Pair& p : pairs) {
            FUZZ_CHECK(static_cast<uint64_t>(p.name_off) + p.name_len <= block.size());
            FUZZ_CHECK(static_cast<uint64_t>(p.val_off) + p.val_len <= block.size());
            FUZZ_CHECK(p.name_id == tsgi::InternName(block.data() + p.name_off, p.name_len));
            if (p.name_id != 0) {
              const char* name = tsgi::NameAt(p.name_id);
              FUZZ_CHECK(std::strlen(name) == p.name_len &&
                         std::memcmp(name, block.data() + p.name_off, p.name_len) == 0);
            }
            ne.strs.emplace_back(block.data() + p.name_off, block.data() + p.name_off + p.name_len);
            ne.strs.emplace_back(block.data() + p.val_off, block.data() + p.val_off + p.val_len);
          }
        }
        AppendMerged(&res.events, std::move(ne), t);
      }
      if (r.more) {
        // Stopping early is only allowed with something to show for it.
        FUZZ_CHECK(r.events > 0);
        start = r.pos;
        continue;
      }
      // A live parser consumes the whole chunk.
      if (!parser.dead()) FUZZ_CHECK(r.pos == len);
      break;
    }
  }
  res.dead = parser.dead();
  FUZZ_CHECK(res.dead == errored);
  return res;
}

template <typename Parser>
int RunParserFuzz(const uint8_t* data, size_t size, const Traits& t) {
  if (size < 3) return 0;
  uint8_t chunk_sel = data[0];
  tsgi::Limits limits = PickLimits(data[1]);
  size_t cap = 1 + (data[2] & 3);
  data += 3;
  size -= 3;

  RunResult whole = Feed<Parser>(limits, data, {size}, 64, t);
  RunResult chunked = Feed<Parser>(limits, data, PickChunks(chunk_sel, size), cap, t);
  FUZZ_CHECK(whole.dead == chunked.dead);
  FUZZ_CHECK(whole.events.size() == chunked.events.size());
  for (size_t i = 0; i < whole.events.size(); ++i) {
    FUZZ_CHECK(whole.events[i] == chunked.events[i]);
  }
  return 0;
}

}  // namespace tsgi_fuzz

#endif  // TSGI_FUZZ_PARSER_HARNESS_H_
