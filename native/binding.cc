// The N-API binding of the native codec: the only file that includes Node headers.
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

#include <node_api.h>

#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/fastcgi.h"
#include "core/head.h"
#include "core/names.h"
#include "core/scgi.h"
#include "core/uwsgi.h"
#include "core/watchdog.h"
#include "transport/transport.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#if TSGI_HAS_TRANSPORT
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

namespace {

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

#define CHECK_NAPI(call)                   \
  do {                                     \
    if ((call) != napi_ok) return nullptr; \
  } while (0)

napi_value Throw(napi_env env, const char* message) {
  napi_throw_type_error(env, nullptr, message);
  return nullptr;
}

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

napi_value Int(napi_env env, int32_t v) {
  napi_value result = nullptr;
  napi_create_int32(env, v, &result);
  return result;
}

napi_value Undefined(napi_env env) {
  napi_value result = nullptr;
  napi_get_undefined(env, &result);
  return result;
}

bool GetDouble(napi_env env, napi_value v, double* out) {
  return napi_get_value_double(env, v, out) == napi_ok;
}

bool GetBytes(napi_env env, napi_value v, uint8_t** data, size_t* len) {
  napi_typedarray_type type;
  void* raw = nullptr;
  napi_value ab = nullptr;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, v, &type, len, &raw, &ab, &offset) != napi_ok) return false;
  if (type != napi_uint8_array && type != napi_uint8_clamped_array && type != napi_int8_array) {
    return false;
  }
  *data = *len > 0 ? static_cast<uint8_t*>(raw) : nullptr;
  return true;
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
  tsgi::HeadStyle style = c.y != 0 ? tsgi::HeadStyle::kHttp : tsgi::HeadStyle::kCgi;
  if (tsgi::HeadSize(list, style) != c.out_len) return BadArgument(env, inst);
  Error e = tsgi::WriteHead(c.out, list, style);
  if (!e.ok()) return Fail(env, inst, e);
  return Int(env, 0);
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
  if (id > 0xFFFF || !GetStrings(env, inst, c.argv[0], c.count, &list) || list.count < 2 ||
      list.count % 2 != 0) {
    return BadArgument(env, inst);
  }
  StrList<char16_t> head{list.chars, list.lens, list.count - 1};
  size_t head_chars = 0;
  for (size_t i = 0; i < head.count; ++i) head_chars += head.lens[i];
  const char16_t* text = list.chars + head_chars;
  size_t text_len = list.lens[head.count];
  if (!tsgi::AllLatin1(text, text_len)) {
    return Fail(env, inst, tsgi::MakeError(tsgi::Err::kEncodeNotLatin1));
  }
  inst->body.resize(text_len);
  for (size_t i = 0; i < text_len; ++i) inst->body[i] = static_cast<uint8_t>(text[i]);
  size_t head_size = tsgi::HeadSize(head, tsgi::HeadStyle::kCgi);
  if (tsgi::FcgiResponseSize(head_size, text_len, end) != c.out_len) {
    return BadArgument(env, inst);
  }
  Error e = tsgi::WriteFcgiResponse(c.out, static_cast<uint16_t>(id), head, inst->body.data(),
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

// encodeRequest(kind, str, count, x, y): Buffer | error code, where kind is
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
  return CopyOut(env, inst->out);
}

// ---------------------------------------------------------------------------------------
// Transport: the native connection transport (native/transport) as a JS class, used by
// lib/protocol/transport.ts. One JS call per event: onEvent(kind, id, arg) with kind
// 0 data (arg: a Buffer with a copy of the bytes), 1 end, 2 drain, 3 close (arg: 0 or a
// negative libuv error), 4 accepted (only after announce(true)). Calls go through
// napi_make_callback with an async context of their connection (made at its first bytes, destroyed
// at its close), so that async_hooks and AsyncLocalStorage see one async resource per connection,
// as with node:net's sockets.

