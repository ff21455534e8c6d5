// See transport.h.
#include "transport/transport.h"

#if TSGI_HAS_TRANSPORT

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>

namespace tsgi {
namespace transport {

class Connection {
 public:
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_handle_t handle;
    uv_stream_t stream;
  } h;
  uv_shutdown_t shutdown_req;
  Listener* owner = nullptr;
  uint32_t id = 0;
  int fd = -1;               // the socket, owned by `h` once attached
  uint64_t accepted_at = 0;  // uv_now() when accepted
  size_t queued = 0;         // bytes handed to uv_write and not yet written
  int error = 0;             // the error the connection closed with
  bool attached = false;     // `h` holds the socket (the streaming path)
  bool reading = false;      // uv_read_start() is in effect
  bool nodelay = false;      // Nagle is off (set at the first write of the streaming path)
  bool first_read = false;   // inside the Data() call of the read right after accept
  bool dropped = false;      // closed during that call before being attached
  bool known = false;
  bool paused = false;
  bool eof = false;
  bool shutdown_sent = false;
  bool shutdown_done = false;
  bool closing = false;

  void Reset(Listener* l, uint32_t i, int sock) {
    owner = l;
    id = i;
    fd = sock;
    queued = 0;
    error = 0;
    attached = reading = nodelay = first_read = dropped = false;
    known = paused = eof = shutdown_sent = shutdown_done = closing = false;
  }

  void CloseWith(int err) {
    if (closing) return;
    if (!attached) {
      owner->Drop(this, err, false);
      return;
    }
    closing = true;
    error = err;
    uv_close(&h.handle, OnClosed);
  }

  void StartReading() {
    if (closing || eof || paused || !attached || reading) return;
    int r = uv_read_start(&h.stream, OnAlloc, OnRead);
    if (r != 0) {
      CloseWith(r);
      return;
    }
    reading = true;
  }

  static void OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    Connection* c = static_cast<Connection*>(handle->data);
    buf->base = c->owner->read_buf_;
    buf->len = sizeof(c->owner->read_buf_);
  }

  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    Connection* c = static_cast<Connection*>(stream->data);
    Listener* l = c->owner;
    if (nread > 0) {
      if (!c->known) l->streamed_++;
      c->known = true;
      if (!l->torn_down_) l->sink_->Data(c->id, buf->base, static_cast<size_t>(nread));
      return;
    }
    if (nread == 0) return;  // EAGAIN
    if (nread != UV_EOF) {
      c->CloseWith(static_cast<int>(nread));
      return;
    }
    c->eof = true;
    c->reading = false;
    uv_read_stop(stream);
    if (!c->known) {
      c->CloseWith(0);  // nothing was ever sent: close quietly
      return;
    }
    if (!l->torn_down_) l->sink_->End(c->id);
    if (!c->closing && c->shutdown_done) c->CloseWith(0);
  }

  static void OnShutdown(uv_shutdown_t* req, int status) {
    Connection* c = static_cast<Connection*>(req->data);
    if (status == UV_ECANCELED || c->closing) return;
    c->shutdown_done = true;
    // A peer that reset or went away after our FIN is not an error of ours (node:net ignores a
    // failed shutdown too): close quietly.
    if (status == UV_ENOTCONN || status == UV_EPIPE || status == UV_ECONNRESET) {
      c->CloseWith(0);
    } else if (status < 0) {
      c->CloseWith(status);
    } else if (c->eof) {
      c->CloseWith(0);
    }
  }

  struct WriteBlock {
    uv_write_t req;
    Connection* conn;
    size_t len;
    char* data() { return reinterpret_cast<char*>(this + 1); }
  };

  static void OnWrite(uv_write_t* req, int status) {
    WriteBlock* block = static_cast<WriteBlock*>(req->data);
    Connection* c = block->conn;
    c->queued -= block->len;
    std::free(block);
    if (status == UV_ECANCELED || c->closing) return;
    if (status < 0) {
      c->CloseWith(status);
      return;
    }
    Listener* l = c->owner;
    if (c->queued == 0 && c->known && !l->torn_down_) l->sink_->Drain(c->id);
  }

  static void OnClosed(uv_handle_t* handle) {
    Connection* c = static_cast<Connection*>(handle->data);
    Listener* l = c->owner;
    l->open_--;
    if (c->known && !l->torn_down_) l->sink_->Closed(c->id, c->error);
    l->Release(c);
    l->MaybeFree();
  }
};

