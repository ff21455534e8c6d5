// The codec part of the N-API binding (native/binding/common.h lists the others).
//
// Design (see docs/codec.md and lib/codec/native.ts): C++ frames, validates and scans; it
// never builds JS objects. Parsers write fixed-size event descriptors into a reused Int32Array
// shared with TypeScript (the "io" array, registered once per environment by init()), and
// hand over at most one params block per call as one latin-1 string, with the pair
// descriptors (offsets, lengths, well-known name ids) in a second shared Int32Array.
// TypeScript builds the events, takes stream data as views of the chunk and formats error
// messages with lib/codec/errors.ts. Encoders get their strings as one concatenated string
// plus per-string lengths in the io array, and write into one output buffer per call.
//
// io layout (32-bit words); lib/codec/native.ts mirrors it:
//   0 start offset in / next offset out   1 events written   2 more work on this chunk
//   3 pair area replaced                  4 error code       5 error message variant
//   6-7 error number a (float64)          8-9 error number b (float64)
//   10 parser standing after a push (core Standing: 0 busy, 1 idle, 2 finished, 3 dead)
//   11 the slot a push with slot -1 took (its limits come in words 4-9 as three float64)
//   12.. events, four words each (native/core/common.h); for encoders: string lengths
//
// The addon is context-aware: all state lives in per-environment instance data or in the
// parser objects.

#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "binding/common.h"
#include "core/boundary.h"
#include "core/errors.h"
#include "core/fastcgi.h"
#include "core/head.h"
#include "core/names.h"
#include "core/scgi.h"
#include "core/uwsgi.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

using tsgi::binding::GetBytes;
using tsgi::binding::Int;
using tsgi::binding::Throw;
using tsgi::binding::Undefined;

using tsgi::Error;
using tsgi::Event;
using tsgi::Limits;
using tsgi::Pair;
using tsgi::PushResult;
using tsgi::StrList;

// The io layout and pair flags: native/core/boundary.h, generated from native/boundary.json.
using tsgi::boundary::kIoCount;
using tsgi::boundary::kIoData;
using tsgi::boundary::kIoErrA;
using tsgi::boundary::kIoErrB;
using tsgi::boundary::kIoErrCode;
using tsgi::boundary::kIoErrVariant;
using tsgi::boundary::kIoEvents;
using tsgi::boundary::kIoLimits;
using tsgi::boundary::kIoMore;
using tsgi::boundary::kIoOutLen;
using tsgi::boundary::kIoOutOff;
using tsgi::boundary::kIoPairsGrown;
using tsgi::boundary::kIoPos;
using tsgi::boundary::kIoSlot;
using tsgi::boundary::kIoStanding;
using tsgi::boundary::kIoX;
using tsgi::boundary::kIoY;
using tsgi::boundary::kValueCached;
using tsgi::boundary::kValueStore;
constexpr size_t kMinIoWords = kIoData + 4 * 16;

struct ParserBox {
  explicit ParserBox(uint32_t k) : kind(k) {}
  virtual ~ParserBox() = default;
  virtual void Reset(const Limits& limits) = 0;
  uint32_t kind;
  bool in_use = false;
};

template <typename P, uint32_t K>
struct Box : ParserBox {
  static constexpr uint32_t kKind = K;
  explicit Box(const Limits& limits) : ParserBox(K), parser(limits) {}
  void Reset(const Limits& limits) override { parser.Reset(limits); }
  P parser;
};

using FcgiBox = Box<tsgi::FcgiParser, 0>;
using ScgiBox = Box<tsgi::ScgiParser, 1>;
using UwsgiBox = Box<tsgi::UwsgiParser, 2>;

struct CachedValue {
  std::string bytes;
  bool in_js = false;  // TypeScript holds these bytes as a string
};

struct Instance {
  napi_ref io_ref = nullptr;
  int32_t* io = nullptr;
  size_t io_words = 0;
  napi_ref pairs_ref = nullptr;
  uint32_t* pairs = nullptr;
  size_t pairs_words = 0;
  std::vector<char16_t> text;                     // UTF-16 of encoder strings
  std::vector<uint8_t> out;                       // encoder output
  std::vector<uint8_t> scratch;                   // encoder intermediate
  std::vector<uint8_t> body;                      // fcgiResponseText's body bytes
  std::vector<std::unique_ptr<ParserBox>> slots;  // parsers, by slot
  std::vector<uint32_t> free_slots[3];            // free slots by parser kind
  CachedValue value_cache[256];                   // last value by well-known name id
  napi_ref out_ref = nullptr;                     // the hot encoders' output slab
  uint8_t* out_base = nullptr;
  size_t out_size = 0;
};

