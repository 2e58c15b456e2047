// ProcessGroup: MPI_COMM_WORLD under mpirun, a group of one otherwise. MPI is called from the
// training thread only (MPI_THREAD_FUNNELED); errors come back as lathe::Error (MPI_ERRORS_RETURN)
// and the CLI turns any error of a distributed run into abort(), which ends every process.
#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>

#include "lathe/distributed.h"
#include "lathe/error.h"

#if LATHE_HAVE_MPI
#include <mpi.h>
#endif

namespace lathe {
namespace {

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

#if LATHE_HAVE_MPI
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
#endif

}  // namespace

struct ProcessGroup::Requests {
#if LATHE_HAVE_MPI
  std::vector<MPI_Request> pending;  // MPI_REQUEST_NULL once complete; slots are reused
#endif
};

namespace {
ProcessGroup* g_started_world = nullptr;
}  // namespace

ProcessGroup& ProcessGroup::world() {
  static ProcessGroup group;
  g_started_world = &group;
  return group;
}

ProcessGroup* ProcessGroup::world_if_started() {
  return g_started_world;
}

ProcessGroup::ProcessGroup() : requests_(std::make_unique<Requests>()) {
  if (!launched_by_mpirun()) return;
#if LATHE_HAVE_MPI
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
  mpi_ = true;
  check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "set_errhandler");
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "comm_size");
  MPI_Comm local;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
        "comm_split_type");
  check(MPI_Comm_size(local, &local_size_), "comm_size");
  MPI_Comm_free(&local);
#else
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (size && std::atoi(size) > 1)
    throw Error(
        "started by mpirun, but this lathe was built without MPI (install libopenmpi-dev and "
        "configure with -DLATHE_MPI=ON)");
#endif
}

ProcessGroup::~ProcessGroup() {
#if LATHE_HAVE_MPI
  int finalized = 0;
  if (mpi_ && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Finalize();
#endif
}

void ProcessGroup::broadcast(Tensor& tensor, int root) {
  if (!mpi_) return;
#if LATHE_HAVE_MPI
  check(MPI_Bcast(tensor.impl()->storage->data(),
                  mpi_count(static_cast<std::size_t>(tensor.numel()), "broadcast"),
                  mpi_type(tensor.dtype()), root, MPI_COMM_WORLD),
        "broadcast");
#else
  (void)tensor;
  (void)root;
#endif
}

void ProcessGroup::allreduce_sum(std::vector<double>& values) {
  if (!mpi_) return;
#if LATHE_HAVE_MPI
  check(MPI_Allreduce(MPI_IN_PLACE, values.data(), mpi_count(values.size(), "allreduce"),
                      MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
        "allreduce");
#endif
}

void ProcessGroup::allreduce_sum(float* data, std::size_t count) {
  if (!mpi_) return;
#if LATHE_HAVE_MPI
  check(MPI_Allreduce(MPI_IN_PLACE, data, mpi_count(count, "allreduce"), MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD),
        "allreduce");
#else
  (void)data;
  (void)count;
#endif
}

int ProcessGroup::start_allreduce_sum(float* data, std::size_t count) {
  if (!mpi_) return -1;
#if LATHE_HAVE_MPI
  auto& pending = requests_->pending;
  auto slot = std::find(pending.begin(), pending.end(), MPI_REQUEST_NULL);
  if (slot == pending.end()) slot = pending.insert(pending.end(), MPI_REQUEST_NULL);
  check(MPI_Iallreduce(MPI_IN_PLACE, data, mpi_count(count, "allreduce"), MPI_FLOAT, MPI_SUM,
                       MPI_COMM_WORLD, &*slot),
        "iallreduce");
  return static_cast<int>(slot - pending.begin());
#else
  (void)data;
  (void)count;
  return -1;
#endif
}

bool ProcessGroup::test(int ticket) {
  if (!mpi_ || ticket < 0) return true;
#if LATHE_HAVE_MPI
  int done = 0;
  check(
      MPI_Test(&requests_->pending.at(static_cast<std::size_t>(ticket)), &done, MPI_STATUS_IGNORE),
      "test");
  return done != 0;
#else
  return true;
#endif
}

void ProcessGroup::wait(int ticket) {
  if (!mpi_ || ticket < 0) return;
#if LATHE_HAVE_MPI
  check(MPI_Wait(&requests_->pending.at(static_cast<std::size_t>(ticket)), MPI_STATUS_IGNORE),
        "wait");
#endif
}

void ProcessGroup::abort(const std::string& message, int exit_code) {
  std::fprintf(stderr, "lathe: error: rank %d of %d: %s\n", rank_, size_, message.c_str());
  std::fflush(stderr);
#if LATHE_HAVE_MPI
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, exit_code);
#endif
  std::exit(exit_code);
}

}  // namespace lathe
