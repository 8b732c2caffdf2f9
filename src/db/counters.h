// Counters: how Prometheus counters are kept in the `counters` table (name, labels, value):
// the bookkeeper adds to them, `ferry web` serves them at /metrics. `labels` holds Prometheus
// label text, e.g. {target="pacs"}, or "" for none.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace ferry::db {

// A label value escaped for the Prometheus text format (backslash, double quote, newline).
std::string EscapeLabelValue(std::string_view value);

// {a="x",b="y"} from the pairs, values escaped; "" when there are none.
std::string LabelText(std::initializer_list<std::pair<const char*, std::string>> labels);

}  // namespace ferry::db