Instance* GetInstance(napi_env env) {
  void* data = nullptr;
  if (napi_get_instance_data(env, &data) != napi_ok) return nullptr;
  return static_cast<Instance*>(data);
}

void WriteDouble(int32_t* io, size_t word, double v) { std::memcpy(io + word, &v, sizeof(v)); }

void WriteError(Instance* inst, const Error& e) {
  inst->io[kIoErrCode] = static_cast<int32_t>(e.code);
  inst->io[kIoErrVariant] = e.variant;
  WriteDouble(inst->io, kIoErrA, e.a);
  WriteDouble(inst->io, kIoErrB, e.b);
}

bool GetDouble(napi_env env, napi_value v, double* out) {
  return napi_get_value_double(env, v, out) == napi_ok;
}

// An Int32Array's data pointer and length in words, kept alive by a strong reference.
bool Adopt(napi_env env, napi_value array, napi_ref* ref, int32_t** data, size_t* words) {
  napi_typedarray_type type;
  size_t length = 0;
  void* raw = nullptr;
  napi_value ab = nullptr;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, array, &type, &length, &raw, &ab, &offset) != napi_ok ||
      type != napi_int32_array) {
    return false;
  }
  napi_ref next = nullptr;
  if (napi_create_reference(env, array, 1, &next) != napi_ok) return false;
  if (*ref != nullptr) napi_delete_reference(env, *ref);
  *ref = next;
  *data = static_cast<int32_t*>(raw);
  *words = length;
  return true;
}

void FinalizeInstance(napi_env env, void* data, void*) {
  Instance* inst = static_cast<Instance*>(data);
  if (inst->io_ref != nullptr) napi_delete_reference(env, inst->io_ref);
  if (inst->pairs_ref != nullptr) napi_delete_reference(env, inst->pairs_ref);
  if (inst->out_ref != nullptr) napi_delete_reference(env, inst->out_ref);
  delete inst;
}

// init(io: Int32Array, pairs: Int32Array): string[]  (the table of well-known names)
napi_value Init(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Instance* inst = GetInstance(env);
  if (inst == nullptr || argc < 2) return Throw(env, "tsgi: bad init");
  int32_t* io = nullptr;
  size_t io_words = 0;
  if (!Adopt(env, argv[0], &inst->io_ref, &io, &io_words) || io_words < kMinIoWords) {
    return Throw(env, "tsgi: io must be an Int32Array");
  }
  inst->io = io;
  inst->io_words = io_words;
  int32_t* pairs = nullptr;
  size_t pairs_words = 0;
  if (!Adopt(env, argv[1], &inst->pairs_ref, &pairs, &pairs_words)) {
    return Throw(env, "tsgi: pairs must be an Int32Array");
  }
  inst->pairs = reinterpret_cast<uint32_t*>(pairs);
  inst->pairs_words = pairs_words;
  napi_value names = nullptr;
  CHECK_NAPI(napi_create_array_with_length(env, tsgi::NameCount(), &names));
  for (size_t i = 0; i < tsgi::NameCount(); ++i) {
    napi_value s = nullptr;
    CHECK_NAPI(napi_create_string_latin1(env, tsgi::NameAt(i), NAPI_AUTO_LENGTH, &s));
    CHECK_NAPI(napi_set_element(env, names, static_cast<uint32_t>(i), s));
  }
  return names;
}

// pairArea(): Int32Array  (the current pair descriptor array, after the native side grew it)
napi_value PairArea(napi_env env, napi_callback_info) {
  Instance* inst = GetInstance(env);
  napi_value result = nullptr;
  if (inst == nullptr || inst->pairs_ref == nullptr) return Undefined(env);
  CHECK_NAPI(napi_get_reference_value(env, inst->pairs_ref, &result));
  return result;
}

// ---------------------------------------------------------------------------------------
// Parsers

// Parsers live in per-environment slots rather than in JS objects with finalizers (a
// finalizer, like a FinalizationRegistry entry, costs microseconds per object). A JS parser
// takes a slot at its first push and gives it back as soon as the native parser is no longer
// busy (between records or requests, after an error or when finished), so on the common path
// a request that arrives whole costs no native allocation and no finalizer; only a parser
// left busy between pushes is tracked by a FinalizationRegistry in lib/codec/native.ts,
// which calls release().

