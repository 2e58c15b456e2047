// The MPI transport of ProcessGroup (liblathe_mpi, the lathe::mpi component): MPI_COMM_WORLD,
// initialized when the first ProcessGroup::world() of a job started by mpirun asks for it and
// finalized at exit. MPI is called from the training thread only (MPI_THREAD_FUNNELED); errors
// come back as lathe::Error (MPI_ERRORS_RETURN), and the CLI turns any error of a distributed run
// into abort(), which ends every process. The only file that includes mpi.h.
#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "lathe/distributed.h"
#include "lathe/error.h"

namespace lathe {
namespace {

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char message[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, message, &length);
  throw Error(fmt::format("MPI {} failed: {}", what, std::string(message, length)));
}

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return MPI_FLOAT;
    case DType::Float64:
      return MPI_DOUBLE;
    case DType::Int64:
      return MPI_INT64_T;
  }
  throw Error("broadcast: unsupported dtype");
}

int mpi_count(std::size_t count, const char* what) {
  if (count > static_cast<std::size_t>(INT_MAX))
    throw Error(fmt::format("{}: {} elements exceed MPI's count limit {}", what, count, INT_MAX));
  return static_cast<int>(count);
}

class MpiTransport : public ProcessGroup::Transport {
 public:
  MpiTransport() {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
    check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "set_errhandler");
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "comm_size");
    MPI_Comm local;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
          "comm_split_type");
    check(MPI_Comm_size(local, &local_size_), "comm_size");
    MPI_Comm_free(&local);
  }
  ~MpiTransport() override {
    int finalized = 0;
    if (MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }

  void broadcast(void* data, std::size_t count, DType dtype, int root) override {
    check(MPI_Bcast(data, mpi_count(count, "broadcast"), mpi_type(dtype), root, MPI_COMM_WORLD),
          "broadcast");
  }
  void allreduce_sum(double* data, std::size_t count) override {
    check(MPI_Allreduce(MPI_IN_PLACE, data, mpi_count(count, "allreduce"), MPI_DOUBLE, MPI_SUM,
                        MPI_COMM_WORLD),
          "allreduce");
  }
  void allreduce_sum(float* data, std::size_t count) override {
    check(MPI_Allreduce(MPI_IN_PLACE, data, mpi_count(count, "allreduce"), MPI_FLOAT, MPI_SUM,
                        MPI_COMM_WORLD),
          "allreduce");
  }
  int start_allreduce_sum(float* data, std::size_t count) override {
    auto slot = std::find(pending_.begin(), pending_.end(), MPI_REQUEST_NULL);
    if (slot == pending_.end()) slot = pending_.insert(pending_.end(), MPI_REQUEST_NULL);
    check(MPI_Iallreduce(MPI_IN_PLACE, data, mpi_count(count, "allreduce"), MPI_FLOAT, MPI_SUM,
                         MPI_COMM_WORLD, &*slot),
          "iallreduce");
    return static_cast<int>(slot - pending_.begin());
  }
  bool test(int ticket) override {
    int done = 0;
    check(MPI_Test(&pending_.at(static_cast<std::size_t>(ticket)), &done, MPI_STATUS_IGNORE),
          "test");
    return done != 0;
  }
  void wait(int ticket) override {
    check(MPI_Wait(&pending_.at(static_cast<std::size_t>(ticket)), MPI_STATUS_IGNORE), "wait");
  }
  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::exit(exit_code);
  }

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1;
  std::vector<MPI_Request> pending_;  // MPI_REQUEST_NULL once complete; slots are reused
};

}  // namespace

void use_mpi() {
  ProcessGroup::set_transport_factory([]() -> std::unique_ptr<ProcessGroup::Transport> {
    return std::make_unique<MpiTransport>();
  });
}

}  // namespace lathe
