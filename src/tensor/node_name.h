#pragma once
// Internal: how printing names the op behind a tensor ("grad_fn=mul") while the tensor floor
// knows nothing of graphs. tensor.h only forward-declares Node, so tensor code cannot read a
// node's op; autograd, which defines Node, installs the function that names it.
#include "lathe/tensor.h"

namespace lathe::detail {

using NodeNameFn = const char* (*)(const Node& node);

// Called by src/autograd/grad_mode.cpp during static initialization.
void set_node_name_fn(NodeNameFn fn);

// The name of the op that made `node` ("mul"), or "unknown" before autograd installed its
// function (no node can exist then: nodes are made by autograd's record()).
const char* node_name(const Node& node);

}  // namespace lathe::detail