// A free slot of `kind` (0 fcgi | 1 scgi | 2 uwsgi) holding a parser reset to `limits`, or
// false when no memory is left.
bool TakeSlot(Instance* inst, uint32_t kind, const Limits& limits, uint32_t* out) {
  std::vector<uint32_t>& free_list = inst->free_slots[kind];
  uint32_t slot;
  if (!free_list.empty()) {
    slot = free_list.back();
    free_list.pop_back();
    inst->slots[slot]->Reset(limits);
  } else {
    ParserBox* box = nullptr;
    if (kind == 0) {
      box = new (std::nothrow) FcgiBox(limits);
    } else if (kind == 1) {
      box = new (std::nothrow) ScgiBox(limits);
    } else {
      box = new (std::nothrow) UwsgiBox(limits);
    }
    if (box == nullptr) return false;
    slot = static_cast<uint32_t>(inst->slots.size());
    inst->slots.emplace_back(box);
  }
  inst->slots[slot]->in_use = true;
  *out = slot;
  return true;
}

void ReleaseSlot(Instance* inst, uint32_t slot) {
  ParserBox* box = inst->slots[slot].get();
  box->in_use = false;
  inst->free_slots[box->kind].push_back(slot);
}

// trimMemory(): hands memory the process freed back to the system (glibc keeps freed blocks
// for reuse, so a burst of large request heads would otherwise stay in the resident size for
// good). A no-op elsewhere.
napi_value TrimMemory(napi_env env, napi_callback_info) {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  return Undefined(env);
}

// release(slot): gives back the slot of a parser that was closed or garbage-collected while
// busy; what it held (an unfinished params block) is freed now, not when the slot is reused.
napi_value Release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Instance* inst = GetInstance(env);
  uint32_t slot = 0;
  if (inst != nullptr && argc == 1 && napi_get_value_uint32(env, argv[0], &slot) == napi_ok &&
      slot < inst->slots.size() && inst->slots[slot]->in_use) {
    inst->slots[slot]->Reset(tsgi::Limits());
    ReleaseSlot(inst, slot);
  }
  return Undefined(env);
}

// Copies the pair descriptors of the block just emitted to the shared pair area, growing it
// (a new Int32Array, signalled in io) when it is too small.
// The value cache: the last value seen for each well-known name, mirrored by valueCache in
// lib/codec/native.ts. Most values repeat from request to request (SERVER_SOFTWARE,
// DOCUMENT_ROOT, HTTP_ACCEPT, ...), and TypeScript can reuse the string it made before instead
// of cutting a new one. The name id word of a pair gets a flag: kValueCached (the value
// equals the cached one: take the cached string) or kValueStore (it repeats the last value
// for the first time: cut it and keep a copy). A value that changes on every request
// (REMOTE_PORT, cookies) is never stored. The two sides stay in step because TypeScript
// materialises every published block at once, pair by pair in this order.
constexpr size_t kMaxCachedValue = 256;

void MarkCachedValues(Instance* inst, const std::vector<uint8_t>& block, size_t words) {
  for (size_t k = 0; k < words; k += tsgi::kPairWords) {
    uint32_t* w = inst->pairs + k;
    uint32_t id = w[0];
    if (id == 0 || w[4] > kMaxCachedValue) continue;
    CachedValue& cached = inst->value_cache[id];
    const char* value = reinterpret_cast<const char*>(block.data()) + w[3];
    if (cached.bytes.size() == w[4] && tsgi::SameBytes(cached.bytes.data(), value, w[4])) {
      w[0] = id | (cached.in_js ? kValueCached : kValueStore);
      cached.in_js = true;
    } else {
      cached.bytes.assign(value, w[4]);
      cached.in_js = false;
    }
  }
}

bool PublishPairs(napi_env env, Instance* inst, const std::vector<Pair>& pairs,
                  const std::vector<uint8_t>& block, bool cache_values) {
  size_t words = pairs.size() * tsgi::kPairWords;
  if (words > inst->pairs_words) {
    size_t want = inst->pairs_words * 2;
    if (want < words) want = words;
    void* raw = nullptr;
    napi_value ab = nullptr;
    napi_value array = nullptr;
    if (napi_create_arraybuffer(env, want * 4, &raw, &ab) != napi_ok ||
        napi_create_typedarray(env, napi_int32_array, want, ab, 0, &array) != napi_ok) {
      return false;
    }
    int32_t* data = nullptr;
    size_t got = 0;
    if (!Adopt(env, array, &inst->pairs_ref, &data, &got)) return false;
    inst->pairs = reinterpret_cast<uint32_t*>(data);
    inst->pairs_words = got;
    inst->io[kIoPairsGrown] = 1;
  }
  if (words > 0) std::memcpy(inst->pairs, pairs.data(), words * 4);
  if (cache_values) MarkCachedValues(inst, block, words);
  return true;
}

