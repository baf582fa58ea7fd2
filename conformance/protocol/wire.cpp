#include "protocol/wire.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

namespace iommuspec::protocol {

std::string hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.resize(n * 2);
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = d[p[i] >> 4];
    s[2 * i + 1] = d[p[i] & 15];
  }
  return s;
}

std::optional<std::vector<uint8_t>> unhex(std::string_view s, size_t max) {
  if (s == "-") return std::vector<uint8_t>{};
  if (s.size() % 2 || s.size() / 2 > max) return std::nullopt;
  std::vector<uint8_t> out(s.size() / 2);
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < out.size(); ++i) {
    const int a = nib(s[2 * i]), b = nib(s[2 * i + 1]);
    if (a < 0 || b < 0) return std::nullopt;
    out[i] = uint8_t(a << 4 | b);
  }
  return out;
}

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ')
      ++i;
    const size_t b = i;
    while (i < s.size() && s[i] != ' ')
      ++i;
    if (i > b) out.push_back(s.substr(b, i - b));
  }
  return out;
}

std::map<std::string, std::string> parse_kv(std::string_view rest) {
  std::map<std::string, std::string> m;
  for (auto w : split(rest)) {
    const auto eq = w.find('=');
    if (eq != std::string_view::npos)
      m[std::string(w.substr(0, eq))] = std::string(w.substr(eq + 1));
  }
  return m;
}

std::string encode_call(const iommufd::Call& c) {
  const auto& d = iommufd::op_desc(c.op);
  const size_t n = std::min<size_t>(std::max<size_t>(c.user_size, d.size), iommufd::kMaxArg);
  return "CALL " + std::string(d.name) + " " + std::to_string(c.user_size) + " " +
         (c.tail_nonzero ? "1 " : "0 ") + hex(c.arg.data(), n) + " " +
         (c.payload.empty() ? std::string("-") : hex(c.payload.data(), c.payload.size())) + "\n";
}

std::string encode_ret(const iommufd::Observation& o, size_t arg_len) {
  return "RET " + std::to_string(int(o.err)) + " " +
         hex(o.arg.data(), std::min(arg_len, iommufd::kMaxArg)) + " " +
         (o.payload.empty() ? std::string("-") : hex(o.payload.data(), o.payload.size())) + "\n";
}

std::optional<iommufd::Call> decode_call(std::string_view rest, std::string& error) {
  const auto w = split(rest);
  if (w.size() != 5) {
    error = "CALL takes <op> <user_size> <tail> <arg> <data>";
    return std::nullopt;
  }
  const auto* d = iommufd::op_by_name(w[0]);
  if (!d) {
    error = "unknown op " + std::string(w[0]);
    return std::nullopt;
  }
  iommufd::Call c;
  c.op = d->id;
  uint64_t size = 0;
  for (char ch : w[1]) {
    if (ch < '0' || ch > '9' || size > (1u << 20)) {
      error = "bad user_size";
      return std::nullopt;
    }
    size = size * 10 + uint64_t(ch - '0');
  }
  c.user_size = uint32_t(size);
  if (w[2] != "0" && w[2] != "1") {
    error = "tail is 0 or 1";
    return std::nullopt;
  }
  c.tail_nonzero = w[2] == "1";
  auto arg = unhex(w[3], iommufd::kMaxArg);
  if (!arg) {
    error = "bad arg hex (at most 96 bytes)";
    return std::nullopt;
  }
  std::memcpy(c.arg.data(), arg->data(), arg->size());
  auto data = unhex(w[4], kMaxPayload);
  if (!data) {
    error = "bad data hex (at most 1 MiB)";
    return std::nullopt;
  }
  c.payload = std::move(*data);
  return c;
}

std::optional<iommufd::Observation> decode_ret(std::string_view rest, std::string& error) {
  const auto w = split(rest);
  if (w.size() != 3) {
    error = "RET takes <errno> <arg> <data>";
    return std::nullopt;
  }
  iommufd::Observation o;
  int e = 0;
  for (char ch : w[0]) {
    if (ch < '0' || ch > '9' || e > 100000) {
      error = "bad errno";
      return std::nullopt;
    }
    e = e * 10 + (ch - '0');
  }
  o.err = errno_from_int(e);
  auto arg = unhex(w[1], iommufd::kMaxArg);
  auto data = unhex(w[2], kMaxPayload);
  if (!arg || !data) {
    error = "bad hex in RET";
    return std::nullopt;
  }
  std::memcpy(o.arg.data(), arg->data(), arg->size());
  o.payload = std::move(*data);
  return o;
}

