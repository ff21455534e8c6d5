// The native connection transport of the FastCGI, SCGI and uwsgi servers: a listening socket and
// its connections on libuv (Node's own loop), with no Node headers. native/binding/transport.cc
// wires it to JavaScript (lib/protocol/transport.ts).
//
// The listener accepts, reads, writes, half-closes and closes; it calls its Sink only when
// bytes arrive (one call per read), when the peer ends its side, when a full write buffer
// emptied and when a connection closed. A connection that closes before sending a byte never
// reaches the Sink (a probe, a health check, a client that gave up): nothing in JavaScript
// is made for it — unless the listener announces connections (Announce(true): JavaScript
// then checks each peer as it is accepted, for --allow).
//
// One step: the listener accepts a connection itself (accept4) and reads it at once, before
// the connection is known to the event loop. A peer that sent its whole request with the
// connect (a web server that opens a connection per request does) is answered within that
// first Data() call: RespondClose() writes the answer and closes the socket, and the connection
// never reaches the loop (no TCP_NODELAY, no epoll registration): accept, read, write, close.
// Anything else (nothing there yet, an answer that does not go out at once, any other call on
// the connection) moves it to a libuv stream and the streaming path, unchanged.
//
// Connections are named by small ids, reused only after the Sink saw the close of the
// previous holder (or, for a connection the Sink never saw, after it closed).
//
// POSIX only (Linux, macOS): the Windows build compiles this out (TSGI_HAS_TRANSPORT is 0)
// and JavaScript uses node:net.
#ifndef TSGI_TRANSPORT_TRANSPORT_H_
#define TSGI_TRANSPORT_TRANSPORT_H_

#if defined(_WIN32)
#define TSGI_HAS_TRANSPORT 0
#else
#define TSGI_HAS_TRANSPORT 1
#endif

