#include "fastcgi.h"

#include <algorithm>
#include <cstring>

#include "head.h"
#include "params.h"

namespace tsgi {
namespace {

enum RecordType : uint8_t {
  kBeginRequest = 1,
  kAbortRequest = 2,
  kEndRequest = 3,
  kParams = 4,
  kStdin = 5,
  kStdout = 6,
  kStderr = 7,
  kData = 8,
  kGetValues = 9,
  kGetValuesResult = 10,
  kUnknownType = 11,
};

inline bool IsStream(uint8_t type) { return type >= kStdin && type <= kData; }
inline bool IsValues(uint8_t type) { return type == kGetValues || type == kGetValuesResult; }
inline bool IsFixed(uint8_t type) {
  return type == kBeginRequest || type == kEndRequest || type == kUnknownType;
}

inline void Emit(Event* ev, uint32_t kind, uint16_t id, uint32_t a = 0, uint32_t b = 0,
                 uint32_t c = 0) {
  ev->w[0] = kind | (static_cast<uint32_t>(id) << 8);
  ev->w[1] = a;
  ev->w[2] = b;
  ev->w[3] = c;
}

}  // namespace

size_t FcgiParser::SlotOf(uint16_t id) const {
  size_t page = id >> 8;
  if (page >= pages_.size() || pages_[page].empty()) return kNoSlot;
  return pages_[page][id & 0xFF];
}

size_t FcgiParser::OpenStream(uint16_t id) {
  size_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    streams_.emplace_back();
    slot = streams_.size();
  }
  Stream& s = streams_[slot - 1];
  s.id = id;
  s.active = true;
  s.buf.clear();
  size_t page = id >> 8;
  if (page >= pages_.size()) pages_.resize(page + 1);
  if (pages_[page].empty()) pages_[page].assign(256, 0);
  pages_[page][id & 0xFF] = static_cast<uint32_t>(slot);
  return slot;
}

void FcgiParser::CloseStream(size_t slot, bool take) {
  Stream& s = streams_[slot - 1];
  held_ -= s.buf.size();
  if (take) block_.swap(s.buf);
  s.buf.clear();
  s.active = false;
  pages_[s.id >> 8][s.id & 0xFF] = 0;
  free_slots_.push_back(slot);
}

Standing FcgiParser::standing() const {
  if (state_ == State::kDead) return Standing::kDead;
  // At a header boundary every earlier record is complete, so held_ == 0 means that no
  // PARAMS stream is open.
  if (state_ == State::kHeader && header_fill_ == 0 && held_ == 0) return Standing::kIdle;
  return Standing::kBusy;
}

void FcgiParser::Reset(const Limits& limits) {
  for (size_t slot = 1; slot <= streams_.size(); ++slot) {
    if (streams_[slot - 1].active) CloseStream(slot, false);
  }
  if (streams_.size() > 8) {
    // Many multiplexed requests were seen: drop the slots rather than keep them all.
    streams_.clear();
    free_slots_.clear();
    pages_.clear();
  }
  for (Stream& s : streams_) Trim(&s.buf);
  limits_ = limits;
  state_ = State::kHeader;
  header_fill_ = 0;
  content_left_ = 0;
  padding_left_ = 0;
  fixed_fill_ = 0;
  stream_slot_ = kNoSlot;
  held_ = 0;
  Trim(&values_);
  Trim(&block_);
  Trim(&pairs_);
  error_ = Error();
}

void FcgiParser::Fail(Event* ev, const Error& e) {
  error_ = e;
  Emit(ev, kEvError, 0, static_cast<uint32_t>(e.code));
  state_ = State::kDead;
}

