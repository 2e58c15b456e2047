#include "lathe/tensor.h"

#include <fmt/format.h>

#include <cstring>
#include <limits>

#include "lathe/error.h"
#include "lathe/random.h"

namespace lathe {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return 4;
    case DType::Float64:
    case DType::Int64:
      return 8;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "float32";
    case DType::Float64:
      return "float64";
    case DType::Int64:
      return "int64";
  }
  return "unknown";
}

const char* device_name(Device device) {
  switch (device) {
    case Device::CPU:
      return "cpu";
  }
  return "unknown";
}

bool is_floating(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float64;
}

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

namespace {

// Number of elements of a shape given by a user, with negative sizes and overflow rejected.
std::int64_t checked_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape) {
    if (d < 0) throw Error(fmt::format("tensor: negative size in shape {}", shape_str(shape)));
    if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / 8 / d)
      throw Error(fmt::format("tensor: shape {} is too large", shape_str(shape)));
    n *= d;
  }
  return n;
}

template <class F>
void for_each_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32:
      f(float{});
      break;
    case DType::Float64:
      f(double{});
      break;
    case DType::Int64:
      f(std::int64_t{});
      break;
  }
}

double read_element(const Tensor& t, std::int64_t flat) {
  double value = 0;
  for_each_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    value = static_cast<double>(t.data<T>()[flat]);
  });
  return value;
}

std::int64_t flat_index(const Tensor& t, std::initializer_list<std::int64_t> index) {
  if (static_cast<std::int64_t>(index.size()) != t.dim())
    throw Error(fmt::format("tensor index: {} indices given for shape {}", index.size(),
                            shape_str(t.shape())));
  std::int64_t flat = 0, axis = 0;
  for (auto i : index) {
    const auto extent = t.shape()[axis];
    if (i < 0 || i >= extent)
      throw Error(fmt::format("tensor index: index {} is out of range for axis {} of shape {}", i,
                              axis, shape_str(t.shape())));
    flat = flat * extent + i;
    ++axis;
  }
  return flat;
}

}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  const auto n = checked_numel(shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage =
      std::make_shared<Storage>(static_cast<std::size_t>(n) * dtype_size(dtype), Device::CPU);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.impl_->storage->data(), 0, t.impl_->storage->bytes());
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype) {
  return full(shape, 1.0, dtype);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill_(value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype) {
  return full({}, value, dtype);
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  if (static_cast<std::int64_t>(values.size()) != t.numel())
    throw Error(fmt::format("tensor from_vector: {} values given for shape {} ({} elements)",
                            values.size(), shape_str(shape), t.numel()));
  for_each_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* out = t.data<T>();
    for (std::size_t i = 0; i < values.size(); ++i) out[i] = static_cast<T>(values[i]);
  });
  return t;
}

Tensor Tensor::from_indices(const std::vector<std::int64_t>& values, const Shape& shape) {
  Tensor t = empty(shape, DType::Int64);
  if (static_cast<std::int64_t>(values.size()) != t.numel())
    throw Error(fmt::format("tensor from_indices: {} values given for shape {} ({} elements)",
                            values.size(), shape_str(shape), t.numel()));
  // An empty vector's data() may be null, which memcpy may not be given even for 0 bytes.
  if (!values.empty())
    std::memcpy(t.data<std::int64_t>(), values.data(), values.size() * sizeof(std::int64_t));
  return t;
}

Tensor Tensor::arange(std::int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  for_each_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* out = t.data<T>();
    for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(i);
  });
  return t;
}

Tensor Tensor::rand(const Shape& shape, Generator& generator, DType dtype) {
  Tensor t = empty(shape, dtype);
  uniform_(t, 0.0, 1.0, generator);
  return t;
}

Tensor Tensor::randn(const Shape& shape, Generator& generator, DType dtype) {
  Tensor t = empty(shape, dtype);
  normal_(t, 0.0, 1.0, generator);
  return t;
}

namespace {
const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  if (!impl) throw Error("tensor: use of an undefined tensor");
  return *impl;
}
}  // namespace

