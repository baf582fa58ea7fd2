// The scenario format: one small, litmus-shaped text file per scenario.
//
//   iommufd ioas-map-fixed-overlap                     <- area and id
//   "A FIXED_IOVA map over a mapping fails."          <- optional one-line description
//   clauses = IOMMUFD.IOAS_MAP.fixed_exists            <- headers: key = value...
//   features = iommufd
//   profile = linux-6.12 linux-latest
//   {                                                  <- initial state
//     mem M 0x10000                                    <- user memory, 0x10000 bytes
//   }
//   1: ioas_alloc out_ioas_id=A                        <- numbered steps: op key=value...
//   2: ioas_map ioas_id=A flags=fixed_iova|readable user_va=M iova=0x100000 length=0x1000
//   3: ioas_map ioas_id=A flags=fixed_iova|readable user_va=M iova=0x100000 length=0x1000 -> EEXIST
//
// Values: numbers (decimal or 0x hex), names (objects, fds, mem regions; name+0x10 for an
// offset into a mem region), flag sets a|b, lists [..] of ranges (a..b) or records {k=v}.
// "-> ok" or "-> EINVAL" pins the expected errno; key=value after it pins output fields.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace iommuspec::scenario {

struct Pos {
  int line = 0, col = 0;
};

struct Value;
struct Arg;

struct Number {
  uint64_t v = 0;
  friend bool operator==(const Number&, const Number&) = default;
};
// NAME or NAME+off (off may be 0): an object, an fd, or a mem region with an offset.
struct Ref {
  std::string name;
  uint64_t offset = 0;
  friend bool operator==(const Ref&, const Ref&) = default;
};
// a|b|0x10: flag names and numbers OR-ed together (a single name is an enum value).
struct Flags {
  std::vector<std::string> names;
  uint64_t extra = 0; // numbers in the set
  friend bool operator==(const Flags&, const Flags&) = default;
};
struct RangeV {
  uint64_t start = 0, last = 0;
  friend bool operator==(const RangeV&, const RangeV&) = default;
};
struct Record {
  std::vector<Arg> args;
  friend bool operator==(const Record&, const Record&);
};
struct List {
  std::vector<std::variant<RangeV, Record, Number>> items;
  friend bool operator==(const List&, const List&);
};

struct Value {
  std::variant<Number, Ref, Flags, List, Record> v;
  friend bool operator==(const Value&, const Value&) = default;
};

struct Arg {
  std::string key;
  Value value;
  Pos pos;
  friend bool operator==(const Arg& a, const Arg& b) {
    return a.key == b.key && a.value == b.value;
  }
};

inline bool operator==(const Record& a, const Record& b) {
  return a.args == b.args;
}
inline bool operator==(const List& a, const List& b) {
  return a.items == b.items;
}

struct Expect {
  bool present = false;
  std::string errno_name; // "ok" or "EINVAL"...
  std::vector<Arg> pins;
  Pos pos;
  friend bool operator==(const Expect& a, const Expect& b) {
    return a.present == b.present && a.errno_name == b.errno_name && a.pins == b.pins;
  }
};

struct Step {
  int number = 0;
  std::string op;
  std::string subject; // an optional bare name after the op: `map T iova=...`
  std::vector<Arg> args;
  Expect expect;
  Pos pos;
  friend bool operator==(const Step& a, const Step& b) {
    return a.number == b.number && a.op == b.op && a.subject == b.subject && a.args == b.args &&
           a.expect == b.expect;
  }
};

struct MemDecl {
  std::string name;
  uint64_t size = 0;
  Pos pos;
  friend bool operator==(const MemDecl& a, const MemDecl& b) {
    return a.name == b.name && a.size == b.size;
  }
};

struct Header {
  std::string key;
  std::vector<std::string> values;
  Pos pos;
  friend bool operator==(const Header& a, const Header& b) {
    return a.key == b.key && a.values == b.values;
  }
};

struct Scenario {
  std::string file;
  std::string area; // "iommufd"
  std::string id;
  std::string doc;
  std::vector<Header> headers;
  std::vector<MemDecl> mems;
  std::vector<Step> steps;

  const Header* header(std::string_view key) const;
  std::vector<std::string> values(std::string_view key) const;
  friend bool operator==(const Scenario& a, const Scenario& b) {
    return a.area == b.area && a.id == b.id && a.doc == b.doc && a.headers == b.headers &&
           a.mems == b.mems && a.steps == b.steps;
  }
};

struct Diagnostic {
  std::string file;
  Pos pos;
  std::string message;
  bool warning = false;
  std::string text() const; // "file:line:col: error: message"
};

// Parse one scenario. Syntax errors are returned in `diags` (all of them, one per line at
// most); the scenario is usable only when no error was reported.
Scenario parse(std::string_view text, const std::string& file, std::vector<Diagnostic>& diags);
// Read and parse a file; a file that cannot be read is one diagnostic.
Scenario parse_file(const std::string& path, std::vector<Diagnostic>& diags);

// The canonical text of a scenario: print(parse(print(s))) == print(s).
std::string print(const Scenario& s);
std::string print(const Value& v);
std::string print_number(uint64_t v);

} // namespace iommuspec::scenario
