#include "qemu/qtest.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace iommuspec::qemu {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kRecentCommands = 8;     // commands kept for error reports
constexpr size_t kRecentCommandLen = 120; // a bulk write's hex is cut to this
constexpr size_t kLogHead = 1500, kLogTail = 2500;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? int(left.count()) : 0;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * bytes.size());
  for (const uint8_t b : bytes) {
    s.push_back(digits[b >> 4]);
    s.push_back(digits[b & 15]);
  }
  return s;
}

std::optional<std::vector<uint8_t>> from_hex(std::string_view s, size_t len) {
  if (s.size() != 2 + 2 * len || s.substr(0, 2) != "0x") return std::nullopt;
  std::vector<uint8_t> out(len);
  for (size_t i = 0; i < len; ++i) {
    const char* p = s.data() + 2 + 2 * i;
    if (std::from_chars(p, p + 2, out[i], 16).ptr != p + 2) return std::nullopt;
  }
  return out;
}

// QEMU's log, or its start and its end when long: a hw_error names the cause on its first
// line and then dumps the CPU state, other messages come last.
std::string head_and_tail(const std::string& path) {
  const std::string all = conformance::tail_of(path, kLogHead + kLogTail + 1);
  if (all.size() <= kLogHead + kLogTail) return all;
  std::ifstream f(path, std::ios::binary);
  std::string head(kLogHead, '\0');
  f.read(head.data(), std::streamsize(head.size()));
  return head + "\n[...]\n" + conformance::tail_of(path, kLogTail);
}

} // namespace

std::optional<uint64_t> parse_hex(std::string_view s) {
  if (s.size() < 3 || s.substr(0, 2) != "0x") return std::nullopt;
  uint64_t v = 0;
  const auto r = std::from_chars(s.data() + 2, s.data() + s.size(), v, 16);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

QtestClient::QtestClient(std::vector<std::string> argv, QtestOptions opts)
    : opts_(std::move(opts)) {
  if (argv.empty()) throw std::invalid_argument("QtestClient: empty QEMU command line");
  program_ = argv[0];
  dir_ = conformance::make_temp_dir("iommuspec-qemu-");
  try {
    const std::string sock = dir_ + "/qtest.sock";
    const int listener = conformance::listen_unix(sock);
    // QEMU connects as a client (no ",server"); its own qtest log would repeat every
    // command on stderr, so it goes to /dev/null and we keep the last commands instead.
    argv.insert(argv.end(), {"-qtest", "unix:" + sock, "-qtest-log", "/dev/null"});
    for (const auto& e : opts_.trace_events)
      argv.insert(argv.end(), {"-trace", e});
    if (!opts_.trace_events.empty()) argv.insert(argv.end(), {"-D", dir_ + "/trace.log"});
    child_ = conformance::spawn(argv, false, dir_ + "/qemu.log");
    accept_connection(listener);
    ::unlink(sock.c_str());
    handshake();
  } catch (const TargetError&) {
    shutdown();
    throw;
  } catch (const std::exception& e) { // no socket, no fork, no log file: still a TargetError
    shutdown();
    throw TargetError(std::string("cannot start ") + program_ + ": " + e.what());
  }
}

QtestClient::~QtestClient() {
  shutdown();
}

void QtestClient::accept_connection(int listener) {
  // Poll in slices so that a QEMU that exits at once (bad option, missing firmware) is
  // reported with its message rather than after the whole connect timeout.
  const auto deadline = Clock::now() + std::chrono::milliseconds(opts_.connect_timeout_ms);
  pollfd p{listener, POLLIN, 0};
  int ready = 0;
  while (ready == 0 && remaining_ms(deadline) > 0) {
    ready = poll(&p, 1, std::min(50, remaining_ms(deadline)));
    if (ready == 0 && conformance::reap_if_exited(child_)) break;
  }
  fd_ = ready > 0 ? accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK) : -1;
  ::close(listener);
  if (fd_ < 0)
    fail(child_.pid < 0 ? "exited before connecting to the qtest socket"
                        : fmt::format("did not connect to the qtest socket within {} ms",
                                      opts_.connect_timeout_ms));
}

void QtestClient::handshake() {
  // QEMU connects to qtest before it creates the machine's devices (softmmu/vl.c), so a
  // bad -device only shows as a dead connection: the first reply says the machine is up.
  // `endianness` answers the target's byte order (softmmu/qtest.c); both are little.
  const int command_timeout = opts_.command_timeout_ms;
  opts_.command_timeout_ms = std::max(command_timeout, opts_.connect_timeout_ms);
  const std::string order = command("endianness");
  opts_.command_timeout_ms = command_timeout;
  if (order != "little") fail("answered `OK " + order + "` to endianness, not little");
}

void QtestClient::remember(const std::string& cmd) {
  // Repeats (a poll loop) are kept once with a count, so the report shows what led there.
  if (!recent_.empty() && recent_.back().text == cmd) {
    ++recent_.back().times;
    return;
  }
  recent_.push_back(
      {cmd.size() > kRecentCommandLen ? cmd.substr(0, kRecentCommandLen) + "..." : cmd, 1});
  if (recent_.size() > kRecentCommands) recent_.pop_front();
}