// ---------------------------------------------------------------------------------------
// Listening sockets

namespace {

// A close-on-exec stream socket of `family`, or a negative libuv error.
int StreamSocket(int family) {
#if defined(SOCK_CLOEXEC)
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
#else
  int fd = socket(family, SOCK_STREAM, 0);
  if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    fd = -1;
  }
#endif
  return fd < 0 ? uv_translate_sys_error(errno) : fd;
}

int BindOrClose(int fd, const struct sockaddr* addr, socklen_t len) {
  if (bind(fd, addr, len) == 0) return fd;
  int e = uv_translate_sys_error(errno);
  close(fd);
  return e;
}

}  // namespace

int BindTcp(const char* ip, int port) {
  if (port < 0 || port > 65535) return UV_EINVAL;
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  std::memset(&a6, 0, sizeof(a6));
  std::memset(&a4, 0, sizeof(a4));
  const bool v6 = uv_ip6_addr(ip, port, &a6) == 0;
  if (!v6 && uv_ip4_addr(ip, port, &a4) != 0) return UV_EINVAL;
  int fd = StreamSocket(v6 ? AF_INET6 : AF_INET);
  if (fd < 0) return fd;
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (v6) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    return BindOrClose(fd, reinterpret_cast<const struct sockaddr*>(&a6), sizeof(a6));
  }
  return BindOrClose(fd, reinterpret_cast<const struct sockaddr*>(&a4), sizeof(a4));
}

int BindUnix(const char* path) {
  struct sockaddr_un a;
  std::memset(&a, 0, sizeof(a));
  const size_t n = std::strlen(path);
  if (n == 0 || n >= sizeof(a.sun_path)) return UV_ENAMETOOLONG;
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path, n);
  int fd = StreamSocket(AF_UNIX);
  if (fd < 0) return fd;
  return BindOrClose(fd, reinterpret_cast<const struct sockaddr*>(&a), sizeof(a));
}

int ListenFd(int fd, int backlog) {
  return listen(fd, backlog) == 0 ? 0 : uv_translate_sys_error(errno);
}

int DeferAccept(int fd, int secs) {
#if defined(TCP_DEFER_ACCEPT)
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0)
    return uv_translate_sys_error(errno);
  if (ss.ss_family == AF_UNIX) return UV_ENOTSUP;
  int value = secs < 0 ? 0 : secs;
  if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &value, sizeof(value)) != 0)
    return uv_translate_sys_error(errno);
  return 0;
#else
  (void)fd;
  (void)secs;
  return UV_ENOTSUP;
#endif
}

int KeepAlive(int fd, int idle_secs) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0)
    return uv_translate_sys_error(errno);
  if (ss.ss_family == AF_UNIX) return UV_ENOTSUP;
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0)
    return uv_translate_sys_error(errno);
  int secs = idle_secs < 1 ? 1 : idle_secs;
#if defined(TCP_KEEPIDLE)
  if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof(secs)) != 0)
    return uv_translate_sys_error(errno);
#elif defined(TCP_KEEPALIVE)
  if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPALIVE, &secs, sizeof(secs)) != 0)
    return uv_translate_sys_error(errno);
#endif
  return 0;
}