#if TSGI_HAS_TRANSPORT

constexpr int kEvData = 0;
constexpr int kEvEnd = 1;
constexpr int kEvDrain = 2;
constexpr int kEvClose = 3;
constexpr int kEvAccept = 4;

class TransportBox final : public tsgi::transport::Sink {
 public:
  explicit TransportBox(napi_env e) : env(e) {}

  void Accepted(uint32_t id) override { Call(kEvAccept, id, nullptr, 0, 0); }
  void Data(uint32_t id, const char* data, size_t len) override { Call(kEvData, id, data, len, 0); }
  void End(uint32_t id) override { Call(kEvEnd, id, nullptr, 0, 0); }
  void Drain(uint32_t id) override { Call(kEvDrain, id, nullptr, 0, 0); }
  void Closed(uint32_t id, int error) override { Call(kEvClose, id, nullptr, 0, error); }
  void Freed() override {
    listener = nullptr;
    if (!torn_down) Drop();
    // The addon may be unloaded once the hook is removed: nothing of ours is pending now.
    if (cleanup != nullptr) {
      napi_async_cleanup_hook_handle h = cleanup;
      cleanup = nullptr;
      napi_remove_async_cleanup_hook(h);
    }
    if (!js_alive) delete this;
  }

  // The environment is going away: close every handle and call no more JS. The cleanup is
  // asynchronous (Node waits for Freed(), after the close callbacks ran): the close callbacks
  // live in this addon, which a worker thread unloads when its environment is gone.
  static void Cleanup(napi_async_cleanup_hook_handle handle, void* arg) {
    TransportBox* box = static_cast<TransportBox*>(arg);
    box->torn_down = true;
    box->cleanup = handle;
    if (box->listener != nullptr) {
      box->listener->Teardown();
    } else {
      box->cleanup = nullptr;
      napi_remove_async_cleanup_hook(handle);
    }
  }

  static void Finalize(napi_env, void* data, void*) {
    TransportBox* box = static_cast<TransportBox*>(data);
    box->js_alive = false;
    if (box->listener == nullptr) {
      if (!box->torn_down && box->on_event != nullptr) box->Drop();
      delete box;
    }
  }

  // Releases the references that keep the JS side alive while the listener runs.
  void Drop() {
    if (self != nullptr) napi_delete_reference(env, self);
    if (on_event != nullptr) napi_delete_reference(env, on_event);
    if (context != nullptr) napi_async_destroy(env, context);
    for (napi_async_context& c : contexts) {
      if (c != nullptr) napi_async_destroy(env, c);
      c = nullptr;
    }
    self = on_event = nullptr;
    context = nullptr;
  }

  napi_env env;
  napi_ref self = nullptr;                   // the JS object, held while the listener is open
  napi_ref on_event = nullptr;               // the event function
  napi_async_context context = nullptr;      // the listener's
  std::vector<napi_async_context> contexts;  // by connection id
  tsgi::transport::Listener* listener = nullptr;
  napi_async_cleanup_hook_handle cleanup = nullptr;
  bool js_alive = true;
  bool torn_down = false;

  // JavaScript closed connection `id` itself: no more events for it.
  void Forget(uint32_t id) {
    if (id < contexts.size() && contexts[id] != nullptr) {
      napi_async_destroy(env, contexts[id]);
      contexts[id] = nullptr;
    }
  }

 private:
  // The async context of connection `id`, made on first use; nullptr when none can be made.
  // napi_async_init runs async_hooks' init hooks (JavaScript) without checking that JavaScript
  // may run; while Node tears an environment down it runs the loop once more with JavaScript
  // forbidden, and an init hook then is a fatal error. napi_create_buffer checks (it fails when
  // JavaScript cannot run), so it goes first: once per connection.
  napi_async_context ContextOf(uint32_t id) {
    if (id >= contexts.size()) contexts.resize(id + 1, nullptr);
    if (contexts[id] == nullptr) {
      napi_value probe = nullptr;
      void* bytes = nullptr;
      if (napi_create_buffer(env, 0, &bytes, &probe) != napi_ok) return nullptr;
      napi_value name = nullptr;
      if (napi_create_string_latin1(env, "TSGI_CONNECTION", NAPI_AUTO_LENGTH, &name) != napi_ok ||
          napi_async_init(env, nullptr, name, &contexts[id]) != napi_ok) {
        contexts[id] = nullptr;
      }
    }
    return contexts[id];
  }