// A write to a peer that died raises SIGPIPE, whose default action ends the whole process
// (a test binary, or a program that embeds a target): SIGPIPE is blocked for this thread while
// writing and, when the write failed with EPIPE, the signal it raised is taken before the
// mask is restored, so the caller sees the failed write instead.
bool write_all(int fd, std::string_view s) {
  sigset_t pipe_only, old, pending;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  bool ok = true;
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE && !was_pending) {
        const timespec now{0, 0};
        sigtimedwait(&pipe_only, nullptr, &now);
      }
      ok = false;
      break;
    }
    s.remove_prefix(size_t(n));
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return ok;
}

LineReader::Status LineReader::read_line(std::string& line, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    const auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      if (discarding_) { // the end of an overlong line: drop it
        buf_.erase(0, nl + 1);
        discarding_ = false;
        continue;
      }
      if (nl > kMaxLine) {
        buf_.erase(0, nl + 1);
        return Status::too_long;
      }
      line = buf_.substr(0, nl);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      buf_.erase(0, nl + 1);
      return Status::ok;
    }
    if (buf_.size() > kMaxLine) {
      // Never buffer more than a line's worth: drop it and what follows up to its end.
      buf_.clear();
      if (!discarding_) {
        discarding_ = true;
        return Status::too_long;
      }
    }
    int wait = -1;
    if (timeout_ms >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) return Status::timeout;
      wait = int(left);
    }
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, wait);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::error;
    }
    if (r == 0) return Status::timeout;
    char tmp[65536];
    const ssize_t n = ::read(fd_, tmp, sizeof tmp);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status::error;
    }
    if (n == 0) return Status::eof;
    buf_.append(tmp, size_t(n));
  }
}

int serve(Executor& ex, int in_fd, int out_fd) {
  LineReader r(in_fd);
  std::string line;
  while (true) {
    const auto st = r.read_line(line, -1);
    if (st == LineReader::Status::eof) return 0;
    if (st == LineReader::Status::too_long) {
      if (!write_all(out_fd, "ERR line too long\n")) return 1;
      continue;
    }
    if (st != LineReader::Status::ok) return 1;
    const auto sp = line.find(' ');
    const std::string_view verb = std::string_view(line).substr(0, sp);
    const std::string_view rest =
        sp == std::string::npos ? std::string_view() : std::string_view(line).substr(sp + 1);
    std::string reply;
    if (verb == "HELLO") {
      const auto w = split(rest);
      if (w.size() != 1 || w[0] != std::to_string(kVersion)) {
        reply = "ERR protocol version " + std::to_string(kVersion) + " only\n";
      } else {
        reply = "OK";
        for (const auto& [k, v] : ex.hello())
          reply += " " + k + "=" + v;
        reply += "\n";
      }
    } else if (verb == "RESET") {
      ex.reset();
      reply = "OK\n";
    } else if (verb == "MEM") {
      const auto w = split(rest);
      uint64_t size = 0;
      bool ok = w.size() == 1 && !w[0].empty() && w[0].size() < 12;
      for (char ch : ok ? w[0] : std::string_view())
        if (ch < '0' || ch > '9')
          ok = false;
        else
          size = size * 10 + uint64_t(ch - '0');
      const auto addr = ok && size && size <= (1ull << 30) ? ex.mem(size) : std::nullopt;
      reply = addr ? "OK " + std::to_string(*addr) + "\n"
                   : "ERR MEM takes a size in bytes (at most 1 GiB) that can be mapped\n";
    } else if (verb == "CALL") {
      std::string err;
      auto c = decode_call(rest, err);
      if (!c) {
        reply = "ERR " + err + "\n";
      } else {
        const auto o = ex.call(*c);
        reply = encode_ret(o, std::max<size_t>(c->user_size, iommufd::op_desc(c->op).size));
      }
    } else if (verb == "BYE") {
      write_all(out_fd, "OK\n");
      return 0;
    } else {
      reply = "ERR unknown request '" + std::string(verb.substr(0, 32)) + "'\n";
    }
    if (!write_all(out_fd, reply)) return 1;
  }
}

} // namespace iommuspec::protocol
