// iommuspec-agent: executes iommufd calls on /dev/iommu for the runner, over the line
// protocol of conformance/protocol/wire.h. Statically linked so that it can be the /init of
// the test kernel's initramfs (kernel-mock); on a real host it serves on stdin/stdout
// (kernel-local). It returns observations; it judges nothing.
//
//   iommuspec-agent --stdio          serve on stdin/stdout
//   iommuspec-agent --tty PATH       serve on a serial line (raw mode)
//   as PID 1 (/init)                 mount /dev, /proc, /sys; serve on /dev/ttyS1; power off
#include "iommufd/ops.h"
#include "iommufd/uapi_structs.h"
#include "protocol/wire.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <string>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/utsname.h>
#include <termios.h>
#include <unistd.h>
#include <vector>

namespace {

using namespace iommuspec;
using iommufd::Call;
using iommufd::Observation;

constexpr uint64_t kAlign = 2ull << 20; // 2 MiB: user memory never straddles a huge page

int io_errno(long ret) {
  return ret < 0 ? errno : 0;
}

// include/uapi/linux/vfio.h: VFIO_DEVICE_BIND_IOMMUFD = _IO(VFIO_TYPE ';', VFIO_BASE 100 + 18)
struct vfio_device_bind_iommufd {
  uint32_t argsz;
  uint32_t flags;
  int32_t iommufd;
  uint32_t out_devid;
};
constexpr unsigned long kVfioDeviceBindIommufd = (';' << 8) | (100 + 18);

class KernelExecutor final : public protocol::Executor {
public:
  KernelExecutor(std::string dev, std::vector<std::string> vfio)
      : dev_(std::move(dev)), vfio_(std::move(vfio)) {
    open_dev();
  }
  ~KernelExecutor() override { close_all(); }

  std::map<std::string, std::string> hello() override {
    utsname u{};
    uname(&u);
    std::map<std::string, std::string> m = {{"name", "iommuspec-agent"},
                                            {"kernel", u.release},
                                            {"machine", u.machine},
                                            {"device", dev_}};
    if (fd_ < 0) {
      m["error"] = "cannot-open-" + dev_;
      return m;
    }
    if (!vfio_.empty()) m["vfio_devices"] = bound_;
    // Which uAPI is there: probe ioctl numbers (ENOTTY when absent) and test ops
    // (EOPNOTSUPP when the selftest lacks them).
    std::string f = "iommufd,vfio-compat";
    const bool test = probe(iommufd::OpId::add_reserved) != ENOTTY;
    if (test) f += ",selftest,nesting,dirty-tracking";
    if (probe(iommufd::OpId::fault_queue_alloc) != ENOTTY) f += ",iopf";
    const bool viommu = probe(iommufd::OpId::viommu_alloc) != ENOTTY;
    if (viommu) f += ",viommu";
    if (probe(iommufd::OpId::veventq_alloc) != ENOTTY) f += ",veventq";
    if (probe(iommufd::OpId::hw_queue_alloc) != ENOTTY) f += ",hw-queue";
    if (test && probe(iommufd::OpId::pasid_detach) != EOPNOTSUPP) f += ",pasid";
    m["features"] = f;
    std::string ioctls;
    for (const auto& d : iommufd::all_ops()) {
      if (d.kind != iommufd::OpKind::ioctl && d.kind != iommufd::OpKind::test_op) continue;
      const int e = probe(d.id);
      if (d.kind == iommufd::OpKind::ioctl ? e != ENOTTY : (test && e != EOPNOTSUPP))
        ioctls += (ioctls.empty() ? "" : ",") + std::string(d.name);
    }
    m["ioctls"] = ioctls;
    const std::string rel = u.release;
    m["profile"] = rel.rfind("6.12.", 0) == 0 || rel == "6.12" ? "linux-6.12"
                   : viommu                                    ? "linux-latest"
                                                               : "unknown";
    return m;
  }

  void reset() override {
    close_all();
    open_dev();
    // SET_TEMP_MEMORY_LIMIT is module-wide: put back the default (selftest.c: 65536).
    if (fd_ >= 0) {
      uapi::iommu_test_cmd c{};
      c.size = sizeof c;
      c.op = 9;
      c.memory_limit.limit = 65536;
      (void)ioctl(fd_, uapi::io_cmd(uapi::IOMMUFD_CMD_BASE + 32), &c);
    }
  }