PushResult FcgiParser::Push(const uint8_t* chunk, size_t len, size_t start, Event* events,
                            size_t cap) {
  size_t pos = start;
  size_t nev = 0;
  bool block_done = false;
  for (;;) {
    switch (state_) {
      case State::kDead:
        return {pos, nev, false};

      case State::kHeader: {
        size_t take = std::min(kFcgiHeaderSize - header_fill_, len - pos);
        if (take > 0) std::memcpy(header_ + header_fill_, chunk + pos, take);
        pos += take;
        header_fill_ += take;
        if (header_fill_ < kFcgiHeaderSize) return {pos, nev, false};
        header_fill_ = 0;
        type_ = header_[1];
        id_ = static_cast<uint16_t>((header_[2] << 8) | header_[3]);
        content_len_ = static_cast<size_t>((header_[4] << 8) | header_[5]);
        padding_left_ = header_[6];
        state_ = State::kDispatch;
        break;
      }

      case State::kDispatch: {
        if (nev >= cap) return {pos, nev, true};
        bool block_event = content_len_ == 0 && (type_ == kParams || IsValues(type_));
        if (block_event && block_done) return {pos, nev, true};
        Event* ev = &events[nev];
        const double clen = static_cast<double>(content_len_);
        if (header_[0] != 1) {
          Fail(ev, MakeError(Err::kFcgiBadVersion, header_[0]));
          return {pos, nev + 1, false};
        }
        if (clen > limits_.max_record_body) {
          Fail(ev, MakeError(Err::kFcgiRecordTooLarge, clen, limits_.max_record_body));
          return {pos, nev + 1, false};
        }
        if ((type_ >= 1 && type_ <= 8 && id_ == 0) || (type_ >= 9 && type_ <= 11 && id_ != 0)) {
          Fail(ev, MakeError(Err::kFcgiBadRequestId, type_, id_));
          return {pos, nev + 1, false};
        }
        if (IsFixed(type_) && content_len_ != 8) {
          Err code = type_ == kBeginRequest ? Err::kFcgiBadBegin
                     : type_ == kEndRequest ? Err::kFcgiBadEnd
                                            : Err::kFcgiBadUnknownType;
          Fail(ev, MakeError(code, clen));
          return {pos, nev + 1, false};
        }
        if ((type_ == kParams &&
             static_cast<double>(held_ + content_len_) > limits_.max_params_bytes) ||
            (IsValues(type_) && clen > limits_.max_params_bytes)) {
          Fail(ev, MakeError(Err::kFcgiParamsTooLarge, 0, limits_.max_params_bytes));
          return {pos, nev + 1, false};
        }
        content_left_ = content_len_;
        fixed_fill_ = 0;
        state_ = State::kContent;
        if (type_ == kAbortRequest) {
          Emit(ev, kEvAbort, id_);
          ++nev;
        } else if (type_ == kParams) {
          size_t slot = SlotOf(id_);
          if (content_len_ > 0) {
            stream_slot_ = slot != kNoSlot ? slot : OpenStream(id_);
          } else {
            if (slot != kNoSlot) {
              CloseStream(slot, true);
            } else {
              block_.clear();
            }
            Error e = DecodeFcgiPairs(block_.data(), block_.size(), limits_.max_pairs, &pairs_);
            if (!e.ok()) {
              Fail(ev, e);
              return {pos, nev + 1, false};
            }
            Emit(ev, kEvParams, id_, static_cast<uint32_t>(pairs_.size()));
            ++nev;
            block_done = true;
          }
        } else if (IsStream(type_)) {
          if (content_len_ == 0) {
            Emit(ev, kEvEndBase + type_, id_);
            ++nev;
          }
        } else if (IsValues(type_)) {
          values_.clear();
        } else if (!IsFixed(type_)) {
          Emit(ev, kEvUnknown, id_, type_);
          ++nev;
        }
        break;
      }

      case State::kContent: {
        if (content_left_ == 0) {
          state_ = (IsFixed(type_) || IsValues(type_)) ? State::kContentDone : State::kPadding;
          break;
        }
        if (pos == len) return {pos, nev, false};
        size_t take = std::min(content_left_, len - pos);
        if (IsStream(type_)) {
          if (nev >= cap) return {pos, nev, true};
          Emit(&events[nev], type_, id_, static_cast<uint32_t>(pos), static_cast<uint32_t>(take));
          ++nev;
        } else if (type_ == kParams) {
          std::vector<uint8_t>& buf = streams_[stream_slot_ - 1].buf;
          buf.insert(buf.end(), chunk + pos, chunk + pos + take);
          held_ += take;
        } else if (IsValues(type_)) {
          values_.insert(values_.end(), chunk + pos, chunk + pos + take);
        } else if (IsFixed(type_)) {
          std::memcpy(fixed_ + fixed_fill_, chunk + pos, take);
          fixed_fill_ += take;
        }
        pos += take;
        content_left_ -= take;
        break;
      }

      case State::kContentDone: {
        if (nev >= cap) return {pos, nev, true};
        if (IsValues(type_) && block_done) return {pos, nev, true};
        Event* ev = &events[nev];
        if (type_ == kBeginRequest) {
          Emit(ev, kEvBegin, id_, static_cast<uint32_t>((fixed_[0] << 8) | fixed_[1]), fixed_[2]);
          size_t slot = SlotOf(id_);
          if (slot != kNoSlot) CloseStream(slot, false);
        } else if (type_ == kEndRequest) {
          uint32_t app = (static_cast<uint32_t>(fixed_[0]) << 24) |
                         (static_cast<uint32_t>(fixed_[1]) << 16) |
                         (static_cast<uint32_t>(fixed_[2]) << 8) | fixed_[3];
          Emit(ev, kEvEnd, id_, app, fixed_[4]);
        } else if (type_ == kUnknownType) {
          Emit(ev, kEvUnknownType, 0, fixed_[0]);
        } else {
          block_.swap(values_);
          Error e = DecodeFcgiPairs(block_.data(), block_.size(), limits_.max_pairs, &pairs_);
          if (!e.ok()) {
            Fail(ev, e);
            return {pos, nev + 1, false};
          }
          Emit(ev, type_ == kGetValues ? kEvGetValues : kEvGetValuesResult, 0,
               static_cast<uint32_t>(pairs_.size()));
          block_done = true;
        }
        ++nev;
        state_ = State::kPadding;
        break;
      }

      case State::kPadding: {
        if (padding_left_ == 0) {
          state_ = State::kHeader;
          break;
        }
        if (pos == len) return {pos, nev, false};
        size_t take = std::min(padding_left_, len - pos);
        pos += take;
        padding_left_ -= take;
        break;
      }
    }
  }
}

