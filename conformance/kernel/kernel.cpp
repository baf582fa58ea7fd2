#include "kernel/kernel.h"

#include "targets/process.h"
#include "targets/protocol_target.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <poll.h>
#include <sstream>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace fs = std::filesystem;

namespace iommuspec::kernel {
namespace {

constexpr const char* kTarball = "/usr/src/linux-source-6.12.tar.xz";
constexpr const char* kRecipe = "tinyconfig+iommufd-test v1";

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string capture(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, p))
      out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Run a shell command with its output in `log`; report progress as the log grows.
void run_logged(const std::string& cmd, const std::string& log, const std::string& what,
                const std::function<void(const std::string&)>& progress) {
  auto child = conformance::spawn({"bash", "-c", cmd}, false, log);
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  while (waitpid(child.pid, &status, WNOHANG) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    size_t lines = 0;
    std::ifstream f(log);
    for (std::string l; std::getline(f, l);)
      ++lines;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    progress(fmt::format("{}: {:.0f}s, {} lines of output", what, s, lines));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(
        fmt::format("{} failed (see {}):\n{}", what, log, conformance::tail_of(log, 3000)));
}

std::string package_version() {
  return capture("dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null");
}

std::string build_key(const std::string& version) {
  std::string s = std::string(kRecipe) + "\n" + version + "\n";
  for (const auto& o : config_options())
    s += o + "\n";
  return fmt::format("{:016x}", fnv1a(s));
}

void write_file_atomically(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << data;
    if (!f) throw std::runtime_error("cannot write " + tmp);
  }
  fs::rename(tmp, path);
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The newc cpio format (the kernel's initramfs format, usr/gen_init_cpio.c).
void cpio_entry(std::string& out, const std::string& name, uint32_t mode, const std::string& data,
                uint32_t ino) {
  out += fmt::format("070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}"
                     "{:08x}{:08x}",
                     ino, mode, 0, 0, 1, 0, data.size(), 0, 0, 0, 0, name.size() + 1, 0);
  out += name;
  out += '\0';
  while (out.size() % 4)
    out += '\0';
  out += data;
  while (out.size() % 4)
    out += '\0';
}

} // namespace

const std::vector<std::string>& config_options() {
  // ../shared/notes/PLATFORM.md: tinyconfig plus these; PCI, ACPI and INTEL_IOMMU(_SVM)
  // bring the hidden IOMMU_IOPF=y that fault-capable nested HWPTs need, and ACPI makes
  // the agent's power-off end QEMU.
  static const std::vector<std::string> o = {"64BIT",
                                             "PRINTK",
                                             "EARLY_PRINTK",
                                             "TTY",
                                             "SERIAL_8250",
                                             "SERIAL_8250_CONSOLE",
                                             "BLK_DEV_INITRD",
                                             "RD_GZIP",
                                             "BINFMT_ELF",
                                             "BINFMT_SCRIPT",
                                             "DEVTMPFS",
                                             "DEVTMPFS_MOUNT",
                                             "PROC_FS",
                                             "SYSFS",
                                             "SYSCTL",
                                             "PROC_SYSCTL",
                                             "DEBUG_FS",
                                             "DEBUG_FS_ALLOW_ALL",
                                             "FUTEX",
                                             "POSIX_TIMERS",
                                             "MULTIUSER",
                                             "SHMEM",
                                             "HUGETLBFS",
                                             "HUGETLB_PAGE",
                                             "TRANSPARENT_HUGEPAGE",
                                             "FILE_LOCKING",
                                             "EPOLL",
                                             "SIGNALFD",
                                             "TIMERFD",
                                             "EVENTFD",
                                             "AIO",
                                             "DEBUG_KERNEL",
                                             "FAULT_INJECTION",
                                             "FAILSLAB",
                                             "FAIL_PAGE_ALLOC",
                                             "FAULT_INJECTION_DEBUG_FS",
                                             "RUNTIME_TESTING_MENU",
                                             "IOMMU_SUPPORT",
                                             "IOMMUFD",
                                             "IOMMUFD_TEST",
                                             "PCI",
                                             "PCI_MSI",
                                             "ACPI",
                                             "INTEL_IOMMU",
                                             "INTEL_IOMMU_SVM"};
  return o;
}

std::string cache_root() {
  if (const char* e = std::getenv("IOMMUSPEC_CACHE")) return e;
  if (const char* x = std::getenv("XDG_CACHE_HOME")) return std::string(x) + "/iommuspec";
  const char* h = std::getenv("HOME");
  return std::string(h ? h : "/tmp") + "/.cache/iommuspec";
}

std::optional<Build> cached() {
  const std::string v = package_version();
  if (v.empty() || !fs::exists(kTarball)) return std::nullopt;
  Build b;
  b.version = v;
  b.key = build_key(v);
  b.dir = cache_root() + "/kernel-" + b.key;
  b.bzimage = b.dir + "/bzImage";
  b.cached = true;
  if (!fs::exists(b.bzimage)) return std::nullopt;
  return b;
}

// An exclusive lock on the cache for as long as it lives: two builds (two runs, two CI
// jobs) never write the same tree; the second finds the first's kernel.
class CacheLock {
public:
  explicit CacheLock(const std::string& root) {
    fs::create_directories(root);
    fd_ = ::open((root + "/build.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0) flock(fd_, LOCK_EX);
  }
  ~CacheLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  CacheLock(const CacheLock&) = delete;
  CacheLock& operator=(const CacheLock&) = delete;

private:
  int fd_ = -1;
};

Build build(const std::function<void(const std::string&)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  if (auto c = cached()) {
    progress(fmt::format("test kernel {} is cached: {}", c->key, c->bzimage));
    return *c;
  }
  CacheLock lock(cache_root());
  if (auto c = cached()) { // built by someone else while we waited
    progress(fmt::format("test kernel {} is cached: {}", c->key, c->bzimage));
    return *c;
  }
  if (!fs::exists(kTarball) || package_version().empty()) {
    if (geteuid() != 0)
      throw std::runtime_error(
          "Debian's linux-source-6.12 is not installed; as root run: "
          "apt-get install -y linux-source-6.12 make xz-utils bc flex bison libelf-dev");
    const std::string dir = cache_root();
    fs::create_directories(dir);
    run_logged("DEBIAN_FRONTEND=noninteractive apt-get install -y linux-source-6.12 make xz-utils "
               "bc flex bison "
               "libelf-dev",
               dir + "/apt.log", "installing linux-source-6.12", progress);
  }
  Build b;
  b.version = package_version();
  b.key = build_key(b.version);
  b.dir = cache_root() + "/kernel-" + b.key;
  b.bzimage = b.dir + "/bzImage";
  const std::string work = b.dir + "/src";
  fs::remove_all(work);
  fs::create_directories(work);
  run_logged("tar -xf " + quote(kTarball) + " -C " + quote(work) + " --strip-components=1",
             b.dir + "/extract.log", "unpacking linux-source-6.12", progress);
  std::string enable;
  for (const auto& o : config_options())
    enable += " --enable " + o;
  run_logged("cd " + quote(work) + " && make tinyconfig && scripts/config" + enable +
                 " && make olddefconfig",
             b.dir + "/config.log", "configuring", progress);
  const std::string config = slurp(work + "/.config");
  for (const char* need : {"CONFIG_IOMMUFD_TEST=y", "CONFIG_IOMMU_IOPF=y", "CONFIG_ACPI=y"})
    if (config.find(need) == std::string::npos)
      throw std::runtime_error(
          fmt::format("the kernel config lost {} (see {}/src/.config)", need, b.dir));
  const unsigned jobs = std::max(1u, std::thread::hardware_concurrency());
  run_logged(fmt::format("cd {} && make -j{} bzImage", quote(work), jobs), b.dir + "/build.log",
             "building bzImage", progress);
  write_file_atomically(b.dir + "/config", config);
  write_file_atomically(b.bzimage, slurp(work + "/arch/x86/boot/bzImage"));
  fs::remove_all(work); // the cache keeps the bzImage and its config, not the tree
  b.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress(fmt::format("built {} in {:.0f}s", b.bzimage, b.seconds));
  return b;
}

std::string initramfs(const std::string& agent_path) {
  const std::string agent = slurp(agent_path);
  if (agent.empty()) throw std::runtime_error("cannot read the agent " + agent_path);
  const std::string dir = cache_root() + "/initramfs";
  fs::create_directories(dir);
  const std::string path = fmt::format("{}/agent-{:016x}.cpio", dir, fnv1a(agent));
  if (fs::exists(path)) return path;
  std::string cpio;
  uint32_t ino = 1;
  for (const char* d : {"dev", "proc", "sys", "tmp"})
    cpio_entry(cpio, d, 040755, "", ino++);
  cpio_entry(cpio, "init", 0100755, agent, ino++);
  cpio_entry(cpio, "TRAILER!!!", 0, "", 0);
  write_file_atomically(path, cpio);
  return path;
}

namespace {

// Kernel messages that make a step an error: the kernel is no longer trustworthy.
std::string new_kernel_trouble(const std::string& console, size_t& offset) {
  return trouble_in(conformance::read_new(console, offset));
}

} // namespace

std::string trouble_in(std::string_view text) {
  for (const char* pat : {"WARNING:", "BUG:", "Oops", "Kernel panic",
                          "UBSAN:", "KASAN:", "refcount_t:", "general protection fault"}) {
    const auto at = text.find(pat);
    if (at != std::string_view::npos) {
      const auto start = text.rfind('\n', at);
      auto line = text.substr(start == std::string_view::npos ? 0 : start + 1, 200);
      line = line.substr(0, line.find('\n'));
      return "kernel reported: " + std::string(line);
    }
  }
  return {};
}

std::unique_ptr<conformance::Target> make_kernel_mock_target(const std::string& agent_path) {
  auto b = cached();
  if (!b) {
    b = build([](const std::string& s) { std::fprintf(stderr, "\r\033[K%s", s.c_str()); });
    std::fprintf(stderr, "\n");
  }
  const std::string initrd = initramfs(agent_path);
  const std::string dir = conformance::make_temp_dir("iommuspec-kernel-");
  const std::string sock = dir + "/agent.sock", console = dir + "/console.log";
  const int listener = conformance::listen_unix(sock);
  auto qemu =
      std::make_shared<conformance::Child>(conformance::spawn({"qemu-system-x86_64",
                                                               "-accel",
                                                               "tcg",
                                                               "-m",
                                                               "1G",
                                                               "-smp",
                                                               "1",
                                                               "-nodefaults",
                                                               "-no-reboot",
                                                               "-display",
                                                               "none",
                                                               "-kernel",
                                                               b->bzimage,
                                                               "-initrd",
                                                               initrd,
                                                               "-append",
                                                               "console=ttyS0 panic=-1 loglevel=5",
                                                               "-serial",
                                                               "file:" + console,
                                                               "-chardev",
                                                               "socket,id=agent,path=" + sock,
                                                               "-serial",
                                                               "chardev:agent"},
                                                              false, dir + "/qemu.log"));
  pollfd p{listener, POLLIN, 0};
  const int ready = poll(&p, 1, 20000);
  const int conn = ready > 0 ? accept4(listener, nullptr, nullptr, SOCK_CLOEXEC) : -1;
  ::close(listener);
  auto log = [dir, console] {
    return "--- console ---\n" + conformance::tail_of(console, 3000) + "--- qemu ---\n" +
           conformance::tail_of(dir + "/qemu.log", 1000);
  };
  if (conn < 0) {
    conformance::stop(*qemu, 100);
    throw conformance::TargetError("kernel-mock: QEMU did not connect to the agent socket", log());
  }
  conformance::Peer peer;
  peer.to = peer.from = conn;
  peer.log = log;
  peer.ready_prefix = "READY";
  auto offset = std::make_shared<size_t>(0);
  peer.after_step = [console, offset] { return new_kernel_trouble(console, *offset); };
  peer.close = [qemu, conn, dir] {
    conformance::stop(*qemu, 5000);
    ::close(conn);
    std::error_code ec;
    fs::remove_all(dir, ec);
  };
  auto t = conformance::make_protocol_target("kernel-mock", std::move(peer));
  return t;
}

} // namespace iommuspec::kernel