int FormatAddress(const struct sockaddr_storage* ss, char* text, size_t text_len, int* port,
                  int* family) {
  if (ss->ss_family == AF_INET6) {
    const sockaddr_in6* a = reinterpret_cast<const sockaddr_in6*>(ss);
    *family = 6;
    *port = ntohs(a->sin6_port);
    return uv_ip6_name(a, text, text_len);
  }
  if (ss->ss_family == AF_INET) {
    const sockaddr_in* a = reinterpret_cast<const sockaddr_in*>(ss);
    *family = 4;
    *port = ntohs(a->sin_port);
    return uv_ip4_name(a, text, text_len);
  }
  return UV_ENOTSUP;
}

int SocketAddress(int fd, bool peer, char* text, size_t text_len, int* port, int* family) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  std::memset(&ss, 0, sizeof(ss));
  struct sockaddr* sa = reinterpret_cast<struct sockaddr*>(&ss);
  if ((peer ? getpeername(fd, sa, &len) : getsockname(fd, sa, &len)) != 0)
    return uv_translate_sys_error(errno);
  return FormatAddress(&ss, text, text_len, port, family);
}

namespace {

// A connection waiting on `listen_fd`, accepted non-blocking and close-on-exec, or a negative
// libuv error (UV_EAGAIN: none waits).
int AcceptFd(int listen_fd) {
  int fd;
#if defined(__linux__) || defined(__FreeBSD__)
  do fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return uv_translate_sys_error(errno);
#else
  do fd = accept(listen_fd, nullptr, nullptr);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return uv_translate_sys_error(errno);
  int flags = fcntl(fd, F_GETFL);
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || flags < 0 ||
      fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    int e = uv_translate_sys_error(errno);
    close(fd);
    return e;
  }
#endif
  return fd;
}

// How long accepting pauses when the process is out of descriptors (or memory).
constexpr uint64_t kAcceptRetryMs = 100;

}  // namespace

// Listener

int Listener::Open(uv_loop_t* loop, int fd, int backlog, Sink* sink, Listener** out) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  std::memset(&ss, 0, sizeof(ss));
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0)
    return uv_translate_sys_error(errno);
  int type = 0;
  socklen_t tlen = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0) return uv_translate_sys_error(errno);
  if (type != SOCK_STREAM) return UV_EINVAL;
  if (listen(fd, backlog) != 0) return uv_translate_sys_error(errno);
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return uv_translate_sys_error(errno);
  Listener* l = new (std::nothrow) Listener(loop, sink);
  if (l == nullptr) {
    close(copy);
    return UV_ENOMEM;
  }
  l->is_tcp_ = ss.ss_family != AF_UNIX;
  int r = uv_poll_init_socket(loop, &l->poll_, copy);
  if (r != 0) {
    close(copy);
    delete l;
    return r;
  }
  l->fd_ = copy;
  l->poll_.data = l;
  uv_timer_init(loop, &l->retry_);
  l->retry_.data = l;
  l->handles_ = 2;
  l->listening_ = true;
  r = uv_poll_start(&l->poll_, UV_READABLE, OnAcceptable);
  if (r != 0) {
    /* never reported to the sink: the handles close and the listener goes with them */
    l->torn_down_ = true;
    l->failed_ = true;
    l->Stop();
    return r;
  }
  *out = l;
  return 0;
}

Listener::~Listener() {
  for (Connection* c : spare_) delete c;
}

Connection* Listener::Get(uint32_t id) const {
  if (id >= conns_.size()) return nullptr;
  return conns_[id];
}

// One connection per wakeup: the poll is level-triggered, so the next one (if any) wakes the
// loop again, and a wakeup with one connection costs no accept that finds none.
void Listener::OnAcceptable(uv_poll_t* poll, int status, int) {
  Listener* l = static_cast<Listener*>(poll->data);
  if (status < 0 || l->torn_down_ || l->stopped_) return;
  int fd = AcceptFd(l->fd_);
  if (fd >= 0) {
    l->Serve(fd);
  } else if (fd == UV_EMFILE || fd == UV_ENFILE || fd == UV_ENOBUFS || fd == UV_ENOMEM) {
    // The connection stays in the backlog; try again in a while rather than spin.
    uv_poll_stop(&l->poll_);
    uv_timer_start(&l->retry_, OnRetry, kAcceptRetryMs, 0);
  }
  /* else: UV_EAGAIN (another process took it), UV_ECONNABORTED, ...: nothing to do */
}

