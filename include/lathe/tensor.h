#pragma once
// Tensor: an n-dimensional array of float32, float64 or int64 values in contiguous row-major
// storage, with the autograd fields (requires_grad, grad, grad_fn) that ops and backward use.
// A Tensor is a shared handle: copies refer to the same data, like torch::Tensor.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace lathe {

enum class DType : std::uint8_t { Float32, Float64, Int64 };
// Where a tensor's storage lives. Kernels dispatch on it; only the CPU exists today.
enum class Device : std::uint8_t { CPU };

using Shape = std::vector<std::int64_t>;

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
const char* device_name(Device device);
bool is_floating(DType dtype);
std::int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[64,784]"

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::Float32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::Float64;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::Int64;
}

// A block of memory on one device, 64-byte aligned. Tensors share storage (reshape, detach).
class Storage {
 public:
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() { return data_; }
  const void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

  // How many blocks storages have taken from the system allocator since the process started;
  // freed blocks are cached and reused, so a steady-state training step adds none.
  static std::uint64_t allocation_count();

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_ = Device::CPU;
};

// The graph node an op's output points to (grad_fn). Only autograd.h defines it: the tensor
// floor holds the pointer and knows nothing of graphs.
struct Node;
class Generator;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor; defined() is false

  // Factories. Values are given as doubles and converted to the requested dtype.
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32);
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32);
  static Tensor scalar(double value, DType dtype = DType::Float32);
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                            DType dtype = DType::Float32);
  static Tensor from_indices(const std::vector<std::int64_t>& values, const Shape& shape);
  static Tensor arange(std::int64_t n, DType dtype = DType::Float32);
  static Tensor rand(const Shape& shape, Generator& generator, DType dtype = DType::Float32);
  static Tensor randn(const Shape& shape, Generator& generator, DType dtype = DType::Float32);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  std::int64_t dim() const;
  std::int64_t size(std::int64_t axis) const;  // negative axes count from the end
  std::int64_t numel() const;
  DType dtype() const;
  Device device() const;

  // Raw element pointer; T must match the dtype (checked).
  template <class T>
  T* data();
  template <class T>
  const T* data() const;

  double item() const;                                         // the value of a one-element tensor
  double at(std::initializer_list<std::int64_t> index) const;  // bounds-checked element read
  void set(std::initializer_list<std::int64_t> index, double value);
  std::vector<double> to_vector() const;

  Tensor clone() const;          // a copy with its own storage, not connected to the graph
  Tensor to(DType dtype) const;  // converted copy, not connected to the graph
  void fill_(double value);
  void copy_(const Tensor& source);  // same shape; element types are converted

  // Autograd. requires_grad_ and backward are defined in src/autograd/, the floor that knows
  // graph nodes; the rest only read and write the fields below.
  bool requires_grad() const;
  Tensor& requires_grad_(bool enabled = true);  // only on leaves (tensors no op produced)
  bool is_leaf() const;
  Tensor grad() const;  // undefined until a backward reaches this leaf
  void set_grad(const Tensor& grad);
  void zero_grad();  // drops the accumulated gradient
  const std::shared_ptr<Node>& grad_fn() const;
  // Backpropagates from this tensor. A non-scalar needs an upstream gradient of the same shape.
  void backward(const Tensor& upstream = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // shares storage, no graph history, requires_grad false

  std::string to_string() const;

  // Internal: used by ops and the autograd engine.
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  TensorImpl* impl() const { return impl_.get(); }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }
  long handle_count() const { return impl_.use_count(); }  // Tensor handles sharing this impl

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  DType dtype = DType::Float32;
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;
};

std::ostream& operator<<(std::ostream& out, const Tensor& tensor);

// A tensor with its stable name ("fc1.weight"): how modules hand parameters and buffers to
// optimizers, state dicts and checkpoints. It lives here, not in nn.h or optim.h, so that
// neither of those has to include the other.
struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// Operators on tensors (and on a tensor and a number) are the differentiable ops of ops.h.
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

}  // namespace lathe
