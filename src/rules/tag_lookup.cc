#include "rules/tag_lookup.h"

#include "rules/text.h"

namespace ferry::rules {

TagLookup::TagLookup(const Map& tags) : tags_(&tags) {
  by_lower_.reserve(tags.size());
  for (const auto& entry : tags) {
    auto [it, inserted] = by_lower_.emplace(ToLower(entry.first), &entry);
    if (!inserted && entry.first < it->second->first) {
      it->second = &entry;
    }
  }
}

const std::string* TagLookup::Find(const std::string& name) const {
  auto it = tags_->find(name);
  return it == tags_->end() ? nullptr : &it->second;
}

const std::pair<const std::string, std::string>* TagLookup::FindIgnoringCase(
    const std::string& name, const std::string& lower_name) const {
  auto it = tags_->find(name);
  if (it != tags_->end()) {
    return &*it;
  }
  auto low = by_lower_.find(lower_name);
  return low == by_lower_.end() ? nullptr : low->second;
}

}  // namespace ferry::rules
