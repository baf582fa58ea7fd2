#include "targets/process.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace iommuspec::conformance {

Child spawn(const std::vector<std::string>& argv, bool pipes, const std::string& log_path) {
  int in[2] = {-1, -1}, out[2] = {-1, -1};
  if (pipes && (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0))
    throw std::runtime_error(std::string("pipe: ") + strerror(errno));
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) throw std::runtime_error("cannot write " + log_path);
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_RDWR);
    dup2(pipes ? in[0] : devnull, 0);
    dup2(pipes ? out[1] : log, 1);
    dup2(log, 2);
    setpgid(0, 0);
    execvp(args[0], args.data());
    dprintf(2, "cannot run %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  ::close(log);
  Child c;
  c.pid = pid;
  if (pipes) {
    ::close(in[0]);
    ::close(out[1]);
    c.to_child = in[1];
    c.from_child = out[0];
  }
  return c;
}

namespace {

std::string status_text(int st) {
  if (WIFEXITED(st)) return "exited " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("killed by ") + strsignal(WTERMSIG(st));
  return "stopped";
}

} // namespace

std::string stop(Child& c, int timeout_ms) {
  if (c.to_child >= 0) ::close(c.to_child);
  c.to_child = -1;
  std::string what = "running";
  if (c.pid > 0) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    int st = 0;
    pid_t r = 0;
    while ((r = waitpid(c.pid, &st, WNOHANG)) == 0 && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (r == 0) {
      kill(-c.pid, SIGKILL);
      kill(c.pid, SIGKILL);
      waitpid(c.pid, &st, 0);
      what = "killed";
    } else {
      what = status_text(st);
    }
  } else {
    what = "reaped";
  }
  if (c.from_child >= 0) ::close(c.from_child);
  c = {};
  return what;
}

std::string terminate(Child& c, int grace_ms) {
  if (c.pid > 0) {
    kill(-c.pid, SIGTERM);
    kill(c.pid, SIGTERM);
  }
  return stop(c, grace_ms);
}

std::optional<std::string> reap_if_exited(Child& c) {
  if (c.pid <= 0) return std::nullopt;
  int st = 0;
  if (waitpid(c.pid, &st, WNOHANG) != c.pid) return std::nullopt;
  c.pid = -1;
  return status_text(st);
}

std::string tail_of(const std::string& path, size_t max_bytes) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return {};
  const auto size = static_cast<size_t>(f.tellg());
  const size_t start = size > max_bytes ? size - max_bytes : 0;
  f.seekg(std::streamoff(start));
  std::string s(size - start, '\0');
  f.read(s.data(), std::streamsize(s.size()));
  return s;
}

std::string read_new(const std::string& path, size_t& offset) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {};
  f.seekg(std::streamoff(offset));
  std::string fresh((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  offset += fresh.size();
  return fresh;
}

int listen_unix(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) throw std::runtime_error("socket path too long: " + path);
  std::strcpy(a.sun_path, path.c_str());
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(s, 1) != 0) {
    const std::string err = strerror(errno);
    if (s >= 0) ::close(s);
    throw std::runtime_error("cannot listen on " + path + ": " + err);
  }
  return s;
}

std::string make_temp_dir(const std::string& prefix) {
  const char* t = std::getenv("TMPDIR");
  std::string tmpl = std::string(t ? t : "/tmp") + "/" + prefix + "XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp: " + std::string(strerror(errno)));
  return tmpl;
}

} // namespace iommuspec::conformance