  void Call(int kind, uint32_t id, const char* data, size_t len, int number) {
    if (torn_down || on_event == nullptr) return;
    napi_handle_scope scope = nullptr;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_async_context ctx = ContextOf(id);
    if (ctx == nullptr) ctx = context;
    napi_value recv = nullptr;
    napi_value fn = nullptr;
    napi_value argv[3] = {nullptr, nullptr, nullptr};
    bool ok = napi_get_reference_value(env, self, &recv) == napi_ok &&
              napi_get_reference_value(env, on_event, &fn) == napi_ok &&
              napi_create_int32(env, kind, &argv[0]) == napi_ok &&
              napi_create_uint32(env, id, &argv[1]) == napi_ok;
    if (ok) {
      if (kind == kEvData) {
        void* copy = nullptr;
        ok = napi_create_buffer_copy(env, len, data, &copy, &argv[2]) == napi_ok;
      } else {
        ok = napi_create_int32(env, number, &argv[2]) == napi_ok;
      }
    }
    if (ok) {
      napi_value result = nullptr;
      if (napi_make_callback(env, ctx, recv, fn, 3, argv, &result) != napi_ok) {
        bool pending = false;
        napi_is_exception_pending(env, &pending);
        if (pending) {
          napi_value err = nullptr;
          napi_get_and_clear_last_exception(env, &err);
          napi_fatal_exception(env, err);
        }
      }
    }
    // Bytes that could not be handed over must not leave a gap in the stream: end the
    // connection instead (with RST, as for an aborted one).
    if (!ok && kind == kEvData && listener != nullptr) listener->Close(id, true, false);
    if (kind == kEvClose && id < contexts.size() && contexts[id] != nullptr) {
      napi_async_destroy(env, contexts[id]);
      contexts[id] = nullptr;
    }
    napi_close_handle_scope(env, scope);
  }
};

TransportBox* ThisBox(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  napi_value self = nullptr;
  if (napi_get_cb_info(env, info, argc, argv, &self, nullptr) != napi_ok) return nullptr;
  void* data = nullptr;
  if (napi_unwrap(env, self, &data) != napi_ok) return nullptr;
  return static_cast<TransportBox*>(data);
}

uint32_t ArgU32(napi_env env, napi_value v) {
  uint32_t out = 0;
  napi_get_value_uint32(env, v, &out);
  return out;
}

// new Transport(onEvent)
napi_value TransportNew(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value self = nullptr;
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, &self, nullptr));
  napi_valuetype type = napi_undefined;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function) {
    return Throw(env, "tsgi: Transport needs an event function");
  }
  TransportBox* box = new (std::nothrow) TransportBox(env);
  if (box == nullptr) return Throw(env, "tsgi: out of memory");
  if (napi_wrap(env, self, box, TransportBox::Finalize, nullptr, nullptr) != napi_ok) {
    delete box;
    return Throw(env, "tsgi: cannot wrap Transport");
  }
  if (napi_create_reference(env, argv[0], 1, &box->on_event) != napi_ok) return nullptr;
  return self;
}

