// A client of QEMU's qtest protocol (QEMU softmmu/qtest.c): QEMU runs with
// `-qtest unix:PATH` and connects to a socket this client listens on (as libqtest does),
// then answers one line per command ("OK ..." or "FAIL ..."), possibly interleaved with
// asynchronous "IRQ ..." lines. Reads and writes go to the machine's physical address space
// (address_space_memory) and I/O ports, never through an IOMMU.
//
// Every failure (QEMU missing, dead, silent, or answering FAIL) becomes a TargetError
// carrying the last commands sent and the tail of QEMU's stderr, so that a scenario turns
// into `error` and the run goes on with a fresh machine.
#pragma once

#include "runner/target_error.h"
#include "targets/process.h"

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace iommuspec::qemu {

using conformance::TargetError;

struct QtestOptions {
  int connect_timeout_ms = 10000; // spawn to connection (measured 20-50 ms when idle)
  int command_timeout_ms = 5000;  // one command to its reply (measured 10-30 us)
  int grace_ms = 1000;            // SIGTERM to SIGKILL at shutdown
  // QEMU trace events to enable (`-trace NAME`, patterns allowed), logged by QEMU's "log"
  // trace backend to a file in the client's directory; read them with take_trace().
  std::vector<std::string> trace_events;
};

class QtestClient {
public:
  // Spawns `argv` (a QEMU command line without -qtest options) in a private temporary
  // directory and waits for its connection. Throws TargetError.
  explicit QtestClient(std::vector<std::string> argv, QtestOptions opts = {});
  ~QtestClient();
  QtestClient(const QtestClient&) = delete;
  QtestClient& operator=(const QtestClient&) = delete;

  uint8_t readb(uint64_t addr) { return uint8_t(read_value("readb", addr)); }
  uint16_t readw(uint64_t addr) { return uint16_t(read_value("readw", addr)); }
  uint32_t readl(uint64_t addr) { return uint32_t(read_value("readl", addr)); }
  uint64_t readq(uint64_t addr) { return read_value("readq", addr); }
  void writeb(uint64_t addr, uint8_t v) { write_value("writeb", addr, v); }
  void writew(uint64_t addr, uint16_t v) { write_value("writew", addr, v); }
  void writel(uint64_t addr, uint32_t v) { write_value("writel", addr, v); }
  void writeq(uint64_t addr, uint64_t v) { write_value("writeq", addr, v); }
  // Bulk access, hex-encoded on the wire (qtest `read` / `write` / `memset`).
  std::vector<uint8_t> read(uint64_t addr, size_t len);
  void write(uint64_t addr, std::span<const uint8_t> bytes);
  void memset(uint64_t addr, size_t len, uint8_t value);
  // I/O ports (x86).
  uint8_t inb(uint16_t port) { return uint8_t(read_value("inb", port)); }
  uint16_t inw(uint16_t port) { return uint16_t(read_value("inw", port)); }
  uint32_t inl(uint16_t port) { return uint32_t(read_value("inl", port)); }
  void outb(uint16_t port, uint8_t v) { write_value("outb", port, v); }
  void outw(uint16_t port, uint16_t v) { write_value("outw", port, v); }
  void outl(uint16_t port, uint32_t v) { write_value("outl", port, v); }

  // One raw command line; returns the reply after "OK" (without the leading space).
  std::string command(std::string_view line);
  // Several, sent at once and answered in order: one round trip (a FAIL ends the batch
  // with a TargetError, the client failed as after any error).
  std::vector<std::string> commands(std::span<const std::string> lines);

  void set_command_timeout(int ms) { opts_.command_timeout_ms = ms; }
  // Trace lines written since the last call (empty without QtestOptions::trace_events).
  std::string take_trace();
  // What a TargetError would carry now: the last commands and QEMU's stderr tail.
  std::string log_excerpt() const;
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return child_.pid; }
  // Closes the connection, stops QEMU (SIGTERM, SIGKILL after the grace period), reaps it
  // and removes the directory. Idempotent; the destructor calls it. Returns QEMU's status.
  std::string shutdown();

private:
  uint64_t read_value(const char* cmd, uint64_t addr);
  void write_value(const char* cmd, uint64_t addr, uint64_t value);
  void send_line(const std::string& line);
  std::string next_line();
  [[noreturn]] void fail(const std::string& what, bool died = false);
  void accept_connection(int listener);
  void handshake();
  void remember(const std::string& cmd);

  QtestOptions opts_;
  std::string program_;
  std::string dir_;
  conformance::Child child_;
  int fd_ = -1;
  std::string inbox_; // received bytes not yet consumed as lines
  struct Sent {
    std::string text;
    int times = 1;
  };
  std::deque<Sent> recent_; // last commands sent, for error reports
  std::optional<std::string> broken_;
  size_t trace_offset_ = 0;
};

// "0x" followed by hex digits -> value; nothing when malformed.
std::optional<uint64_t> parse_hex(std::string_view s);

} // namespace iommuspec::qemu
