// TagLookup: the tags of one series as rules read them, exactly (@Tag@, tags['Tag'],
// 'Tag' in tags) or ignoring case (tags.Tag, as mercure's tags object does).
//
// Built once per series from its tags (mercure's .tags form: keyword -> string value) and then
// shared by every rule evaluated on that series; the case-insensitive index is computed here,
// not per evaluation. The map passed in must outlive the TagLookup and every evaluation that
// uses it (rule results may point into its strings while they are being evaluated).
// Thread-safety: immutable after construction; any number of threads may read it.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace ferry::rules {

class TagLookup {
 public:
  using Map = std::unordered_map<std::string, std::string>;

  explicit TagLookup(const Map& tags);

  // The value of the tag named exactly `name`, or null.
  const std::string* Find(const std::string& name) const;

  // mercure's tags.Name: the tag named exactly `name`, else one whose name equals it ignoring
  // case (`lower_name` is ToLower(name); if several do, the one whose name sorts first).
  // Returns the tag (name and value) or null.
  const std::pair<const std::string, std::string>* FindIgnoringCase(
      const std::string& name, const std::string& lower_name) const;

  const Map& tags() const { return *tags_; }

 private:
  const Map* tags_;
  std::unordered_map<std::string, const std::pair<const std::string, std::string>*> by_lower_;
};

}  // namespace ferry::rules
