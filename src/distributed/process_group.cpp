// ProcessGroup: a group of one, or the processes of a job started by mpirun through the
// transport use_mpi() installed (src/distributed/mpi_transport.cpp, in liblathe_mpi): the core
// library links no MPI, so a program that does not train across processes needs none.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#include "lathe/distributed.h"
#include "lathe/error.h"

namespace lathe {
namespace {

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

ProcessGroup* g_started_world = nullptr;
ProcessGroup::TransportFactory g_transport_factory = nullptr;

}  // namespace

void ProcessGroup::set_transport_factory(TransportFactory factory) {
  g_transport_factory = factory;
}

ProcessGroup& ProcessGroup::world() {
  static ProcessGroup group;
  g_started_world = &group;
  return group;
}

ProcessGroup* ProcessGroup::world_if_started() {
  return g_started_world;
}

ProcessGroup::ProcessGroup() {
  if (!launched_by_mpirun()) return;
  if (!g_transport_factory) {
    const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
    if (size && std::atoi(size) > 1)
      throw Error(
          "started by mpirun, but this program has no MPI transport: link the lathe::mpi "
          "component (liblathe_mpi, built with -DLATHE_MPI=ON and Debian's libopenmpi-dev) and "
          "call lathe::use_mpi() first");
    return;
  }
  transport_ = g_transport_factory();
  rank_ = transport_->rank();
  size_ = transport_->size();
  local_size_ = transport_->local_size();
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::broadcast(Tensor& tensor, int root) {
  if (transport_)
    transport_->broadcast(tensor.impl()->storage->data(), static_cast<std::size_t>(tensor.numel()),
                          tensor.dtype(), root);
}

void ProcessGroup::allreduce_sum(std::vector<double>& values) {
  if (transport_) transport_->allreduce_sum(values.data(), values.size());
}

void ProcessGroup::allreduce_sum(float* data, std::size_t count) {
  if (transport_) transport_->allreduce_sum(data, count);
}

int ProcessGroup::start_allreduce_sum(float* data, std::size_t count) {
  return transport_ ? transport_->start_allreduce_sum(data, count) : -1;
}

bool ProcessGroup::test(int ticket) {
  return !transport_ || ticket < 0 || transport_->test(ticket);
}

void ProcessGroup::wait(int ticket) {
  if (transport_ && ticket >= 0) transport_->wait(ticket);
}

void ProcessGroup::abort(const std::string& message, int exit_code) {
  std::fprintf(stderr, "lathe: error: rank %d of %d: %s\n", rank_, size_, message.c_str());
  std::fflush(stderr);
  if (transport_) transport_->abort(exit_code);
  std::exit(exit_code);
}

}  // namespace lathe
