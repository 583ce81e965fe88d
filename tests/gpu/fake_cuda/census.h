// The fake libraries' census: with FAKE_CUDA_CENSUS=FILE set, each fake library counts the calls
// a real GPU would see (kernel launches by name, copies and their bytes, memsets, allocations,
// synchronisations, cuBLAS products, cuDNN passes) and appends them to FILE when the process
// exits, one tab-separated line per row: `library kind name calls amount` (amount: threads
// launched, bytes copied or set, multiply-adds of a product; 0 where it means nothing). Used by
// census.py, which runs a command for one and for two training steps and reports the difference.
// Include it after defining FAKE_CENSUS_LIBRARY (the name written in the rows); everything here
// has internal linkage, so that each fake library keeps its own rows.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace {

class Census {
 public:
  explicit Census(const char* library) : library_(library), path_(std::getenv("FAKE_CUDA_CENSUS")) {}

  // Counts one call of `kind` named `name` (a kernel's name, or "" where the kind says it all).
  void add(const char* kind, const char* name, uint64_t amount = 0) {
    if (!path_) return;
    std::lock_guard<std::mutex> g(lock_);
    auto& row = rows_[{kind, name}];
    row.first += 1;
    row.second += amount;
  }

  // Appends the rows to the file (once, at exit).
  void write() {
    std::lock_guard<std::mutex> g(lock_);
    if (!path_ || rows_.empty()) return;
    std::FILE* f = std::fopen(path_, "a");  // every library appends its own rows
    if (!f) {
      std::fprintf(stderr, "fake CUDA: cannot write the census to %s\n", path_);
      return;
    }
    for (auto& [key, row] : rows_)
      std::fprintf(f, "%s\t%s\t%s\t%llu\t%llu\n", library_, key.first.c_str(),
                   key.second.empty() ? "-" : key.second.c_str(), (unsigned long long)row.first,
                   (unsigned long long)row.second);
    std::fclose(f);
    rows_.clear();
  }

 private:
  const char* library_;
  const char* path_;
  std::mutex lock_;
  std::map<std::pair<std::string, std::string>, std::pair<uint64_t, uint64_t>> rows_;
};

// This library's census: never destroyed (threads of the process may still call in while it
// exits), written by an exit handler.
Census& census() {
  static Census* c = [] {
    auto* made = new Census(FAKE_CENSUS_LIBRARY);
    std::atexit([] { census().write(); });
    return made;
  }();
  return *c;
}

}  // namespace