inline bool IsBlockEvent(uint32_t w0) {
  uint32_t kind = w0 & 0xFF;
  return kind == tsgi::kEvParams || kind == tsgi::kEvGetValues ||
         kind == tsgi::kEvGetValuesResult || kind == tsgi::kEvBlockParams;
}

// push(slot, chunk): string | undefined. Reads the start offset from io[0]; writes the
// next offset, the events and the "more" flag; returns the block of the params-like event
// of this call, if any, as one latin-1 string. With slot -1 it first takes a slot from the
// pool (TakeSlot), with the limits read from io words 4-9 (three float64: maxParamsBytes,
// maxPairs, maxRecordBody), and writes the slot to io[11]: a parser that holds no slot
// pushes with one call.
template <typename B>
napi_value Push(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Instance* inst = GetInstance(env);
  int32_t given = 0;
  uint8_t* chunk = nullptr;
  size_t len = 0;
  if (inst == nullptr || inst->io == nullptr || argc < 2 ||
      napi_get_value_int32(env, argv[0], &given) != napi_ok ||
      !GetBytes(env, argv[1], &chunk, &len)) {
    return Throw(env, "tsgi: bad push arguments");
  }
  uint32_t slot = static_cast<uint32_t>(given);
  if (given < 0) {
    Limits limits;
    std::memcpy(&limits.max_params_bytes, inst->io + kIoLimits, sizeof(double));
    std::memcpy(&limits.max_pairs, inst->io + kIoLimits + 2, sizeof(double));
    std::memcpy(&limits.max_record_body, inst->io + kIoLimits + 4, sizeof(double));
    if (!TakeSlot(inst, B::kKind, limits, &slot)) return Throw(env, "tsgi: cannot create parser");
    inst->io[kIoSlot] = static_cast<int32_t>(slot);
  } else if (slot >= inst->slots.size() || !inst->slots[slot]->in_use ||
             inst->slots[slot]->kind != B::kKind) {
    return Throw(env, "tsgi: bad push arguments");
  }
  auto& parser = static_cast<B*>(inst->slots[slot].get())->parser;
  int32_t* io = inst->io;
  size_t start = static_cast<size_t>(static_cast<uint32_t>(io[kIoPos]));
  if (start > len) start = len;
  Event* events = reinterpret_cast<Event*>(io + kIoData);
  size_t cap = (inst->io_words - kIoData) / 4;
  PushResult r = parser.Push(chunk, len, start, events, cap);
  io[kIoPos] = static_cast<int32_t>(r.pos);
  io[kIoEvents] = static_cast<int32_t>(r.events);
  io[kIoMore] = r.more ? 1 : 0;
  io[kIoPairsGrown] = 0;
  tsgi::Standing standing = r.more ? tsgi::Standing::kBusy : parser.standing();
  io[kIoStanding] = static_cast<int32_t>(standing);
  if (r.events > 0 && (events[r.events - 1].w[0] & 0xFF) == tsgi::kEvError) {
    WriteError(inst, parser.error());
  }
  napi_value result = nullptr;
  for (size_t i = 0; i < r.events && result == nullptr; ++i) {
    if (!IsBlockEvent(events[i].w[0])) continue;
    const std::vector<uint8_t>& block = parser.block();
    // getValues events use the names only: their values must not touch the value cache.
    bool cache_values = (events[i].w[0] & 0xFF) != tsgi::kEvGetValues;
    if (!PublishPairs(env, inst, parser.pairs(), block, cache_values)) {
      return Throw(env, "tsgi: out of memory");
    }
    CHECK_NAPI(napi_create_string_latin1(
        env, block.empty() ? "" : reinterpret_cast<const char*>(block.data()), block.size(),
        &result));
  }
  // The block string is made; the parser can go back to the pool.
  if (standing != tsgi::Standing::kBusy) ReleaseSlot(inst, slot);
  return result != nullptr ? result : Undefined(env);
}