// listen(fd, backlog): 0, or a negative libuv error. Takes a duplicate of fd.
napi_value TransportListen(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value self = nullptr;
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, &self, nullptr));
  void* data = nullptr;
  if (argc < 2 || napi_unwrap(env, self, &data) != napi_ok) return Throw(env, "tsgi: bad listen");
  TransportBox* box = static_cast<TransportBox*>(data);
  if (box->listener != nullptr || box->on_event == nullptr) return Int(env, UV_EINVAL);
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return Int(env, UV_EINVAL);
  int32_t fd = -1;
  int32_t backlog = 511;
  napi_get_value_int32(env, argv[0], &fd);
  napi_get_value_int32(env, argv[1], &backlog);
  if (fd < 0) return Int(env, UV_EBADF);
  napi_value name = nullptr;
  CHECK_NAPI(napi_create_string_latin1(env, "TSGI_TRANSPORT", NAPI_AUTO_LENGTH, &name));
  CHECK_NAPI(napi_async_init(env, self, name, &box->context));
  int r = tsgi::transport::Listener::Open(loop, fd, backlog, box, &box->listener);
  if (r != 0) {
    napi_async_destroy(env, box->context);
    box->context = nullptr;
    box->listener = nullptr;
    return Int(env, r);
  }
  if (napi_create_reference(env, self, 1, &box->self) != napi_ok ||
      napi_add_async_cleanup_hook(env, TransportBox::Cleanup, box, &box->cleanup) != napi_ok) {
    // Without its reference or its teardown hook the listener must not run: stop it (Freed()
    // follows once its handles are closed).
    box->listener->Stop();
    return Throw(env, "tsgi: cannot keep the Transport listener");
  }
  return Int(env, 0);
}

// write(id, a, b?): the bytes still queued after this write (0: all went to the kernel).
napi_value TransportWrite(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  TransportBox* box = ThisBox(env, info, &argc, argv);
  if (box == nullptr || argc < 2) return Throw(env, "tsgi: bad write");
  if (box->listener == nullptr) return Int(env, 0);
  uv_buf_t bufs[2];
  unsigned count = 0;
  for (size_t i = 1; i < argc && i < 3; ++i) {
    uint8_t* bytes = nullptr;
    size_t len = 0;
    napi_valuetype type = napi_undefined;
    napi_typeof(env, argv[i], &type);
    if (type == napi_undefined) continue;
    if (!GetBytes(env, argv[i], &bytes, &len)) return Throw(env, "tsgi: write takes bytes");
    if (len == 0) continue;
    // uv_buf_t's len is a size_t on POSIX (uv_buf_init would cut it to 32 bits)
    bufs[count].base = reinterpret_cast<char*>(bytes);
    bufs[count].len = len;
    ++count;
  }
  size_t queued = 0;
  if (count > 0) {
    box->listener->Write(ArgU32(env, argv[0]), bufs, count, &queued);
  } else {
    queued = box->listener->Queued(ArgU32(env, argv[0]));
  }
  napi_value result = nullptr;
  napi_create_double(env, static_cast<double>(queued), &result);
  return result;
}

// shutdown(id) / pause(id) / resume(id) / close(id, reset). close() is quiet: no close event
// follows (JavaScript emits its own 'close').
template <int kOp>
napi_value TransportOp(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  TransportBox* box = ThisBox(env, info, &argc, argv);
  if (box == nullptr || argc < 1) return Throw(env, "tsgi: bad transport call");
  if (box->listener == nullptr) return Undefined(env);
  uint32_t id = ArgU32(env, argv[0]);
  tsgi::transport::Listener* l = box->listener;
  if (kOp == 0) {
    l->Shutdown(id);
  } else if (kOp == 1) {
    l->Pause(id);
  } else if (kOp == 2) {
    l->Resume(id);
  } else {
    bool reset = false;
    if (argc > 1) napi_get_value_bool(env, argv[1], &reset);
    box->Forget(id);
    l->Close(id, reset, true);
  }
  return Undefined(env);
}