#if TSGI_HAS_TRANSPORT

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tsgi {
namespace transport {

// What the listener reports. No call is made after Freed().
class Sink {
 public:
  // Connection `id` was accepted (only when the listener announces connections).
  virtual void Accepted(uint32_t id) = 0;
  // `len` bytes arrived on connection `id` (without Accepted(), the first call for an id
  // is its first bytes).
  virtual void Data(uint32_t id, const char* data, size_t len) = 0;
  // The peer ended its side (FIN).
  virtual void End(uint32_t id) = 0;
  // Everything written to `id` went out to the kernel (the write buffer is empty again).
  virtual void Drain(uint32_t id) = 0;
  // The connection closed; `error` is 0 or a negative libuv error (UV_ECONNRESET, ...).
  virtual void Closed(uint32_t id, int error) = 0;
  // The listener and every connection are closed; the listener deleted itself.
  virtual void Freed() = 0;

 protected:
  ~Sink() = default;
};

// Listening sockets, made here rather than by Node so that no private Node API is needed: the
// master process binds them and hands the descriptors to its workers, and a single process
// binds them and listens with Listener::Open.

// A close-on-exec TCP stream socket bound to `ip` (an IPv4 or IPv6 literal; "::" also takes
// IPv4 where the system allows) and `port` (0: any free port), with SO_REUSEADDR; not yet
// listening. Returns the descriptor, or a negative libuv error (UV_EADDRINUSE, UV_EINVAL for
// an address that does not parse, ...).
int BindTcp(const char* ip, int port);
// A close-on-exec unix stream socket bound to `path` (the file is created; an existing file
// makes it UV_EADDRINUSE); not yet listening. Returns the descriptor or a negative libuv error.
int BindUnix(const char* path);
// Listens on the bound socket `fd` with `backlog` (so that connections queue before a worker
// accepts). 0 or a negative libuv error.
int ListenFd(int fd, int backlog);
// Sets TCP keepalive on a TCP socket (on a listening socket, accepted connections inherit
// it on Linux, the BSDs and macOS): idle seconds before the first probe. 0 or a negative
// libuv error; UV_ENOTSUP for a unix socket (nothing to do).
int KeepAlive(int fd, int idle_secs);
// Defers accepting on a listening TCP socket (Linux's TCP_DEFER_ACCEPT): the kernel hands a
// connection over only once its first bytes arrived, or after about `secs` seconds (0: off),
// so that a client that sends its request right after connecting is read at accept. 0, or
// UV_ENOTSUP for a unix socket or a system without it (nothing to do), or a negative libuv
// error.
int DeferAccept(int fd, int secs);
// An IPv4 or IPv6 address as text (into `text`, at least 64 bytes), its port and its family
// (4 or 6). 0, or UV_ENOTSUP for any other family (a unix socket).
int FormatAddress(const struct sockaddr_storage* ss, char* text, size_t text_len, int* port,
                  int* family);
// The local (peer false) or peer address of a socket, formatted as by FormatAddress. 0,
// UV_ENOTSUP for a unix socket, or a negative libuv error.
int SocketAddress(int fd, bool peer, char* text, size_t text_len, int* port, int* family);

class Connection;

class Listener {
 public:
  // Listens on a duplicate of `fd` (a bound or listening TCP or unix stream socket; the
  // caller keeps its own fd). Returns 0 and sets *out, or a negative libuv error.
  static int Open(uv_loop_t* loop, int fd, int backlog, Sink* sink, Listener** out);

  // Writes bufs: what the kernel does not take now is copied and queued. Sets *queued to
  // the bytes still queued. Returns 0, or a negative error for an unknown/closed id.
  int Write(uint32_t id, const uv_buf_t* bufs, unsigned count, size_t* queued);
  // The last bytes of `id`, then its end: when the kernel takes them all at once, the socket
  // is closed now with no Closed() call, and 1 is returned (also when the peer is gone). Else
  // they are queued and the connection half-closed as by Shutdown(), and 0 is returned: the
  // connection lives on (End(), Drain() and Closed() follow). Negative for an unknown id.
  int RespondClose(uint32_t id, const uv_buf_t* bufs, unsigned count);
  // Half-closes (FIN) after what is queued; the connection closes once the peer ended too.
  int Shutdown(uint32_t id);
  // Closes now, dropping queued bytes; `reset` sends RST on TCP (SO_LINGER 0). `quiet`: the
  // caller asked for it and needs no Closed() call (the id is reused only after the close).
  int Close(uint32_t id, bool reset, bool quiet);
  int Pause(uint32_t id);
  int Resume(uint32_t id);
  // The descriptor of `id` while it is open (for addresses), or a negative libuv error.
  int Socket(uint32_t id) const;
  // The bytes queued on `id` (0 for an unknown id).
  size_t Queued(uint32_t id) const;
  // A new close-on-exec descriptor for the socket of `id` (to hand the connection to another
  // process; the caller then closes `id`), or a negative libuv error.
  int Dup(uint32_t id) const;
  // The descriptor of `id` (for the request watchdog), or a negative libuv error.
  int Fileno(uint32_t id) const;

  // Stops accepting (closes the listening handle). Idempotent. Once stopped and every
  // connection closed, the listener deletes itself and calls Sink::Freed().
  void Stop();
  // Closes the connections the Sink never saw (they sent nothing yet) that were accepted at
  // least `min_age_ms` ago (by the loop's clock).
  void CloseSilent(uint64_t min_age_ms);
  // Keeps the loop alive while listening (true) or not.
  void Ref(bool on);
  // Calls Sink::Accepted() for every connection accepted from now on (true), or makes a
  // connection known to the Sink only with its first bytes (false, the default).
  void Announce(bool on) { announce_ = on; }
  // The environment is going away: close everything, call the Sink no more except Freed().
  void Teardown();
  // Connections answered in one step (RespondClose() before any libuv stream), and
  // connections moved to the streaming path, since Open().
  uint64_t OneStep() const { return one_step_; }
  uint64_t Streamed() const { return streamed_; }

 private:
  friend class Connection;
  Listener(uv_loop_t* loop, Sink* sink) : loop_(loop), sink_(sink) {}
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  static void OnAcceptable(uv_poll_t* poll, int status, int events);
  static void OnRetry(uv_timer_t* timer);
  static void OnListenerClosed(uv_handle_t* handle);
  Connection* Get(uint32_t id) const;
  // Connection `id` on the streaming path (attached), or nullptr (unknown, closing).
  Connection* Streaming(uint32_t id);
  void Serve(int fd);
  int Attach(Connection* c);
  void Drop(Connection* c, int error, bool quiet);
  void Release(Connection* conn);
  void MaybeFree();

  uv_loop_t* loop_;
  Sink* sink_;
  int fd_ = -1;       // the listening socket (our duplicate)
  uv_poll_t poll_;    // readable: a connection waits to be accepted
  uv_timer_t retry_;  // out of descriptors: accepting resumes after a pause
  int handles_ = 0;   // poll_ and retry_ while open
  bool is_tcp_ = true;
  bool listening_ = false;          // poll_ and retry_ are open (not yet closed)
  bool announce_ = false;           // see Announce()
  bool stopped_ = false;            // Stop() was called
  bool torn_down_ = false;          // no more Sink calls but Freed()
  bool failed_ = false;             // Open() failed: deleted when its handle closed
  std::vector<Connection*> conns_;  // by id; nullptr for a free id
  std::vector<uint32_t> free_ids_;
  std::vector<Connection*> spare_;  // closed connections kept for reuse
  size_t open_ = 0;                 // connections not yet closed
  uint64_t one_step_ = 0;           // see OneStep()
  uint64_t streamed_ = 0;           // see Streamed()
  char read_buf_[64 * 1024];
};

}  // namespace transport
}  // namespace tsgi

#endif  // TSGI_HAS_TRANSPORT
#endif  // TSGI_TRANSPORT_TRANSPORT_H_