void Listener::OnRetry(uv_timer_t* timer) {
  Listener* l = static_cast<Listener*>(timer->data);
  if (l->stopped_ || l->torn_down_) return;
  uv_poll_start(&l->poll_, UV_READABLE, OnAcceptable);
}

void Listener::Serve(int fd) {
  Connection* c = nullptr;
  if (!spare_.empty()) {
    c = spare_.back();
    spare_.pop_back();
  } else {
    c = new (std::nothrow) Connection();
    if (c == nullptr) {
      close(fd);
      return;
    }
  }
  uint32_t id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    id = static_cast<uint32_t>(conns_.size());
    conns_.push_back(nullptr);
  }
  c->Reset(this, id, fd);
  c->accepted_at = uv_now(loop_);
  conns_[id] = c;
  open_++;
  if (announce_) {
    if (Attach(c) != 0) return;
    c->StartReading();
    if (!c->closing) {
      c->known = true;
      streamed_++;
      sink_->Accepted(id);
    }
    return;
  }
  ssize_t n;
  do n = read(fd, read_buf_, sizeof(read_buf_));
  while (n < 0 && errno == EINTR);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
    Drop(c, 0, true);  // nothing was ever sent: close quietly
    return;
  }
  if (n > 0) {
    c->known = true;
    c->first_read = true;
    sink_->Data(id, read_buf_, static_cast<size_t>(n));
    c->first_read = false;
    if (c->dropped) {
      if (c->known && !torn_down_) sink_->Closed(id, c->error);
      Release(c);
      MaybeFree();
      return;
    }
    streamed_++;
  }
  if (Attach(c) == 0) c->StartReading();
}

// Moves `c` to the streaming path: a libuv stream on its socket (Nagle goes off at its first
// write: a connection answered with RespondClose() alone needs no system call for it).
int Listener::Attach(Connection* c) {
  if (c->attached) return 0;
  int r = is_tcp_ ? uv_tcp_init(loop_, &c->h.tcp) : uv_pipe_init(loop_, &c->h.pipe, 0);
  if (r != 0) return r;
  c->h.handle.data = c;
  r = is_tcp_ ? uv_tcp_open(&c->h.tcp, c->fd) : uv_pipe_open(&c->h.pipe, c->fd);
  if (r != 0) {
    // The handle holds no socket: the descriptor is closed here, and the handle's close
    // callback closes the connection as any other (Closed() with the error, if known).
    close(c->fd);
    c->fd = -1;
    c->attached = true;
    c->closing = true;
    c->error = r;
    uv_close(&c->h.handle, Connection::OnClosed);
    return r;
  }
  c->attached = true;
  return 0;
}

// Closes a connection that was never attached: at once; during its first Data() call the
// connection is released when that call returns (with Closed() unless `quiet`).
void Listener::Drop(Connection* c, int error, bool quiet) {
  if (c->closing) return;
  c->closing = true;
  c->error = error;
  if (quiet) c->known = false;
  close(c->fd);
  c->fd = -1;
  open_--;
  if (c->first_read) {
    c->dropped = true;
    return;
  }
  Release(c);
  MaybeFree();
}

void Listener::Release(Connection* c) {
  conns_[c->id] = nullptr;
  free_ids_.push_back(c->id);
  if (spare_.size() < 64) {
    spare_.push_back(c);
  } else {
    delete c;
  }
}

void Listener::OnListenerClosed(uv_handle_t* handle) {
  Listener* l = static_cast<Listener*>(handle->data);
  if (--l->handles_ != 0) return;
  l->listening_ = false;
  if (l->failed_) {
    delete l;
    return;
  }
  l->MaybeFree();
}

