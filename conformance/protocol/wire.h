// The line protocol between the runner and anything that executes calls: the in-guest
// agent (kernel-mock), the agent on a real host (kernel-local), and external programs
// (external; `iommuspec serve-model` is the model behind it). Version 1.
//
//   runner -> target                          target -> runner
//   HELLO 1                                   OK name=<n> kernel=<release> ...   (key=value)
//   RESET                                     OK
//   MEM <size>                                OK <address>          (decimal)
//   CALL <op> <user_size> <tail> <arg> <data> RET <errno> <arg> <data>
//   BYE                                       OK
//   (anything else)                           ERR <message>
//
// <op> is an operation name of the model's table (ioas_map, mock_domain, fault_read...),
// <tail> is 0 or 1 (non-zero bytes past the kernel's struct), <arg> the struct bytes in
// hex (at most 96 bytes), <data> the bytes behind the user pointer in hex or "-" for none.
// uptr fields equal to 0x1ffffff000 mean "this call's data". Lines end with '\n' and are
// at most kMaxLine bytes; a target never trusts what it reads.
#pragma once

#include "iommufd/call.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace iommuspec::protocol {

constexpr int kVersion = 1;
constexpr size_t kMaxLine = 4u << 20;    // 4 MiB of text
constexpr size_t kMaxPayload = 1u << 20; // 1 MiB of data behind a pointer

std::string hex(const uint8_t* p, size_t n);
std::optional<std::vector<uint8_t>> unhex(std::string_view s, size_t max);

std::string encode_call(const iommufd::Call& c);
std::string encode_ret(const iommufd::Observation& o, size_t arg_len);

// Parse "CALL ..." (without the verb). On failure, `error` says why.
std::optional<iommufd::Call> decode_call(std::string_view rest, std::string& error);
// Parse "RET ..." (without the verb).
std::optional<iommufd::Observation> decode_ret(std::string_view rest, std::string& error);

std::vector<std::string_view> split(std::string_view s);
std::map<std::string, std::string> parse_kv(std::string_view rest);

// What executes calls on the target side of the protocol.
class Executor {
public:
  virtual ~Executor() = default;
  virtual std::map<std::string, std::string> hello() = 0;
  virtual void reset() = 0;
  virtual std::optional<uint64_t> mem(uint64_t size) = 0;
  virtual iommufd::Observation call(const iommufd::Call& c) = 0;
};

// Serve requests from in_fd, answering on out_fd, until BYE or end of input. Returns 0 on
// BYE or EOF, 1 on an I/O error.
int serve(Executor& ex, int in_fd, int out_fd);

// Buffered line reading from a file descriptor with a timeout (milliseconds; <0: none).
class LineReader {
public:
  explicit LineReader(int fd) : fd_(fd) {}
  enum class Status { ok, eof, timeout, too_long, error };
  Status read_line(std::string& line, int timeout_ms);

private:
  int fd_;
  std::string buf_;
  bool discarding_ = false; // inside an overlong line, until its newline
};

bool write_all(int fd, std::string_view s);

} // namespace iommuspec::protocol