void FcgiWriteHeader(uint8_t* out, uint8_t type, uint16_t id, uint16_t len, uint8_t pad) {
  out[0] = 1;
  out[1] = type;
  out[2] = static_cast<uint8_t>(id >> 8);
  out[3] = static_cast<uint8_t>(id);
  out[4] = static_cast<uint8_t>(len >> 8);
  out[5] = static_cast<uint8_t>(len);
  out[6] = pad;
  out[7] = 0;
}

size_t FcgiStreamSize(size_t content) {
  size_t full = content / kFcgiMaxChunk;
  size_t rem = content % kFcgiMaxChunk;
  return full * (kFcgiMaxChunk + kFcgiHeaderSize) +
         (rem > 0 ? kFcgiHeaderSize + rem + FcgiPad(rem) : 0);
}

uint8_t* FcgiWriteStream(uint8_t* out, uint8_t type, uint16_t id, const Span* spans, size_t nspans,
                         bool end) {
  size_t total = 0;
  for (size_t i = 0; i < nspans; ++i) total += spans[i].n;
  size_t si = 0;
  size_t soff = 0;
  while (total > 0) {
    size_t rec = std::min(total, kFcgiMaxChunk);
    uint8_t pad = static_cast<uint8_t>(FcgiPad(rec));
    FcgiWriteHeader(out, type, id, static_cast<uint16_t>(rec), pad);
    out += kFcgiHeaderSize;
    size_t need = rec;
    while (need > 0) {
      size_t avail = spans[si].n - soff;
      if (avail == 0) {
        ++si;
        soff = 0;
        continue;
      }
      size_t take = std::min(avail, need);
      std::memcpy(out, spans[si].p + soff, take);
      out += take;
      soff += take;
      need -= take;
    }
    if (pad > 0) std::memset(out, 0, pad);
    out += pad;
    total -= rec;
  }
  if (end) {
    FcgiWriteHeader(out, type, id, 0, 0);
    out += kFcgiHeaderSize;
  }
  return out;
}

void FcgiWriteBeginRequest(uint8_t* out, uint16_t id, uint16_t role, uint8_t flags) {
  FcgiWriteHeader(out, kBeginRequest, id, 8, 0);
  std::memset(out + 8, 0, 8);
  out[8] = static_cast<uint8_t>(role >> 8);
  out[9] = static_cast<uint8_t>(role);
  out[10] = flags;
}

void FcgiWriteEndRequest(uint8_t* out, uint16_t id, uint32_t app_status, uint8_t protocol_status) {
  FcgiWriteHeader(out, kEndRequest, id, 8, 0);
  std::memset(out + 8, 0, 8);
  out[8] = static_cast<uint8_t>(app_status >> 24);
  out[9] = static_cast<uint8_t>(app_status >> 16);
  out[10] = static_cast<uint8_t>(app_status >> 8);
  out[11] = static_cast<uint8_t>(app_status);
  out[12] = protocol_status;
}

void FcgiWriteAbortRequest(uint8_t* out, uint16_t id) {
  FcgiWriteHeader(out, kAbortRequest, id, 0, 0);
}

