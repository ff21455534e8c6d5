#include "uwsgi.h"

#include <algorithm>
#include <cstring>

#include "names.h"

namespace tsgi {
namespace {

inline void Fail(Event* ev, Error* slot, const Error& e) {
  *slot = e;
  *ev = Event{{kEvError, static_cast<uint32_t>(e.code), 0, 0}};
}

}  // namespace

Standing UwsgiParser::standing() const {
  if (state_ == State::kDead) return Standing::kDead;
  if (state_ == State::kHeader && header_fill_ == 0) return Standing::kIdle;
  return Standing::kBusy;
}

void UwsgiParser::Reset(const Limits& limits) {
  limits_ = limits;
  state_ = State::kHeader;
  header_fill_ = 0;
  size_ = 0;
  body_left_ = 0;
  Trim(&vars_);
  Trim(&block_);
  Trim(&pairs_);
  error_ = Error();
}

Error UwsgiParser::Validate(uint64_t* content_length) {
  const uint8_t* p = block_.data();
  size_t n = block_.size();
  pairs_.clear();
  size_t pos = 0;
  constexpr size_t kNoPair = ~size_t{0};
  size_t cl_index = kNoPair;
  const size_t cap = PairCap(limits_.max_pairs);
  for (size_t count = 0; pos < n; ++count) {
    if (count >= cap) {
      return MakeError(Err::kUwsgiTooManyParams, 0, limits_.max_pairs);
    }
    if (n - pos < 2) return MakeError(Err::kUwsgiBadVars);
    size_t key_len = p[pos] | (static_cast<size_t>(p[pos + 1]) << 8);
    pos += 2;
    if (key_len > n - pos) return MakeError(Err::kUwsgiBadVars);
    size_t key_off = pos;
    pos += key_len;
    if (n - pos < 2) return MakeError(Err::kUwsgiBadVars);
    size_t val_len = p[pos] | (static_cast<size_t>(p[pos + 1]) << 8);
    pos += 2;
    if (val_len > n - pos) return MakeError(Err::kUwsgiBadVars);
    Pair pair;
    pair.name_id = InternName(p + key_off, key_len);
    pair.name_off = static_cast<uint32_t>(key_off);
    pair.name_len = static_cast<uint32_t>(key_len);
    pair.val_off = static_cast<uint32_t>(pos);
    pair.val_len = static_cast<uint32_t>(val_len);
    pos += val_len;
    // The first CONTENT_LENGTH counts (an id is only given to exactly its name).
    if (cl_index == kNoPair && pair.name_id == kIdContentLength) cl_index = count;
    pairs_.push_back(pair);
  }
  const Pair* cl = cl_index == kNoPair ? nullptr : &pairs_[cl_index];
  *content_length = 0;
  if (cl != nullptr && cl->val_len > 0) {
    if (cl->val_len > 15) return MakeError(Err::kUwsgiBadContentLength);
    uint64_t v = 0;
    for (size_t i = 0; i < cl->val_len; ++i) {
      uint8_t c = p[cl->val_off + i];
      if (c < '0' || c > '9') return MakeError(Err::kUwsgiBadContentLength);
      v = v * 10 + (c - '0');
    }
    *content_length = v;
  }
  return Error();
}

PushResult UwsgiParser::Push(const uint8_t* chunk, size_t len, size_t start, Event* events,
                             size_t cap) {
  size_t pos = start;
  size_t nev = 0;
  bool block_done = false;
  for (;;) {
    switch (state_) {
      case State::kDead:
        return {pos, nev, false};

      case State::kHeader: {
        size_t take = std::min(sizeof(header_) - header_fill_, len - pos);
        if (take > 0) std::memcpy(header_ + header_fill_, chunk + pos, take);
        pos += take;
        header_fill_ += take;
        if (header_fill_ < sizeof(header_)) return {pos, nev, false};
        header_fill_ = 0;
        size_ = header_[1] | (static_cast<size_t>(header_[2]) << 8);
        state_ = State::kCheck;
        break;
      }

      case State::kCheck: {
        if (nev >= cap) return {pos, nev, true};
        if (header_[0] != 0) {
          Fail(&events[nev], &error_, MakeError(Err::kUwsgiBadModifier, header_[0]));
          state_ = State::kDead;
          return {pos, nev + 1, false};
        }
        if (static_cast<double>(size_) > limits_.max_params_bytes) {
          Fail(&events[nev], &error_,
               MakeError(Err::kUwsgiHeadersTooLarge, static_cast<double>(size_),
                         limits_.max_params_bytes));
          state_ = State::kDead;
          return {pos, nev + 1, false};
        }
        vars_.clear();
        state_ = State::kVars;
        break;
      }

      case State::kVars: {
        size_t take = std::min(size_ - vars_.size(), len - pos);
        vars_.insert(vars_.end(), chunk + pos, chunk + pos + take);
        pos += take;
        if (vars_.size() < size_) return {pos, nev, false};
        state_ = State::kValidate;
        break;
      }

      case State::kValidate: {
        if (nev >= cap || block_done) return {pos, nev, true};
        // The block of an earlier event of this call stays valid until the call returns.
        block_.swap(vars_);
        uint64_t content_length = 0;
        Error e = Validate(&content_length);
        if (!e.ok()) {
          Fail(&events[nev], &error_, e);
          state_ = State::kDead;
          return {pos, nev + 1, false};
        }
        uint32_t modifiers =
            static_cast<uint32_t>(header_[0]) | (static_cast<uint32_t>(header_[3]) << 8);
        events[nev++] = Event{
            {kEvBlockParams | (modifiers << 8), static_cast<uint32_t>(pairs_.size()),
             static_cast<uint32_t>(content_length), static_cast<uint32_t>(content_length >> 32)}};
        block_done = true;
        body_left_ = content_length;
        state_ = content_length > 0 ? State::kBody : State::kBodyEnd;
        break;
      }

      case State::kBody: {
        if (pos == len) return {pos, nev, false};
        if (nev >= cap) return {pos, nev, true};
        size_t take =
            static_cast<size_t>(std::min<uint64_t>(body_left_, static_cast<uint64_t>(len - pos)));
        events[nev++] =
            Event{{kEvBody, static_cast<uint32_t>(pos), static_cast<uint32_t>(take), 0}};
        pos += take;
        body_left_ -= take;
        if (body_left_ == 0) state_ = State::kBodyEnd;
        break;
      }

      case State::kBodyEnd: {
        if (nev >= cap) return {pos, nev, true};
        events[nev++] = Event{{kEvBodyEnd, 0, 0, 0}};
        state_ = State::kHeader;
        break;
      }
    }
  }
}

template <typename Ch>
Error EncodeUwsgiRequest(const StrList<Ch>& pairs, uint8_t modifier1, uint8_t modifier2,
                         std::vector<uint8_t>* out) {
  StrCursor<Ch> cursor(pairs);
  size_t block = 0;
  for (size_t i = 0; i < pairs.count; ++i) {
    size_t n = 0;
    const Ch* s = cursor.Next(&n);
    if (!AllLatin1(s, n)) return MakeError(Err::kEncodeNotLatin1);
    if (n > 0xFFFF) return MakeError(Err::kEncodeTooLarge, 0, 0, kVariantUwsgiTooLarge);
    block += 2 + n;
  }
  if (block > 0xFFFF) return MakeError(Err::kEncodeTooLarge, 0, 0, kVariantUwsgiTooLarge);
  out->resize(4 + block);
  uint8_t* w = out->data();
  w[0] = modifier1;
  w[1] = static_cast<uint8_t>(block);
  w[2] = static_cast<uint8_t>(block >> 8);
  w[3] = modifier2;
  w += 4;
  StrCursor<Ch> writer(pairs);
  for (size_t i = 0; i < pairs.count; ++i) {
    size_t n = 0;
    const Ch* s = writer.Next(&n);
    *w++ = static_cast<uint8_t>(n);
    *w++ = static_cast<uint8_t>(n >> 8);
    for (size_t j = 0; j < n; ++j) w[j] = static_cast<uint8_t>(s[j]);
    w += n;
  }
  return Error();
}

template Error EncodeUwsgiRequest<uint8_t>(const StrList<uint8_t>&, uint8_t, uint8_t,
                                           std::vector<uint8_t>*);
template Error EncodeUwsgiRequest<char16_t>(const StrList<char16_t>&, uint8_t, uint8_t,
                                            std::vector<uint8_t>*);

}  // namespace tsgi