const Shape& Tensor::shape() const {
  return checked(impl_).shape;
}
std::int64_t Tensor::dim() const {
  return static_cast<std::int64_t>(shape().size());
}
std::int64_t Tensor::numel() const {
  return shape_numel(shape());
}
DType Tensor::dtype() const {
  return checked(impl_).dtype;
}
Device Tensor::device() const {
  return checked(impl_).storage->device();
}

std::int64_t Tensor::size(std::int64_t axis) const {
  const auto rank = dim();
  const auto resolved = axis < 0 ? axis + rank : axis;
  if (resolved < 0 || resolved >= rank)
    throw Error(
        fmt::format("tensor size: axis {} is out of range for shape {}", axis, shape_str(shape())));
  return shape()[resolved];
}

template <class T>
T* Tensor::data() {
  if (dtype() != dtype_of<T>())
    throw Error(fmt::format("tensor data: requested {} but the tensor is {}",
                            dtype_name(dtype_of<T>()), dtype_name(dtype())));
  return static_cast<T*>(impl_->storage->data());
}

template <class T>
const T* Tensor::data() const {
  return const_cast<Tensor*>(this)->data<T>();
}

template float* Tensor::data<float>();
template double* Tensor::data<double>();
template std::int64_t* Tensor::data<std::int64_t>();
template const float* Tensor::data<float>() const;
template const double* Tensor::data<double>() const;
template const std::int64_t* Tensor::data<std::int64_t>() const;

double Tensor::item() const {
  if (numel() != 1)
    throw Error(fmt::format("tensor item: shape {} has {} elements, expected exactly one",
                            shape_str(shape()), numel()));
  return read_element(*this, 0);
}

double Tensor::at(std::initializer_list<std::int64_t> index) const {
  return read_element(*this, flat_index(*this, index));
}

void Tensor::set(std::initializer_list<std::int64_t> index, double value) {
  const auto flat = flat_index(*this, index);
  for_each_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    data<T>()[flat] = static_cast<T>(value);
  });
}

std::vector<double> Tensor::to_vector() const {
  std::vector<double> values(static_cast<std::size_t>(numel()));
  for (std::int64_t i = 0; i < numel(); ++i) values[i] = read_element(*this, i);
  return values;
}

Tensor Tensor::clone() const {
  Tensor copy = empty(shape(), dtype());
  std::memcpy(copy.impl_->storage->data(), impl_->storage->data(),
              static_cast<std::size_t>(numel()) * dtype_size(dtype()));
  return copy;
}

Tensor Tensor::to(DType target) const {
  Tensor converted = empty(shape(), target);
  converted.copy_(*this);
  return converted;
}

void Tensor::fill_(double value) {
  for_each_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* out = data<T>();
    const auto n = numel();
    for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(value);
  });
}

void Tensor::copy_(const Tensor& source) {
  if (source.shape() != shape())
    throw Error(fmt::format("tensor copy_: source shape {} differs from destination shape {}",
                            shape_str(source.shape()), shape_str(shape())));
  for_each_dtype(dtype(), [&](auto out_tag) {
    using Out = decltype(out_tag);
    for_each_dtype(source.dtype(), [&](auto in_tag) {
      using In = decltype(in_tag);
      const In* in = source.data<In>();
      Out* out = data<Out>();
      const auto n = numel();
      for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<Out>(in[i]);
    });
  });
}

bool Tensor::requires_grad() const {
  return checked(impl_).requires_grad;
}

bool Tensor::is_leaf() const {
  return checked(impl_).grad_fn == nullptr;
}
Tensor Tensor::grad() const {
  return checked(impl_).grad;
}

void Tensor::set_grad(const Tensor& grad) {
  checked(impl_);
  if (grad.defined() && (grad.shape() != shape() || grad.dtype() != dtype()))
    throw Error(fmt::format("set_grad: gradient {} {} does not match tensor {} {}",
                            dtype_name(grad.dtype()), shape_str(grad.shape()), dtype_name(dtype()),
                            shape_str(shape())));
  impl_->grad = grad;
}

void Tensor::zero_grad() {
  checked(impl_);
  impl_->grad = Tensor();
}
const std::shared_ptr<Node>& Tensor::grad_fn() const {
  return checked(impl_).grad_fn;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = checked(impl_).storage;
  impl->shape = impl_->shape;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

}  // namespace lathe
