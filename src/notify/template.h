// The notification template language: mercure's notification texts (`notification_payload`,
// `notification_payload_body`, `notification_email_body`) with only `{{ name }}` substitution,
// plus mercure's older `@rule@`, `@task_id@` and `@event@` macros. No expressions, filters,
// loops or includes: a template can never run code or read anything but the values it is given.
//
// Values are escaped for where they land: inside a JSON string of a webhook payload they are
// JSON-escaped; outside a string they become a whole JSON string ("..."), so a rendered payload
// is valid JSON whatever a patient's name contains. HTML e-mail bodies get HTML-escaped values;
// plain text is inserted as is. A placeholder whose name is not among the values renders empty
// and is reported to the caller, which logs it.
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::notify {

enum class Escape { kNone, kJson, kHtml };

struct Rendered {
  std::string text;
  std::vector<std::string> unknown;  // placeholders without a value, in order of appearance
};

// Renders `tmpl` with `values`. `{{name}}` and `{{  name  }}` are the same placeholder; a `{{`
// without a closing `}}` is literal text. With Escape::kJson the template is read as JSON text
// to tell whether each placeholder sits inside a string literal.
Rendered RenderTemplate(std::string_view tmpl, const std::map<std::string, std::string>& values,
                        Escape escape);

// `text` as the content of a JSON string literal (without the quotes): ", \ and control
// characters escaped; other UTF-8 bytes unchanged.
std::string JsonEscape(std::string_view text);

// `text` with &, <, >, " and ' replaced by character references.
std::string HtmlEscape(std::string_view text);

// `text` without leading and trailing white space.
std::string_view Trim(std::string_view text);

}  // namespace ferry::notify
