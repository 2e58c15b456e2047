#pragma once
// The one finite-difference gradient checker every op test uses (after Caffe's
// test_gradient_check_util). It evaluates f in float64, takes a random upstream gradient w, and
// compares the analytical gradient of <f(x), w> with central differences for every input element.
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "lathe/lathe.h"

namespace lathe::testing {

using OpFunction = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradcheckOptions {
  double step = 1e-6;
  double absolute_tolerance = 1e-6;
  double relative_tolerance = 1e-5;
};

struct GradcheckResult {
  bool passed = true;
  std::string failures;       // one line per mismatching element (the first few)
  std::set<Op> ops_in_graph;  // every op the graph of f recorded
};

// inputs must be float64 tensors; each is made a leaf that requires a gradient.
GradcheckResult gradcheck(const OpFunction& f, std::vector<Tensor> inputs,
                          const GradcheckOptions& options = {});

// Every op recorded in the graph behind `output`.
std::set<Op> ops_in_graph(const Tensor& output);

}  // namespace lathe::testing