// fileno(id): the connection's descriptor; dup(id): a new descriptor for its socket (to hand
// the connection to another process). Either, or a negative libuv error.
template <bool kDup>
napi_value TransportFd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  TransportBox* box = ThisBox(env, info, &argc, argv);
  if (box == nullptr || argc < 1) return Throw(env, "tsgi: bad fileno/dup call");
  if (box->listener == nullptr) return Int(env, UV_EBADF);
  const uint32_t id = ArgU32(env, argv[0]);
  return Int(env, kDup ? box->listener->Dup(id) : box->listener->Fileno(id));
}

// address(id, peer): [address, port], or undefined (a unix socket, a closed connection).
napi_value TransportAddress(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  TransportBox* box = ThisBox(env, info, &argc, argv);
  if (box == nullptr || argc < 2) return Throw(env, "tsgi: bad address call");
  if (box->listener == nullptr) return Undefined(env);
  bool peer = false;
  napi_get_value_bool(env, argv[1], &peer);
  struct sockaddr_storage ss;
  std::memset(&ss, 0, sizeof(ss));
  if (box->listener->Address(ArgU32(env, argv[0]), peer, &ss) != 0) return Undefined(env);
  char text[64] = {0};
  int port = 0;
  if (ss.ss_family == AF_INET6) {
    const sockaddr_in6* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    uv_ip6_name(a, text, sizeof(text));
    port = ntohs(a->sin6_port);
  } else if (ss.ss_family == AF_INET) {
    const sockaddr_in* a = reinterpret_cast<const sockaddr_in*>(&ss);
    uv_ip4_name(a, text, sizeof(text));
    port = ntohs(a->sin_port);
  } else {
    return Undefined(env);
  }
  napi_value result = nullptr;
  napi_value s = nullptr;
  CHECK_NAPI(napi_create_array_with_length(env, 2, &result));
  CHECK_NAPI(napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &s));
  CHECK_NAPI(napi_set_element(env, result, 0, s));
  CHECK_NAPI(napi_set_element(env, result, 1, Int(env, port)));
  return result;
}

// stop() / closeSilent(ageMs) / ref() / unref()
template <int kOp>
napi_value TransportListenerOp(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {nullptr};
  TransportBox* box = ThisBox(env, info, &argc, argv);
  if (box == nullptr) return Throw(env, "tsgi: bad transport call");
  tsgi::transport::Listener* l = box->listener;
  if (l == nullptr) return Undefined(env);
  if (kOp == 0) {
    l->Stop();
  } else if (kOp == 1) {
    double age = 0;
    if (argc > 0) napi_get_value_double(env, argv[0], &age);
    l->CloseSilent(age > 0 ? static_cast<uint64_t>(age) : 0);
  } else {
    l->Ref(kOp == 2);
  }
  return Undefined(env);
}

// announce(on): calls onEvent(4, id) for every connection accepted from now on.
napi_value TransportAnnounce(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  TransportBox* box = ThisBox(env, info, &argc, argv);
  if (box == nullptr || argc < 1) return Throw(env, "tsgi: bad announce call");
  bool on = false;
  napi_get_value_bool(env, argv[0], &on);
  if (box->listener != nullptr) box->listener->Announce(on);
  return Undefined(env);
}

