/*
 * bench:e2e rows "scgi-floor" and "uwsgi-floor": the least any SCGI or uwsgi backend can do
 * behind nginx, which opens one connection per request for both. One process, blocking sockets,
 * the loop uWSGI runs with one process and no threads: accept, read until the request head is
 * whole (SCGI netstring, or uwsgi's 4-byte header and vars block; the GET body is empty), write
 * one fixed answer, close. No variable is decoded and no app runs. bench/e2e.ts builds it with
 * the system C compiler into its temporary directory.
 *
 * Row "fastcgi-floor": the least a FastCGI backend can do behind nginx with fastcgi_keep_conn,
 * the limit behind one nginx worker. Connections are kept; poll() serves every open one;
 * records are read by their headers only (PARAMS are not decoded) and each request's empty
 * STDIN record is answered at once with STDOUT, an empty STDOUT and END_REQUEST, in one write.
 *
 *   floor scgi|uwsgi|fastcgi PORT      (listens on 127.0.0.1:PORT)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char kScgi[] =
    "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n";
static const char kUwsgi[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n";

/* Bytes of the request head in buf[0..n), or 0 while it is not whole. */
static size_t scgi_head(const unsigned char *buf, size_t n) {
  size_t len = 0, i = 0;
  for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) len = len * 10 + (size_t)(buf[i] - '0');
  if (i == n || buf[i] != ':') return 0;
  return n >= i + 1 + len + 1 ? i + 1 + len + 1 : 0;
}

static size_t uwsgi_head(const unsigned char *buf, size_t n) {
  if (n < 4) return 0;
  size_t len = 4 + (size_t)buf[1] + ((size_t)buf[2] << 8);
  return n >= len ? len : 0;
}

#define FLOOR_MAX_CONNS 1024

/* One kept FastCGI connection: bytes of records not yet whole. */
struct fcgi_conn {
  unsigned char buf[65536 + 8 + 255];
  size_t n;
};

/* The answer to request `id`: STDOUT with the response, an empty STDOUT, END_REQUEST. */
static size_t fcgi_answer(unsigned char *out, unsigned id) {
  static const char body[] =
      "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n";
  const size_t len = sizeof body - 1;
  size_t o = 0;
  const unsigned char head[8] = {1,
                                 6,
                                 (unsigned char)(id >> 8),
                                 (unsigned char)id,
                                 (unsigned char)(len >> 8),
                                 (unsigned char)len,
                                 0,
                                 0};
  memcpy(out + o, head, 8);
  o += 8;
  memcpy(out + o, body, len);
  o += len;
  const unsigned char end_out[8] = {1, 6, (unsigned char)(id >> 8), (unsigned char)id, 0, 0, 0, 0};
  memcpy(out + o, end_out, 8);
  o += 8;
  const unsigned char end[16] = {
      1, 3, (unsigned char)(id >> 8), (unsigned char)id, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  memcpy(out + o, end, 16);
  return o + 16;
}

/* Reads what arrived on `fd`, answers every request whose STDIN ended; 0 when it closed. */
static int fcgi_serve(int fd, struct fcgi_conn *c) {
  ssize_t r = read(fd, c->buf + c->n, sizeof c->buf - c->n);
  if (r <= 0) return 0;
  c->n += (size_t)r;
  unsigned char out[4096];
  size_t o = 0;
  size_t at = 0;
  while (c->n - at >= 8) {
    const unsigned char *h = c->buf + at;
    const size_t rec = 8 + (((size_t)h[4] << 8) | h[5]) + h[6];
    if (c->n - at < rec) break;
    /* FCGI_STDIN with no content: the request is whole */
    if (h[1] == 5 && h[4] == 0 && h[5] == 0) {
      if (o + 256 > sizeof out) {
        if (write(fd, out, o) < 0) return 0;
        o = 0;
      }
      o += fcgi_answer(out + o, ((unsigned)h[2] << 8) | h[3]);
    }
    at += rec;
  }
  if (o > 0 && write(fd, out, o) < 0) return 0;
  memmove(c->buf, c->buf + at, c->n - at);
  c->n -= at;
  return c->n < sizeof c->buf;
}

static void fcgi_floor(int ls) {
  static struct pollfd fds[FLOOR_MAX_CONNS + 1];
  static struct fcgi_conn *conns[FLOOR_MAX_CONNS + 1];
  nfds_t count = 1;
  fds[0].fd = ls;
  fds[0].events = POLLIN;
  for (;;) {
    if (poll(fds, count, -1) < 0) continue;
    for (nfds_t i = count; i-- > 1;) {
      if (fds[i].revents == 0) continue;
      if (!fcgi_serve(fds[i].fd, conns[i])) {
        close(fds[i].fd);
        free(conns[i]);
        count--;
        fds[i] = fds[count];
        conns[i] = conns[count];
      }
    }
    if ((fds[0].revents & POLLIN) != 0) {
      int c = accept(ls, NULL, NULL);
      if (c < 0) continue;
      struct fcgi_conn *conn = count <= FLOOR_MAX_CONNS ? calloc(1, sizeof *conn) : NULL;
      if (conn == NULL) {
        close(c);
        continue;
      }
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fds[count].fd = c;
      fds[count].events = POLLIN;
      fds[count].revents = 0;
      conns[count] = conn;
      count++;
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "scgi") != 0 && strcmp(argv[1], "uwsgi") != 0 &&
                    strcmp(argv[1], "fastcgi") != 0)) {
    fprintf(stderr, "usage: floor scgi|uwsgi|fastcgi PORT\n");
    return 2;
  }
  int scgi = strcmp(argv[1], "scgi") == 0;
  const char *answer = scgi ? kScgi : kUwsgi;
  size_t answer_len = strlen(answer);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[2]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 4096) != 0) {
    perror("floor: listen");
    return 1;
  }
  if (strcmp(argv[1], "fastcgi") == 0) fcgi_floor(ls);
  static unsigned char buf[65536 + 4];
  for (;;) {
    int c = accept(ls, NULL, NULL);
    if (c < 0) continue;
    size_t n = 0;
    for (;;) {
      ssize_t r = read(c, buf + n, sizeof buf - n);
      if (r <= 0) break;
      n += (size_t)r;
      if ((scgi ? scgi_head(buf, n) : uwsgi_head(buf, n)) != 0) {
        if (write(c, answer, answer_len) < 0) perror("floor: write");
        break;
      }
      if (n == sizeof buf) break;
    }
    close(c);
  }
}
