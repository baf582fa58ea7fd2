// The one table of operations (ioctls, IOMMU_TEST_CMD ops, file-descriptor operations)
// shared by the model, the scenario encoder and the agents: {name, ioctl nr, struct size,
// min size, fields, payload, profiles}. Field names are the kernel's.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace iommuspec::iommufd {

enum class Profile : uint8_t { linux_6_12 = 0, linux_latest = 1 };
using ProfileMask = uint8_t;
constexpr ProfileMask kAllProfiles = 0b11;
constexpr ProfileMask mask_of(Profile p) {
  return ProfileMask(1u << unsigned(p));
}
std::string_view profile_name(Profile p);
std::optional<Profile> profile_from_name(std::string_view name);

enum class OpId : uint16_t {
#define IOMMUSPEC_OP(id, ...) id,
#include "iommufd/ops.def"
#undef IOMMUSPEC_OP
  count_
};

enum class OpKind : uint8_t { ioctl, test_op, fd_read, fd_write, fd_close };

enum class Width : uint8_t { u8 = 1, u16 = 2, u32 = 4, u64 = 8 };

// What a field means to the encoder (how a scenario value becomes bytes) and to the
// comparison of observations (which fields are outputs).
enum class Role : uint8_t {
  size,      // the leading size field: sizeof(struct) unless the scenario says size=
  in,        // plain input number, or a flag/enum name when the field has names
  obj,       // input object ID: a scenario name or a raw number
  fd,        // input file descriptor: a scenario name
  uva,       // user virtual address: mem name + offset, or a raw number
  uptr,      // user pointer to this call's payload; filled by the encoder
  reserved,  // must be zero; scenarios may set it to test the check
  out,       // written by the kernel
  inout,     // read and written back (entry_num, num_iovas, length)
  out_obj,   // new object ID; a scenario name binds to it
  out_fd,    // new file descriptor; a scenario name binds to it
  inout_obj, // object ID in, and an object ID written back (vfio_ioas get, replace)
};

struct Name {
  std::string_view name;
  uint64_t value;
};
struct NameSet {
  bool is_flags; // flags combine with '|'; an enum takes one name
  std::span<const Name> names;
};

struct Field {
  std::string_view name;
  Width width;
  uint16_t offset;
  Role role;
  const NameSet* names = nullptr;
};

// A record type behind a pointer (driver data, invalidation entries, fault records).
struct RecordDesc {
  std::string_view name;
  uint32_t type_value; // the data_type value that selects it
  uint16_t size;
  std::span<const Field> fields;
};

enum class Payload : uint8_t {
  none,
  ranges_in,     // iommu_iova_range[num_iovas], read by the kernel
  ranges_out,    // iommu_iova_range[num_iovas], written by the kernel
  hwpt_data,     // one driver record selected by data_type, data_len bytes
  inval_entries, // entry_num records of entry_len bytes selected by data_type
  hw_info_out,   // data_len bytes written by the kernel
  bitmap_out,    // dirty bitmap written by the kernel
  bitmap_inout,  // dirty bitmap (selftest IOMMU_TEST_OP_DIRTY reads it)
  bytes_in,      // raw bytes (access_rw write, fd write)
  bytes_out,     // raw bytes (access_rw read, fd read)
};

struct OpDesc {
  OpId id;
  std::string_view name; // scenario keyword
  OpKind kind;
  uint32_t nr;       // ioctl nr (IOMMUFD_CMD_*); for test ops IOMMUFD_CMD_BASE + 32
  uint32_t test_op;  // IOMMU_TEST_OP_* for test ops
  uint16_t size;     // sizeof(struct) the kernel knows
  uint16_t min_size; // offsetofend(struct, last field) from the ioctl table
  std::span<const Field> fields;
  Payload payload;
  ProfileMask profiles;
  std::string_view source; // where the layout and the checks come from
};

std::span<const OpDesc> all_ops();
const OpDesc& op_desc(OpId id);
const OpDesc* op_by_name(std::string_view name);
const Field* find_field(const OpDesc& op, std::string_view name);
const Field* find_field(std::span<const Field> fields, std::string_view name);

// Records behind pointers, selected by the data_type field of the call.
const RecordDesc* hwpt_data_record(uint32_t data_type);
const RecordDesc* inval_record(uint32_t data_type);
const RecordDesc* viommu_inval_record(uint32_t data_type);
const RecordDesc* record_by_name(std::string_view name);
std::span<const RecordDesc> all_records();
const RecordDesc& iova_range_record();
const RecordDesc& pgfault_record();
const RecordDesc& page_response_record();

std::optional<uint64_t> name_value(const NameSet& set, std::string_view name);
std::string_view value_name(const NameSet& set, uint64_t value); // "" when none

uint64_t read_field(const uint8_t* base, const Field& f);
void write_field(uint8_t* base, const Field& f, uint64_t v);

} // namespace iommuspec::iommufd
