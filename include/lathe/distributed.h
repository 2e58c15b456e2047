#pragma once
// Data-parallel training across processes with MPI: `mpirun -np N lathe train CONFIG`.
//
// Every process holds the whole model. Rank 0's initial weights are broadcast; each process
// trains on its shard of every global batch (DataLoaderOptions::shard_*); after each backward the
// gradients are summed across processes, each weighted by its share of the batch, so every
// process takes the same optimizer step as one process on the whole batch would. The sum runs
// over flat buckets started while backward is still producing the remaining gradients.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "lathe/autograd.h"
#include "lathe/tensor.h"

namespace lathe {

// The processes of one job. Started by mpirun (OpenMPI's OMPI_COMM_WORLD_SIZE, or PMIx's
// PMIX_RANK, is set) it is MPI_COMM_WORLD, and MPI is initialized on the first call to world();
// otherwise it is one process, rank 0 of 1, and MPI is never touched.
class ProcessGroup {
 public:
  // The processes of this job. Under mpirun this needs the MPI transport (lathe::use_mpi(), from
  // the lathe::mpi library component), installed before the first call; without it, a job of
  // several processes is an error that says so.
  static ProcessGroup& world();
  // world() if something has already called it, else null (for error handlers: never starts MPI).
  static ProcessGroup* world_if_started();
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_size() const { return local_size_; }  // processes of this job on this host
  bool distributed() const { return size_ > 1; }

  // `tensor` (contiguous float32, float64 or int64) becomes rank `root`'s on every process.
  void broadcast(Tensor& tensor, int root);
  // Element-wise sum over all processes, in place; blocks until every process has called it.
  void allreduce_sum(std::vector<double>& values);
  void allreduce_sum(float* data, std::size_t count);

  // Non-blocking in-place sum of `count` floats; returns a ticket for test() and wait(). Every
  // process must start the same reductions in the same order.
  int start_allreduce_sum(float* data, std::size_t count);
  bool test(int ticket);  // true once done; also lets MPI progress the others
  void wait(int ticket);

  // Prints "lathe: error: rank R of N: MESSAGE" and ends every process of the job (MPI_Abort).
  [[noreturn]] void abort(const std::string& message, int exit_code);

  // What carries the collectives between processes (MPI: src/distributed/mpi_transport.cpp).
  class Transport {
   public:
    virtual ~Transport() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual int local_size() const = 0;
    virtual void broadcast(void* data, std::size_t count, DType dtype, int root) = 0;
    virtual void allreduce_sum(double* data, std::size_t count) = 0;
    virtual void allreduce_sum(float* data, std::size_t count) = 0;
    virtual int start_allreduce_sum(float* data, std::size_t count) = 0;
    virtual bool test(int ticket) = 0;
    virtual void wait(int ticket) = 0;
    [[noreturn]] virtual void abort(int exit_code) = 0;
  };
  // Makes the transport of a job started by mpirun; what use_mpi() installs.
  using TransportFactory = std::unique_ptr<Transport> (*)();
  static void set_transport_factory(TransportFactory factory);

 private:
  ProcessGroup();
  std::unique_ptr<Transport> transport_;  // null: a group of one
  int rank_ = 0, size_ = 1, local_size_ = 1;
};

// Makes ProcessGroup::world() use MPI (OpenMPI) when the process was started by mpirun. Defined
// in the lathe::mpi component (liblathe_mpi), which links MPI; the lathe command calls it.
void use_mpi();

// Sums the gradients of `parameters` across a ProcessGroup after each backward. Install it as the
// GradientListener for the backward pass; a bucket (about `bucket_bytes` of gradients, filled in
// reverse parameter order, the order backward produces them) starts its reduction as soon as all
// of its gradients are ready. Buckets start in one fixed order on every process.
class GradientReducer : public GradientListener {
 public:
  static constexpr std::size_t kDefaultBucketBytes = 256 * 1024;

  GradientReducer(ProcessGroup& group, std::vector<Tensor> parameters,
                  std::size_t bucket_bytes = kDefaultBucketBytes);

  // Before backward: this process's share of the global batch (its rows / all rows). Each
  // gradient is multiplied by it before the sum, so the sum is the whole batch's mean gradient.
  void begin_step(double weight);
  void gradient_ready(const Tensor& leaf) override;
  // After backward: starts the buckets still waiting (parameters without a gradient count as
  // zero), waits for all, and writes the sums into every parameter's grad.
  void finish_step();

  std::size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<std::size_t> parameters;  // indices into parameters_
    std::vector<std::size_t> offsets;     // of each parameter's values in `values`
    std::vector<float> values;
    std::size_t ready = 0;
    int ticket = -1;  // of its reduction; -1 before it starts
  };
  void copy_in(Bucket& bucket);
  void start_ready_buckets();

  ProcessGroup& group_;
  std::vector<Tensor> parameters_;
  std::vector<std::size_t> bucket_of_;  // per parameter
  std::vector<bool> ready_;             // per parameter, this step
  std::unordered_map<const TensorImpl*, std::size_t> index_of_;
  std::vector<Bucket> buckets_;
  std::size_t next_to_start_ = 0;
  double weight_ = 1.0;
};

}  // namespace lathe
