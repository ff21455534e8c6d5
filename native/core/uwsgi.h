// uwsgi: the request parser (requests follow each other on a connection) and the request
// head encoder.
#ifndef TSGI_CORE_UWSGI_H_
#define TSGI_CORE_UWSGI_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common.h"
#include "errors.h"

namespace tsgi {

class UwsgiParser {
 public:
  explicit UwsgiParser(const Limits& limits) : limits_(limits) {}

  // As FcgiParser::Push: events are params (kEvBlockParams, modifier1 | modifier2 << 8 in the
  // request id bits), body, bodyEnd, error.
  PushResult Push(const uint8_t* chunk, size_t len, size_t start, Event* events, size_t cap);

  const std::vector<uint8_t>& block() const { return block_; }
  const std::vector<Pair>& pairs() const { return pairs_; }
  const Error& error() const { return error_; }
  bool dead() const { return state_ == State::kDead; }

  // Where the parser stands (see Standing); a parser that is not busy can be Reset() and
  // reused without any observable difference.
  Standing standing() const;
  // Back to a new parser with `limits`; memory is kept unless it grew large.
  void Reset(const Limits& limits);

 private:
  enum class State : uint8_t { kHeader, kCheck, kVars, kValidate, kBody, kBodyEnd, kDead };

  Error Validate(uint64_t* content_length);

  Limits limits_;
  State state_ = State::kHeader;
  uint8_t header_[4] = {};
  size_t header_fill_ = 0;
  size_t size_ = 0;
  uint64_t body_left_ = 0;
  std::vector<uint8_t> vars_;   // the vars block being received
  std::vector<uint8_t> block_;  // the vars block of the last params event
  std::vector<Pair> pairs_;
  Error error_;
};

// `modifier1, size LE, modifier2` then `keyLen LE, key, valLen LE, value` per pair, appended
// to *out. `pairs` has an even count (checked by the caller). ENCODE_NOT_LATIN1 or
// ENCODE_TOO_LARGE (uwsgi variant) for the first bad string, then ENCODE_TOO_LARGE when the
// block exceeds 65535 bytes.
template <typename Ch>
Error EncodeUwsgiRequest(const StrList<Ch>& pairs, uint8_t modifier1, uint8_t modifier2,
                         std::vector<uint8_t>* out);

}  // namespace tsgi

#endif  // TSGI_CORE_UWSGI_H_
