#include "scenario/scenario.h"

#include <cctype>
#include <fmt/format.h>
#include <fstream>
#include <optional>
#include <sstream>

namespace iommuspec::scenario {

std::string Diagnostic::text() const {
  return fmt::format("{}:{}:{}: {}: {}", file, pos.line, pos.col, warning ? "warning" : "error",
                     message);
}

const Header* Scenario::header(std::string_view key) const {
  for (const auto& h : headers)
    if (h.key == key) return &h;
  return nullptr;
}

std::vector<std::string> Scenario::values(std::string_view key) const {
  const Header* h = header(key);
  return h ? h->values : std::vector<std::string>{};
}

namespace {

struct SyntaxError {
  int col;
  std::string message;
};

// A cursor over one line (comments already removed).
class Line {
public:
  Line(std::string_view text, int line) : s_(text), line_(line) {}

  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r'))
      ++i_;
  }
  bool done() {
    skip_ws();
    return i_ >= s_.size();
  }
  int col() const { return int(i_) + 1; }
  Pos pos() const { return {line_, col()}; }
  char peek() {
    skip_ws();
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  bool eat(std::string_view tok) {
    skip_ws();
    if (s_.substr(i_, tok.size()) == tok) {
      i_ += tok.size();
      return true;
    }
    return false;
  }
  void expect(std::string_view tok, std::string_view what) {
    if (!eat(tok)) fail(fmt::format("expected '{}' {}", tok, what));
  }
  [[noreturn]] void fail(std::string msg) const { throw SyntaxError{col(), std::move(msg)}; }

  static bool ident_start(char c) { return std::isalpha(uint8_t(c)) || c == '_'; }
  static bool ident_char(char c) { return std::isalnum(uint8_t(c)) || c == '_'; }

  std::string ident(std::string_view what) {
    skip_ws();
    if (i_ >= s_.size() || !ident_start(s_[i_])) fail(fmt::format("expected {}", what));
    const size_t b = i_;
    while (i_ < s_.size() && ident_char(s_[i_]))
      ++i_;
    return std::string(s_.substr(b, i_ - b));
  }

  // A token of the id line and header values: anything up to whitespace.
  std::string word() {
    skip_ws();
    const size_t b = i_;
    while (i_ < s_.size() && s_[i_] != ' ' && s_[i_] != '\t' && s_[i_] != '\r')
      ++i_;
    return std::string(s_.substr(b, i_ - b));
  }

  uint64_t number(std::string_view what) {
    skip_ws();
    const size_t b = i_;
    uint64_t v = 0;
    if (s_.substr(i_, 2) == "0x" || s_.substr(i_, 2) == "0X") {
      i_ += 2;
      const size_t digits = i_;
      while (i_ < s_.size() && std::isxdigit(uint8_t(s_[i_]))) {
        if (v >> 60) {
          i_ = b;
          fail("number does not fit in 64 bits");
        }
        const char c = char(std::tolower(uint8_t(s_[i_++])));
        v = v * 16 + uint64_t(c <= '9' ? c - '0' : c - 'a' + 10);
      }
      if (i_ == digits) fail(fmt::format("expected hex digits in {}", what));
    } else if (i_ < s_.size() && std::isdigit(uint8_t(s_[i_]))) {
      while (i_ < s_.size() && std::isdigit(uint8_t(s_[i_]))) {
        const uint64_t d = uint64_t(s_[i_++] - '0');
        if (v > (~0ull - d) / 10) {
          i_ = b;
          fail("number does not fit in 64 bits");
        }
        v = v * 10 + d;
      }
    } else {
      fail(fmt::format("expected {}", what));
    }
    if (i_ < s_.size() && ident_char(s_[i_])) fail("unexpected character after number");
    return v;
  }

  // A bare name not followed by '=' (a step's subject: `map T iova=...`), or nothing.
  std::string subject() {
    skip_ws();
    const size_t b = i_;
    if (i_ >= s_.size() || !ident_start(s_[i_])) return {};
    std::string n = ident("a name");
    skip_ws();
    if (i_ < s_.size() && s_[i_] == '=') {
      i_ = b;
      return {};
    }
    return n;
  }

  // A unit-like name that starts with digits: 4k, 64k, 2m (granules and sizes by name).
  std::optional<std::string> digit_name() {
    skip_ws();
    size_t j = i_;
    while (j < s_.size() && std::isdigit(uint8_t(s_[j])))
      ++j;
    if (j == i_ || j >= s_.size() || !ident_start(s_[j])) return std::nullopt;
    if (j == i_ + 1 && s_[i_] == '0' && (s_[j] == 'x' || s_[j] == 'X')) return std::nullopt;
    while (j < s_.size() && ident_char(s_[j]))
      ++j;
    std::string n(s_.substr(i_, j - i_));
    i_ = j;
    return n;
  }

  bool at_number() {
    const char c = peek();
    return std::isdigit(uint8_t(c));
  }

  Value value();
  Record record();
  List list();
  Arg arg();

private:
  std::string_view s_;
  size_t i_ = 0;
  int line_;
};

Arg Line::arg() {
  Arg a;
  a.pos = pos();
  a.key = ident("a key (key=value)");
  expect("=", fmt::format("after key '{}'", a.key));
  a.value = value();
  return a;
}

Record Line::record() {
  Record r;
  expect("{", "to open a record");
  while (!eat("}")) {
    if (done()) fail("unterminated record: expected '}'");
    r.args.push_back(arg());
    eat(",");
  }
  return r;
}

List Line::list() {
  List l;
  expect("[", "to open a list");
  while (!eat("]")) {
    if (done()) fail("unterminated list: expected ']'");
    if (peek() == '{') {
      l.items.emplace_back(record());
    } else {
      const uint64_t a = number("a number or a range a..b in the list");
      if (eat("..")) {
        const uint64_t b = number("the end of the range");
        l.items.emplace_back(RangeV{a, b});
      } else {
        l.items.emplace_back(Number{a});
      }
    }
    if (peek() != ']' && !eat(",")) fail("expected ',' or ']' in the list");
  }
  return l;
}

Value Line::value() {
  const char c = peek();
  if (c == '[') return Value{list()};
  if (c == '{') return Value{record()};
  if (at_number() || ident_start(c)) {
    Flags f;
    bool is_flags = false;
    Ref single;
    bool single_is_number = false;
    uint64_t single_number = 0;
    while (true) {
      if (auto dn = digit_name()) {
        f.names.push_back(*dn);
        single = Ref{*dn, 0};
        single_is_number = false;
      } else if (at_number()) {
        const uint64_t n = number("a number");
        f.extra |= n;
        single_is_number = true;
        single_number = n;
      } else {
        const std::string name = ident("a name");
        f.names.push_back(name);
        single = Ref{name, 0};
        single_is_number = false;
      }
      if (!eat("|")) break;
      is_flags = true;
    }
    if (is_flags) return Value{f};
    if (single_is_number) return Value{Number{single_number}};
    if (eat("+")) single.offset = number("an offset after '+'");
    return Value{single};
  }
  fail("expected a value: a number, a name, a|b flags, [list] or {record}");
}

std::string strip_comment(std::string_view line) {
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '"') quoted = !quoted;
    if (line[i] == '#' && !quoted) return std::string(line.substr(0, i));
  }
  return std::string(line);
}