bool DefineTransport(napi_env env, napi_value exports) {
  const napi_property_descriptor methods[] = {
      {"listen", nullptr, TransportListen, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"write", nullptr, TransportWrite, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"shutdown", nullptr, TransportOp<0>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"pause", nullptr, TransportOp<1>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"resume", nullptr, TransportOp<2>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, TransportOp<3>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"address", nullptr, TransportAddress, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"dup", nullptr, TransportFd<true>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fileno", nullptr, TransportFd<false>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stop", nullptr, TransportListenerOp<0>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"closeSilent", nullptr, TransportListenerOp<1>, nullptr, nullptr, nullptr, napi_default,
       nullptr},
      {"ref", nullptr, TransportListenerOp<2>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unref", nullptr, TransportListenerOp<3>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"announce", nullptr, TransportAnnounce, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_value cls = nullptr;
  return napi_define_class(env, "Transport", NAPI_AUTO_LENGTH, TransportNew, nullptr,
                           sizeof(methods) / sizeof(methods[0]), methods, &cls) == napi_ok &&
         napi_set_named_property(env, exports, "Transport", cls) == napi_ok;
}

// Listening sockets (native/transport/transport.h): bindTcp(ip, port) / bindUnix(path) -> a
// bound descriptor or a negative libuv error; listenFd(fd, backlog) / keepAlive(fd, secs) -> 0
// or a negative libuv error; localAddress(fd) -> [address, port, family] or undefined.
std::string ArgString(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return std::string();
  std::string out(len, '\0');
  napi_get_value_string_utf8(env, v, &out[0], len + 1, &len);
  return out;
}

template <int kOp>
napi_value SocketOp(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2] = {nullptr, nullptr};
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1)
    return Throw(env, "tsgi: bad socket call");
  int32_t n = 0;
  if (argc > 1) napi_get_value_int32(env, argv[1], &n);
  if (kOp == 0) return Int(env, tsgi::transport::BindTcp(ArgString(env, argv[0]).c_str(), n));
  if (kOp == 1) {
    std::string path = ArgString(env, argv[0]);
    if (path.find('\0') != std::string::npos) return Int(env, UV_EINVAL);
    return Int(env, tsgi::transport::BindUnix(path.c_str()));
  }
  int32_t fd = -1;
  napi_get_value_int32(env, argv[0], &fd);
  if (kOp == 2) return Int(env, tsgi::transport::ListenFd(fd, n));
  return Int(env, tsgi::transport::KeepAlive(fd, n));
}

napi_value SocketAddress(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {nullptr};
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1)
    return Throw(env, "tsgi: bad localAddress call");
  int32_t fd = -1;
  napi_get_value_int32(env, argv[0], &fd);
  char text[64] = {0};
  int family = 0;
  int port = 0;
  if (tsgi::transport::LocalAddress(fd, &family, text, sizeof(text), &port) != 0)
    return Undefined(env);
  napi_value result = nullptr;
  napi_value s = nullptr;
  CHECK_NAPI(napi_create_array_with_length(env, 3, &result));
  CHECK_NAPI(napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &s));
  CHECK_NAPI(napi_set_element(env, result, 0, s));
  CHECK_NAPI(napi_set_element(env, result, 1, Int(env, port)));
  CHECK_NAPI(napi_set_element(env, result, 2, Int(env, family)));
  return result;
}

bool DefineSockets(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"bindTcp", nullptr, SocketOp<0>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bindUnix", nullptr, SocketOp<1>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"listenFd", nullptr, SocketOp<2>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"keepAlive", nullptr, SocketOp<3>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"localAddress", nullptr, SocketAddress, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) == napi_ok;
}

// The request watchdog (native/core/watchdog.h): one per process. The environment that
// starts it beats it from an unreferenced libuv timer; JavaScript registers each request.
tsgi::watchdog::Watchdog g_watchdog;
uv_timer_t* g_beat = nullptr;

void OnBeat(uv_timer_t*) { g_watchdog.Beat(); }

void StopWatchdog(void*) {
  g_watchdog.Stop();
  if (g_beat != nullptr) {
    uv_timer_stop(g_beat);
    uv_close(reinterpret_cast<uv_handle_t*>(g_beat),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    g_beat = nullptr;
  }
}

bool GetString(napi_env env, napi_value v, std::string* out) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &n) != napi_ok) return false;
  out->resize(n + 1);
  if (napi_get_value_string_utf8(env, v, &(*out)[0], n + 1, &n) != napi_ok) return false;
  out->resize(n);
  return true;
}

