/*
 * tsgi-cgi-bridge: a CGI program that hands its request to a persistent tsgi process for the
 * app over FastCGI on a unix socket, starting that process when none answers (as
 * `cgi-fcgi -connect` does), for hosts that run CGI programs only (Apache mod_cgi).
 *
 * Used as the interpreter of the app's entry file (docs/hosting.md):
 *
 *     #!/path/to/tsgi-cgi-bridge
 *     export default (environ, startResponse) => ...
 *
 * so the kernel runs `tsgi-cgi-bridge /path/app.cgi [ARGS]` (mod_cgi adds ARGS for a query
 * without "="; they are ignored). For APP = that file:
 * - the socket is `.APPNAME.tsgi.sock` in the app's folder (the user's own directory);
 * - when connecting fails, the bridge takes an exclusive lock on `.APPNAME.tsgi.lock`, tries
 *   again (another request may have started it meanwhile), and else starts
 *   `tsgi serve --fastcgi unix:SOCKET --socket-mode 600 --idle-exit SECS APP` detached (its own
 * session, output appended to `.APPNAME.tsgi.log`), waits until it accepts, and lets the lock go;
 * - the request is sent as FastCGI: BEGIN_REQUEST (responder), the whole CGI environment as
 *   PARAMS (mod_fcgid sends the same set), stdin (CONTENT_LENGTH bytes, or to its end) as
 *   STDIN; the STDOUT records (a CGI response) are copied to stdout as they come, STDERR to
 *   stderr, until END_REQUEST.
 * Environment: TSGI_BRIDGE_TSGI, the tsgi command to start (default: `tsgi` on PATH);
 * TSGI_IDLE_EXIT, the idle seconds after which the started process exits (default 300).
 * Exit status 0 when an answer was relayed; else a `Status: 502` CGI answer and status 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

enum {
  kBeginRequest = 1,
  kEndRequest = 3,
  kParams = 4,
  kStdin = 5,
  kStdout = 6,
  kStderr = 7,
  kResponder = 1,
  kMaxContent = 65535,
};

static const char* g_app = "";

static void fail(const char* what) {
  int e = errno;
  fprintf(stderr, "tsgi-cgi-bridge: %s: %s%s%s\n", g_app, what, e != 0 ? ": " : "",
          e != 0 ? strerror(e) : "");
  fputs("Status: 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\nBad Gateway\n", stdout);
  fflush(stdout);
  exit(1);
}

static int write_all(int fd, const void* buf, size_t n) {
  const char* p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_full(int fd, void* buf, size_t n) {
  char* p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* One record of `type` for request 1 with `n` bytes of content (n <= kMaxContent). */
static int send_record(int fd, int type, const void* content, size_t n) {
  unsigned char head[8] = {
      1, (unsigned char)type, 0, 1, (unsigned char)(n >> 8), (unsigned char)(n & 0xff), 0, 0};
  if (write_all(fd, head, sizeof(head)) < 0) return -1;
  return n == 0 ? 0 : write_all(fd, content, n);
}

/* A growing buffer of PARAMS content, sent in records of at most kMaxContent bytes. */
struct buf {
  unsigned char* data;
  size_t len, cap;
};

static void put(struct buf* b, const void* p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap == 0 ? 8192 : b->cap;
    while (cap < b->len + n) cap *= 2;
    unsigned char* d = realloc(b->data, cap);
    if (d == NULL) fail("out of memory");
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void put_length(struct buf* b, size_t n) {
  if (n < 128) {
    unsigned char c = (unsigned char)n;
    put(b, &c, 1);
  } else {
    unsigned char c[4] = {(unsigned char)((n >> 24) | 0x80), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    put(b, c, 4);
  }
}

static int connect_unix(const char* path) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(addr.sun_path)) {
    errno = ENAMETOOLONG;
    fail("the socket path is too long");
  }
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket()");
  if (connect(fd, (struct sockaddr*)&addr, sizeof(addr)) == 0) return fd;
  close(fd);
  return -1;
}

/* Starts `tsgi serve` for the app on `sock`, detached, its output appended to `logfile`. */
static void start_server(const char* sock, const char* logfile) {
  const char* tsgi = getenv("TSGI_BRIDGE_TSGI");
  const char* idle = getenv("TSGI_IDLE_EXIT");
  if (tsgi == NULL || *tsgi == '\0') tsgi = "tsgi";
  if (idle == NULL || *idle == '\0') idle = "300";
  char listen[PATH_MAX + 8];
  snprintf(listen, sizeof(listen), "unix:%s", sock);
  pid_t pid = fork();
  if (pid < 0) fail("fork()");
  if (pid > 0) return;
  /* the child: a session of its own, no tie to the web server's pipes */
  setsid();
  if (fork() != 0) _exit(0);
  int null = open("/dev/null", O_RDONLY);
  int log = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (null >= 0) dup2(null, 0);
  if (log >= 0) {
    dup2(log, 1);
    dup2(log, 2);
  }
  for (int fd = 3; fd < 64; fd++) close(fd);
  execlp(tsgi, tsgi, "serve", "--fastcgi", listen, "--socket-mode", "600", "--idle-exit", idle,
         g_app, (char*)NULL);
  fprintf(stderr, "tsgi-cgi-bridge: cannot run %s: %s\n", tsgi, strerror(errno));
  _exit(127);
}