void Listener::MaybeFree() {
  if (!stopped_ || listening_ || open_ != 0) return;
  Sink* sink = sink_;
  delete this;
  sink->Freed();
}

Connection* Listener::Streaming(uint32_t id) {
  Connection* c = Get(id);
  if (c == nullptr || c->closing || Attach(c) != 0) return nullptr;
  return c;
}

int Listener::Write(uint32_t id, const uv_buf_t* bufs, unsigned count, size_t* queued) {
  *queued = 0;
  Connection* c = Streaming(id);
  if (c == nullptr) return UV_EBADF;
  size_t total = 0;
  for (unsigned i = 0; i < count; ++i) total += bufs[i].len;
  if (is_tcp_ && !c->nodelay) {
    c->nodelay = true;
    uv_tcp_nodelay(&c->h.tcp, 1);
  }
  size_t done = 0;
  if (c->queued == 0) {
    int r = uv_try_write(&c->h.stream, bufs, count);
    if (r >= 0) {
      done = static_cast<size_t>(r);
    } else if (r != UV_EAGAIN && r != UV_ENOSYS) {
      c->CloseWith(r);
      return 0;
    }
  }
  if (done < total) {
    size_t rest = total - done;
    Connection::WriteBlock* block =
        static_cast<Connection::WriteBlock*>(std::malloc(sizeof(Connection::WriteBlock) + rest));
    if (block == nullptr) {
      c->CloseWith(UV_ENOMEM);
      return 0;
    }
    char* p = block->data();
    size_t skip = done;
    for (unsigned i = 0; i < count; ++i) {
      size_t n = bufs[i].len;
      if (skip >= n) {
        skip -= n;
        continue;
      }
      std::memcpy(p, bufs[i].base + skip, n - skip);
      p += n - skip;
      skip = 0;
    }
    block->conn = c;
    block->len = rest;
    block->req.data = block;
    uv_buf_t buf;  // not uv_buf_init: its length is 32 bits, uv_buf_t's a size_t on POSIX
    buf.base = block->data();
    buf.len = rest;
    int r = uv_write(&block->req, &c->h.stream, &buf, 1, Connection::OnWrite);
    if (r != 0) {
      std::free(block);
      c->CloseWith(r);
      return 0;
    }
    c->queued += rest;
  }
  *queued = c->queued;
  return 0;
}

int Listener::RespondClose(uint32_t id, const uv_buf_t* bufs, unsigned count) {
  Connection* c = Get(id);
  if (c == nullptr || c->closing) return UV_EBADF;
  if (c->queued == 0 && !c->shutdown_sent) {
    size_t total = 0;
    for (unsigned i = 0; i < count; ++i) total += bufs[i].len;
    ssize_t n = 0;
    if (total != 0) {
      struct iovec iov[4];
      const unsigned k = count < 4 ? count : 4;
      for (unsigned i = 0; i < k; ++i) {
        iov[i].iov_base = bufs[i].base;
        iov[i].iov_len = bufs[i].len;
      }
      // One buffer (a head and body encoded together, the usual case) goes by write(): the
      // kernel then copies no iovec array in.
      do
        n = k == 1 ? write(c->fd, iov[0].iov_base, iov[0].iov_len)
                   : writev(c->fd, iov, static_cast<int>(k));
      while (n < 0 && errno == EINTR);
      if (k < count) n = n < 0 ? n : 0;  // more parts than one writev here: the stream path
    }
    const bool gone = n < 0 && errno != EAGAIN && errno != EWOULDBLOCK;
    if (gone || static_cast<size_t>(n < 0 ? 0 : n) == total) {
      // All of it went out, or the peer is gone (reset, broken pipe): nothing more to send.
      if (c->attached) {
        c->known = false;
        c->CloseWith(0);
      } else {
        one_step_++;
        Drop(c, 0, true);
      }
      return 1;
    }
    // The kernel took part of it: the rest goes the streaming way.
    size_t skip = n < 0 ? 0 : static_cast<size_t>(n);
    uv_buf_t rest[4];
    unsigned m = 0;
    for (unsigned i = 0; i < count && m < 4; ++i) {
      if (skip >= bufs[i].len) {
        skip -= bufs[i].len;
        continue;
      }
      rest[m].base = bufs[i].base + skip;
      rest[m].len = bufs[i].len - skip;
      skip = 0;
      ++m;
    }
    size_t queued = 0;
    Write(id, rest, m, &queued);
  } else {
    size_t queued = 0;
    Write(id, bufs, count, &queued);
  }
  Shutdown(id);
  // What the peer still sends is read and dropped until it closes (as after an end()).
  if ((c = Get(id)) != nullptr && !c->closing) {
    c->paused = false;
    c->StartReading();
  }
  return 0;
}

