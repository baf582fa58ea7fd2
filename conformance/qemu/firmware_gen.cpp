// Writes the firmware stubs that QEMU boots with `-bios` while qtest drives the machine:
// the CPU only has to idle, so no cross toolchain is needed and the bytes are written here
// with their encodings explained. Run by CMake: firmware_gen OUTPUT_DIR
#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

// AArch64 (Arm ARM, A64 encodings; instructions are 32-bit little-endian words). The
// virt machine maps -bios at the flash at address 0 and the CPU starts there at EL1.
//   0x0: wfi    HINT #3, class "hint": 0xD503201F | (CRm:op2 = 0b0000:011) << 5 = 0xD503207F
//   0x4: b .    B imm26 = 0 (branch to itself): 0b000101 << 26 = 0x14000000
// A WFI woken by an interrupt falls through to the branch and spins (never happens: no
// interrupt is enabled); icount still sees the CPU idle in WFI.
std::vector<uint8_t> aarch64_idle() {
  std::vector<uint8_t> bytes;
  for (const uint32_t insn : {0xD503207Fu, 0x14000000u})
    for (int i = 0; i < 4; ++i)
      bytes.push_back(uint8_t(insn >> (8 * i)));
  return bytes;
}

// x86 (Intel SDM vol. 2): the CPU resets in real mode at CS:IP = F000:FFF0, physical
// 0xFFFFFFF0, the last 16 bytes of the BIOS image, which QEMU maps to end at 4 GiB (and
// up to its last 128 KiB again just below 1 MiB); the image must be a multiple of 64 KiB
// (hw/i386/x86.c, x86_bios_rom_init), so 64 KiB, the rest filled with hlt (0xF4).
//   0xFFF0: cli        0xFA    (no maskable interrupt wakes the hlt)
//   0xFFF1: hlt        0xF4
//   0xFFF2: jmp short  0xEB 0xFD (rel8 = -3: from 0xFFF4 back to the hlt at 0xFFF1, in
//                       case an NMI or SMI resumes the CPU)
std::vector<uint8_t> x86_idle() {
  std::vector<uint8_t> image(64 * 1024, 0xF4);
  const std::array<uint8_t, 4> reset = {0xFA, 0xF4, 0xEB, 0xFD};
  for (size_t i = 0; i < reset.size(); ++i)
    image[0xFFF0 + i] = reset[i];
  return image;
}

bool write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return bool(f);
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  if (!write_file(dir + "/aarch64-idle.bin", aarch64_idle()) ||
      !write_file(dir + "/x86_64-idle.bin", x86_idle())) {
    std::fprintf(stderr, "%s: cannot write to %s\n", argv[0], dir.c_str());
    return 1;
  }
  return 0;
}