// ---------------------------------------------------------------------------------------
// Encoders. Strings arrive as one string (flat or not) plus `count` lengths at io[12..].

bool GetStrings(napi_env env, Instance* inst, napi_value str, double count,
                StrList<char16_t>* list) {
  if (!(count >= 0) || count > static_cast<double>(inst->io_words - kIoData)) return false;
  size_t n = static_cast<size_t>(count);
  const uint32_t* lens = reinterpret_cast<const uint32_t*>(inst->io + kIoData);
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += lens[i];
  inst->text.resize(total + 2);
  size_t copied = 0;
  if (napi_get_value_string_utf16(env, str, inst->text.data(), total + 2, &copied) != napi_ok ||
      copied != total) {
    return false;
  }
  list->chars = inst->text.data();
  list->lens = lens;
  list->count = n;
  return true;
}

napi_value Fail(napi_env env, Instance* inst, const Error& e) {
  WriteError(inst, e);
  return Int(env, static_cast<int32_t>(e.code));
}

napi_value BadArgument(napi_env env, Instance* inst) {
  return Fail(env, inst, tsgi::MakeError(tsgi::Err::kEncodeBadArgument));
}

napi_value CopyOut(napi_env env, const std::vector<uint8_t>& bytes) {
  napi_value result = nullptr;
  void* data = nullptr;
  CHECK_NAPI(napi_create_buffer_copy(env, bytes.size(),
                                     bytes.empty() ? static_cast<const void*>("") : bytes.data(),
                                     &data, &result));
  return result;
}

// The hot encoders take their numbers from io and write into the output slab registered by
// setOut(): io[0] = offset in the slab, io[1] = output length (computed by the caller, checked
// here), io[2] = string count, io[3] and io[11] = per-function numbers. They return 0 or an
// error code (details in io[4..9]). No JS value is made here: the caller views the slab.

// setOut(slab: ArrayBuffer): the buffer that encoders write into.
napi_value SetOut(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Instance* inst = GetInstance(env);
  void* data = nullptr;
  size_t len = 0;
  napi_ref next = nullptr;
  if (inst == nullptr || argc < 1 ||
      napi_get_arraybuffer_info(env, argv[0], &data, &len) != napi_ok ||
      napi_create_reference(env, argv[0], 1, &next) != napi_ok) {
    return Throw(env, "tsgi: setOut needs an ArrayBuffer");
  }
  if (inst->out_ref != nullptr) napi_delete_reference(env, inst->out_ref);
  inst->out_ref = next;
  inst->out_base = static_cast<uint8_t*>(data);
  inst->out_size = len;
  return Undefined(env);
}

// The output span io[0..1] in the slab, or false.
bool OutSpan(Instance* inst, uint8_t** out, size_t* len) {
  uint32_t off = static_cast<uint32_t>(inst->io[kIoOutOff]);
  uint32_t n = static_cast<uint32_t>(inst->io[kIoOutLen]);
  if (inst->out_base == nullptr || off > inst->out_size || n > inst->out_size - off) return false;
  *out = inst->out_base + off;
  *len = n;
  return true;
}

Instance* EncoderInstance(napi_env env) {
  Instance* inst = GetInstance(env);
  return inst != nullptr && inst->io != nullptr ? inst : nullptr;
}

// What every slab encoder unpacks first: its JavaScript arguments (up to two), the instance,
// the output span in the slab and the numbers in io (setOut() above).
struct EncoderCall {
  Instance* inst = nullptr;
  size_t argc = 2;
  napi_value argv[2] = {nullptr, nullptr};
  uint8_t* out = nullptr;
  size_t out_len = 0;
  uint32_t count = 0;  // io[kIoCount]
  uint32_t x = 0;      // io[kIoX]
  uint32_t y = 0;      // io[kIoY]
};

// Fills `call` and returns true; else returns false with `*result` the value to return: a
// thrown error without an instance, ENCODE_BAD_ARGUMENT with fewer than `min_args` arguments
// or an output span outside the slab.
bool StartEncoder(napi_env env, napi_callback_info info, size_t min_args, EncoderCall* call,
                  napi_value* result) {
  *result = nullptr;
  if (napi_get_cb_info(env, info, &call->argc, call->argv, nullptr, nullptr) != napi_ok) {
    return false;
  }
  call->inst = EncoderInstance(env);
  if (call->inst == nullptr) {
    *result = Throw(env, "tsgi: not initialised");
    return false;
  }
  const int32_t* io = call->inst->io;
  call->count = static_cast<uint32_t>(io[kIoCount]);
  call->x = static_cast<uint32_t>(io[kIoX]);
  call->y = static_cast<uint32_t>(io[kIoY]);
  if (call->argc < min_args || !OutSpan(call->inst, &call->out, &call->out_len)) {
    *result = BadArgument(env, call->inst);
    return false;
  }
  return true;
}

