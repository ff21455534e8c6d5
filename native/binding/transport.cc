// The transport part of the N-API binding (native/binding/common.h lists the others).
//
// The native connection transport (native/transport) as a JS class, used by
// lib/protocol/transport.ts. One JS call per event: onEvent(kind, id, arg) with kind
// 0 data (arg: a Buffer with a copy of the bytes), 1 end, 2 drain, 3 close (arg: 0 or a
// negative libuv error), 4 accepted (only after announce(true)), 5 data in the read buffer
// (arg: the length; readBuffer() is that Buffer, made once, and the bytes are valid only
// during the call: the next read overwrites them). Calls go through
// napi_make_callback with an async context of their connection (made at its first bytes, destroyed
// at its close), so that async_hooks and AsyncLocalStorage see one async resource per connection,
// as with node:net's sockets.

#include "transport/transport.h"

#if TSGI_HAS_TRANSPORT

#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "binding/common.h"

namespace {

using tsgi::binding::GetBytes;
using tsgi::binding::Int;
using tsgi::binding::Throw;
using tsgi::binding::Undefined;

constexpr int kEvData = 0;
constexpr int kEvEnd = 1;
constexpr int kEvDrain = 2;
constexpr int kEvClose = 3;
constexpr int kEvAccept = 4;
constexpr int kEvRead = 5;

// The read buffer's size: the most one read of the listener takes.
constexpr size_t kReadBufferSize = 64 * 1024;

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
    if (js_refs == 0) delete this;
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

  // The JS object or one of its own methods (see TransportNew) was collected; the box goes
  // when all of them are (and the listener is closed).
  static void Finalize(napi_env, void* data, void*) {
    TransportBox* box = static_cast<TransportBox*>(data);
    if (--box->js_refs > 0) return;
    if (box->listener == nullptr) {
      if (!box->torn_down && box->on_event != nullptr) box->Drop();
      delete box;
    }
  }