bool blank(std::string_view s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r') return false;
  return true;
}

} // namespace

Scenario parse(std::string_view text, const std::string& file, std::vector<Diagnostic>& diags) {
  Scenario sc;
  sc.file = file;
  enum class State { id, doc, headers, init, steps } st = State::id;
  std::istringstream in{std::string(text)};
  std::string raw;
  int lineno = 0;
  int last_step = 0;
  const size_t errors_before = diags.size();
  while (std::getline(in, raw)) {
    ++lineno;
    const std::string content = strip_comment(raw);
    if (blank(content)) continue;
    Line L(content, lineno);
    try {
      switch (st) {
      case State::id: {
        sc.area = L.ident("the area (e.g. 'iommufd') on the first line");
        sc.id = L.word();
        if (sc.id.empty()) L.fail("expected the scenario id after the area");
        if (!L.done()) L.fail("unexpected text after the scenario id");
        st = State::doc;
        break;
      }
      case State::doc:
        if (L.peek() == '"') {
          const auto b = content.find('"'), e = content.rfind('"');
          if (e == b) L.fail("unterminated description: expected a closing '\"'");
          sc.doc = content.substr(b + 1, e - b - 1);
          if (!blank(content.substr(e + 1))) {
            Line tail(content.substr(e + 1), lineno);
            tail.fail("unexpected text after the description");
          }
          st = State::headers;
          break;
        }
        st = State::headers;
        [[fallthrough]];
      case State::headers:
        if (L.eat("{")) {
          if (!L.done()) L.fail("'{' must stand alone on its line");
          st = State::init;
          break;
        }
        if (L.at_number()) {
          st = State::steps;
          goto step;
        }
        {
          Header h;
          h.pos = L.pos();
          h.key = L.ident("a header (key = value) or '{'");
          L.expect("=", fmt::format("after header '{}'", h.key));
          while (!L.done())
            h.values.push_back(L.word());
          if (sc.header(h.key)) L.fail(fmt::format("header '{}' given twice", h.key));
          sc.headers.push_back(std::move(h));
        }
        break;
      case State::init:
        if (L.eat("}")) {
          if (!L.done()) L.fail("'}' must stand alone on its line");
          st = State::steps;
          break;
        }
        {
          MemDecl m;
          m.pos = L.pos();
          const std::string kw = L.ident("'mem NAME SIZE' or '}'");
          if (kw != "mem") {
            Line again(content, lineno);
            again.skip_ws();
            again.fail(fmt::format("unknown declaration '{}' (expected 'mem NAME SIZE')", kw));
          }
          m.name = L.ident("the mem region's name");
          m.size = L.number("the mem region's size in bytes");
          if (!L.done()) L.fail("unexpected text after the mem declaration");
          sc.mems.push_back(std::move(m));
        }
        break;
      case State::steps:
      step : {
        Step s;
        s.pos = L.pos();
        const uint64_t n = L.number("a step number ('N: op ...')");
        if (n != uint64_t(last_step) + 1)
          throw SyntaxError{1, fmt::format("step {} follows step {}: steps are numbered 1, 2, 3...",
                                           n, last_step)};
        s.number = int(n);
        last_step = s.number;
        L.expect(":", "after the step number");
        s.op = L.ident("an operation name");
        s.subject = L.subject();
        while (!L.done() && L.peek() != '-')
          s.args.push_back(L.arg());
        if (!L.done()) {
          s.expect.pos = L.pos();
          L.expect("->", "before the expected result");
          s.expect.present = true;
          s.expect.errno_name = L.ident("'ok' or an errno name after '->'");
          while (!L.done())
            s.expect.pins.push_back(L.arg());
        }
        sc.steps.push_back(std::move(s));
        break;
      }
      }
    } catch (const SyntaxError& e) {
      diags.push_back({file, {lineno, e.col}, e.message});
    }
  }
  if (diags.size() == errors_before) {
    if (st == State::id)
      diags.push_back({file, {1, 1}, "empty scenario: expected 'area id'"});
    else if (st == State::init)
      diags.push_back({file, {lineno, 1}, "unterminated initial state: expected '}'"});
    else if (sc.steps.empty())
      diags.push_back({file, {lineno, 1}, "the scenario has no steps"});
  }
  return sc;
}

Scenario parse_file(const std::string& path, std::vector<Diagnostic>& diags) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    diags.push_back({path, {0, 0}, "cannot read the file"});
    return {};
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return parse(ss.str(), path, diags);
}

} // namespace iommuspec::scenario