// Writes the head `head` (style from io[11]: 1 for http) and then the latin-1 text (checked by
// the caller) to the call's output, which must be exactly their size.
napi_value WriteHeadOut(napi_env env, const EncoderCall& c, const StrList<char16_t>& head,
                        const char16_t* text, size_t text_len) {
  tsgi::HeadStyle style = c.y != 0 ? tsgi::HeadStyle::kHttp : tsgi::HeadStyle::kCgi;
  size_t head_size = tsgi::HeadSize(head, style);
  if (head_size + text_len != c.out_len) return BadArgument(env, c.inst);
  Error e = tsgi::WriteHead(c.out, head, style);
  if (!e.ok()) return Fail(env, c.inst, e);
  uint8_t* body = c.out + head_size;
  for (size_t i = 0; i < text_len; ++i) body[i] = static_cast<uint8_t>(text[i]);
  return Int(env, 0);
}

// encodeHead(str): io[2] count (status + headers), io[11] 1 for http style.
napi_value EncodeHead(napi_env env, napi_callback_info info) {
  EncoderCall c;
  napi_value result;
  if (!StartEncoder(env, info, 1, &c, &result)) return result;
  Instance* inst = c.inst;
  StrList<char16_t> list{};
  if (!GetStrings(env, inst, c.argv[0], c.count, &list) || list.count % 2 != 1) {
    return BadArgument(env, inst);
  }
  return WriteHeadOut(env, c, list, nullptr, 0);
}

// fcgiResponse(str, body): io[2] count, io[3] requestId, io[11] end.
napi_value FcgiResponse(napi_env env, napi_callback_info info) {
  EncoderCall c;
  napi_value result;
  if (!StartEncoder(env, info, 2, &c, &result)) return result;
  Instance* inst = c.inst;
  uint8_t* body = nullptr;
  size_t body_len = 0;
  uint32_t id = c.x;
  bool end = c.y != 0;
  StrList<char16_t> list{};
  if (id > 0xFFFF || !GetBytes(env, c.argv[1], &body, &body_len) ||
      !GetStrings(env, inst, c.argv[0], c.count, &list) || list.count % 2 != 1) {
    return BadArgument(env, inst);
  }
  size_t head = tsgi::HeadSize(list, tsgi::HeadStyle::kCgi);
  if (tsgi::FcgiResponseSize(head, body_len, end) != c.out_len) return BadArgument(env, inst);
  Error e = tsgi::WriteFcgiResponse(c.out, static_cast<uint16_t>(id), list, body, body_len, end,
                                    &inst->scratch);
  if (!e.ok()) return Fail(env, inst, e);
  return Int(env, 0);
}

// The strings of a call whose last string is a latin-1 body after a head (status, then
// name/value pairs): false unless there is a head and an odd number of head strings.
struct HeadAndText {
  StrList<char16_t> head{};
  const char16_t* text = nullptr;
  size_t text_len = 0;
};

bool SplitText(const StrList<char16_t>& list, HeadAndText* out) {
  if (list.count < 2 || list.count % 2 != 0) return false;
  out->head = StrList<char16_t>{list.chars, list.lens, list.count - 1};
  size_t head_chars = 0;
  for (size_t i = 0; i < out->head.count; ++i) head_chars += out->head.lens[i];
  out->text = list.chars + head_chars;
  out->text_len = list.lens[out->head.count];
  return true;
}

// encodeHeadText(str): encodeHead with the body as the last of the io[2] strings (a latin-1
// string: a character above 0xFF is ENCODE_NOT_LATIN1, checked before the head), written
// after the head; io[11] 1 for http style.
napi_value EncodeHeadText(napi_env env, napi_callback_info info) {
  EncoderCall c;
  napi_value result;
  if (!StartEncoder(env, info, 1, &c, &result)) return result;
  Instance* inst = c.inst;
  StrList<char16_t> list{};
  HeadAndText parts;
  if (!GetStrings(env, inst, c.argv[0], c.count, &list) || !SplitText(list, &parts)) {
    return BadArgument(env, inst);
  }
  if (!tsgi::AllLatin1(parts.text, parts.text_len)) {
    return Fail(env, inst, tsgi::MakeError(tsgi::Err::kEncodeNotLatin1));
  }
  return WriteHeadOut(env, c, parts.head, parts.text, parts.text_len);
}

