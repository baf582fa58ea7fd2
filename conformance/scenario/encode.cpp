#include "scenario/encode.h"

#include "iommufd/clauses.h"
#include "iommufd/uapi_structs.h"

#include <cstring>
#include <fmt/format.h>

namespace iommuspec::scenario {

using iommufd::Field;
using iommufd::NameSet;
using iommufd::OpDesc;
using iommufd::Payload;
using iommufd::RecordDesc;
using iommufd::Role;

const std::set<std::string>& known_features() {
  static const std::set<std::string> k = {
      "iommufd",  // /dev/iommu
      "selftest", // IOMMU_TEST_CMD and the mock IOMMU (CONFIG_IOMMUFD_TEST)
      "nesting",  // nested HWPTs
      "dirty-tracking", "iopf", "viommu", "veventq", "hw-queue", "pasid", "vfio-compat"};
  return k;
}

namespace {

struct Encoder {
  const Step& step;
  const Names& names;
  const std::string& file;
  std::vector<Diagnostic>& diags;
  bool ok = true;

  void error(Pos p, std::string msg) {
    diags.push_back({file, p, std::move(msg)});
    ok = false;
  }

  std::optional<uint64_t> name_value(const Field& f, const Value& v, Pos p) {
    if (const auto* n = std::get_if<Number>(&v.v)) return n->v;
    if (const auto* fl = std::get_if<Flags>(&v.v)) {
      uint64_t x = fl->extra;
      for (const auto& nm : fl->names) {
        const auto nv = f.names ? iommufd::name_value(*f.names, nm) : std::nullopt;
        if (!nv) {
          error(p, fmt::format("'{}' is not a name of {}{}", nm, f.name, known_names(f)));
          return std::nullopt;
        }
        x |= *nv;
      }
      if (f.names && !f.names->is_flags && fl->names.size() + (fl->extra ? 1 : 0) > 1) {
        error(p, fmt::format("{} takes one value, not a set", f.name));
        return std::nullopt;
      }
      return x;
    }
    if (const auto* r = std::get_if<Ref>(&v.v)) {
      if (f.names && r->offset == 0)
        if (const auto nv = iommufd::name_value(*f.names, r->name)) return *nv;
      // A name bound by an earlier step (an object, an fd, a handle, a mem address).
      const Binding* b = names.find(r->name);
      if (!b) {
        error(p, fmt::format("'{}' is not a bound name{}", r->name,
                             f.names ? fmt::format(" nor a name of {}{}", f.name, known_names(f))
                                     : std::string()));
        return std::nullopt;
      }
      if (r->offset && b->kind != Binding::Kind::mem) {
        error(p, fmt::format("'{}' is not a mem region: no +offset", r->name));
        return std::nullopt;
      }
      if (b->kind == Binding::Kind::mem && r->offset > b->size) {
        error(p, fmt::format("offset 0x{:x} is past the end of mem {} (0x{:x} bytes)", r->offset,
                             r->name, b->size));
        return std::nullopt;
      }
      return b->value + r->offset;
    }
    error(p, fmt::format("{} takes a number or a name, not a list or record", f.name));
    return std::nullopt;
  }

  static std::string known_names(const Field& f) {
    if (!f.names) return "";
    std::string s = " (one of:";
    for (const auto& n : f.names->names)
      s += " " + std::string(n.name);
    return s + ")";
  }

