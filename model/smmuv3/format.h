// The ARM SMMUv3 format layer: bit-exact encoders and decoders of the in-memory structures
// (STE, CD, L1 descriptors, commands, event records), the VMSAv8-64 translation table
// descriptors, and the register fields used for capability discovery. Value types only:
// no translation walk, no caches, no I/O, no state.
//
// Sources (every field below cites one of them; see README.md):
//   [L]  linux-source-6.12 drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h, "L:<line>".
//   [Lu] the newest upstream arm-smmu-v3.h (gregkh/linux d2cb798d2d8c), macro names only;
//        used for fields 6.12 lacks (CFG_NESTED, MEV, S2FWB, EVT_ID_*, FETCH_ADDR, IDR3_FWB).
//   [Q]  QEMU hw/arm/smmuv3-internal.h, master as of 2025-11 (the lines the RFC v4 "Extract
//        common definitions to smmuv3-common.h" moves), macro names. [Q-rfc] is that RFC's
//        include/hw/arm/smmuv3-common.h; [Q-old] is smmuv3-internal.h at f22833602095.
//   [QI] QEMU hw/arm/smmu-internal.h (6f8a81fc2965), descriptor and level macros.
//   [P]  linux-source-6.12 drivers/iommu/io-pgtable-arm.c, "P:<line>".
//   [H]  linux-source-6.12 arch/arm64/include/asm/pgtable-hwdef.h, "H:<line>".
//   [K]  linux-source-6.12 arch/arm64/include/asm/kvm_pgtable.h, "K:<line>".
// Bit positions are written DWn[hi:lo]: bit lo..hi of the n-th little-endian 64-bit word.
//
// Conventions. Multi-bit fields are held right-aligned in the narrowest unsigned type; encode
// keeps only the field's width. Address fields (S1ContextPtr, S2TTB, TTB0, ...) are held as
// the address itself (low bits zero), and encode keeps only the bits the field covers. Bits
// no source defines are reserved: encode writes them as zero and decode drops them, so
// encode(decode(w)) == w exactly when w's reserved bits are zero (see *_field_mask()).
//
// Where the sources disagree, the field comment says so and which one the model follows.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <variant>