// fcgiResponseText(str): fcgiResponse with the body as the last of the io[2] strings (a
// latin-1 string: a character above 0xFF is ENCODE_NOT_LATIN1, checked before the head).
napi_value FcgiResponseText(napi_env env, napi_callback_info info) {
  EncoderCall c;
  napi_value result;
  if (!StartEncoder(env, info, 1, &c, &result)) return result;
  Instance* inst = c.inst;
  uint32_t id = c.x;
  bool end = c.y != 0;
  StrList<char16_t> list{};
  HeadAndText parts;
  if (id > 0xFFFF || !GetStrings(env, inst, c.argv[0], c.count, &list) ||
      !SplitText(list, &parts)) {
    return BadArgument(env, inst);
  }
  const char16_t* text = parts.text;
  size_t text_len = parts.text_len;
  if (!tsgi::AllLatin1(text, text_len)) {
    return Fail(env, inst, tsgi::MakeError(tsgi::Err::kEncodeNotLatin1));
  }
  inst->body.resize(text_len);
  for (size_t i = 0; i < text_len; ++i) inst->body[i] = static_cast<uint8_t>(text[i]);
  size_t head_size = tsgi::HeadSize(parts.head, tsgi::HeadStyle::kCgi);
  if (tsgi::FcgiResponseSize(head_size, text_len, end) != c.out_len) {
    return BadArgument(env, inst);
  }
  Error e = tsgi::WriteFcgiResponse(c.out, static_cast<uint16_t>(id), parts.head, inst->body.data(),
                                    text_len, end, &inst->scratch);
  tsgi::Trim(&inst->body);
  if (!e.ok()) return Fail(env, inst, e);
  return Int(env, 0);
}

// fcgiStream(data): io[3] type | requestId << 8, io[11] end.
napi_value FcgiStream(napi_env env, napi_callback_info info) {
  EncoderCall c;
  napi_value result;
  if (!StartEncoder(env, info, 1, &c, &result)) return result;
  uint8_t* data = nullptr;
  size_t data_len = 0;
  uint32_t type = c.x & 0xFF;
  uint32_t id = c.x >> 8;
  bool end = c.y != 0;
  if (type == 0 || id > 0xFFFF || !GetBytes(env, c.argv[0], &data, &data_len) ||
      tsgi::FcgiStreamSize(data_len) + (end ? tsgi::kFcgiHeaderSize : 0) != c.out_len) {
    return BadArgument(env, c.inst);
  }
  tsgi::Span span{data, data_len};
  tsgi::FcgiWriteStream(c.out, static_cast<uint8_t>(type), static_cast<uint16_t>(id), &span, 1,
                        end);
  return Int(env, 0);
}

// fcgiRecord(): io[3] type | requestId << 8, io[2] a (u32: role, appStatus or record type),
// io[11] b (flags or protocolStatus): BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, UNKNOWN_TYPE.
// Arguments are range-checked by the caller.
napi_value FcgiRecord(napi_env env, napi_callback_info info) {
  EncoderCall c;
  napi_value result;
  if (!StartEncoder(env, info, 0, &c, &result)) return result;
  Instance* inst = c.inst;
  uint8_t* out = c.out;
  size_t out_len = c.out_len;
  uint32_t type = c.x & 0xFF;
  uint32_t id = c.x >> 8;
  uint32_t a = c.count;
  uint32_t b = c.y;
  if (id > 0xFFFF || b > 0xFF) return BadArgument(env, inst);
  uint16_t rid = static_cast<uint16_t>(id);
  switch (type) {
    case 1:
      if (out_len != 16 || a > 0xFFFF) return BadArgument(env, inst);
      tsgi::FcgiWriteBeginRequest(out, rid, static_cast<uint16_t>(a), static_cast<uint8_t>(b));
      break;
    case 2:
      if (out_len != 8) return BadArgument(env, inst);
      tsgi::FcgiWriteAbortRequest(out, rid);
      break;
    case 3:
      if (out_len != 16) return BadArgument(env, inst);
      tsgi::FcgiWriteEndRequest(out, rid, a, static_cast<uint8_t>(b));
      break;
    case 11:
      if (out_len != 16 || a > 0xFF) return BadArgument(env, inst);
      tsgi::FcgiWriteUnknownType(out, static_cast<uint8_t>(a));
      break;
    default:
      return BadArgument(env, inst);
  }
  return Int(env, 0);
}

