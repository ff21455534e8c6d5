#include "scgi.h"

#include <algorithm>
#include <cstring>

#include "names.h"
#include "scan.h"

namespace tsgi {
namespace {

constexpr char kContentLength[] = "CONTENT_LENGTH";
constexpr size_t kContentLengthSize = sizeof(kContentLength) - 1;

template <typename Ch>
bool Equals(const Ch* p, size_t n, const char* lit, size_t lit_n) {
  if (n != lit_n) return false;
  for (size_t i = 0; i < n; ++i) {
    if (static_cast<uint32_t>(p[i]) != static_cast<uint8_t>(lit[i])) return false;
  }
  return true;
}

// 1-15 ASCII digits.
bool ParseContentLength(const uint8_t* p, size_t n, uint64_t* value) {
  if (n < 1 || n > 15) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] < '0' || p[i] > '9') return false;
    v = v * 10 + (p[i] - '0');
  }
  *value = v;
  return true;
}

size_t Digits(uint64_t v) {
  size_t n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}

void AppendDecimal(std::vector<uint8_t>* out, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) out->push_back(static_cast<uint8_t>(tmp[--n]));
}

}  // namespace

Standing ScgiParser::standing() const {
  switch (state_) {
    case State::kDead:
      return Standing::kDead;
    case State::kDone:
      return Standing::kFinished;
    case State::kLength:
      return digits_ == 0 ? Standing::kIdle : Standing::kBusy;
    default:
      return Standing::kBusy;
  }
}

void ScgiParser::Reset(const Limits& limits) {
  limits_ = limits;
  state_ = State::kLength;
  length_ = 0;
  digits_ = 0;
  body_left_ = 0;
  Trim(&block_);
  Trim(&pairs_);
  error_ = Error();
}

Error ScgiParser::Validate(uint64_t* content_length) {
  const uint8_t* p = block_.data();
  size_t n = block_.size();
  pairs_.clear();
  // Every field ends with a NUL: the scanner yields the end of each name and value in turn.
  NulScanner nuls(p, n);
  const size_t cap = PairCap(limits_.max_pairs);
  size_t pos = 0;
  bool scgi = false;
  for (size_t count = 0; pos < n; ++count) {
    if (count >= cap) {
      return MakeError(Err::kScgiTooManyParams, 0, limits_.max_pairs);
    }
    size_t name_end = nuls.Next();
    if (name_end == n) return MakeError(Err::kScgiBadHeaders);
    size_t val_end = nuls.Next();
    if (val_end == n) return MakeError(Err::kScgiBadHeaders);
    Pair pair;
    pair.name_id = InternName(p + pos, name_end - pos);
    pair.name_off = static_cast<uint32_t>(pos);
    pair.name_len = static_cast<uint32_t>(name_end - pos);
    pair.val_off = static_cast<uint32_t>(name_end + 1);
    pair.val_len = static_cast<uint32_t>(val_end - name_end - 1);
    // SCGI must be sent with the value 1 (an id is only given to exactly its name).
    if (pair.name_id == kIdScgi && pair.val_len == 1 && p[name_end + 1] == '1') scgi = true;
    pairs_.push_back(pair);
    pos = val_end + 1;
  }
  if (pairs_.empty() || pairs_[0].name_id != kIdContentLength) {
    return MakeError(Err::kScgiNoContentLength);
  }
  if (!ParseContentLength(p + pairs_[0].val_off, pairs_[0].val_len, content_length)) {
    return MakeError(Err::kScgiBadContentLength);
  }
  return scgi ? Error() : MakeError(Err::kScgiNoScgi);
}