  void encode_record(const RecordDesc& rec, const Record& r, uint8_t* out, Pos p) {
    for (const auto& a : r.args) {
      const Field* f = iommufd::find_field(rec.fields, a.key);
      if (!f) {
        std::string known;
        for (const auto& x : rec.fields)
          known += " " + std::string(x.name);
        error(a.pos.line ? a.pos : p,
              fmt::format("{} has no field '{}' (fields:{})", rec.name, a.key, known));
        continue;
      }
      if (auto v = name_value(*f, a.value, a.pos.line ? a.pos : p))
        iommufd::write_field(out, *f, *v);
    }
  }
};

bool is_payload_key(std::string_view k) {
  return k == "ranges" || k == "data" || k == "entries" || k == "bits" || k == "responses";
}

} // namespace

std::optional<Encoded> encode(const Step& step, const Names& names, const std::string& file,
                              std::vector<Diagnostic>& diags) {
  Encoder E{step, names, file, diags};
  const OpDesc* op = iommufd::op_by_name(step.op);
  if (!op) {
    std::string known;
    for (const auto& d : iommufd::all_ops())
      known += " " + std::string(d.name);
    E.error(step.pos, fmt::format("unknown operation '{}' (known:{})", step.op, known));
    return std::nullopt;
  }
  if (!step.subject.empty()) {
    E.error(step.pos, fmt::format("{} takes key=value arguments only (unexpected '{}')", step.op,
                                  step.subject));
    return std::nullopt;
  }
  Encoded enc;
  enc.op = op;
  iommufd::Call& call = enc.call;
  call.op = op->id;
  call.user_size = op->size;
  uint8_t* base = call.arg.data();
  bool size_given = false;
  std::set<std::string> given;
  for (const auto& f : op->fields) {
    if (f.role == Role::size) iommufd::write_field(base, f, op->size);
    if (f.role == Role::uptr) iommufd::write_field(base, f, iommufd::kPayloadPtr);
  }
  if (op->kind == iommufd::OpKind::test_op) std::memcpy(base + 4, &op->test_op, 4);

  const Arg* payload_arg = nullptr;
  for (const auto& a : step.args) {
    if (!given.insert(a.key).second) {
      E.error(a.pos, fmt::format("'{}' given twice", a.key));
      continue;
    }
    if (a.key == "size") {
      if (const auto* n = std::get_if<Number>(&a.value.v)) {
        call.user_size = uint32_t(n->v);
        size_given = true;
      } else {
        E.error(a.pos, "size takes a number");
      }
      continue;
    }
    if (a.key == "tail") {
      const auto* r = std::get_if<Ref>(&a.value.v);
      if (!r || (r->name != "zero" && r->name != "nonzero"))
        E.error(a.pos, "tail takes 'zero' or 'nonzero'");
      else
        call.tail_nonzero = r->name == "nonzero";
      continue;
    }
    if (is_payload_key(a.key)) {
      payload_arg = &a;
      continue;
    }
    const Field* f = iommufd::find_field(*op, a.key);
    if (!f) {
      std::string known;
      for (const auto& x : op->fields)
        if (x.role != Role::size) known += " " + std::string(x.name);
      E.error(a.pos,
              fmt::format("{} has no argument '{}' (arguments:{} size tail{})", op->name, a.key,
                          known, op->payload == Payload::none ? "" : " and its payload"));
      continue;
    }
    const bool binds =
        (f->role == Role::out_obj || f->role == Role::out_fd || f->role == Role::out);
    if (binds) {
      const auto* r = std::get_if<Ref>(&a.value.v);
      if (!r || r->offset) {
        if (f->role == Role::out) {
          if (auto v = E.name_value(*f, a.value, a.pos)) iommufd::write_field(base, *f, *v);
          continue;
        }
        E.error(a.pos, fmt::format("{} is an output: give it a new name to bind", f->name));
        continue;
      }
      if (names.find(r->name)) {
        E.error(a.pos, fmt::format("name '{}' is already bound (step {})", r->name,
                                   names.find(r->name)->step));
        continue;
      }
      enc.binds.push_back({r->name, f, a.pos});
      continue;
    }
    if (auto v = E.name_value(*f, a.value, a.pos)) iommufd::write_field(base, *f, *v);
  }
  if (size_given) {
    for (const auto& f : op->fields)
      if (f.role == Role::size) iommufd::write_field(base, f, call.user_size);
  }

  // The payload behind the user pointer.
  auto field_val = [&](std::string_view n) -> uint64_t {
    const Field* f = iommufd::find_field(*op, n);
    return f ? iommufd::read_field(base, *f) : 0;
  };
  auto set_default = [&](std::string_view n, uint64_t v) {
    const Field* f = iommufd::find_field(*op, n);
    if (f && !given.count(std::string(n))) iommufd::write_field(base, *f, v);
  };
  auto need_list = [&](const char* what) -> const List* {
    const auto* l = std::get_if<List>(&payload_arg->value.v);
    if (!l) E.error(payload_arg->pos, fmt::format("{} takes a [list]", what));
    return l;
  };
  auto& payload = call.payload;
  const std::string pkey = payload_arg ? payload_arg->key : "";
  auto wrong_payload = [&](const char* expected) {
    E.error(payload_arg->pos, fmt::format("{} takes no '{}'{}", op->name, pkey,
                                          expected ? fmt::format(" (its payload is '{}')", expected)
                                                   : std::string()));
  };
  switch (op->payload) {
  case Payload::none:
    if (payload_arg) wrong_payload(nullptr);
    break;
  case Payload::ranges_in:
    if (payload_arg && pkey != "ranges")
      wrong_payload("ranges");
    else if (payload_arg) {
      if (const List* l = need_list("ranges")) {
        for (const auto& it : l->items) {
          const auto* r = std::get_if<RangeV>(&it);
          if (!r) {
            E.error(payload_arg->pos, "ranges holds start..last items");
            break;
          }
          uapi::iommu_iova_range x{r->start, r->last};
          const size_t at = payload.size();
          payload.resize(at + 16);
          std::memcpy(payload.data() + at, &x, 16);
        }
        set_default("num_iovas", l->items.size());
      }
    }
    break;
  case Payload::ranges_out:
    if (payload_arg) wrong_payload(nullptr);
    payload.assign(size_t(field_val("num_iovas")) * 16, 0);
    break;
  case Payload::hwpt_data:
  case Payload::bytes_in:
    if (payload_arg && pkey == "data" && op->payload == Payload::hwpt_data) {
      const auto* r = std::get_if<Record>(&payload_arg->value.v);
      const RecordDesc* rec = iommufd::hwpt_data_record(uint32_t(field_val("data_type")));
      if (!r)
        E.error(payload_arg->pos, "data takes a {record}");
      else if (!rec)
        E.error(payload_arg->pos, "data needs a data_type with a known record (selftest, vtd_s1)");
      else {
        payload.assign(rec->size, 0);
        E.encode_record(*rec, *r, payload.data(), payload_arg->pos);
        set_default("data_len", rec->size);
      }
    } else if (payload_arg && pkey == "responses" && op->id == iommufd::OpId::fault_respond) {
      if (const List* l = need_list("responses")) {
        const RecordDesc& rec = iommufd::page_response_record();
        for (const auto& it : l->items) {
          const auto* r = std::get_if<Record>(&it);
          if (!r) {
            E.error(payload_arg->pos, "responses holds {cookie=N code=success|invalid} records");
            break;
          }
          const size_t at = payload.size();
          payload.resize(at + rec.size);
          E.encode_record(rec, *r, payload.data() + at, payload_arg->pos);
        }
        set_default("count", l->items.size());
      }
    } else if (payload_arg) {
      wrong_payload(op->payload == Payload::hwpt_data ? "data" : nullptr);
    }
    if (payload.empty()) {
      const uint64_t n = field_val("data_len");
      if (n <= 4096) payload.assign(size_t(n), 0);
    }
    break;
  case Payload::inval_entries:
    if (payload_arg && pkey != "entries")
      wrong_payload("entries");
    else if (payload_arg) {
      if (const List* l = need_list("entries")) {
        const uint32_t type = uint32_t(field_val("data_type"));
        const RecordDesc* rec = iommufd::inval_record(type);
        // The selftest has two record types with one data_type value: the nested HWPT's
        // {flags, iotlb_id} and the vIOMMU's {flags, vdev_id, cache_id}; pick by fields.
        if (rec)
          for (const auto& it : l->items)
            if (const auto* r = std::get_if<Record>(&it))
              for (const auto& a : r->args)
                if (!iommufd::find_field(rec->fields, a.key))
                  if (const auto* alt = iommufd::viommu_inval_record(type)) rec = alt;
        if (!rec) {
          E.error(payload_arg->pos,
                  "entries needs a data_type with a known record (selftest, vtd_s1)");
        } else {
          set_default("entry_len", rec->size);
          set_default("entry_num", l->items.size());
          const uint64_t len = field_val("entry_len");
          for (const auto& it : l->items) {
            const auto* r = std::get_if<Record>(&it);
            if (!r) {
              E.error(payload_arg->pos, "entries holds {field=value} records");
              break;
            }
            std::vector<uint8_t> one(std::max<size_t>(rec->size, size_t(len)), 0);
            E.encode_record(*rec, *r, one.data(), payload_arg->pos);
            if (len > 4096) break;
            payload.insert(payload.end(), one.begin(), one.begin() + ptrdiff_t(len));
          }
        }
      }
    }
    break;
  case Payload::hw_info_out:
    if (payload_arg) wrong_payload(nullptr);
    if (field_val("data_len") <= 4096) payload.assign(size_t(field_val("data_len")), 0);
    break;
  case Payload::bitmap_out:
  case Payload::bitmap_inout: {
    const uint64_t ps = field_val("page_size"), len = field_val("length");
    const uint64_t bits = ps ? len / ps : 0;
    const uint64_t bytes = std::min<uint64_t>(((bits + 63) / 64) * 8, 1 << 20);
    payload.assign(size_t(bytes), 0);
    if (payload_arg && (pkey != "bits" || op->payload != Payload::bitmap_inout))
      wrong_payload(op->payload == Payload::bitmap_inout ? "bits" : nullptr);
    else if (payload_arg) {
      if (const List* l = need_list("bits"))
        for (const auto& it : l->items) {
          const auto* n = std::get_if<Number>(&it);
          if (!n || n->v >= bits) {
            E.error(payload_arg->pos, fmt::format("bits holds bit numbers below {}", bits));
            break;
          }
          payload[size_t(n->v / 8)] |= uint8_t(1u << (n->v % 8));
        }
    }
    break;
  }
  case Payload::bytes_out:
    if (payload_arg) wrong_payload(nullptr);
    break;
  }
  if (!E.ok) return std::nullopt;
  return enc;
}

namespace {

// A vEVENT as read(): header {flags, sequence}, then the selftest payload {virt_id}.
constexpr iommufd::Name kVeventFlagNames[] = {{"lost_events", 1}};
constexpr iommufd::NameSet kVeventFlags{true, kVeventFlagNames};
constexpr Field kVeventFields[] = {{"flags", iommufd::Width::u32, 0, Role::out, &kVeventFlags},
                                   {"sequence", iommufd::Width::u32, 4, Role::out},
                                   {"virt_id", iommufd::Width::u32, 8, Role::out}};
constexpr RecordDesc kVevent{"vevent", 0, 12, kVeventFields};

const RecordDesc* returned_record(const OpDesc& op, bool& variable) {
  variable = false;
  switch (op.id) {
  case iommufd::OpId::fault_read:
    return &iommufd::pgfault_record();
  case iommufd::OpId::veventq_read:
    variable = true;
    return &kVevent;
  case iommufd::OpId::get_hw_info:
    return iommufd::record_by_name("test_hw_info");
  default:
    return nullptr;
  }
}

} // namespace

std::vector<std::vector<uint8_t>> split_records(const Pin& pin, const std::vector<uint8_t>& data) {
  std::vector<std::vector<uint8_t>> out;
  size_t at = 0;
  while (at < data.size()) {
    size_t n = pin.record->size;
    if (pin.variable_records) {
      uint32_t flags = 0;
      if (at + 4 <= data.size()) std::memcpy(&flags, data.data() + at, 4);
      n = (flags & 1) ? 8 : 12;
    }
    std::vector<uint8_t> r(pin.record->size, 0);
    std::memcpy(r.data(), data.data() + at, std::min(n, data.size() - at));
    out.push_back(std::move(r));
    at += n;
  }
  return out;
}

std::optional<Pins> decode_pins(const Step& step, const OpDesc& op, const std::string& file,
                                std::vector<Diagnostic>& diags) {
  Pins p;
  if (!step.expect.present) return p;
  bool ok = true;
  if (step.expect.errno_name == "ok") {
    p.err = Errno::ok;
  } else if (auto e = errno_from_name(step.expect.errno_name)) {
    p.err = *e;
  } else {
    diags.push_back({file, step.expect.pos,
                     fmt::format("'{}' is not 'ok' nor an errno name", step.expect.errno_name)});
    ok = false;
  }
  for (const auto& a : step.expect.pins) {
    Pin pin;
    pin.pos = a.pos;
    if (a.key == "ranges" && op.payload == Payload::ranges_out) {
      const auto* l = std::get_if<List>(&a.value.v);
      std::vector<Range> rs;
      if (l)
        for (const auto& it : l->items)
          if (const auto* r = std::get_if<RangeV>(&it)) rs.push_back({r->start, r->last});
      if (!l || rs.size() != l->items.size()) {
        diags.push_back({file, a.pos, "ranges takes [start..last, ...]"});
        ok = false;
        continue;
      }
      pin.ranges = rs;
      p.fields.push_back(pin);
      continue;
    }
    bool variable = false;
    const RecordDesc* rec = returned_record(op, variable);
    if (rec && ((a.key == "records" && op.id != iommufd::OpId::get_hw_info) ||
                (a.key == "data" && op.id == iommufd::OpId::get_hw_info))) {
      std::vector<const Record*> items;
      if (const auto* l = std::get_if<List>(&a.value.v)) {
        for (const auto& it : l->items)
          if (const auto* r = std::get_if<Record>(&it)) items.push_back(r);
        if (items.size() != l->items.size()) items.clear(), ok = false;
      } else if (const auto* r = std::get_if<Record>(&a.value.v)) {
        items.push_back(r);
      } else {
        ok = false;
      }
      if (!ok) {
        diags.push_back({file, a.pos, fmt::format("{} takes [{{field=value ...}}, ...]", a.key)});
        continue;
      }
      pin.record = rec;
      pin.variable_records = variable;
      pin.records.emplace();
      for (const Record* r : items) {
        RecordPin rp;
        for (const auto& fa : r->args) {
          const Field* rf = iommufd::find_field(rec->fields, fa.key);
          if (!rf) {
            std::string known;
            for (const auto& x : rec->fields)
              known += " " + std::string(x.name);
            diags.push_back(
                {file, fa.pos.line ? fa.pos : a.pos,
                 fmt::format("{} has no field '{}' (fields:{})", rec->name, fa.key, known)});
            ok = false;
            continue;
          }
          rp.fields.emplace_back(rf, fa.value);
        }
        pin.records->push_back(std::move(rp));
      }
      p.fields.push_back(pin);
      continue;
    }
    if (a.key == "bits" && op.payload == Payload::bitmap_out) {
      const auto* l = std::get_if<List>(&a.value.v);
      std::vector<uint64_t> bits;
      if (l)
        for (const auto& it : l->items)
          if (const auto* n = std::get_if<Number>(&it)) bits.push_back(n->v);
      if (!l || bits.size() != l->items.size()) {
        diags.push_back({file, a.pos, "bits takes [bit numbers]"});
        ok = false;
        continue;
      }
      pin.bits = bits;
      p.fields.push_back(pin);
      continue;
    }
    const Field* f = iommufd::find_field(op, a.key);
    if (!f || f->role == Role::size || f->role == Role::uptr) {
      diags.push_back({file, a.pos, fmt::format("{} has no output '{}' to pin", op.name, a.key)});
      ok = false;
      continue;
    }
    pin.field = f;
    if (const auto* n = std::get_if<Number>(&a.value.v)) {
      pin.value = n->v;
    } else if (const auto* r = std::get_if<Ref>(&a.value.v); r && !r->offset) {
      if (f->names) {
        if (const auto v = iommufd::name_value(*f->names, r->name)) pin.value = *v;
      }
      if (!pin.value) pin.name = r->name;
    } else if (const auto* fl = std::get_if<Flags>(&a.value.v); fl && f->names) {
      uint64_t x = fl->extra;
      for (const auto& nm : fl->names) {
        const auto v = iommufd::name_value(*f->names, nm);
        if (!v) {
          diags.push_back({file, a.pos, fmt::format("'{}' is not a name of {}", nm, f->name)});
          ok = false;
        } else {
          x |= *v;
        }
      }
      pin.value = x;
    } else {
      diags.push_back({file, a.pos, fmt::format("pin {} with a number or a name", a.key)});
      ok = false;
      continue;
    }
    p.fields.push_back(pin);
  }
  if (!ok) return std::nullopt;
  return p;
}

void lint(const Scenario& sc, std::vector<Diagnostic>& diags) {
  static const std::set<std::string> kKeys = {"clauses",   "features", "profile",
                                              "Generator", "Seed",     "Origin"};
  // The hardware-level areas have their own compiler and lint (conformance/hw/compile.h).
  if (sc.area == "smmuv3" || sc.area == "vtd") return;
  if (sc.area != "iommufd")
    diags.push_back(
        {sc.file, {1, 1}, fmt::format("unknown area '{}' (known: iommufd smmuv3 vtd)", sc.area)});
  for (const auto& h : sc.headers) {
    if (!kKeys.count(h.key)) {
      diags.push_back({sc.file, h.pos,
                       fmt::format("unknown header '{}' (known: clauses features profile "
                                   "Generator Seed Origin)",
                                   h.key)});
      continue;
    }
    for (const auto& v : h.values) {
      if (h.key == "features" && !known_features().count(v)) {
        std::string known;
        for (const auto& k : known_features())
          known += " " + k;
        diags.push_back({sc.file, h.pos, fmt::format("unknown feature '{}' (known:{})", v, known)});
      }
      if (h.key == "profile" && !iommufd::profile_from_name(v))
        diags.push_back({sc.file, h.pos,
                         fmt::format("unknown profile '{}' (known: linux-6.12 linux-latest)", v)});
      if (h.key == "clauses" && !iommufd::clause_by_id(v))
        diags.push_back({sc.file, h.pos, fmt::format("unknown clause '{}'", v)});
    }
  }
  if (!sc.header("clauses"))
    diags.push_back({sc.file, {1, 1}, "missing header 'clauses = ...': name what it exercises"});
  Names names;
  for (const auto& m : sc.mems) {
    if (names.find(m.name))
      diags.push_back({sc.file, m.pos, fmt::format("mem '{}' declared twice", m.name)});
    if (!m.size || m.size % 4096)
      diags.push_back({sc.file, m.pos, "a mem region's size is a non-zero multiple of 4096"});
    names.bound[m.name] = {Binding::Kind::mem, 0x7f0000000000ull, m.size, 0};
  }
  for (const auto& st : sc.steps) {
    auto enc = encode(st, names, sc.file, diags);
    if (!enc) continue;
    for (const auto& b : enc->binds)
      names.bound[b.name] = {Binding::Kind::value, 1, 0, st.number};
    auto pins = decode_pins(st, *enc->op, sc.file, diags);
    if (pins)
      for (const auto& p : pins->fields)
        if (!p.name.empty() && !names.find(p.name))
          names.bound[p.name] = {Binding::Kind::value, 1, 0, st.number};
  }
}

} // namespace iommuspec::scenario