// watchdogStart(timeoutMs, json, prefix, suffix): true when it started.
napi_value WatchdogStart(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  bool json = false;
  std::string prefix, suffix;
  uint32_t timeout = 0;
  if (argc < 4 || napi_get_value_uint32(env, argv[0], &timeout) != napi_ok ||
      napi_get_value_bool(env, argv[1], &json) != napi_ok || !GetString(env, argv[2], &prefix) ||
      !GetString(env, argv[3], &suffix)) {
    return Throw(env, "tsgi: bad watchdogStart call");
  }
  napi_value result = nullptr;
  uv_loop_t* loop = nullptr;
  if (g_beat != nullptr || timeout == 0 || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    CHECK_NAPI(napi_get_boolean(env, false, &result));
    return result;
  }
  uv_timer_t* timer = new (std::nothrow) uv_timer_t;
  if (timer == nullptr || uv_timer_init(loop, timer) != 0) {
    delete timer;
    CHECK_NAPI(napi_get_boolean(env, false, &result));
    return result;
  }
  const uint64_t period = timeout / 8 < 10 ? 10 : (timeout / 8 > 250 ? 250 : timeout / 8);
  uv_timer_start(timer, OnBeat, period, period);
  uv_unref(reinterpret_cast<uv_handle_t*>(timer));
  g_beat = timer;
  bool ok = g_watchdog.Start(timeout, std::move(prefix), std::move(suffix), json);
  if (ok) {
    napi_add_env_cleanup_hook(env, StopWatchdog, nullptr);
  } else {
    StopWatchdog(nullptr);
  }
  CHECK_NAPI(napi_get_boolean(env, ok, &result));
  return result;
}

// watchdogAdd(fd, kind, requestId): the request's slot, or -1.
napi_value WatchdogAdd(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t fd = -1;
  uint32_t kind = 0;
  uint32_t id = 0;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &kind) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &id) != napi_ok || kind < 1 || kind > 3 || id > 0xffff) {
    return Int(env, -1);
  }
  return Int(env, g_watchdog.Add(fd, static_cast<tsgi::watchdog::Answer>(kind),
                                 static_cast<uint16_t>(id)));
}

// watchdogRemove(slot)
napi_value WatchdogRemove(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t slot = -1;
  if (argc >= 1 && napi_get_value_int32(env, argv[0], &slot) == napi_ok) g_watchdog.Remove(slot);
  return Undefined(env);
}

// watchdogCloseOnFire(fd): the listening socket closed first when the watchdog fires.
napi_value WatchdogCloseOnFire(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t fd = -1;
  if (argc >= 1 && napi_get_value_int32(env, argv[0], &fd) == napi_ok) g_watchdog.CloseOnFire(fd);
  return Undefined(env);
}

bool DefineWatchdog(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"watchdogStart", nullptr, WatchdogStart, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"watchdogAdd", nullptr, WatchdogAdd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"watchdogRemove", nullptr, WatchdogRemove, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"watchdogCloseOnFire", nullptr, WatchdogCloseOnFire, nullptr, nullptr, nullptr, napi_default,
       nullptr},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) == napi_ok;
}

#endif  // TSGI_HAS_TRANSPORT

}  // namespace

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  Instance* inst = new (std::nothrow) Instance();
  if (inst == nullptr || napi_set_instance_data(env, inst, FinalizeInstance, nullptr) != napi_ok) {
    delete inst;
    return nullptr;
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
      {"fcgiResponse", nullptr, FcgiResponse, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fcgiResponseText", nullptr, FcgiResponseText, nullptr, nullptr, nullptr, napi_default,
       nullptr},
      {"fcgiStream", nullptr, FcgiStream, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fcgiRecord", nullptr, FcgiRecord, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"encodeRequest", nullptr, EncodeRequest, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) {
    return nullptr;
  }
#if TSGI_HAS_TRANSPORT
  if (!DefineTransport(env, exports)) return nullptr;
  if (!DefineWatchdog(env, exports)) return nullptr;
  if (!DefineSockets(env, exports)) return nullptr;
#endif
  return exports;
}