  // Releases the references that keep the JS side alive while the listener runs.
  void Drop() {
    if (self != nullptr) napi_delete_reference(env, self);
    if (on_event != nullptr) napi_delete_reference(env, on_event);
    if (read_ref != nullptr) napi_delete_reference(env, read_ref);
    read_ref = nullptr;
    read_data = nullptr;
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
  napi_ref read_ref = nullptr;  // the read buffer (see kEvRead), or none
  char* read_data = nullptr;    // its bytes
  int js_refs = 1;              // the JS object and its own methods not yet collected
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
  // forbidden (before the cleanup hook that sets torn_down), and an init hook then is a fatal
  // error. napi_strict_equals checks first (it fails when JavaScript cannot run) and costs no
  // allocation: `recv` compared with itself.
  napi_async_context ContextOf(uint32_t id, napi_value recv) {
    if (id >= contexts.size()) contexts.resize(id + 1, nullptr);
    if (contexts[id] == nullptr) {
      bool same = false;
      if (napi_strict_equals(env, recv, recv, &same) != napi_ok) return nullptr;
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
    napi_value recv = nullptr;
    napi_async_context ctx = nullptr;
    if (napi_get_reference_value(env, self, &recv) == napi_ok) ctx = ContextOf(id, recv);
    if (ctx == nullptr) ctx = context;
    napi_value fn = nullptr;
    napi_value argv[3] = {nullptr, nullptr, nullptr};
    bool ok = recv != nullptr && napi_get_reference_value(env, on_event, &fn) == napi_ok &&
              napi_create_int32(env, kind, &argv[0]) == napi_ok &&
              napi_create_uint32(env, id, &argv[1]) == napi_ok;
    if (ok) {
      if (kind == kEvData && read_data != nullptr && len <= kReadBufferSize) {
        // Into the read buffer JavaScript holds: no Buffer made per read.
        std::memcpy(read_data, data, len);
        ok = napi_create_int32(env, kEvRead, &argv[0]) == napi_ok &&
             napi_create_uint32(env, static_cast<uint32_t>(len), &argv[2]) == napi_ok;
      } else if (kind == kEvData) {
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

// The box of a method made for one Transport object (see TransportNew): its data, no unwrap.
TransportBox* OwnBox(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  void* data = nullptr;
  if (napi_get_cb_info(env, info, argc, argv, nullptr, &data) != napi_ok) return nullptr;
  return static_cast<TransportBox*>(data);
}

napi_value TransportWrite(napi_env env, napi_callback_info info);
napi_value TransportRespondClose(napi_env env, napi_callback_info info);

// Puts `fn` on `self` as a method of its own that finds the box in its data: the calls made
// for every request then skip napi_unwrap. The box lives until the object and each such
// method are collected (js_refs).
bool OwnMethod(napi_env env, napi_value self, TransportBox* box, const char* name,
               napi_callback fn) {
  napi_value f = nullptr;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, box, &f) != napi_ok ||
      napi_add_finalizer(env, f, box, TransportBox::Finalize, nullptr, nullptr) != napi_ok) {
    return false;
  }
  ++box->js_refs;
  return napi_set_named_property(env, self, name, f) == napi_ok;
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
  if (!OwnMethod(env, self, box, "write", TransportWrite) ||
      !OwnMethod(env, self, box, "respondClose", TransportRespondClose)) {
    return Throw(env, "tsgi: cannot make the Transport methods");
  }
  // The read buffer (kEvRead), made once; without it every read is a Buffer of its own.
  void* bytes = nullptr;
  napi_value read = nullptr;
  if (napi_create_buffer(env, kReadBufferSize, &bytes, &read) == napi_ok &&
      napi_create_reference(env, read, 1, &box->read_ref) == napi_ok) {
    box->read_data = static_cast<char*>(bytes);
  }
  return self;
}

// readBuffer(): the Buffer that kind-5 events are in, or undefined.
napi_value TransportReadBuffer(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  TransportBox* box = ThisBox(env, info, &argc, nullptr);
  napi_value buf = nullptr;
  if (box == nullptr || box->read_ref == nullptr ||
      napi_get_reference_value(env, box->read_ref, &buf) != napi_ok || buf == nullptr) {
    return Undefined(env);
  }
  return buf;
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

// The byte arguments argv[1..argc) of write() and respondClose() as buffers (undefined, null
// and empty ones skipped); false (with a pending exception) for an argument that is not bytes.
bool ByteArgs(napi_env env, size_t argc, napi_value* argv, uv_buf_t* bufs, unsigned* count) {
  *count = 0;
  for (size_t i = 1; i < argc && i < 3; ++i) {
    uint8_t* bytes = nullptr;
    size_t len = 0;
    if (!GetBytes(env, argv[i], &bytes, &len)) {
      // not bytes: undefined and null are skipped (asked only then, not for every buffer)
      napi_valuetype type = napi_undefined;
      napi_typeof(env, argv[i], &type);
      if (type == napi_undefined || type == napi_null) continue;
      Throw(env, "tsgi: write takes bytes");
      return false;
    }
    if (len == 0) continue;
    // uv_buf_t's len is a size_t on POSIX (uv_buf_init would cut it to 32 bits)
    bufs[*count].base = reinterpret_cast<char*>(bytes);
    bufs[*count].len = len;
    ++*count;
  }
  return true;
}

// write(id, a, b?): the bytes still queued after this write (0: all went to the kernel).
napi_value TransportWrite(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  TransportBox* box = OwnBox(env, info, &argc, argv);
  if (box == nullptr || argc < 2) return Throw(env, "tsgi: bad write");
  if (box->listener == nullptr) return Int(env, 0);
  uv_buf_t bufs[2];
  unsigned count = 0;
  if (!ByteArgs(env, argc, argv, bufs, &count)) return nullptr;
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

// respondClose(id, a, b?): the last bytes, then the end. 1: written and closed (no event
// follows); 0: queued and half-closed, the connection's events follow as after shutdown();
// negative: an unknown or closed id.
napi_value TransportRespondClose(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  TransportBox* box = OwnBox(env, info, &argc, argv);
  if (box == nullptr || argc < 2) return Throw(env, "tsgi: bad respondClose");
  if (box->listener == nullptr) return Int(env, UV_EBADF);
  uv_buf_t bufs[2];
  unsigned count = 0;
  if (!ByteArgs(env, argc, argv, bufs, &count)) return nullptr;
  const uint32_t id = ArgU32(env, argv[0]);
  const int r = box->listener->RespondClose(id, bufs, count);
  if (r == 1) box->Forget(id);
  return Int(env, r);
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

// [address, port, family] of the socket `fd` (peer or local), or undefined (a unix socket, an
// error).
napi_value AddressArray(napi_env env, int fd, bool peer) {
  char text[64] = {0};
  int port = 0;
  int family = 0;
  if (fd < 0 || tsgi::transport::SocketAddress(fd, peer, text, sizeof(text), &port, &family) != 0)
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

// address(id, peer): [address, port, family], or undefined (a unix socket, a closed
// connection).
napi_value TransportAddress(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  TransportBox* box = ThisBox(env, info, &argc, argv);
  if (box == nullptr || argc < 2) return Throw(env, "tsgi: bad address call");
  if (box->listener == nullptr) return Undefined(env);
  bool peer = false;
  napi_get_value_bool(env, argv[1], &peer);
  return AddressArray(env, box->listener->Socket(ArgU32(env, argv[0])), peer);
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

// counts(): [connections answered in one step, connections on the streaming path].
napi_value TransportCounts(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  TransportBox* box = ThisBox(env, info, &argc, nullptr);
  if (box == nullptr) return Throw(env, "tsgi: bad counts call");
  double one = 0;
  double streamed = 0;
  if (box->listener != nullptr) {
    one = static_cast<double>(box->listener->OneStep());
    streamed = static_cast<double>(box->listener->Streamed());
  }
  napi_value result = nullptr;
  napi_value a = nullptr;
  napi_value b = nullptr;
  CHECK_NAPI(napi_create_array_with_length(env, 2, &result));
  CHECK_NAPI(napi_create_double(env, one, &a));
  CHECK_NAPI(napi_create_double(env, streamed, &b));
  CHECK_NAPI(napi_set_element(env, result, 0, a));
  CHECK_NAPI(napi_set_element(env, result, 1, b));
  return result;
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

// Listening sockets (native/transport/transport.h): bindTcp(ip, port) / bindUnix(path) -> a
// bound descriptor or a negative libuv error; listenFd(fd, backlog) / keepAlive(fd, secs) /
// deferAccept(fd, secs) -> 0 or a negative libuv error; localAddress(fd) -> [address, port,
// family] or undefined.
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
  if (kOp == 3) return Int(env, tsgi::transport::KeepAlive(fd, n));
  return Int(env, tsgi::transport::DeferAccept(fd, n));
}

napi_value SocketAddress(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {nullptr};
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1)
    return Throw(env, "tsgi: bad localAddress call");
  int32_t fd = -1;
  napi_get_value_int32(env, argv[0], &fd);
  return AddressArray(env, fd, false);
}

}  // namespace

namespace tsgi {
namespace binding {

bool DefineTransport(napi_env env, napi_value exports) {
  const napi_property_descriptor methods[] = {
      {"listen", nullptr, TransportListen, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"readBuffer", nullptr, TransportReadBuffer, nullptr, nullptr, nullptr, napi_default,
       nullptr},
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
      {"counts", nullptr, TransportCounts, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"announce", nullptr, TransportAnnounce, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_value cls = nullptr;
  return napi_define_class(env, "Transport", NAPI_AUTO_LENGTH, TransportNew, nullptr,
                           sizeof(methods) / sizeof(methods[0]), methods, &cls) == napi_ok &&
         napi_set_named_property(env, exports, "Transport", cls) == napi_ok;
}

bool DefineSockets(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"bindTcp", nullptr, SocketOp<0>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bindUnix", nullptr, SocketOp<1>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"listenFd", nullptr, SocketOp<2>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"keepAlive", nullptr, SocketOp<3>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"deferAccept", nullptr, SocketOp<4>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"localAddress", nullptr, SocketAddress, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) == napi_ok;
}

}  // namespace binding
}  // namespace tsgi

#endif  // TSGI_HAS_TRANSPORT
