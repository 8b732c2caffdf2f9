#include "notify/template.h"

#include <cctype>
#include <cstdio>

namespace ferry::notify {
namespace {

// mercure's macros from before it used Jinja templates.
constexpr std::pair<std::string_view, std::string_view> kLegacyMacros[] = {
    {"@rule@", "rule"}, {"@task_id@", "task_id"}, {"@event@", "event"}};

bool IsName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return false;
    }
  }
  return true;
}

// Tracks whether the literal JSON text seen so far ends inside a string literal.
struct JsonState {
  bool in_string = false;
  bool escaped = false;

  void Feed(std::string_view text) {
    for (char c : text) {
      if (!in_string) {
        in_string = c == '"';
      } else if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    }
  }
};

}  // namespace

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Rendered RenderTemplate(std::string_view tmpl, const std::map<std::string, std::string>& values,
                        Escape escape) {
  // The legacy macros become placeholders first, so they are escaped like any other value.
  std::string source(tmpl);
  for (const auto& [macro, name] : kLegacyMacros) {
    std::string replacement = "{{" + std::string(name) + "}}";
    for (size_t pos = source.find(macro); pos != std::string::npos;
         pos = source.find(macro, pos + replacement.size())) {
      source.replace(pos, macro.size(), replacement);
    }
  }

  Rendered out;
  JsonState json;
  std::string_view rest = source;
  while (!rest.empty()) {
    size_t open = rest.find("{{");
    size_t close = open == std::string_view::npos ? open : rest.find("}}", open + 2);
    if (close == std::string_view::npos) {
      out.text.append(rest);
      break;
    }
    std::string_view literal = rest.substr(0, open);
    out.text.append(literal);
    json.Feed(literal);
    std::string name(Trim(rest.substr(open + 2, close - open - 2)));
    rest.remove_prefix(close + 2);

    std::string value;
    auto it = IsName(name) ? values.find(name) : values.end();
    if (it == values.end()) {
      out.unknown.push_back(name);
    } else {
      value = it->second;
    }
    switch (escape) {
      case Escape::kNone:
        out.text += value;
        break;
      case Escape::kHtml:
        out.text += HtmlEscape(value);
        break;
      case Escape::kJson:
        if (json.in_string) {
          out.text += JsonEscape(value);
        } else {
          out.text += '"' + JsonEscape(value) + '"';
        }
        break;
    }
  }
  return out;
}

}  // namespace ferry::notify
