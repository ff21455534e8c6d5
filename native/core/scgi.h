// SCGI: the request parser (one request per connection) and the request head encoder.
#ifndef TSGI_CORE_SCGI_H_
#define TSGI_CORE_SCGI_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common.h"
#include "errors.h"

namespace tsgi {

class ScgiParser {
 public:
  explicit ScgiParser(const Limits& limits) : limits_(limits) {}

  // As FcgiParser::Push: events are params (kEvBlockParams), body, bodyEnd, error.
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
  enum class State : uint8_t { kLength, kBlock, kComma, kValidate, kBody, kBodyEnd, kDone, kDead };

  Error Validate(uint64_t* content_length);

  Limits limits_;
  State state_ = State::kLength;
  uint64_t length_ = 0;
  size_t digits_ = 0;
  uint64_t body_left_ = 0;
  std::vector<uint8_t> block_;
  std::vector<Pair> pairs_;
  Error error_;
};

// `<len>:CONTENT_LENGTH\0<content_length>\0SCGI\01\0` + `name\0value\0` for each pair not
// named CONTENT_LENGTH or SCGI + `,`, appended to *out. `pairs` has an even count (checked
// by the caller) and content_length is at most 2^53-1. ENCODE_NOT_LATIN1 / ENCODE_BAD_ARGUMENT
// (NUL) for the first bad string.
template <typename Ch>
Error EncodeScgiRequest(const StrList<Ch>& pairs, uint64_t content_length,
                        std::vector<uint8_t>* out);

}  // namespace tsgi

#endif  // TSGI_CORE_SCGI_H_