std::string QtestClient::command(std::string_view line) {
  const std::string one(line);
  return std::move(commands(std::span(&one, 1)).front());
}

std::vector<std::string> QtestClient::commands(std::span<const std::string> lines) {
  if (broken_) throw TargetError("qtest connection already failed: " + *broken_, log_excerpt());
  // qtest reads its socket into a buffer and executes whole lines in order (softmmu/qtest.c,
  // qtest_read), so a batch costs one round trip; a FAIL stops at the failing line.
  std::string batch;
  for (const auto& l : lines) {
    remember(l);
    batch += l + "\n";
  }
  send_line(batch);
  std::vector<std::string> replies;
  while (replies.size() < lines.size()) {
    std::string reply = next_line();
    // Asynchronous interrupt notifications (irq_intercept_*): not replies.
    if (reply.starts_with("IRQ")) continue;
    if (reply == "OK")
      replies.emplace_back();
    else if (reply.starts_with("OK "))
      replies.push_back(reply.substr(3));
    else
      fail("answered `" + reply + "`");
  }
  return replies;
}

void QtestClient::send_line(const std::string& line) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(opts_.command_timeout_ms);
  size_t sent = 0;
  while (sent < line.size()) {
    const ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += size_t(n);
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
      fail("closed the qtest connection: it died", true);
    if (n < 0 && errno != EAGAIN && errno != EINTR) fail(std::string("send: ") + strerror(errno));
    pollfd p{fd_, POLLOUT, 0};
    if (poll(&p, 1, remaining_ms(deadline)) == 0)
      fail(fmt::format("did not take a command within {} ms", opts_.command_timeout_ms));
  }
}

std::string QtestClient::next_line() {
  const auto deadline = Clock::now() + std::chrono::milliseconds(opts_.command_timeout_ms);
  for (;;) {
    if (const auto nl = inbox_.find('\n'); nl != std::string::npos) {
      std::string line = inbox_.substr(0, nl);
      inbox_.erase(0, nl + 1);
      return line;
    }
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      inbox_.append(buf, size_t(n));
      continue;
    }
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      fail("closed the qtest connection: it died", true);
    if (errno != EAGAIN && errno != EINTR) fail(std::string("recv: ") + strerror(errno));
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, remaining_ms(deadline)) == 0)
      fail(fmt::format("did not answer within {} ms", opts_.command_timeout_ms));
  }
}

void QtestClient::fail(const std::string& what, bool died) {
  // A QEMU whose socket closed is exiting; give it up to 200 ms so that the report says
  // how it ended (an abort from hw_error, a signal). A silent one is only looked at.
  std::string status;
  for (int i = 0; i < (died ? 20 : 1) && child_.pid > 0 && status.empty(); ++i) {
    if (auto s = conformance::reap_if_exited(child_))
      status = *s;
    else if (died)
      usleep(10000);
  }
  std::string msg = fmt::format("QEMU ({}) {}", program_, what);
  if (!recent_.empty()) msg += " after `" + recent_.back().text + "`";
  if (!status.empty()) msg += " (" + status + ")";
  broken_ = msg;
  throw TargetError(msg, log_excerpt());
}

std::string QtestClient::log_excerpt() const {
  std::string s = "--- last qtest commands ---\n";
  for (const auto& c : recent_)
    s += c.text + (c.times > 1 ? fmt::format(" (x{})\n", c.times) : "\n");
  return s + "--- QEMU stderr (" + program_ + ") ---\n" + head_and_tail(dir_ + "/qemu.log");
}

uint64_t QtestClient::read_value(const char* cmd, uint64_t addr) {
  const std::string reply = command(fmt::format("{} {:#x}", cmd, addr));
  if (const auto v = parse_hex(reply)) return *v;
  fail(fmt::format("answered `OK {}` to {}", reply, cmd));
}

void QtestClient::write_value(const char* cmd, uint64_t addr, uint64_t value) {
  command(fmt::format("{} {:#x} {:#x}", cmd, addr, value));
}

std::vector<uint8_t> QtestClient::read(uint64_t addr, size_t len) {
  if (len == 0) return {};
  const std::string reply = command(fmt::format("read {:#x} {:#x}", addr, len));
  if (auto bytes = from_hex(reply, len)) return std::move(*bytes);
  fail(fmt::format("answered a malformed `read` reply of {} characters", reply.size()));
}

void QtestClient::write(uint64_t addr, std::span<const uint8_t> bytes) {
  if (bytes.empty()) return;
  command(fmt::format("write {:#x} {:#x} 0x{}", addr, bytes.size(), to_hex(bytes)));
}

void QtestClient::memset(uint64_t addr, size_t len, uint8_t value) {
  if (len == 0) return;
  command(fmt::format("memset {:#x} {:#x} {:#x}", addr, len, value));
}

std::string QtestClient::take_trace() {
  if (opts_.trace_events.empty()) return {};
  return conformance::read_new(dir_ + "/trace.log", trace_offset_);
}

std::string QtestClient::shutdown() {
  // Closing the socket alone does not end QEMU (qtest only logs the close), hence SIGTERM.
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  std::string status = conformance::terminate(child_, opts_.grace_ms);
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    dir_.clear();
  }
  return status;
}

} // namespace iommuspec::qemu