namespace iommuspec::smmuv3 {

using Ste8 = std::array<uint64_t, 8>; // STRTAB_STE_DWORDS, L:212
using Cd8 = std::array<uint64_t, 8>;  // CTXDESC_CD_DWORDS, L:307
using Cmd2 = std::array<uint64_t, 2>; // CMDQ_ENT_DWORDS, L:365
using Evt4 = std::array<uint64_t, 4>; // EVTQ_ENT_DWORDS, L:435

// ---------------------------------------------------------------------------------------
// Stream Table Entry.

// STE.Config, DW0[3:1] (L:239 STRTAB_STE_0_CFG). Values 1..3 are not named by Linux; QEMU
// treats every value without bit 2 as abort (Q STE_CFG_ABORT) and decode keeps them as is.
enum class StreamConfig : uint8_t {
  abort = 0,    // L:240
  bypass = 4,   // L:241
  s1_trans = 5, // L:242
  s2_trans = 6, // L:243
  nested = 7,   // Lu STRTAB_STE_0_CFG_NESTED (absent from 6.12)
};

struct Ste {
  // DW0
  bool v = false;                            // DW0[0]      L:238 STRTAB_STE_0_V
  StreamConfig config = StreamConfig::abort; // DW0[3:1]    L:239
  uint8_t s1_fmt = 0;                        // DW0[5:4]    L:245 (0 linear, 2 64K_L2)
  uint64_t s1_context_ptr = 0;               // DW0[51:6]   L:248 STRTAB_STE_0_S1CTXPTR_MASK
                                             //   Q STE_CTXPTR reads only [47:6]; model: L.
  uint8_t s1_cd_max = 0;                     // DW0[63:59]  L:249
  // DW1
  uint8_t s1_dss = 0;     // DW1[1:0]    L:251 (0 term, 1 bypass, 2 ssid0)
  uint8_t s1_cir = 0;     // DW1[3:2]    L:260 (0 NC 1 WBRA 2 WT 3 WB)
  uint8_t s1_cor = 0;     // DW1[5:4]    L:261
  uint8_t s1_csh = 0;     // DW1[7:6]    L:262
  bool mev = false;       // DW1[19]     Lu STRTAB_STE_1_MEV
  bool s2_fwb = false;    // DW1[25]     Lu STRTAB_STE_1_S2FWB
  bool s1_stalld = false; // DW1[27]     L:264; Q STE_2.S1STALLD
  uint8_t eats = 0;       // DW1[29:28]  L:266 (0 abt, 1 trans, 2 s1chk)
  uint8_t strw = 0;       // DW1[31:30]  L:271 (0 NS-EL1, 2 EL2)
  uint8_t shcfg = 0;      // DW1[45:44]  L:275 (1 incoming)
  // DW2 (STRTAB_STE_2_VTCR = DW2[50:32], L:279; sub-fields relative to bit 32)
  uint16_t s2_vmid = 0; // DW2[15:0]   L:278
  uint8_t s2_t0sz = 0;  // DW2[37:32]  L:280
  uint8_t s2_sl0 = 0;   // DW2[39:38]  L:281
  uint8_t s2_ir0 = 0;   // DW2[41:40]  L:282
  uint8_t s2_or0 = 0;   // DW2[43:42]  L:283
  uint8_t s2_sh0 = 0;   // DW2[45:44]  L:284
  uint8_t s2_tg = 0;    // DW2[47:46]  L:285 (0 4K, 1 64K, 2 16K)
  uint8_t s2_ps = 0;    // DW2[50:48]  L:286 (IDR5.OAS encoding)
  bool s2_aa64 = false; // DW2[51]     L:287
  bool s2_endi = false; // DW2[52]     L:288
  bool s2_affd = false; // DW2[53]     Q STE_S2AFFD (word[5] bit 21)
  bool s2_ptw = false;  // DW2[54]     L:289
  bool s2_hd = false;   // DW2[55]     Q STE_S2HD (word[5] bit 23)
  bool s2_ha = false;   // DW2[56]     Q STE_S2HA (word[5] bit 24)
  bool s2_s = false;    // DW2[57]     L:290; Q STE_S2S (word[5] bit 25)
  bool s2_r = false;    // DW2[58]     L:291; Q STE_S2R (word[5] bit 26)
  // DW3
  uint64_t s2_ttb = 0; // DW3[51:4]   L:293 STRTAB_STE_3_S2TTB_MASK
                       //   Q STE_S2TTB reads only [47:4]; model: L.
  friend bool operator==(const Ste&, const Ste&) = default;
};
// Not modelled: STE.NSCFG. [Q-rfc] FIELD(STE_2, NSCFG, 14, 2) puts it at DW1[15:14], a
// position no other source here names; with no second source, those bits stay reserved.
// [Q-old] had S2HD/S2HA/S2S at DW2[56]/[57]/[58], which contradicts L (S2S at 57, S2R at
// 58); QEMU master follows Linux, and so does this model.

Ste8 encode(const Ste& s);
Ste decode_ste(const Ste8& w);
Ste8 ste_field_mask();

// Level-1 stream table descriptor (two-level stream table).
struct StrtabL1Desc {
  uint8_t span = 0;    // DW0[4:0]   L:209 STRTAB_L1_DESC_SPAN
  uint64_t l2_ptr = 0; // DW0[51:6]  L:210 STRTAB_L1_DESC_L2PTR_MASK
                       //   Q l1std_l2ptr keeps all of [63:5]; model: L.
  friend bool operator==(const StrtabL1Desc&, const StrtabL1Desc&) = default;
};
uint64_t encode(const StrtabL1Desc& d);
StrtabL1Desc decode_strtab_l1(uint64_t w);
uint64_t strtab_l1_field_mask();

// ---------------------------------------------------------------------------------------
// Context Descriptor.

struct Cd {
  // DW0
  uint8_t t0sz = 0;  // DW0[5:0]    L:331 CTXDESC_CD_0_TCR_T0SZ
  uint8_t tg0 = 0;   // DW0[7:6]    L:332 (0 4K, 1 64K, 2 16K; Q tg2granule)
  uint8_t ir0 = 0;   // DW0[9:8]    L:333 TCR_IRGN0
  uint8_t or0 = 0;   // DW0[11:10]  L:334 TCR_ORGN0
  uint8_t sh0 = 0;   // DW0[13:12]  L:335
  bool epd0 = false; // DW0[14]     L:336
  bool endi = false; // DW0[15]     L:339
  uint8_t t1sz = 0;  // DW0[21:16]  Q CD_0.TSZ1 (CD_TSZ(x, 1))
  uint8_t tg1 = 0;   // DW0[23:22]  Q CD_0.TG1 (1 16K, 2 4K, 3 64K; Q tg2granule)
  bool epd1 = false; // DW0[30]     L:337; Q CD_0.EPD1
  bool v = false;    // DW0[31]     L:340; Q CD_VALID
  uint8_t ips = 0;   // DW0[34:32]  L:342
  bool affd = false; // DW0[35]     Q CD_AFFD (word[1] bit 3)
  bool tbi0 = false; // DW0[38]     L:343 TCR_TBI0; Q CD_TBI bit 0
  bool tbi1 = false; // DW0[39]     Q CD_TBI bit 1 ([QI] TBI1() masks with (0x2 >> 1), a
                     //             precedence slip that reads TBI0; the field is still bit 39)
  bool aa64 = false; // DW0[41]     L:348; Q CD_AARCH64
  bool hd = false;   // DW0[42]     L:346
  bool ha = false;   // DW0[43]     L:345
  bool s = false;    // DW0[44]     L:349
  bool r = false;    // DW0[45]     L:350
  bool a = false;    // DW0[46]     L:351
  bool aset = false; // DW0[47]     L:352
  uint16_t asid = 0; // DW0[63:48]  L:353
  // DW1
  bool nscfg0 = false; // DW1[0]     [Q-rfc] CD_2.NSCFG0
  bool had0 = false;   // DW1[1]     Q CD_HAD(x, 0)
  uint64_t ttb0 = 0;   // DW1[51:4]  L:355 CTXDESC_CD_1_TTB0_MASK
                       //   Q CD_TTB takes 19 high bits, i.e. [50:4]; model: L.
  // DW2
  bool nscfg1 = false; // DW2[0]     [Q-rfc] CD_4.NSCFG1
  bool had1 = false;   // DW2[1]     Q CD_HAD(x, 1)
  uint64_t ttb1 = 0;   // DW2[51:4]  Q CD_TTB(x, 1) gives [50:4]; widened to [51:4] as L does
                       //   for TTB0 (Linux defines no TTB1 mask).
  // DW3: MAIR_EL1 image, L arm-smmu-v3.c:1408 writes data[3] = mair.
  uint32_t mair0 = 0; // DW3[31:0]  [Q-rfc] CD_SET_MAIR0 (word[6])
  uint32_t mair1 = 0; // DW3[63:32] [Q-rfc] CD_SET_MAIR1 (word[7])
  friend bool operator==(const Cd&, const Cd&) = default;
};
// Not modelled, no source here places them: IR1/OR1/SH1 (QEMU's "+16 for TTB1" rule covers
// only TSZ, TG and EPD), WXN/UWXN/PAN, AMAIR0/1 (DW4), DW5..DW7.

Cd8 encode(const Cd& c);
Cd decode_cd(const Cd8& w);
Cd8 cd_field_mask();

// Level-1 context descriptor (two-level CD table).
struct CdL1Desc {
  bool v = false;      // DW0[0]      L:304 CTXDESC_L1_DESC_V
  uint64_t l2_ptr = 0; // DW0[51:12]  L:305 CTXDESC_L1_DESC_L2PTR_MASK
  friend bool operator==(const CdL1Desc&, const CdL1Desc&) = default;
};
uint64_t encode(const CdL1Desc& d);
CdL1Desc decode_cd_l1(uint64_t w);
uint64_t cd_l1_field_mask();

// ---------------------------------------------------------------------------------------
// Commands (16 bytes). Opcode DW0[7:0] (L:383 CMDQ_0_OP).
//
// Representation: a std::variant of one struct per opcode. Each struct holds exactly the
// fields its command defines, so a value cannot carry a field its opcode ignores, and the
// round trip decode(encode(c)) == c holds for every value, not only for "well-formed"
// ones. One struct with the union of fields would need a validity rule per opcode on top.
// Opcodes the model does not know decode to CmdUnknown, which keeps the raw words.
//
// Common field positions: SSec DW0[10] (Q CMD_SSEC), SSV DW0[11] (L:384 CMDQ_0_SSV),
// SubstreamID DW0[31:12] (L:390), StreamID DW0[63:32] (L:391).

// CMD_PREFETCH_CONFIG 0x01 (L:496 CMDQ_OP_PREFETCH_CFG; Q SMMU_CMD_PREFETCH_CONFIG).
struct CmdPrefetchConfig {
  static constexpr uint8_t opcode = 0x01;
  bool ssec = false; // DW0[10]     Q CMD_SSEC
  bool ssv = false;  // DW0[11]     L:384
  uint32_t ssid = 0; // DW0[31:12]  Q CMD_SSID
  uint32_t sid = 0;  // DW0[63:32]  L:386 CMDQ_PREFETCH_0_SID
  friend bool operator==(const CmdPrefetchConfig&, const CmdPrefetchConfig&) = default;
};
// CMD_PREFETCH_ADDR 0x02 (Q SMMU_CMD_PREFETCH_ADDR); Size and Addr are Linux's PREFETCH_1.
struct CmdPrefetchAddr {
  static constexpr uint8_t opcode = 0x02;
  bool ssec = false; // DW0[10]     Q CMD_SSEC
  bool ssv = false;  // DW0[11]     L:384
  uint32_t ssid = 0; // DW0[31:12]  Q CMD_SSID
  uint32_t sid = 0;  // DW0[63:32]  L:386
  uint8_t size = 0;  // DW1[4:0]    L:387 CMDQ_PREFETCH_1_SIZE
  uint64_t addr = 0; // DW1[63:12]  L:388 CMDQ_PREFETCH_1_ADDR_MASK
  friend bool operator==(const CmdPrefetchAddr&, const CmdPrefetchAddr&) = default;
};
// CMD_CFGI_STE 0x03 (L:501).
struct CmdCfgiSte {
  static constexpr uint8_t opcode = 0x03;
  bool ssec = false; // DW0[10]     Q CMD_SSEC
  uint32_t sid = 0;  // DW0[63:32]  L:391 CMDQ_CFGI_0_SID
  bool leaf = false; // DW1[0]      L:392 CMDQ_CFGI_1_LEAF
  friend bool operator==(const CmdCfgiSte&, const CmdCfgiSte&) = default;
};
// CMD_CFGI_STE_RANGE 0x04. Linux names opcode 0x4 CMDQ_OP_CFGI_ALL (L:502) and sends it with
// Range = 31 (arm-smmu-v3.c:272); QEMU names 0x04 SMMU_CMD_CFGI_STE_RANGE and gives
// SMMU_CMD_CFGI_ALL its own value 0x07. The model follows Linux's encoding: CFGI_ALL is
// CFGI_STE_RANGE with range 31 (cfgi_all() below); 0x07 decodes to CmdUnknown.
struct CmdCfgiSteRange {
  static constexpr uint8_t opcode = 0x04;
  bool ssec = false; // DW0[10]     Q CMD_SSEC
  uint32_t sid = 0;  // DW0[63:32]  L:391
  uint8_t range = 0; // DW1[4:0]    L:393 CMDQ_CFGI_1_RANGE; Q CMD_STE_RANGE
  friend bool operator==(const CmdCfgiSteRange&, const CmdCfgiSteRange&) = default;
};
// CMD_CFGI_CD 0x05 (L:503).
struct CmdCfgiCd {
  static constexpr uint8_t opcode = 0x05;
  bool ssec = false; // DW0[10]     Q CMD_SSEC
  uint32_t ssid = 0; // DW0[31:12]  L:390 CMDQ_CFGI_0_SSID
  uint32_t sid = 0;  // DW0[63:32]  L:391
  bool leaf = false; // DW1[0]      L:392
  friend bool operator==(const CmdCfgiCd&, const CmdCfgiCd&) = default;
};
// CMD_CFGI_CD_ALL 0x06 (L:504).
struct CmdCfgiCdAll {
  static constexpr uint8_t opcode = 0x06;
  bool ssec = false; // DW0[10]     Q CMD_SSEC
  uint32_t sid = 0;  // DW0[63:32]  L:391
  friend bool operator==(const CmdCfgiCdAll&, const CmdCfgiCdAll&) = default;
};

// TLBI field positions: NUM DW0[16:12] (L:395), SCALE DW0[24:20] (L:397), VMID DW0[47:32]
// (L:398), ASID DW0[63:48] (L:399), Leaf DW1[0] (L:400), TTL DW1[9:8] (L:401), TG DW1[11:10]
// (L:402), VA DW1[63:12] (L:403), IPA DW1[51:12] (L:404).
// CMD_TLBI_NH_ALL 0x10 (Q SMMU_CMD_TLBI_NH_ALL; Linux never sends it).
struct CmdTlbiNhAll {
  static constexpr uint8_t opcode = 0x10;
  uint16_t vmid = 0; // DW0[47:32]  Q CMD_VMID
  friend bool operator==(const CmdTlbiNhAll&, const CmdTlbiNhAll&) = default;
};
// CMD_TLBI_NH_ASID 0x11 (L:514).
struct CmdTlbiNhAsid {
  static constexpr uint8_t opcode = 0x11;
  uint16_t vmid = 0; // DW0[47:32]  L:398
  uint16_t asid = 0; // DW0[63:48]  L:399
  friend bool operator==(const CmdTlbiNhAsid&, const CmdTlbiNhAsid&) = default;
};
// CMD_TLBI_NH_VA 0x12 (L:515).
struct CmdTlbiNhVa {
  static constexpr uint8_t opcode = 0x12;
  uint8_t num = 0;   // DW0[16:12]  L:395
  uint8_t scale = 0; // DW0[24:20]  L:397
  uint16_t vmid = 0; // DW0[47:32]  L:398
  uint16_t asid = 0; // DW0[63:48]  L:399
  bool leaf = false; // DW1[0]      L:400
  uint8_t ttl = 0;   // DW1[9:8]    L:401
  uint8_t tg = 0;    // DW1[11:10]  L:402
  uint64_t addr = 0; // DW1[63:12]  L:403 CMDQ_TLBI_1_VA_MASK
  friend bool operator==(const CmdTlbiNhVa&, const CmdTlbiNhVa&) = default;
};
// CMD_TLBI_NH_VAA 0x13 (Q SMMU_CMD_TLBI_NH_VAA): NH_VA without the ASID.
struct CmdTlbiNhVaa {
  static constexpr uint8_t opcode = 0x13;
  uint8_t num = 0;   // DW0[16:12]  Q CMD_NUM
  uint8_t scale = 0; // DW0[24:20]  Q CMD_SCALE
  uint16_t vmid = 0; // DW0[47:32]  Q CMD_VMID
  bool leaf = false; // DW1[0]      Q CMD_LEAF
  uint8_t ttl = 0;   // DW1[9:8]    Q CMD_TTL
  uint8_t tg = 0;    // DW1[11:10]  Q CMD_TG
  uint64_t addr = 0; // DW1[63:12]  Q CMD_ADDR
  friend bool operator==(const CmdTlbiNhVaa&, const CmdTlbiNhVaa&) = default;
};
// CMD_TLBI_EL3_ALL 0x18 (Q SMMU_CMD_TLBI_EL3_ALL), no fields. (TLBI_EL3_VA 0x1a is named by
// QEMU but no source gives its fields; it decodes to CmdUnknown.)
struct CmdTlbiEl3All {
  static constexpr uint8_t opcode = 0x18;
  friend bool operator==(const CmdTlbiEl3All&, const CmdTlbiEl3All&) = default;
};
// CMD_TLBI_EL2_ALL 0x20 (L:516), no fields (arm-smmu-v3.c:254).
struct CmdTlbiEl2All {
  static constexpr uint8_t opcode = 0x20;
  friend bool operator==(const CmdTlbiEl2All&, const CmdTlbiEl2All&) = default;
};
// CMD_TLBI_EL2_ASID 0x21 (L:517).
struct CmdTlbiEl2Asid {
  static constexpr uint8_t opcode = 0x21;
  uint16_t asid = 0; // DW0[63:48]  L:399
  friend bool operator==(const CmdTlbiEl2Asid&, const CmdTlbiEl2Asid&) = default;
};
// CMD_TLBI_EL2_VA 0x22 (L:518): NH_VA without the VMID (arm-smmu-v3.c:277).
struct CmdTlbiEl2Va {
  static constexpr uint8_t opcode = 0x22;
  uint8_t num = 0;   // DW0[16:12]  L:395
  uint8_t scale = 0; // DW0[24:20]  L:397
  uint16_t asid = 0; // DW0[63:48]  L:399
  bool leaf = false; // DW1[0]      L:400
  uint8_t ttl = 0;   // DW1[9:8]    L:401
  uint8_t tg = 0;    // DW1[11:10]  L:402
  uint64_t addr = 0; // DW1[63:12]  L:403
  friend bool operator==(const CmdTlbiEl2Va&, const CmdTlbiEl2Va&) = default;
};
// CMD_TLBI_EL2_VAA 0x23 (Q SMMU_CMD_TLBI_EL2_VAA): EL2_VA without the ASID.
struct CmdTlbiEl2Vaa {
  static constexpr uint8_t opcode = 0x23;
  uint8_t num = 0;   // DW0[16:12]  Q CMD_NUM
  uint8_t scale = 0; // DW0[24:20]  Q CMD_SCALE
  bool leaf = false; // DW1[0]      Q CMD_LEAF
  uint8_t ttl = 0;   // DW1[9:8]    Q CMD_TTL
  uint8_t tg = 0;    // DW1[11:10]  Q CMD_TG
  uint64_t addr = 0; // DW1[63:12]  Q CMD_ADDR
  friend bool operator==(const CmdTlbiEl2Vaa&, const CmdTlbiEl2Vaa&) = default;
};
// CMD_TLBI_S12_VMALL 0x28 (L:519).
struct CmdTlbiS12Vmall {
  static constexpr uint8_t opcode = 0x28;
  uint16_t vmid = 0; // DW0[47:32]  L:398
  friend bool operator==(const CmdTlbiS12Vmall&, const CmdTlbiS12Vmall&) = default;
};
// CMD_TLBI_S2_IPA 0x2a (L:520).
struct CmdTlbiS2Ipa {
  static constexpr uint8_t opcode = 0x2a;
  uint8_t num = 0;   // DW0[16:12]  L:395
  uint8_t scale = 0; // DW0[24:20]  L:397
  uint16_t vmid = 0; // DW0[47:32]  L:398
  bool leaf = false; // DW1[0]      L:400
  uint8_t ttl = 0;   // DW1[9:8]    L:401
  uint8_t tg = 0;    // DW1[11:10]  L:402
  uint64_t addr = 0; // DW1[51:12]  L:404 CMDQ_TLBI_1_IPA_MASK
                     //   Q CMD_ADDR reads [63:12] for every TLBI; model: L.
  friend bool operator==(const CmdTlbiS2Ipa&, const CmdTlbiS2Ipa&) = default;
};
// CMD_TLBI_NSNH_ALL 0x30 (L:521), no fields.
struct CmdTlbiNsnhAll {
  static constexpr uint8_t opcode = 0x30;
  friend bool operator==(const CmdTlbiNsnhAll&, const CmdTlbiNsnhAll&) = default;
};
// CMD_ATC_INV 0x40 (L:533).
struct CmdAtcInv {
  static constexpr uint8_t opcode = 0x40;
  bool global = false; // DW0[9]      L:408 CMDQ_ATC_0_GLOBAL
  bool ssv = false;    // DW0[11]     L:384
  uint32_t ssid = 0;   // DW0[31:12]  L:406
  uint32_t sid = 0;    // DW0[63:32]  L:407
  uint8_t size = 0;    // DW1[5:0]    L:409 (ATC_INV_SIZE_ALL = 52, L:534)
  uint64_t addr = 0;   // DW1[63:12]  L:410
  friend bool operator==(const CmdAtcInv&, const CmdAtcInv&) = default;
};
// CMD_PRI_RESP 0x41 (L:543).
struct CmdPriResp {
  static constexpr uint8_t opcode = 0x41;
  bool ssv = false;   // DW0[11]     L:384
  uint32_t ssid = 0;  // DW0[31:12]  L:412
  uint32_t sid = 0;   // DW0[63:32]  L:413
  uint16_t grpid = 0; // DW1[8:0]    L:414
  uint8_t resp = 0;   // DW1[13:12]  L:415 (0 deny, 1 fail, 2 success, L:483)
                      //   Q CMD_RESP reads word[2] bits 11..12, i.e. DW1[12:11]; model: L.
  friend bool operator==(const CmdPriResp&, const CmdPriResp&) = default;
};
// CMD_RESUME 0x44 (L:551).
struct CmdResume {
  static constexpr uint8_t opcode = 0x44;
  uint8_t resp = 0;  // DW0[13:12]  L:420 (0 term, 1 retry, 2 abort); Q splits the same two
                     //             bits as CMD_RESUME_AC (12) and CMD_RESUME_AB (13)
  uint32_t sid = 0;  // DW0[63:32]  L:421
  uint16_t stag = 0; // DW1[15:0]   L:422; Q CMD_RESUME_STAG
  friend bool operator==(const CmdResume&, const CmdResume&) = default;
};
// CMD_SYNC 0x46 (L:558).
struct CmdSync {
  static constexpr uint8_t opcode = 0x46;
  uint8_t cs = 0;        // DW0[13:12]  L:424 (0 none, 1 IRQ, 2 SEV)
  uint8_t msh = 0;       // DW0[23:22]  L:428
  uint8_t msi_attr = 0;  // DW0[27:24]  L:429
  uint32_t msi_data = 0; // DW0[63:32]  L:430
  uint64_t msi_addr = 0; // DW1[51:2]   L:431
  friend bool operator==(const CmdSync&, const CmdSync&) = default;
};
// Any other opcode: the raw words, unchanged in both directions.
struct CmdUnknown {
  Cmd2 raw{};
  friend bool operator==(const CmdUnknown&, const CmdUnknown&) = default;
};

using Command =
    std::variant<CmdPrefetchConfig, CmdPrefetchAddr, CmdCfgiSte, CmdCfgiSteRange, CmdCfgiCd,
                 CmdCfgiCdAll, CmdTlbiNhAll, CmdTlbiNhAsid, CmdTlbiNhVa, CmdTlbiNhVaa,
                 CmdTlbiEl3All, CmdTlbiEl2All, CmdTlbiEl2Asid, CmdTlbiEl2Va, CmdTlbiEl2Vaa,
                 CmdTlbiS12Vmall, CmdTlbiS2Ipa, CmdTlbiNsnhAll, CmdAtcInv, CmdPriResp, CmdResume,
                 CmdSync, CmdUnknown>; // CmdUnknown must stay last

// CMD_CFGI_ALL as Linux builds it: opcode 0x4 with Range = 31 (arm-smmu-v3.c:270-272).
inline CmdCfgiSteRange cfgi_all() {
  return CmdCfgiSteRange{.ssec = false, .sid = 0, .range = 31};
}

Cmd2 encode(const Command& c);
Command decode_command(const Cmd2& w);
uint8_t opcode_of(const Command& c); // CmdUnknown: raw DW0[7:0]
// Bits covered by a field (opcode included) for a known opcode; all ones otherwise.
Cmd2 command_field_mask(uint8_t opcode);

// ---------------------------------------------------------------------------------------
// Event records (32 bytes). Both Linux and QEMU place each field at one position for every
// event type, so the record is one struct; which fields a given type fills is the event's
// semantics, not its format.

// Event type codes, DW0[7:0] (L:438 EVTQ_0_ID). Codes from Q SMMUEventType; Linux names a
// subset (Lu EVT_ID_*, L:440-443) with the same values, plus F_VMS_FETCH.
enum class EventType : uint8_t {
  f_uut = 0x01,
  c_bad_streamid = 0x02, // Lu EVT_ID_BAD_STREAMID_CONFIG
  f_ste_fetch = 0x03,    // Lu EVT_ID_STE_FETCH_FAULT
  c_bad_ste = 0x04,      // Lu EVT_ID_BAD_STE_CONFIG
  f_bad_ats_treq = 0x05,
  f_stream_disabled = 0x06,  // Lu EVT_ID_STREAM_DISABLED_FAULT
  f_transl_forbidden = 0x07, // Q SMMU_EVT_F_TRANS_FORBIDDEN
  c_bad_substreamid = 0x08,  // Lu EVT_ID_BAD_SUBSTREAMID_CONFIG
  f_cd_fetch = 0x09,         // Lu EVT_ID_CD_FETCH_FAULT
  c_bad_cd = 0x0a,           // Lu EVT_ID_BAD_CD_CONFIG
  f_walk_eabt = 0x0b,
  f_translation = 0x10, // L:440
  f_addr_size = 0x11,   // L:441
  f_access = 0x12,      // L:442
  f_permission = 0x13,  // L:443
  f_tlb_conflict = 0x20,
  f_cfg_conflict = 0x21,
  e_page_request = 0x24, // Q SMMU_EVT_E_PAGE_REQ
  f_vms_fetch = 0x25,    // Lu EVT_ID_VMS_FETCH_FAULT (not in QEMU)
};
bool is_known_event_type(uint8_t code);

struct EventRecord {
  EventType type = EventType::f_uut; // DW0[7:0]    L:438
  bool ssv = false;                  // DW0[11]     L:445; Q EVT_SET_SSV
  uint32_t ssid = 0;                 // DW0[31:12]  L:446; Q EVT_SET_SSID
  uint32_t sid = 0;                  // DW0[63:32]  L:447; Q EVT_SET_SID
  uint16_t stag = 0;                 // DW1[15:0]   L:448; Q EVT_SET_STAG
  bool stall = false;                // DW1[31]     L:449; Q EVT_SET_STALL
  bool pnu = false;                  // DW1[33]     L:450; Q EVT_SET_PNU
  bool ind = false;                  // DW1[34]     L:451; Q EVT_SET_IND
  bool rnw = false;                  // DW1[35]     L:452; Q EVT_SET_RNW
  bool s2 = false;                   // DW1[39]     L:453; Q EVT_SET_S2
  uint8_t event_class = 0;           // DW1[41:40]  L:454 CLASS (Lu EVTQ_1_CLASS_TT = 1)
  bool tt_read = false;              // DW1[44]     L:455 EVTQ_1_TT_READ
  uint64_t input_addr = 0;           // DW2[63:0]   L:456; Q EVT_SET_ADDR
  // DW3 is the IPA for F_TRANSLATION..F_PERMISSION (L:457 EVTQ_3_IPA, [51:12]) and the
  // fetch address for the fetch/walk faults (Lu EVTQ_3_FETCH_ADDR, [51:3]); Q EVT_SET_ADDR2
  // writes all 64 bits. Model: one field over the union [51:3].
  uint64_t addr2 = 0; // DW3[51:3]
  friend bool operator==(const EventRecord&, const EventRecord&) = default;
};

Evt4 encode(const EventRecord& e);
EventRecord decode_event(const Evt4& w);
Evt4 event_field_mask();

// ---------------------------------------------------------------------------------------
// VMSAv8-64 translation table descriptors (4K, 16K, 64K granules; levels 0..3; no LPA2).

enum class Granule : uint8_t { g4k = 12, g16k = 14, g64k = 16 }; // value = log2(size)
enum class Stage : uint8_t { s1 = 1, s2 = 2 };

struct DescFormat {
  Granule granule = Granule::g4k;
  Stage stage = Stage::s1;
  // 52-bit output addresses with the 64K granule: OA[51:48] in descriptor bits [15:12]
  // (P:181-200 paddr_to_iopte/iopte_to_paddr, K:56 KVM_PTE_ADDR_51_48) and level-1 blocks
  // (P:883-886 adds the 4TB size when oas > 48). Ignored for 4K/16K (LPA2 is not modelled).
  bool oa52 = false;
  friend bool operator==(const DescFormat&, const DescFormat&) = default;
};

constexpr unsigned granule_shift(Granule g) {
  return unsigned(g);
}
// Index bits resolved per level: granule_shift - 3 (P:41 ARM_LPAE_LVL_SHIFT, [QI] level_shift).
constexpr unsigned bits_per_level(Granule g) {
  return granule_shift(g) - 3;
}
// Lowest input-address bit resolved at `level` (0..3) = log2 of the block/page size there
// ([QI] level_shift; H:41 ARM64_HW_PGTABLE_LEVEL_SHIFT).
constexpr unsigned level_shift(Granule g, int level) {
  return granule_shift(g) + unsigned(3 - level) * bits_per_level(g);
}
// First level of a walk over an input address of ia_bits bits (H:26 ARM64_HW_PGTABLE_LEVELS).
constexpr int start_level(Granule g, unsigned ia_bits) {
  return 4 - int((ia_bits - 4) / bits_per_level(g));
}
// Index of `ia` in the table at `level`, for an ia_bits-bit input address space
// ([QI] iova_level_offset). Concatenated stage-2 start tables are not modelled.
constexpr uint64_t table_index(Granule g, int level, uint64_t ia, unsigned ia_bits) {
  const uint64_t in = ia_bits >= 64 ? ia : ia & ((uint64_t(1) << ia_bits) - 1);
  return (in >> level_shift(g, level)) & ((uint64_t(1) << bits_per_level(g)) - 1);
}
// Levels whose descriptors may be blocks: 4K 1 and 2 (1GB, 2MB), 16K 2 (32MB), 64K 2
// (512MB) and 1 (4TB) with 52-bit OA (P:876-886 pgsize_bitmap; K:17-27 MIN_BLOCK_LEVEL).
constexpr bool block_allowed(Granule g, int level, bool oa52 = false) {
  switch (g) {
  case Granule::g4k:
    return level == 1 || level == 2;
  case Granule::g16k:
    return level == 2;
  case Granule::g64k:
    return level == 2 || (oa52 && level == 1);
  }
  return false;
}

enum class DescKind : uint8_t { invalid, table, block, page };

// Invalid descriptor, or one that faults at its level (type 0b01 at level 3, a block where
// block_allowed is false). Hardware ignores every other bit, so the raw word is kept.
struct InvalidDesc {
  uint64_t raw = 0;
  friend bool operator==(const InvalidDesc&, const InvalidDesc&) = default;
};
// Table descriptor, type 0b11 at levels 0..2 (P:72, H:131 PMD_TYPE_TABLE).
struct TableDesc {
  uint64_t next_table = 0; // [47:granule]; with 64K also [51:48] in bits [15:12] (P:187)
  // Hierarchical attributes, stage 1 only (H:217 "Hierarchical permission for Stage-1
  // tables"); encode drops them and decode reads zero in a stage-2 format.
  bool pxn_table = false; // [59]     H:146 PMD_TABLE_PXN
  bool xn_table = false;  // [60]     H:147 PMD_TABLE_UXN (UXNTable / XNTable)
  uint8_t ap_table = 0;   // [62:61]  H:219 S1_TABLE_AP; [QI] PTE_APTABLE
  bool ns_table = false;  // [63]     P:77 ARM_LPAE_PTE_NSTABLE
  friend bool operator==(const TableDesc&, const TableDesc&) = default;
};
// Stage-1 block (type 0b01, levels < 3) or page (type 0b11, level 3) (P:71-73).
struct S1Leaf {
  uint64_t oa = 0;       // [47:level_shift]; 64K: OA[51:48] in [15:12] (P:186-187)
  uint8_t attr_indx = 0; // [4:2]    H:191 PTE_ATTRINDX_MASK; P:102
  bool ns = false;       // [5]      P:84 ARM_LPAE_PTE_NS
  uint8_t ap = 0;        // [7:6]    AP[2:1]: H:162 PTE_USER (AP[1]), H:163 PTE_RDONLY (AP[2])
  uint8_t sh = 0;        // [9:8]    P:81-83 (0 NS, 2 OS, 3 IS)
  bool af = false;       // [10]     P:80; H:165
  bool ng = false;       // [11]     P:103 ARM_LPAE_PTE_nG
  bool gp = false;       // [50]     H:167 PTE_GP; K:89
  bool dbm = false;      // [51]     P:79; H:168
  bool contig = false;   // [52]     H:169 PTE_CONT
  bool pxn = false;      // [53]     H:170 PTE_PXN
  bool uxn = false;      // [54]     H:171 PTE_UXN (XN at EL2); K:85 S1_XN. P:78 sets both.
  uint8_t sw = 0;        // [58:55]  K:83 KVM_PTE_LEAF_ATTR_HI_SW (P:93 SW_SYNC is bit 55)
  friend bool operator==(const S1Leaf&, const S1Leaf&) = default;
};
// Stage-2 block or page.
struct S2Leaf {
  uint64_t oa = 0;      // as S1Leaf
  uint8_t mem_attr = 0; // [5:2]    K:74 S2_MEMATTR; H:214; P:109-111
  uint8_t s2ap = 0;     // [7:6]    K:75-76 S2AP R (6), W (7); P:106-108 HAP
  uint8_t sh = 0;       // [9:8]    K:77
  bool af = false;      // [10]     K:79
  bool dbm = false;     // [51]     P:79
  bool contig = false;  // [52]     H:169 (shared with stage 1)
  uint8_t xn = 0;       // [54:53]  P:78 ARM_LPAE_PTE_XN (3 << 53); K:87 uses only bit 54.
                        //   Model: two bits, as P and as the XNX feature (Q IDR3.XNX).
  uint8_t sw = 0;       // [58:55]  K:83
  friend bool operator==(const S2Leaf&, const S2Leaf&) = default;
};
// Which alternative decode returns depends on the level and the format's stage.
using Descriptor = std::variant<InvalidDesc, TableDesc, S1Leaf, S2Leaf>;

// Encoding a leaf writes the type for `level` (block below 3, page at 3). Leaves are encoded
// by their own layout whatever f.stage says; decode picks the layout from f.stage.
uint64_t encode(const Descriptor& d, const DescFormat& f, int level);
Descriptor decode_descriptor(uint64_t w, const DescFormat& f, int level);
DescKind kind_of(const Descriptor& d, int level);
// Bits a decode of this kind keeps (InvalidDesc: all).
uint64_t descriptor_field_mask(DescKind k, const DescFormat& f, int level);
// The output-address (or next-table) bits in place for a block/page at `level`, or for a
// table's next-level pointer (level = 3), including OA[51:48] when f.oa52.
uint64_t output_address_mask(const DescFormat& f, int level);

// Granule from the translation-granule fields ([QI]/[Q] tg2granule; L:285 for S2TG).
std::optional<Granule> granule_from_tg0(uint8_t tg0); // CD.TG0 and STE.S2TG
std::optional<Granule> granule_from_tg1(uint8_t tg1); // CD.TG1

// ---------------------------------------------------------------------------------------
// Registers (capability discovery and queue programming).

struct Idr0 {              // ARM_SMMU_IDR0 0x0 (L:20)
  bool s2p = false;        // [0]      L:46
  bool s1p = false;        // [1]      L:45
  uint8_t ttf = 0;         // [3:2]    L:42 (2 AArch64, 3 AArch32+64)
  bool cohacc = false;     // [4]      L:41
  bool btm = false;        // [5]      Q IDR0.BTM
  uint8_t httu = 0;        // [7:6]    L:38 (1 access, 2 access+dirty)
  bool dormhint = false;   // [8]      Q IDR0.DORMHINT
  bool hyp = false;        // [9]      L:37
  bool ats = false;        // [10]     L:36
  bool ns1ats = false;     // [11]     Q IDR0.NS1ATS
  bool asid16 = false;     // [12]     L:35
  bool msi = false;        // [13]     L:34
  bool sev = false;        // [14]     L:33
  bool atos = false;       // [15]     Q IDR0.ATOS
  bool pri = false;        // [16]     L:32
  bool vmw = false;        // [17]     Q IDR0.VMW
  bool vmid16 = false;     // [18]     L:31
  bool cd2l = false;       // [19]     L:30
  bool vatos = false;      // [20]     Q IDR0.VATOS
  uint8_t ttendian = 0;    // [22:21]  L:26 (0 mixed, 2 LE, 3 BE)
  bool atsrecerr = false;  // [23]     Q IDR0.ATSRECERR
  uint8_t stall_model = 0; // [25:24]  L:22 (0 stall, 2 force)
  bool term_model = false; // [26]     Q IDR0.TERM_MODEL
  uint8_t st_level = 0;    // [28:27]  L:21 (1 two-level)
  bool rme_impl = false;   // [30]     Q IDR0.RME_IMPL
  friend bool operator==(const Idr0&, const Idr0&) = default;
};
uint32_t encode(const Idr0& r);
Idr0 decode_idr0(uint32_t w);
uint32_t idr0_field_mask();

struct Idr1 {                  // ARM_SMMU_IDR1 0x4 (L:48)
  uint8_t sidsize = 0;         // [5:0]    L:57
  uint8_t ssidsize = 0;        // [10:6]   L:56
  uint8_t priqs = 0;           // [15:11]  L:55
  uint8_t evtqs = 0;           // [20:16]  L:54
  uint8_t cmdqs = 0;           // [25:21]  L:53
  bool attr_perms_ovr = false; // [26]     Q IDR1.ATTR_PERMS_OVR
  bool attr_types_ovr = false; // [27]     L:52
  bool rel = false;            // [28]     L:51
  bool queues_preset = false;  // [29]     L:50
  bool tables_preset = false;  // [30]     L:49
  bool ecmdq = false;          // [31]     Q IDR1.ECMDQ
  friend bool operator==(const Idr1&, const Idr1&) = default;
};
uint32_t encode(const Idr1& r);
Idr1 decode_idr1(uint32_t w);
uint32_t idr1_field_mask();

struct Idr3 {          // ARM_SMMU_IDR3 0xc (L:59)
  bool had = false;    // [2]      Q IDR3.HAD
  bool pbha = false;   // [3]      Q IDR3.PBHA
  bool xnx = false;    // [4]      Q IDR3.XNX
  bool pps = false;    // [5]      Q IDR3.PPS
  bool mpam = false;   // [7]      Q IDR3.MPAM
  bool fwb = false;    // [8]      Lu IDR3_FWB; Q IDR3.FWB
  bool stt = false;    // [9]      Q IDR3.STT
  bool ril = false;    // [10]     L:60 IDR3_RIL (range invalidation)
  uint8_t bbml = 0;    // [12:11]  Q IDR3.BBML
  bool e0pd = false;   // [13]     Q IDR3.E0PD
  bool ptwnnc = false; // [14]     Q IDR3.PTWNNC
  bool dpt = false;    // [15]     Q IDR3.DPT
  friend bool operator==(const Idr3&, const Idr3&) = default;
};
uint32_t encode(const Idr3& r);
Idr3 decode_idr3(uint32_t w);
uint32_t idr3_field_mask();

struct Idr5 {             // ARM_SMMU_IDR5 0x14 (L:62)
  uint8_t oas = 0;        // [2:0]    L:67 (see oas_bits)
  bool gran4k = false;    // [4]      L:66
  bool gran16k = false;   // [5]      L:65
  bool gran64k = false;   // [6]      L:64
  uint8_t vax = 0;        // [11:10]  L:75 (1 52-bit VA)
  uint16_t stall_max = 0; // [31:16]  L:63
  friend bool operator==(const Idr5&, const Idr5&) = default;
};
uint32_t encode(const Idr5& r);
Idr5 decode_idr5(uint32_t w);
uint32_t idr5_field_mask();
// IDR5.OAS (and STE.S2PS, CD.IPS) to bits: L:68-74. [Q] oas2bits stops at 5 (48 bits).
std::optional<unsigned> oas_bits(uint8_t oas);

struct Cr0 {           // ARM_SMMU_CR0 0x20 (L:84); CR0ACK 0x24 has the same layout
  bool smmuen = false; // [0]  L:89; Q CR0.SMMU_ENABLE
  bool priqen = false; // [1]  L:88
  bool evtqen = false; // [2]  L:87; Q CR0.EVENTQEN
  bool cmdqen = false; // [3]  L:86; Q CR0.CMDQEN
  bool atschk = false; // [4]  L:85
  friend bool operator==(const Cr0&, const Cr0&) = default;
};
// Q SMMU_CR0_RESERVED (0xFFFFFC20) leaves bits [9:6] unreserved; no source names them, so
// they are not modelled.
uint32_t encode(const Cr0& r);
Cr0 decode_cr0(uint32_t w);
uint32_t cr0_field_mask();

struct StrtabBase {  // ARM_SMMU_STRTAB_BASE 0x80 (L:138), 64-bit
  uint64_t addr = 0; // [51:6]  L:140; Q SMMU_BASE_ADDR_MASK 0xfffffffffffc0
  bool ra = false;   // [62]    L:139
  friend bool operator==(const StrtabBase&, const StrtabBase&) = default;
};
uint64_t encode(const StrtabBase& r);
StrtabBase decode_strtab_base(uint64_t w);
uint64_t strtab_base_field_mask();

struct StrtabBaseCfg {  // ARM_SMMU_STRTAB_BASE_CFG 0x88 (L:142)
  uint8_t log2size = 0; // [5:0]    L:147
  uint8_t split = 0;    // [10:6]   L:146
  uint8_t fmt = 0;      // [17:16]  L:143 (0 linear, 1 two-level)
  friend bool operator==(const StrtabBaseCfg&, const StrtabBaseCfg&) = default;
};
uint32_t encode(const StrtabBaseCfg& r);
StrtabBaseCfg decode_strtab_base_cfg(uint32_t w);
uint32_t strtab_base_cfg_field_mask();

// CMDQ_BASE 0x90 and EVTQ_BASE 0xa0 (L:149, L:153), 64-bit.
struct QueueBase {
  uint8_t log2size = 0; // [4:0]   L:191 Q_BASE_LOG2SIZE
  uint64_t addr = 0;    // [51:5]  L:190 Q_BASE_ADDR_MASK
                        //   Q applies SMMU_BASE_ADDR_MASK ([51:6]) to queue bases; model: L.
  bool rwa = false;     // [62]    L:189 Q_BASE_RWA
  friend bool operator==(const QueueBase&, const QueueBase&) = default;
};
uint64_t encode(const QueueBase& r);
QueueBase decode_queue_base(uint64_t w);
uint64_t queue_base_field_mask();

// CMDQ_CONS.ERR values (L:369-372 CMDQ_ERR_CERROR_*_IDX; Q SMMUCmdError).
enum class CmdqError : uint8_t { none = 0, ill = 1, abt = 2, atc_inv_sync = 3 };

// CMDQ/EVTQ PROD and CONS (0x98/0x9c, 0xa8/0xac). With n = QueueBase.log2size:
// index [n-1:0] (L:181 Q_IDX), wrap [n] (L:182 Q_WRP; Q Q_PROD_WRAP), bit 31 the overflow
// flag (L:183 Q_OVERFLOW_FLAG: EVTQ_PROD.OVFLG / EVTQ_CONS.OVACKFLG; Q EVT_Q_OVERFLOW), and
// CMDQ_CONS.ERR [30:24] (L:368; Q CMDQ_CONS.ERR). Requires n <= 23 so the pointer stays
// below ERR (queues are at most 2^19 entries: Q SMMU_CMDQS/SMMU_EVENTQS).
struct QueuePtr {
  uint32_t index = 0;
  bool wrap = false;
  uint8_t err = 0;  // CMDQ_CONS only
  bool ovf = false; // EVTQ_PROD / EVTQ_CONS only
  friend bool operator==(const QueuePtr&, const QueuePtr&) = default;
};
uint32_t encode(const QueuePtr& p, unsigned log2size);
QueuePtr decode_queue_ptr(uint32_t w, unsigned log2size);
uint32_t queue_ptr_field_mask(unsigned log2size);
// Q smmuv3_q_full / smmuv3_q_empty: same index, wrap bits different / equal.
bool queue_full(const QueuePtr& prod, const QueuePtr& cons);
bool queue_empty(const QueuePtr& prod, const QueuePtr& cons);

} // namespace iommuspec::smmuv3