void FcgiWriteUnknownType(uint8_t* out, uint8_t type) {
  FcgiWriteHeader(out, kUnknownType, 0, 8, 0);
  std::memset(out + 8, 0, 8);
  out[8] = type;
}

template <typename Ch>
Error EncodeFcgiParams(uint16_t id, const StrList<Ch>& pairs, std::vector<uint8_t>* scratch,
                       std::vector<uint8_t>* out) {
  size_t size = 0;
  Error e = FcgiPairsSize(pairs, false, &size);
  if (!e.ok()) return e;
  scratch->resize(size);
  FcgiWritePairs(scratch->data(), pairs, false);
  out->resize(FcgiStreamSize(size) + kFcgiHeaderSize);
  Span span{scratch->data(), size};
  FcgiWriteStream(out->data(), kParams, id, &span, 1, true);
  return Error();
}

template <typename Ch>
Error EncodeFcgiValues(const StrList<Ch>& list, bool names_only, std::vector<uint8_t>* out) {
  size_t size = 0;
  Error e = FcgiPairsSize(list, names_only, &size);
  if (!e.ok()) return e;
  if (size > 0xFFFF) return MakeError(Err::kEncodeTooLarge, 0, 0, kVariantRecordTooLarge);
  size_t pad = FcgiPad(size);
  out->assign(kFcgiHeaderSize + size + pad, 0);
  FcgiWriteHeader(out->data(), names_only ? kGetValues : kGetValuesResult, 0,
                  static_cast<uint16_t>(size), static_cast<uint8_t>(pad));
  FcgiWritePairs(out->data() + kFcgiHeaderSize, list, names_only);
  return Error();
}

size_t FcgiResponseSize(size_t head, size_t body, bool end) {
  return FcgiStreamSize(head + body) + (end ? kFcgiHeaderSize + 16 : 0);
}

template <typename Ch>
Error WriteFcgiResponse(uint8_t* out, uint16_t id, const StrList<Ch>& head, const uint8_t* body,
                        size_t body_len, bool end, std::vector<uint8_t>* scratch) {
  size_t head_len = HeadSize(head, HeadStyle::kCgi);
  if (head_len + body_len <= kFcgiMaxChunk) {
    // One record: write the head in place.
    size_t content = head_len + body_len;
    size_t pad = FcgiPad(content);
    FcgiWriteHeader(out, kStdout, id, static_cast<uint16_t>(content), static_cast<uint8_t>(pad));
    Error e = WriteHead(out + kFcgiHeaderSize, head, HeadStyle::kCgi);
    if (!e.ok()) return e;
    uint8_t* w = out + kFcgiHeaderSize + head_len;
    if (body_len > 0) std::memcpy(w, body, body_len);
    w += body_len;
    if (pad > 0) std::memset(w, 0, pad);
    out = w + pad;
    if (end) {
      FcgiWriteHeader(out, kStdout, id, 0, 0);
      FcgiWriteEndRequest(out + kFcgiHeaderSize, id, 0, 0);
    }
    return Error();
  }
  scratch->resize(head_len);
  Error e = WriteHead(scratch->data(), head, HeadStyle::kCgi);
  if (!e.ok()) return e;
  Span spans[2] = {{scratch->data(), head_len}, {body, body_len}};
  out = FcgiWriteStream(out, kStdout, id, spans, 2, end);
  if (end) FcgiWriteEndRequest(out, id, 0, 0);
  return Error();
}

template Error EncodeFcgiParams<uint8_t>(uint16_t, const StrList<uint8_t>&, std::vector<uint8_t>*,
                                         std::vector<uint8_t>*);
template Error EncodeFcgiParams<char16_t>(uint16_t, const StrList<char16_t>&, std::vector<uint8_t>*,
                                          std::vector<uint8_t>*);
template Error EncodeFcgiValues<uint8_t>(const StrList<uint8_t>&, bool, std::vector<uint8_t>*);
template Error EncodeFcgiValues<char16_t>(const StrList<char16_t>&, bool, std::vector<uint8_t>*);
template Error WriteFcgiResponse<uint8_t>(uint8_t*, uint16_t, const StrList<uint8_t>&,
                                          const uint8_t*, size_t, bool, std::vector<uint8_t>*);
template Error WriteFcgiResponse<char16_t>(uint8_t*, uint16_t, const StrList<char16_t>&,
                                           const uint8_t*, size_t, bool, std::vector<uint8_t>*);

}  // namespace tsgi