/* A connection to the app's server, started first when none answers. */
static int connect_or_start(const char* dir, const char* name) {
  char sock[PATH_MAX], lock[PATH_MAX], logfile[PATH_MAX];
  snprintf(sock, sizeof(sock), "%s/.%s.tsgi.sock", dir, name);
  snprintf(lock, sizeof(lock), "%s/.%s.tsgi.lock", dir, name);
  snprintf(logfile, sizeof(logfile), "%s/.%s.tsgi.log", dir, name);
  int fd = connect_unix(sock);
  if (fd >= 0) return fd;
  int lk = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lk < 0) fail("cannot open the lock file");
  while (flock(lk, LOCK_EX) < 0) {
    if (errno != EINTR) fail("flock()");
  }
  fd = connect_unix(sock);
  if (fd < 0) {
    unlink(sock); /* a socket left by a process that is gone */
    start_server(sock, logfile);
    /* the app loads: wait up to 30 s for the socket to accept */
    for (int i = 0; i < 3000 && fd < 0; i++) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
      fd = connect_unix(sock);
    }
  }
  flock(lk, LOCK_UN);
  close(lk);
  if (fd < 0) {
    errno = 0;
    fail("the tsgi process did not start (see its log beside the app)");
  }
  return fd;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fputs("usage: tsgi-cgi-bridge APP (as the #! interpreter of the app's entry file)\n", stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  char app[PATH_MAX];
  if (realpath(argv[1], app) == NULL) {
    g_app = argv[1];
    fail("cannot find the app");
  }
  g_app = app;
  char dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s", app);
  char* slash = strrchr(dir, '/');
  const char* name = slash + 1;
  *slash = '\0';
  char base[NAME_MAX + 1];
  snprintf(base, sizeof(base), "%s", name);
  if (dir[0] == '\0') strcpy(dir, "/");

  int fd = connect_or_start(dir, base);

  static const unsigned char begin[8] = {0, kResponder, 0, 0, 0, 0, 0, 0};
  if (send_record(fd, kBeginRequest, begin, sizeof(begin)) < 0) fail("sending the request");
  struct buf params = {NULL, 0, 0};
  for (char** e = environ; *e != NULL; e++) {
    const char* eq = strchr(*e, '=');
    if (eq == NULL) continue;
    size_t nlen = (size_t)(eq - *e), vlen = strlen(eq + 1);
    put_length(&params, nlen);
    put_length(&params, vlen);
    put(&params, *e, nlen);
    put(&params, eq + 1, vlen);
  }
  for (size_t off = 0; off < params.len; off += kMaxContent) {
    size_t n = params.len - off < kMaxContent ? params.len - off : kMaxContent;
    if (send_record(fd, kParams, params.data + off, n) < 0) fail("sending the request");
  }
  if (send_record(fd, kParams, NULL, 0) < 0) fail("sending the request");
  free(params.data);

  /* the body: CONTENT_LENGTH bytes, or stdin to its end when there is none */
  const char* cl = getenv("CONTENT_LENGTH");
  long long left = cl != NULL && *cl != '\0' ? atoll(cl) : -1;
  static unsigned char chunk[kMaxContent + 256]; /* content and padding */
  while (left != 0) {
    size_t want = left < 0 || left > kMaxContent ? kMaxContent : (size_t)left;
    ssize_t r = read(0, chunk, want);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (send_record(fd, kStdin, chunk, (size_t)r) < 0) fail("sending the request body");
    if (left > 0) left -= r;
  }
  if (send_record(fd, kStdin, NULL, 0) < 0) fail("sending the request body");

  int answered = 0;
  for (;;) {
    unsigned char head[8];
    if (read_full(fd, head, sizeof(head)) < 0) break;
    size_t n = ((size_t)head[4] << 8) | head[5];
    size_t pad = head[6];
    if (read_full(fd, chunk, n + pad) < 0) break;
    if (head[1] == kStdout && n > 0) {
      answered = 1;
      if (write_all(1, chunk, n) < 0) break; /* the web server stopped reading */
    } else if (head[1] == kStderr && n > 0) {
      write_all(2, chunk, n);
    } else if (head[1] == kEndRequest) {
      close(fd);
      return 0;
    }
  }
  close(fd);
  if (!answered) {
    errno = 0;
    fail("the tsgi process closed the connection without an answer");
  }
  return 1;
}