  std::optional<uint64_t> mem(uint64_t size) override {
    // Reserve size + 2 MiB, keep a 2 MiB aligned window, populate it (small pages).
    void* raw = mmap(nullptr, size + kAlign, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return std::nullopt;
    const uint64_t base = (uint64_t(raw) + kAlign - 1) & ~(kAlign - 1);
    void* p = mmap(reinterpret_cast<void*>(base), size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return std::nullopt;
    (void)madvise(p, size, MADV_NOHUGEPAGE);
    std::memset(p, 0x5a, size);
    maps_.push_back({raw, size + kAlign});
    return base;
  }

  Observation call(const Call& c) override {
    const auto& d = iommufd::op_desc(c.op);
    Observation o;
    o.payload = c.payload;
    switch (d.kind) {
    case iommufd::OpKind::fd_read:
      return fd_read(c, d);
    case iommufd::OpKind::fd_write:
      return fd_write(c);
    case iommufd::OpKind::fd_close: {
      uint32_t fd;
      std::memcpy(&fd, c.arg.data(), 4);
      o.err = errno_from_int(io_errno(::close(int(fd))));
      fds_.erase(int(fd));
      o.arg = c.arg;
      return o;
    }
    default:
      break;
    }
    // The struct the caller passes: user_size bytes, its tail non-zero if asked.
    std::vector<uint8_t> buf(std::max({size_t(c.user_size), size_t(d.size), iommufd::kMaxArg}), 0);
    std::memcpy(buf.data(), c.arg.data(), std::min<size_t>(iommufd::kMaxArg, buf.size()));
    if (c.tail_nonzero)
      for (size_t i = d.size; i < c.user_size; ++i)
        buf[i] = 0xff;
    std::vector<uint8_t> data = c.payload;
    if (data.empty()) data.resize(8, 0);
    for (const auto& f : d.fields)
      if (f.role == iommufd::Role::uptr &&
          iommufd::read_field(buf.data(), f) == iommufd::kPayloadPtr)
        iommufd::write_field(buf.data(), f, uint64_t(data.data()));
    const long ret = ::ioctl(fd_, uapi::io_cmd(d.nr), buf.data());
    o.err = errno_from_int(io_errno(ret));
    for (const auto& f : d.fields)
      if (f.role == iommufd::Role::uptr &&
          iommufd::read_field(buf.data(), f) == uint64_t(data.data()))
        iommufd::write_field(buf.data(), f, iommufd::kPayloadPtr);
    std::memcpy(o.arg.data(), buf.data(), iommufd::kMaxArg);
    o.payload.assign(data.begin(), data.begin() + ptrdiff_t(c.payload.size()));
    if (ret >= 0)
      for (const auto& f : d.fields)
        if (f.role == iommufd::Role::out_fd) fds_.insert(int(iommufd::read_field(buf.data(), f)));
    return o;
  }

private:
  struct Map {
    void* p;
    size_t n;
  };

  // Open /dev/iommu, then bind each VFIO cdev given on the command line to it (the VFIO
  // cdev way: open the device, VFIO_DEVICE_BIND_IOMMUFD); their dev_ids are reported in HELLO.
  void open_dev() {
    fd_ = ::open(dev_.c_str(), O_RDWR | O_CLOEXEC);
    bound_.clear();
    for (const auto& v : vfio_) {
      const int d = ::open(v.c_str(), O_RDWR | O_CLOEXEC);
      vfio_binding b{static_cast<uint32_t>(sizeof b), 0, fd_, 0};
      const bool ok = d >= 0 && fd_ >= 0 && ::ioctl(d, kVfioDeviceBindIommufd, &b) == 0;
      bound_ += (bound_.empty() ? "" : ",") + v + ":" +
                (ok ? std::to_string(b.out_devid) : std::string("error-") + strerror(errno));
      if (d >= 0) vfio_fds_.push_back(d);
    }
  }
  using vfio_binding = vfio_device_bind_iommufd;

  void close_all() {
    for (int f : vfio_fds_)
      ::close(f);
    vfio_fds_.clear();
    for (int f : fds_)
      ::close(f);
    fds_.clear();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    for (const auto& m : maps_)
      munmap(m.p, m.n);
    maps_.clear();
  }

  int probe(iommufd::OpId op) {
    const auto& d = iommufd::op_desc(op);
    std::vector<uint8_t> buf(128, 0);
    const uint32_t size = d.size;
    std::memcpy(buf.data(), &size, 4);
    if (d.kind == iommufd::OpKind::test_op) {
      std::memcpy(buf.data() + 4, &d.test_op, 4);
      const uint32_t bad = 0x7fffffff; // an ID nothing has: fails after the op is known
      std::memcpy(buf.data() + 8, &bad, 4);
    }
    return io_errno(::ioctl(fd_, uapi::io_cmd(d.nr), buf.data()));
  }

  Observation fd_read(const Call& c, const iommufd::OpDesc& d) {
    struct {
      uint32_t fd, count, out_count, pad;
    } a;
    std::memcpy(&a, c.arg.data(), sizeof a);
    const size_t unit = d.id == iommufd::OpId::fault_read ? sizeof(uapi::iommu_hwpt_pgfault) : 1;
    std::vector<uint8_t> buf(std::min<size_t>(size_t(a.count) * unit, protocol::kMaxPayload) + 1);
    const ssize_t n = ::read(int(a.fd), buf.data(), size_t(a.count) * unit);
    Observation o;
    o.err = errno_from_int(io_errno(n));
    if (n >= 0) {
      buf.resize(size_t(n));
      o.payload = buf;
      a.out_count = uint32_t(size_t(n) / unit);
    }
    std::memcpy(o.arg.data(), &a, sizeof a);
    return o;
  }

  Observation fd_write(const Call& c) {
    struct {
      uint32_t fd, count, out_count, pad;
    } a;
    std::memcpy(&a, c.arg.data(), sizeof a);
    constexpr size_t unit = sizeof(uapi::iommu_hwpt_page_response);
    const size_t len = std::min<size_t>(size_t(a.count) * unit, c.payload.size());
    const ssize_t n = ::write(int(a.fd), c.payload.data(), len);
    Observation o;
    o.err = errno_from_int(io_errno(n));
    if (n >= 0) a.out_count = uint32_t(size_t(n) / unit);
    std::memcpy(o.arg.data(), &a, sizeof a);
    return o;
  }

  std::string dev_;
  std::vector<std::string> vfio_;
  std::vector<int> vfio_fds_;
  std::string bound_;
  int fd_ = -1;
  std::set<int> fds_;
  std::vector<Map> maps_;
};

int open_tty(const char* path) {
  const int fd = ::open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return -1;
  termios t{};
  if (tcgetattr(fd, &t) == 0) {
    cfmakeraw(&t);
    cfsetispeed(&t, B115200);
    cfsetospeed(&t, B115200);
    tcsetattr(fd, TCSANOW, &t);
  }
  return fd;
}

int run_as_init() {
  mount("devtmpfs", "/dev", "devtmpfs", 0, nullptr);
  mount("proc", "/proc", "proc", 0, nullptr);
  mount("sysfs", "/sys", "sysfs", 0, nullptr);
  mount("debugfs", "/sys/kernel/debug", "debugfs", 0, nullptr);
  const int con = ::open("/dev/console", O_WRONLY | O_CLOEXEC);
  if (con >= 0) protocol::write_all(con, "iommuspec-agent: serving on /dev/ttyS1\n");
  const int tty = open_tty("/dev/ttyS1");
  int rc = 1;
  if (tty >= 0) {
    KernelExecutor ex("/dev/iommu", {});
    protocol::write_all(tty, "READY iommuspec-agent\n");
    rc = protocol::serve(ex, tty, tty);
  } else if (con >= 0) {
    protocol::write_all(con, "iommuspec-agent: cannot open /dev/ttyS1\n");
  }
  sync();
  reboot(RB_POWER_OFF); // ACPI: QEMU exits
  return rc;
}

} // namespace

int main(int argc, char** argv) {
  if (getpid() == 1) return run_as_init();
  std::string dev = "/dev/iommu";
  std::vector<std::string> vfio;
  const char* tty = nullptr;
  bool stdio = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--stdio")
      stdio = true;
    else if (a == "--tty" && i + 1 < argc)
      tty = argv[++i];
    else if (a == "--device" && i + 1 < argc)
      dev = argv[++i];
    else if (a == "--vfio" && i + 1 < argc)
      vfio.push_back(argv[++i]);
    else {
      const std::string usage = "usage: iommuspec-agent --stdio | --tty PATH [--device /dev/iommu] "
                                "[--vfio /dev/vfio/devices/vfioN]...\n";
      protocol::write_all(2, usage);
      return 2;
    }
  }
  KernelExecutor ex(dev, vfio);
  if (stdio) return protocol::serve(ex, 0, 1);
  if (tty) {
    const int fd = open_tty(tty);
    if (fd < 0) {
      protocol::write_all(2, std::string("cannot open ") + tty + ": " + strerror(errno) + "\n");
      return 2;
    }
    return protocol::serve(ex, fd, fd);
  }
  protocol::write_all(2, "iommuspec-agent: give --stdio or --tty PATH\n");
  return 2;
}
