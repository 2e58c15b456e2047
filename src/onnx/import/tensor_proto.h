#pragma once
// Internal: TensorProto <-> OnnxValue, every size and count checked before anything is allocated.
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <string>

#include "lathe/onnx_import.h"

namespace lathe::onnx_detail {

// `what` names the tensor in errors ("initializer 'fc.weight'"). External data is read only from
// relative paths inside `folder` (an empty folder refuses it).
OnnxValue tensor_from_proto(const onnx::TensorProto& proto, const std::filesystem::path& folder,
                            const OnnxLimits& limits, const std::string& what);
void tensor_to_proto(const OnnxValue& value, onnx::TensorProto& proto);

// The number of elements of `dims`, or an error naming `what` for negative or overflowing dims
// and for more than `max_bytes` bytes at `element_size` bytes each.
std::int64_t checked_element_count(const google::protobuf::RepeatedField<std::int64_t>& dims,
                                   std::size_t element_size, std::uint64_t max_bytes,
                                   const std::string& what);

}  // namespace lathe::onnx_detail