int Listener::Shutdown(uint32_t id) {
  Connection* c = Streaming(id);
  if (c == nullptr) return UV_EBADF;
  if (c->shutdown_sent) return 0;
  c->shutdown_sent = true;
  c->shutdown_req.data = c;
  int r = uv_shutdown(&c->shutdown_req, &c->h.stream, Connection::OnShutdown);
  if (r != 0) c->CloseWith(r == UV_ENOTCONN ? 0 : r);
  return 0;
}

int Listener::Close(uint32_t id, bool reset, bool quiet) {
  Connection* c = Get(id);
  if (c == nullptr || c->closing) return UV_EBADF;
  if (reset && is_tcp_) {
    struct linger lg;
    lg.l_onoff = 1;
    lg.l_linger = 0;
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  if (quiet) c->known = false;
  c->CloseWith(0);
  return 0;
}

int Listener::Pause(uint32_t id) {
  Connection* c = Get(id);
  if (c == nullptr || c->closing) return UV_EBADF;
  c->paused = true;
  c->reading = false;
  if (c->attached) uv_read_stop(&c->h.stream);
  return 0;
}

int Listener::Resume(uint32_t id) {
  Connection* c = Get(id);
  if (c == nullptr || c->closing) return UV_EBADF;
  if (!c->paused) return 0;
  c->paused = false;
  c->StartReading();  // not attached yet: reading starts when its first Data() call returns
  return 0;
}

int Listener::Socket(uint32_t id) const {
  Connection* c = Get(id);
  if (c == nullptr || c->closing) return UV_EBADF;
  return c->fd;
}

size_t Listener::Queued(uint32_t id) const {
  Connection* c = Get(id);
  return c == nullptr ? 0 : c->queued;
}

int Listener::Fileno(uint32_t id) const { return Socket(id); }

int Listener::Dup(uint32_t id) const {
  int fd = Fileno(id);
  if (fd < 0) return fd;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return copy < 0 ? uv_translate_sys_error(errno) : copy;
}

void Listener::Stop() {
  if (stopped_) return;
  stopped_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), OnListenerClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&retry_), OnListenerClosed);
  // libuv let go of the descriptor in uv_close(): closed now, so that the port is free (and
  // connects are refused) as soon as Stop() returns.
  close(fd_);
  fd_ = -1;
}

void Listener::CloseSilent(uint64_t min_age_ms) {
  uint64_t now = uv_now(loop_);
  for (Connection* c : conns_) {
    if (c != nullptr && !c->known && now - c->accepted_at >= min_age_ms) c->CloseWith(0);
  }
}

void Listener::Ref(bool on) {
  if (stopped_) return;
  for (uv_handle_t* h :
       {reinterpret_cast<uv_handle_t*>(&poll_), reinterpret_cast<uv_handle_t*>(&retry_)}) {
    if (on) {
      uv_ref(h);
    } else {
      uv_unref(h);
    }
  }
}

void Listener::Teardown() {
  torn_down_ = true;
  for (Connection* c : conns_) {
    if (c != nullptr) c->CloseWith(0);
  }
  Stop();
}

}  // namespace transport
}  // namespace tsgi

#endif  // TSGI_HAS_TRANSPORT