// encodeRequest(kind, str, count, x, y): 0 with the output in the slab span io[0..1] and its
// length written to io[1]; a Buffer when the output is longer than that span; or an error
// code. kind is
//   0 fcgiParams (x requestId)   1 fcgiGetValues   2 fcgiGetValuesResult
//   3 scgiRequest (x contentLength)   4 uwsgiRequest (x modifier1, y modifier2)
// Odd pair counts and argument ranges are checked by the caller.
napi_value EncodeRequest(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Instance* inst = GetInstance(env);
  if (inst == nullptr || inst->io == nullptr) return Throw(env, "tsgi: not initialised");
  double kind = 0;
  double count = 0;
  double x = 0;
  double y = 0;
  StrList<char16_t> list{};
  if (argc < 5 || !GetDouble(env, argv[0], &kind) || !GetDouble(env, argv[2], &count) ||
      !GetDouble(env, argv[3], &x) || !GetDouble(env, argv[4], &y) ||
      !GetStrings(env, inst, argv[1], count, &list)) {
    return BadArgument(env, inst);
  }
  bool pairs_kind = kind == 0 || kind == 2 || kind == 3 || kind == 4;
  if (pairs_kind && list.count % 2 != 0) {
    return Fail(env, inst,
                tsgi::MakeError(tsgi::Err::kEncodeBadArgument, 0, 0, tsgi::kVariantOddPairs));
  }
  Error e;
  if (kind == 0) {
    if (!(x >= 0 && x <= 65535)) return BadArgument(env, inst);
    e = tsgi::EncodeFcgiParams(static_cast<uint16_t>(x), list, &inst->scratch, &inst->out);
  } else if (kind == 1 || kind == 2) {
    e = tsgi::EncodeFcgiValues(list, kind == 1, &inst->out);
  } else if (kind == 3) {
    if (!(x >= 0 && x <= 9007199254740991.0)) return BadArgument(env, inst);
    e = tsgi::EncodeScgiRequest(list, static_cast<uint64_t>(x), &inst->out);
  } else if (kind == 4) {
    if (!(x >= 0 && x <= 255 && y >= 0 && y <= 255)) return BadArgument(env, inst);
    e = tsgi::EncodeUwsgiRequest(list, static_cast<uint8_t>(x), static_cast<uint8_t>(y),
                                 &inst->out);
  } else {
    return BadArgument(env, inst);
  }
  if (!e.ok()) return Fail(env, inst, e);
  uint8_t* out = nullptr;
  size_t out_len = 0;
  if (OutSpan(inst, &out, &out_len) && inst->out.size() <= out_len) {
    if (!inst->out.empty()) std::memcpy(out, inst->out.data(), inst->out.size());
    inst->io[kIoOutLen] = static_cast<int32_t>(inst->out.size());
    return Int(env, 0);
  }
  return CopyOut(env, inst->out);
}

}  // namespace

namespace tsgi {
namespace binding {

bool DefineCodec(napi_env env, napi_value exports) {
  Instance* inst = new (std::nothrow) Instance();
  if (inst == nullptr || napi_set_instance_data(env, inst, FinalizeInstance, nullptr) != napi_ok) {
    delete inst;
    return false;
  }
  const napi_property_descriptor props[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"pairArea", nullptr, PairArea, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"release", nullptr, Release, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"trimMemory", nullptr, TrimMemory, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fcgiPush", nullptr, Push<FcgiBox>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"scgiPush", nullptr, Push<ScgiBox>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"uwsgiPush", nullptr, Push<UwsgiBox>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setOut", nullptr, SetOut, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"encodeHead", nullptr, EncodeHead, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"encodeHeadText", nullptr, EncodeHeadText, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fcgiResponse", nullptr, FcgiResponse, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fcgiResponseText", nullptr, FcgiResponseText, nullptr, nullptr, nullptr, napi_default,
       nullptr},
      {"fcgiStream", nullptr, FcgiStream, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fcgiRecord", nullptr, FcgiRecord, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"encodeRequest", nullptr, EncodeRequest, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) == napi_ok;
}

}  // namespace binding
}  // namespace tsgi