PushResult ScgiParser::Push(const uint8_t* chunk, size_t len, size_t start, Event* events,
                            size_t cap) {
  size_t pos = start;
  size_t nev = 0;
  for (;;) {
    switch (state_) {
      case State::kDead:
        return {pos, nev, false};

      case State::kDone:
        return {len, nev, false};

      case State::kLength: {
        if (nev >= cap) return {pos, nev, true};
        while (pos < len) {
          uint8_t c = chunk[pos++];
          if (c >= '0' && c <= '9' && digits_ < 10) {
            length_ = length_ * 10 + (c - '0');
            ++digits_;
            continue;
          }
          if (c == ':' && digits_ > 0) {
            if (static_cast<double>(length_) > limits_.max_params_bytes) {
              error_ = MakeError(Err::kScgiHeadersTooLarge, static_cast<double>(length_),
                                 limits_.max_params_bytes);
            } else {
              state_ = length_ > 0 ? State::kBlock : State::kComma;
              break;
            }
          } else {
            error_ = MakeError(Err::kScgiBadNetstring, 0, 0, kVariantNetstringLength);
          }
          events[nev] = Event{{kEvError, static_cast<uint32_t>(error_.code), 0, 0}};
          state_ = State::kDead;
          return {pos, nev + 1, false};
        }
        if (state_ == State::kLength) return {pos, nev, false};
        break;
      }

      case State::kBlock: {
        size_t take = static_cast<size_t>(
            std::min<uint64_t>(length_ - block_.size(), static_cast<uint64_t>(len - pos)));
        block_.insert(block_.end(), chunk + pos, chunk + pos + take);
        pos += take;
        if (block_.size() < length_) return {pos, nev, false};
        state_ = State::kComma;
        break;
      }

      case State::kComma: {
        if (pos == len) return {pos, nev, false};
        if (nev >= cap) return {pos, nev, true};
        if (chunk[pos] != ',') {
          error_ = MakeError(Err::kScgiBadNetstring, 0, 0, kVariantNetstringComma);
          events[nev] = Event{{kEvError, static_cast<uint32_t>(error_.code), 0, 0}};
          state_ = State::kDead;
          return {pos, nev + 1, false};
        }
        ++pos;
        state_ = State::kValidate;
        break;
      }

      case State::kValidate: {
        if (nev >= cap) return {pos, nev, true};
        uint64_t content_length = 0;
        Error e = Validate(&content_length);
        if (!e.ok()) {
          error_ = e;
          events[nev] = Event{{kEvError, static_cast<uint32_t>(e.code), 0, 0}};
          state_ = State::kDead;
          return {pos, nev + 1, false};
        }
        events[nev++] = Event{{kEvBlockParams, static_cast<uint32_t>(pairs_.size()),
                               static_cast<uint32_t>(content_length),
                               static_cast<uint32_t>(content_length >> 32)}};
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
        state_ = State::kDone;
        break;
      }
    }
  }
}

template <typename Ch>
Error EncodeScgiRequest(const StrList<Ch>& pairs, uint64_t content_length,
                        std::vector<uint8_t>* out) {
  // Check every string in order, name before value, and size the block.
  StrCursor<Ch> cursor(pairs);
  size_t block = kContentLengthSize + 1 + Digits(content_length) + 1 + 7;
  for (size_t i = 0; i + 1 < pairs.count; i += 2) {
    size_t name_len = 0;
    const Ch* name = cursor.Next(&name_len);
    size_t val_len = 0;
    const Ch* val = cursor.Next(&val_len);
    for (int k = 0; k < 2; ++k) {
      const Ch* s = k == 0 ? name : val;
      size_t n = k == 0 ? name_len : val_len;
      if (!AllLatin1(s, n)) return MakeError(Err::kEncodeNotLatin1);
      for (size_t j = 0; j < n; ++j) {
        if (s[j] == 0) return MakeError(Err::kEncodeBadArgument, 0, 0, kVariantScgiNul);
      }
    }
    if (Equals(name, name_len, kContentLength, kContentLengthSize) ||
        Equals(name, name_len, "SCGI", 4)) {
      continue;
    }
    block += name_len + 1 + val_len + 1;
  }
  out->clear();
  out->reserve(Digits(block) + 1 + block + 1);
  AppendDecimal(out, block);
  out->push_back(':');
  out->insert(out->end(), kContentLength, kContentLength + kContentLengthSize);
  out->push_back(0);
  AppendDecimal(out, content_length);
  out->push_back(0);
  static constexpr uint8_t kScgi[] = {'S', 'C', 'G', 'I', 0, '1', 0};
  out->insert(out->end(), kScgi, kScgi + sizeof(kScgi));
  StrCursor<Ch> writer(pairs);
  for (size_t i = 0; i + 1 < pairs.count; i += 2) {
    size_t name_len = 0;
    const Ch* name = writer.Next(&name_len);
    size_t val_len = 0;
    const Ch* val = writer.Next(&val_len);
    if (Equals(name, name_len, kContentLength, kContentLengthSize) ||
        Equals(name, name_len, "SCGI", 4)) {
      continue;
    }
    for (size_t j = 0; j < name_len; ++j) out->push_back(static_cast<uint8_t>(name[j]));
    out->push_back(0);
    for (size_t j = 0; j < val_len; ++j) out->push_back(static_cast<uint8_t>(val[j]));
    out->push_back(0);
  }
  out->push_back(',');
  return Error();
}

template Error EncodeScgiRequest<uint8_t>(const StrList<uint8_t>&, uint64_t, std::vector<uint8_t>*);
template Error EncodeScgiRequest<char16_t>(const StrList<char16_t>&, uint64_t,
                                           std::vector<uint8_t>*);

}  // namespace tsgi
