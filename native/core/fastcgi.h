// FastCGI 1.0: an incremental record parser (either side of a connection, multiplexed
// request ids) and the record encoders. Behaviour is specified in docs/codec.md.
#ifndef TSGI_CORE_FASTCGI_H_
#define TSGI_CORE_FASTCGI_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common.h"
#include "errors.h"

namespace tsgi {

constexpr size_t kFcgiHeaderSize = 8;
constexpr size_t kFcgiMaxChunk = 65528;  // stream content per record: a multiple of 8

class FcgiParser {
 public:
  explicit FcgiParser(const Limits& limits) : limits_(limits) {}

  // Parses chunk[start..len), writing at most `cap` events to `events`. Stops early (more)
  // when the events are full or when a second params-like block (params, getValues,
  // getValuesResult) would be emitted: a call emits at most one block, available through
  // block()/pairs() until the next call. After an error event the parser is dead.
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
  enum class State : uint8_t { kHeader, kDispatch, kContent, kContentDone, kPadding, kDead };

  // The unfinished PARAMS stream of one request id. Slots are reused, so that a
  // keep-alive connection stops allocating once warm.
  struct Stream {
    uint16_t id = 0;
    bool active = false;
    std::vector<uint8_t> buf;
  };
  static constexpr size_t kNoSlot = 0;  // slot numbers in pages_ are index + 1

  // Slot of request id `id` (index + 1 into streams_), 0 when it has no unfinished stream.
  size_t SlotOf(uint16_t id) const;
  size_t OpenStream(uint16_t id);
  // Ends the stream in `slot`: its bytes move to block_ (take) or are dropped.
  void CloseStream(size_t slot, bool take);
  // Emits an error event and kills the parser.
  void Fail(Event* ev, const Error& e);

  Limits limits_;
  State state_ = State::kHeader;
  uint8_t header_[kFcgiHeaderSize] = {};
  size_t header_fill_ = 0;
  uint8_t type_ = 0;
  uint16_t id_ = 0;
  size_t content_left_ = 0;
  size_t content_len_ = 0;
  size_t padding_left_ = 0;
  uint8_t fixed_[8] = {};  // BEGIN/END/UNKNOWN_TYPE content
  size_t fixed_fill_ = 0;
  size_t stream_slot_ = kNoSlot;  // the PARAMS stream receiving content
  std::vector<Stream> streams_;
  std::vector<size_t> free_slots_;
  // Request id -> slot, in pages of 256 ids allocated on first use (O(1) for any number of
  // multiplexed requests, one page for the usual request id 1).
  std::vector<std::vector<uint32_t>> pages_;
  uint64_t held_ = 0;            // bytes in unfinished PARAMS streams
  std::vector<uint8_t> values_;  // GET_VALUES(_RESULT) content
  std::vector<uint8_t> block_;   // the block of the last params-like event
  std::vector<Pair> pairs_;
  Error error_;
};

// Record header at out (8 bytes).
void FcgiWriteHeader(uint8_t* out, uint8_t type, uint16_t id, uint16_t len, uint8_t pad);
inline size_t FcgiPad(size_t len) { return (8 - len % 8) % 8; }
// Bytes of `content` stream bytes framed as records (no end record).
size_t FcgiStreamSize(size_t content);

// A piece of a stream's content.
struct Span {
  const uint8_t* p;
  size_t n;
};
// Frames the concatenation of spans as records of `type` (split at kFcgiMaxChunk, padded to
// 8), then with `end` the empty record; returns the end of the output.
uint8_t* FcgiWriteStream(uint8_t* out, uint8_t type, uint16_t id, const Span* spans, size_t nspans,
                         bool end);

void FcgiWriteBeginRequest(uint8_t* out, uint16_t id, uint16_t role, uint8_t flags);  // 16 bytes
void FcgiWriteEndRequest(uint8_t* out, uint16_t id, uint32_t app_status,
                         uint8_t protocol_status);      // 16 bytes
void FcgiWriteAbortRequest(uint8_t* out, uint16_t id);  // 8 bytes
void FcgiWriteUnknownType(uint8_t* out, uint8_t type);  // 16 bytes

// PARAMS records carrying `pairs` (even count, checked by the caller), then the empty PARAMS
// record, into *out. `scratch` is reused memory for the encoded pairs.
template <typename Ch>
Error EncodeFcgiParams(uint16_t id, const StrList<Ch>& pairs, std::vector<uint8_t>* scratch,
                       std::vector<uint8_t>* out);

// One GET_VALUES (names_only) or GET_VALUES_RESULT record, request id 0, into *out.
template <typename Ch>
Error EncodeFcgiValues(const StrList<Ch>& list, bool names_only, std::vector<uint8_t>* out);

// Bytes of a whole response whose cgi head is `head` bytes.
size_t FcgiResponseSize(size_t head, size_t body, bool end);

// A whole response at out (FcgiResponseSize bytes): STDOUT records carrying the cgi head of
// `head` (status, then flat headers; odd count checked by the caller) and the body, then
// with `end` the empty STDOUT record and END_REQUEST(0, REQUEST_COMPLETE). `scratch` is
// reused memory for the head.
template <typename Ch>
Error WriteFcgiResponse(uint8_t* out, uint16_t id, const StrList<Ch>& head, const uint8_t* body,
                        size_t body_len, bool end, std::vector<uint8_t>* scratch);

}  // namespace tsgi

#endif  // TSGI_CORE_FASTCGI_H_
